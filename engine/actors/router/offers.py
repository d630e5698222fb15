"""Offers: making one, checking an answer to one, and closing one (with the handoff it carried).

An offer reserves a slot of each agent it is open to (Rule 1) until it is taken, declined, lapses
or is withdrawn; a closed offer is remembered for a while so that a late answer gets a clear reason.
What follows when an offer lapses (the chat moves on) is in `routing`; accepting one is in
`handshakes`.
"""

from __future__ import annotations

import structlog
import trio

from ...model.errors import EngineError
from ...model.events import (
    HandoffResult,
    Offer,
    OfferWithdrawn,
)
from ...model.records import (
    Handoff,
)
from .inspection import Inspection
from .state import (
    AgentState,
    Chat,
    ClosedOffer,
    PendingOffer,
)

log = structlog.get_logger("helpline.router")


class Offers(Inspection):
    """Make, check and close offers; close a chat's pending transfer or invite."""

    def _check_offer(self, agent_id: str, offer_id: str) -> PendingOffer | EngineError:
        offer = self._offers.get(offer_id)
        closed = self._closed_offers.get(offer_id)
        offered = offer.offered if offer is not None else closed.offered if closed else frozenset()
        if offer is None and closed is None:
            return EngineError("not_found", "no such offer")
        if agent_id not in offered:
            return EngineError("not_your_offer", "this offer was made to another agent")
        if offer is None:
            assert closed is not None
            if closed.why == "taken":
                return EngineError("offer_taken", "another agent accepted this chat first")
            return EngineError("stale_offer", f"this offer is no longer open ({closed.why})")
        if agent_id not in offer.agents:
            return EngineError("stale_offer", "this offer is no longer open to you")
        return offer

    def _make_offer(self, offer: PendingOffer, chat: Chat, window: float) -> None:
        offer.offered = frozenset(offer.agents)
        self.stats.offers["made"] += len(offer.agents)
        self._offers[offer.id] = offer
        self._timers.set(("offer", offer.id), trio.current_time() + window)
        self._touch(chat)
        for agent_id in offer.agents:
            agent = self._agents[agent_id]
            agent.offers.add(offer.id)
            self._push(agent, self._offer_event(offer, chat, agent, window))
        log.info(
            "offer_made",
            chat_id=chat.id,
            department=chat.department,
            offer_id=offer.id,
            kind=offer.kind,
            agents=sorted(offer.agents),
        )

    @staticmethod
    def _offer_event(offer: PendingOffer, chat: Chat, agent: AgentState, window: float) -> Offer:
        return Offer(
            offer_id=offer.id,
            chat_id=chat.id,
            department=offer.to_department or chat.department,
            kind=offer.kind,
            question=chat.question,
            visitor=chat.visitor,
            ringtone=agent.ringtone,
            expires_in=window,
            note=offer.note,
            from_agent=offer.from_agent,
        )

    def _close_offer(self, offer: PendingOffer, why: str, keep: str = "") -> None:
        """Retire an offer: release every reservation but `keep`'s and tell those agents."""
        self._offers.pop(offer.id, None)
        self._timers.cancel(("offer", offer.id))
        self._closed_offers[offer.id] = ClosedOffer(why, offer.offered, keep, offer.chat_id)
        if len(self._closed_offers) > 10_000:
            self._closed_offers.popitem(last=False)
        chat = self._chats.get(offer.chat_id)
        if chat is not None:
            self._touch(chat)
        for agent_id in offer.agents - {keep}:
            self.stats.offers["withdrawn"] += 1
            agent = self._agents[agent_id]
            agent.offers.discard(offer.id)
            self._dirty.update(agent.departments)
            self._push(agent, OfferWithdrawn(offer_id=offer.id, chat_id=offer.chat_id, reason=why))
        offer.agents.clear()

    def _end_handoff(self, chat: Chat, outcome: str, *, offer: PendingOffer | None = None) -> None:
        """Close a chat's pending transfer or invite with `outcome`; ownership does not change."""
        offer = offer or self._offers.get(chat.handoff)
        chat.handoff = ""
        self._touch(chat)
        if offer is None:
            return
        self._close_offer(offer, outcome)
        chat.handoffs.append(self._handoff_record(offer, offer.target, outcome, self._wall()))
        source = self._agents.get(offer.from_agent)
        if source is not None:
            self._push(
                source,
                HandoffResult(
                    chat_id=chat.id, kind=offer.kind, outcome=outcome, target=offer.target
                ),
            )

    def _handoff_record(self, offer: PendingOffer, target: str, outcome: str, at: float) -> Handoff:
        return Handoff(
            kind=offer.kind,
            from_agent=offer.from_agent,
            to_agent=target,
            to_department=offer.to_department,
            note=offer.note,
            outcome=outcome,
            at=at,
        )
