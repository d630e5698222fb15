"""The engine's configuration: departments and agents to seed, and the timing and size limits."""

from __future__ import annotations

from dataclasses import dataclass

from .records import Agent, Department


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything the engine needs besides its database path.

    Departments and agents listed here are stored (added or updated) when the engine starts; those
    already in the database stay. Presence (status, ringtone) always comes from the database.
    """

    departments: tuple[Department, ...] = (Department(id="support", name="Support"),)
    agents: tuple[Agent, ...] = ()
    #: How long a transfer or invite waits for its target to accept.
    handoff_timeout: float = 60.0
    #: How long a chat stays open after its visitor leaves or disconnects.
    visitor_grace: float = 30.0
    #: How long an agent whose connections all closed keeps its chats before they are requeued.
    agent_grace: float = 30.0
    #: Capacity of every actor mailbox (router, sessions, agents, departments).
    mailbox_size: int = 1024
    #: Capacity of every outbound event queue (one per connection or embedded handle).
    outbound_size: int = 256
    #: How long an ask from outside waits for the engine before failing with "busy".
    ask_timeout: float = 10.0
    #: How long shutdown waits for the last tickets to be written.
    shutdown_timeout: float = 10.0
    #: How often a session retries a ticket write that failed before it gives up.
    store_retries: int = 3
    #: Journal every live chat (creation, lines, state changes, deadlines) before acknowledging
    #: it, so chats survive a crash and are restored at start. Off: a chat is stored only when it
    #: ends, and a crash loses the chats that were live.
    journal: bool = True
    #: The routing flight recorder: steps kept in memory per live chat (the oldest fall off),
    #: and days a finished chat's trace is kept in the store (pruned at start); 0 stores none
    #: (a live chat's steps can still be read while the router holds them).
    trace_steps: int = 200
    trace_days: float = 30.0
