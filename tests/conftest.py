"""Shared fixtures: a real engine over a real SQLite file, under trio's autojump clock."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import (
    Agent,
    Department,
    Engine,
    EngineConfig,
    RoutingMode,
    hold_clock_for_store,
    open_engine,
)

from .desk import Desk, open_desk
from .postgres import fresh_schema


def pytest_configure(config: pytest.Config) -> None:
    """Most tests run the engine on trio's autojump clock, whose store hold spins a task while the
    store's thread commits; a short switch interval hands that thread the GIL at once instead of
    after the default 5 ms, for every test (the held clock sets it too, for embedders' tests)."""
    sys.setswitchinterval(0.0002)


DEPARTMENTS = (
    Department(id="sales", name="Sales", offer_window=30, queue_timeout=120, queue_limit=3),
    Department(
        id="support",
        name="Support",
        routing=RoutingMode.ASSIGNED,
        offer_window=20,
        queue_timeout=120,
    ),
    Department(id="closed", name="Closed", chat_enabled=False),
)
AGENTS = (
    Agent(id="ann", name="Ann", departments=("sales",), capacity=2),
    Agent(id="bob", name="Bob", departments=("sales", "support"), capacity=2),
    Agent(id="cy", name="Cy", departments=("support",), capacity=1),
    Agent(id="dee", name="Dee", departments=("closed",), capacity=1),
)


@pytest.fixture
def autojump_clock() -> Iterator[MockClock]:
    """pytest-trio's autojump clock, held still by every store the test opens while it works."""
    with hold_clock_for_store():
        yield MockClock(autojump_threshold=0)


@pytest.fixture
def config() -> EngineConfig:
    return EngineConfig(
        departments=DEPARTMENTS,
        agents=AGENTS,
        handoff_timeout=45,
        visitor_grace=15,
        agent_grace=25,
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "helpline.db"


@pytest.fixture
async def engine(config: EngineConfig, db_path: Path) -> AsyncIterator[Engine]:
    """A running engine; the test must also take `autojump_clock` (pytest-trio hands trio.run
    the clock only when the test function itself asks for it)."""
    assert isinstance(trio.lowlevel.current_clock(), MockClock), "add autojump_clock to the test"
    async with open_engine(config, db=db_path, synchronous="NORMAL") as e:
        yield e


@pytest.fixture
async def desk(config: EngineConfig, db_path: Path) -> AsyncIterator[Desk]:
    """A desk (tests/desk.py) on a running engine; the test must also take `autojump_clock`."""
    async with open_desk(config, db=db_path) as d:
        yield d


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL on a fresh schema (skips without HELPLINE_TEST_POSTGRES)."""
    with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL for each implementation: a SQLite file, and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'helpline.db'}"
    else:
        with fresh_schema() as url:
            yield url
