"""Reassign on silence: a chat whose owner leaves the visitor's message unanswered for the
department's `silence_timeout` seconds is re-offered to the department's other eligible agents.

The session tells the router when the visitor starts waiting for an answer and when an agent
answers (`AwaitingReply`, only while the department has a timeout). Waiting arms a timer; an answer
disarms it. When it fires on an active chat with no transfer or invite pending, the chat is offered
as a transfer from its owner to the department (the transfer machinery of `handshakes`): the owner
keeps the chat until another agent accepts, and a decline, timeout or cancel changes nothing. The
chat gets a `reassigning` system line (owner and visitor see it). If the owner answers while the
re-offer is open, it is cancelled. Nobody eligible: the flight recorder says so and the owner
keeps the chat. The timer's deadline and the re-offer's flag are journaled with the chat (its
record changes when the timer is armed, disarmed or fires), so after a crash a pending deadline
still fires, once.
"""

from __future__ import annotations

import secrets

import structlog
import trio

from ...model.chatstate import ChatEvent, ChatState
from .. import messages as m
from .handshakes import Handshakes
from .state import Chat, PendingOffer

log = structlog.get_logger("helpline.router")


class Silence(Handshakes):
    """Re-offer a chat whose owner went silent."""

    def _awaiting_reply(self, msg: m.AwaitingReply) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is None:
            return
        if not msg.waiting:
            if ("silence", chat.id) in self._timers or chat.reassigning:
                self._touch(chat)
            self._timers.cancel(("silence", chat.id))
            if chat.reassigning and chat.handoff:
                self._step(chat, "reassign", "the owner answered; the re-offer is withdrawn")
                self._end_handoff(chat, "cancelled")
            chat.reassigning = False
            return
        dept = self._depts.get(chat.department)
        timeout = dept.config.silence_timeout if dept is not None else 0.0
        if chat.state is ChatState.ACTIVE and chat.owner and timeout > 0:
            if ("silence", chat.id) not in self._timers:
                self._timers.set(("silence", chat.id), trio.current_time() + timeout)
                self._touch(chat)

    def _owner_silent(self, chat: Chat) -> None:
        """The silence timer fired: offer the chat to the department's other agents."""
        self._touch(chat)  # the journaled deadline is gone: it fires once
        dept = self._depts.get(chat.department)
        if not self._allowed(chat, ChatEvent.HAND_ON) or chat.handoff or dept is None:
            return
        timeout = dept.config.silence_timeout
        eligible, verdicts = self._consider(chat, dept)
        if not eligible:
            self._step(
                chat,
                "reassign_failed",
                f"{chat.owner} did not answer for {timeout:g} s; nobody else can take it",
                verdicts,
            )
            return
        eligible, ranked = self._rank(eligible, verdicts, assigned=False)
        self._step(
            chat,
            "reassign",
            f"{chat.owner} did not answer for {timeout:g} s; offered to "
            + ", ".join(a.id for a in eligible),
            ranked,
        )
        offer = PendingOffer(
            id=secrets.token_hex(8),
            chat_id=chat.id,
            kind="transfer",
            agents={a.id for a in eligible},
            from_agent=chat.owner,
            to_department=chat.department,
            target=chat.department,
            note=f"no answer for {timeout:g} s",
        )
        self._move(chat, ChatEvent.HAND_ON)
        chat.handoff = offer.id
        chat.reassigning = True
        self._make_offer(offer, chat, self._handoff_timeout)
        self._tell(chat, m.Notice(event="reassigning", agent=chat.owner, detail="silence"))
        log.info("chat_reassigning", chat_id=chat.id, owner=chat.owner, offer_id=offer.id)
