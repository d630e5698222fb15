"""A visitor's connection: open one chat at a time, talk in it, leave, rate; resume after a drop.

Theory of operation
-------------------
A visitor connection is in one of four states; every request is allowed in some of them and
refused with ``invalid_state`` in the others:

=========  ==============================================  ======================================
state      how it is entered                               requests allowed
=========  ==============================================  ======================================
idle       hello without a resumable chat; ``leave``       ``open_chat``; ``rate`` if a chat ended
live       ``open_chat``; hello that resumed a chat        ``send``, ``typing``, ``leave``
ended      the chat's ``ended`` event                       ``open_chat``, ``rate``
=========  ==============================================  ======================================

``departments`` is allowed in every state. (A visitor connection never names its chat: it has at
most one.) The chat is an engine ``VisitorChat`` handle held by its context manager; the handle's
events go straight to the connection's queue through a sink (``Connection.sink``). When the
handle's outlet closes without the chat having ended or been left, another connection resumed the
chat (the engine hands the chat to the newest connection), so this one is closed with 1000, as
SPEC.md section 10 says.

Resuming: the ``open_chat`` reply carries a resume token, kept by the gateway only as a hash (and
journaled by the engine with the chat, so it still works after a restart). A hello with that token
reattaches to the chat with ``engine.resume_chat(chat_id, last_seq=...)``, which replays the lines
after ``last_seq`` ahead of live events. A token that is unknown, or whose
chat ended, resumes nothing (``resumed: false``); a token presented with the ``chat_id`` of another
chat is refused as ``unauthorized``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import itertools
import weakref
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final

from engine import ChatEnded, Engine, EngineError, Event, Visitor, VisitorChat

from ...wire.codec import encode_event
from ...wire.frames import Request
from ...wire.records import Fields
from ..auth import hash_token, new_resume_token
from ..registry import ChatFacts, Registry
from ..settings import ServerSettings
from .departments import departments_reply

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = [
    "ChatLimits",
    "VisitorRole",
    "address_key",
    "open_visitor",
    "sign_visitor_id",
    "verify_visitor_id",
]

_CONNECTIONS: Final = itertools.count(1)


def sign_visitor_id(secret: str, visitor_id: str) -> str:
    """The signature an embedding site gives a visitor id: HMAC-SHA256 with the shared secret,
    over the id's UTF-8 bytes, as lower-case hex (SPEC.md section 11)."""
    return hmac.new(secret.encode(), visitor_id.encode(), hashlib.sha256).hexdigest()


def verify_visitor_id(secret: str, visitor_id: str, signature: str) -> bool:
    """Whether ``signature`` is the site's signature of ``visitor_id`` (never without a secret)."""
    if not (secret and visitor_id and signature):
        return False
    expected = sign_visitor_id(secret, visitor_id).encode()
    return hmac.compare_digest(expected, signature.lower().encode())  # bytes: any text compares


def address_key(peer: str, settings: ServerSettings) -> str | None:
    """The key a peer's chats are counted under for the per-address limit, or None if exempt.

    ``peer`` is ``host:port`` (or a word, such as ``memory`` for an in-memory stream, which is
    counted as one address); loopback hosts are exempt when ``limit_loopback`` is off.
    """
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    host = host.strip("[]")
    if not settings.limit_loopback:
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
    return host


class ChatLimits:
    """Live chats opened per connection, per verified visitor and per address, for one gateway.

    Each key (``conn:``, ``visitor:`` or ``addr:`` followed by what it counts) holds the ids of
    the chats opened under it that may still be live. A chat is forgotten when a connection sees
    it end; chats whose end nobody saw (their connection closed) are found when a key reaches
    its limit, by asking the engine about each of that key's chats, and by a sweep of every key
    when the number of chats held has doubled since the last one. So the fast path takes no
    engine round trip, and memory stays proportional to the live chats.

    Admission is a reservation: ``reserve`` checks every key and counts the chat against each
    before the chat is opened (no await between the check and the count, so concurrent
    ``open_chat`` requests cannot pass a limit together); ``commit`` records the chat's id, and
    ``release`` gives the reservation back if the chat was not opened.
    """

    def __init__(self) -> None:
        self._chats: dict[str, set[str]] = {}
        self._pending: dict[str, int] = {}
        self._origin: dict[str, str] = {}  # chat id -> the connection key it was opened under
        self._next_sweep = 256

    def origin(self, chat_id: str) -> str | None:
        """The connection key a chat was opened under (for a connection that resumes it)."""
        return self._origin.get(chat_id)

    async def reserve(self, engine: Engine, limits: Sequence[tuple[str, int]]) -> list[str]:
        """Count one chat against each ``(key, limit)`` (limit 0: none), or ``too_many_chats``."""
        limits = [(key, limit) for key, limit in limits if limit > 0]
        if sum(len(chats) for chats in self._chats.values()) >= self._next_sweep:
            await self._sweep(engine)
        for key, limit in limits:
            if self._count(key) >= limit:
                await self._prune(engine, key)
        for key, limit in limits:
            if self._count(key) >= limit:
                what = key.split(":", 1)[0]
                raise EngineError(
                    "too_many_chats",
                    f"at most {limit} open chats per {_WHAT[what]}; end one first",
                )
        keys = [key for key, _ in limits]
        for key in keys:
            self._pending[key] = self._pending.get(key, 0) + 1
        return keys

    def commit(self, keys: Sequence[str], chat_id: str, origin: str) -> None:
        self.release(keys)
        for key in keys:
            self._chats.setdefault(key, set()).add(chat_id)
        self._origin[chat_id] = origin

    def release(self, keys: Sequence[str]) -> None:
        for key in keys:
            left = self._pending[key] - 1
            if left:
                self._pending[key] = left
            else:
                del self._pending[key]

    def forget(self, chat_id: str) -> None:
        """The chat ended."""
        self._origin.pop(chat_id, None)
        for key in [k for k, chats in self._chats.items() if chat_id in chats]:
            self._drop(key, chat_id)

    def _count(self, key: str) -> int:
        return len(self._chats.get(key, ())) + self._pending.get(key, 0)

    def _drop(self, key: str, chat_id: str) -> None:
        chats = self._chats.get(key)
        if chats is not None:
            chats.discard(chat_id)
            if not chats:
                del self._chats[key]

    async def _prune(self, engine: Engine, key: str) -> None:
        for chat_id in list(self._chats.get(key, ())):
            if await engine.chat_view(chat_id) is None:
                self.forget(chat_id)

    async def _sweep(self, engine: Engine) -> None:
        live = {chat.chat_id for chat in await engine.live_chats()}
        for key, chats in list(self._chats.items()):
            for chat_id in chats - live:
                self._origin.pop(chat_id, None)
                self._drop(key, chat_id)
        self._next_sweep = max(256, 2 * sum(len(c) for c in self._chats.values()))


_WHAT: Final = {"conn": "connection", "visitor": "visitor", "addr": "address"}
_LIMITS: weakref.WeakKeyDictionary[Registry, ChatLimits] = weakref.WeakKeyDictionary()


def chat_limits(registry: Registry) -> ChatLimits:
    """The chat limits of the gateway that ``registry`` belongs to (one per gateway)."""
    limits = _LIMITS.get(registry)
    if limits is None:
        limits = _LIMITS[registry] = ChatLimits()
    return limits


@dataclass(slots=True, eq=False)
class _Chat:
    """The visitor's current chat and what its events said about it."""

    chat_id: str
    department: str
    resume_token: str
    handle: VisitorChat
    context: AbstractAsyncContextManager[VisitorChat]  # the handle's: its exit lets it go
    ended: bool = False
    left: bool = False
    dropped: bool = False  # this connection let the chat go (closing, or opening another)


async def open_visitor(conn: Connection, request: Request) -> tuple[VisitorRole, Fields]:
    """The hello of a visitor: resume its chat if it names one that is still open."""
    role = VisitorRole(conn)
    resumed = False
    token = request.get("resume_token", str)
    if token:
        resumed = await role.resume(
            token, request.get("last_seq", int, 0), request.get("chat_id", str)
        )
    return role, {"resumed": resumed}


class VisitorRole:
    """The requests of one visitor connection."""

    __slots__ = (
        "_chat",
        "_conn",
        "_engine",
        "_limit_key",
        "_limits",
        "_rateable",
        "_registry",
        "_seq",
    )

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._engine = conn.engine
        self._registry = conn.registry
        self._chat: _Chat | None = None
        self._seq = 0  # the chat's last sequence number, for chat_opened
        self._rateable = ""  # the chat that ended last, which the visitor may rate
        self._limits = chat_limits(conn.registry)
        self._limit_key = f"conn:{next(_CONNECTIONS)}"  # or, once resumed, the chat's opener's
        conn.stack.push_async_callback(self._drop_chat)

    def start(self) -> None:
        if self._chat is not None:
            self._started(self._chat)

    posts = frozenset({"send"})

    async def handle(self, request: Request) -> Fields:
        return await _HANDLERS[request.type](self, request)

    async def post(
        self, request: Request, then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        """A pipelined ``send``: the session answers through ``then``."""
        return await self._live().handle.post(
            request.require("text", str),
            client_msg_id=request.get("client_msg_id", str, ""),
            then=then,
        )

    # -- states ------------------------------------------------------------------------------------

    def _live(self) -> _Chat:
        chat = self._chat
        if chat is None or chat.ended or chat.left:
            raise EngineError("invalid_state", "there is no open chat; send open_chat first")
        return chat

    def _started(self, chat: _Chat) -> None:
        """chat_opened, then every event of the chat (SPEC.md section 7, ``chat_opened``)."""
        self._conn.put(
            encode_event(
                "chat_opened",
                chat_id=chat.chat_id,
                resume_token=chat.resume_token,
                seq=self._seq,
                department=chat.department,
            )
        )
        chat.handle.attach(
            self._conn.sink(partial(self._see, chat), partial(self._outlet_closed, chat))
        )

    def _see(self, chat: _Chat, event: Event) -> None:
        if isinstance(event, ChatEnded):
            chat.ended = True
            self._limits.forget(chat.chat_id)
            self._rateable = chat.chat_id
            self._registry.forget_chat(chat.chat_id)
            self._conn.log.info("chat_ended", reason=event.reason)

    def _outlet_closed(self, chat: _Chat, kicked: bool) -> None:
        if not (chat.ended or chat.left or chat.dropped):
            self._conn.close(1000, "the chat was resumed on another connection")

    async def _drop_chat(self) -> None:
        """Release the current chat's handle (a disconnect, if the chat is still open)."""
        chat, self._chat = self._chat, None
        if chat is not None:
            chat.dropped = True
            await chat.context.__aexit__(None, None, None)

    # -- hello -------------------------------------------------------------------------------------

    async def resume(self, token: str, last_seq: int, wanted: str | None) -> bool:
        chat_id = self._registry.resume(token)
        if chat_id is not None and wanted is not None and wanted != chat_id:
            raise EngineError("unauthorized", "that resume token belongs to another chat")
        facts = None if chat_id is None else self._registry.chat(chat_id)
        if chat_id is None or facts is None:
            return False
        context = self._engine.resume_chat(chat_id, last_seq=last_seq)
        try:
            handle = await context.__aenter__()
        except EngineError:
            self._registry.forget_chat(chat_id)
            return False
        try:
            replay = await handle.history(last_seq)
        except EngineError:
            await context.__aexit__(None, None, None)
            self._registry.forget_chat(chat_id)
            return False
        self._seq = replay[-1].seq if replay else last_seq
        self._limit_key = self._limits.origin(chat_id) or self._limit_key
        self._chat = _Chat(
            chat_id=chat_id,
            department=facts.department,
            resume_token=token,
            handle=handle,
            context=context,
        )
        self._conn.log = self._conn.log.bind(chat_id=chat_id, department=facts.department)
        self._conn.log.info("chat_resumed", last_seq=last_seq)
        return True

    # -- requests ----------------------------------------------------------------------------------

    async def _open_chat(self, request: Request) -> Fields:
        if self._chat is not None and not (self._chat.ended or self._chat.left):
            raise EngineError("invalid_state", "a chat is already open on this connection")
        await self._drop_chat()
        department = request.require("department", str)
        question = request.require("question", str)
        claimed = request.get("visitor_id", str, "")
        verified = verify_visitor_id(
            self._conn.settings.identity_secret,
            claimed,
            request.get("visitor_signature", str, ""),
        )
        visitor = Visitor(
            name=request.require("name", str),
            email=request.get("email", str, ""),
            browser=request.get("browser", str, ""),
            os=request.get("os", str, ""),
            location=request.get("location", str, ""),
            visitor_id=claimed if verified else "",
            claimed_id="" if verified else claimed,
        )
        await self._registry.sweep_if_due(self._engine)
        reserved = await self._limits.reserve(self._engine, self._chat_limits(visitor))
        token = new_resume_token()  # its hash is journaled with the chat: it survives a restart
        context = self._engine.open_chat(
            department=department,
            question=question,
            visitor=visitor,
            resume_key=hash_token(token),
            skills=request.strings("skills"),
        )
        try:
            handle = await context.__aenter__()
        except BaseException:
            self._limits.release(reserved)
            raise
        self._limits.commit(reserved, handle.chat_id, self._limit_key)
        self._registry.add_chat(
            ChatFacts(
                chat_id=handle.chat_id,
                department=department,
                question=question,
                visitor=visitor,
                started_at=self._engine.now(),
            ),
            token,
        )
        chat = _Chat(
            chat_id=handle.chat_id,
            department=department,
            resume_token=token,
            handle=handle,
            context=context,
        )
        self._chat, self._seq = chat, 0
        self._conn.log = self._conn.log.bind(chat_id=chat.chat_id, department=department)
        self._conn.log.info("chat_opened")
        # The reply is queued before chat_opened: the caller queues it when this returns, so
        # chat_opened and the pump start on the next tick, after the reply.
        self._conn.start_soon(self._start_later, chat)
        return {"chat_id": chat.chat_id, "resume_token": token, "seq": 0}

    def _chat_limits(self, visitor: Visitor) -> list[tuple[str, int]]:
        """The limits a new chat counts against (SPEC.md section 11, "Limits on open chats")."""
        settings = self._conn.settings
        limits = [(self._limit_key, settings.max_chats_per_connection)]
        if visitor.visitor_id:  # verified
            limits.append((f"visitor:{visitor.visitor_id}", settings.max_chats_per_visitor))
        address = address_key(self._conn.peer, settings)
        if address is not None:
            limits.append((f"addr:{address}", settings.max_chats_per_address))
        return limits

    async def _start_later(self, chat: _Chat) -> None:
        if self._chat is chat:
            self._started(chat)

    async def _send(self, request: Request) -> Fields:
        chat = self._live()
        seq = await chat.handle.send(
            request.require("text", str), client_msg_id=request.get("client_msg_id", str, "")
        )
        return {"seq": seq, "at": self._engine.now()}

    async def _typing(self, request: Request) -> Fields:
        await self._live().handle.typing(request.require("on", bool))
        return {}

    async def _leave(self, request: Request) -> Fields:
        chat = self._live()
        chat.left = True
        self._registry.forget_resume(chat.chat_id)
        await chat.handle.leave()
        self._rateable = chat.chat_id
        await self._drop_chat()
        self._conn.log.info("visitor_left")
        return {}

    async def _rate(self, request: Request) -> Fields:
        chat_id = self._rateable
        if not chat_id or (self._chat is not None and not (self._chat.ended or self._chat.left)):
            raise EngineError("invalid_state", "only a chat that has ended can be rated")
        await self._engine.rate_chat(
            chat_id,
            request.get("rating", str),
            request.get("comment", str, ""),
            score=request.get("score", int),
        )
        return {}

    async def _departments(self, request: Request) -> Fields:
        return await departments_reply(self._conn, shared=True)


# request type -> VisitorRole method: one table for every connection, not a dict of bound methods
_HANDLERS: dict[str, Callable[[VisitorRole, Request], Awaitable[Fields]]] = {
    "open_chat": VisitorRole._open_chat,
    "send": VisitorRole._send,
    "typing": VisitorRole._typing,
    "leave": VisitorRole._leave,
    "rate": VisitorRole._rate,
    "departments": VisitorRole._departments,
}
