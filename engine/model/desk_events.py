"""Desk events: what other systems hear about a help desk through its webhooks.

Theory of operation
-------------------
A `DeskEvent` reports one decision the engine made about a chat: it was opened, accepted,
transferred, it ended or was missed, its ticket was created, its visitor rated it. Events are
small frozen records; they never travel between actors and never wait for anyone.

Decided, then durable, then seen (DESIGN.md) holds for them too, and more strictly than
"released after the commit": every event is written into the store's webhook outbox by the very
transaction that makes its decision durable, so there is no event for a decision that was not
committed and none is lost once it is.

* The router collects the events of a loop iteration (chat opened, accepted, transferred) and
  hands them over with that iteration's journal batch (`store.journal.JournalBatch.events`); the
  store queues them in the same transaction as the records. The router still never awaits: the
  batch goes through `submit_journal` like every other journal write, and a failed write keeps
  its events for the retry, in order, ahead of newer ones.
* A chat's end is durable when its ticket is: storing a ticket queues `chat.ended` (or
  `chat.missed` for a missed-chat ticket) and `ticket.created` in the ticket's transaction
  (`ticket_events`). Storing a rating queues `rating.given` the same way (`rating_event`).

With the engine's journal off (`EngineConfig.journal=False`, for replays and benchmarks) nothing
the router decides is durable before it is seen, and no effect waits for a write: its events are
then handed to the store on their own, after the iteration, without holding anything back.

What a webhook receives is `DeskEvent.body`: one JSON object (SPEC.md, "Webhooks").
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .records import Ticket, TicketKind

__all__ = [
    "Delivery",
    "DeliveryState",
    "DeskEvent",
    "DeskEventKind",
    "Webhook",
    "rating_event",
    "ticket_events",
]


class DeskEventKind(enum.StrEnum):
    """The kinds of desk event a webhook may subscribe to."""

    CHAT_OPENED = "chat.opened"
    CHAT_ACCEPTED = "chat.accepted"
    CHAT_TRANSFERRED = "chat.transferred"
    CHAT_ENDED = "chat.ended"
    CHAT_MISSED = "chat.missed"
    TICKET_CREATED = "ticket.created"
    RATING_GIVEN = "rating.given"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskEvent:
    """A decision about a chat, as webhooks report it; `data` holds JSON values only."""

    kind: DeskEventKind
    chat_id: str
    department: str
    at: float  # wall-clock seconds when it was decided
    data: Mapping[str, Any] = field(default_factory=dict)

    def body(self, delivery_id: str) -> str:
        """The JSON object a webhook receives, carrying its delivery id."""
        return json.dumps(
            {
                "id": delivery_id,
                "type": self.kind.value,
                "chat_id": self.chat_id,
                "department": self.department,
                "at": self.at,
                "data": dict(self.data),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )


def ticket_events(ticket: Ticket) -> tuple[DeskEvent, ...]:
    """The events a newly stored ticket reports: how the chat ended, then the ticket itself."""
    assert ticket.id is not None, "only a stored ticket has events"
    missed = ticket.kind is TicketKind.MISSED
    ended = DeskEvent(
        kind=DeskEventKind.CHAT_MISSED if missed else DeskEventKind.CHAT_ENDED,
        chat_id=ticket.chat_id,
        department=ticket.department,
        at=ticket.ended_at,
        data={
            "reason": ticket.end_reason.value,
            "ticket_id": ticket.id,
            **({} if missed else {"owner": ticket.owner, "agents": list(ticket.agents)}),
        },
    )
    created = DeskEvent(
        kind=DeskEventKind.TICKET_CREATED,
        chat_id=ticket.chat_id,
        department=ticket.department,
        at=ticket.ended_at,
        data={"ticket_id": ticket.id, "kind": ticket.kind.value},
    )
    return ended, created


def rating_event(ticket: Ticket, at: float) -> DeskEvent:
    """The event of a rating just stored on `ticket`."""
    assert ticket.rating is not None
    return DeskEvent(
        kind=DeskEventKind.RATING_GIVEN,
        chat_id=ticket.chat_id,
        department=ticket.department,
        at=at,
        data={
            "ticket_id": ticket.id,
            "rating": ticket.rating.value,
            "comment": ticket.rating_comment,
            "owner": ticket.owner,
        },
    )


class DeliveryState(enum.StrEnum):
    """Where one event's delivery to one webhook stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up after the webhook's retry time; an admin may replay it


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    """Where events are posted: for one department ('' for all), of some kinds (() for all)."""

    id: str
    url: str
    secret: str  # the HMAC key the receiver shares; never shown back
    department: str = ""
    events: tuple[DeskEventKind, ...] = ()
    created_at: float = 0.0

    def wants(self, event: DeskEvent) -> bool:
        """Whether this webhook subscribes to `event`."""
        return (not self.department or self.department == event.department) and (
            not self.events or event.kind in self.events
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One outbox row: one event for one webhook, and how its delivery stands."""

    id: int  # the outbox's order: a chat's events go out in this order
    delivery_id: str  # sent as X-Helpline-Delivery; the same on every attempt
    webhook_id: str
    chat_id: str
    kind: DeskEventKind
    body: str  # the JSON object posted, the same on every attempt
    queued_at: float  # when it was queued (or replayed): the retry time counts from here
    attempts: int
    next_attempt: float
    state: DeliveryState
    last_error: str = ""
    done_at: float | None = None
    url: str = ""  # the webhook's, for the deliverer
    secret: str = ""
