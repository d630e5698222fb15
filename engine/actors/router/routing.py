"""Where a waiting chat goes next: offered, queued or missed, as its department allows; and what
happens when an offer lapses (declined, timed out, or its agent went away).
"""

from __future__ import annotations

import structlog

from ...model.events import (
    OfferWithdrawn,
)
from ...model.records import (
    EndReason,
    RoutingMode,
)
from .endings import Endings
from .state import (
    Chat,
    PendingOffer,
)

log = structlog.get_logger("helpline.router")


class Routing(Endings):
    """Decide where a waiting chat goes, and move on when an offer lapses."""

    def _route(
        self, chat: Chat, *, front: bool = False, exhausted: EndReason = EndReason.ALL_DECLINED
    ) -> None:
        """Offer a waiting chat, queue it, or turn it into a missed chat, as its department allows.

        `front` puts a chat that was already waiting back at the head; `exhausted` is the reason
        given when every online agent has already been tried for this chat.
        """
        dept = self._depts[chat.department]
        if not dept.config.chat_enabled:
            self._finish(chat, self._kind(chat), EndReason.CHAT_OFF)
            return
        online = [a for a in self._members_of(dept.config.id) if a.present]
        if not online:
            self._finish(chat, self._kind(chat), EndReason.NO_AGENT_ONLINE)
            return
        eligible = [a for a in online if a.can_take() and a.id not in chat.tried]
        if eligible and (front or not dept.queue):
            self._offer_chat(chat, dept, eligible)
        elif all(a.id in chat.tried for a in online):
            self._finish(chat, self._kind(chat), exhausted)
        elif not front and len(dept.queue) >= dept.config.queue_limit:
            self._finish(chat, self._kind(chat), EndReason.QUEUE_FULL)
        else:
            self._enqueue(chat, dept, front=front)

    def _offer_lapsed(self, offer: PendingOffer, agents: set[str], why: str) -> None:
        """Some of an offer's agents declined, timed out or went away; move on if none are left."""
        outcome = why if why in ("declined", "expired") else "withdrawn"
        self.stats.offers[outcome] += len(agents & offer.agents)
        for agent_id in agents:
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            offer.agents.discard(agent_id)
            self._dirty.update(agent.departments)
            if why != "declined":
                self._push(
                    agent, OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why)
                )
        chat = self._chats[offer.chat_id]
        self._touch(chat)
        if offer.agents:
            return
        self._close_offer(offer, why)
        if offer.kind != "chat":
            self._end_handoff(chat, "declined" if why == "declined" else "timeout", offer=offer)
            return
        chat.offer = ""
        chat.tried.update(agents)
        reason = EndReason.ALL_DECLINED if why == "declined" else EndReason.OFFER_TIMEOUT
        dept = self._depts[chat.department]
        if dept.config.routing is RoutingMode.ASSIGNED or why not in ("declined", "expired"):
            self._route(chat, front=True, exhausted=reason)
        else:
            self._finish(chat, self._kind(chat), reason)
