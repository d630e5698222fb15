"""Endings: an agent ends a chat (now or after a delay), leaves it, or the chat finishes for any
reason; `_finish` frees everything the chat held and tells its session to write the one ticket.
"""

from __future__ import annotations

import structlog
import trio

from ...model.chatstate import ChatEvent
from ...model.errors import EngineError
from ...model.events import (
    ChatRemoved,
)
from ...model.records import (
    EndReason,
    TicketKind,
)
from .. import messages as m
from .queues import Queues
from .state import (
    AgentState,
    Chat,
)

log = structlog.get_logger("helpline.router")


class Endings(Queues):
    """End, schedule the end of, or leave a chat; finish a chat into its ticket."""

    def _finish(
        self,
        chat: Chat,
        kind: TicketKind,
        reason: EndReason,
        event: ChatEvent = ChatEvent.FINISH,
    ) -> None:
        """End a chat: free everything it held and tell its session to write the one ticket."""
        self._move(chat, event)  # to CLOSING, releasing what the chat's state held
        self.stats.tickets[kind.value] += 1
        log.info(
            "chat_finished",
            chat_id=chat.id,
            department=chat.department,
            agent_id=chat.owner,
            kind=kind.value,
            reason=reason.value,
        )
        chat.final = chat.finish(kind, reason)
        self._tell(chat, chat.final)

    def _owned(self, agent_id: str, chat_id: str) -> Chat | EngineError:
        chat = self._chats.get(chat_id)
        if chat is None or agent_id not in chat.members:
            return EngineError("not_in_chat", "you are not in that chat")
        if chat.owner != agent_id:
            return EngineError("not_owner", "only the agent who holds the chat can do that")
        return chat

    def _end_chat(self, msg: m.EndChat) -> None:
        chat = self._owned(msg.agent_id, msg.chat_id)
        if isinstance(chat, EngineError):
            self._answer(msg.reply, chat)
            return
        event = ChatEvent.END_NOW if msg.delay <= 0 else ChatEvent.END_LATER
        if not self._allowed(chat, event):
            self._answer(msg.reply, EngineError("invalid_state", f"the chat is {chat.state}"))
            return
        if event is ChatEvent.END_NOW:
            self._finish(chat, TicketKind.TRANSCRIPT, EndReason.AGENT_ENDED, event)
            chat.waiters.append(msg.reply)  # answered with the ticket id once it is stored
            return
        self._move(chat, event)  # cancels a pending transfer or invite
        self._timers.set(("end", chat.id), trio.current_time() + msg.delay)
        self._tell(chat, m.Notice(event="ending", agent=msg.agent_id, detail=f"{msg.delay:g}"))
        self._answer(msg.reply, None)

    def _cancel_end(self, msg: m.CancelEnd) -> None:
        chat = self._owned(msg.agent_id, msg.chat_id)
        if isinstance(chat, EngineError):
            self._answer(msg.reply, chat)
            return
        if not self._allowed(chat, ChatEvent.CANCEL_END):
            self._answer(msg.reply, EngineError("invalid_state", "no ending is scheduled"))
            return
        self._move(chat, ChatEvent.CANCEL_END)  # stops the end timer
        self._tell(chat, m.Notice(event="ending_cancelled", agent=msg.agent_id))
        self._answer(msg.reply, None)

    def _leave_chat(self, msg: m.LeaveChat) -> None:
        chat = self._chats.get(msg.chat_id)
        if chat is None or msg.agent_id not in chat.members:
            self._answer(msg.reply, EngineError("not_in_chat", "you are not in that chat"))
            return
        if chat.owner == msg.agent_id:
            self._answer(
                msg.reply, EngineError("not_owner", "the owner ends or transfers a chat instead")
            )
            return
        self._part(chat, self._agents[msg.agent_id], "left", "")
        self._answer(msg.reply, None)

    def _part(self, chat: Chat, agent: AgentState, event: str, detail: str) -> None:
        chat.members.remove(agent.id)
        agent.chats.discard(chat.id)
        agent.idle_since = trio.current_time()
        self._touch(chat)
        self._tell(chat, m.Part(agent_id=agent.id, event=event, detail=detail))
        self._push(agent, ChatRemoved(chat_id=chat.id, reason=event))
        self._dirty.update(agent.departments)

    def _session_closed(self, msg: m.SessionClosed) -> None:
        chat = self._chats.pop(msg.chat_id, None)
        if chat is not None:
            self._drop_tells(chat)
            for reply in chat.waiters:
                self._answer(reply, msg.ticket_id)
        self._maybe_stopped()
