"""A chat's life as one table: (state, event) -> (next state, effects).

Theory of operation:

Rule 1. Only the router moves a chat, one message at a time, so a move is decided against the
        state it starts from and nothing can interleave with it.
Rule 2. Every move is a row of TRANSITIONS. A request whose (state, event) has no row is refused
        (`invalid_state` to the agent, or a timer that fired too late is ignored); the router asks
        the table (`allowed`) instead of testing states itself. A move the router makes without a
        row (`move`) is a bug in the router and stops the engine loudly (`InvalidTransition`).
Rule 3. The effects of a row are what the move releases or starts for the chat itself (stop its
        timers, withdraw its offer, cancel its handoff, leave the queue, free its agents, start the
        visitor's grace). The router does them in the order listed, then sets the next state; the
        handler then does the part that needs the message (who accepted, how long the delay, why
        the chat ended).
Rule 4. CLOSING is the end of the line: the session is writing the chat's one ticket (a transcript
        once someone took the chat, else a missed chat). It has no rows.

Handshakes (a pending transfer or invite) are not states of their own: they ride on an ACTIVE chat
(HAND_ON) and change nothing until the target accepts.

    REQUESTED -> QUEUED -> OFFERED -> ACTIVE <-> ENDING
        |          |  ^------'  |      |  |          |
        |          |            |      |  +-> QUEUED (owner lost; requeued at the head)
        +----------+------------+------+-------------+--> CLOSING (ticket: transcript or missed)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ChatState(enum.StrEnum):
    """Where a chat is in its life."""

    REQUESTED = "requested"
    QUEUED = "queued"
    OFFERED = "offered"
    ACTIVE = "active"
    ENDING = "ending"
    CLOSING = "closing"


class ChatEvent(enum.StrEnum):
    """What can happen to a chat."""

    QUEUE = "queue"  # nobody can take it now: it waits in its department's queue
    OFFER = "offer"  # offered to agents (assigned: one at a time; broadcast: all eligible)
    ACCEPT = "accept"  # an agent accepted the chat's offer and owns the chat
    OWNER_LOST = "owner_lost"  # the owner is gone and nobody else is in it: back to the queue
    HAND_ON = "hand_on"  # the owner or an invitee starts a transfer or an invite
    END_LATER = "end_later"  # the owner ends the chat after a delay (again: a new delay)
    CANCEL_END = "cancel_end"  # the owner cancels the delayed ending
    END_NOW = "end_now"  # the owner ends the chat now
    END_DUE = "end_due"  # the delayed ending's time has come
    QUEUE_TIMEOUT = "queue_timeout"  # the chat waited in the queue too long
    VISITOR_LEFT = "visitor_left"  # the visitor's connection went away
    VISITOR_GONE = "visitor_gone"  # the visitor's grace ran out
    FINISH = "finish"  # the chat ends for any other reason (nobody online, crash, shutdown...)


class Effect(enum.StrEnum):
    """What a move does to the chat itself, before the handler's own part."""

    STOP_QUEUE_TIMER = "stop_queue_timer"
    STOP_END_TIMER = "stop_end_timer"
    STOP_TIMERS = "stop_timers"  # queue wait, delayed ending and visitor's grace
    WITHDRAW_OFFER = "withdraw_offer"  # close the chat's open offer; its agents are told
    CANCEL_HANDOFF = "cancel_handoff"  # close a pending transfer or invite as cancelled
    LEAVE_QUEUE = "leave_queue"  # out of the department's queue; the others hear their place
    FREE_AGENTS = "free_agents"  # every agent in the chat gets its slot back
    CLEAR_TRIED = "clear_tried"  # every agent may be offered the chat again
    VISITOR_GRACE = "visitor_grace"  # wait for the visitor to come back before ending


@dataclass(frozen=True, slots=True)
class Transition:
    """One row's outcome: the state the chat moves to and what the move does on the way."""

    next: ChatState
    effects: tuple[Effect, ...] = ()


_S, _E, _X = ChatState, ChatEvent, Effect
_T = Transition

# What ending does from each state: only what that state can hold is released.
_CLOSE = {
    _S.REQUESTED: _T(_S.CLOSING, (_X.STOP_TIMERS,)),
    _S.QUEUED: _T(_S.CLOSING, (_X.STOP_TIMERS, _X.LEAVE_QUEUE)),
    _S.OFFERED: _T(_S.CLOSING, (_X.STOP_TIMERS, _X.WITHDRAW_OFFER)),
    _S.ACTIVE: _T(_S.CLOSING, (_X.STOP_TIMERS, _X.CANCEL_HANDOFF, _X.FREE_AGENTS)),
    _S.ENDING: _T(_S.CLOSING, (_X.STOP_TIMERS, _X.FREE_AGENTS)),
}
_WAITING_STATES = (_S.REQUESTED, _S.QUEUED, _S.OFFERED)
_LIVE_STATES = (_S.ACTIVE, _S.ENDING)

TRANSITIONS: dict[tuple[ChatState, ChatEvent], Transition] = {
    (_S.REQUESTED, _E.QUEUE): _T(_S.QUEUED),
    (_S.REQUESTED, _E.OFFER): _T(_S.OFFERED),
    # A queued chat keeps its queue timer while it is offered: it fires only if it is back.
    (_S.QUEUED, _E.OFFER): _T(_S.OFFERED),
    (_S.QUEUED, _E.QUEUE_TIMEOUT): _CLOSE[_S.QUEUED],
    # OFFERED -> OFFERED: an assigned department moves on to the next agent.
    (_S.OFFERED, _E.OFFER): _T(_S.OFFERED),
    (_S.OFFERED, _E.QUEUE): _T(_S.QUEUED),  # the offer lapsed and everyone is busy
    (_S.OFFERED, _E.ACCEPT): _T(_S.ACTIVE, (_X.STOP_QUEUE_TIMER,)),
    (_S.ACTIVE, _E.HAND_ON): _T(_S.ACTIVE),
    (_S.ACTIVE, _E.END_LATER): _T(_S.ENDING, (_X.CANCEL_HANDOFF,)),
    (_S.ENDING, _E.END_LATER): _T(_S.ENDING),
    (_S.ENDING, _E.CANCEL_END): _T(_S.ACTIVE, (_X.STOP_END_TIMER,)),
    (_S.ENDING, _E.END_DUE): _CLOSE[_S.ENDING],
    **{
        (s, _E.OWNER_LOST): _T(_S.QUEUED, (_X.STOP_END_TIMER, _X.CLEAR_TRIED)) for s in _LIVE_STATES
    },
    **{(s, _E.END_NOW): _CLOSE[s] for s in _LIVE_STATES},
    # A visitor who leaves a chat nobody took is gone; a live chat waits for it a while.
    **{(s, _E.VISITOR_LEFT): _CLOSE[s] for s in _WAITING_STATES},
    **{(s, _E.VISITOR_LEFT): _T(s, (_X.VISITOR_GRACE,)) for s in _LIVE_STATES},
    **{(s, _E.VISITOR_GONE): _CLOSE[s] for s in _CLOSE},
    **{(s, _E.FINISH): _CLOSE[s] for s in _CLOSE},
}

#: States in which the chat has an owner and a conversation going on.
LIVE = frozenset(_LIVE_STATES)
#: States in which nobody has taken the chat yet; ending here makes a missed-chat ticket.
WAITING = frozenset(_WAITING_STATES)


class InvalidTransition(RuntimeError):
    """The router made a move the table does not have: a bug, never a user error."""


def allowed(state: ChatState, event: ChatEvent) -> Transition | None:
    """The row for `event` in `state`, or None: the table refuses it."""
    return TRANSITIONS.get((state, event))


def move(state: ChatState, event: ChatEvent) -> Transition:
    """The row for `event` in `state`; raise InvalidTransition if there is none."""
    row = TRANSITIONS.get((state, event))
    if row is None:
        raise InvalidTransition(f"a {state} chat has no move for {event}")
    return row
