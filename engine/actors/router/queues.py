"""The per-department waiting queue, kept by the router (taking a chat off it and reserving an
agent's capacity for it must be one decision). Its order survives a restart as a key per chat.

Work that follows from freed capacity (offering the head of a queue) is collected in `_dirty`
while a message is handled and done once at the end of the iteration (Rule 4).
"""

from __future__ import annotations

import secrets

import structlog
import trio

from ...model.chatstate import ChatEvent
from ...model.records import (
    RoutingMode,
)
from .recorder import RawCandidate
from .state import (
    AgentState,
    Chat,
    DeptState,
    PendingOffer,
)
from .transitions import Transitions

log = structlog.get_logger("helpline.router")


class Queues(Transitions):
    """Queue waiting chats, tell visitors their place, and offer the head when capacity frees."""

    def _enqueue(
        self,
        chat: Chat,
        dept: DeptState,
        *,
        front: bool,
        event: ChatEvent = ChatEvent.QUEUE,
        why: str = "",
        verdicts: list[RawCandidate] | None = None,
    ) -> None:
        self._move(chat, event)
        head = self._chats[dept.queue[0]].queue_key if dept.queue else None
        if front and head is not None:
            chat.queue_key = head - 1
            dept.queue.appendleft(chat.id)
        else:
            self._queue_seq += 1
            chat.queue_key = self._queue_seq
            if front:
                dept.queue.appendleft(chat.id)
            else:
                dept.queue.append(chat.id)
        if not front or ("queue", chat.id) not in self._timers:
            self._timers.set(("queue", chat.id), trio.current_time() + dept.config.queue_timeout)
        self._tell_positions(dept)
        where = "at the head" if front else f"at position {len(dept.queue)}"
        self._step(chat, "queued", f"{where}; {why}" if why else where, verdicts or ())
        log.info("chat_queued", chat_id=chat.id, department=dept.config.id, length=len(dept.queue))

    def _offer_chat(
        self, chat: Chat, dept: DeptState, eligible: list[AgentState], verdicts: list[RawCandidate]
    ) -> None:
        assigned = dept.config.routing is RoutingMode.ASSIGNED
        eligible, ranked = self._rank(eligible, verdicts, assigned=assigned)
        self._step(
            chat,
            "offered",
            f"{dept.config.routing.value} to {', '.join(a.id for a in eligible)}",
            ranked,
        )
        offer = PendingOffer(
            id=secrets.token_hex(8), chat_id=chat.id, kind="chat", agents={a.id for a in eligible}
        )
        self._move(chat, ChatEvent.OFFER)
        chat.offer = offer.id
        self._make_offer(offer, chat, dept.config.offer_window)

    def _dispatch_dirty(self) -> None:
        while self._dirty:
            dept = self._depts.get(self._dirty.pop())
            if dept is not None:
                self._dispatch(dept)

    def _dispatch(self, dept: DeptState) -> None:
        """Offer queued chats, head first, while the department has agents with room."""
        moved = False
        passed = 0  # chats at the head that wait for an agent with their skills
        while passed < len(dept.queue) and dept.config.chat_enabled:
            chat = self._chats[dept.queue[passed]]
            eligible, _ = self._consider(chat, dept, explain=False)
            if not eligible:
                if not self._skills_relaxed(chat, dept):
                    passed += 1  # a chat waiting for a skill does not hold up the others
                    continue
                break
            del dept.queue[passed]
            chat.told_position, chat.told_eta = 0, None
            moved = True
            eligible, verdicts = self._consider(chat, dept)
            self._offer_chat(chat, dept, eligible, verdicts)
        if moved:
            self._tell_positions(dept)
