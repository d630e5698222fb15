"""Sign-in tokens for agents and administrators, and resume tokens for visitors.

Theory of operation
-------------------
A token is 256 random bits from :mod:`secrets`, written URL-safe after a short prefix that says
what it is for (``hlt_`` signs in an agent or an admin, ``hlr_`` resumes a visitor's chat). The
server never keeps a token, only its SHA-256 hex digest: the tokens are random, so a plain hash
cannot be reversed by guessing, and a stolen database does not let anyone sign in.

Agent and admin tokens live in the store's ``tokens`` table as ``(hash, role, subject)``; the
subject is ``"agent:<id>"`` or ``"admin:<name>"``, so an agent whose id happens to be ``admin``
can never collide with an administrator. Issuing a token for a subject first revokes that
subject's earlier tokens (one live token per agent). :func:`authenticate` checks a hello's token
against the role it claims: an agent token never signs in an admin, nor the reverse, and an agent
token signs in only an agent that exists. Every refusal looks the same to the client (one
``unauthorized`` reply, whatever the reason, so that nobody can probe which agents exist); the
real reason (unknown token, wrong role, no such agent) is logged on the server as
``sign_in_refused``.

Agents and tokens may be added with the command line while a daemon runs. The daemon notices such
changes within a second (``server/daemon.py``); so that an agent added a moment ago need not
wait for that, a daemon registers a catch-up with :func:`before_agent_sign_in`, and
:func:`authenticate` runs it for a valid agent token before the hello goes on to connect the
agent.

A supervisor's token (subject ``"supervisor:<name>"``) is stored with the departments it covers
(``token_departments``); :func:`authenticate_supervisor` returns them. An admin's token also signs
in a supervisor connection, covering every department: admins supervise the whole desk.

Resume tokens never touch the disk: they only have to outlive a network hiccup, not a restart
(a restart ends every chat), so the gateway keeps their hashes in memory (``server/registry.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import structlog

from engine import Store

from ..wire.frames import Role

__all__ = [
    "ADMIN_NAME",
    "authenticate",
    "authenticate_supervisor",
    "before_agent_sign_in",
    "hash_token",
    "issue_token",
    "new_resume_token",
    "new_token",
]

TOKEN_BYTES: Final = 32  # 256 bits of randomness
SIGN_IN_PREFIX: Final = "hlt_"
RESUME_PREFIX: Final = "hlr_"
ADMIN_NAME: Final = "admin"
"""The name of the administrator whose token the daemon creates on first start."""

log = structlog.get_logger("helpline.auth")

CatchUp = Callable[[str], Awaitable[None]]
_catch_ups: weakref.WeakKeyDictionary[Store, CatchUp] = weakref.WeakKeyDictionary()


def new_token() -> str:
    """A fresh sign-in token (agents and admins)."""
    return SIGN_IN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def new_resume_token() -> str:
    """A fresh resume token for a visitor's chat."""
    return RESUME_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The digest the server keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def subject(role: Role, name: str) -> str:
    """The ``tokens.subject`` of an agent or an administrator."""
    if role is Role.VISITOR:
        raise ValueError("visitors have no sign-in tokens")
    return f"{role.value}:{name}"


async def issue_token(
    store: Store, role: Role, name: str, *, now: float, departments: Sequence[str] = ()
) -> str:
    """Revoke ``name``'s tokens for ``role``, store a new one's hash (with the ``departments`` a
    supervisor covers), and return the new token."""
    who = subject(role, name)
    token = new_token()
    await store.revoke_tokens(subject=who)
    await store.save_token(
        token_hash=hash_token(token),
        role=role.value,
        subject=who,
        created_at=now,
        departments=departments,
    )
    return token


def before_agent_sign_in(store: Store, catch_up: CatchUp | None) -> None:
    """Have :func:`authenticate` await ``catch_up(agent_id)`` for every valid agent token of
    ``store`` before it answers (None: no longer). A daemon uses it to pick up an agent that the
    command line added a moment ago."""
    if catch_up is None:
        _catch_ups.pop(store, None)
    else:
        _catch_ups[store] = catch_up


async def authenticate(store: Store, role: Role, token: str) -> str | None:
    """The agent id or admin name that ``token`` signs in as ``role``, or None.

    None whatever the reason; the reason is logged (``sign_in_refused``), never told the client.
    """
    found = await store.token(hash_token(token))
    if found is None:
        log.info("sign_in_refused", role=role.value, reason="unknown or revoked token")
        return None
    stored_role, who = found
    prefix = f"{role.value}:"
    if not hmac.compare_digest(stored_role, role.value) or not who.startswith(prefix):
        log.info(
            "sign_in_refused", role=role.value, reason=f"the token is for the {stored_role} role"
        )
        return None
    name = who[len(prefix) :]
    if role is Role.AGENT:
        catch_up = _catch_ups.get(store)
        if catch_up is not None:
            await catch_up(name)
        if all(agent.id != name for agent in await store.agents()):
            log.info("sign_in_refused", role=role.value, agent_id=name, reason="no such agent")
            return None
    return name


async def authenticate_supervisor(
    store: Store, token: str
) -> tuple[str, str, frozenset[str] | None] | None:
    """``(participant id, name, departments)`` that ``token`` signs in as a supervisor, or None.

    A supervisor's token covers the departments stored with it; an admin's covers every
    department (None). Refusals are logged as for :func:`authenticate`.
    """
    found = await store.token(hash_token(token))
    if found is None:
        log.info("sign_in_refused", role="supervisor", reason="unknown or revoked token")
        return None
    stored_role, who = found
    if stored_role == Role.ADMIN.value and who.startswith("admin:"):
        return who, who.removeprefix("admin:"), None
    if stored_role != Role.SUPERVISOR.value or not who.startswith("supervisor:"):
        log.info(
            "sign_in_refused", role="supervisor", reason=f"the token is for the {stored_role} role"
        )
        return None
    departments = await store.token_departments(hash_token(token))
    return who, who.removeprefix("supervisor:"), frozenset(departments)
