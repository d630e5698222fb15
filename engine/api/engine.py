"""The embedding API: open the engine over a configuration and a database, then talk to it.

    async with open_engine(EngineConfig(...), db="helpline.db") as engine:
        async with engine.connect_agent("ann") as ann:
            await ann.set_status("online")
            ...

`open_engine` opens the store (a SQLite file, or PostgreSQL by URL), seeds it with the configured
departments and agents, restores the live chats the journal holds (see below), starts the router,
one actor per department and per agent, and a session actor per chat as chats open. Leaving the
block ends every live chat (each writes its ticket), then stops the actors and the store; with
`end_chats_on_exit=False` it stops them without ending anything, as a crash would, and the next
start restores the chats.
A crash of the router is not swallowed: it propagates out of the block.

Recovery. With `EngineConfig.journal` on (the default) every live chat is journaled before anything
about it is acknowledged (store.journal). At start each is rebuilt as it was: its state, owner,
members, transcript, queue place, open offers and pending deadlines. A deadline that passed while
the engine was down fires once, right at start. Nobody is connected yet, so every agent who was
online or held chats gets its disconnect grace (counting as online for routing, so new chats
queue, but taking no new offers until it connects; offers it held wait for it and are shown again
when it connects), and every visitor gets the visitor grace to `resume_chat`. A chat that cannot be
restored is stored as a FAILED ticket instead; none disappears. An agent whose capacity was lowered
meanwhile keeps every chat restored to it, and is offered nothing new until it holds fewer chats
than its new capacity.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
import trio

from ..actors import messages as m
from ..actors.deskboard import DeskBoard
from ..actors.outbox import Outbox, Outlet
from ..actors.router import Chat, Members, Router
from ..actors.session import Session
from ..actors.supervision import AgentActor, DepartmentActor, supervise
from ..canned.desk import CannedDesk
from ..model.config import EngineConfig
from ..model.errors import EngineError
from ..model.hours import check_hours
from ..model.records import Agent, Department, Entry, Rating, Ticket, TicketKind, Visitor
from ..model.stats import Stats
from ..model.trace import RoutingTrace
from ..model.views import AgentView, ChatView, Health, LiveChat, RouterView
from ..store import journal
from ..store import traces as trace_rows
from ..store.contract import Connection, Store
from ..store.url import open_store
from ..store.writer import StoreError
from .handles import AgentConnection, VisitorChat, ask, rate_chat
from .supervision import SupervisorConnection
from .wallclock import wall_origin

log = structlog.get_logger("helpline.engine")
T = TypeVar("T")


@asynccontextmanager
async def open_engine(
    config: EngineConfig | None = None,
    *,
    db: str | os.PathLike[str] = "helpline.db",
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    end_chats_on_exit: bool = True,
    fence: Callable[[Any], None] | None = None,
    threads: bool = True,
) -> AsyncIterator[Engine]:
    """Run an engine for the duration of the block (see the module docstring).

    `db` is a SQLite file's path, `sqlite:///path` or `postgresql://user@host/db`; `":memory:"` is
    a throwaway SQLite store in memory, without threads (store.sqlite, Rule 6), as a replay uses.
    `synchronous` is SQLite's pragma: FULL (the default) survives power loss, NORMAL survives a
    crash of the process, OFF neither (on PostgreSQL only OFF changes anything). `busy_timeout` is
    how long a SQLite write waits for a lock another process holds before it fails (the next write
    tries afresh). `end_chats_on_exit=False` leaves the block the way a crash would: no chat is
    ended, and the next `open_engine` on the same store restores them. `fence` (PostgreSQL only;
    several nodes, `engine.store.lease.fence`) runs in every write transaction of the store just
    before its COMMIT, and refuses the transaction when it raises. `threads=False` (SQLite only)
    runs the store's work in the trio thread: for an engine on a virtual clock, such as a test's.
    """
    config = config or EngineConfig()
    async with (
        open_store(
            db, synchronous=synchronous, busy_timeout=busy_timeout, threads=threads
        ) as store,
        trio.open_nursery() as nursery,
    ):
        if fence is not None:
            if not hasattr(store, "fence"):
                raise ValueError("a fence needs a PostgreSQL store")
            store.fence = fence
        engine = Engine(config, store, nursery)
        await engine._start()
        try:
            yield engine
        finally:
            if end_chats_on_exit:
                with trio.CancelScope(shield=True):
                    await engine._stop()
            else:
                log.info("engine_abandoned", live_chats=len(engine._sessions))
            nursery.cancel_scope.cancel()


class Engine:
    """A running helpline engine. Get one from `open_engine`."""

    def __init__(self, config: EngineConfig, store: Store, nursery: trio.Nursery) -> None:
        self.config = config
        self.store = store
        self._nursery = nursery
        self._router_send, self._router_recv = trio.open_memory_channel[m.ToRouter](
            config.mailbox_size
        )
        self._sessions: dict[str, trio.MemorySendChannel[m.ToSession]] = {}
        self._agent_inboxes: dict[str, trio.MemorySendChannel[m.ToAgent]] = {}
        self._dept_inboxes: dict[str, trio.MemorySendChannel[m.Configure]] = {}
        self._wall_origin = wall_origin()
        self._router: Router | None = None
        self._agent_records: dict[str, Agent] = {}
        self._department_records: dict[str, Department] = {}
        self.canned: CannedDesk
        #: counters and histograms for operators (see engine.model.stats); read them, never write
        self.stats = Stats()
        self._desk_board = DeskBoard()
        store.on_commit = self._observe_commit

    # --- clock ----------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock seconds, advanced by trio's clock (so tests under autojump see time pass)."""
        return self._wall_origin + trio.current_time()

    def _observe_commit(self, seconds: float, jobs: int) -> None:
        self.stats.commit_seconds.observe(seconds)
        self.stats.commit_batch.observe(jobs)

    def mailbox_depths(self) -> dict[str, int]:
        """How many messages wait in the deepest mailbox of each kind of actor, right now."""
        depth = {"router": self._router_send.statistics().current_buffer_used}
        for kind, boxes in (
            ("session", self._sessions.values()),
            ("agent", self._agent_inboxes.values()),
            ("department", self._dept_inboxes.values()),
        ):
            depth[kind] = max((b.statistics().current_buffer_used for b in boxes), default=0)
        return depth

    # --- life -----------------------------------------------------------------------------------

    async def _start(self) -> None:
        store, config = self.store, self.config
        for dept in config.departments:
            await store.save_department(dept)
        stored = {a.id: a for a in await store.agents()}
        for agent in config.agents:
            old = stored.get(agent.id)
            if old is not None:  # presence is the agent's own, not the configuration's
                agent = _with_presence(agent, old)
            await store.save_agent(agent)
        router = Router(
            inbox=self._router_recv,
            spawn_session=self._spawn_session,
            store=store,
            wall=self.now,
            handoff_timeout=config.handoff_timeout,
            visitor_grace=config.visitor_grace,
            agent_grace=config.agent_grace,
            journal=config.journal,
            trace_steps=config.trace_steps,
            keep_traces=config.trace_days > 0,
            stats=self.stats,
            desk_board=self._desk_board,
        )
        self._router = router
        oldest = self.now() - config.trace_days * 86_400
        await store.write(lambda conn: trace_rows.prune(conn, oldest))
        departments = await store.departments()
        agents = await store.agents()
        self._agent_records = {a.id: a for a in agents}
        self._department_records = {d.id: d for d in departments}
        self.canned = await CannedDesk.open(store, self.now)
        router.load(departments, [self._start_agent(a) for a in agents])
        for a in agents:
            router.set_presence_now(a.id, a.status, a.ringtone)
        # Restored even with the journal off now, so that chats journaled before are not lost.
        for broken in router.restore(await store.live_state()):
            ticket = journal.salvage(broken, self.now())
            saved = await store.save_ticket(ticket)
            log.error("chat_saved_as_failed", chat_id=broken.chat_id, ticket_id=saved.id)
        for d in departments:
            self._start_department(d.id)
        self._nursery.start_soon(router.run)
        log.info(
            "engine_started",
            departments=len(departments),
            agents=len(agents),
            restored=len(self._sessions),
        )

    async def _stop(self) -> None:
        with trio.move_on_after(self.config.shutdown_timeout) as scope:
            try:
                await ask(self._router_send, lambda r: m.Shutdown(reply=r), None)
            except EngineError as exc:
                log.warning("shutdown_incomplete", error=str(exc))
        if scope.cancelled_caught:
            log.warning("shutdown_timeout", live_chats=len(self._sessions))
        log.info("engine_stopped")

    def _start_agent(self, agent: Agent) -> m.AgentChanged:
        outbox = Outbox()
        send, recv = trio.open_memory_channel[m.ToAgent](self.config.mailbox_size)
        self._agent_inboxes[agent.id] = send
        actor = AgentActor(agent_id=agent.id, inbox=recv, router=self._router_send, outbox=outbox)
        self._nursery.start_soon(supervise, "agent", agent.id, actor.run, self._router_send)
        return m.AgentChanged(
            agent_id=agent.id,
            name=agent.name,
            departments=agent.departments,
            capacity=agent.capacity,
            outbox=outbox,
            skills=agent.skills,
        )

    def _start_department(self, dept_id: str) -> None:
        send, recv = trio.open_memory_channel[m.Configure](self.config.mailbox_size)
        self._dept_inboxes[dept_id] = send
        actor = DepartmentActor(
            department_id=dept_id, inbox=recv, router=self._router_send, store=self.store
        )
        self._nursery.start_soon(supervise, "department", dept_id, actor.run, self._router_send)

    def _spawn_session(
        self, chat: Chat, visitor: Outbox, entries: Sequence[Entry], members: Members
    ) -> trio.MemorySendChannel[m.ToSession]:
        send, recv = trio.open_memory_channel[m.ToSession](self.config.mailbox_size)
        session = Session(
            chat_id=chat.id,
            department=chat.department,
            question=chat.question,
            visitor=chat.visitor,
            started_at=chat.started_at,
            inbox=recv,
            router=self._router_send,
            visitor_outbox=visitor,
            store=self.store,
            wall=self.now,
            store_retries=self.config.store_retries,
            entries=entries,
            members=members,
            journal=self.config.journal,
            watch_silence=lambda: self._silence_on(chat),
            desk_board=self._desk_board,
        )
        self._sessions[chat.id] = send

        def forget() -> None:
            self._sessions.pop(chat.id, None)

        self._nursery.start_soon(
            supervise, "session", chat.id, session.run, self._router_send, session.snapshot, forget
        )
        return send

    def _silence_on(self, chat: Chat) -> bool:
        """Whether the chat's department re-offers chats whose owner is silent (read by its
        session; the department can change when the chat overflows)."""
        dept = self._department_records.get(chat.department)
        return dept is not None and dept.silence_timeout > 0

    # --- visitors and agents --------------------------------------------------------------------

    @asynccontextmanager
    async def open_chat(
        self,
        *,
        department: str,
        question: str,
        visitor: Visitor,
        resume_key: str = "",
        skills: Sequence[str] = (),
    ) -> AsyncIterator[VisitorChat]:
        """Open a chat as a visitor; leaving the block without `leave()` counts as a disconnect.

        `resume_key` is kept with the chat, journaled with it, for the frontend to find the chat
        again after a restart (`live_chats`); a gateway passes its resume token's hash. `skills`
        are what the agent must know: the chat is offered only to agents who have them all until
        the department's `skills_wait` has passed, then to any of its agents.
        """
        outbox = Outbox()
        outlet = Outlet(self.config.outbound_size)
        outbox.add(outlet)
        chat_id, session = await self._ask_router(
            lambda r: m.OpenChat(
                department=department,
                question=question,
                visitor=visitor,
                outbox=outbox,
                reply=r,
                resume_key=resume_key,
                skills=tuple(skills),
            )
        )
        chat = VisitorChat(chat_id, session, outlet, self.config.ask_timeout, self.store)
        async with chat:
            yield chat

    @asynccontextmanager
    async def resume_chat(self, chat_id: str, *, last_seq: int = 0) -> AsyncIterator[VisitorChat]:
        """Reconnect to a live chat as its visitor; lines after `last_seq` are replayed first."""
        session = self._sessions.get(chat_id)
        if session is None:
            raise EngineError("not_found", "that chat has ended or never existed")
        outlet = Outlet(self.config.outbound_size)
        chat = VisitorChat(chat_id, session, outlet, self.config.ask_timeout, self.store)
        await chat._attach(last_seq)
        async with chat:
            yield chat

    @asynccontextmanager
    async def connect_agent(self, agent_id: str) -> AsyncIterator[AgentConnection]:
        """Open a connection for an agent; the agent is disconnected when every one is closed."""
        inbox = self._agent_inboxes.get(agent_id)
        if inbox is None:
            raise EngineError("not_found", f"no agent {agent_id!r}")
        outlet = Outlet(self.config.outbound_size)
        conn = AgentConnection(
            agent_id, inbox, outlet, self._sessions, self.config.ask_timeout, self.store, self
        )
        await inbox.send(m.Plug(outlet=outlet))
        async with conn:
            yield conn

    @asynccontextmanager
    async def connect_supervisor(
        self,
        supervisor_id: str,
        *,
        name: str = "",
        departments: Collection[str] | None = None,
    ) -> AsyncIterator[SupervisorConnection]:
        """Open a connection for a supervisor of `departments` (None: every department).

        `supervisor_id` names it in transcripts and in the audit log (a gateway passes
        "supervisor:NAME", or "admin:NAME" for an administrator); `name` is its display name.
        """
        conn = SupervisorConnection(
            supervisor_id=supervisor_id,
            name=name or supervisor_id,
            departments=None if departments is None else frozenset(departments),
            router=self._router_send,
            sessions=self._sessions,
            chat_view=self.chat_view,
            store=self.store,
            now=self.now,
            outlet=Outlet(self.config.outbound_size),
            timeout=self.config.ask_timeout,
        )
        async with conn:
            yield conn

    # --- administration -------------------------------------------------------------------------

    def agent_record(self, agent_id: str) -> Agent | None:
        """The agent's settings as last stored (name, departments, capacity)."""
        return self._agent_records.get(agent_id)

    def department_record(self, department_id: str) -> Department | None:
        """The department's settings as last stored."""
        return self._department_records.get(department_id)

    async def add_department(self, department: Department) -> Department:
        """Create or update a department; stored before it takes effect. Business hours that do
        not parse are `invalid_field`."""
        try:
            check_hours(department.hours)
        except ValueError as exc:
            raise EngineError("invalid_field", str(exc)) from None
        inbox = self._dept_inboxes.get(department.id)
        if inbox is None:
            self._start_department(department.id)
            inbox = self._dept_inboxes[department.id]
        result: Department = await ask(
            inbox, lambda r: m.Configure(department=department, reply=r), self.config.ask_timeout
        )
        self._department_records[result.id] = result
        return result

    update_department = add_department

    async def add_agent(self, agent: Agent) -> None:
        """Create or update an agent (status and ringtone stay the agent's own)."""
        for dept in agent.departments:
            if dept not in self._dept_inboxes:
                raise EngineError("not_found", f"no department {dept!r}; add it first")
        existing = {a.id: a for a in await self.store.agents()}.get(agent.id)
        if existing is not None:
            agent = _with_presence(agent, existing)
        await self.store.save_agent(agent)
        self._agent_records[agent.id] = agent
        if agent.id in self._agent_inboxes:
            change = m.AgentChanged(
                agent_id=agent.id,
                name=agent.name,
                departments=agent.departments,
                capacity=agent.capacity,
                outbox=None,
                skills=agent.skills,
            )
        else:
            change = self._start_agent(agent)
        await self._router_send.send(change)

    async def remove_agent(self, agent_id: str) -> None:
        """Remove an agent: its chats go back to their queues; its connections get nothing more."""
        await self.store.remove_agent(agent_id)
        self._agent_records.pop(agent_id, None)
        await self._router_send.send(
            m.AgentChanged(
                agent_id=agent_id, name="", departments=(), capacity=0, outbox=None, removed=True
            )
        )
        inbox = self._agent_inboxes.pop(agent_id, None)
        if inbox is not None:
            inbox.close()

    async def departments(self) -> list[Department]:
        return list(await self.store.departments())

    async def agents(self) -> list[Agent]:
        return list(await self.store.agents())

    async def live_chats(self) -> tuple[LiveChat, ...]:
        """Every live chat as it was opened, with its resume key (for a restarted frontend)."""
        chats: tuple[LiveChat, ...] = await self._ask_router(lambda r: m.LiveChats(reply=r))
        return chats

    async def chat_view(self, chat_id: str) -> ChatView | None:
        """One live chat as the router sees it (None if it is not live): cheap, unlike inspect."""
        view: ChatView | None = await self._ask_router(
            lambda r: m.Inspect(reply=r, chat_id=chat_id)
        )
        return view

    async def transcript(self, chat_id: str) -> tuple[Entry, ...]:
        """A live chat's lines so far, as its visitor sees them (whispers left out); EngineError
        ``not_found`` if the chat is not live."""
        session = self._sessions.get(chat_id)
        if session is None:
            raise EngineError("not_found", "that chat has ended or never existed")
        lines: tuple[Entry, ...] = await ask(
            session,
            lambda r: m.History(reader="visitor", after_seq=0, reply=r),
            self.config.ask_timeout,
            gone="that chat has ended",
        )
        return lines

    async def agent_view(self, agent_id: str) -> AgentView | None:
        """One agent's presence and load as the router sees it (None for an unknown agent)."""
        view: AgentView | None = await self._ask_router(
            lambda r: m.Inspect(reply=r, agent_id=agent_id)
        )
        return view

    async def routing_trace(self, chat_id: str) -> RoutingTrace | None:
        """Why a chat went where it went (model.trace): the router's steps while it holds them,
        else the stored trace of the finished chat (kept for `EngineConfig.trace_days`), else
        None."""
        live: RoutingTrace | None = await self._ask_router(
            lambda r: m.TraceOf(chat_id=chat_id, reply=r)
        )
        if live is not None:
            return live
        stored: RoutingTrace | None = await self._store_call(
            self.store.read, lambda conn: trace_rows.read(conn, chat_id)
        )
        return stored

    async def health(self) -> Health:
        """Ask the router a question and commit an empty write, each within the ask timeout.

        For readiness checks: a router that cannot answer (stalled, or its mailbox full) or a
        store that cannot take a write (locked, full disk, gone) makes the engine unfit to serve.
        """
        router = store = False
        timeout = self.config.ask_timeout
        with trio.move_on_after(timeout):
            try:
                await ask(self._router_send, lambda r: m.Inspect(reply=r, agent_id=_PROBE), timeout)
                router = True
            except EngineError:
                pass
        with trio.move_on_after(timeout):
            try:
                await self.store.write(_nothing)
                store = True
            except StoreError:
                pass
        return Health(router=router, store=store)

    async def inspect(self) -> RouterView:
        """A consistent picture of ownership, capacity, offers and queues."""
        view: RouterView = await self._ask_router(lambda r: m.Inspect(reply=r))
        return view

    # --- tickets --------------------------------------------------------------------------------

    async def ticket(self, ticket_id: int) -> Ticket:
        ticket: Ticket = await self._store_call(self.store.ticket, ticket_id)
        return ticket

    async def ticket_for_chat(self, chat_id: str) -> Ticket:
        ticket: Ticket = await self._store_call(self.store.ticket_for_chat, chat_id)
        return ticket

    async def tickets(self, **filters: Any) -> list[Ticket]:
        """Tickets newest first; filters as `Store.tickets` takes them."""
        return list(await self._store_call(self.store.tickets, **filters))

    async def missed_chats(self, *, limit: int = 20, offset: int = 0) -> list[Ticket]:
        """The missed-chats view: chats nobody took, newest first."""
        return await self.tickets(kind=TicketKind.MISSED, limit=limit, offset=offset)

    async def mark_handled(self, ticket_id: int) -> Ticket:
        """Mark a missed-chat ticket as followed up."""
        ticket = await self.ticket(ticket_id)
        if ticket.kind is not TicketKind.MISSED:
            raise EngineError("invalid_state", "only a missed-chat ticket can be marked handled")
        handled: Ticket = await self._store_call(self.store.mark_handled, ticket_id)
        return handled

    async def rate_chat(
        self,
        chat_id: str,
        rating: Rating | str | None,
        comment: str = "",
        *,
        score: int | None = None,
    ) -> Ticket:
        """Store a visitor's rating of an ended chat, once (what a resumed visitor calls); a
        score of 1 to 5 goes with it, or stands for it (see `Rating.of_score`). Returns the
        ticket as the visitor may see it (`Ticket.for_visitor`)."""
        return (
            await rate_chat(self.store, chat_id, rating, comment, score, at=self.now())
        ).for_visitor()

    async def rating_report(
        self, *, since: float | None = None, until: float | None = None
    ) -> dict[str, dict[str, dict[str, int]]]:
        """Counts of good, neutral and bad ratings per agent and per department in a period, with
        the number of scored ratings and the sum of their scores (``scored``, ``score_sum``)."""
        report: dict[str, dict[str, dict[str, int]]] = await self.store.rating_report(
            since=since, until=until
        )
        return report

    async def _store_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except EngineError:
            raise
        except Exception as exc:
            code = getattr(exc, "code", None)
            if isinstance(code, str):
                raise EngineError(code, getattr(exc, "message", str(exc))) from exc
            raise

    async def _ask_router(self, build: Callable[[m.Reply], m.ToRouter]) -> Any:
        return await ask(self._router_send, build, self.config.ask_timeout)


_PROBE = "\x00health"  # an agent id no agent can have: the router answers None, cheaply


def _nothing(conn: Connection) -> None:
    """A write that changes nothing: it still takes the write lock and commits."""


def _with_presence(agent: Agent, stored: Agent) -> Agent:
    return Agent(
        id=agent.id,
        name=agent.name,
        departments=agent.departments,
        capacity=agent.capacity,
        status=stored.status,
        ringtone=stored.ringtone,
        skills=agent.skills,
    )
