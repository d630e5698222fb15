"""Setting up before the loop runs: departments and agents from the store, and the live chats the
journal holds, rebuilt after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

import structlog
import trio

from ...model.chatstate import ChatState
from ...model.records import (
    AgentStatus,
    Department,
    EndReason,
    Entry,
)
from ...store import journal
from .. import messages as m
from ..outbox import Outbox
from .firing import Firing
from .state import (
    Chat,
    DeptState,
    PendingOffer,
)

log = structlog.get_logger("helpline.router")


class Restore(Firing):
    """Load the directory and rebuild live chats from the journal."""

    def load(self, departments: Iterable[Department], agents: Iterable[m.AgentChanged]) -> None:
        for d in departments:
            self._depts[d.id] = DeptState(config=d)
        for a in agents:
            self._agent_changed(a)

    def set_presence_now(self, agent_id: str, status: AgentStatus, ringtone: bool) -> None:
        a = self._agents[agent_id]
        a.status, a.ringtone = status, ringtone

    def restore(self, live: journal.LiveState) -> list[journal.JournaledChat]:
        """Rebuild the live chats the journal holds (after `load`, before `run`).

        Returns the chats that cannot be restored (their record does not parse, or names a
        department or agent that is gone); the caller stores each as a FAILED ticket.
        """
        broken: list[journal.JournaledChat] = []
        for item in live.chats:
            try:
                if item.record is None:
                    raise ValueError("only lines are left of it")
                record = journal.loads(item.chat_id, item.record)
                self._check_record(record)
            except ValueError as exc:
                log.error("chat_not_restorable", chat_id=item.chat_id, error=str(exc))
                broken.append(item)
                continue
            self._restore_chat(record, item.entries)
        now = trio.current_time()
        for dept in self._depts.values():
            queued = [c for c in self._chats.values() if c.department == dept.config.id]
            queued = [c for c in queued if c.state is ChatState.QUEUED]
            queued.sort(key=lambda c: c.queue_key or 0)
            dept.queue = deque(c.id for c in queued)
            self._queue_seq = max([self._queue_seq, *(c.queue_key or 0 for c in queued)])
        for agent in self._agents.values():
            # Nobody is connected yet: give everyone who was expected to be there their grace.
            until = live.graces.get(agent.id)
            if until is not None:
                deadline = self._from_wall(until)
            elif agent.status is AgentStatus.ONLINE or agent.chats or agent.offers:
                deadline = now + self._agent_grace
            else:
                continue
            agent.grace = agent.recovering = True
            self._timers.set(("agent", agent.id), deadline)
            self._touch_agent(agent)
        for chat in self._chats.values():
            if chat.final is not None:
                self._tell(chat, chat.final)
            elif ("visitor", chat.id) not in self._timers:  # and every visitor its grace
                self._timers.set(("visitor", chat.id), now + self._visitor_grace)
                self._touch(chat)
        for dept in self._depts.values():
            if not dept.config.chat_enabled:
                for chat_id in list(dept.queue):
                    chat = self._chats[chat_id]
                    self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
            self._dirty.add(dept.config.id)
        if self._journal:
            self._mirror_restored()
        log.info("chats_restored", chats=len(self._chats), failed=len(broken))
        return broken

    def _mirror_restored(self) -> None:
        """Seats as the restored records have them, their members' and their open offers'
        (store.journal, Rule 6): a seat claimed just before a crash, for an accept that was never
        recorded, is given back; a restored agent keeps its chats whatever its capacity now. The
        chats restoring touched get theirs with the first journal write; this is for the others."""
        restored = [c for c in self._chats.values() if c.id not in self._touched]
        members = tuple((c.id, tuple(c.members)) for c in restored)
        reserved = tuple((c.id, agents) for c in restored if (agents := self._reserving(c)))
        if not members:
            return

        def done(outcome: object) -> None:
            if isinstance(outcome, BaseException):
                log.warning("seats_not_mirrored", error=repr(outcome), chats=len(members))

        self._store.submit_journal(journal.JournalBatch(members=members, reserved=reserved), done)

    def _check_record(self, r: journal.ChatRecord) -> None:
        """Raise ValueError unless the record fits this engine's departments and agents."""
        if r.department not in self._depts:
            raise ValueError(f"no department {r.department!r}")
        offers = [o for o in (r.offer, r.handoff) if o is not None]
        named = {*r.members, *(a for o in offers for a in (*o.agents, *o.offered))}
        named |= {o.from_agent for o in offers if o.from_agent}
        if unknown := sorted(named - self._agents.keys()):
            raise ValueError(f"no agents {unknown}")
        if r.owner and r.owner not in r.members:
            raise ValueError("the owner is not in the chat")
        expected = {
            ChatState.QUEUED: r.queue_key is not None and not r.owner,
            ChatState.OFFERED: r.offer is not None and r.offer.kind == "chat" and not r.owner,
            ChatState.ACTIVE: bool(r.owner) and r.offer is None,
            ChatState.ENDING: bool(r.owner) and r.offer is None and r.handoff is None,
            ChatState.CLOSING: r.finish is not None,
        }
        if not expected.get(r.state, False):
            raise ValueError(f"the record does not fit its state {r.state}")
        if r.handoff is not None and r.handoff.kind not in ("transfer", "invite"):
            raise ValueError(f"a handoff of kind {r.handoff.kind!r}")

    def _restore_chat(self, r: journal.ChatRecord, entries: Sequence[Entry]) -> None:
        chat = Chat(
            id=r.chat_id,
            department=r.department,
            question=r.question,
            visitor=r.visitor,
            session=None,  # type: ignore[arg-type]  # set just below
            started_at=r.started_at,
            resume_key=r.resume_key,
            state=r.state,
            owner=r.owner,
            members=list(r.members),
            ever=list(r.ever),
            tried={a for a in r.tried if a in self._agents},
            handoffs=list(r.handoffs),
            accepted_at=r.accepted_at,
            queue_key=r.queue_key,
            final=r.finish,
            skills=r.skills,
            relaxed=r.relaxed,
            tags=list(r.tags),
            overflowed=list(r.overflowed),
            reassigning=r.reassigning,
        )
        if chat.state is not ChatState.CLOSING:  # a closing chat already gave its agents back
            for agent_id in chat.members:
                self._agents[agent_id].chats.add(chat.id)
        members = {a: (self._agents[a].name, self._agents[a].outbox) for a in chat.members}
        if chat.state is not ChatState.CLOSING:
            # Supervisors who barged in are still in it; their connections attach by barging
            # again (until then what the chat says to them is not kept).
            for supervisor, name in r.barged:
                chat.barged[supervisor] = (name, Outbox())
                members[supervisor] = chat.barged[supervisor]
        chat.session = self._spawn_session(chat, Outbox(), entries, members)
        self._chats[chat.id] = chat
        self._step(chat, "restored", f"restored at start as {chat.state}")
        if chat.state is not ChatState.CLOSING:
            self._arm_skills_timer(chat, self._depts[chat.department])
        for key, until in (
            ("queue", r.queue_deadline),
            ("end", r.end_deadline),
            ("visitor", r.visitor_deadline),
            ("silence", r.silence_deadline),
        ):
            if until is not None:
                self._timers.set((key, chat.id), self._from_wall(until))
        for o in (r.offer, r.handoff):
            if o is None or chat.state is ChatState.CLOSING:
                continue
            offer = PendingOffer(
                id=o.id,
                chat_id=chat.id,
                kind=o.kind,
                agents=set(o.agents),
                offered=frozenset(o.offered),
                from_agent=o.from_agent,
                to_department=o.to_department,
                target=o.target,
                note=o.note,
            )
            self._offers[offer.id] = offer
            self._timers.set(("offer", offer.id), self._from_wall(o.deadline))
            for agent_id in offer.agents:
                self._agents[agent_id].offers.add(offer.id)
            if offer.kind == "chat":
                chat.offer = offer.id
            else:
                chat.handoff = offer.id
