"""The router's loop: read the mailbox under the earliest deadline, hand each message to its
handler, fire due timers, move queues, and write the iteration's journal (Rules 2 to 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
import trio

from ...model.chatstate import ChatEvent
from ...model.records import (
    EndReason,
)
from .. import messages as m
from .restore import Restore

log = structlog.get_logger("helpline.router")

_BURST = 16  # messages read without waiting before the router yields to other tasks


class Router(Restore):
    """The router actor. Build it, then run `await router.run()` in the engine's nursery."""

    async def run(self) -> None:
        handlers = self._handlers()
        fire = self._timer_handlers()
        inbox = self._inbox
        timers = self._timers
        effects = self._effects
        self._flush()  # what restoring changed and told
        burst = 0
        while not self._stopped:
            msg: m.ToRouter | None = None
            if not (effects.ready() or self._claim_results):
                try:  # a busy mailbox is read without setting up a cancel scope per message
                    msg = inbox.receive_nowait()
                    burst += 1
                    if burst % _BURST == 0:
                        await trio.lowlevel.checkpoint()  # let the others run now and then
                except trio.WouldBlock:
                    burst = 0
                    with trio.move_on_at(timers.next_deadline()) as self._waiting:
                        msg = await inbox.receive()
                    self._waiting = None
            self._release_due()
            self.stats.loop_turns += 1
            if self._claim_results:  # the store checked accepts' capacity (handshakes)
                mark, touches = effects.mark(), self._touches
                self._settle_claims()
                if self._touches != touches:
                    effects.durable_since(mark)
            if msg is not None:
                mark, touches = effects.mark(), self._touches
                handlers[type(msg)](msg)
                if self._touches != touches:
                    effects.durable_since(mark)
            for what, ident in timers.pop_due(trio.current_time()):
                fire[what](ident)
            if self._dirty:
                self._dispatch_dirty()
            self._flush()

    def _handlers(self) -> dict[type, Callable[[Any], None]]:
        return {
            m.OpenChat: self._open_chat,
            m.SetPresence: self._set_presence,
            m.Connected: self._connected,
            m.Disconnected: self._disconnected,
            m.Accept: self._accept,
            m.Decline: self._decline,
            m.StartHandoff: self._start_handoff,
            m.CancelHandoff: self._cancel_handoff,
            m.EndChat: self._end_chat,
            m.CancelEnd: self._cancel_end,
            m.LeaveChat: self._leave_chat,
            m.VisitorGone: self._visitor_gone,
            m.VisitorBack: self._visitor_back,
            m.AvailableAgents: self._available_agents,
            m.ChatInfo: self._chat_info,
            m.DepartmentChanged: self._department_changed,
            m.AgentChanged: self._agent_changed,
            m.SessionClosed: self._session_closed,
            m.ActorDown: self._actor_down,
            m.LiveChats: self._live_chats,
            m.TagChat: self._tag_chat,
            m.AwaitingReply: self._awaiting_reply,
            m.TraceOf: self._trace_of,
            m.Inspect: self._inspect,
            m.Supervise: self._supervise,
            m.Unsupervise: self._unsupervise,
            m.Activity: self._activity,
            m.Barge: self._barge,
            m.LeaveBarge: self._leave_barge,
            m.Reassign: self._reassign,
            m.Shutdown: self._shutdown,
        }

    def _shutdown(self, msg: m.Shutdown) -> None:
        self._stopping = msg.reply
        for chat in list(self._chats.values()):
            if self._allowed(chat, ChatEvent.FINISH):
                self._finish(chat, self._kind(chat), EndReason.SHUTDOWN)
        for agent in self._agents.values():  # no chat is left for a grace to keep
            if agent.grace:
                agent.grace = False
                self._timers.cancel(("agent", agent.id))
                self._touch_agent(agent)
        self._maybe_stopped()
