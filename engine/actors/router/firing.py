"""Timers are data (Rule 3): what each kind of deadline does when it fires.

Keys are `(kind, id)`: an offer's window, a queue wait, a delayed ending, a visitor's or an agent's
grace, a tell waiting for room in a session's mailbox, the journal retry, the end of a chat's
skills wait, and an owner's silence.
"""

from __future__ import annotations

from typing import Any

import structlog

from ...model.chatstate import ChatState
from ...model.records import (
    EndReason,
    TicketKind,
)
from .presence import Presence

log = structlog.get_logger("helpline.router")


class Firing(Presence):
    """Handle a fired timer like a message."""

    def _fire(self, key: Any) -> None:
        what, ident = key
        if what == "offer":
            offer = self._offers.get(ident)
            if offer is not None:
                self._offer_lapsed(offer, set(offer.agents), "expired")
        elif what == "queue":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is ChatState.QUEUED:
                self._finish(chat, self._kind(chat), EndReason.QUEUE_TIMEOUT)
        elif what == "end":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is ChatState.ENDING:
                self._finish(chat, TicketKind.TRANSCRIPT, EndReason.AGENT_ENDED)
        elif what == "visitor":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is not ChatState.CLOSING:
                self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT)
        elif what == "agent":
            agent = self._agents.get(ident)
            if agent is not None and not agent.connected:
                agent.grace = agent.recovering = False
                self._touch_agent(agent)
                self._release_agent(agent, "disconnected")
        elif what == "tell":
            chat = self._chats.get(ident)
            if chat is not None:
                self._send_tells(chat)
        elif what == "retry":
            self._retry_journal()
        elif what == "skills":
            chat = self._chats.get(ident)
            if chat is not None and chat.state is not ChatState.CLOSING and not chat.relaxed:
                chat.relaxed = True
                self._touch(chat)
                self._step(chat, "skills_relaxed", "no agent with the skills took it in time")
                self._dirty.add(chat.department)
        elif what == "silence":
            chat = self._chats.get(ident)
            if chat is not None:
                self._owner_silent(chat)
