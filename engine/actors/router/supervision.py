"""Supervisors: the live desk pushed to their connections, barging into a chat, and reassigning a
chat on behalf of its owner.

The desk. A supervisor's connection registers an outlet and its departments (`Supervise`) and is
answered with every live chat and queue of them. From then on every change to a chat's record
(anything `_touch` journals) and every new message (`Activity`, from the session) marks the chat
dirty for each desk that shows it or covers its department; while no desk is open the sessions
send no `Activity` at all (they leave the last message time on the `DeskBoard`, and the router
reads it from there when a desk opens). A desk's dirty chats are sent at most
every `DESK_INTERVAL` seconds, by a timer of the router's heap (Rule 3), as one `DeskChanged`:
the whole row of each chat still live, the ids of the chats that ended or left the desk's
departments, and the queues that moved since the last one sent. So a busy desk costs a few events
a second per supervisor, however many chats change, and nothing when nobody supervises. Desk
events are effects like any push (Rule 5): a row is shown once what it reports is journaled. A
desk whose outlet is full is a slow consumer: the outlet closes and the desk is forgotten.

Barging. A supervisor joins a live chat as a participant (the session's `Join`, with the system
line `barged` that everyone sees), so it can write in it; it holds no capacity and does not own
the chat. Who barged in is part of the chat's journaled record (`Chat.barged`), so after a restart
the supervisor is still in the chat: a connection of it that barges again attaches to the chat
(the transcript replayed, nobody told), as does a second connection of the same supervisor, which
takes the chat's lines over. It leaves with `LeaveBarge`, also when the connection that reads the
chat closes.

Reassigning. A supervisor starts the transfer handshake of a chat on behalf of its owner: the
same offer, decided by the same code, as if the owner had asked; the owner hears the outcome.

Scopes are checked here, where the chat's department is known for sure: a chat outside the
supervisor's departments is `not_found`, as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import structlog
import trio

from ...model.chatstate import LIVE, ChatState
from ...model.desk import DeskChat, DeskQueue, DeskSnapshot
from ...model.errors import EngineError
from ...model.events import DeskChanged
from .. import messages as m
from ..deskboard import DeskBoard
from ..outbox import Outlet
from .presence import Presence
from .state import Chat

log = structlog.get_logger("helpline.router")

DESK_INTERVAL: Final = 0.25  # seconds between two desk events of one supervisor's connection


@dataclass(slots=True, eq=False)
class Desk:
    """One supervisor connection's view of the desk."""

    watcher: str
    outlet: Outlet
    departments: frozenset[str] | None  # None: every department
    shown: set[str] = field(default_factory=set)  # chats whose rows it holds
    dirty: set[str] = field(default_factory=set)
    queues: dict[str, tuple[str, ...]] = field(default_factory=dict)  # as last sent
    last_sent: float = 0.0

    def covers(self, department: str) -> bool:
        return self.departments is None or department in self.departments


def _not_found() -> EngineError:
    return EngineError("not_found", "no live chat with that id in your departments")


class Supervision(Presence):
    """Desks for supervisors, barging in, and reassigning chats."""

    def __init__(self, *, desk_board: DeskBoard | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._desks: dict[str, Desk] = {}
        # chat -> its newest message's time (written by the sessions), and how many desks watch
        self._board = desk_board or DeskBoard()
        self._last_lines = self._board.last_lines

    # -- the desk ----------------------------------------------------------------------------------

    def _touch(self, chat: Chat) -> None:
        super()._touch(chat)
        if self._desks:
            self._desk_dirty(chat.id, chat.department)

    def _desk_dirty(self, chat_id: str, department: str | None) -> None:
        for desk in self._desks.values():
            if chat_id in desk.shown or (department is not None and desk.covers(department)):
                desk.dirty.add(chat_id)
                key = ("desk", desk.watcher)
                if key not in self._timers:
                    due = max(trio.current_time(), desk.last_sent + DESK_INTERVAL)
                    self._timers.set(key, due)

    def _supervise(self, msg: m.Supervise) -> None:
        desk = Desk(watcher=msg.watcher, outlet=msg.outlet, departments=msg.departments)
        desk.last_sent = trio.current_time()  # the answer is the first picture
        rows = [self._desk_row(c) for c in self._desk_chats(desk)]
        desk.shown = {row.chat_id for row in rows}
        desk.queues = self._desk_queues(desk)
        self._desks[msg.watcher] = desk
        self._board.watchers = len(self._desks)
        queues = tuple(DeskQueue(department=d, chats=q) for d, q in sorted(desk.queues.items()))
        self._answer(msg.reply, DeskSnapshot(chats=tuple(rows), queues=queues))

    def _unsupervise(self, msg: m.Unsupervise) -> None:
        if self._desks.pop(msg.watcher, None) is not None:
            self._timers.cancel(("desk", msg.watcher))
        self._board.watchers = len(self._desks)

    def _activity(self, msg: m.Activity) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is not None and self._desks:
            self._desk_dirty(chat.id, chat.department)

    def _desk_fire(self, watcher: str) -> None:
        """A desk's timer: send what changed since its last event."""
        desk = self._desks.get(watcher)
        if desk is None:
            return
        rows: list[DeskChat] = []
        removed: list[str] = []
        for chat_id in sorted(desk.dirty):
            chat = self._chats.get(chat_id)
            if (
                chat is not None
                and chat.state is not ChatState.CLOSING
                and desk.covers(chat.department)
            ):
                rows.append(self._desk_row(chat))
                desk.shown.add(chat_id)
            elif chat_id in desk.shown:
                removed.append(chat_id)
                desk.shown.discard(chat_id)
        desk.dirty.clear()
        queues = self._desk_queues(desk)
        moved = tuple(
            DeskQueue(department=d, chats=q)
            for d, q in sorted(queues.items())
            if desk.queues.get(d) != q
        )
        desk.queues = queues
        if not (rows or removed or moved):
            return
        desk.last_sent = trio.current_time()
        event = DeskChanged(chats=tuple(rows), removed=tuple(removed), queues=moved)
        self._effects.do(partial(self._desk_push, desk, event))

    def _desk_push(self, desk: Desk, event: DeskChanged) -> None:
        if not desk.outlet.push(event) and self._desks.get(desk.watcher) is desk:
            log.info("desk_dropped", watcher=desk.watcher)  # a slow consumer
            del self._desks[desk.watcher]
            self._timers.cancel(("desk", desk.watcher))
            self._board.watchers = len(self._desks)

    def _desk_chats(self, desk: Desk) -> Iterable[Chat]:
        return (
            c
            for c in self._chats.values()
            if c.state is not ChatState.CLOSING and desk.covers(c.department)
        )

    def _desk_queues(self, desk: Desk) -> dict[str, tuple[str, ...]]:
        return {d: tuple(dept.queue) for d, dept in self._depts.items() if desk.covers(d)}

    def _desk_row(self, chat: Chat) -> DeskChat:
        agents = [chat.owner] if chat.owner else []
        agents += [a for a in chat.members if a != chat.owner]
        until = chat.accepted_at if chat.accepted_at is not None else self._wall()
        return DeskChat(
            chat_id=chat.id,
            department=chat.department,
            state=chat.state.value,
            owner=chat.owner,
            agents=tuple(agents),
            started_at=chat.started_at,
            accepted_at=chat.accepted_at,
            wait=max(0.0, until - chat.started_at),
            last_message_at=self._last_lines.get(chat.id),
            visitor_name=chat.visitor.name,
            question=chat.question,
            agent_names=tuple(a.name if (a := self._agents.get(i)) else i for i in agents),
        )

    def _forget_supervised(self, chat_id: str) -> None:
        self._last_lines.pop(chat_id, None)
        if self._desks:
            self._desk_dirty(chat_id, None)

    def _session_closed(self, msg: m.SessionClosed) -> None:
        super()._session_closed(msg)
        self._forget_supervised(msg.chat_id)

    def _actor_down(self, msg: m.ActorDown) -> None:
        super()._actor_down(msg)
        if msg.kind == "session":
            self._forget_supervised(msg.name)

    def _abandon(self, chat: Chat) -> None:
        super()._abandon(chat)
        if chat.id not in self._chats:
            self._forget_supervised(chat.id)

    # -- barging in and reassigning ----------------------------------------------------------------

    def _scoped(self, chat_id: str, departments: frozenset[str] | None) -> Chat | None:
        chat = self._chats.get(chat_id)
        if chat is None or (departments is not None and chat.department not in departments):
            return None
        return chat

    def _barge(self, msg: m.Barge) -> None:
        chat = self._scoped(msg.chat_id, msg.departments)
        if chat is None:
            self._answer(msg.reply, _not_found())
            return
        if chat.state not in LIVE:
            self._answer(
                msg.reply, EngineError("invalid_state", f"the chat is {chat.state}; nobody took it")
            )
            return
        inside = chat.barged.get(msg.supervisor)
        if inside is None:
            chat.barged[msg.supervisor] = (msg.name, msg.outbox)
            self._touch(chat)
            self._tell(
                chat,
                m.Join(agent_id=msg.supervisor, name=msg.name, outbox=msg.outbox, event="barged"),
            )
            log.info("barged_in", chat_id=chat.id, supervisor=msg.supervisor)
        elif inside[1] is not msg.outbox:  # after a restart, or another connection: attach it
            chat.barged[msg.supervisor] = (msg.name, msg.outbox)
            self._tell(chat, m.Join(agent_id=msg.supervisor, name=msg.name, outbox=msg.outbox))
            log.info("barge_attached", chat_id=chat.id, supervisor=msg.supervisor)
        self._answer_after_tells(chat, msg.reply, chat.id)

    def _leave_barge(self, msg: m.LeaveBarge) -> None:
        chat = self._chats.get(msg.chat_id)
        inside = chat.barged.get(msg.supervisor) if chat is not None else None
        if chat is None or inside is None:
            if msg.reply is not None:
                self._answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
            return
        if msg.outbox is not None and inside[1] is not msg.outbox:
            return  # a connection that another one took the chat over from closed
        del chat.barged[msg.supervisor]
        self._touch(chat)
        self._tell(chat, m.Part(agent_id=msg.supervisor, event="left"))
        if msg.reply is not None:
            self._answer_after_tells(chat, msg.reply, None)

    def _reassign(self, msg: m.Reassign) -> None:
        chat = self._scoped(msg.chat_id, msg.departments)
        if chat is None:
            self._answer(msg.reply, _not_found())
            return
        if not chat.owner:
            self._answer(
                msg.reply,
                EngineError("invalid_state", f"the chat is {chat.state}; nobody holds it"),
            )
            return
        log.info("reassign", chat_id=chat.id, supervisor=msg.supervisor, owner=chat.owner)
        self._start_handoff(
            m.StartHandoff(
                kind="transfer",
                agent_id=chat.owner,
                chat_id=chat.id,
                to_agent=msg.to_agent,
                to_department=msg.to_department,
                note=msg.note,
                reply=msg.reply,
            )
        )
