"""A frame's fields: their wire types and limits, and the constructors the frame tables use.

Each field of a request or event is a :class:`Field`: a name, a wire type (:class:`Kind`, named as
SPEC.md names it), whether it is required, and its limits (length, range, items). The codec checks
every decoded field against its :class:`Field` before the server sees it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_REF", "Field", "Kind", "Role", "boolean", "integer", "number", "string", "strings"]

MAX_REF: Final = 2**53 - 1
"""The largest valid ref (and id-like integer): every value is exact in a JavaScript number."""


class Role(enum.StrEnum):
    """Who is on the other end of a connection, as named in its hello."""

    VISITOR = "visitor"
    AGENT = "agent"
    ADMIN = "admin"
    SUPERVISOR = "supervisor"


class Kind(enum.Enum):
    """A field's wire type; the value is the name SPEC.md uses for it."""

    STR = "string"
    INT = "integer"
    FLOAT = "number"
    BOOL = "boolean"
    STR_LIST = "list of strings"


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One request field: its wire type, whether it must be present, and its limits."""

    name: str
    kind: Kind
    required: bool = True
    min_len: int = 0  # strings: UTF-8 bytes; lists: items
    max_len: int = 0  # strings: UTF-8 bytes; lists: items
    item_min_len: int = 0  # list items: UTF-8 bytes
    item_max_len: int = 0  # list items: UTF-8 bytes
    lo: float | None = None  # numbers: inclusive bounds
    hi: float | None = None
    choices: tuple[str, ...] = ()
    roles: frozenset[Role] | None = None  # None: the field applies to every role

    @property
    def constraint(self) -> str:
        """The field's limits in words, as SPEC.md and error messages state them."""
        if self.choices:
            return "one of " + ", ".join(f"`{choice}`" for choice in self.choices)
        if self.kind is Kind.STR:
            return f"{self.min_len}..{self.max_len} bytes"
        if self.kind is Kind.STR_LIST:
            return (
                f"{self.min_len}..{self.max_len} items, "
                f"each {self.item_min_len}..{self.item_max_len} bytes"
            )
        if self.kind in (Kind.INT, Kind.FLOAT):
            return _range_text(self.lo, self.hi)
        return "true or false"

    def applies_to(self, role: Role | None) -> bool:
        """Whether a connection with ``role`` (None: not yet known) may carry this field."""
        return self.roles is None or role is None or role in self.roles

    def required_for(self, role: Role | None) -> bool:
        """Whether the field must be present for ``role``; role-scoped fields need a known role."""
        if not self.required:
            return False
        return self.roles is None or (role is not None and role in self.roles)


def _range_text(lo: float | None, hi: float | None) -> str:
    def show(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)

    if lo is not None and hi is not None:
        return f"{show(lo)}..{show(hi)}"
    if lo is not None:
        return f">= {show(lo)}"
    if hi is not None:
        return f"<= {show(hi)}"
    return "any finite value"


def _split(name: str) -> tuple[str, bool]:
    """``"email?"`` -> ``("email", False)``: a trailing ``?`` marks an optional field."""
    if name.endswith("?"):
        return name[:-1], False
    return name, True


def string(
    name: str,
    max_len: int = 256,
    *,
    min_len: int | None = None,
    choices: Iterable[str] = (),
    roles: frozenset[Role] | None = None,
) -> Field:
    """A string field; required strings default to at least 1 byte, optional ones to 0."""
    bare, required = _split(name)
    allowed = tuple(choices)
    if allowed:
        max_len = max(len(choice.encode()) for choice in allowed)
    if min_len is None:
        min_len = 1 if required else 0
    return Field(
        name=bare,
        kind=Kind.STR,
        required=required,
        min_len=min_len,
        max_len=max_len,
        choices=allowed,
        roles=roles,
    )


def integer(name: str, lo: int = 0, hi: int = MAX_REF) -> Field:
    """An integer field within ``lo..hi``; a boolean is never an integer."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.INT, required=required, lo=lo, hi=hi)


def number(name: str, lo: float | None = 0.0, hi: float | None = None) -> Field:
    """A finite float field within ``lo..hi``; integers are accepted and become floats."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.FLOAT, required=required, lo=lo, hi=hi)


def boolean(name: str) -> Field:
    """A true/false field."""
    bare, required = _split(name)
    return Field(name=bare, kind=Kind.BOOL, required=required)


def strings(name: str, max_items: int, *, min_items: int = 0, item_max_len: int = 256) -> Field:
    """A list of non-empty strings; it decodes to a tuple."""
    bare, required = _split(name)
    return Field(
        name=bare,
        kind=Kind.STR_LIST,
        required=required,
        min_len=min_items,
        max_len=max_items,
        item_min_len=1,
        item_max_len=item_max_len,
    )
