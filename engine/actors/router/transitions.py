"""The chat's life applied: every change of a chat's state goes through `_move`.

`_move` asks the table in `model.chatstate` for the row of (state, event), does the row's effects
in order, then sets the next state (Rules 2 and 3 there). `_allowed` is how a handler asks whether
a request fits the chat's state; a request without a row is refused, a stale timer ignored.
"""

from __future__ import annotations

import trio

from ...model.chatstate import ChatEvent, Effect, allowed, move
from .offers import Offers
from .state import Chat


class Transitions(Offers):
    """Move a chat by the table, doing each row's effects."""

    def _allowed(self, chat: Chat, event: ChatEvent) -> bool:
        return allowed(chat.state, event) is not None

    def _move(self, chat: Chat, event: ChatEvent) -> None:
        row = move(chat.state, event)  # InvalidTransition: a bug here, stops the engine loudly
        for effect in row.effects:
            self._do(effect, chat)
        chat.state = row.next
        self._touch(chat)

    def _do(self, effect: Effect, chat: Chat) -> None:
        match effect:
            case Effect.STOP_QUEUE_TIMER:
                self._timers.cancel(("queue", chat.id))
            case Effect.STOP_END_TIMER:
                self._timers.cancel(("end", chat.id))
            case Effect.STOP_TIMERS:
                for key in ("queue", "end", "visitor"):
                    self._timers.cancel((key, chat.id))
            case Effect.WITHDRAW_OFFER:
                if chat.offer:
                    self._close_offer(self._offers[chat.offer], "chat_ended")
                    chat.offer = ""
            case Effect.CANCEL_HANDOFF:
                if chat.handoff:
                    self._end_handoff(chat, "cancelled")
            case Effect.LEAVE_QUEUE:
                dept = self._depts[chat.department]
                dept.queue.remove(chat.id)
                self._tell_positions(dept)
            case Effect.FREE_AGENTS:
                now = trio.current_time()
                for agent_id in chat.members:
                    agent = self._agents[agent_id]
                    agent.chats.discard(chat.id)
                    agent.idle_since = now
                    self._dirty.update(agent.departments)
            case Effect.CLEAR_TRIED:
                chat.tried.clear()
            case Effect.VISITOR_GRACE:
                self._timers.set(("visitor", chat.id), trio.current_time() + self._visitor_grace)
