"""What the gateway knows across connections: open connections, chats' facts, resume tokens.

Theory of operation
-------------------
Each connection is served by its own task and knows only itself. A few things span connections,
and live in one :class:`Registry` per gateway, touched only from trio's thread (no locks):

- **Connections**, all of them (a shutdown tells each one), and per agent (removing an agent
  closes its connections with 1008).
- **Chat facts**: what a visitor said when opening a chat (department, question, visitor details,
  start time). Agents' consoles need them in ``accept`` and ``visitor_panel`` replies, and every
  chat of a daemon is opened through its gateway, so the gateway records them at ``open_chat``.
- **Resume tokens**: a chat's token hash, so a reconnecting visitor finds its chat again. Only
  hashes are kept (``auth.py``); the token is shown once, in the ``open_chat`` reply. The hash is
  also handed to the engine with the chat (``open_chat(resume_key=...)``), which journals it with
  the chat; a gateway that starts over a restored engine learns every live chat's facts and hash
  again from ``engine.live_chats()`` (:meth:`Registry.restore`), so visitors resume after a crash.

Entries of chats that ended are dropped lazily: when the number of chats recorded doubles since
the last sweep, :meth:`Registry.sweep` asks the engine which chats are still live and forgets the
rest. Memory stays proportional to the live chats, and the engine is asked rarely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol

from engine import Engine, LiveChat, Visitor

from .auth import hash_token, new_resume_token

__all__ = ["ChatFacts", "Closable", "Registry"]

_MIN_SWEEP: Final = 256


class Closable(Protocol):
    """What the registry needs of a connection."""

    def close(self, code: int, reason: str) -> None: ...

    def shutdown(self, reason: str, code: int = 1001) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatFacts:
    """What a chat's visitor said when opening it."""

    chat_id: str
    department: str
    question: str
    visitor: Visitor
    started_at: float


class Registry:
    """The gateway's shared, in-memory state (see the module docstring)."""

    def __init__(self) -> None:
        self.connections: set[Closable] = set()
        self._agents: dict[str, set[Closable]] = {}
        self._chats: dict[str, ChatFacts] = {}
        self._resume: dict[str, str] = {}  # token hash -> chat id
        self._resume_of: dict[str, str] = {}  # chat id -> token hash
        self._next_sweep = _MIN_SWEEP

    # -- connections ------------------------------------------------------------------------------

    def add_agent_connection(self, agent_id: str, connection: Closable) -> None:
        self._agents.setdefault(agent_id, set()).add(connection)

    def remove_agent_connection(self, agent_id: str, connection: Closable) -> None:
        connections = self._agents.get(agent_id)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del self._agents[agent_id]

    def close_agent(self, agent_id: str, code: int, reason: str) -> int:
        """Close every connection of an agent; returns how many there were."""
        connections = list(self._agents.get(agent_id, ()))
        for connection in connections:
            connection.close(code, reason)
        return len(connections)

    # -- chats -------------------------------------------------------------------------------------

    def add_chat(self, facts: ChatFacts, token: str | None = None) -> str:
        """Record a new chat with its resume token (a new one if none is given); returns the
        token (shown once, kept only as a hash)."""
        token = token or new_resume_token()
        digest = hash_token(token)
        self._chats[facts.chat_id] = facts
        self._resume[digest] = facts.chat_id
        self._resume_of[facts.chat_id] = digest
        return token

    def restore(self, chats: Iterable[LiveChat]) -> None:
        """Know again the chats an engine restored at start, and their resume tokens' hashes."""
        for chat in chats:
            self._chats[chat.chat_id] = ChatFacts(
                chat_id=chat.chat_id,
                department=chat.department,
                question=chat.question,
                visitor=chat.visitor,
                started_at=chat.started_at,
            )
            if chat.resume_key:
                self._resume[chat.resume_key] = chat.chat_id
                self._resume_of[chat.chat_id] = chat.resume_key
        self._next_sweep = max(_MIN_SWEEP, 2 * len(self._chats))

    def chat(self, chat_id: str) -> ChatFacts | None:
        return self._chats.get(chat_id)

    def resume(self, token: str) -> str | None:
        """The chat a resume token belongs to, if it is known."""
        return self._resume.get(hash_token(token))

    def forget_resume(self, chat_id: str) -> None:
        """The chat can no longer be resumed (its visitor left, or it ended)."""
        digest = self._resume_of.pop(chat_id, None)
        if digest is not None:
            self._resume.pop(digest, None)

    def forget_chat(self, chat_id: str) -> None:
        self.forget_resume(chat_id)
        self._chats.pop(chat_id, None)

    def needs_sweep(self) -> bool:
        return len(self._chats) >= self._next_sweep

    def sweep(self, candidates: Iterable[str], live: Iterable[str]) -> None:
        """Forget the ``candidates`` that are not in ``live`` (the engine's live chats)."""
        keep = set(live)
        for chat_id in candidates:
            if chat_id not in keep:
                self.forget_chat(chat_id)
        self._next_sweep = max(_MIN_SWEEP, 2 * len(self._chats))

    async def sweep_if_due(self, engine: Engine) -> None:
        """Sweep when due; chats recorded while the engine is asked are left for next time."""
        if self.needs_sweep():
            candidates = list(self._chats)
            self._next_sweep = max(_MIN_SWEEP, 2 * len(self._chats))  # one sweep at a time
            view = await engine.inspect()
            self.sweep(candidates, view.chats)
