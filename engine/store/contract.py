"""The store's contract: what the engine, the journal and the command line may rely on.

Theory of operation
===================

A store keeps tickets, departments, agents, access tokens, canned messages and the journal of live
chats. Two implementations honour this contract, SQLite (``engine.store.sqlite_store``) and
PostgreSQL (``engine.store.postgres``); ``tests/test_store_contract.py`` runs one suite against
both.

Promise 1: a write that returns (or whose callback reports success) has been committed. Writes go
through one writer with group commit: many writes share one transaction, each under its own
savepoint (a write alone in its transaction needs none), so a write that fails undoes only itself.

Promise 2: a read that starts after a write returned sees that write, and sees one committed
snapshot throughout.

Promise 3: the schema guards what it can, whatever the code above it does: one ticket per chat
(``UNIQUE(chat_id)``), one live line per chat and number, one client message id per chat, one chat
per open offer id.

Failures are ``StoreError`` (``engine.StoreError``) carrying a wire ``code``:

========================  =====================================================================
``store_failed``          the database refused or failed (its own error is the ``__cause__``)
``store_closed``          the store was closed before the request reached it
``store_busy``            too many writes are pending (``submit_journal`` only; writes wait)
``not_found``             no such ticket, agent or webhook (``NotFound``)
``ticket_exists``         the chat has a ticket already (``TicketExists``)
``already_rated``         the chat was rated before (``AlreadyRated``)
``token_exists``          that token hash is stored already
``webhook_exists``        a webhook with that id is stored already
``schema_too_new``        the database was written by a newer helpline (raised when opening)
``over_capacity``         a claim would put an agent over its capacity (``seats.claim``)
``lease_lost``            several nodes: this node no longer holds the routing lease
========================  =====================================================================

``write`` and ``read`` run a function on the store's own connection, for code that keeps its own
tables (the canned messages). That SQL is written once for both databases: ``?`` placeholders, and
only what SQLite and PostgreSQL both understand (``INSERT ... ON CONFLICT``, ``RETURNING``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from ..model.audit import AuditEntry
from ..model.desk_events import Delivery, DeliveryState, Webhook
from ..model.records import Agent, Department, Entry, Rating, Ticket, TicketKind
from .journal import JournalBatch, LiveState

__all__ = ["Connection", "Cursor", "RatingReport", "Store"]

T = TypeVar("T")

RatingReport = dict[str, dict[str, dict[str, int]]]


class Cursor(Protocol):
    """The part of a DB-API cursor the store's SQL uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection taking ``?`` placeholders: ``sqlite3.Connection``, or PostgreSQL's adapter."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]], /) -> Cursor: ...


class Store(Protocol):
    """A helpline store; ``engine.open_store(url)`` opens one for the duration of a block."""

    #: The schema version of the database now, and the one it had when it was opened (lower when
    #: opening it applied migrations).
    schema_version: int
    migrated_from: int
    #: Called in the trio thread after each group commit with (seconds it took, writes it
    #: carried), for metrics; None by default. It must not block.
    on_commit: Callable[[float, int], None] | None

    # -- generic --------------------------------------------------------------------------------

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the writer's transaction (under its own savepoint when it shares the
        transaction with other writes); return once committed.

        If ``fn`` raises, only its changes are undone and its exception is raised here (a database
        error as ``StoreError("store_failed")``). ``StoreClosed`` if the store is closed. Waits for
        room when too many writes are pending. If the caller is cancelled the write still runs.
        """
        ...

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one read-only transaction on a reader connection and return its result.

        Sees every write acknowledged before the call. Database errors are ``StoreError``.
        """
        ...

    # -- tickets --------------------------------------------------------------------------------

    async def save_ticket(self, ticket: Ticket) -> Ticket:
        """Store a new ticket, and delete the chat's live rows, in one committed transaction.

        Returns the ticket with the id the store assigned. ``TicketExists`` if the chat has a
        ticket (the first stays as it was); ``ValueError`` if ``ticket.id`` is set. The webhook
        events the ticket reports (``chat.ended`` or ``chat.missed``, then ``ticket.created``)
        are queued in the same transaction.
        """
        ...

    async def ticket(self, ticket_id: int) -> Ticket:
        """The ticket with that id; ``NotFound`` if there is none."""
        ...

    async def ticket_for_chat(self, chat_id: str) -> Ticket:
        """The ticket of that chat; ``NotFound`` if there is none."""
        ...

    async def tickets(
        self,
        *,
        kind: TicketKind | None = None,
        department: str | None = None,
        agent: str | None = None,
        visitor_email: str | None = None,
        visitor_id: str | None = None,
        since: float | None = None,
        until: float | None = None,
        handled: bool | None = None,
        limit: int = 20,
        offset: int = 0,
        tag: str | None = None,
    ) -> list[Ticket]:
        """One page of the tickets matching every filter, newest (``ended_at``, then id) first.

        ``tag`` matches a ticket carrying that tag; ``agent`` matches anyone who handled the
        chat; ``visitor_email`` ignores case; the period is ``since <= ended_at < until``.
        ``ValueError`` unless ``0 <= limit <= MAX_PAGE`` and ``offset >= 0``.
        """
        ...

    async def mark_handled(self, ticket_id: int) -> Ticket:
        """Mark a ticket as followed up (idempotent), committed; ``NotFound`` if there is none."""
        ...

    async def rate(
        self,
        chat_id: str,
        rating: Rating,
        comment: str = "",
        score: int | None = None,
        *,
        at: float | None = None,
    ) -> Ticket:
        """Record the visitor's rating (and its 1..5 ``score``, if given), committed, once; then
        ``AlreadyRated`` (nothing changes).

        ``NotFound`` if the chat has no ticket. Of ratings sent at once, exactly one wins. The
        ``rating.given`` webhook event (at ``at``, default now) is queued in the same transaction.
        """
        ...

    async def rating_report(
        self, *, since: float | None = None, until: float | None = None
    ) -> RatingReport:
        """Counts of good / neutral / bad per owning agent and per department.

        ``{"agents": {id: {"good": n, ..., "scored": n, "score_sum": n}}, "departments": {...}}``
        (``scored``: the rated tickets that carry a score; ``score_sum``: their scores added up);
        only rated tickets that ended in ``since <= ended_at < until`` count, and only names with
        a rating appear.
        """
        ...

    # -- the journal of live chats --------------------------------------------------------------

    async def append_entries(self, chat_id: str, entries: Sequence[Entry]) -> None:
        """Store a live chat's new lines; returns once committed.

        A line written again with the same number replaces it. A client message id already
        stored in the chat under another number is refused (``StoreError``).
        """
        ...

    def submit_journal(self, batch: JournalBatch, on_done: Callable[[object], None]) -> None:
        """Hand the router's batch over without blocking or awaiting; all of it or none commits.

        ``on_done`` is called later, in the trio thread outside any task, after the COMMIT, with
        None, or the (chat id, agent id) seats of ``batch.reserved`` refused because the agent
        is full (a non-empty tuple), or the exception (``StoreClosed``, ``StoreBusy`` when too many
        writes are pending, ``StoreError``); never re-entrantly from this call. A record of a
        chat that has a ticket is not written; a failed ticket of the batch that finds the chat
        ticketed is dropped. The batch's webhook events, and those of its failed tickets, are
        queued with it. The records' members and their offers' reserved seats are mirrored into
        ``live_members`` (``store.journal``, Rule 6).
        """
        ...

    def submit_claim(self, chat_id: str, agent_id: str, on_done: Callable[[object], None]) -> None:
        """Give an agent a seat in a live chat, checked against its capacity, without waiting.

        In one transaction: lock the agent's directory row, add the seat, and read the agent's count
        of seats in every live chat (``agent_seats``). ``on_done`` is called as for
        ``submit_journal``, with None once committed, or ``StoreError(code="over_capacity")`` when
        the agent would then hold more chats than its capacity in the directory (nothing of the
        claim is left), or another error (``not_found`` when no such agent). A seat already held is
        not counted twice.
        """
        ...

    async def live_state(self) -> LiveState:
        """Every live chat the journal holds, with its lines in order, and the running graces."""
        ...

    # -- departments and agents -----------------------------------------------------------------

    async def save_department(self, d: Department) -> None:
        """Insert or replace a department's settings; returns once committed."""
        ...

    async def departments(self) -> list[Department]:
        """Every department, by id."""
        ...

    async def save_agent(self, a: Agent) -> None:
        """Insert or replace an agent with its departments (in order), status and ringtone."""
        ...

    async def agents(self) -> list[Agent]:
        """Every agent, by id, with its departments in order."""
        ...

    async def remove_agent(self, agent_id: str) -> None:
        """Delete an agent and its department list, committed; ``NotFound`` if there is none."""
        ...

    # -- access tokens (hashes only) ------------------------------------------------------------

    async def save_token(
        self,
        *,
        token_hash: str,
        role: str,
        subject: str,
        created_at: float,
        departments: Sequence[str] = (),
    ) -> None:
        """Store a token's hash, with the departments it covers (a supervisor's), in one
        committed transaction; ``StoreError("token_exists")`` if the hash is stored."""
        ...

    async def token_departments(self, token_hash: str) -> tuple[str, ...]:
        """The departments stored with that token, sorted; empty for none or no such token.
        Revoking a token deletes them with it."""
        ...

    async def token(self, token_hash: str) -> tuple[str, str] | None:
        """``(role, subject)`` of the token with that hash, or None."""
        ...

    async def revoke_tokens(self, *, subject: str) -> int:
        """Delete every token of ``subject``, committed; returns how many there were."""
        ...

    async def count_tokens(self, *, role: str) -> int:
        """How many tokens have that role."""
        ...

    # -- changes made outside the daemon -------------------------------------------------------

    async def note_config_change(self) -> None:
        """Bump the configuration counter, committed: a running daemon reloads departments,
        agents and canned messages when it sees the counter move."""
        ...

    async def config_version(self) -> int:
        """The configuration counter (0 in a new store)."""
        ...

    # -- the audit log -------------------------------------------------------------------------

    async def record_audit(self, entry: AuditEntry) -> AuditEntry:
        """Append one audit entry, committed; returns it with its id. ``ValueError`` if
        ``entry.id`` is set or ``before``/``after`` are not JSON-serialisable."""
        ...

    async def audit(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[AuditEntry]:
        """One page of audit entries matching every filter, newest (``at``, then id) first;
        the period is ``since <= at < until``. ``ValueError`` unless ``0 <= limit <= 1000`` and
        ``offset >= 0``."""
        ...

    # -- webhooks and their outbox (``engine.store.outbox``) -------------------------------------

    async def save_webhook(self, hook: Webhook) -> None:
        """Store a new webhook, committed; ``StoreError("webhook_exists")`` if the id is taken."""
        ...

    async def webhooks(self) -> list[Webhook]:
        """Every webhook, by id, with its secret."""
        ...

    async def remove_webhook(self, webhook_id: str) -> None:
        """Delete a webhook and all its outbox rows, committed; ``NotFound`` if there is none."""
        ...

    async def outbox_due(self, now: float, *, limit: int = 100) -> list[Delivery]:
        """What may be attempted at ``now``: for each (webhook, chat), its oldest pending row,
        when that row's ``next_attempt <= now``; in outbox order, at most ``limit``. A chat's
        later rows are never due while an earlier one is pending."""
        ...

    async def outbox_mark(
        self,
        row_id: int,
        *,
        state: DeliveryState,
        attempts: int,
        next_attempt: float,
        error: str = "",
        now: float,
    ) -> None:
        """Record an attempt's outcome on a pending row, committed: delivered, pending again at
        ``next_attempt``, or failed (with ``error``). A row no longer pending is left alone."""
        ...

    async def outbox_failures(
        self, *, webhook_id: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """The failed (given up) deliveries, oldest first, of one webhook or of all."""
        ...

    async def outbox_replay(
        self,
        *,
        now: float,
        webhook_id: str | None = None,
        delivery_ids: Sequence[str] = (),
    ) -> int:
        """Make failed deliveries pending again (all, one webhook's, or those named), due at
        ``now`` with their attempts and retry time restarted, committed; returns how many."""
        ...

    async def outbox_discard(
        self, *, webhook_id: str | None = None, delivery_ids: Sequence[str] = ()
    ) -> int:
        """Delete failed deliveries (all, one webhook's, or those named), committed; returns how
        many. Pending and delivered rows stay."""
        ...

    async def outbox_purge(self, *, delivered_before: float) -> int:
        """Delete the delivered rows whose delivery was recorded (``done_at``) before
        ``delivered_before``, committed; returns how many. Pending and failed rows stay."""
        ...

    async def outbox_counts(self) -> dict[str, int]:
        """How many outbox rows are pending, delivered and failed."""
        ...
