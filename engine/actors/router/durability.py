"""Decided, then durable, then seen (Rules 5 and 6): the journal write of each loop iteration.

The records a handler changed are collected (`touch`), written in one job at the end of the
iteration, and the effects the iteration held back are released once that job has committed. A
failed write keeps what it covered and writes it again when the retry timer fires.

A failure is transient unless it says otherwise: a lost connection, a busy or full store, a
database restarting are retried every `_JOURNAL_RETRY` seconds until a write succeeds. A refusal
that no retry can change is permanent (`PERMANENT`, by the StoreError's code): `lease_lost` (several
nodes: another node holds the routing lease, is refused nothing, and restores the desk from what
this node committed) and `over_capacity` (a claim refused, store.journal Rule 6; the router's own
batches carry no claims, so none should see it). What a permanently refused write covered is
dropped and logged (`journal_write_refused`), never retried; its answers were told
`store_unavailable` when its batch was released.

The webhook events the iteration decided (`_emit`, model.desk_events) travel in the same job, so
the store queues them in the transaction that commits their decisions; a failed write keeps them,
in order, for the retry, and a refused chat's events are dropped with it (`_abandon`). With the
journal off nothing waits for a write, and the events go to the store on their own.
"""

from __future__ import annotations

from functools import partial

import structlog
import trio

from ...model.chatstate import ChatState
from ...store import journal, seats
from ...store import traces as trace_rows
from ..effects import Batch
from .recorder import Recorder
from .state import (
    Chat,
    Unwritten,
)

log = structlog.get_logger("helpline.router")

_JOURNAL_RETRY = 1.0  # seconds before records whose journal write failed are written again

#: StoreError codes of refusals that a retry cannot change (see the module's docstring).
PERMANENT: frozenset[str] = frozenset({"lease_lost", seats.OVER_CAPACITY})


def permanent(outcome: object) -> bool:
    """Whether a failed write was refused for good (no retry can make it succeed)."""
    return isinstance(outcome, BaseException) and getattr(outcome, "code", "") in PERMANENT


class Durability(Recorder):
    """Write what each iteration changed, and release its effects once that is committed."""

    def _flush(self) -> None:
        """End of an iteration: write what changed; its effects wait for the commit.

        Effects that wait for no write go out at once if nothing before them is still waiting
        (releasing a committed batch changes nothing the journal holds).
        """
        if not self._journal and self._desk_events:
            self._queue_events_alone()
        job = self._journal_job()
        batch = self._effects.seal(job)
        if batch is not None:
            assert job is not None
            self._store.submit_journal(job, partial(self._effects.committed, batch))
        elif self._effects.ready():
            self._release_due()
        if self._trace_rows:  # no write this iteration to go with: written on their own
            rows = self._take_trace_rows()
            self._store.submit_journal(
                journal.JournalBatch(traces=rows), partial(self._traces_written, rows)
            )

    def _traces_written(self, rows: tuple[trace_rows.TraceRow, ...], outcome: object) -> None:
        """Traces are not decisions: nobody waits for them, and a failed write is tried again
        with the journal's next retry."""
        if isinstance(outcome, BaseException):
            log.warning("traces_not_stored", error=repr(outcome), chats=len(rows))
            if permanent(outcome):
                return
            self._unwritten.traces.update((row[0], row) for row in rows)
            if ("retry", "") not in self._timers:
                self._timers.set(("retry", ""), trio.current_time() + _JOURNAL_RETRY)

    def _queue_events_alone(self) -> None:
        """Journal off: nothing decided here is durable before it is seen, so webhook events are
        handed to the store on their own, with the traces of the chats that finished, and nothing
        waits for them (a failure is logged; the traces are tried again)."""
        events = tuple(self._desk_events)
        self._desk_events.clear()
        rows = self._take_trace_rows()

        def done(outcome: object) -> None:
            if isinstance(outcome, BaseException):
                log.error("webhook_events_not_queued", error=repr(outcome), events=len(events))
            if rows:
                self._traces_written(rows, outcome)

        self._store.submit_journal(journal.JournalBatch(events=events, traces=rows), done)

    def _journal_job(self) -> journal.JournalBatch | None:
        events = tuple(self._desk_events)  # queued by the same transaction as the records
        self._desk_events.clear()
        if not (self._journal and (self._touched or self._touched_agents or self._forgotten)):
            self._touched.clear()  # not journaled: nothing to write for them
            self._touched_agents.clear()
            self._forgotten.clear()
            if not (self._presence or self._failed_tickets or events):
                return None  # finished chats' traces wait for a write, or go on their own
        chats: tuple[journal.ChatRow, ...] = ()
        members: tuple[tuple[str, tuple[str, ...]], ...] = ()
        reserved: tuple[tuple[str, tuple[str, ...]], ...] = ()
        graces: tuple[tuple[str, float | None], ...] = ()
        if self._journal:
            live = [self._chats[c] for c in self._touched if c in self._chats]
            chats = tuple(journal.chat_row(self._record_of(chat)) for chat in live)
            members = tuple((chat.id, tuple(chat.members)) for chat in live)
            reserved = tuple((c.id, agents) for c in live if (agents := self._reserving(c)))
            graces = tuple((a, self._grace_until(a)) for a in self._touched_agents)
        presence = tuple(
            (a.id, a.status, a.ringtone)
            for a in map(self._agents.get, self._presence)
            if a is not None
        )
        tickets = tuple(self._failed_tickets.values())
        forget = tuple(sorted(self._forgotten))
        traces = self._take_trace_rows()
        self._touched.clear()
        self._touched_agents.clear()
        self._presence.clear()
        self._failed_tickets.clear()
        self._forgotten.clear()
        if not (chats or graces or presence or tickets or forget or traces or events):
            return None
        return journal.JournalBatch(
            chats=chats,
            graces=graces,
            presence=presence,
            tickets=tickets,
            forget=forget,
            traces=traces,
            events=events,
            members=members,
            reserved=reserved,
        )

    def _reserving(self, chat: Chat) -> tuple[str, ...]:
        """The agents the chat's open offer (a chat offer, or a transfer or invite) is made to:
        each holds a seat in it (journal Rule 6)."""
        offer = self._offers.get(chat.offer or chat.handoff)
        return tuple(sorted(offer.agents)) if offer is not None else ()

    def _seated(self, job: journal.JournalBatch, refused: object) -> None:
        """A write that reserved offers' seats committed: the accepts of those not refused
        need no claim of their own (handshakes)."""
        no = set(refused) if isinstance(refused, tuple) else set()
        by_chat = dict(job.reserved)
        for row in job.chats:
            offer = self._offers.get(row.offer_id or row.handoff_id or "")
            if offer is not None:
                offer.seated.update(
                    a for a in by_chat.get(row.chat_id, ()) if (row.chat_id, a) not in no
                )

    def _release_due(self) -> None:
        for batch in self._effects.due():
            if batch.failed:
                self._journal_failed(batch)
            elif isinstance(batch.job, journal.JournalBatch) and batch.job.reserved:
                self._seated(batch.job, batch.outcome)
            self._effects.release(batch)

    def _journal_failed(self, batch: Batch) -> None:
        """Keep what the write covered, to be written again when the retry timer fires.

        Not at once: the store is failing, and rewriting in the iteration the failure wakes
        would spin. A new change to a chat writes that chat's record again anyway.
        """
        job = batch.job
        assert isinstance(job, journal.JournalBatch)
        if permanent(batch.outcome):
            log.error("journal_write_refused", error=repr(batch.outcome), chats=len(job.chats))
            return
        log.error("journal_write_failed", error=repr(batch.outcome), chats=len(job.chats))
        u = self._unwritten
        u.chats.update(row.chat_id for row in job.chats)
        u.agents.update(agent_id for agent_id, _ in job.graces)
        u.presence.update(agent_id for agent_id, _, _ in job.presence)
        u.tickets.update((t.chat_id, t) for t in job.tickets)
        u.forgotten.update(job.forget)
        u.traces.update((row[0], row) for row in job.traces)
        u.events.extend(job.events)  # batches are released in order: so are their events
        if ("retry", "") not in self._timers:
            self._timers.set(("retry", ""), trio.current_time() + _JOURNAL_RETRY)

    def _retry_journal(self) -> None:
        """Mark what failed to be written as changed again: it goes with this iteration's write."""
        u, self._unwritten = self._unwritten, Unwritten()
        self._touched |= u.chats
        self._touched_agents |= u.agents
        self._presence |= u.presence
        self._forgotten |= u.forgotten
        # Ahead of the events decided since. One case can still reorder a chat's events: a
        # write that fails while the next one, already handed over, commits.
        self._desk_events[:0] = u.events
        for chat_id, ticket in u.tickets.items():
            self._failed_tickets.setdefault(chat_id, ticket)
        for chat_id, row in u.traces.items():
            self._trace_rows.setdefault(chat_id, row)

    def _grace_until(self, agent_id: str) -> float | None:
        agent = self._agents.get(agent_id)
        return self._to_wall(("agent", agent_id)) if agent is not None and agent.grace else None

    def _record_of(self, chat: Chat) -> journal.ChatRecord:
        return journal.ChatRecord(
            chat_id=chat.id,
            department=chat.department,
            question=chat.question,
            visitor=chat.visitor,
            started_at=chat.started_at,
            resume_key=chat.resume_key,
            state=chat.state,
            owner=chat.owner,
            members=tuple(chat.members),
            ever=tuple(chat.ever),
            tried=tuple(sorted(chat.tried)),
            handoffs=tuple(chat.handoffs),
            accepted_at=chat.accepted_at,
            queue_key=chat.queue_key if chat.state is ChatState.QUEUED else None,
            offer=self._offer_record(chat.offer),
            handoff=self._offer_record(chat.handoff),
            queue_deadline=self._to_wall(("queue", chat.id)),
            end_deadline=self._to_wall(("end", chat.id)),
            visitor_deadline=self._to_wall(("visitor", chat.id)),
            finish=chat.final,
            skills=chat.skills,
            relaxed=chat.relaxed,
            tags=tuple(chat.tags),
            overflowed=tuple(chat.overflowed),
            barged=tuple((s, name) for s, (name, _) in chat.barged.items()),
            silence_deadline=self._to_wall(("silence", chat.id)),
            reassigning=chat.reassigning,
        )

    def _offer_record(self, offer_id: str) -> journal.OfferRecord | None:
        offer = self._offers.get(offer_id) if offer_id else None
        if offer is None:
            return None
        deadline = self._to_wall(("offer", offer.id))
        return journal.OfferRecord(
            id=offer.id,
            kind=offer.kind,
            agents=tuple(sorted(offer.agents)),
            offered=tuple(sorted(offer.offered)),
            from_agent=offer.from_agent,
            to_department=offer.to_department,
            target=offer.target,
            note=offer.note,
            deadline=self._wall() if deadline is None else deadline,
        )
