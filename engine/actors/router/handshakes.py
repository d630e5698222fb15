"""The agents' handshakes: accepting or declining an offer, and starting or cancelling a transfer
or an invite. A transfer or invite changes nothing until its target accepts (invariant 4).

With the journal on, the agent's seat must be the store's before the chat is (store.journal
Rule 6). The write that made the offer reserved it, as a rule (`PendingOffer.seated`): the accept
is granted at once, and its record is the one write it waits for. Otherwise (the store found the
agent full then, or the offer was restored at a restart) an accept is two steps: the store claims
the seat against the agent's capacity in the directory (`submit_claim`), and the router grants the
offer when that has committed (`_settle_claims`, `_grant`), checking the offer again, since it may
have moved on meanwhile (then the seat is given back with the chat's next record).
"""

from __future__ import annotations

import secrets
from functools import partial

import structlog
import trio

from ...model.chatstate import ChatEvent
from ...model.desk_events import DeskEventKind
from ...model.errors import EngineError
from ...model.events import (
    ChatAssigned,
    ChatRemoved,
    HandoffResult,
)
from ...store import journal, seats
from .. import messages as m
from .routing import Routing
from .state import (
    AgentState,
    Chat,
    PendingOffer,
)

log = structlog.get_logger("helpline.router")


class Handshakes(Routing):
    """Accept and decline offers; start and cancel transfers and invites."""

    def _accept(self, msg: m.Accept) -> None:
        closed = self._closed_offers.get(msg.offer_id)
        if closed is not None and closed.taker == msg.agent_id:
            # The agent took this offer already (perhaps told store_unavailable): the same answer
            # again, once the chat's record is written with this iteration.
            chat = self._chats.get(closed.chat_id)
            if chat is not None and msg.agent_id in chat.members:
                self._touch(chat)
                self._answer_after_tells(chat, msg.reply, chat.id)
                return
        offer = self._check_offer(msg.agent_id, msg.offer_id)
        if isinstance(offer, EngineError):
            self._answer(msg.reply, offer)
            return
        if not self._journal or msg.agent_id in offer.seated:
            self._grant(msg.agent_id, offer, [msg.reply])  # no seat to claim, or it is held
            return
        key = (offer.id, msg.agent_id)
        waiting = self._claiming.get(key)
        if waiting is not None:  # the same accept again while the store checks the first
            waiting.append(msg.reply)
            return
        self._claiming[key] = [msg.reply]
        self._store.submit_claim(
            offer.chat_id, msg.agent_id, partial(self._claimed, key, offer.chat_id)
        )

    def _claimed(self, key: tuple[str, str], chat_id: str, outcome: object) -> None:
        """The store's callback (in the trio thread, outside any task): record and wake."""
        self._claim_results.append((key, chat_id, outcome))
        self._wake()

    def _settle_claims(self) -> None:
        """Grant the accepts whose claim the store committed; refuse those it refused."""
        results, self._claim_results = self._claim_results, []
        for (offer_id, agent_id), chat_id, outcome in results:
            replies = self._claiming.pop((offer_id, agent_id), [])
            if isinstance(outcome, BaseException):
                self._claim_refused(offer_id, agent_id, outcome, replies)
                continue
            offer = self._check_offer(agent_id, offer_id)
            if isinstance(offer, EngineError):  # the offer moved on while the store checked
                for reply in replies:
                    self._answer(reply, offer)
                self._unclaim(chat_id)
                continue
            self._grant(agent_id, offer, replies)

    def _unclaim(self, chat_id: str) -> None:
        """A seat the store gave and the router did not use: the chat's next record removes it
        (or, for a chat that is gone, a write of its members as none)."""
        chat = self._chats.get(chat_id)
        if chat is not None:
            self._touch(chat)
            return

        def done(outcome: object) -> None:
            if isinstance(outcome, BaseException):
                log.warning("claim_not_released", chat_id=chat_id, error=repr(outcome))

        self._store.submit_journal(journal.JournalBatch(members=((chat_id, ()),)), done)

    def _claim_refused(
        self, offer_id: str, agent_id: str, error: BaseException, replies: list[m.Reply]
    ) -> None:
        """The store refused the seat. Over capacity: the router takes the directory's capacity
        (the agent gets nothing new until it holds fewer chats), and the offer goes on without
        the agent, whose slot it frees; the chat is offered to others or waits in the queue, as
        when an agent is full. Any other failure leaves the offer open for another try."""
        code = getattr(error, "code", "")
        log.warning("claim_refused", offer_id=offer_id, agent_id=agent_id, error=repr(error))
        if isinstance(error, seats.OverCapacity):
            answer = EngineError(
                "capacity_full",
                f"you already hold {error.held} chats and your capacity is {error.capacity}"
                " (across every department); the chat goes to others",
            )
            agent = self._agents.get(agent_id)
            if agent is not None:
                agent.capacity = error.capacity
            offer = self._offers.get(offer_id)
            if offer is not None and agent_id in offer.agents:
                self._offer_lapsed(offer, {agent_id}, "capacity")
        else:
            answer = EngineError(
                "store_unavailable",
                f"the accept could not be saved ({code or 'store_failed'}); try again",
            )
        for reply in replies:
            self._answer(reply, answer)

    def _grant(self, agent_id: str, offer: PendingOffer, replies: list[m.Reply]) -> None:
        """Give the agent the chat, transfer or invite of an open offer it accepted."""
        chat = self._chats[offer.chat_id]
        agent = self._agents[agent_id]
        self._touch(chat)
        self._close_offer(offer, "taken", keep=agent.id)
        agent.offers.discard(offer.id)
        agent.chats.add(chat.id)
        now = self._wall()
        if offer.kind == "chat":
            chat.offer = ""
            self._move(chat, ChatEvent.ACCEPT)  # stops the queue timer
            chat.owner = agent.id
            if chat.accepted_at is None:
                self.stats.accept_wait.observe(max(0.0, now - chat.started_at))
            chat.accepted_at = chat.accepted_at or now
            self._join(chat, agent, "joined", "")
            self._emit(DeskEventKind.CHAT_ACCEPTED, chat, agent=agent.id)
            role = "owner"
        else:
            source = self._agents[offer.from_agent]
            chat.handoff = ""
            chat.handoffs.append(self._handoff_record(offer, agent.id, "accepted", now))
            if offer.kind == "transfer":
                chat.owner = agent.id
                chat.members.remove(source.id)
                source.chats.discard(chat.id)
                source.idle_since = trio.current_time()
                self._dirty.update(source.departments)
                self._join(chat, agent, "transferred", offer.note, replaces=source.id)
                self._push(source, ChatRemoved(chat_id=chat.id, reason="transferred"))
                self._emit(
                    DeskEventKind.CHAT_TRANSFERRED,
                    chat,
                    from_agent=source.id,
                    to_agent=agent.id,
                    to_department=offer.to_department,
                    note=offer.note,
                )
                role = "owner"
            else:
                self._join(chat, agent, "invited", offer.note)
                role = "invitee"
            self._push(
                source,
                HandoffResult(
                    chat_id=chat.id, kind=offer.kind, outcome="accepted", target=agent.id
                ),
            )
        self._push(agent, ChatAssigned(chat_id=chat.id, role=role))
        kind = "reassigned" if offer.kind == "transfer" and chat.reassigning else "accepted"
        chat.reassigning = False
        self._step(chat, kind, f"{agent.id} took the {offer.kind} offer {offer.id}")
        self.stats.offers["accepted"] += 1
        log.info(
            "offer_accepted",
            chat_id=chat.id,
            agent_id=agent.id,
            department=chat.department,
            kind=offer.kind,
        )
        for reply in replies:
            self._answer_after_tells(chat, reply, chat.id)

    def _join(
        self, chat: Chat, agent: AgentState, event: str, detail: str, replaces: str = ""
    ) -> None:
        chat.members.append(agent.id)
        if agent.id not in chat.ever:
            chat.ever.append(agent.id)
        self._touch(chat)
        self._tell(
            chat,
            m.Join(
                agent_id=agent.id,
                name=agent.name,
                outbox=agent.outbox,
                event=event,
                detail=detail,
                replaces=replaces,
            ),
        )

    def _decline(self, msg: m.Decline) -> None:
        offer = self._check_offer(msg.agent_id, msg.offer_id)
        if isinstance(offer, EngineError):
            self._answer(msg.reply, offer)
            return
        self._offer_lapsed(offer, {msg.agent_id}, "declined")
        self._answer(msg.reply, None)

    def _start_handoff(self, msg: m.StartHandoff) -> None:
        result = self._plan_handoff(msg)
        if isinstance(result, EngineError):
            self._answer(msg.reply, result)
            return
        chat, targets = result
        offer = PendingOffer(
            id=secrets.token_hex(8),
            chat_id=chat.id,
            kind=msg.kind,
            agents={a.id for a in targets},
            from_agent=msg.agent_id,
            to_department=msg.to_department,
            target=msg.to_agent or msg.to_department,
            note=msg.note,
        )
        self._move(chat, ChatEvent.HAND_ON)
        chat.handoff = offer.id
        self._make_offer(offer, chat, self._handoff_timeout)
        self._answer(msg.reply, offer.id)

    def _plan_handoff(self, msg: m.StartHandoff) -> tuple[Chat, list[AgentState]] | EngineError:
        chat = self._chats.get(msg.chat_id)
        if chat is None or msg.agent_id not in chat.members:
            return EngineError("not_in_chat", "you are not in that chat")
        if msg.kind == "transfer" and chat.owner != msg.agent_id:
            return EngineError("not_owner", "only the agent who holds the chat can transfer it")
        if not self._allowed(chat, ChatEvent.HAND_ON):
            return EngineError("invalid_state", f"the chat is {chat.state}; it cannot be handed on")
        if chat.handoff:
            return EngineError(
                "handoff_pending", "a transfer or invite is already waiting; cancel it"
            )
        if msg.to_department:
            dept = self._depts.get(msg.to_department)
            if dept is None:
                return EngineError("not_found", f"no department {msg.to_department!r}")
            if not dept.config.chat_enabled:
                return EngineError("chat_off", f"chat is switched off for {msg.to_department}")
        if msg.to_agent:
            target = self._agents.get(msg.to_agent)
            if target is None:
                return EngineError("not_found", f"no agent {msg.to_agent!r}")
            if msg.to_department and msg.to_department not in target.departments:
                return EngineError(
                    "invalid_field", f"{msg.to_agent} is not in department {msg.to_department}"
                )
            if target.id in chat.members:
                return EngineError("invalid_state", f"{msg.to_agent} is already in this chat")
            if not target.can_take():
                return EngineError(
                    "agent_unavailable",
                    f"{msg.to_agent} is offline or has no free capacity; pick another agent",
                )
            return chat, [target]
        if not msg.to_department:
            return EngineError("missing_field", "name an agent or a department to hand over to")
        targets = [
            a
            for a in self._members_of(msg.to_department)
            if a.can_take() and a.id not in chat.members
        ]
        if not targets:
            return EngineError(
                "agent_unavailable", f"nobody in {msg.to_department} can take a chat right now"
            )
        return chat, targets

    def _cancel_handoff(self, msg: m.CancelHandoff) -> None:
        chat = self._chats.get(msg.chat_id)
        offer = self._offers.get(chat.handoff) if chat is not None and chat.handoff else None
        if chat is None or offer is None or msg.kind not in ("", offer.kind):
            what = f"no {msg.kind}" if msg.kind else "no transfer or invite"
            self._answer(msg.reply, EngineError("no_handoff", f"{what} is waiting"))
            return
        if offer.from_agent != msg.agent_id:
            self._answer(
                msg.reply, EngineError("forbidden", "only its sender can cancel a handoff")
            )
            return
        self._end_handoff(chat, "cancelled")
        self._answer(msg.reply, None)
