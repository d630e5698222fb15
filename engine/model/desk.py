"""The supervisors' live picture of the desk: one row per live chat, and each department's queue.

A supervisor's connection gets the rows of its departments' chats once (`DeskSnapshot`) and then
only what changed (`events.DeskChanged`), coalesced so that a busy desk sends a few updates a
second, each carrying whole rows: a client replaces a row by its `chat_id`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskChat:
    """One live chat as a supervisor sees it."""

    chat_id: str
    department: str
    state: str  # requested, queued, offered, active, ending
    owner: str  # the agent holding it, or ""
    agents: tuple[str, ...]  # every agent in it, owner first
    started_at: float
    accepted_at: float | None
    wait: float  # seconds the visitor waited for an agent (so far, while nobody took it)
    last_message_at: float | None  # the newest message of the visitor or an agent
    visitor_name: str = ""  # what the visitor said its name was
    question: str = ""  # the visitor's opening question
    agent_names: tuple[str, ...] = ()  # the display names of `agents`, in the same order


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskQueue:
    """A department's waiting chats, next first."""

    department: str
    chats: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeskSnapshot:
    """Every live chat and queue of a supervisor's departments at one instant."""

    chats: tuple[DeskChat, ...]
    queues: tuple[DeskQueue, ...]
