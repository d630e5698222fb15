"""A chat's life, as the table in engine/model/chatstate.py writes it: every (state, event) pair."""

from __future__ import annotations

import itertools

import pytest

from engine.model.chatstate import (
    TRANSITIONS,
    ChatEvent,
    ChatState,
    Effect,
    InvalidTransition,
    allowed,
    move,
)

S, E, X = ChatState, ChatEvent, Effect

# Where each event takes a chat from each state; a pair not listed is refused.
EXPECTED = {
    S.REQUESTED: {E.QUEUE: S.QUEUED, E.OFFER: S.OFFERED},
    S.QUEUED: {E.OFFER: S.OFFERED, E.QUEUE_TIMEOUT: S.CLOSING},
    S.OFFERED: {E.OFFER: S.OFFERED, E.QUEUE: S.QUEUED, E.ACCEPT: S.ACTIVE},
    S.ACTIVE: {
        E.HAND_ON: S.ACTIVE,
        E.END_LATER: S.ENDING,
        E.OWNER_LOST: S.QUEUED,
        E.END_NOW: S.CLOSING,
        E.VISITOR_LEFT: S.ACTIVE,
    },
    S.ENDING: {
        E.END_LATER: S.ENDING,
        E.CANCEL_END: S.ACTIVE,
        E.END_DUE: S.CLOSING,
        E.OWNER_LOST: S.QUEUED,
        E.END_NOW: S.CLOSING,
        E.VISITOR_LEFT: S.ENDING,
    },
    S.CLOSING: {},
}
for _state in (S.REQUESTED, S.QUEUED, S.OFFERED):
    EXPECTED[_state][E.VISITOR_LEFT] = S.CLOSING
for _state in S:
    if _state is not S.CLOSING:
        EXPECTED[_state][E.FINISH] = S.CLOSING
        EXPECTED[_state][E.VISITOR_GONE] = S.CLOSING


@pytest.mark.parametrize(("state", "event"), list(itertools.product(S, E)))
def test_every_pair(state: ChatState, event: ChatEvent) -> None:
    """Each (state, event) pair moves where the chat's life says, or is refused."""
    expected = EXPECTED[state].get(event)
    row = allowed(state, event)
    assert expected == (row.next if row is not None else None)
    if row is None:
        with pytest.raises(InvalidTransition):
            move(state, event)
    else:
        assert row == move(state, event)


class TestEffects:
    def test_closing_releases_what_each_state_holds(self) -> None:
        """Ending stops the timers everywhere, and releases the queue place, the offer, the
        pending handoff or the agents only where the state can hold them."""
        released = {s: TRANSITIONS[(s, E.FINISH)].effects for s in S if s is not S.CLOSING}
        assert {
            S.REQUESTED: (X.STOP_TIMERS,),
            S.QUEUED: (X.STOP_TIMERS, X.LEAVE_QUEUE),
            S.OFFERED: (X.STOP_TIMERS, X.WITHDRAW_OFFER),
            S.ACTIVE: (X.STOP_TIMERS, X.CANCEL_HANDOFF, X.FREE_AGENTS),
            S.ENDING: (X.STOP_TIMERS, X.FREE_AGENTS),
        } == released

    def test_every_move_to_closing_releases_like_finish(self) -> None:
        """However a chat ends (timeout, visitor, owner), it releases what FINISH releases."""
        for (state, _event), row in TRANSITIONS.items():
            if row.next is S.CLOSING:
                assert TRANSITIONS[(state, E.FINISH)] == row

    def test_accept_stops_the_queue_wait(self) -> None:
        """A queued chat keeps its queue timer while offered; accepting it stops the timer."""
        assert (X.STOP_QUEUE_TIMER,) == TRANSITIONS[(S.OFFERED, E.ACCEPT)].effects
        assert () == TRANSITIONS[(S.QUEUED, E.OFFER)].effects

    def test_requeue_forgets_who_was_tried(self) -> None:
        """A chat whose owner is gone goes back to the queue, may be offered to anyone again, and
        its delayed ending no longer runs."""
        for state in (S.ACTIVE, S.ENDING):
            row = TRANSITIONS[(state, E.OWNER_LOST)]
            assert (S.QUEUED, (X.STOP_END_TIMER, X.CLEAR_TRIED)) == (row.next, row.effects)

    def test_a_live_chat_waits_for_its_visitor(self) -> None:
        """A visitor leaving a live chat starts its grace; the state does not change."""
        for state in (S.ACTIVE, S.ENDING):
            assert (X.VISITOR_GRACE,) == TRANSITIONS[(state, E.VISITOR_LEFT)].effects


class TestShape:
    def test_closing_is_the_end(self) -> None:
        """Nothing moves a closing chat."""
        assert [] == [key for key in TRANSITIONS if key[0] is S.CLOSING]

    def test_every_state_is_reachable_and_can_end(self) -> None:
        """From REQUESTED every state can be reached, and from every state CLOSING can."""
        seen, todo = {S.REQUESTED}, [S.REQUESTED]
        while todo:
            state = todo.pop()
            for (source, _event), row in TRANSITIONS.items():
                if source is state and row.next not in seen:
                    seen.add(row.next)
                    todo.append(row.next)
        assert set(S) == seen
        assert all(allowed(s, E.FINISH) for s in S if s is not S.CLOSING)
