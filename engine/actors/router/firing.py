"""Timers are data (Rule 3): what each kind of deadline does when it fires.

Keys are `(kind, id)`: an offer's window, a queue wait, a delayed ending, a visitor's or an agent's
grace, a tell waiting for room in a session's mailbox, the journal retry, and a supervisor's desk
event.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from ...model.chatstate import ChatEvent
from ...model.records import (
    EndReason,
    TicketKind,
)
from .supervision import Supervision

log = structlog.get_logger("helpline.router")


class Firing(Supervision):
    """Handle a fired timer like a message."""

    def _timer_handlers(self) -> dict[str, Callable[[str], None]]:
        """What each kind of timer does; the key of a timer is (kind, id)."""
        return {
            "offer": self._offer_expired,
            "queue": self._queue_timeout,
            "end": self._end_due,
            "visitor": self._visitor_grace_over,
            "agent": self._agent_grace_over,
            "tell": self._tell_again,
            "retry": lambda _: self._retry_journal(),
            "desk": self._desk_fire,
        }

    def _offer_expired(self, offer_id: str) -> None:
        """Nobody answered within the offer's window: the chat moves on (see `routing`)."""
        offer = self._offers.get(offer_id)
        if offer is not None:
            self._offer_lapsed(offer, set(offer.agents), "expired")

    def _queue_timeout(self, chat_id: str) -> None:
        chat = self._chats.get(chat_id)
        if chat is not None and self._allowed(chat, ChatEvent.QUEUE_TIMEOUT):
            self._finish(chat, self._kind(chat), EndReason.QUEUE_TIMEOUT, ChatEvent.QUEUE_TIMEOUT)

    def _end_due(self, chat_id: str) -> None:
        chat = self._chats.get(chat_id)
        if chat is not None and self._allowed(chat, ChatEvent.END_DUE):
            self._finish(chat, TicketKind.TRANSCRIPT, EndReason.AGENT_ENDED, ChatEvent.END_DUE)

    def _visitor_grace_over(self, chat_id: str) -> None:
        chat = self._chats.get(chat_id)
        if chat is not None and self._allowed(chat, ChatEvent.VISITOR_GONE):
            self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT, ChatEvent.VISITOR_GONE)

    def _agent_grace_over(self, agent_id: str) -> None:
        """A disconnected agent did not come back: what it held is released."""
        agent = self._agents.get(agent_id)
        if agent is not None and not agent.connected:
            agent.grace = agent.recovering = False
            self._touch_agent(agent)
            self._release_agent(agent, "disconnected")

    def _tell_again(self, chat_id: str) -> None:
        chat = self._chats.get(chat_id)
        if chat is not None:
            self._send_tells(chat)
