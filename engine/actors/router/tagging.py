"""Tags and traces: an agent in a chat, or a supervisor of its department, labels it (the tags
are journaled with the chat and kept on its ticket), and the flight recorder's steps of a live
chat are read.
"""

from __future__ import annotations

from typing import Final

from ...model.errors import EngineError
from .. import messages as m
from .silence import Silence

MAX_TAGS: Final = 32  # per chat


class Tagging(Silence):
    """Tag chats; answer for a chat's routing trace."""

    def _tag_chat(self, msg: m.TagChat) -> None:
        chat = self._chats.get(msg.chat_id)
        if msg.supervisor:
            if chat is None or (
                msg.departments is not None and chat.department not in msg.departments
            ):
                self._answer(
                    msg.reply,
                    EngineError("not_found", "no live chat with that id in your departments"),
                )
                return
        elif chat is None or msg.agent_id not in chat.members:
            self._answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
            return
        new = [t for t in dict.fromkeys(msg.tags) if t not in chat.tags]
        if len(chat.tags) + len(new) > MAX_TAGS:
            self._answer(
                msg.reply, EngineError("invalid_field", f"a chat has at most {MAX_TAGS} tags")
            )
            return
        if new:
            chat.tags.extend(new)
            self._touch(chat)
        self._answer(msg.reply, tuple(chat.tags))

    def _trace_of(self, msg: m.TraceOf) -> None:
        self._answer(msg.reply, self.trace_of(msg.chat_id))
