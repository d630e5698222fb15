"""A supervisor's handle: the live desk, monitoring and whispering, barging in, reassigning.

A supervisor is scoped to departments (None: every department, as an admin is). Its handle has one
outlet for everything it is sent: `DeskChanged` events once it asked for the desk, and the lines
of the chats it monitors or barged into. Acting on a chat outside its departments is `not_found`,
as for a chat that does not exist.

Every act on a chat (monitor, whisper, barge, reassign) is written to the audit log, with the
supervisor as the actor, once it succeeded. If that write fails the act has happened anyway and
the caller gets `store_unavailable`.

Leaving the handle's block stops the desk, stops monitoring, and leaves the chats it barged into.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

import structlog
import trio

from ..actors import messages as m
from ..actors.outbox import Outbox, Outlet
from ..model.audit import AuditEntry
from ..model.desk import DeskSnapshot
from ..model.errors import EngineError
from ..model.events import Event
from ..model.views import Availability, ChatView
from ..store.contract import Store
from .handles import ask

log = structlog.get_logger("helpline.supervisor")

__all__ = ["SupervisorConnection"]


class SupervisorConnection:
    """One open connection of a supervisor. Get one from `Engine.connect_supervisor`."""

    def __init__(
        self,
        *,
        supervisor_id: str,
        name: str,
        departments: frozenset[str] | None,
        router: trio.MemorySendChannel[m.ToRouter],
        sessions: Mapping[str, trio.MemorySendChannel[m.ToSession]],
        chat_view: Callable[[str], Awaitable[ChatView | None]],
        store: Store,
        now: Callable[[], float],
        outlet: Outlet,
        timeout: float,
    ) -> None:
        self.supervisor_id = supervisor_id
        self.name = name
        self.departments = departments
        self._router = router
        self._sessions = sessions
        self._chat_view = chat_view
        self._store = store
        self._now = now
        self._outlet = outlet
        self._outbox = Outbox()
        self._outbox.add(outlet)
        self._timeout = timeout
        self._watcher = f"{supervisor_id}#{id(self):x}"  # one desk per connection
        self._supervising = False
        self._monitoring: set[str] = set()
        self._barged: set[str] = set()

    async def __aenter__(self) -> SupervisorConnection:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._outlet.close()
        with trio.CancelScope(shield=True):
            if self._supervising:
                await self._tell_router(m.Unsupervise(watcher=self._watcher))
            for chat_id in self._barged:
                await self._tell_router(
                    m.LeaveBarge(
                        chat_id=chat_id, supervisor=self.supervisor_id, outbox=self._outbox
                    )
                )
            for chat_id in self._monitoring:
                session = self._sessions.get(chat_id)
                if session is not None:
                    try:
                        await session.send(m.Unwatch(watcher=self._watcher))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass

    def events(self) -> AsyncIterator[Event]:
        """Every event for this connection (desk changes, lines of watched chats), in order."""
        return aiter(self._outlet)

    async def next_event(self) -> Event:
        return await self._outlet.receive()

    def pending_events(self) -> list[Event]:
        return self._outlet.pending()

    # -- the desk --------------------------------------------------------------------------------

    async def desk(self) -> DeskSnapshot:
        """Every live chat and queue of the supervisor's departments; `DeskChanged` events
        follow, a few a second at most."""
        snapshot: DeskSnapshot = await self._ask_router(
            lambda r: m.Supervise(
                watcher=self._watcher, outlet=self._outlet, departments=self.departments, reply=r
            )
        )
        self._supervising = True
        return snapshot

    async def stop_desk(self) -> None:
        """No more `DeskChanged` events."""
        if self._supervising:
            self._supervising = False
            await self._tell_router(m.Unsupervise(watcher=self._watcher))

    # -- monitoring and whispering ---------------------------------------------------------------

    async def monitor(self, chat_id: str) -> int:
        """Watch a chat, unseen: its transcript so far (whispers included) comes as events, then
        every new line; returns the last sequence number replayed."""
        session = await self._session(chat_id)
        seq: int = await self._ask_session(
            session, lambda r: m.Watch(watcher=self._watcher, outbox=self._outbox, reply=r)
        )
        self._monitoring.add(chat_id)
        await self._audit("monitor", chat_id, after={"seq": seq})
        return seq

    async def unmonitor(self, chat_id: str) -> None:
        """Stop watching a chat (a chat not watched: `not_found`)."""
        if chat_id not in self._monitoring:
            raise EngineError("not_found", "you are not monitoring that chat")
        self._monitoring.discard(chat_id)
        session = self._sessions.get(chat_id)
        if session is not None:
            try:
                await session.send(m.Unwatch(watcher=self._watcher))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def whisper(self, chat_id: str, text: str) -> int:
        """A note to the chat's agents that its visitor never sees; returns its sequence number."""
        if not text:
            raise EngineError("invalid_field", "a whisper needs text")
        session = await self._session(chat_id)
        seq: int = await self._ask_session(
            session,
            lambda r: m.Whisper(author=self.supervisor_id, name=self.name, text=text, reply=r),
        )
        await self._audit("whisper", chat_id, after={"seq": seq, "text": text})
        return seq

    # -- barging in ------------------------------------------------------------------------------

    async def barge(self, chat_id: str) -> None:
        """Join a live chat as a participant (everyone sees a `barged` line); then `send`.

        Its transcript is replayed as to an agent that joins, and a chat monitored until now
        is no longer monitored (its lines come once, as to any participant)."""
        view = await self._chat_view(chat_id)
        await self._ask_router(
            lambda r: m.Barge(
                chat_id=chat_id,
                supervisor=self.supervisor_id,
                name=self.name,
                outbox=self._outbox,
                departments=self.departments,
                reply=r,
            )
        )
        self._barged.add(chat_id)
        if chat_id in self._monitoring:  # a participant now: its lines come once, as a member's
            await self.unmonitor(chat_id)
        owner = view.owner if view is not None else ""
        await self._audit("barge", chat_id, before={"owner": owner})

    async def leave(self, chat_id: str) -> None:
        """Leave a chat this supervisor barged into."""
        await self._ask_router(
            lambda r: m.LeaveBarge(chat_id=chat_id, supervisor=self.supervisor_id, reply=r)
        )
        self._barged.discard(chat_id)

    async def send(self, chat_id: str, text: str, *, client_msg_id: str = "") -> int:
        """Write in a chat this supervisor barged into; returns the line's sequence number."""
        session = self._sessions.get(chat_id)
        if session is None or chat_id not in self._barged:
            raise EngineError("not_in_chat", "you are not in that chat")
        seq: int = await self._ask_session(
            session,
            lambda r: m.Say(
                author=self.supervisor_id,
                text=text,
                client_msg_id=client_msg_id,
                origin=self._outlet,
                reply=r,
            ),
        )
        return seq

    async def typing(self, chat_id: str, on: bool) -> None:
        session = self._sessions.get(chat_id)
        if session is None or chat_id not in self._barged:
            raise EngineError("not_in_chat", "you are not in that chat")
        await self._ask_session(
            session, lambda r: m.SetTyping(author=self.supervisor_id, on=on, reply=r)
        )

    # -- reassigning -----------------------------------------------------------------------------

    async def reassign(
        self, chat_id: str, *, to_agent: str = "", to_department: str = "", note: str = ""
    ) -> str:
        """Transfer a chat on behalf of its owner (the transfer handshake: the target must
        accept; the owner hears the outcome); returns the offer id."""
        view = await self._chat_view(chat_id)
        offer_id: str = await self._ask_router(
            lambda r: m.Reassign(
                chat_id=chat_id,
                supervisor=self.supervisor_id,
                departments=self.departments,
                to_agent=to_agent,
                to_department=to_department,
                note=note,
                reply=r,
            )
        )
        before = {"owner": view.owner, "department": view.department} if view else None
        after = {"to_agent": to_agent, "to_department": to_department, "offer_id": offer_id}
        await self._audit("reassign", chat_id, before=before, after=after)
        return offer_id

    async def available_agents(self, department: str = "") -> tuple[Availability, ...]:
        """Who could take a reassigned chat now (of `department`, if given)."""
        agents: tuple[Availability, ...] = await self._ask_router(
            lambda r: m.AvailableAgents(department=department, reply=r)
        )
        return agents

    # -- helpers ---------------------------------------------------------------------------------

    async def _session(self, chat_id: str) -> trio.MemorySendChannel[m.ToSession]:
        view = await self._chat_view(chat_id)
        session = self._sessions.get(chat_id)
        if (
            view is None
            or session is None
            or (self.departments is not None and view.department not in self.departments)
        ):
            raise EngineError("not_found", "no live chat with that id in your departments")
        return session

    async def _audit(
        self,
        action: str,
        target: str,
        *,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        entry = AuditEntry(
            at=self._now(),
            actor=self.supervisor_id,
            action=action,
            target=target,
            before=before,
            after=after,
        )
        try:
            await self._store.record_audit(entry)
        except Exception as exc:
            log.error("audit_not_stored", action=action, target=target, error=repr(exc))
            raise EngineError(
                "store_unavailable", f"done, but the audit log could not record it: {exc}"
            ) from exc

    async def _ask_router(self, build: Callable[[m.Reply], m.ToRouter]) -> Any:
        return await ask(self._router, build, self._timeout)

    async def _ask_session(
        self,
        session: trio.MemorySendChannel[m.ToSession],
        build: Callable[[m.Reply], m.ToSession],
    ) -> Any:
        return await ask(session, build, self._timeout, "that chat has ended", "chat_ended")

    async def _tell_router(self, msg: m.ToRouter) -> None:
        try:
            await self._router.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
