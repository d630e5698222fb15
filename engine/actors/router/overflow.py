"""Overflow: a department whose queue is too long, or whose estimated wait is too long, hands a
new chat on to its fallback departments, in order, instead of queueing it.

A department overflows a chat that would be queued when its queue already holds `overflow_queue`
chats (0: no such limit), or when the chat's estimated wait at the end of the queue (see
`eligibility`, Queue ETA) is over `overflow_wait` seconds (0: no such limit). The chat then moves
to the first of `overflow_to` that exists, has chat on, is within its business hours, has an agent
present, and has not had this chat before; with none, the chat becomes a missed-chat ticket with
reason `overflow`. `routing` does the moving; each step goes to the flight recorder.
"""

from __future__ import annotations

from .endings import Endings
from .state import Chat, DeptState


class Overflow(Endings):
    """Decide whether a chat overflows, and where to."""

    def _overflow(self, chat: Chat, dept: DeptState) -> tuple[str | None, str] | None:
        """None to queue the chat here; else (the fallback department or None, why)."""
        config = dept.config
        why = ""
        if config.overflow_queue and len(dept.queue) >= config.overflow_queue:
            why = (
                f"{len(dept.queue)} chats wait in {config.id} (overflow at {config.overflow_queue})"
            )
        elif config.overflow_wait:
            eta = self._eta(dept, len(dept.queue) + 1)
            if eta is not None and eta > config.overflow_wait:
                why = (
                    f"estimated wait {eta:g} s in {config.id}"
                    f" over the limit of {config.overflow_wait:g} s"
                )
        if not why:
            return None
        seen = {*chat.overflowed, chat.department}
        for target in config.overflow_to:
            fallback = self._depts.get(target)
            if (
                fallback is None
                or target in seen
                or not fallback.config.chat_enabled
                or not self._open_now(fallback)
                or not any(a.present for a in self._members_of(target))
            ):
                continue
            return target, why
        return None, why

    def _move_department(self, chat: Chat, target: str) -> None:
        """The chat now belongs to department `target` (its ticket will say so)."""
        chat.overflowed.append(chat.department)
        chat.department = target
        self._touch(chat)
