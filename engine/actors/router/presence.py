"""Agents' presence for routing (Rule 7): status, connections, the disconnect grace, releasing
what a gone agent held; a crashed actor (an agent's is a disconnect, a session's a failed chat);
and agents and departments being added, changed or removed.
"""

from __future__ import annotations

from functools import partial

import structlog
import trio

from ...model.chatstate import ChatEvent
from ...model.errors import EngineError
from ...model.events import (
    ChatAssigned,
    Event,
    StatusChanged,
)
from ...model.records import (
    AgentStatus,
    EndReason,
    Ticket,
    TicketKind,
)
from .. import messages as m
from ..outbox import Outlet
from .state import (
    AgentState,
    Chat,
    DeptState,
)
from .visitors import Visitors

log = structlog.get_logger("helpline.router")


class Presence(Visitors):
    """Follow agents' status and connections, crashed actors, and directory changes."""

    def _set_presence(self, msg: m.SetPresence) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            self._answer(msg.reply, EngineError("not_found", f"no agent {msg.agent_id!r}"))
            return
        status = agent.status if msg.status is None else msg.status
        ringtone = agent.ringtone if msg.ringtone is None else msg.ringtone
        if status is AgentStatus.ONLINE and agent.status is not AgentStatus.ONLINE:
            off = [d for d in agent.departments if not self._dept_chat_on(d)]
            if len(off) == len(agent.departments):
                self._answer(
                    msg.reply,
                    EngineError(
                        "chat_off",
                        f"chat is switched off for {', '.join(off) or 'all your departments'};"
                        " an administrator must switch it on before you can go online",
                    ),
                )
                return
        went_offline = agent.status is AgentStatus.ONLINE and status is AgentStatus.OFFLINE
        if status is not agent.status:
            self.stats.presence_changes += 1
        agent.status, agent.ringtone = status, ringtone
        self._presence.add(agent.id)  # stored with this iteration's journal write
        self._touches += 1
        if went_offline:
            self._withdraw_agent_offers(agent, "offline")
        elif status is AgentStatus.ONLINE:
            self._dirty.update(agent.departments)
        self._push(agent, StatusChanged(status=status.value, ringtone=ringtone))
        log.info("presence", agent_id=agent.id, status=status.value, ringtone=ringtone)
        self._answer(msg.reply, (status, ringtone))

    def _connected(self, msg: m.Connected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        if not msg.first and msg.outlet is not None:  # another tab: show it the open offers
            outlet, now = msg.outlet, trio.current_time()
            for offer_id in sorted(agent.offers):
                offer = self._offers[offer_id]
                deadline = self._timers.deadline(("offer", offer_id))
                window = max(0.0, (deadline if deadline is not None else now) - now)
                event = self._offer_event(offer, self._chats[offer.chat_id], agent, window)
                self._effects.do(partial(_push_to, outlet, event))
            return
        agent.connected = True
        self.stats.presence_changes += 1
        if agent.grace:
            agent.grace = False
            self._timers.cancel(("agent", agent.id))
            self._touch_agent(agent)
        if agent.recovering:  # the first connection after a restart: say what the agent holds
            agent.recovering = False
            for chat_id in sorted(agent.chats):
                role = "owner" if self._chats[chat_id].owner == agent.id else "invitee"
                self._push(agent, ChatAssigned(chat_id=chat_id, role=role))
        now = trio.current_time()
        for offer_id in sorted(agent.offers):  # only offers restored at start are still open here
            offer = self._offers[offer_id]
            deadline = self._timers.deadline(("offer", offer_id))
            window = max(0.0, (deadline if deadline is not None else now) - now)
            self._push(agent, self._offer_event(offer, self._chats[offer.chat_id], agent, window))
        self._dirty.update(agent.departments)

    def _disconnected(self, msg: m.Disconnected) -> None:
        agent = self._agents.get(msg.agent_id)
        if agent is None:
            return
        agent.connected = False
        self.stats.presence_changes += 1
        self._withdraw_agent_offers(agent, "disconnected")
        if agent.chats:
            self._timers.set(("agent", agent.id), trio.current_time() + self._agent_grace)
            agent.grace = True
            self._touch_agent(agent)

    def _withdraw_agent_offers(self, agent: AgentState, why: str) -> None:
        for offer_id in list(agent.offers):
            self._offer_lapsed(self._offers[offer_id], {agent.id}, why)

    def _release_agent(self, agent: AgentState, why: str) -> None:
        """Take every chat away from an agent that is gone: invitees leave, owned chats requeue."""
        self._withdraw_agent_offers(agent, why)
        for offer in [o for o in self._offers.values() if o.from_agent == agent.id]:
            self._end_handoff(self._chats[offer.chat_id], "cancelled")
        for chat_id in list(agent.chats):
            chat = self._chats[chat_id]
            if chat.owner != agent.id:
                self._part(chat, agent, "left", why)
                continue
            if chat.handoff:
                self._end_handoff(chat, "cancelled")
            others = [a for a in chat.members if a != agent.id]
            self._part(chat, agent, "requeued" if not others else "left", why)
            if others:
                chat.owner = others[0]
                self._push(self._agents[chat.owner], ChatAssigned(chat_id=chat.id, role="owner"))
                continue
            chat.owner = ""
            dept = self._depts[chat.department]
            self._enqueue(chat, dept, front=True, event=ChatEvent.OWNER_LOST)
            self._dirty.add(chat.department)

    def _actor_down(self, msg: m.ActorDown) -> None:
        if msg.kind == "agent":
            agent = self._agents.get(msg.name)
            if agent is not None and agent.connected:
                self._disconnected(m.Disconnected(agent_id=msg.name))
            return
        if msg.kind != "session":
            return
        chat = self._chats.pop(msg.name, None)
        if chat is None:
            self._forget_trace(msg.name)
            return  # it closed normally
        log.error("session_lost", chat_id=chat.id, department=chat.department)
        self._drop_tells(chat)
        for reply in chat.waiters:
            self._answer(reply, EngineError("internal", "the chat failed; it is saved as failed"))
        if self._allowed(chat, ChatEvent.FINISH):
            self._finish(chat, TicketKind.FAILED, EndReason.CRASHED)
        if msg.snapshot is not None:
            # Stored with the journal write (retried like it), which also ends the chat's
            # journal: a crashed chat becomes its failed ticket and nothing else.
            self._failed_tickets[chat.id] = _failed_ticket(msg.snapshot, chat, self._wall())
        self._forget_trace(chat.id)  # written with the journal write (`_finish`)
        self._maybe_stopped()

    def _department_changed(self, msg: m.DepartmentChanged) -> None:
        d = msg.department
        self.stats.presence_changes += 1
        dept = self._depts.setdefault(d.id, DeptState(config=d))
        dept.config = d
        if not d.chat_enabled:
            for chat_id in list(dept.queue):
                chat = self._chats[chat_id]
                self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
        self._dirty.add(d.id)

    def _agent_changed(self, msg: m.AgentChanged) -> None:
        agent = self._agents.get(msg.agent_id)
        self.stats.presence_changes += 1
        if msg.removed:
            if agent is not None:
                agent.status = AgentStatus.OFFLINE
                self._release_agent(agent, "removed")
                if agent.grace:
                    agent.grace = False
                    self._timers.cancel(("agent", agent.id))
                    self._touch_agent(agent)
                del self._agents[agent.id]
            return
        if agent is None:
            assert msg.outbox is not None
            agent = AgentState(
                id=msg.agent_id,
                name=msg.name,
                departments=msg.departments,
                capacity=msg.capacity,
                outbox=msg.outbox,
                skills=frozenset(msg.skills),
            )
            self._agents[agent.id] = agent
        else:
            agent.name, agent.departments, agent.capacity = msg.name, msg.departments, msg.capacity
            agent.skills = frozenset(msg.skills)
        self._dirty.update(agent.departments)


def _push_to(outlet: Outlet, event: Event) -> None:
    outlet.push(event)  # a slow outlet is closed by the push itself


def _failed_ticket(snapshot: Ticket, chat: Chat, now: float) -> Ticket:
    """What a crashed session held, with the router's record of the chat, as a failed ticket."""
    return chat.finish(TicketKind.FAILED, EndReason.CRASHED).ticket(
        chat_id=chat.id,
        department=chat.department,
        question=chat.question,
        visitor=chat.visitor,
        entries=snapshot.entries,
        started_at=chat.started_at,
        ended_at=now,
    )
