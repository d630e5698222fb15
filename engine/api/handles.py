"""Handles: how code outside the actors talks to them (a visitor's chat, an agent's connection).

Outside code asks: it sends a request carrying a reply channel of size 1 and waits, with a deadline,
for the answer. Sends into actor mailboxes may wait (blocking flows upward only); a mailbox that is
gone means the chat ended or the engine stopped, and becomes a clear EngineError.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol

import trio

from ..actors import messages as m
from ..actors.outbox import Outlet, Sink
from ..canned.desk import CannedDesk
from ..canned.records import CannedMessage
from ..model.errors import EngineError
from ..model.events import Event
from ..model.records import Agent, AgentStatus, Department, Entry, Rating, Ticket, TicketKind
from ..model.views import Availability, ChatSummary, VisitorPanel
from ..store.contract import Store
from ..store.tickets import MAX_PAGE, AlreadyRated, NotFound


async def ask(
    mailbox: trio.MemorySendChannel[Any],
    build: Callable[[m.Reply], Any],
    timeout: float | None,  # noqa: ASYNC109 - an ask bounds its own wait (DESIGN.md)
    gone: str = "the engine has stopped",
    gone_code: str = "not_found",
) -> Any:
    """Send `build(reply)` to `mailbox` and wait for the answer; an EngineError answer is raised."""
    reply = m.Reply()
    with trio.move_on_after(timeout if timeout is not None else math.inf) as scope:
        try:
            await mailbox.send(build(reply))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise EngineError(gone_code, gone) from None
        result = await reply.wait()
    if scope.cancelled_caught:
        raise EngineError("busy", "the engine did not answer in time; try again")
    if isinstance(result, EngineError):
        raise result
    return result


async def post(
    session: trio.MemorySendChannel[m.ToSession],
    timeout: float,  # noqa: ASYNC109 - bounds the wait for room in the mailbox
    then: Callable[[Any], None],
    build: Callable[[m.Reply], m.Say],
) -> Callable[[], None]:
    """Hand a line to its session and return without waiting for the answer (a pipelined send).

    `then` is called once, from the session, with the line's sequence number or an EngineError
    (never raise from it). The function returned gives up: `then` gets `busy` at once and a late
    answer is dropped. The writer's later lines queue behind this one in the session's mailbox,
    so several lines of one writer share a commit.
    """
    reply = m.Reply(then)
    msg = build(reply)
    try:
        try:
            session.send_nowait(msg)  # a mailbox with room: no deadline to set, no wait
        except trio.WouldBlock:
            with trio.move_on_after(timeout) as scope:
                await session.send(msg)
            if scope.cancelled_caught:
                raise EngineError("busy", "the engine did not answer in time; try again") from None
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        raise EngineError("chat_ended", "this chat has ended") from None

    def give_up() -> None:
        m.answer(reply, EngineError("busy", "the engine did not answer in time; try again"))

    return give_up


async def rate_chat(
    store: Store,
    chat_id: str,
    rating: Rating | str | None,
    comment: str,
    score: int | None = None,
    *,
    at: float | None = None,
) -> Ticket:
    """Store a visitor's rating on the chat's ticket, once.

    ``score`` (1 to 5) goes with the rating; without a rating word it stands for one (4-5 good,
    3 neutral, 1-2 bad). One of the two is needed.
    """
    if score is not None and (isinstance(score, bool) or not 1 <= score <= 5):
        raise EngineError("invalid_field", "score must be an integer from 1 to 5")
    if rating is None:
        if score is None:
            raise EngineError("missing_field", "give a rating, a score, or both")
        value = Rating.of_score(score)
    else:
        try:
            value = Rating(rating)
        except ValueError:
            raise EngineError("invalid_field", "rating must be good, neutral or bad") from None
    try:
        return await store.rate(chat_id, value, comment, score, at=at)
    except NotFound:
        raise EngineError("invalid_state", "a chat can be rated once it has ended") from None
    except AlreadyRated:
        raise EngineError("already_rated", "this chat was rated already") from None


class Directory(Protocol):
    """What an agent's connection looks up besides the actors: names and canned messages."""

    canned: CannedDesk

    def agent_record(self, agent_id: str) -> Agent | None: ...

    def department_record(self, department_id: str) -> Department | None: ...


class VisitorChat:
    """A visitor's side of one chat: send lines, read events, leave."""

    def __init__(
        self,
        chat_id: str,
        session: trio.MemorySendChannel[m.ToSession],
        outlet: Outlet,
        timeout: float,
        store: Store,
    ) -> None:
        self.chat_id = chat_id
        self._store = store
        self._session = session
        self._outlet = outlet
        self._timeout = timeout
        self._left = False

    async def __aenter__(self) -> VisitorChat:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._left:
            with trio.CancelScope(shield=True):
                await self._tell(m.Detach(outlet=self._outlet, leaving=False))
        self._outlet.close()

    def events(self) -> AsyncIterator[Event]:
        """Every event for this visitor, in order, until the chat ends."""
        return aiter(self._outlet)

    def attach(self, sink: Sink) -> None:
        """Deliver this chat's events to `sink` instead of `events()` (see `actors.outbox`)."""
        self._outlet.attach(sink)

    async def next_event(self) -> Event:
        """The next event; raises trio.EndOfChannel after the last one."""
        return await self._outlet.receive()

    def pending_events(self) -> list[Event]:
        """Everything queued for this visitor right now, without waiting."""
        return self._outlet.pending()

    async def send(self, text: str, *, client_msg_id: str = "") -> int:
        """Write a message; returns its sequence number. A resent client_msg_id is not repeated.

        The returned number stands for the line: this handle's `events()` does not repeat it.
        """
        seq: int = await self._ask(
            lambda r: m.Say(
                author="visitor",
                text=text,
                client_msg_id=client_msg_id,
                reply=r,
                origin=self._outlet,
            )
        )
        return seq

    async def post(
        self, text: str, *, client_msg_id: str = "", then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        """Write a message without waiting for its answer (see `post`)."""
        return await post(
            self._session,
            self._timeout,
            then,
            lambda r: m.Say(
                author="visitor",
                text=text,
                client_msg_id=client_msg_id,
                reply=r,
                origin=self._outlet,
            ),
        )

    async def typing(self, on: bool) -> None:
        await self._tell(m.SetTyping(author="visitor", on=on))

    async def history(self, after_seq: int = 0) -> tuple[Entry, ...]:
        lines: tuple[Entry, ...] = await self._ask(
            lambda r: m.History(reader="visitor", after_seq=after_seq, reply=r)
        )
        return lines

    async def leave(self) -> None:
        """The visitor says goodbye: the chat ends after the visitor grace period."""
        if not self._left:
            self._left = True
            await self._tell(m.Detach(outlet=self._outlet, leaving=True))

    async def rate(
        self, rating: Rating | str | None, comment: str = "", *, score: int | None = None
    ) -> Ticket:
        """Rate the chat once it has ended: good, neutral or bad, or a score of 1 to 5, or both,
        with an optional comment; returns the ticket as the visitor may see it
        (`Ticket.for_visitor`)."""
        return (await rate_chat(self._store, self.chat_id, rating, comment, score)).for_visitor()

    async def _attach(self, last_seq: int) -> int:
        seq: int = await self._ask(
            lambda r: m.Attach(outlet=self._outlet, last_seq=last_seq, reply=r)
        )
        return seq

    async def _ask(self, build: Callable[[m.Reply], m.ToSession]) -> Any:
        return await ask(self._session, build, self._timeout, "this chat has ended", "chat_ended")

    async def _tell(self, msg: m.ToSession) -> None:
        try:
            await self._session.send(msg)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the chat already ended


class AgentConnection:
    """One open connection of an agent (a console tab, a WebSocket, an embedded caller)."""

    def __init__(
        self,
        agent_id: str,
        inbox: trio.MemorySendChannel[m.ToAgent],
        outlet: Outlet,
        sessions: Mapping[str, trio.MemorySendChannel[m.ToSession]],
        timeout: float,
        store: Store,
        directory: Directory,
    ) -> None:
        self.agent_id = agent_id
        self._store = store
        self._directory = directory
        self._inbox = inbox
        self._outlet = outlet
        self._sessions = sessions
        self._timeout = timeout

    async def __aenter__(self) -> AgentConnection:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._outlet.close()
        with trio.CancelScope(shield=True):
            try:
                await self._inbox.send(m.Unplug(outlet=self._outlet))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    def events(self) -> AsyncIterator[Event]:
        """Every event for this agent (offers, chat lines of its chats, results), in order."""
        return aiter(self._outlet)

    def attach(self, sink: Sink) -> None:
        """Deliver this connection's events to `sink` instead of `events()`."""
        self._outlet.attach(sink)

    async def next_event(self) -> Event:
        return await self._outlet.receive()

    def pending_events(self) -> list[Event]:
        """Everything queued for this connection right now, without waiting."""
        return self._outlet.pending()

    # presence
    async def set_status(self, status: AgentStatus | str) -> tuple[AgentStatus, bool]:
        """Go online or offline; returns the agent's (status, ringtone) as stored."""
        try:
            wanted = AgentStatus(status)
        except ValueError:
            raise EngineError("invalid_field", "status must be online or offline") from None
        return await self._presence(wanted, None)

    async def set_ringtone(self, on: bool) -> tuple[AgentStatus, bool]:
        """Turn the offer ringtone on or off; returns the agent's (status, ringtone) as stored."""
        return await self._presence(None, on)

    async def _presence(
        self, status: AgentStatus | None, ringtone: bool | None
    ) -> tuple[AgentStatus, bool]:
        stored: tuple[AgentStatus, bool] = await self._ask(
            lambda r: m.SetPresence(
                agent_id=self.agent_id, status=status, ringtone=ringtone, reply=r
            )
        )
        return stored

    # offers
    async def accept(self, offer_id: str) -> str:
        """Take an offered chat, transfer or invite; returns the chat id."""
        chat_id: str = await self._ask(
            lambda r: m.Accept(agent_id=self.agent_id, offer_id=offer_id, reply=r)
        )
        return chat_id

    async def decline(self, offer_id: str) -> None:
        await self._ask(lambda r: m.Decline(agent_id=self.agent_id, offer_id=offer_id, reply=r))

    # conversation
    async def send(self, chat_id: str, text: str, *, client_msg_id: str = "") -> int:
        """Write a message; returns its sequence number, which stands for the line on this
        connection (its `events()` does not repeat it; the agent's other connections get it)."""
        seq: int = await ask(
            self._session(chat_id),
            lambda r: m.Say(
                author=self.agent_id,
                text=text,
                client_msg_id=client_msg_id,
                reply=r,
                origin=self._outlet,
            ),
            self._timeout,
            "that chat has ended",
            "chat_ended",
        )
        return seq

    async def post(
        self,
        chat_id: str,
        text: str,
        *,
        client_msg_id: str = "",
        then: Callable[[int | EngineError], None],
    ) -> Callable[[], None]:
        """Write a message without waiting for its answer (see `post`)."""
        return await post(
            self._session(chat_id),
            self._timeout,
            then,
            lambda r: m.Say(
                author=self.agent_id,
                text=text,
                client_msg_id=client_msg_id,
                reply=r,
                origin=self._outlet,
            ),
        )

    async def typing(self, chat_id: str, on: bool) -> None:
        """Tell the chat this agent started or stopped typing; refused if it is not in the chat."""
        await ask(
            self._session(chat_id),
            lambda r: m.SetTyping(author=self.agent_id, on=on, reply=r),
            self._timeout,
            "that chat has ended",
            "chat_ended",
        )

    async def history(self, chat_id: str, after_seq: int = 0) -> tuple[Entry, ...]:
        lines: tuple[Entry, ...] = await ask(
            self._session(chat_id),
            lambda r: m.History(reader=self.agent_id, after_seq=after_seq, reply=r),
            self._timeout,
            "that chat has ended",
            "chat_ended",
        )
        return lines

    # handshakes
    async def transfer(
        self, chat_id: str, *, to_agent: str = "", to_department: str = "", note: str = ""
    ) -> str:
        """Ask another agent, or anyone in a department, to take the chat; returns the offer id."""
        return await self._handoff("transfer", chat_id, to_agent, to_department, note)

    async def invite(self, chat_id: str, *, to_agent: str, note: str = "") -> str:
        """Ask another agent to join the chat; returns the offer id."""
        return await self._handoff("invite", chat_id, to_agent, "", note)

    async def cancel_handoff(self, chat_id: str, *, kind: str = "") -> None:
        """Withdraw this agent's pending transfer or invite (`kind` names which, "" either).

        A chat the agent is neither in nor offered is `not_in_chat`, whatever its handoffs.
        """
        await self._ask(lambda r: m.ChatInfo(agent_id=self.agent_id, chat_id=chat_id, reply=r))
        await self._ask(
            lambda r: m.CancelHandoff(agent_id=self.agent_id, chat_id=chat_id, reply=r, kind=kind)
        )

    async def available_agents(self, department: str = "") -> tuple[Availability, ...]:
        agents: tuple[Availability, ...] = await self._ask(
            lambda r: m.AvailableAgents(department=department, reply=r)
        )
        return agents

    # endings
    async def end_chat(self, chat_id: str, *, delay: float = 0.0) -> int | None:
        """End the chat now (returns its stored ticket's id) or after `delay` seconds (returns
        None at once; cancellable with cancel_end)."""
        ticket_id: int | None = await self._ask(
            lambda r: m.EndChat(agent_id=self.agent_id, chat_id=chat_id, delay=delay, reply=r)
        )
        return ticket_id

    async def cancel_end(self, chat_id: str) -> None:
        await self._ask(lambda r: m.CancelEnd(agent_id=self.agent_id, chat_id=chat_id, reply=r))

    async def tag(self, chat_id: str, tags: Sequence[str]) -> tuple[str, ...]:
        """Add tags to a chat this agent is in; returns every tag the chat has now (they are
        kept on its ticket, and `tickets(tag=...)` finds them)."""
        result: tuple[str, ...] = await self._ask(
            lambda r: m.TagChat(agent_id=self.agent_id, chat_id=chat_id, tags=tuple(tags), reply=r)
        )
        return result

    async def leave_chat(self, chat_id: str) -> None:
        """Leave a chat this agent was invited into."""
        await self._ask(lambda r: m.LeaveChat(agent_id=self.agent_id, chat_id=chat_id, reply=r))

    async def _handoff(
        self, kind: str, chat_id: str, to_agent: str, to_department: str, note: str
    ) -> str:
        offer_id: str = await self._ask(
            lambda r: m.StartHandoff(
                kind=kind,
                agent_id=self.agent_id,
                chat_id=chat_id,
                to_agent=to_agent,
                to_department=to_department,
                note=note,
                reply=r,
            )
        )
        return offer_id

    # the visitor panel
    async def visitor_panel(
        self, chat_id: str, *, limit: int = 10, offset: int = 0
    ) -> VisitorPanel:
        """The visitor of a chat this agent is in or is offered, with recent chats and tickets.

        History is linked only by the visitor's verified identity (`Visitor.visitor_id`; a
        claimed id or an email links nothing), and only what belongs to this agent's departments
        is shown: their tickets and their live chats.
        """
        if not 1 <= limit <= 100 or offset < 0:
            raise EngineError("invalid_field", "limit must be 1..100 and offset at least 0")
        visitor, chat, live = await self._ask(
            lambda r: m.ChatInfo(agent_id=self.agent_id, chat_id=chat_id, reply=r)
        )
        mine = frozenset(self._departments())
        tickets: list[Ticket] = []
        ended: list[Ticket] = []
        if visitor.visitor_id:
            tickets = await self._visitor_tickets(visitor.visitor_id, mine, None, limit, offset)
            ended = await self._visitor_tickets(
                visitor.visitor_id, mine, TicketKind.TRANSCRIPT, limit, offset
            )
            live = [c for c in live if c.department in mine]
        else:
            live = []
        live_first = sorted(live, key=lambda c: c.started_at, reverse=True) if offset == 0 else []
        return VisitorPanel(
            chat_id=chat.chat_id,
            department=chat.department,
            question=chat.question,
            started_at=chat.started_at,
            visitor=visitor,
            recent_chats=tuple(live_first + [ChatSummary.of_ticket(t) for t in ended])[:limit],
            recent_tickets=tuple(tickets),
        )

    async def _visitor_tickets(
        self,
        visitor_id: str,
        departments: Collection[str],
        kind: TicketKind | None,
        limit: int,
        offset: int,
    ) -> list[Ticket]:
        """One page of the visitor's tickets in any of `departments`, newest first.

        The store filters by one department at a time: each department's first `offset + limit`
        tickets are read and merged (a merge of sorted lists is sorted, so the page is exact).
        """

        async def read(department: str, start: int, count: int) -> list[Ticket]:
            out: list[Ticket] = []
            while len(out) < count:
                want = min(MAX_PAGE, count - len(out))
                page = await self._store.tickets(
                    kind=kind,
                    department=department,
                    visitor_id=visitor_id,
                    limit=want,
                    offset=start + len(out),
                )
                out.extend(page)
                if len(page) < want:
                    break
            return out

        ordered = sorted(departments)
        if len(ordered) == 1:
            return await read(ordered[0], offset, limit)
        heads = [await read(d, 0, offset + limit) for d in ordered]
        merged = list(heapq.merge(*heads, key=lambda t: (-t.ended_at, -(t.id or 0))))
        return merged[offset : offset + limit]

    # canned messages: every read sees this agent's departments' messages and the shared ones;
    # another department's message is not_found, as an unknown id is
    async def canned_suggest(self, draft: str, *, limit: int = 10) -> list[CannedMessage]:
        """Canned messages for the `#` query at the end of a draft, best first."""
        return self._directory.canned.suggest(
            draft, departments=self._departments(), agent_id=self.agent_id, limit=limit
        )

    async def canned_messages(self, *, category: str | None = None) -> list[CannedMessage]:
        """The canned messages this agent may use (of `category`, if given), newest first."""
        return self._directory.canned.messages(departments=self._departments(), category=category)

    async def canned_message(self, message_id: str) -> CannedMessage:
        """One canned message this agent may use; `not_found` for another department's."""
        return self._directory.canned.message(message_id, departments=self._departments())

    async def canned_pick(self, message_id: str, chat_id: str) -> str:
        """Pick a suggestion for a chat: counts a use and returns its text, placeholders filled."""
        visitor, chat, _ = await self._ask(
            lambda r: m.ChatInfo(agent_id=self.agent_id, chat_id=chat_id, reply=r)
        )
        me = self._directory.agent_record(self.agent_id)
        dept = self._directory.department_record(chat.department)
        values = {
            "visitor.name": visitor.name,
            "visitor.email": visitor.email,
            "agent.name": me.name if me else "",
            "department.name": dept.name if dept else "",
        }
        return await self._directory.canned.pick(
            message_id,
            agent_id=self.agent_id,
            values=values,
            departments=me.departments if me else (),
        )

    def _departments(self) -> tuple[str, ...]:
        me = self._directory.agent_record(self.agent_id)
        if me is None:
            raise EngineError("not_found", "this agent was removed")
        return me.departments

    def _session(self, chat_id: str) -> trio.MemorySendChannel[m.ToSession]:
        session = self._sessions.get(chat_id)
        if session is None:
            raise EngineError("not_in_chat", "no live chat with that id")
        return session

    async def _ask(self, build: Callable[[m.Reply], m.ToAgent]) -> Any:
        return await ask(self._inbox, build, self._timeout, "this agent was removed")
