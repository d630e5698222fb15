"""A chat's states and the transitions between them, as a table.

Theory of operation:

Rule 1. Only the router moves a chat between states, one message at a time, so a transition is
        decided against the state it starts from and nothing can interleave with it.
Rule 2. Every transition the router makes must be in TRANSITIONS; anything else is a bug in the
        router and stops the engine loudly (`InvalidTransition`), never a silent repair.
Rule 3. CLOSING is the end of the line: the session is writing the chat's one ticket.

Handshakes (a pending transfer or invite) are not states of their own: they ride on an ACTIVE chat
and change nothing until the target accepts.

    REQUESTED -> QUEUED -> OFFERED -> ACTIVE <-> ENDING
        |          |  ^------'  |      |  |          |
        |          |            |      |  +-> QUEUED (owner lost; requeued at the head)
        +----------+------------+------+-------------+--> CLOSING (ticket: transcript or missed)
"""

from __future__ import annotations

import enum


class ChatState(enum.StrEnum):
    """Where a chat is in its life."""

    REQUESTED = "requested"
    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    ENDING = "ending"
    CLOSING = "closing"


_S = ChatState

TRANSITIONS: dict[ChatState, frozenset[ChatState]] = {
    _S.REQUESTED: frozenset({_S.QUEUED, _S.OFFERED, _S.CLOSING}),
    _S.QUEUED: frozenset({_S.OFFERED, _S.CLOSING}),
    # OFFERED -> OFFERED: an assigned department moves on to the next agent.
    _S.OFFERED: frozenset({_S.OFFERED, _S.ACTIVE, _S.QUEUED, _S.CLOSING}),
    _S.ACTIVE: frozenset({_S.ENDING, _S.QUEUED, _S.CLOSING}),
    _S.ENDING: frozenset({_S.ACTIVE, _S.QUEUED, _S.CLOSING}),
    _S.CLOSING: frozenset(),
}

#: States in which the chat has an owner and a conversation going on.
LIVE = frozenset({_S.ACTIVE, _S.ENDING})
#: States in which nobody has taken the chat yet; ending here makes a missed-chat ticket.
WAITING = frozenset({_S.REQUESTED, _S.QUEUED, _S.OFFERED})


class InvalidTransition(RuntimeError):
    """The router tried a transition the table does not allow: a bug, never a user error."""


def check(current: ChatState, new: ChatState) -> ChatState:
    """Return `new` if the table allows current -> new; raise InvalidTransition otherwise."""
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(f"chat cannot go from {current} to {new}")
    return new
