"""A chat session: the actor that owns one chat's transcript and fans its lines out.

Theory of operation:

- The session numbers every line of its chat (messages from the visitor and the agents, and system
  events the router tells it about) with one sequence, so every participant and the ticket see the
  same order.
- Chat messages come straight from connections (the data plane skips the router). The session
  checks the author is in the chat, appends, and pushes the line into each participant's outbox,
  which never blocks.
- Who is in the chat is the router's decision; the session learns it from Join and Part, which the
  router sends before it answers the agent who asked, so an agent can never write into a chat
  before its session knows it is there.
- On Finish the session writes the chat's one ticket (awaiting the store is allowed: the store is a
  leaf), tells everyone the chat ended, tells the router it is closed, and stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio

from . import _messages as m
from ._errors import EngineError
from ._events import ChatEnded, ChatMessage, Event, Queued, SystemEvent, Typing
from ._outbox import Outbox
from ._records import EndReason, Entry, Ticket, TicketKind, Visitor

log = structlog.get_logger("helpline.session")


class Session:
    """One chat's transcript and participants."""

    def __init__(
        self,
        *,
        chat_id: str,
        department: str,
        question: str,
        visitor: Visitor,
        started_at: float,
        inbox: trio.MemoryReceiveChannel[m.ToSession],
        router: trio.MemorySendChannel[m.ToRouter],
        visitor_outbox: Outbox,
        store: Any,
        wall: Callable[[], float],
        store_retries: int,
    ) -> None:
        self.chat_id = chat_id
        self.department = department
        self.question = question
        self.visitor = visitor
        self.started_at = started_at
        self._inbox = inbox
        self._router = router
        self._visitor = visitor_outbox
        self._store = store
        self._wall = wall
        self._retries = store_retries
        self.entries: list[Entry] = []
        self._members: dict[str, tuple[str, Outbox]] = {}
        self._client_ids: dict[str, int] = {}
        self._log = log.bind(chat_id=chat_id, department=department)

    async def run(self) -> None:
        async with self._inbox:
            async for msg in self._inbox:
                if isinstance(msg, m.Finish):
                    await self._finish(msg)
                    break
                await self._handle(msg)
            self._refuse_the_rest()

    def _refuse_the_rest(self) -> None:
        """Answer every ask still queued behind Finish; the mailbox closes right after."""
        while True:
            try:
                msg = self._inbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            reply = getattr(msg, "reply", None)
            if reply is not None:
                m.answer(reply, EngineError("chat_ended", "this chat has ended"))

    async def _handle(self, msg: m.ToSession) -> None:
        match msg:
            case m.Say():
                m.answer(msg.reply, self._say(msg))
            case m.SetTyping(author=author, on=on):
                if author == "visitor" or author in self._members:
                    self._fan_out(Typing(chat_id=self.chat_id, author=author, on=on), skip=author)
            case m.Attach():
                if self._attach(msg):
                    await self._router.send(m.VisitorBack(chat_id=self.chat_id))
            case m.Detach(outlet=outlet):
                if outlet in self._visitor.outlets:
                    self._visitor.remove(outlet)
                    await self._router.send(m.VisitorGone(chat_id=self.chat_id))
            case m.Join():
                self._join(msg)
            case m.Part(agent_id=agent_id, event=event, detail=detail):
                self._line(event, agent=agent_id, detail=detail)
                self._members.pop(agent_id, None)
            case m.Notice(event=event, agent=agent, detail=detail):
                self._line(event, agent=agent, detail=detail)
            case m.QueuePosition(position=position):
                self._visitor.push(Queued(chat_id=self.chat_id, position=position))
            case m.History(reader=reader, after_seq=after):
                if reader != "visitor" and reader not in self._members:
                    m.answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
                else:
                    m.answer(msg.reply, tuple(e for e in self.entries if e.seq > after))

    def _say(self, msg: m.Say) -> int | EngineError:
        if msg.author != "visitor" and msg.author not in self._members:
            return EngineError("not_in_chat", "you are not in that chat")
        if msg.client_msg_id and msg.client_msg_id in self._client_ids:
            return self._client_ids[msg.client_msg_id]  # a resend: already in the transcript
        name = self.visitor.name if msg.author == "visitor" else self._members[msg.author][0]
        entry = self._append("message", msg.author, msg.text, msg.client_msg_id)
        if msg.client_msg_id:
            self._client_ids[msg.client_msg_id] = entry.seq
        self._fan_out(
            ChatMessage(
                chat_id=self.chat_id,
                seq=entry.seq,
                at=entry.at,
                author=msg.author,
                author_name=name,
                text=msg.text,
                client_msg_id=msg.client_msg_id,
            )
        )
        return entry.seq

    def _append(self, kind: str, author: str, text: str = "", client_msg_id: str = "") -> Entry:
        entry = Entry(
            seq=len(self.entries) + 1,
            at=self._wall(),
            kind=kind,
            author=author,
            text=text,
            client_msg_id=client_msg_id,
        )
        self.entries.append(entry)
        return entry

    def _line(self, event: str, *, agent: str = "", detail: str = "") -> None:
        if not event:
            return
        entry = self._append(event, agent or "system", detail)
        self._fan_out(self._event_of(entry))

    def _event_of(self, entry: Entry) -> Event:
        if entry.kind == "message":
            name = (
                self.visitor.name
                if entry.author == "visitor"
                else self._members.get(entry.author, (entry.author, None))[0]
            )
            return ChatMessage(
                chat_id=self.chat_id,
                seq=entry.seq,
                at=entry.at,
                author=entry.author,
                author_name=name,
                text=entry.text,
                client_msg_id=entry.client_msg_id,
            )
        return SystemEvent(
            chat_id=self.chat_id,
            seq=entry.seq,
            at=entry.at,
            event=entry.kind,
            agent="" if entry.author == "system" else entry.author,
            detail=entry.text,
        )

    def _fan_out(self, event: Event, skip: str = "") -> None:
        if skip != "visitor":
            self._visitor.push(event)
        for agent_id, (_, outbox) in self._members.items():
            if agent_id != skip:
                outbox.push(event)

    def _join(self, msg: m.Join) -> None:
        for entry in self.entries:  # the newcomer sees the conversation so far, in order
            msg.outbox.push(self._event_of(entry))
        if msg.replaces:
            self._line(msg.event, agent=msg.agent_id, detail=msg.detail)
            self._members.pop(msg.replaces, None)
            self._members[msg.agent_id] = (msg.name, msg.outbox)
        else:
            self._members[msg.agent_id] = (msg.name, msg.outbox)
            self._line(msg.event, agent=msg.agent_id, detail=msg.detail)

    def _attach(self, msg: m.Attach) -> bool:
        """Switch the visitor to a new outlet; returns whether the visitor had been gone."""
        was_gone = not self._visitor.outlets
        for old in self._visitor.outlets:
            old.close()
        self._visitor.outlets.clear()
        for entry in self.entries:
            if entry.seq > msg.last_seq:
                msg.outlet.push(self._event_of(entry))
        self._visitor.add(msg.outlet)
        m.answer(msg.reply, len(self.entries))
        return was_gone

    async def _finish(self, msg: m.Finish) -> None:
        self._line("ended", detail=msg.reason)
        ticket = self.ticket(msg)
        stored: Ticket | None = None
        for attempt in range(self._retries + 1):
            try:
                stored = await self._store.save_ticket(ticket)
                break
            except Exception as exc:
                if getattr(exc, "code", "") == "ticket_exists":
                    stored = await self._store.ticket_for_chat(self.chat_id)
                    break
                self._log.warning("ticket_write_failed", attempt=attempt + 1, error=repr(exc))
                if attempt == self._retries:
                    raise
                await trio.sleep(0.5 * 2**attempt)
        ticket_id = stored.id if stored is not None else None
        self._log.info("ticket_stored", ticket_id=ticket_id, kind=msg.kind.value)
        ended = ChatEnded(chat_id=self.chat_id, reason=msg.reason, ticket_id=ticket_id)
        self._fan_out(ended)
        for outlet in self._visitor.outlets:
            outlet.close()
        await self._router.send(m.SessionClosed(chat_id=self.chat_id, ticket_id=ticket_id))

    def ticket(self, msg: m.Finish) -> Ticket:
        """The chat's ticket as the router's Finish describes it."""
        return Ticket(
            chat_id=self.chat_id,
            kind=msg.kind,
            department=self.department,
            question=self.question,
            visitor=self.visitor,
            entries=tuple(self.entries),
            agents=msg.agents,
            handoffs=msg.handoffs,
            started_at=self.started_at,
            accepted_at=msg.accepted_at,
            ended_at=self._wall(),
            end_reason=EndReason(msg.reason),
            owner=msg.owner,
        )

    def snapshot(self) -> Ticket:
        """What this session holds, as a failed-chat ticket (the router fills in the rest)."""
        return Ticket(
            chat_id=self.chat_id,
            kind=TicketKind.FAILED,
            department=self.department,
            question=self.question,
            visitor=self.visitor,
            entries=tuple(self.entries),
            agents=(),
            started_at=self.started_at,
            ended_at=self._wall(),
            end_reason=EndReason.CRASHED,
        )
