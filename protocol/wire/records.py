"""From the engine's objects to the wire's maps: events, transcript entries, and records.

Theory of operation
-------------------
The engine speaks in frozen dataclasses (``engine.ChatMessage``, ``engine.Ticket``...); the wire
speaks in msgpack maps whose fields SPEC.md lists. This module is the one place that translates,
so a field is named and shaped the same way wherever it appears: :func:`wire_event` maps every
engine event to the wire event of the same meaning, and the ``*_record`` functions build the
records of SPEC.md section 5 (Visitor, Entry, Chat, Department, Agent, Ticket, Canned
category, Canned message).

Two rules of SPEC.md are applied here rather than trusted to callers:

- The notes of transfers and invites are for agents: the engine keeps them as the ``detail`` of
  ``transferred``/``invited`` transcript lines, and they never appear in ``system`` events or
  entries (tickets keep them in ``handoffs``). Only ``left``, ``requeued`` and ``ended`` carry a
  ``detail`` (why); ``ending`` carries its ``delay`` in seconds instead.
- No server frame may exceed the client's limits (SPEC.md section 4): :func:`fit` cuts a long
  list (a transcript) until its frame fits and marks the result ``truncated``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeVar

import msgpack

from engine import (
    Agent,
    AuditEntry,
    Availability,
    CannedCategory,
    CannedMessage,
    ChatAssigned,
    ChatEnded,
    ChatMessage,
    ChatRemoved,
    Department,
    DeskChanged,
    DeskChat,
    DeskQueue,
    Entry,
    Event,
    Handoff,
    HandoffResult,
    Offer,
    OfferWithdrawn,
    Queued,
    RoutingTrace,
    StatusChanged,
    SystemEvent,
    Ticket,
    Typing,
    Visitor,
    WhisperMessage,
)

from .frames import RATINGS, SERVER_FRAME_LIMITS

__all__ = [
    "NameOf",
    "agent_record",
    "audit_agent",
    "audit_record",
    "availability_record",
    "canned_category_record",
    "canned_message_record",
    "canned_suggestion_record",
    "department_record",
    "desk_chat_record",
    "desk_queue_record",
    "entry_record",
    "fit",
    "rating_report_record",
    "routing_trace_record",
    "ticket_record",
    "visitor_record",
    "wire_event",
]

Fields = dict[str, object]
NameOf = Callable[[str], str]
"""Looks up an agent's display name by id (the id itself for an agent that is gone)."""
T = TypeVar("T")

_DETAILED: Final = frozenset({"left", "requeued", "ended", "reassigning"})  # detail says why
_FRAME_BUDGET: Final = SERVER_FRAME_LIMITS.max_frame_size - 4096  # room for the envelope
_MAX_ITEMS: Final = SERVER_FRAME_LIMITS.max_list_len


def wire_event(event: Event, name_of: NameOf) -> tuple[str, Fields]:
    """The wire event (name, fields) for one engine event; ``name_of`` names agents."""
    match event:
        case ChatMessage():
            return "message", _message(
                event.chat_id,
                event.seq,
                event.at,
                event.author,
                event.author_name,
                event.text,
                event.client_msg_id,
            )
        case SystemEvent():
            fields: Fields = {"chat_id": event.chat_id, "seq": event.seq, "at": event.at}
            fields.update(_system(event.event, event.agent, event.detail, name_of))
            return "system", fields
        case Typing():
            return "typing", {"chat_id": event.chat_id, "author": event.author, "on": event.on}
        case Queued():
            queued: Fields = {"chat_id": event.chat_id, "position": event.position}
            if event.eta is not None:
                queued["eta"] = float(event.eta)
            return "queued", queued
        case ChatEnded():
            ended: Fields = {"chat_id": event.chat_id, "reason": event.reason}
            if event.ticket_id is not None:
                ended["ticket_id"] = event.ticket_id
            if event.opens_at is not None:
                ended["opens_at"] = event.opens_at
            return "ended", ended
        case Offer():
            offer: Fields = {
                "offer_id": event.offer_id,
                "chat_id": event.chat_id,
                "department": event.department,
                "kind": event.kind,
                "question": event.question,
                "visitor": visitor_record(event.visitor, with_id=False),
                "ringtone": event.ringtone,
                "expires_in": float(event.expires_in),
            }
            if event.kind != "chat":
                offer["note"] = event.note
                offer["from_agent"] = event.from_agent
                offer["from_agent_name"] = name_of(event.from_agent) if event.from_agent else ""
            return "offer", offer
        case OfferWithdrawn():
            return "offer_withdrawn", {
                "offer_id": event.offer_id,
                "chat_id": event.chat_id,
                "reason": event.reason,
            }
        case HandoffResult():
            return "handoff_result", {
                "chat_id": event.chat_id,
                "kind": event.kind,
                "outcome": event.outcome,
                "target": event.target,
            }
        case ChatAssigned():
            return "chat_assigned", {"chat_id": event.chat_id, "role": event.role}
        case ChatRemoved():
            return "chat_removed", {"chat_id": event.chat_id, "reason": event.reason}
        case StatusChanged():
            return "status", {"status": event.status, "ringtone": event.ringtone}
        case WhisperMessage():
            whisper = _message(
                event.chat_id, event.seq, event.at, event.author, event.author_name, event.text, ""
            )
            return "whisper", whisper
        case DeskChanged():
            return "desk_changed", {
                "chats": [desk_chat_record(c) for c in event.chats],
                "removed": list(event.removed),
                "queues": [desk_queue_record(q) for q in event.queues],
            }
    raise TypeError(f"no wire event for {type(event).__name__}")


def _message(
    chat_id: str,
    seq: int,
    at: float,
    author: str,
    author_name: str,
    text: str,
    client_msg_id: str,
) -> Fields:
    fields: Fields = {
        "chat_id": chat_id,
        "seq": seq,
        "at": at,
        "author": author,
        "author_name": author_name,
        "text": text,
    }
    if client_msg_id:
        fields["client_msg_id"] = client_msg_id
    return fields


def _system(kind: str, agent: str, detail: str, name_of: NameOf) -> Fields:
    """The fields a system line shares between ``system`` events and entries."""
    fields: Fields = {"kind": kind}
    if agent:
        fields["agent"] = agent
        fields["agent_name"] = name_of(agent)
    if kind == "ending":
        try:
            fields["delay"] = float(detail)
        except ValueError:
            pass
    elif kind in _DETAILED and detail:
        fields["detail"] = detail
    return fields


def desk_chat_record(chat: DeskChat) -> Fields:
    """One row of a supervisor's desk (SPEC.md section 5, Desk chat)."""
    return {
        "chat_id": chat.chat_id,
        "department": chat.department,
        "state": chat.state,
        "owner": chat.owner,
        "agents": list(chat.agents),
        "started_at": chat.started_at,
        "accepted_at": chat.accepted_at,
        "wait": chat.wait,
        "last_message_at": chat.last_message_at,
        "visitor_name": chat.visitor_name,
        "question": chat.question,
        "agent_names": list(chat.agent_names),
    }


def desk_queue_record(queue: DeskQueue) -> Fields:
    """One department's queue on a supervisor's desk."""
    return {"department": queue.department, "chats": list(queue.chats)}


def entry_record(entry: Entry, visitor_name: str, name_of: NameOf) -> Fields:
    """One transcript line as an Entry record (SPEC.md section 5); a whisper is marked
    ``internal``."""
    if entry.kind == "whisper":
        fields = _message("", entry.seq, entry.at, entry.author, name_of(entry.author), "", "")
        del fields["chat_id"]
        fields.update(kind="whisper", text=entry.text, internal=True)
        return fields
    if entry.kind == "message":
        name = visitor_name if entry.author == "visitor" else name_of(entry.author)
        fields = _message("", entry.seq, entry.at, entry.author, name, entry.text, "")
        del fields["chat_id"]
        fields["kind"] = "message"
        if entry.client_msg_id:
            fields["client_msg_id"] = entry.client_msg_id
        return fields
    agent = "" if entry.author == "system" else entry.author
    fields = {
        "seq": entry.seq,
        "at": entry.at,
        "author": entry.author,
        "author_name": name_of(agent) if agent else "",
        "text": "",
    }
    fields.update(_system(entry.kind, agent, entry.text, name_of))
    return fields


def visitor_record(visitor: Visitor, *, with_id: bool = True) -> Fields:
    """A Visitor record; offers leave out ``visitor_id``."""
    fields: Fields = {
        "name": visitor.name,
        "email": visitor.email,
        "browser": visitor.browser,
        "os": visitor.os,
        "location": visitor.location,
    }
    if with_id:
        fields["visitor_id"] = visitor.visitor_id or visitor.claimed_id
        fields["verified"] = bool(visitor.visitor_id)
    return fields


def department_record(department: Department) -> Fields:
    """A Department record."""
    return {
        "id": department.id,
        "name": department.name,
        "chat_enabled": department.chat_enabled,
        "routing": department.routing.value,
        "offer_window": float(department.offer_window),
        "queue_timeout": float(department.queue_timeout),
        "queue_limit": department.queue_limit,
        "overflow_wait": float(department.overflow_wait),
        "overflow_queue": department.overflow_queue,
        "overflow_to": list(department.overflow_to),
        "silence_timeout": float(department.silence_timeout),
        "skills_wait": float(department.skills_wait),
        "hours": {
            "timezone": department.hours.timezone,
            "weekly": list(department.hours.weekly),
            "holidays": list(department.hours.holidays),
        },
    }


def agent_record(agent: Agent, load: int) -> Fields:
    """An Agent record; ``load`` comes from the router (chats held plus pending offers)."""
    return {
        "id": agent.id,
        "name": agent.name,
        "departments": list(agent.departments),
        "capacity": agent.capacity,
        "status": agent.status.value,
        "ringtone": agent.ringtone,
        "load": load,
        "skills": list(agent.skills),
    }


def availability_record(agent: Availability) -> Fields:
    """An ``available_agents`` item."""
    return {
        "id": agent.id,
        "name": agent.name,
        "departments": list(agent.departments),
        "load": agent.load,
        "capacity": agent.capacity,
    }


def _handoff_record(handoff: Handoff) -> Fields:
    return {
        "kind": handoff.kind,
        "from_agent": handoff.from_agent,
        "to_agent": handoff.to_agent,
        "to_department": handoff.to_department,
        "note": handoff.note,
        "outcome": handoff.outcome,
        "at": handoff.at,
    }


def ticket_record(ticket: Ticket, name_of: NameOf, *, summary: bool = False) -> Fields:
    """A Ticket record, or a ticket summary (without entries, handoffs and rating comment)."""
    fields: Fields = {
        "id": ticket.id,
        "chat_id": ticket.chat_id,
        "kind": ticket.kind.value,
        "department": ticket.department,
        "question": ticket.question,
        "visitor": visitor_record(ticket.visitor),
        "agents": list(ticket.agents),
        "owner": ticket.owner,
        "started_at": ticket.started_at,
        "accepted_at": ticket.accepted_at,
        "ended_at": ticket.ended_at,
        "end_reason": ticket.end_reason.value,
        "rating": None if ticket.rating is None else ticket.rating.value,
        "score": ticket.score,
        "handled": ticket.handled,
        "tags": list(ticket.tags),
    }
    if not summary:
        fields["entries"] = [entry_record(e, ticket.visitor.name, name_of) for e in ticket.entries]
        fields["handoffs"] = [_handoff_record(h) for h in ticket.handoffs]
        fields["rating_comment"] = ticket.rating_comment
    return fields


def routing_trace_record(trace: RoutingTrace) -> Fields:
    """The ``routing_trace`` reply: a chat's routing steps with their candidates."""
    return {
        "chat_id": trace.chat_id,
        "live": trace.live,
        "dropped": trace.dropped,
        "steps": [step.doc() for step in trace.steps],
    }


def canned_category_record(category: CannedCategory) -> Fields:
    """A Canned category record."""
    return {"id": category.id, "name": category.name}


def canned_message_record(message: CannedMessage) -> Fields:
    """A Canned message record; ``department`` is None for a message shared by all departments."""
    return {
        "id": message.id,
        "text": message.text,
        "category": message.category,
        "department": message.department,
        "created_at": float(message.created_at),
        "title": message.title,
        "shortcut": message.shortcut,
        "reading": message.reading,
    }


def canned_suggestion_record(message: CannedMessage, category_name: str) -> Fields:
    """One ``canned_suggest`` suggestion: the message's id, text, labels, category and
    department (None: shared by every department)."""
    return {
        "message_id": message.id,
        "text": message.text,
        "title": message.title,
        "shortcut": message.shortcut,
        "category": message.category,
        "category_name": category_name,
        "department": message.department,
    }


def rating_report_record(report: Mapping[str, Mapping[str, Mapping[str, int]]]) -> Fields:
    """The fields of a ``rating_report`` reply, from the store's report.

    ``report`` maps ``"agents"`` and ``"departments"`` to counts per id; the totals are summed
    over the departments (every rated ticket has one department, not always an owner).
    """
    by_department = report.get("departments", {})
    totals = {
        key: sum(counts.get(key, 0) for counts in by_department.values())
        for key in (*RATINGS, *_SCORE_KEYS)
    }
    return {
        **_counts(totals),
        "by_agent": [
            {"agent_id": agent_id, **_counts(counts)}
            for agent_id, counts in sorted(report.get("agents", {}).items())
        ],
        "by_department": [
            {"department": department, **_counts(counts)}
            for department, counts in sorted(by_department.items())
        ],
    }


_SCORE_KEYS: Final = ("scored", "score_sum")


def _counts(counts: Mapping[str, int]) -> dict[str, object]:
    """The three counts, ``scored`` (ratings that came with a score) and ``average_score`` (their
    mean, rounded to two places, or None when none did)."""
    scored = counts.get("scored", 0)
    return {
        **{rating: counts.get(rating, 0) for rating in RATINGS},
        "scored": scored,
        "average_score": round(counts.get("score_sum", 0) / scored, 2) if scored else None,
    }


def fit(items: Sequence[T], build: Callable[[Sequence[T]], Fields]) -> Fields:
    """``build(items)``, or ``build`` of the longest head of ``items`` whose frame fits.

    A cut result gets ``truncated: true`` (SPEC.md section 5). Building is cheap next to the
    store read that produced ``items``, and only results close to the limit are measured twice.
    """
    whole = build(items[:_MAX_ITEMS])
    if len(items) <= _MAX_ITEMS and _size(whole) <= _FRAME_BUDGET:
        return whole
    low, high = 0, min(len(items), _MAX_ITEMS)  # build(items[:low]) fits; [:high] may not
    while low < high:
        middle = (low + high + 1) // 2
        if _size(build(items[:middle])) <= _FRAME_BUDGET:
            low = middle
        else:
            high = middle - 1
    cut = build(items[:low])
    cut["truncated"] = True
    return cut


def _size(fields: Fields) -> int:
    return len(msgpack.packb(fields, use_bin_type=True))


def audit_record(entry: AuditEntry) -> Fields:
    """An Audit entry record (SPEC.md section 5)."""
    return {
        "id": entry.id,
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "target": entry.target,
        "before": None if entry.before is None else dict(entry.before),
        "after": None if entry.after is None else dict(entry.after),
    }


def audit_agent(agent: Agent) -> Fields:
    """An agent's settings as the audit log keeps them (presence is the agent's own)."""
    return {
        "id": agent.id,
        "name": agent.name,
        "departments": list(agent.departments),
        "capacity": agent.capacity,
        "skills": list(agent.skills),
    }
