"""The one error type the engine raises to its callers, and every code it may carry.

Every refusal carries a code (a short stable string that frontends switch on) and a human message
that says what to do. :data:`ENGINE_ERROR_CODES` lists the codes the engine raises and what each
means; the wire protocol uses the same codes (protocol/wire/errors.py builds its table from this
one), so the gateway passes them through unchanged. An ``EngineError`` may also carry one of the
store's codes (``store_failed``, ``store_busy``...; the store's contract lists them), which the
wire translates.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

__all__ = ["ENGINE_ERROR_CODES", "EngineError"]

ENGINE_ERROR_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "forbidden": (
            "The connection's role may not send this request, or the request reaches beyond "
            "what the connection may touch (another agent's handoff, another department's "
            "tickets)."
        ),
        "not_found": (
            "The named department, agent, chat, offer, ticket, canned message or canned category "
            "does not exist."
        ),
        "stale_offer": "The offer expired, was withdrawn or was declined before this answer.",
        "offer_taken": "Another agent accepted the offer first.",
        "not_your_offer": "The offer was addressed to another agent.",
        "capacity_full": (
            "The agent already holds as many chats (and open offers) as its capacity allows, "
            "across every department, as the database counts them (an accept refused when the "
            "capacity was lowered before the offer was made and the engine had not heard of it "
            "yet); the offer goes on to others."
        ),
        "chat_off": (
            "The department's chat is switched off: a transfer to it, or going online while "
            "chat is off in every department of the agent."
        ),
        "agent_unavailable": (
            "The transfer or invite target is offline, disconnected, full, or (for a "
            "department) has no eligible agent."
        ),
        "not_in_chat": (
            "The agent is not a participant of that chat, or the chat does not exist or ended."
        ),
        "not_owner": "Only the agent that owns the chat may do this.",
        "handoff_pending": "A transfer or invite for this chat is already waiting for an answer.",
        "no_handoff": "There is no pending transfer or invite to cancel.",
        "already_rated": "The chat was rated already.",
        "category_not_empty": (
            "The canned category still holds messages; delete it with messages `delete` or "
            "`move` to say what becomes of them."
        ),
        "chat_ended": "The chat ended while the request was on its way; nothing was changed.",
        "slow_consumer": (
            "The connection did not read its events fast enough and was dropped; reconnect."
        ),
        "shutting_down": "The server is stopping and takes no new chats; retry later.",
        "busy": "The server is momentarily overloaded (a mailbox is full); retry shortly.",
        "store_unavailable": (
            "The database could not save the change. A message was not stored (send it again "
            "with the same `client_msg_id`). Any other change may have taken effect, but might "
            "not survive a crash: the events that follow tell what happened."
        ),
        "internal": "An unexpected server fault; the request may or may not have taken effect.",
        "invalid_state": (
            "The request does not fit the current state: a second hello, send before open_chat, "
            "open_chat while a chat is open, rate before the chat ended, cancel_end with no "
            "ending pending, a handoff of a chat that is not active, adding a department, an "
            "agent, a canned message or a canned category whose id exists, and so on."
        ),
        "invalid_field": (
            "A value has the wrong type, is out of range or is not one of the allowed values."
        ),
        "missing_field": "A required value is absent.",
    }
)
"""Every code of the engine's own that an ``EngineError`` may carry, code -> meaning."""


class EngineError(Exception):
    """A request the engine refused or could not do: a stable `code`, a `message` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EngineError) and (self.code, self.message) == (
            other.code,
            other.message,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.message))
