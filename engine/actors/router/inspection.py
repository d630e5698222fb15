"""Read-only answers: views of the router's records, live chats, available agents, chat info.

Nothing here changes a record, so nothing here is journaled.
"""

from __future__ import annotations

import structlog

from ...model.chatstate import ChatState
from ...model.errors import EngineError
from ...model.records import (
    Visitor,
)
from ...model.views import AgentView, Availability, ChatSummary, ChatView, LiveChat, RouterView
from .. import messages as m
from .durability import Durability
from .state import (
    AgentState,
    Chat,
)

log = structlog.get_logger("helpline.router")


class Inspection(Durability):
    """Answer questions about the router's records without changing them."""

    def _available_agents(self, msg: m.AvailableAgents) -> None:
        if msg.department and msg.department not in self._depts:
            self._answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        agents = self._members_of(msg.department) if msg.department else self._agents.values()
        self._answer(
            msg.reply,
            tuple(
                Availability(
                    id=a.id,
                    name=a.name,
                    departments=a.departments,
                    load=a.load,
                    capacity=a.capacity,
                )
                for a in sorted(agents, key=lambda a: (a.load, a.name))
                if a.can_take()
            ),
        )

    def _chat_info(self, msg: m.ChatInfo) -> None:
        chat = self._chats.get(msg.chat_id)
        offered = chat is not None and any(
            msg.agent_id in self._offers[o].agents for o in (chat.offer, chat.handoff) if o
        )
        if chat is None or not (msg.agent_id in chat.members or offered):
            self._answer(
                msg.reply, EngineError("not_in_chat", "you are not in, or offered, that chat")
            )
            return
        self._answer(
            msg.reply,
            (
                chat.visitor,
                self._summary(chat),
                tuple(
                    self._summary(c)
                    for c in self._chats.values()
                    if c is not chat and _same_visitor(c.visitor, chat.visitor)
                ),
            ),
        )

    @staticmethod
    def _summary(chat: Chat) -> ChatSummary:
        return ChatSummary(
            chat_id=chat.id,
            department=chat.department,
            question=chat.question,
            started_at=chat.started_at,
            state=chat.state.value,
            agents=tuple(chat.ever),
        )

    def _live_chats(self, msg: m.LiveChats) -> None:
        self._answer(
            msg.reply,
            tuple(
                LiveChat(
                    chat_id=c.id,
                    department=c.department,
                    question=c.question,
                    visitor=c.visitor,
                    started_at=c.started_at,
                    resume_key=c.resume_key,
                )
                for c in self._chats.values()
                if c.state is not ChatState.CLOSING
            ),
        )

    def _inspect(self, msg: m.Inspect) -> None:
        if msg.chat_id:
            chat = self._chats.get(msg.chat_id)
            self._answer(msg.reply, self._chat_view(chat) if chat is not None else None)
        elif msg.agent_id:
            agent = self._agents.get(msg.agent_id)
            self._answer(msg.reply, self._agent_view(agent) if agent is not None else None)
        else:
            self._answer(msg.reply, self.view())

    def view(self) -> RouterView:
        """A consistent picture of ownership, capacity, offers and queues."""
        return RouterView(
            chats={c.id: self._chat_view(c) for c in self._chats.values()},
            agents={a.id: self._agent_view(a) for a in self._agents.values()},
            queues={d.config.id: tuple(d.queue) for d in self._depts.values()},
            timers=len(self._timers),
        )

    def _chat_view(self, c: Chat) -> ChatView:
        return ChatView(
            id=c.id,
            department=c.department,
            state=c.state.value,
            owner=c.owner,
            members=tuple(c.members),
            offer_agents=tuple(sorted(self._offers[c.offer].agents)) if c.offer else (),
            handoff=c.handoff,
        )

    @staticmethod
    def _agent_view(a: AgentState) -> AgentView:
        return AgentView(
            id=a.id,
            status=a.status.value,
            connected=a.connected,
            capacity=a.capacity,
            chats=tuple(sorted(a.chats)),
            offers=tuple(sorted(a.offers)),
            departments=a.departments,
            recovering=a.recovering,
        )


def _same_visitor(a: Visitor, b: Visitor) -> bool:
    """A returning visitor is recognised by its verified identity only (an email is a claim)."""
    return bool(a.visitor_id) and a.visitor_id == b.visitor_id
