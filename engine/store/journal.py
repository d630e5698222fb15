"""The journal: live chats on disk, so that every live chat survives a crash and a restart.

Theory of operation:

Rule 1. A live chat is two things in SQLite: one row of `live_chats` holding the router's whole
        record of it as JSON (a `ChatRecord`), and its transcript in `live_entries`, one row per
        numbered line. `live_agents` holds the disconnect graces that are running. Deadlines are
        stored as wall-clock times, so they mean the same after a restart; one that passed while
        the engine was down fires once, at start.
Rule 2. The router writes records (one `JournalBatch` per loop iteration, group-committed with every
        other writer's jobs) and sessions append lines (`append_entries`); both do so before they
        tell anyone about the change. Nothing reads the journal while the engine runs.
Rule 3. A chat is always exactly one of live or ticketed: storing its ticket deletes its live rows
        in the same transaction (`forget`), and `write_batch` never writes a record for a chat
        that already has a ticket, so a late retry cannot bring an ended chat back.
Rule 4. The journal is read once, at start (`load`). A record that does not parse, or that names a
        department or agent that is gone, is not guessed at: `salvage` turns what is left of it,
        with every line it had, into a FAILED ticket.
Rule 5. A client message id is unique within a chat (a partial UNIQUE index), so a resent message
        is stored once, also across a restart.
Rule 6. Capacity is the database's too. `live_members` holds one row per agent and live chat it
        holds a seat in (owner or invitee, or an agent an open offer of the chat is made to: an
        offer reserves a seat, in the store as in the router's memory), so an agent's load is a
        count of its rows, which triggers keep in `agent_seats` as rows come and go (a check reads
        one row, however many chats the agent holds). Every seat an agent gains is checked against
        its capacity in the directory, in the transaction that adds it: on PostgreSQL the agent's
        row is read `FOR UPDATE`, so that two transactions that check one agent wait for each other
        (SQLite has one writer). An offer's seats are added by the write of the record that makes it
        (`JournalBatch.reserved`, `seats.mirror`): an agent found full gets no seat, the record is
        written all the same, and the write reports the refusal to the router (its outcome). An
        accept whose seat the offer's write reserved needs no other check, so it costs one commit;
        one without (refused, or an offer restored after a restart) is a claim first (`seats.claim`,
        the store's `submit_claim`), refused with `StoreError(code="over_capacity")` if the agent
        would then hold more chats than its capacity; the job's changes are rolled back, so nothing
        of it is left. A group commit that checks several agents locks their rows in agent order:
        two writers checking at once (only a holder and a node the fence is about to refuse) may
        still deadlock, and PostgreSQL then fails one of them, a transient failure. A record's
        members are mirrored without a check (`JournalBatch.members`): a record only gains a member
        through a seat held already, and a restored chat keeps its agents even when their capacity
        was lowered meanwhile. Storing a ticket (`forget`) deletes the chat's rows with its record.
Rule 7. An offer id names one open offer only: a record's offer ids are stored beside it
        (`live_chats.offer_id`, `handoff_id`, taken from the `ChatRecord` by `chat_row`, never
        parsed back from its JSON), and partial UNIQUE indexes over the rows that hold one refuse
        a second live chat with the same id, so that a bug cannot hand one offer to two chats.
        The columns cost a write little; indexes over the record's JSON cost it double.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from ..model.chatstate import ChatState
from ..model.desk_events import DeskEvent
from ..model.records import (
    AgentStatus,
    EndReason,
    Entry,
    Finish,
    Handoff,
    Ticket,
    TicketKind,
    Visitor,
)
from . import seats
from . import traces as trace_rows

if TYPE_CHECKING:
    from .contract import Connection

_FORMAT: Final = 1  # the record layout; a record with another value is salvaged, not restored


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OfferRecord:
    """An open offer of a chat, transfer or invite, with its deadline (wall-clock seconds)."""

    id: str
    kind: str  # "chat", "transfer", "invite"
    agents: tuple[str, ...]  # still open to these
    offered: tuple[str, ...]  # everyone it was made to
    from_agent: str
    to_department: str
    target: str
    note: str
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRecord:
    """The router's whole record of one live chat; every deadline is wall-clock seconds."""

    chat_id: str
    department: str
    question: str
    visitor: Visitor
    started_at: float
    resume_key: str
    state: ChatState
    owner: str
    members: tuple[str, ...]
    ever: tuple[str, ...]
    tried: tuple[str, ...]
    handoffs: tuple[Handoff, ...]
    accepted_at: float | None
    queue_key: int | None  # the chat's place in its department's queue, while queued
    offer: OfferRecord | None
    handoff: OfferRecord | None
    queue_deadline: float | None
    end_deadline: float | None
    visitor_deadline: float | None
    finish: Finish | None  # set once the chat is closing: how its ticket is to be written
    # routing (records written before these existed read as the defaults)
    skills: tuple[str, ...] = ()
    relaxed: bool = False
    tags: tuple[str, ...] = ()
    overflowed: tuple[str, ...] = ()
    barged: tuple[tuple[str, str], ...] = ()  # supervisors in the chat: (id, name)
    silence_deadline: float | None = None  # the owner's silence timer, while armed
    reassigning: bool = False  # the pending transfer is a re-offer after the owner went silent


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type[Visitor | OfferRecord | Handoff]) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _flat(record: Visitor | OfferRecord | Handoff) -> dict[str, Any]:
    """A record of plain fields (strings, numbers, tuples of them) as a dict: what `asdict` gives,
    without its deep copy of every value (the router journals a chat at each change)."""
    return {name: getattr(record, name) for name in _field_names(type(record))}


def dumps(record: ChatRecord) -> str:
    """A record as compact JSON."""
    doc: dict[str, Any] = {
        "format": _FORMAT,
        "department": record.department,
        "question": record.question,
        "visitor": _flat(record.visitor),
        "started_at": record.started_at,
        "resume_key": record.resume_key,
        "state": record.state.value,
        "owner": record.owner,
        "members": list(record.members),
        "ever": list(record.ever),
        "tried": list(record.tried),
        "handoffs": [_flat(h) for h in record.handoffs],
        "accepted_at": record.accepted_at,
        "queue_key": record.queue_key,
        "offer": None if record.offer is None else _flat(record.offer),
        "handoff": None if record.handoff is None else _flat(record.handoff),
        "queue_deadline": record.queue_deadline,
        "end_deadline": record.end_deadline,
        "visitor_deadline": record.visitor_deadline,
        "finish": None if record.finish is None else _finish_doc(record.finish),
        "skills": list(record.skills),
        "relaxed": record.relaxed,
        "tags": list(record.tags),
        "overflowed": list(record.overflowed),
        "barged": [list(pair) for pair in record.barged],
        "silence_deadline": record.silence_deadline,
        "reassigning": record.reassigning,
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


def _finish_doc(f: Finish) -> dict[str, Any]:
    return {
        "kind": f.kind.value,
        "reason": f.reason,
        "owner": f.owner,
        "agents": list(f.agents),
        "handoffs": [_flat(h) for h in f.handoffs],
        "accepted_at": f.accepted_at,
        "department": f.department,
        "tags": list(f.tags),
        "opens_at": f.opens_at,
    }


def loads(chat_id: str, text: str) -> ChatRecord:
    """Parse a record; ValueError if it is not one this engine wrote."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError("not a chat record of a known format")
        return ChatRecord(
            chat_id=chat_id,
            department=_str(doc, "department"),
            question=_str(doc, "question"),
            visitor=_visitor(doc["visitor"]),
            started_at=_num(doc, "started_at"),
            resume_key=_str(doc, "resume_key"),
            state=ChatState(_str(doc, "state")),
            owner=_str(doc, "owner"),
            members=_strs(doc, "members"),
            ever=_strs(doc, "ever"),
            tried=_strs(doc, "tried"),
            handoffs=_handoffs(doc["handoffs"]),
            accepted_at=_num_or_none(doc, "accepted_at"),
            queue_key=_int_or_none(doc, "queue_key"),
            offer=_offer(doc["offer"]),
            handoff=_offer(doc["handoff"]),
            queue_deadline=_num_or_none(doc, "queue_deadline"),
            end_deadline=_num_or_none(doc, "end_deadline"),
            visitor_deadline=_num_or_none(doc, "visitor_deadline"),
            finish=_finish(doc["finish"]),
            skills=_strs(doc, "skills") if "skills" in doc else (),
            relaxed=bool(doc.get("relaxed", False)),
            tags=_strs(doc, "tags") if "tags" in doc else (),
            overflowed=_strs(doc, "overflowed") if "overflowed" in doc else (),
            barged=_pairs(doc.get("barged", [])),
            silence_deadline=_num_or_none(doc, "silence_deadline")
            if "silence_deadline" in doc
            else None,
            reassigning=bool(doc.get("reassigning", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"chat {chat_id}: {exc!r}") from exc


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _num(doc: dict[str, Any], key: str) -> float:
    value = doc[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} is not a number")
    return float(value)


def _num_or_none(doc: dict[str, Any], key: str) -> float | None:
    return None if doc[key] is None else _num(doc, key)


def _int_or_none(doc: dict[str, Any], key: str) -> int | None:
    value = doc[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{key} is not an integer")
    return value


def _strs(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    value = doc[key]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} is not a list of strings")
    return tuple(value)


def _pairs(items: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise ValueError("barged is not a list")
    pairs = []
    for item in items:
        if not (
            isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
        ):
            raise ValueError("barged holds a bad pair")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _visitor(doc: Any) -> Visitor:
    if not isinstance(doc, dict):
        raise TypeError("visitor is not an object")
    return Visitor(**{k: _str(doc, k) for k in doc})


def _handoffs(items: Any) -> tuple[Handoff, ...]:
    if not isinstance(items, list):
        raise TypeError("handoffs is not a list")
    return tuple(Handoff(**item) for item in items)


def _offer(doc: Any) -> OfferRecord | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise TypeError("offer is not an object")
    return OfferRecord(
        id=_str(doc, "id"),
        kind=_str(doc, "kind"),
        agents=_strs(doc, "agents"),
        offered=_strs(doc, "offered"),
        from_agent=_str(doc, "from_agent"),
        to_department=_str(doc, "to_department"),
        target=_str(doc, "target"),
        note=_str(doc, "note"),
        deadline=_num(doc, "deadline"),
    )


def _finish(doc: Any) -> Finish | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise TypeError("finish is not an object")
    reason = _str(doc, "reason")
    EndReason(reason)  # refuse a reason this engine does not know
    return Finish(
        kind=TicketKind(_str(doc, "kind")),
        reason=reason,
        owner=_str(doc, "owner"),
        agents=_strs(doc, "agents"),
        handoffs=_handoffs(doc["handoffs"]),
        accepted_at=_num_or_none(doc, "accepted_at"),
        department=doc["department"] if isinstance(doc.get("department"), str) else "",
        tags=_strs(doc, "tags") if "tags" in doc else (),
        opens_at=_num_or_none(doc, "opens_at") if "opens_at" in doc else None,
    )


# --- writing -----------------------------------------------------------------------------------


class ChatRow(NamedTuple):
    """A chat's record as the journal stores it: its JSON, and the ids of its open offer and of
    its open transfer or invite (None for none), which unique indexes guard (Rule 7)."""

    chat_id: str
    record: str
    offer_id: str | None = None
    handoff_id: str | None = None


def chat_row(record: ChatRecord) -> ChatRow:
    """The row of a record: its JSON (`dumps`) and its offer ids."""
    return ChatRow(
        record.chat_id,
        dumps(record),
        None if record.offer is None else record.offer.id,
        None if record.handoff is None else record.handoff.id,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalBatch:
    """What one router loop iteration changed: written in one job, all or nothing.

    `chats` are records with their offer ids (`chat_row`); `graces` are (agent id, wall-clock
    deadline, or None when the grace is over); `presence` are (agent id, status, ringtone);
    `tickets` are failed-chat tickets of crashed sessions (stored unless the chat has one
    already); `forget` are chats whose opening was refused, of which nothing may be left;
    `traces` are finished chats' routing traces (`store.traces`); `events` are the webhook events
    the iteration decided, queued in the outbox by the same transaction (model.desk_events).
    `members` are (chat id, its agents) for the chats of `chats`, mirrored into `live_members`,
    and `reserved` (chat id, the agents its open offer is made to), whose seats are checked
    (Rule 6).
    """

    chats: tuple[ChatRow, ...] = ()
    graces: tuple[tuple[str, float | None], ...] = ()
    presence: tuple[tuple[str, AgentStatus, bool], ...] = ()
    tickets: tuple[Ticket, ...] = ()
    forget: tuple[str, ...] = ()
    traces: tuple[trace_rows.TraceRow, ...] = ()
    events: tuple[DeskEvent, ...] = ()
    members: tuple[tuple[str, tuple[str, ...]], ...] = ()
    reserved: tuple[tuple[str, tuple[str, ...]], ...] = ()


def write_batch(conn: Connection, batch: JournalBatch) -> tuple[tuple[str, str], ...]:
    """Write the router's records, graces and presence (failed tickets are the store's part);
    returns the (chat id, agent id) seats of offers refused (Rule 6)."""
    if batch.chats:  # (an empty executemany still costs a call into SQLite)
        conn.executemany(
            "INSERT INTO live_chats (chat_id, record, offer_id, handoff_id) SELECT ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM tickets WHERE chat_id = ?)"
            " ON CONFLICT (chat_id) DO UPDATE SET record = excluded.record,"
            " offer_id = excluded.offer_id, handoff_id = excluded.handoff_id",
            [(c.chat_id, c.record, c.offer_id, c.handoff_id, c.chat_id) for c in batch.chats],
        )
    for agent_id, until in batch.graces:
        if until is None:
            conn.execute("DELETE FROM live_agents WHERE agent_id = ?", (agent_id,))
        else:
            conn.execute(
                "INSERT INTO live_agents (agent_id, grace_until) VALUES (?, ?)"
                " ON CONFLICT (agent_id) DO UPDATE SET grace_until = excluded.grace_until",
                (agent_id, until),
            )
    if batch.presence:  # an agent removed meanwhile matches no row, which is fine
        conn.executemany(
            "UPDATE agents SET status = ?, ringtone = ? WHERE id = ?",
            [(status.value, int(ringtone), a) for a, status, ringtone in batch.presence],
        )
    for chat_id in batch.forget:
        forget(conn, chat_id)
    if batch.traces:
        trace_rows.write(conn, batch.traces)
    return seats.mirror(conn, batch.members, batch.reserved) if batch.members else ()


EntryRow = tuple[str, int, float, str, str, str, str]  # chat_id, seq, at, kind, author, text, id


def append_entries(conn: Connection, rows: Sequence[EntryRow]) -> None:
    """Store live chats' new lines (writing a line again with the same number replaces it)."""
    conn.executemany(
        "INSERT INTO live_entries (chat_id, seq, at, kind, author, text, client_msg_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (chat_id, seq) DO UPDATE SET at = excluded.at,"
        " kind = excluded.kind, author = excluded.author, text = excluded.text,"
        " client_msg_id = excluded.client_msg_id",
        rows,
    )


def forget(conn: Connection, chat_id: str) -> None:
    """Delete a chat's live rows (with the write that stores its ticket, or of a refused chat)."""
    conn.execute("DELETE FROM live_chats WHERE chat_id = ?", (chat_id,))
    conn.execute("DELETE FROM live_entries WHERE chat_id = ?", (chat_id,))
    conn.execute("DELETE FROM live_members WHERE chat_id = ?", (chat_id,))


# --- reading back ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class JournaledChat:
    """One chat as the journal holds it: its record (None if only lines are left) and lines."""

    chat_id: str
    record: str | None
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveState:
    """Everything the journal holds, read at start."""

    chats: tuple[JournaledChat, ...]
    graces: dict[str, float]


def load(conn: Connection) -> LiveState:
    """Read every live chat with its lines in order, and the running disconnect graces."""
    records = dict(conn.execute("SELECT chat_id, record FROM live_chats ORDER BY chat_id"))
    entries: dict[str, list[Entry]] = {}
    for chat_id, seq, at, kind, author, text, client_msg_id in conn.execute(
        "SELECT chat_id, seq, at, kind, author, text, client_msg_id FROM live_entries"
        " ORDER BY chat_id, seq"
    ):
        entries.setdefault(chat_id, []).append(
            Entry(seq=seq, at=at, kind=kind, author=author, text=text, client_msg_id=client_msg_id)
        )
    chats = tuple(
        JournaledChat(chat_id=c, record=records.get(c), entries=tuple(entries.get(c, ())))
        for c in sorted(records.keys() | entries.keys())
    )
    graces = dict(conn.execute("SELECT agent_id, grace_until FROM live_agents"))
    return LiveState(chats=chats, graces=graces)


def salvage(chat: JournaledChat, now: float) -> Ticket:
    """A FAILED ticket holding whatever can be read of a chat that cannot be restored."""
    doc: dict[str, Any] = {}
    if chat.record is not None:
        try:
            parsed = json.loads(chat.record)
        except ValueError:
            parsed = None
        doc = parsed if isinstance(parsed, dict) else {}

    def text(key: str) -> str:
        value = doc.get(key)
        return value if isinstance(value, str) else ""

    def number(key: str) -> float | None:
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    raw = doc.get("visitor")
    fields = Visitor.__dataclass_fields__
    visitor = (
        {k: v for k, v in raw.items() if k in fields and isinstance(v, str)}
        if isinstance(raw, dict)
        else {}
    )
    ever = doc.get("ever")
    agents = tuple(a for a in ever if isinstance(a, str)) if isinstance(ever, list) else ()
    started = number("started_at")
    if started is None:
        started = chat.entries[0].at if chat.entries else now
    finish = Finish.crashed(owner=text("owner"), agents=agents, accepted_at=number("accepted_at"))
    return finish.ticket(
        chat_id=chat.chat_id,
        department=text("department"),
        question=text("question"),
        visitor=Visitor(**{"name": "", **visitor}),
        entries=chat.entries,
        started_at=started,
        ended_at=now,
    )


def entries_by_client_id(entries: Iterable[Entry]) -> dict[str, int]:
    """Client message id -> sequence number, for the messages that carried one."""
    return {e.client_msg_id: e.seq for e in entries if e.kind == "message" and e.client_msg_id}
