"""Plain HTTP on the gateway's port: health checks and the built web pages, from one route table.

Theory of operation
-------------------
A request that is not a WebSocket upgrade is answered here, once, and the connection is closed
(``Connection: close``; no keep-alive). The ``websockets`` protocol has already parsed it: only a
method, a target and headers, never a body. :class:`Routes` maps a path to a handler, exactly
(``/livez``) or by prefix (``/assets/``); a handler is an async function from the request to an
:class:`HttpReply`. Unknown paths are 404; a known path asked with any method but GET or HEAD is
405. HEAD is GET without the body. Adding an endpoint (a later ``/metrics``) is one
:meth:`Routes.add`.

Every response carries ``X-Content-Type-Options: nosniff``, a ``Cache-Control`` and the
Content-Security-Policy below (no inline scripts; inline styles are allowed).

- ``/livez`` is 200 ``{"status":"ok"}`` while the process answers and the engine's router answers
  a one-agent question (an id no agent has, bounded by the engine's ask timeout); else 503.
- ``/readyz`` is 200 ``{"status":"ready"}``, or 503 with ``{"status": "draining"}`` while the
  gateway shuts down, or ``{"status": "store_unavailable"}`` once the store takes no writes. It
  asks no one: it reads two flags.
- ``/nodes`` is 200 ``{"urls": [...]}``: the WebSocket URLs of the desk's live nodes, the
  answering node's first, for the pages to reconnect through when their node dies. Public (URLs
  only) and readable from any origin (``Access-Control-Allow-Origin: *``: the widget runs on
  other sites). A single daemon answers its own URL alone, as the request reached it (its
  ``Host``); a node answers from the node table (``protocol.server.node``).
- Static files come from the built web folder (``web/dist`` unless configured): the pages by name,
  ``/widget.js``, ``/helpline-client.js`` and anything under ``/assets/`` (content-hashed names,
  cached for a year). A path is resolved and must stay inside the folder: ``..``, encoded or not,
  and symbolic links out of it are 404. Without the folder every static path is 503 with a page
  saying how to build it.
"""

from __future__ import annotations

import email.utils
import http
import json
import mimetypes
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from engine import Engine

__all__ = [
    "CSP",
    "DEFAULT_WEB_DIR",
    "HttpReply",
    "HttpRequest",
    "NodeLister",
    "Routes",
    "default_routes",
    "nodes_route",
    "web_dir_missing",
]

#: The built web folder when the settings name none: web/dist beside the packages.
DEFAULT_WEB_DIR: Final = Path(__file__).resolve().parents[2] / "web" / "dist"

CSP: Final = (
    "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'"
)
PAGES: Final = {
    "/": "index.html",
    "/console": "console.html",
    "/admin": "admin.html",
    "/demo": "demo.html",
    "/widget.js": "widget.js",
    "/helpline-client.js": "helpline-client.js",
}
ASSETS: Final = "/assets/"
NODES: Final = "/nodes"
MAX_NODES: Final = 64  # URLs in a /nodes answer
_HOST: Final = re.compile(
    r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?"  # a name or an IPv4 address, and a port
    r"|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?"  # an IPv6 address in brackets, and a port
)
NO_CACHE: Final = "no-cache"
NO_STORE: Final = "no-store"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
METHODS: Final = ("GET", "HEAD")
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
    ".wasm": "application/wasm",
}
MISSING_PAGE: Final = (
    b"<!doctype html><title>helpline: web pages not built</title>"
    b"<h1>The web pages are not built</h1>"
    b"<p>Run <code>make web</code> in the helpline checkout, then reload this page.</p>\n"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """A parsed request: method, path (the target before any ``?``, not decoded), headers."""

    method: str
    path: str
    headers: Headers = field(default_factory=Headers)


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpReply:
    """What a handler answers: status, body, its content type and cache policy."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    cache: str = NO_STORE
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[HttpRequest], Awaitable[HttpReply]]


class Routes:
    """Paths to handlers, exact or by prefix; :meth:`answer` turns a request into a response."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: list[tuple[str, Handler]] = []

    def add(self, path: str, handler: Handler, *, prefix: bool = False) -> None:
        """Serve ``path`` (every path under it with ``prefix``) with ``handler``."""
        if prefix:
            self._prefixes.append((path, handler))
        else:
            self._exact[path] = handler

    def find(self, path: str) -> Handler | None:
        handler = self._exact.get(path)
        if handler is None:
            for prefix, candidate in self._prefixes:
                if path.startswith(prefix):
                    return candidate
        return handler

    async def answer(self, request: Request) -> Response:
        """The HTTP response to ``request`` (never raises for a bad path or method)."""
        path = request.path.split("?", 1)[0].split("#", 1)[0]
        handler = self.find(path)
        if handler is None:
            reply = text_reply(http.HTTPStatus.NOT_FOUND, "not found")
        elif request.method not in METHODS:
            reply = text_reply(http.HTTPStatus.METHOD_NOT_ALLOWED, "method not allowed")
            reply = HttpReply(
                status=reply.status, body=reply.body, headers={"Allow": ", ".join(METHODS)}
            )
        else:
            reply = await handler(
                HttpRequest(method=request.method, path=path, headers=request.headers)
            )
        return to_response(reply, head=request.method == "HEAD")


def to_response(reply: HttpReply, *, head: bool = False) -> Response:
    """The wire response: standard headers, the CSP, and no body for HEAD."""
    status = http.HTTPStatus(reply.status)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Type", reply.content_type),
            ("Content-Length", str(len(reply.body))),
            ("Cache-Control", reply.cache),
            ("Content-Security-Policy", CSP),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "same-origin"),
        ]
    )
    for name, value in reply.headers.items():
        headers[name] = value
    return Response(status.value, status.phrase, headers, b"" if head else reply.body)


def text_reply(status: int, text: str) -> HttpReply:
    return HttpReply(status=status, body=f"{text}\n".encode())


def json_reply(code: int, headers: Mapping[str, str] | None = None, **fields: object) -> HttpReply:
    """`fields` as a JSON object, with `headers` beside the usual ones."""
    body = json.dumps(fields, separators=(",", ":")).encode()
    return HttpReply(
        status=code, body=body, content_type="application/json", headers=dict(headers or {})
    )


# -- health ----------------------------------------------------------------------------------------


def health_routes(routes: Routes, engine: Engine, draining: Callable[[], bool]) -> None:
    """Add ``/livez`` and ``/readyz`` to ``routes``."""

    async def livez(request: HttpRequest) -> HttpReply:
        health = await engine.health()
        if not health.router:
            return json_reply(503, status="down", reason=health.reason)
        return json_reply(200, status="ok")

    async def readyz(request: HttpRequest) -> HttpReply:
        if draining():
            return json_reply(503, status="draining", reason="the daemon is shutting down")
        health = await engine.health()
        if not health.ok:
            return json_reply(503, status="not_ready", reason=health.reason)
        return json_reply(200, status="ready")

    routes.add("/livez", livez)
    routes.add("/readyz", readyz)


# -- the nodes ---------------------------------------------------------------------------------

NodeLister = Callable[[HttpRequest], Awaitable[Sequence[str]]]
"""The WebSocket URLs ``/nodes`` lists for a request, the answering node's first."""


def nodes_route(routes: Routes, lister: NodeLister) -> None:
    """Add (or replace) ``/nodes``: ``{"urls": [...]}`` from ``lister``."""

    async def nodes(request: HttpRequest) -> HttpReply:
        urls = list(dict.fromkeys(await lister(request)))[:MAX_NODES]
        return json_reply(200, headers={"Access-Control-Allow-Origin": "*"}, urls=urls)

    routes.add(NODES, nodes)


def own_url(request: HttpRequest, fallback: str) -> list[str]:
    """A single daemon's URL as the request reached it (``ws://`` and its ``Host``), or
    ``fallback`` (where it listens) when the header is missing or not a host name."""
    host = request.headers.get("Host", "")
    if _HOST.fullmatch(host):
        return [f"ws://{host}"]
    return [fallback] if fallback else []


# -- static files ----------------------------------------------------------------------------------


def web_dir_missing(root: Path) -> bool:
    """True when the built web folder is not there (``make web`` builds it)."""
    return not (root / "index.html").is_file()


def static_routes(routes: Routes, root: Path) -> None:
    """Add the pages, the two scripts and ``/assets/`` from the built folder ``root``."""

    async def page(request: HttpRequest) -> HttpReply:
        return await _file(root, PAGES[request.path], NO_CACHE)

    async def asset(request: HttpRequest) -> HttpReply:
        return await _file(root, request.path.lstrip("/"), IMMUTABLE)

    for path in PAGES:
        routes.add(path, page)
    routes.add(ASSETS, asset, prefix=True)


async def _file(root: Path, relative: str, cache: str) -> HttpReply:
    if web_dir_missing(root):
        return HttpReply(
            status=503, body=MISSING_PAGE, content_type="text/html; charset=utf-8", cache=NO_STORE
        )
    path = _inside(root, unquote(relative))
    if path is None:
        return text_reply(404, "not found")
    try:  # built pages and assets are small and in the page cache: read them in this thread
        body = path.read_bytes()
    except OSError:
        return text_reply(404, "not found")
    return HttpReply(status=200, body=body, content_type=content_type(path), cache=cache)


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it names a file inside ``root`` after resolving, else None."""
    if "\x00" in relative or "\\" in relative:
        return None
    base = root.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    return path


def content_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in _TYPES:
        return _TYPES[suffix]
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def default_routes(
    engine: Engine,
    draining: Callable[[], bool],
    web_dir: Path,
    listening: Callable[[], str] = lambda: "",
) -> Routes:
    """The gateway's route table: health checks, ``/nodes`` (this daemon alone; ``listening``
    is its URL when the request names no host) and the web folder's files."""
    routes = Routes()
    health_routes(routes, engine, draining)

    async def alone(request: HttpRequest) -> list[str]:
        return own_url(request, listening())

    nodes_route(routes, alone)
    static_routes(routes, web_dir)
    return routes
