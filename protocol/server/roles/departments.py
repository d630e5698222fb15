"""The ``departments`` request, the same for every role: each department's id, name, whether its
chat is on, whether one of its agents is online now, and whether it is within its business hours
(and if not, when it opens next).

Theory of operation
-------------------
This is public information: a visitor's widget needs it before it opens a chat, to offer a
department picker and to say "no one is online" up front (the chat still opens and becomes a
missed-chat ticket, SPEC.md section 6.2); an agent's console needs the names for its transfer
dialog. An agent is *online* when its status is online and at least one of its connections is
open, as the router sees it. Visitors may ask as often as the request rate allows, so the answer
a visitor gets is kept for up to ``_FRESH`` seconds per engine and shared by every visitor
connection: the router is asked at most once a second however many widgets open. Agents and
admins always get a fresh answer (and do not fill the visitors' one). The kept answer is dropped
as soon as the router counts a change of who is online (``Stats.presence_changes``: a status set,
an agent's first connection opened or its last closed, the directory changed), so a widget that
asks right after an agent went online, or left, is not told otherwise.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final

from engine import Engine
from engine.model.hours import is_open, opens_at

from ...wire.records import Fields

if TYPE_CHECKING:
    from ..connection import Connection

__all__ = ["departments_reply"]

_FRESH: Final = 1.0  # seconds an answer is reused (business hours move with the clock)
# per engine: when the answer was made, the presence changes counted then, the answer
_CACHE: weakref.WeakKeyDictionary[Engine, tuple[float, int, Fields]] = weakref.WeakKeyDictionary()


async def departments_reply(conn: Connection, *, shared: bool = False) -> Fields:
    """The reply to ``departments``: ``{"departments": [{id, name, chat_enabled, online, open,
    opens_at?}]}``.

    ``shared``: an answer up to a second old will do (for visitors).
    """
    engine = conn.engine
    now, changes = engine.now(), engine.stats.presence_changes
    cached = _CACHE.get(engine) if shared else None
    if cached is not None and 0 <= now - cached[0] < _FRESH and cached[1] == changes:
        return cached[2]
    view = await engine.inspect()
    online = {
        department
        for agent in view.agents.values()
        if agent.status == "online" and agent.connected
        for department in agent.departments
    }
    departments = sorted(await engine.departments(), key=lambda d: (d.name.casefold(), d.id))
    items: list[Fields] = []
    for d in departments:
        item: Fields = {
            "id": d.id,
            "name": d.name,
            "chat_enabled": d.chat_enabled,
            "online": d.id in online,
            "open": is_open(d.hours, now),
        }
        if not item["open"]:
            next_open = opens_at(d.hours, now)
            if next_open is not None:
                item["opens_at"] = next_open
        items.append(item)
    fields: Fields = {"departments": items}
    if shared:
        _CACHE[engine] = (now, changes, fields)
    return fields
