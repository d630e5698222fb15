"""Where a waiting chat goes next: offered, queued, overflowed or missed, as its department
allows; and what happens when an offer lapses (declined, timed out, or its agent went away).

A new chat in a department outside its business hours is missed (`closed_hours`, with when the
department opens next). A chat that would wait in a queue that is too long, or for longer than its
department allows, overflows (`overflow`): it moves to the first fallback department that is on,
open, has an agent present and has not had it already, and is routed there; with none left it is
missed with reason `overflow`.
"""

from __future__ import annotations

import structlog

from ...model.chatstate import ChatState
from ...model.events import (
    OfferWithdrawn,
)
from ...model.records import (
    EndReason,
    RoutingMode,
)
from .overflow import Overflow
from .state import (
    Chat,
    PendingOffer,
)

log = structlog.get_logger("helpline.router")


class Routing(Overflow):
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
        if chat.state is ChatState.REQUESTED and not self._open_now(dept):
            opens = self._opens_at(dept)
            self._finish(chat, self._kind(chat), EndReason.CLOSED_HOURS, opens_at=opens)
            return
        online = [a for a in self._members_of(dept.config.id) if a.present]
        if not online:
            self._finish(chat, self._kind(chat), EndReason.NO_AGENT_ONLINE)
            return
        eligible, verdicts = self._consider(chat, dept)
        if eligible and (front or not dept.queue):
            self._offer_chat(chat, dept, eligible, verdicts)
        elif all(a.id in chat.tried for a in online):
            self._finish(chat, self._kind(chat), exhausted)
        elif not front and (spill := self._overflow(chat, dept)) is not None:
            target, why = spill
            if target is None:
                self._step(chat, "overflow", f"{why}; no fallback department left")
                self._finish(chat, self._kind(chat), EndReason.OVERFLOW)
            else:
                self._step(chat, "overflow", f"{why}; to {target}")
                self._move_department(chat, target)
                self._route(chat)
        elif not front and len(dept.queue) >= dept.config.queue_limit:
            self._finish(chat, self._kind(chat), EndReason.QUEUE_FULL)
        else:
            why = "every eligible agent is busy" if not eligible else "others wait before it"
            self._enqueue(chat, dept, front=front, why=why, verdicts=verdicts)

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
        kind = {"declined": "declined", "expired": "timeout"}.get(why, "withdrawn")
        who = ", ".join(sorted(agents))
        self._step(chat, kind, f"{offer.kind} offer {offer.id}: {who} ({why})")
        if offer.agents:
            return
        self._close_offer(offer, why)
        if offer.kind != "chat":
            said = "declined" if why in ("declined", "capacity") else "timeout"
            self._end_handoff(chat, said, offer=offer)
            return
        chat.offer = ""
        if why != "capacity":  # a full agent did not turn the chat down: it may get it later
            chat.tried.update(agents)
        reason = EndReason.ALL_DECLINED if why == "declined" else EndReason.OFFER_TIMEOUT
        dept = self._depts[chat.department]
        if dept.config.routing is RoutingMode.ASSIGNED or why not in ("declined", "expired"):
            self._route(chat, front=True, exhausted=reason)
        else:
            self._finish(chat, self._kind(chat), reason)
