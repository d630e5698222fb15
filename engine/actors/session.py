"""A chat session: the actor that owns one chat's transcript and fans its lines out.

Theory of operation:

- The session numbers every line of its chat (messages from the visitor and the agents, and system
  events the router tells it about) with one sequence, so every participant and the ticket see the
  same order.
- Chat messages come straight from connections (the data plane skips the router). The session
  checks the author is in the chat, appends, and pushes the line into each participant's outbox,
  which never blocks. The outlet the line was written through gets no echo of it: the answer to
  its `Say` (the sequence number) stands for it. The author's other outlets (an agent's other
  tabs) get the line like everyone else.
- With the journal on, a line is committed to the store before anyone sees it: before a message is
  acknowledged (its sequence number answered) or fanned out. Messages that are already waiting in
  the mailbox are taken together and written in one job, and the store's group commit puts many
  chats' jobs in one transaction. If the write fails, those messages are answered
  `store_unavailable` and are not in the transcript; a resend (same client message id) is safe.
  A system line (joined, left...) reports what the router already decided, so it is shown even if
  its write failed, and written again with the next line or the ticket.
- The client message ids seen are rebuilt from the journal when a chat is restored, so a message
  resent after a restart is not repeated either.
- Who is in the chat is the router's decision; the session learns it from Join and Part, which the
  router sends before it answers the agent who asked, so an agent can never write into a chat
  before its session knows it is there.
- Supervisors may watch a chat without being in it (Watch): a watcher gets the transcript so far
  and then every line, typing notice and the ending, as members do, and is never named to the
  others. A whisper is a line of kind "whisper" from a supervisor to the agents: numbered and
  journaled like any line, and kept in the ticket, it reaches the members and the watchers and never
  the visitor (not live, not in a resume's replay, not in the visitor's history). A watcher whose
  queue is full is dropped like any slow consumer (its outbox forgets it).
- After each batch of messages the session leaves the newest one's time on the desk board, and
  only while a supervisor's desk is open does the router hear of it (`Activity`, with
  `send_nowait`, dropped when the router is busy): nobody watching, no message is built.
- On Finish the session writes the chat's one ticket (awaiting the store is allowed: the store is a
  leaf), tells everyone the chat ended, tells the router it is closed, and stops. Storing the
  ticket deletes the chat's journal in the same transaction.
- If the session fails instead (its ticket could not be written after the retries, or a bug), it
  still tells everyone the chat ended, with reason `crashed`, before it stops; the router then
  stores what the session held as a failed ticket. Nobody is left in a chat that is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import structlog
import trio

from ..model.errors import EngineError
from ..model.events import (
    ChatEnded,
    ChatMessage,
    Event,
    Queued,
    SystemEvent,
    Typing,
    WhisperMessage,
)
from ..model.records import (
    WHISPER,
    EndReason,
    Entry,
    Finish,
    Ticket,
    Visitor,
    for_visitor,
)
from ..store.contract import Store
from ..store.journal import entries_by_client_id
from . import messages as m
from .deskboard import DeskBoard
from .outbox import Outbox, Outlet

log = structlog.get_logger("helpline.session")

_SAY_BATCH: Final = 64  # messages waiting in the mailbox that are written in one job


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
        store: Store,
        wall: Callable[[], float],
        store_retries: int,
        entries: Sequence[Entry] = (),
        members: dict[str, tuple[str, Outbox]] | None = None,
        journal: bool = True,
        watch_silence: Callable[[], bool] | None = None,
        desk_board: DeskBoard | None = None,
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
        self._journal = journal
        self.entries: list[Entry] = list(entries)  # a restored chat starts with its transcript
        self._members: dict[str, tuple[str, Outbox]] = dict(members or {})
        self._watchers: dict[str, Outbox] = {}  # supervisors monitoring the chat
        self._names: dict[str, str] = {}  # whisper authors' display names
        self._client_ids = entries_by_client_id(self.entries)
        self._unsaved: list[Entry] = []  # lines not in the journal yet (the newest lines)
        # lines waiting for their write: the event, its outboxes, the outlet that gets no echo
        self._held: list[tuple[Entry, Event, list[Outbox], Outlet | None]] = []
        self._saying: list[m.Say] = []  # the messages being written (answered if this crashes)
        self._log = log.bind(chat_id=chat_id, department=department)
        # Whether the router wants to hear that the visitor waits for an answer (see `_awaiting`).
        self._watch_silence = watch_silence or (lambda: False)
        self._waiting = False
        self._desk = desk_board or DeskBoard()
        said = [e.at for e in self.entries if e.kind == "message"]
        if said:  # a restored chat: the desk knows its last line before anyone writes again
            self._desk.last_lines[chat_id] = said[-1]

    async def run(self) -> None:
        async with self._inbox:
            try:
                await self._serve()
            except Exception:
                # A crash (also a ticket the store refused every time): everyone still learns how
                # the chat ended; the router stores what this session held as a failed ticket.
                self._tell_ended(EndReason.CRASHED.value, None)
                for say in self._saying:
                    m.answer(say.reply, EngineError("chat_ended", "this chat has ended"))
                self._refuse_the_rest()
                raise
            self._refuse_the_rest()

    async def _serve(self) -> None:
        ahead: m.ToSession | None = None
        while True:
            if ahead is not None:
                msg, ahead = ahead, None
            else:
                try:
                    msg = await self._inbox.receive()
                except trio.EndOfChannel:
                    break
            if isinstance(msg, Finish):
                await self._finish(msg)
                break
            if not isinstance(msg, m.Say):
                await self._handle(msg)
                continue
            says = [msg]  # take the messages already waiting too: they share one write
            while len(says) < _SAY_BATCH:
                try:
                    more = self._inbox.receive_nowait()
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
                if not isinstance(more, m.Say):
                    ahead = more
                    break
                says.append(more)
            await self._say_all(says)

    def _refuse_the_rest(self) -> None:
        """Answer every ask still queued when the session stops; the mailbox closes right after."""
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
            case m.SetTyping(author=author, on=on, reply=reply):
                member = author == "visitor" or author in self._members
                if member:
                    self._fan_out(Typing(chat_id=self.chat_id, author=author, on=on), skip=author)
                if reply is not None:
                    m.answer(reply, None if member else EngineError("not_in_chat", "not in chat"))
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
                self._system(event, agent=agent_id, detail=detail)
                self._members.pop(agent_id, None)
            case m.Notice(event=event, agent=agent, detail=detail):
                self._system(event, agent=agent, detail=detail)
            case m.QueuePosition(position=position, eta=eta):
                self._visitor.push(Queued(chat_id=self.chat_id, position=position, eta=eta))
            case m.History(reader=reader, after_seq=after):
                lines = tuple(e for e in self.entries if e.seq > after)
                if reader == "visitor":
                    m.answer(msg.reply, for_visitor(lines))
                elif reader not in self._members:
                    m.answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
                else:
                    m.answer(msg.reply, lines)
            case m.Watch(watcher=watcher, outbox=outbox):
                outbox.replay(self._event_of(entry) for entry in self.entries)
                self._watchers[watcher] = outbox
                m.answer(msg.reply, self._last_seq())
            case m.Unwatch(watcher=watcher):
                self._watchers.pop(watcher, None)
            case m.Whisper(author=author, name=name, text=text, reply=reply):
                self._names[author] = name
                entry = self._line(WHISPER, author, text)
                if await self._write():
                    self._deliver()
                    m.answer(reply, entry.seq)
                    return
                self.entries.remove(entry)
                self._unsaved.remove(entry)
                self._held = [held for held in self._held if held[0] is not entry]
                m.answer(
                    reply,
                    EngineError("store_unavailable", "the whisper was not saved; send it again"),
                )
        if self._held:  # system lines: shown even if their write failed (see the docstring)
            await self._write()
            self._deliver()

    async def _say_all(self, says: list[m.Say]) -> None:
        """Append messages, write them in one job, then acknowledge and fan them out."""
        self._saying = says  # left in place by a crash, for run() to answer
        await self._say_written(says)
        self._saying = []

    async def _say_written(self, says: list[m.Say]) -> None:
        first = len(self.entries)
        results = [(say.reply, self._say(say)) for say in says]
        if await self._write():
            self._deliver()
            for reply, result in results:
                m.answer(reply, result)
            if len(self.entries) > first:
                self._activity(self.entries[-1].at)
            await self._awaiting(says, results)
            return
        new = self.entries[first:]  # not stored: as if they never came
        del self.entries[first:]
        del self._unsaved[len(self._unsaved) - len(new) :]
        self._held.clear()
        for entry in new:
            self._client_ids.pop(entry.client_msg_id, None)
        refused = EngineError(
            "store_unavailable",
            "the message was not saved (the database is failing); send it again",
        )
        last = self._last_seq()
        for reply, result in results:
            failed = isinstance(result, int) and result > last
            m.answer(reply, refused if failed else result)

    async def _awaiting(
        self, says: list[m.Say], results: list[tuple[m.Reply, int | EngineError]]
    ) -> None:
        """Tell the router when the visitor starts waiting for an answer and when an agent gives
        one (only the changes, and only while its department reassigns silent chats)."""
        waiting = self._waiting
        for say, (_, result) in zip(says, results, strict=True):
            if isinstance(result, int):
                waiting = say.author == "visitor"
        if waiting != self._waiting and (self._waiting or self._watch_silence()):
            self._waiting = waiting
            await self._router.send(m.AwaitingReply(chat_id=self.chat_id, waiting=waiting))

    def _say(self, msg: m.Say) -> int | EngineError:
        if msg.author != "visitor" and msg.author not in self._members:
            return EngineError("not_in_chat", "you are not in that chat")
        if msg.client_msg_id and msg.client_msg_id in self._client_ids:
            return self._client_ids[msg.client_msg_id]  # a resend: already in the transcript
        entry = self._line("message", msg.author, msg.text, msg.client_msg_id, msg.origin)
        if msg.client_msg_id:
            self._client_ids[msg.client_msg_id] = entry.seq
        return entry.seq

    async def _write(self) -> bool:
        """Journal the lines not written yet; False if the store failed."""
        if not self._journal or not self._unsaved:
            self._unsaved.clear()
            return True
        lines = list(self._unsaved)
        try:
            await self._store.append_entries(self.chat_id, lines)
        except Exception as exc:
            self._log.warning("lines_not_stored", lines=len(lines), error=repr(exc))
            return False
        del self._unsaved[: len(lines)]
        return True

    def _deliver(self) -> None:
        held, self._held = self._held, []
        for _, event, outboxes, origin in held:
            for outbox in outboxes:
                outbox.push(event, origin)

    def _activity(self, at: float) -> None:
        self._desk.last_lines[self.chat_id] = at
        if not self._desk.watchers:
            return  # no desk open: nothing to build
        try:
            self._router.send_nowait(m.Activity(chat_id=self.chat_id, at=at))
        except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # only the desk's last message time is late

    def _last_seq(self) -> int:
        return self.entries[-1].seq if self.entries else 0

    def _line(
        self,
        kind: str,
        author: str,
        text: str = "",
        client_msg_id: str = "",
        origin: Outlet | None = None,
    ) -> Entry:
        """Append a line; it reaches the participants of this moment (but `origin`) once it is
        written."""
        entry = Entry(
            seq=self._last_seq() + 1,
            at=self._wall(),
            kind=kind,
            author=author,
            text=text,
            client_msg_id=client_msg_id,
        )
        self.entries.append(entry)
        event = self._event_of(entry)
        outboxes = [outbox for _, outbox in self._members.values()]
        outboxes += self._watchers.values()
        if kind != WHISPER:
            outboxes.append(self._visitor)
        if not self._journal:  # nothing to wait for
            for outbox in outboxes:
                outbox.push(event, origin)
            return entry
        self._unsaved.append(entry)
        self._held.append((entry, event, outboxes, origin))
        return entry

    def _system(self, event: str, *, agent: str = "", detail: str = "") -> None:
        if event:
            self._line(event, agent or "system", detail)

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
        if entry.kind == WHISPER:
            return WhisperMessage(
                chat_id=self.chat_id,
                seq=entry.seq,
                at=entry.at,
                author=entry.author,
                author_name=self._names.get(entry.author, entry.author),
                text=entry.text,
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
        for outbox in self._watchers.values():
            outbox.push(event)

    def _join(self, msg: m.Join) -> None:
        # the newcomer sees the conversation so far, in order
        msg.outbox.replay(self._event_of(entry) for entry in self.entries)
        if not msg.event:  # a member's new connection (a supervisor after a restart): no line
            self._members[msg.agent_id] = (msg.name, msg.outbox)
        elif msg.replaces:
            self._system(msg.event, agent=msg.agent_id, detail=msg.detail)
            self._members.pop(msg.replaces, None)
            self._members[msg.agent_id] = (msg.name, msg.outbox)
        else:
            self._members[msg.agent_id] = (msg.name, msg.outbox)
            self._system(msg.event, agent=msg.agent_id, detail=msg.detail)

    def _attach(self, msg: m.Attach) -> bool:
        """Switch the visitor to a new outlet; returns whether the visitor had been gone."""
        was_gone = not self._visitor.outlets
        for old in self._visitor.outlets:
            old.close()
        self._visitor.outlets.clear()
        missed = for_visitor([e for e in self.entries if e.seq > msg.last_seq])
        msg.outlet.replay(self._event_of(e) for e in missed)
        self._visitor.add(msg.outlet)
        m.answer(msg.reply, self._last_seq())
        return was_gone

    async def _finish(self, msg: Finish) -> None:
        self._system("ended", detail=msg.reason)  # shown once the ticket holding it is stored
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
        self._unsaved.clear()
        self._deliver()
        self._tell_ended(msg.reason, ticket_id, msg.opens_at)
        await self._router.send(m.SessionClosed(chat_id=self.chat_id, ticket_id=ticket_id))

    def _tell_ended(
        self, reason: str, ticket_id: int | None, opens_at: float | None = None
    ) -> None:
        """Tell the visitor and every agent in the chat that it is over, and let the visitor go."""
        self._held.clear()  # after a crash, lines still waiting for their write are not shown
        self._fan_out(
            ChatEnded(chat_id=self.chat_id, reason=reason, ticket_id=ticket_id, opens_at=opens_at)
        )
        for outlet in self._visitor.outlets:
            outlet.close()

    def ticket(self, msg: Finish) -> Ticket:
        """The chat's ticket as the router's Finish describes it."""
        return msg.ticket(
            chat_id=self.chat_id,
            department=self.department,
            question=self.question,
            visitor=self.visitor,
            entries=self.entries,
            started_at=self.started_at,
            ended_at=self._wall(),
        )

    def snapshot(self) -> Ticket:
        """What this session holds, as a failed-chat ticket (the router fills in the rest)."""
        return self.ticket(Finish.crashed())
