"""Plain HTTP on the gateway's port: health checks, the web pages, their headers, their limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
from trio.testing import MockClock

from engine import Engine, StoreError
from protocol import ServerSettings
from protocol.server.http import CSP, NO_STORE, HttpReply, HttpRequest, nodes_route

from .gateway_harness import Harness, open_gateway


async def get(
    gw: Harness, target: str, method: str = "GET", host: str = "helpline"
) -> tuple[int, dict[str, str], bytes]:
    """Send one request; returns the status, the headers (names lowercased) and the body."""
    stream = gw.stream()
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    await stream.send_all(request.encode())
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    await stream.aclose()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def web(tmp_path: Path) -> Path:
    """A built web folder with every page, both scripts and one asset."""
    root = tmp_path / "dist"
    (root / "assets").mkdir(parents=True)
    for name in ("index", "console", "admin", "demo"):
        (root / f"{name}.html").write_text(f"<!doctype html><title>{name}</title>")
    (root / "widget.js").write_text("export const widget = 1;")
    (root / "helpline-client.js").write_text("export const client = 1;")
    (root / "assets" / "app-1a2b.css").write_text("body{}")
    (tmp_path / "secret.txt").write_text("not for the web")
    return root


def settings_for(web: Path) -> ServerSettings:
    return ServerSettings(web_dir=str(web))


class TestHealth:
    async def test_livez(self, engine: Engine, autojump_clock: MockClock) -> None:
        """/livez answers 200 {"status":"ok"} while the router answers."""
        async with open_gateway(engine) as gw:
            status, headers, body = await get(gw, "/livez")
            assert (200, {"status": "ok"}) == (status, json.loads(body))
            assert "application/json" == headers["content-type"]
            assert "no-store" == headers["cache-control"]

    async def test_readyz(self, engine: Engine, autojump_clock: MockClock) -> None:
        """/readyz answers 200 while the gateway serves and the store takes writes."""
        async with open_gateway(engine) as gw:
            status, _, body = await get(gw, "/readyz")
            assert (200, {"status": "ready"}) == (status, json.loads(body))

    async def test_readyz_draining(self, engine: Engine, autojump_clock: MockClock) -> None:
        """While the gateway shuts down, /readyz is 503 draining."""
        async with open_gateway(engine) as gw:
            gw.gateway.shutdown()
            status, _, body = await get(gw, "/readyz")
            assert 503 == status
            assert "draining" == json.loads(body)["status"]

    async def test_readyz_store_closed(
        self, engine: Engine, monkeypatch: pytest.MonkeyPatch, autojump_clock: MockClock
    ) -> None:
        """A store that takes no more writes makes /readyz 503 store_unavailable."""

        async def closed(fn: object) -> None:
            raise StoreError("the store is closed", code="store_closed")

        async with open_gateway(engine) as gw:
            with monkeypatch.context() as patch:  # undone before the engine closes its store
                patch.setattr(engine.store, "write", closed)
                status, _, body = await get(gw, "/readyz")
            assert (503, {"status": "not_ready", "reason": "store_unavailable"}) == (
                status,
                json.loads(body),
            )


class TestPages:
    @pytest.mark.parametrize(
        ("target", "content_type", "expected"),
        [
            ("/", "text/html; charset=utf-8", b"<title>index</title>"),
            ("/console", "text/html; charset=utf-8", b"<title>console</title>"),
            ("/admin", "text/html; charset=utf-8", b"<title>admin</title>"),
            ("/demo?x=1", "text/html; charset=utf-8", b"<title>demo</title>"),
            ("/widget.js", "text/javascript; charset=utf-8", b"widget"),
            ("/helpline-client.js", "text/javascript; charset=utf-8", b"client"),
        ],
    )
    async def test_served(
        self,
        engine: Engine,
        web: Path,
        target: str,
        content_type: str,
        expected: bytes,
        autojump_clock: MockClock,
    ) -> None:
        """Each page and script is served with its type, no-cache, the CSP and nosniff."""
        async with open_gateway(engine, settings_for(web)) as gw:
            status, headers, body = await get(gw, target)
            assert 200 == status
            assert expected in body
            assert content_type == headers["content-type"]
            assert str(len(body)) == headers["content-length"]
            assert "no-cache" == headers["cache-control"]
            assert CSP == headers["content-security-policy"]
            assert "nosniff" == headers["x-content-type-options"]

    async def test_csp(self) -> None:
        """The policy allows only the server's own scripts, and WebSockets."""
        assert "default-src 'self'" in CSP
        assert "connect-src 'self' ws: wss:" in CSP
        assert "script-src" not in CSP  # so scripts fall back to 'self': no inline scripts

    async def test_asset(self, engine: Engine, web: Path, autojump_clock: MockClock) -> None:
        """Files under /assets/ carry content-hashed names and are cached for a year."""
        async with open_gateway(engine, settings_for(web)) as gw:
            status, headers, body = await get(gw, "/assets/app-1a2b.css")
            assert (200, b"body{}") == (status, body)
            assert "text/css; charset=utf-8" == headers["content-type"]
            assert "immutable" in headers["cache-control"]

    async def test_head(self, engine: Engine, web: Path, autojump_clock: MockClock) -> None:
        """HEAD is GET without the body."""
        async with open_gateway(engine, settings_for(web)) as gw:
            status, headers, body = await get(gw, "/", method="HEAD")
            assert (200, b"") == (status, body)
            assert str(len("<!doctype html><title>index</title>")) == headers["content-length"]

    @pytest.mark.parametrize(
        "target",
        [
            "/assets/../../secret.txt",
            "/assets/%2e%2e/%2e%2e/secret.txt",
            "/assets/..%2f..%2fsecret.txt",
            "/assets/%2E%2E%2F%2E%2E%2Fsecret.txt",
            "/assets/..\\..\\secret.txt",
            "/assets/%00",
            "/assets/",
            "/assets/missing.js",
            "/../secret.txt",
            "/index.html",
            "/nowhere",
        ],
    )
    async def test_not_found(
        self, engine: Engine, web: Path, target: str, autojump_clock: MockClock
    ) -> None:
        """Paths out of the folder, encoded or not, and unknown paths are 404."""
        async with open_gateway(engine, settings_for(web)) as gw:
            status, headers, body = await get(gw, target)
            assert 404 == status
            assert b"not for the web" not in body
            assert CSP == headers["content-security-policy"]

    async def test_symlink_out_is_refused(
        self, engine: Engine, web: Path, autojump_clock: MockClock
    ) -> None:
        """A symbolic link in the folder that points out of it is not followed."""
        (web / "assets" / "link.txt").symlink_to(web.parent / "secret.txt")
        async with open_gateway(engine, settings_for(web)) as gw:
            assert 404 == (await get(gw, "/assets/link.txt"))[0]

    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
    async def test_other_methods(
        self, engine: Engine, web: Path, method: str, autojump_clock: MockClock
    ) -> None:
        """A known path asked with another method is 405, naming the allowed ones."""
        async with open_gateway(engine, settings_for(web)) as gw:
            status, headers, _ = await get(gw, "/livez", method=method)
            assert (405, "GET, HEAD") == (status, headers["allow"])

    async def test_not_built(
        self, engine: Engine, tmp_path: Path, autojump_clock: MockClock
    ) -> None:
        """Without the built folder the pages are 503 and say how to build them."""
        settings = ServerSettings(web_dir=str(tmp_path / "absent"))
        async with open_gateway(engine, settings) as gw:
            for target in ("/", "/console", "/widget.js"):
                status, headers, body = await get(gw, target)
                assert 503 == status
                assert b"make web" in body
                assert CSP == headers["content-security-policy"]
            assert 200 == (await get(gw, "/livez"))[0]


class TestNodes:
    async def test_a_single_daemon_lists_itself_alone(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """/nodes on a daemon without nodes is its own URL, as the request reached it; any
        page may read it (the widget runs on other sites)."""
        async with open_gateway(engine) as gw:
            status, headers, body = await get(gw, "/nodes", host="help.example.com:8765")
            assert 200 == status
            assert {"urls": ["ws://help.example.com:8765"]} == json.loads(body)
            assert "application/json" == headers["content-type"]
            assert "*" == headers["access-control-allow-origin"]
            assert NO_STORE == headers["cache-control"]
            ipv6 = json.loads((await get(gw, "/nodes", host="[::1]:9"))[2])
            assert {"urls": ["ws://[::1]:9"]} == ipv6

    async def test_a_host_that_is_no_host_name_is_not_echoed(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A Host header that is not a host name gives where the daemon listens instead."""
        async with open_gateway(engine) as gw:
            gw.gateway.url = "ws://127.0.0.1:8765"
            body = (await get(gw, "/nodes", host='evil"><x'))[2]
            assert {"urls": ["ws://127.0.0.1:8765"]} == json.loads(body)

    async def test_a_listed_node_appears_once(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """The route lists what it is given, each URL once, this node's first."""

        async def listed(request: HttpRequest) -> list[str]:
            return ["ws://a:1", "ws://b:2", "ws://a:1", "ws://c:3"]

        async with open_gateway(engine) as gw:
            nodes_route(gw.gateway.routes, listed)
            body = (await get(gw, "/nodes"))[2]
            assert {"urls": ["ws://a:1", "ws://b:2", "ws://c:3"]} == json.loads(body)


class TestRouteTable:
    async def test_an_endpoint_can_be_added(
        self, engine: Engine, autojump_clock: MockClock
    ) -> None:
        """A new endpoint is one Routes.add."""

        async def metrics(request: HttpRequest) -> HttpReply:
            return HttpReply(status=200, body=b"up 1\n")

        async with open_gateway(engine) as gw:
            gw.gateway.routes.add("/metrics", metrics)
            assert (200, b"up 1\n") == (lambda r: (r[0], r[2]))(await get(gw, "/metrics"))

    async def test_websocket_still_opens(self, engine: Engine, autojump_clock: MockClock) -> None:
        """An upgrade on the same port still opens a WebSocket."""
        async with open_gateway(engine) as gw, gw.visitor() as v:
            assert "visitor" == v.hello["role"]

    async def test_serve_warns_once_without_pages(
        self,
        engine: Engine,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
        autojump_clock: MockClock,
    ) -> None:
        """serve logs once at start that the pages are not built."""
        settings = ServerSettings(port=0, web_dir=str(tmp_path / "absent"))
        async with open_gateway(engine, settings) as gw:
            await gw.nursery.start(gw.gateway.serve)
            gw.gateway.shutdown()
            await trio.testing.wait_all_tasks_blocked()
        assert 1 == capsys.readouterr().out.count("web_pages_missing")
