"""An administrator's connection: departments, agents and their tokens, tickets, ratings, and
canned messages.

Theory of operation
-------------------
An admin signs in with a token issued on the daemon's host (``helpline token --admin``, or the
one printed on first start) and takes no chats. Its requests change the running engine and the
store together: ``department_add`` and ``agent_add`` go through the engine, which stores the
record before it takes effect; ``token_issue`` replaces the agent's token (the open connections of
the agent stay open); ``agent_remove`` removes the agent from the engine, revokes its tokens and
closes its connections with 1008 (SPEC.md section 6.4).

The engine's ``add_*`` calls create or update, so "already exists" (``invalid_state``) and "does
not exist" (``not_found``) are checked here first. Admin requests are rare and each one runs to
completion before the connection reads its next request, so the check and the change cannot be
interleaved with another request of the same admin.

Canned messages and their categories live in the engine's ``CannedDesk``, which keeps them in
memory for suggestions and writes every change through to the store before it answers; a change
is seen by the next ``canned_suggest`` of every agent. The desk validates what it is given; this
module adds what the wire promises on top: an existing id is ``invalid_state`` (the desk calls it
invalid), a department must exist (``not_found``), and ``canned_edit`` takes a department *or*
``shared: true``, never both.

Every change is written to the audit log (``audit_list``; the actor is ``admin:NAME``) with the
record before and after it, once the change is made. An admin also supervises every department
(``supervisor.py``): its first desk, monitor, whisper or reassign request opens a supervisor
handle of all departments for the connection, and from then on its events come too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from engine import (
    Agent,
    AuditEntry,
    CannedCategory,
    CannedMessage,
    Department,
    EngineError,
    Hours,
    RoutingMode,
    SupervisorConnection,
)

from ...wire.frames import Request, Role
from ...wire.records import (
    Fields,
    agent_record,
    audit_agent,
    audit_record,
    canned_category_record,
    canned_message_record,
    department_record,
    fit,
    rating_report_record,
    routing_trace_record,
)
from ..auth import authenticate, issue_token, subject
from .departments import departments_reply
from .supervisor import Supervising, pump
from .tickets import TicketDesk
from .webhooks import webhook_handlers

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["AdminRole", "open_admin"]

_KINDS: dict[str, type] = {
    "chat_enabled": bool,
    "routing": str,
    "offer_window": float,
    "queue_timeout": float,
    "queue_limit": int,
    "overflow_wait": float,
    "overflow_queue": int,
    "silence_timeout": float,
    "skills_wait": float,
}
_HOURS = ("hours_timezone", "hours_weekly", "hours_holidays")


async def open_admin(conn: Connection, request: Request) -> tuple[AdminRole, Fields]:
    """The hello of an admin: check its token."""
    name = await authenticate(conn.engine.store, Role.ADMIN, request.require("token", str))
    if name is None:
        raise EngineError("unauthorized", "that token is unknown or was revoked")
    conn.log = conn.log.bind(admin=name)
    return AdminRole(conn, name), {}


def _settings(request: Request, old: Department | None = None) -> dict[str, Any]:
    """The department settings a request gives (business hours merged into ``old``'s)."""
    values: dict[str, Any] = {}
    for name, kind in _KINDS.items():
        value = request.get(name, kind)
        if value is not None:
            values[name] = RoutingMode(value) if name == "routing" else value
    if "overflow_to" in request.fields:
        values["overflow_to"] = request.strings("overflow_to")
    if any(name in request.fields for name in _HOURS):
        hours = old.hours if old is not None else Hours()
        hours = Hours(
            timezone=request.get("hours_timezone", str, hours.timezone),
            weekly=request.strings("hours_weekly")
            if "hours_weekly" in request.fields
            else hours.weekly,
            holidays=request.strings("hours_holidays")
            if "hours_holidays" in request.fields
            else hours.holidays,
        )
        values["hours"] = hours  # the engine checks it (invalid_field)
    return values


class AdminRole:
    """The requests of one admin connection."""

    def __init__(self, conn: Connection, name: str) -> None:
        self._conn = conn
        self._engine = conn.engine
        self._registry = conn.registry
        self._name = name
        self._actor = subject(Role.ADMIN, name)
        self._desk = TicketDesk(conn.engine, conn.gateway.name_of)
        self._supervisor: SupervisorConnection | None = None
        self._handlers = {
            **Supervising(conn, self._supervising).handlers,
            "audit_list": self._audit_list,
            "department_add": self._department_add,
            "department_update": self._department_update,
            "department_list": self._department_list,
            "agent_add": self._agent_add,
            "agent_update": self._agent_update,
            "agent_remove": self._agent_remove,
            "agent_list": self._agent_list,
            "token_issue": self._token_issue,
            "rating_report": self._rating_report,
            "routing_trace": self._routing_trace,
            "available_agents": self._available_agents,
            "tickets": self._tickets,
            "ticket": self._ticket,
            "mark_handled": self._mark_handled,
            "canned_category_add": self._canned_category_add,
            "canned_category_rename": self._canned_category_rename,
            "canned_category_delete": self._canned_category_delete,
            "canned_add": self._canned_add,
            "canned_edit": self._canned_edit,
            "canned_delete": self._canned_delete,
            "canned_list": self._canned_list,
            **webhook_handlers(conn),
            "departments": self._departments_public,
        }

    posts: frozenset[str] = frozenset()

    async def post(
        self, request: Request, then: Callable[[int | EngineError], None]
    ) -> Callable[[], None]:
        raise AssertionError("an admin posts nothing")

    def start(self) -> None:
        """An admin receives no events besides ``shutdown`` until it supervises."""

    async def _supervising(self) -> SupervisorConnection:
        """The connection's supervisor handle of every department, opened on first use."""
        if self._supervisor is None:
            self._supervisor = await self._conn.stack.enter_async_context(
                self._engine.connect_supervisor(self._actor, name=self._name)
            )
            self._conn.start_soon(pump, self._conn, self._supervisor)
        return self._supervisor

    async def _audit(
        self,
        action: str,
        target: str,
        before: Mapping[str, Any] | None = None,
        after: Mapping[str, Any] | None = None,
    ) -> None:
        await self._engine.store.record_audit(
            AuditEntry(
                at=self._engine.now(),
                actor=self._actor,
                action=action,
                target=target,
                before=before,
                after=after,
            )
        )

    async def _audit_list(self, request: Request) -> Fields:
        entries = await self._engine.store.audit(
            since=request.get("since", float),
            until=request.get("until", float),
            actor=request.get("actor", str),
            action=request.get("action", str),
            limit=request.get("limit", int, 100),
            offset=request.get("offset", int, 0),
        )
        return fit(entries, lambda shown: {"entries": [audit_record(e) for e in shown]})

    async def handle(self, request: Request) -> Fields:
        return await self._handlers[request.type](request)

    # -- departments -------------------------------------------------------------------------------

    async def _department(self, dept_id: str) -> Department | None:
        return next((d for d in await self._engine.departments() if d.id == dept_id), None)

    async def _department_add(self, request: Request) -> Fields:
        dept_id = request.require("id", str)
        if await self._department(dept_id) is not None:
            raise EngineError("invalid_state", f"department {dept_id!r} exists already")
        department = Department(id=dept_id, name=request.require("name", str), **_settings(request))
        await self._check_fallbacks(department)
        stored = await self._engine.add_department(department)
        self._conn.log.info("department_added", department=dept_id)
        await self._audit("department_added", dept_id, None, department_record(stored))
        return {"department": department_record(stored)}

    async def _department_update(self, request: Request) -> Fields:
        dept_id = request.require("id", str)
        old = await self._department(dept_id)
        if old is None:
            raise EngineError("not_found", f"no department {dept_id!r}")
        changes = _settings(request, old)
        name = request.get("name", str)
        if name is not None:
            changes["name"] = name
        new = dataclasses.replace(old, **changes)
        await self._check_fallbacks(new)
        stored = await self._engine.update_department(new)
        self._conn.log.info("department_updated", department=dept_id)
        await self._audit(
            "department_changed", dept_id, department_record(old), department_record(stored)
        )
        return {"department": department_record(stored)}

    async def _check_fallbacks(self, department: Department) -> None:
        known = {d.id for d in await self._engine.departments()} | {department.id}
        missing = [d for d in department.overflow_to if d not in known]
        if missing:
            raise EngineError("not_found", f"no department {', '.join(missing)} to overflow to")
        if department.id in department.overflow_to:
            raise EngineError("invalid_field", "a department cannot overflow to itself")

    async def _department_list(self, request: Request) -> Fields:
        return {"departments": [department_record(d) for d in await self._engine.departments()]}

    async def _departments_public(self, request: Request) -> Fields:
        return await departments_reply(self._conn)

    # -- agents ------------------------------------------------------------------------------------

    async def _loads(self) -> dict[str, int]:
        return {a.id: a.load for a in (await self._engine.inspect()).agents.values()}

    async def _agent(self, agent_id: str) -> Agent | None:
        return next((a for a in await self._engine.agents() if a.id == agent_id), None)

    async def _agent_add(self, request: Request) -> Fields:
        agent_id = request.require("id", str)
        if await self._agent(agent_id) is not None:
            raise EngineError("invalid_state", f"agent {agent_id!r} exists already")
        agent = Agent(
            id=agent_id,
            name=request.require("name", str),
            departments=request.strings("departments"),
            capacity=request.get("capacity", int, 3),
            skills=tuple(dict.fromkeys(request.strings("skills"))),
        )
        await self._engine.add_agent(agent)
        self._conn.log.info("agent_added", agent_id=agent_id)
        await self._audit("agent_added", agent_id, None, audit_agent(agent))
        return {"agent": agent_record(await self._agent(agent_id) or agent, 0)}

    async def _agent_update(self, request: Request) -> Fields:
        agent_id = request.require("id", str)
        old = await self._agent(agent_id)
        if old is None:
            raise EngineError("not_found", f"no agent {agent_id!r}")
        changes: dict[str, Any] = {}
        name = request.get("name", str)
        if name is not None:
            changes["name"] = name
        if "departments" in request.fields:
            changes["departments"] = tuple(dict.fromkeys(request.strings("departments")))
        capacity = request.get("capacity", int)
        if capacity is not None:
            changes["capacity"] = capacity
        new = dataclasses.replace(old, **changes)
        await self._engine.add_agent(new)  # stored, then applied
        self._conn.log.info("agent_updated", agent_id=agent_id, fields=sorted(changes))
        loads = await self._loads()
        stored = await self._agent(agent_id) or new
        await self._audit("agent_changed", agent_id, audit_agent(old), audit_agent(stored))
        return {"agent": agent_record(stored, loads.get(agent_id, 0))}

    async def _agent_remove(self, request: Request) -> Fields:
        agent_id = request.require("id", str)
        old = await self._agent(agent_id)
        if old is None:
            raise EngineError("not_found", f"no agent {agent_id!r}")
        await self._engine.store.revoke_tokens(subject=subject(Role.AGENT, agent_id))
        await self._engine.remove_agent(agent_id)
        closed = self._registry.close_agent(agent_id, 1008, "the agent was removed")
        self._conn.log.info("agent_removed", agent_id=agent_id, connections=closed)
        await self._audit("agent_removed", agent_id, audit_agent(old), None)
        return {}

    async def _agent_list(self, request: Request) -> Fields:
        loads = await self._loads()
        agents = await self._engine.agents()
        return {"agents": [agent_record(a, loads.get(a.id, 0)) for a in agents]}

    async def _token_issue(self, request: Request) -> Fields:
        if request.get("role", str, "agent") == "supervisor":
            return await self._supervisor_token(request)
        agent_id = request.get("agent_id", str)
        if agent_id is None:
            raise EngineError("missing_field", "an agent's token needs 'agent_id'")
        if await self._agent(agent_id) is None:
            raise EngineError("not_found", f"no agent {agent_id!r}")
        token = await issue_token(self._engine.store, Role.AGENT, agent_id, now=self._engine.now())
        self._conn.log.info("token_issued", agent_id=agent_id)
        await self._audit("token_issued", subject(Role.AGENT, agent_id), None, {"role": "agent"})
        return {"agent_id": agent_id, "token": token}

    async def _supervisor_token(self, request: Request) -> Fields:
        name = request.require("name", str)
        departments = tuple(dict.fromkeys(request.strings("departments")))
        for department in departments:
            self._check_department(department)
        token = await issue_token(
            self._engine.store,
            Role.SUPERVISOR,
            name,
            now=self._engine.now(),
            departments=departments,
        )
        who = subject(Role.SUPERVISOR, name)
        self._conn.log.info("token_issued", supervisor=who)
        after = {"role": "supervisor", "departments": sorted(departments)}
        await self._audit("token_issued", who, None, after)
        return {"supervisor": who, "name": name, "departments": sorted(departments), "token": token}

    async def _available_agents(self, request: Request) -> Fields:
        department = request.get("department", str, "")
        view = await self._engine.inspect()
        if department and department not in view.queues:
            raise EngineError("not_found", f"no department {department!r}")
        name_of = self._conn.gateway.name_of
        agents = sorted(
            (
                a
                for a in view.agents.values()
                if a.status == "online"
                and a.connected
                and a.load < a.capacity
                and (not department or department in a.departments)
            ),
            key=lambda a: (a.load, name_of(a.id)),
        )
        return {
            "agents": [
                {
                    "id": a.id,
                    "name": name_of(a.id),
                    "departments": list(a.departments),
                    "load": a.load,
                    "capacity": a.capacity,
                }
                for a in agents
            ]
        }

    # -- tickets and ratings -----------------------------------------------------------------------

    async def _tickets(self, request: Request) -> Fields:
        return await self._desk.search(request, agent_id=None, scope=None)

    async def _ticket(self, request: Request) -> Fields:
        return await self._desk.one(request, scope=None)

    async def _mark_handled(self, request: Request) -> Fields:
        return await self._desk.mark_handled(request, scope=None)

    async def _routing_trace(self, request: Request) -> Fields:
        chat_id = request.require("chat_id", str)
        trace = await self._engine.routing_trace(chat_id)
        if trace is None:
            raise EngineError("not_found", f"no routing trace of chat {chat_id!r}")
        return routing_trace_record(trace)

    async def _rating_report(self, request: Request) -> Fields:
        report = await self._engine.store.rating_report(
            since=request.get("since", float), until=request.get("until", float)
        )
        return rating_report_record(report)

    # -- canned messages ---------------------------------------------------------------------------

    def _check_department(self, department: str | None) -> None:
        if department is not None and self._engine.department_record(department) is None:
            raise EngineError("not_found", f"no department {department!r}")

    def _check_category(self, category_id: str) -> None:
        if all(c.id != category_id for c in self._engine.canned.categories()):
            raise EngineError("not_found", f"no canned category {category_id!r}")

    def _canned_message(self, message_id: str) -> CannedMessage | None:
        return next((m for m in self._engine.canned.messages() if m.id == message_id), None)

    async def _canned_category_add(self, request: Request) -> Fields:
        category_id = request.get("id", str, "")
        if category_id and any(c.id == category_id for c in self._engine.canned.categories()):
            raise EngineError("invalid_state", f"canned category {category_id!r} exists already")
        category = await self._engine.canned.add_category(
            request.require("name", str), category_id=category_id
        )
        self._conn.log.info("canned_category_added", category=category.id)
        await self._audit("canned_changed", category.id, None, _category(category))
        return {"category": canned_category_record(category)}

    async def _canned_category_rename(self, request: Request) -> Fields:
        category_id = request.require("id", str)
        old = next((c for c in self._engine.canned.categories() if c.id == category_id), None)
        category = await self._engine.canned.rename_category(
            category_id, request.require("name", str)
        )
        self._conn.log.info("canned_category_renamed", category=category.id)
        before = None if old is None else _category(old)
        await self._audit("canned_changed", category.id, before, _category(category))
        return {"category": canned_category_record(category)}

    async def _canned_category_delete(self, request: Request) -> Fields:
        category_id = request.require("id", str)
        mode = request.get("messages", str, "refuse")
        move_to = request.get("move_to", str)
        self._check_category(category_id)
        if move_to is not None and mode != "move":
            raise EngineError("invalid_field", "move_to goes with messages 'move'")
        if move_to is not None:
            self._check_category(move_to)
        held = len(self._engine.canned.messages(category=category_id))
        if mode == "move":
            await self._engine.canned.delete_category(category_id, messages="move", move_to=move_to)
        else:
            await self._engine.canned.delete_category(
                category_id, messages="delete" if mode == "delete" else "refuse"
            )
        self._conn.log.info("canned_category_deleted", category=category_id, messages=mode)
        await self._audit(
            "canned_changed", category_id, {"category": category_id, "messages": held}, None
        )
        return {
            "deleted": held if mode == "delete" else 0,
            "moved": held if mode == "move" else 0,
        }

    async def _canned_add(self, request: Request) -> Fields:
        message_id = request.get("id", str, "")
        if message_id and self._canned_message(message_id) is not None:
            raise EngineError("invalid_state", f"canned message {message_id!r} exists already")
        category = request.require("category", str)
        self._check_category(category)
        department = request.get("department", str)
        self._check_department(department)
        message = await self._engine.canned.add_message(
            request.require("text", str),
            category=category,
            department=department,
            message_id=message_id,
            title=request.get("title", str, ""),
            shortcut=request.get("shortcut", str, ""),
            reading=request.get("reading", str, ""),
        )
        self._conn.log.info("canned_added", message_id=message.id)
        await self._audit("canned_changed", message.id, None, canned_message_record(message))
        return {"message": canned_message_record(message)}

    async def _canned_edit(self, request: Request) -> Fields:
        message_id = request.require("id", str)
        old = self._canned_message(message_id)
        if old is None:
            raise EngineError("not_found", f"no canned message {message_id!r}")
        department = request.get("department", str)
        shared = request.get("shared", bool)
        if department is not None and shared is not None:
            raise EngineError(
                "invalid_field",
                "give department (for one department) or shared (for all), not both",
            )
        if shared is False:
            raise EngineError(
                "invalid_field", "to stop sharing a message, give the department it is for"
            )
        changes: dict[str, Any] = {
            name: request.get(name, str)
            for name in ("text", "category", "title", "shortcut", "reading")
        }
        if changes["category"] is not None:
            self._check_category(changes["category"])
        self._check_department(department)
        if shared or department is not None:
            changes["department"] = department  # None: shared by every department
        message = await self._engine.canned.edit_message(message_id, **changes)
        self._conn.log.info("canned_edited", message_id=message_id)
        await self._audit(
            "canned_changed",
            message_id,
            canned_message_record(old),
            canned_message_record(message),
        )
        return {"message": canned_message_record(message)}

    async def _canned_delete(self, request: Request) -> Fields:
        message_id = request.require("id", str)
        old = self._canned_message(message_id)
        await self._engine.canned.delete_message(message_id)
        self._conn.log.info("canned_deleted", message_id=message_id)
        before = None if old is None else canned_message_record(old)
        await self._audit("canned_changed", message_id, before, None)
        return {}

    async def _canned_list(self, request: Request) -> Fields:
        department = request.get("department", str)
        self._check_department(department)
        category = request.get("category", str)
        if category is not None:
            self._check_category(category)
        desk = self._engine.canned
        categories = [canned_category_record(c) for c in desk.categories()]
        messages = desk.messages(
            departments=None if department is None else (department,), category=category
        )

        def build(shown: Sequence[CannedMessage]) -> Fields:
            return {
                "categories": categories,
                "messages": [canned_message_record(m) for m in shown],
            }

        return fit(messages, build)


def _category(category: CannedCategory) -> dict[str, Any]:
    return dict(canned_category_record(category))
