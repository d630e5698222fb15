"""PostgreSQL for tests: a fresh schema per test, on the server HELPLINE_TEST_POSTGRES names.

Without the variable the PostgreSQL tests skip, saying how to run them; with
HELPLINE_REQUIRE_POSTGRES=1 the skip becomes a failure (for CI, where the server must be there).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final
from urllib.parse import quote

import psycopg
import pytest

ENV: Final = "HELPLINE_TEST_POSTGRES"
REQUIRE_ENV: Final = "HELPLINE_REQUIRE_POSTGRES"
HOW: Final = (
    f"set {ENV}=postgresql://postgres@127.0.0.1:5432/test to run the PostgreSQL tests "
    f"(each gets its own schema, dropped afterwards)"
)


def server_url() -> str:
    """The test server's URL, or skip (fail under HELPLINE_REQUIRE_POSTGRES=1)."""
    url = os.environ.get(ENV, "")
    if not url:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {ENV} is not set: {HOW}", pytrace=False)
        pytest.skip(HOW)
    return url


def with_schema(url: str, schema: str) -> str:
    """``url`` with every connection's search_path set to ``schema``."""
    options = quote(f"-csearch_path={schema}", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={options}"


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL on a new, empty schema, dropped (with everything in it) afterwards."""
    url = server_url()
    schema = f"helpline_test_{secrets.token_hex(6)}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
    try:
        yield with_schema(url, schema)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")  # type: ignore[arg-type]
