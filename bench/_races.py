"""Accepts raced across three nodes, thousands of times: one winner each, never above capacity.

Three ``helpline serve --node`` processes share one PostgreSQL store (started with
:class:`~bench._cluster.Cluster`). Three agents sign in, each on a different node, in one
broadcast department, so every agent with a free seat is offered every chat; visitors spread over
the nodes open chats continuously (one connection per chat, a new one as soon as the chat ended).
Each agent accepts an offer as soon as it sees it, so every offer made to several agents is raced
across nodes; an agent ends a chat it won after a short random time, so seats free up and the
races go on until ``races`` chats were won.

Then the run freezes: visitors open nothing new, agents keep their chats, and once every live chat
is seated and no accept is in flight, the database's seats (``live_members``) are read and
compared with what each agent was told it holds. Then the agents end everything, the nodes stop,
and the tickets are read back. Counted (each must be zero, see :attr:`RaceReport.violations`):

- chats with two winners (two agents answered ok for one chat) and chats opened but never won;
- chats with no ticket or more than one, and tickets whose agents are not the chat's winner;
- an agent ever holding more chats than its capacity, in its own view: a chat counts from the
  accept's answer until the agent's ``ended`` event (the end is committed by then);
- at the freeze, an agent whose seats in ``live_members`` differ from its own view or exceed its
  capacity; after the end, seats left in ``live_members``.

The nodes run with the default lease (5 s, renewed every second): the soak is about races, not
failover (``cluster-failover`` is), and its clients do not follow a handover. If the lease still
changes hands meanwhile (a machine so loaded that the holder misses its renewals), the run stops
with :class:`LeaseMoved`, saying so (its clients are closed, or no race is won for 30 s).

Refused accepts are counted by error code (``offer_taken``, ``stale_offer``, ``capacity_full``
are the answers a lost race may get). Used by ``python -m bench cluster`` (the ``cluster-races``
row); ``tests/test_nodes.py`` runs a short race of its own.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
import trio

from engine import open_store
from protocol import Client, ClientClosed, ClientError, connect

from ._cluster import Cluster

DEPARTMENT: Final = "race"
AGENTS: Final = 3
CAPACITY: Final = 4
VISITORS: Final = 8  # chats open at once, against 3 x 4 seats: most offers go to every agent,
# and an agent now and then holds all its seats
HOLD: Final = (0.05, 0.3)  # seconds an agent keeps a chat it won
LOST_RACE: Final = frozenset({"offer_taken", "stale_offer", "capacity_full"})


def race_config(agents: int, capacity: int) -> str:
    """A broadcast department and ``agents`` agents ``r0``, ``r1``, ... of ``capacity``; no
    request rate limit, no limit on chats per connection or address."""
    people = "".join(
        f'\n[[agents]]\nid = "r{i}"\nname = "R{i}"\ndepartments = ["{DEPARTMENT}"]\n'
        f"capacity = {capacity}\n"
        for i in range(agents)
    )
    return (
        "[server]\nrate = 1000000.0\nburst = 1000000\nlimit_loopback = false\n"
        "max_chats_per_connection = 0\nmax_chats_per_address = 0\n\n"
        f'[[departments]]\nid = "{DEPARTMENT}"\nname = "Race"\nrouting = "broadcast"\n'
        f"offer_window = 120\nqueue_timeout = 600\nqueue_limit = 1000\n{people}"
    )


STALL: Final = 30.0  # seconds without a race won that stop the soak


class LeaseMoved(RuntimeError):
    """The lease changed hands during the soak: its clients were closed (1012) or stalled."""


class Stalled(RuntimeError):
    """No race was won for ``STALL`` seconds."""


@dataclass
class RaceReport:
    """What one race soak counted (see the module docstring)."""

    races: int  # chats won before the freeze
    seconds: float  # from the first visitor to the races-th win
    capacity: int
    opened: int
    won: int  # every chat won, the drain after the freeze included
    offers: int  # offer events the agents saw
    offered_to: dict[int, int]  # number of agents offered a chat -> chats
    contested: int  # chats that two or more agents tried to accept
    refused: dict[str, int]  # refused accepts by error code
    end_refused: dict[str, int]
    two_winners: list[str]
    never_won: list[str]
    tickets_wrong: list[str]  # chats with no ticket or more than one
    owner_wrong: list[str]  # tickets whose agents are not the chat's one winner
    max_held: dict[str, int]  # the most chats each agent held at once, in its own view
    held_at_freeze: dict[str, int]  # each agent's own view at the freeze
    seats_at_freeze: dict[str, int]  # live_members rows per agent at the freeze
    seats_left: int  # live_members rows once every chat ended
    stop_status: dict[str, int]

    @property
    def rate(self) -> float:
        return self.races / self.seconds if self.seconds > 0 else 0.0

    @property
    def over_capacity(self) -> list[str]:
        """Agents above capacity in their own view, or in the database's seats at the freeze."""
        own = {a for a, n in self.max_held.items() if n > self.capacity}
        seats = {a for a, n in self.seats_at_freeze.items() if n > self.capacity}
        return sorted(own | seats)

    @property
    def seats_differ(self) -> list[str]:
        """Agents whose seats at the freeze are not what they were told they hold."""
        agents = set(self.held_at_freeze) | set(self.seats_at_freeze)
        return sorted(
            a for a in agents if self.held_at_freeze.get(a, 0) != self.seats_at_freeze.get(a, 0)
        )

    @property
    def unexpected_refusals(self) -> dict[str, int]:
        return {code: n for code, n in self.refused.items() if code not in LOST_RACE}

    @property
    def violations(self) -> int:
        return (
            len(self.two_winners)
            + len(self.never_won)
            + len(self.tickets_wrong)
            + len(self.owner_wrong)
            + len(self.over_capacity)
            + len(self.seats_differ)
            + self.seats_left
        )

    def details(self) -> dict[str, Any]:
        return {
            "races": self.races,
            "seconds": round(self.seconds, 2),
            "races_per_second": round(self.rate, 2),
            "chats_opened": self.opened,
            "chats_won": self.won,
            "offers": self.offers,
            "offered_to_agents": {str(k): v for k, v in sorted(self.offered_to.items())},
            "contested": self.contested,
            "refused": dict(sorted(self.refused.items())),
            "end_refused": dict(sorted(self.end_refused.items())),
            "two_winners": len(self.two_winners),
            "never_won": len(self.never_won),
            "tickets_wrong": len(self.tickets_wrong),
            "owner_wrong": len(self.owner_wrong),
            "capacity": self.capacity,
            "max_held": self.max_held,
            "held_at_freeze": self.held_at_freeze,
            "seats_at_freeze": self.seats_at_freeze,
            "seats_differ": self.seats_differ,
            "seats_left": self.seats_left,
            "stop_status": self.stop_status,
        }

    def summary(self) -> str:
        return (
            f"{self.races} races in {self.seconds:.1f} s ({self.rate:.1f}/s), {self.opened} chats,"
            f" {self.contested} contested; refused {dict(sorted(self.refused.items()))};"
            f" two winners {len(self.two_winners)}, never won {len(self.never_won)}, tickets"
            f" wrong {len(self.tickets_wrong)}, owner wrong {len(self.owner_wrong)}, max held"
            f" {max(self.max_held.values(), default=0)}/{self.capacity}, seats differ"
            f" {len(self.seats_differ)}, seats left {self.seats_left}"
        )


@dataclass
class _Soak:
    """The clients' shared view: what was opened, offered, won, held and ended."""

    rng: random.Random
    hold: tuple[float, float]
    opening: bool = True  # visitors open new chats
    frozen: bool = False  # agents keep the chats they hold
    thawed: trio.Event = field(default_factory=trio.Event)
    opened: set[str] = field(default_factory=set)
    ended: set[str] = field(default_factory=set)  # chats whose visitor saw them end
    opening_now: int = 0  # open_chat requests in flight
    accepting_now: int = 0  # accept requests in flight
    offered: dict[str, set[str]] = field(default_factory=dict)  # chat -> agents offered
    attempts: Counter[str] = field(default_factory=Counter)  # chat -> accepts sent
    winners: dict[str, list[str]] = field(default_factory=dict)
    held: dict[str, set[str]] = field(default_factory=dict)
    gone: dict[str, set[str]] = field(default_factory=dict)  # chats an agent saw end
    max_held: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    end_refused: Counter[str] = field(default_factory=Counter)
    offers: int = 0
    won: int = 0

    async def visitor(self, url: str, n: int) -> None:
        """Open a chat, wait for its end, again on a new connection, while ``opening``."""
        while self.opening:
            self.opening_now += 1  # from before the connection: the freeze waits for this chat
            opening = True
            try:
                async with connect(url, role="visitor", retry_for=10) as client:
                    reply = await client.request(
                        "open_chat", department=DEPARTMENT, name=f"V{n}", question="?"
                    )
                    chat = str(reply["chat_id"])
                    self.opened.add(chat)
                    self.opening_now -= 1
                    opening = False
                    async for event in client:
                        if event.name == "ended" and event.fields.get("chat_id") == chat:
                            break
                    else:  # the events stop only when the connection closed
                        raise ClientClosed(None, f"visitor {n} closed before its chat ended")
                    self.ended.add(chat)
            finally:
                if opening:
                    self.opening_now -= 1

    async def agent(self, agent_id: str, url: str, token: str, ready: trio.Event) -> None:
        """Accept every offer as soon as it comes; end each chat won after a while."""
        self.held[agent_id], self.gone[agent_id] = set(), set()
        async with connect(url, role="agent", token=token, retry_for=10) as client:
            await client.request("set_status", status="online")
            ready.set()
            async with trio.open_nursery() as nursery:
                async for event in client:
                    chat = str(event.fields.get("chat_id", ""))
                    if event.name == "offer":
                        self.offers += 1
                        self.offered.setdefault(chat, set()).add(agent_id)
                        offer_id = str(event.fields["offer_id"])
                        nursery.start_soon(self._take, client, agent_id, offer_id, chat)
                    elif event.name in ("ended", "chat_removed"):
                        self.gone[agent_id].add(chat)
                        self.held[agent_id].discard(chat)
                raise ClientClosed(None, f"agent {agent_id} closed during the soak")

    async def _take(self, client: Client, agent_id: str, offer_id: str, chat: str) -> None:
        self.attempts[chat] += 1
        self.accepting_now += 1
        try:
            reply = await client.request("accept", offer_id=offer_id)
        except ClientError as exc:
            self.refused[exc.code] += 1
            return
        finally:
            self.accepting_now -= 1
        chat = str(reply["chat_id"])
        self.winners.setdefault(chat, []).append(agent_id)
        self.won += 1
        if chat in self.gone[agent_id]:
            return  # it ended before the answer came: not held (does not happen here)
        held = self.held[agent_id]
        held.add(chat)
        self.max_held[agent_id] = max(self.max_held[agent_id], len(held))
        await trio.sleep(self.rng.uniform(*self.hold))
        if self.frozen:
            await self.thawed.wait()
        try:
            await client.request("end_chat", chat_id=chat)
        except ClientError as exc:
            self.end_refused[exc.code] += 1

    def live(self) -> set[str]:
        return self.opened - self.ended

    def seated(self) -> set[str]:
        return set().union(*self.held.values())

    def settled(self) -> bool:
        """No request to open or accept in flight, and every live chat held by an agent."""
        return not self.opening_now and not self.accepting_now and self.live() == self.seated()


def _seats(store: str) -> dict[str, int]:
    """``live_members`` rows per agent, as the database counts them."""
    with psycopg.connect(store, autocommit=True) as conn:
        rows = conn.execute("SELECT agent_id, count(*) FROM live_members GROUP BY agent_id")
        return {str(agent): int(n) for agent, n in rows}


async def _wait(condition: Callable[[], bool], within: float) -> None:
    with trio.fail_after(within):
        while True:
            if condition():
                return
            await trio.sleep(0.05)


@dataclass
class _Frozen:
    """What the soak saw before the drain (see :func:`_run`)."""

    races: int
    seconds: float
    held: dict[str, int]  # each agent's own view at the freeze
    seats: dict[str, int]  # live_members rows per agent at the freeze
    seats_left: int  # live_members rows after the drain


async def _run(
    cluster: Cluster,
    soak: _Soak,
    urls: list[str],
    ids: list[str],
    *,
    races: int,
    visitors: int,
    report: Callable[[int, float], None] | None,
) -> _Frozen:
    """The clients: race until ``races`` were won, freeze and read the seats, drain."""
    admin = await trio.to_thread.run_sync(cluster.admin_token)
    async with connect(urls[0], role="admin", token=admin, retry_for=10) as desk:
        tokens = {a: str((await desk.request("token_issue", agent_id=a))["token"]) for a in ids}
    async with trio.open_nursery() as nursery:
        for i, agent_id in enumerate(ids):
            ready = trio.Event()
            nursery.start_soon(soak.agent, agent_id, urls[i % 3], tokens[agent_id], ready)
            await ready.wait()
        started = reported = moved = time.perf_counter()
        for n in range(visitors):
            nursery.start_soon(soak.visitor, urls[n % 3], n)
        last = 0
        while soak.won < races:
            await trio.sleep(0.02)
            now = time.perf_counter()
            if soak.won != last:
                last, moved = soak.won, now
            elif now - moved > STALL:
                raise Stalled(f"no race won for {STALL:.0f} s, after {soak.won}")
            if report is not None and now - reported >= 1.0:
                reported = now
                report(soak.won, now - started)
        seconds = time.perf_counter() - started
        won = soak.won
        # The freeze: nothing new opened, nothing ended; every live chat gets seated.
        soak.opening, soak.frozen = False, True
        await _wait(soak.settled, within=60)
        await trio.sleep(0.5)  # anything still on its way lands (and must change nothing)
        await _wait(soak.settled, within=60)
        held = {a: len(soak.held[a]) for a in ids}
        seats = await trio.to_thread.run_sync(_seats, cluster.store)
        soak.frozen = False
        soak.thawed.set()
        await _wait(lambda: not soak.live() and not soak.seated(), within=60)
        left = sum((await trio.to_thread.run_sync(_seats, cluster.store)).values())
        nursery.cancel_scope.cancel()
    return _Frozen(races=won, seconds=seconds, held=held, seats=seats, seats_left=left)


async def race_soak(
    cluster: Cluster,
    *,
    races: int,
    seed: int,
    agents: int = AGENTS,
    capacity: int = CAPACITY,
    visitors: int = VISITORS,
    hold: tuple[float, float] = HOLD,
    report: Callable[[int, float], None] | None = None,
) -> RaceReport:
    """Race ``races`` accepts over three nodes of ``cluster`` and count (see the module
    docstring); ``report(won, seconds)`` is called about once a second meanwhile."""
    cluster.config = race_config(agents, capacity)
    cluster.lease, cluster.renew = 5.0, 1.0
    names = ["n0", "n1", "n2"]
    soak = _Soak(rng=random.Random(seed), hold=hold)
    ids = [f"r{i}" for i in range(agents)]
    try:
        await trio.to_thread.run_sync(cluster.start_many, names)
        await trio.to_thread.run_sync(cluster.wait_holder)
        epoch = (await trio.to_thread.run_sync(cluster.holder))[1]
        urls = [cluster.url(name) for name in names]
        moved = ""
        try:
            frozen = await _run(
                cluster, soak, urls, ids, races=races, visitors=visitors, report=report
            )
        except* (ClientClosed, Stalled, trio.TooSlowError):
            now = (await trio.to_thread.run_sync(cluster.holder))[1]
            if now == epoch:
                raise
            moved = (
                f"the lease changed hands during the race soak (epoch {epoch} -> {now}) after"
                f" {soak.won} races; its clients do not follow a handover"
            )
        if moved:
            raise LeaseMoved(moved)
        status = await trio.to_thread.run_sync(cluster.stop_all)
    finally:
        cluster.kill_all()
    async with open_store(cluster.store) as store:
        tickets = []
        while page := await store.tickets(limit=1000, offset=len(tickets)):
            tickets.extend(page)
    per_chat = Counter(t.chat_id for t in tickets)
    owner_wrong = sorted(
        t.chat_id
        for t in tickets
        if len(soak.winners.get(t.chat_id, [])) == 1
        and (t.agents != tuple(soak.winners[t.chat_id]) or t.owner != soak.winners[t.chat_id][0])
    )
    return RaceReport(
        races=frozen.races,
        seconds=frozen.seconds,
        capacity=capacity,
        opened=len(soak.opened),
        won=soak.won,
        offers=soak.offers,
        offered_to=dict(Counter(len(agents_) for agents_ in soak.offered.values())),
        contested=sum(1 for n in soak.attempts.values() if n > 1),
        refused=dict(soak.refused),
        end_refused=dict(soak.end_refused),
        two_winners=sorted(c for c, w in soak.winners.items() if len(w) > 1),
        never_won=sorted(soak.opened - set(soak.winners)),
        tickets_wrong=sorted(c for c in soak.opened | set(per_chat) if per_chat[c] != 1),
        owner_wrong=owner_wrong,
        max_held=dict(soak.max_held),
        held_at_freeze=frozen.held,
        seats_at_freeze=frozen.seats,
        seats_left=frozen.seats_left,
        stop_status=status,
    )
