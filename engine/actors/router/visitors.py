"""Visitors: opening a chat (and dropping one whose opening could not be journaled), and a
visitor's connection going away and coming back (the visitor's grace).
"""

from __future__ import annotations

import secrets
from functools import partial

import structlog

from ...model.chatstate import ChatEvent, ChatState, allowed
from ...model.errors import EngineError
from ...model.records import (
    EndReason,
)
from .. import messages as m
from .handshakes import Handshakes
from .state import (
    Chat,
)

log = structlog.get_logger("helpline.router")


class Visitors(Handshakes):
    """Open chats, and follow a visitor's connection."""

    def _open_chat(self, msg: m.OpenChat) -> None:
        if self._stopping is not None:
            self._answer(
                msg.reply, EngineError("shutting_down", "the server is stopping; try later")
            )
            return
        dept = self._depts.get(msg.department)
        if dept is None:
            self._answer(msg.reply, EngineError("not_found", f"no department {msg.department!r}"))
            return
        chat_id = secrets.token_hex(8)
        chat = Chat(
            id=chat_id,
            department=dept.config.id,
            question=msg.question,
            visitor=msg.visitor,
            session=None,  # type: ignore[arg-type]  # set just below
            started_at=self._wall(),
            resume_key=msg.resume_key,
        )
        chat.session = self._spawn_session(chat, msg.outbox, (), {})
        self._chats[chat_id] = chat
        self._touch(chat)
        # If the chat cannot be journaled the visitor is told so and never gets a handle: the
        # request was refused, and the chat is dropped as if it never was.
        self._answer(msg.reply, (chat_id, chat.session), on_fail=partial(self._abandon, chat))
        log.info("chat_requested", chat_id=chat_id, department=chat.department)
        self._route(chat)

    def _abandon(self, chat: Chat) -> None:
        """Drop a chat whose opening was refused: no ticket, no live record, no offer left open.

        Runs when the failed write's batch is released, before the offer made with it is pushed
        (the answer comes first in the batch), so nobody can have accepted the chat yet; its
        session is told nothing more and stops when its mailbox closes. A Finish decided in the
        same iteration (nobody online) never reaches it, so no missed-chat ticket is written.
        """
        if self._chats.get(chat.id) is not chat or chat.members:
            return
        for key in ("queue", "end", "visitor", "tell"):
            self._timers.cancel((key, chat.id))
        if chat.offer:
            self._close_offer(self._offers[chat.offer], "chat_ended")
            chat.offer = ""
        if chat.handoff:
            self._end_handoff(chat, "cancelled")
        if chat.state is ChatState.QUEUED:
            dept = self._depts[chat.department]
            dept.queue.remove(chat.id)
            self._tell_positions(dept)
        del self._chats[chat.id]
        chat.tells.clear()
        chat.session.close()
        self._forgotten.add(chat.id)  # a later write may have stored its record after all
        self._touches += 1
        log.info("chat_refused", chat_id=chat.id, department=chat.department)
        self._maybe_stopped()

    def _visitor_gone(self, msg: m.VisitorGone) -> None:
        chat = self._chats.get(msg.chat_id)
        row = allowed(chat.state, ChatEvent.VISITOR_LEFT) if chat is not None else None
        if chat is None or row is None:
            return
        if row.next is ChatState.CLOSING:  # nobody took it yet: it is missed now
            self._finish(chat, self._kind(chat), EndReason.VISITOR_LEFT, ChatEvent.VISITOR_LEFT)
        else:  # a live chat waits for the visitor's grace
            self._move(chat, ChatEvent.VISITOR_LEFT)

    def _visitor_back(self, msg: m.VisitorBack) -> None:
        chat = self._chats.get(msg.chat_id)
        if self._timers.cancel(("visitor", msg.chat_id)) and chat is not None:
            self._touch(chat)
