"""One module per role a connection may sign in as, and the role table the gateway serves by.

``ROLES`` maps each role to the function that signs a hello in as that role (``visitor.py``,
``agent.py``, ``supervisor.py``, ``admin.py``); ``tickets.py`` holds the ticket requests agents
and admins share. The connection knows roles only through the ``RoleHandler`` protocol, so the
role modules may use the connection and nothing imports back.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ...wire.frames import Role
from ..connection import RoleOpener
from .admin import open_admin
from .agent import open_agent
from .supervisor import open_supervisor
from .visitor import open_visitor

__all__ = ["ROLES"]

ROLES: Final[Mapping[Role, RoleOpener]] = MappingProxyType(
    {
        Role.VISITOR: open_visitor,
        Role.AGENT: open_agent,
        Role.ADMIN: open_admin,
        Role.SUPERVISOR: open_supervisor,
    }
)
