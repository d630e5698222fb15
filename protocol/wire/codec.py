"""The sans-I/O wire codec: bytes in, validated frozen frames out, and frames back to bytes.

Theory of operation
-------------------
Like h11 and wsproto, this module does no I/O and knows no event loop: a gateway hands it the
payload of one binary WebSocket message and gets back a :class:`~protocol.wire.frames.Request`
or a :class:`~protocol.wire.errors.ProtocolError`; it hands it a reply or an event and gets back
bytes. That makes the codec easy to fuzz and lets any frontend reuse it.

Decoding a request runs through stages, cheapest first, and each stage refuses with one
``ProtocolError`` carrying a wire error code:

1. **Size.** More than ``Limits.max_frame_size`` bytes is ``frame_too_large``; nothing is unpacked.
2. **Unpack.** ``msgpack.unpackb`` with every declared-length limit set to the frame's size (a
   ten-byte frame that declares a 4 GB string fails at once, nothing allocated), strict UTF-8
   (``raw=False``), ext types refused (``max_ext_len=0`` plus an ``ext_hook`` that raises), and an
   ``object_pairs_hook`` that refuses non-string and duplicate keys in every map. Exactly one object
   must fill the frame: invalid, truncated or trailing bytes are all ``malformed``.
3. **Shape.** The top level must be a map (``malformed``). Its ``ref`` is read now, so every later
   error carries it and the gateway can answer with an error reply. An iterative walk (no
   recursion, so no stack to blow) applies the global caps of :class:`Limits` to every value,
   unknown fields included: a string, binary, array or map over its cap is ``invalid_field``
   naming the top-level field that holds it; nesting deeper than ``max_depth`` is ``malformed``.
4. **Envelope.** ``type`` must be present, a string, and a request type of :data:`REQUESTS`
   (``missing_field`` / ``invalid_field`` / ``unknown_type``); ``ref`` must be an integer in
   ``0 <= ref < 2**53`` (``bad_ref``). If the caller knows the connection's role, a type that role
   may not send is ``forbidden``.
5. **Fields.** The table drives validation: required fields present (``missing_field``), types
   exact (a bool is not an integer; an integer is accepted where a number is expected and becomes a
   float; NaN and infinities are refused), lengths and ranges and allowed values respected
   (``invalid_field``). An optional field sent as nil counts as absent. Unknown fields are ignored
   for forward compatibility, though stages 1 to 3 have already held them to every limit.

Clients decode server frames with :func:`decode_server_frame`, which applies stages 1-3 and checks
only the envelope of replies and events: a client must accept fields and events it does not know.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, NoReturn, cast

import msgpack

from .errors import ERROR_CODES, ProtocolError
from .frames import (
    DEFAULT_LIMITS,
    EVENTS,
    MAX_REF,
    REQUESTS,
    SERVER_FRAME_LIMITS,
    ErrorReply,
    Event,
    Field,
    FrameSpec,
    Kind,
    Limits,
    Reply,
    Request,
    Role,
    ServerFrame,
)

__all__ = [
    "decode_request",
    "decode_server_frame",
    "encode_error",
    "encode_event",
    "encode_reply_error",
    "encode_reply_ok",
    "encode_request",
]

Buffer = bytes | bytearray | memoryview

_SCALARS: Final = frozenset({str, int, float, bool, bytes, type(None)})
_WIRE_NAMES: Final[Mapping[type, str]] = MappingProxyType(
    {
        str: "a string",
        bytes: "binary",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
        type(None): "nil",
        list: "an array",
        dict: "a map",
    }
)
_REQUEST_ENVELOPE: Final = frozenset({"type", "ref"})
_REPLY_ENVELOPE: Final = frozenset({"type", "ref", "ok", "error"})
_EVENT_ENVELOPE: Final = frozenset({"type", "event"})
_SHOWN_CHARS: Final = 64  # how much of a client's string an error message repeats


class _Refused(Exception):
    """Raised inside msgpack hooks; turned into a ``malformed`` ProtocolError."""


# -- stages 1 to 3: size, unpack, shape ------------------------------------------------------------


def _refuse_ext(code: int, data: bytes) -> NoReturn:
    raise _Refused(f"ext type {code} is not allowed")


def _string_keys(pairs: list[tuple[object, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for key, value in pairs:
        if type(key) is not str:
            raise _Refused(f"map keys must be strings, got {_wire_name(key)}")
        if key in result:
            raise _Refused(f"duplicate map key {_show(key)}")
        result[key] = value
    return result


def _unpack(data: Buffer, limits: Limits) -> object:
    """Stages 1 and 2: refuse oversized frames unread, then unpack exactly one object."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    size = data.nbytes if isinstance(data, memoryview) else len(data)
    if size > limits.max_frame_size:
        raise ProtocolError(
            "frame_too_large", f"frame is {size} bytes; the limit is {limits.max_frame_size}"
        )
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,  # the pairs hook refuses every non-string key itself
            object_pairs_hook=_string_keys,
            ext_hook=_refuse_ext,
            # No value can be longer than the frame: a declared length beyond it fails at once.
            # The tighter global caps are checked in stage 3, where the ref is known.
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size,
            max_ext_len=0,
        )
    except _Refused as exc:
        raise ProtocolError("malformed", str(exc)) from exc
    except msgpack.ExtraData as exc:
        raise ProtocolError("malformed", "trailing bytes after one msgpack object") from exc
    except msgpack.StackError as exc:
        raise ProtocolError("malformed", "nesting is too deep") from exc
    except UnicodeDecodeError as exc:
        raise ProtocolError("malformed", "a string is not valid UTF-8") from exc
    except (ValueError, TypeError) as exc:
        detail = str(exc)[:200] or "invalid byte"
        raise ProtocolError("malformed", f"not valid msgpack: {detail}") from exc


def _check_tree(root: dict[str, object], limits: Limits, ref: int | None) -> None:
    """Stage 3: global length caps, nesting depth and value types, walked without recursion.

    Length problems are ``invalid_field`` and name the top-level field that holds them; nesting
    too deep is ``malformed``. Both carry the ref, which the caller read first.
    """
    if len(root) > limits.max_map_len:
        raise ProtocolError(
            "invalid_field", f"a frame may hold at most {limits.max_map_len} fields", ref=ref
        )
    for key, value in root.items():
        if not _length_ok(key, 0, limits.max_str_len):
            raise ProtocolError(
                "invalid_field", f"a field name is over {limits.max_str_len} bytes", ref=ref
            )
        problem = _value_problem(value, limits)
        if problem is not None:
            code, text = problem
            raise ProtocolError(code, f"field {_show(key)} {text}", ref=ref, field=key)


def _value_problem(value: object, limits: Limits) -> tuple[str, str] | None:
    """What is wrong with one top-level value and everything inside it, if anything.

    The walk goes level by level (the top-level map is level 1) and only non-empty containers
    are revisited; scalars are checked in place. A string needs encoding only when it has more
    than a quarter as many characters as the cap has bytes.
    """
    max_str, max_depth = limits.max_str_len, limits.max_depth
    quick_str = max_str // 4
    level: list[object] = [[value]]  # a wrapper at level 1 holds the value at level 2
    depth = 1
    while level:
        deeper: list[object] = []
        for node in level:
            children: Iterable[object]
            if type(node) is dict:
                container = cast(dict[str, object], node)
                if len(container) > limits.max_map_len:
                    return "invalid_field", f"holds a map over {limits.max_map_len} pairs"
                for key in container:
                    if len(key) > quick_str and not _length_ok(key, 0, max_str):
                        return "invalid_field", f"holds a map key over {max_str} bytes"
                children = container.values()
            else:
                items = cast(list[object], node)
                if len(items) > limits.max_list_len:
                    return "invalid_field", f"holds an array over {limits.max_list_len} items"
                children = items
            for child in children:
                kind = type(child)
                if kind is str:
                    text = cast(str, child)
                    if len(text) > quick_str and not _length_ok(text, 0, max_str):
                        return "invalid_field", f"holds a string over {max_str} bytes"
                elif kind is dict or kind is list:
                    if depth >= max_depth:
                        return "malformed", f"nests deeper than {max_depth} levels"
                    if child:
                        deeper.append(child)
                elif kind is bytes:
                    if len(cast(bytes, child)) > max_str:
                        return "invalid_field", f"holds binary over {max_str} bytes"
                elif kind not in _SCALARS:
                    return "malformed", f"holds an unsupported value ({_wire_name(child)})"
        level = deeper
        depth += 1
    return None


def _unpack_map(data: Buffer, limits: Limits) -> tuple[dict[str, object], int | None]:
    """Stages 1 to 3; returns the top-level map and its ref when that is valid."""
    obj = _unpack(data, limits)
    if not isinstance(obj, dict):
        raise ProtocolError("malformed", f"a frame must be a map, got {_wire_name(obj)}")
    frame = cast(dict[str, object], obj)
    ref = frame.get("ref")
    valid_ref = cast(int, ref) if _is_ref(ref) else None
    _check_tree(frame, limits, valid_ref)
    return frame, valid_ref


# -- stages 4 and 5: envelope and fields -----------------------------------------------------------


def decode_request(
    data: Buffer, *, role: Role | str | None = None, limits: Limits = DEFAULT_LIMITS
) -> Request:
    """Decode and validate one request frame, or raise :class:`ProtocolError`.

    ``role`` is the connection's role once its hello succeeded: requests the role may not send
    are refused as ``forbidden``, and role-specific fields (an agent's ``chat_id`` on ``send``)
    are required or ignored accordingly. With ``role=None`` any request type is accepted and
    role-specific fields are optional.
    """
    known_role = None if role is None else Role(role)
    frame, ref = _unpack_map(data, limits)
    spec = _frame_spec(frame, ref)
    if ref is None:
        raise ProtocolError("bad_ref", _ref_problem(frame), field="ref")
    if known_role is not None and known_role not in spec.roles:
        raise ProtocolError(
            "forbidden", f"a {known_role} may not send {spec.type!r}", ref=ref, field="type"
        )
    fields = _check_fields(spec, frame, known_role, ref, limits)
    return Request(type=spec.type, ref=ref, fields=MappingProxyType(fields))


def _frame_spec(frame: dict[str, object], ref: int | None) -> FrameSpec:
    type_ = frame.get("type")
    if type_ is None:
        raise ProtocolError("missing_field", "a frame needs a 'type'", ref=ref, field="type")
    if type(type_) is not str:
        raise ProtocolError(
            "invalid_field",
            f"'type' must be a string, got {_wire_name(type_)}",
            ref=ref,
            field="type",
        )
    spec = REQUESTS.get(type_)
    if spec is None:
        raise ProtocolError("unknown_type", f"unknown request type {_show(type_)}", ref=ref)
    return spec


def _ref_problem(frame: dict[str, object]) -> str:
    ref = frame.get("ref")
    if ref is None:
        return "a request needs a 'ref'"
    if type(ref) is not int:
        return f"'ref' must be an integer, got {_wire_name(ref)}"
    return f"'ref' must be in 0..{MAX_REF}, got {ref}"


def _check_fields(
    spec: FrameSpec, frame: dict[str, object], role: Role | None, ref: int, limits: Limits
) -> dict[str, object]:
    fields: dict[str, object] = {}
    for field in spec.fields:
        if not field.applies_to(role):
            continue
        value = frame.get(field.name)
        if value is None:
            if field.required_for(role):
                raise ProtocolError(
                    "missing_field",
                    f"{spec.type!r} needs field {field.name!r}",
                    ref=ref,
                    field=field.name,
                )
            continue
        fields[field.name] = _check_value(field, value, ref, limits)
    if spec.at_least_one and not any(name in fields for name in spec.at_least_one):
        names = " or ".join(repr(name) for name in spec.at_least_one)
        raise ProtocolError(
            "missing_field",
            f"{spec.type!r} needs {names}",
            ref=ref,
            field=spec.at_least_one[0],
        )
    for name, value, other in spec.needs:
        if fields.get(name) == value and other not in fields:
            raise ProtocolError(
                "missing_field",
                f"{spec.type!r} with {name} {value!r} needs {other!r}",
                ref=ref,
                field=other,
            )
    return fields


def _check_value(field: Field, value: object, ref: int, limits: Limits) -> object:
    """One field's value, checked against its table entry and normalised (floats, tuples)."""

    def refuse(problem: str) -> NoReturn:
        raise ProtocolError(
            "invalid_field", f"field {field.name!r} {problem}", ref=ref, field=field.name
        )

    kind = field.kind
    if kind is Kind.STR:
        if type(value) is not str:
            refuse(f"must be a string, got {_wire_name(value)}")
        if not _length_ok(value, field.min_len, min(field.max_len, limits.max_str_len)):
            refuse(f"must be {field.constraint}")
        if field.choices and value not in field.choices:
            refuse(f"must be {field.constraint}, got {_show(value)}")
        return value
    if kind is Kind.BOOL:
        if type(value) is not bool:
            refuse(f"must be a boolean, got {_wire_name(value)}")
        return value
    if kind is Kind.INT:
        if type(value) is not int:
            refuse(f"must be an integer, got {_wire_name(value)}")
        if not _in_range(value, field):
            refuse(f"must be {field.constraint}, got {value}")
        return value
    if kind is Kind.FLOAT:
        if type(value) is int:
            number = float(value)
        elif type(value) is float:
            number = value
        else:
            refuse(f"must be a number, got {_wire_name(value)}")
        if not math.isfinite(number):
            refuse("must be a finite number")
        if not _in_range(number, field):
            refuse(f"must be {field.constraint}, got {number}")
        return number
    # Kind.STR_LIST
    if type(value) is not list:
        refuse(f"must be a list of strings, got {_wire_name(value)}")
    items = cast(list[object], value)
    if not field.min_len <= len(items) <= min(field.max_len, limits.max_list_len):
        refuse(f"must be {field.constraint}")
    for item in items:
        if type(item) is not str:
            refuse(f"must hold strings, got {_wire_name(item)}")
        if not _length_ok(item, field.item_min_len, min(field.item_max_len, limits.max_str_len)):
            refuse(f"must be {field.constraint}")
    return tuple(cast(list[str], items))


def _length_ok(text: str, min_len: int, max_len: int) -> bool:
    """Whether ``text`` is ``min_len..max_len`` UTF-8 bytes, encoding only when it matters."""
    chars = len(text)
    if chars > max_len:
        return False
    if chars >= min_len and chars * 4 <= max_len:
        return True
    return min_len <= len(text.encode("utf-8")) <= max_len


def _in_range(value: float, field: Field) -> bool:
    return (field.lo is None or value >= field.lo) and (field.hi is None or value <= field.hi)


def _is_ref(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_REF


# -- clients: server frames ------------------------------------------------------------------------


def decode_server_frame(data: Buffer, *, limits: Limits = SERVER_FRAME_LIMITS) -> ServerFrame:
    """Decode a reply or an event from the server, checking its envelope only.

    Unknown result and event fields, unknown event names and unknown error codes are accepted:
    a client must ignore what it does not understand.
    """
    frame, ref = _unpack_map(data, limits)
    type_ = frame.get("type")
    if type_ is None:
        raise ProtocolError("missing_field", "a frame needs a 'type'", field="type")
    if type_ == "event":
        name = frame.get("event")
        if type(name) is not str or not name:
            raise ProtocolError(
                "invalid_field" if name is not None else "missing_field",
                "an event needs an 'event' name (a non-empty string)",
                field="event",
            )
        return Event(name=name, fields=_frozen_rest(frame, _EVENT_ENVELOPE))
    if type(type_) is not str:
        raise ProtocolError(
            "invalid_field", f"'type' must be a string, got {_wire_name(type_)}", field="type"
        )
    if type_ != "reply":
        raise ProtocolError("unknown_type", f"unknown server frame type {_show(type_)}")
    if ref is None:
        raise ProtocolError("bad_ref", _ref_problem(frame), field="ref")
    ok = frame.get("ok")
    if type(ok) is not bool:
        raise ProtocolError(
            "invalid_field" if ok is not None else "missing_field",
            "a reply needs 'ok' (a boolean)",
            ref=ref,
            field="ok",
        )
    if ok:
        return Reply(ref=ref, result=_frozen_rest(frame, _REPLY_ENVELOPE))
    error = frame.get("error")
    if not isinstance(error, dict):
        raise ProtocolError(
            "invalid_field" if error is not None else "missing_field",
            "a failed reply needs an 'error' map",
            ref=ref,
            field="error",
        )
    code, message = error.get("code"), error.get("message")
    if type(code) is not str or not code or type(message) is not str:
        raise ProtocolError(
            "invalid_field",
            "'error' needs a non-empty string 'code' and a string 'message'",
            ref=ref,
            field="error",
        )
    return ErrorReply(ref=ref, code=code, message=message)


def _frozen_rest(frame: dict[str, object], envelope: frozenset[str]) -> Mapping[str, object]:
    return MappingProxyType({k: _freeze(v) for k, v in frame.items() if k not in envelope})


def _freeze(value: object) -> object:
    """Maps become read-only mappings and lists tuples; depth is bounded by ``_check_tree``."""
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(item) for item in value)
    return value


# -- encoding --------------------------------------------------------------------------------------


def encode_request(type_: str, ref: int, /, **fields: object) -> bytes:
    """A request frame, for clients. The type must be in the table; fields are not validated."""
    if type_ not in REQUESTS:
        raise ValueError(f"unknown request type {type_!r}")
    _check_ref_arg(ref)
    _check_reserved(fields, _REQUEST_ENVELOPE)
    return _pack({"type": type_, "ref": ref, **fields})


def encode_reply_ok(ref: int, /, **fields: object) -> bytes:
    """A successful reply to request ``ref`` with result ``fields``."""
    _check_ref_arg(ref)
    _check_reserved(fields, _REPLY_ENVELOPE)
    return _pack({"type": "reply", "ref": ref, "ok": True, **fields})


def encode_reply_error(ref: int, code: str, message: str) -> bytes:
    """A failed reply to request ``ref``; ``code`` must be one of ``ERROR_CODES``."""
    _check_ref_arg(ref)
    _check_code(code)
    error = {"code": code, "message": message}
    return _pack({"type": "reply", "ref": ref, "ok": False, "error": error})


def encode_event(name: str, /, **fields: object) -> bytes:
    """An event push; ``name`` must be in ``EVENTS`` and its required fields present."""
    spec = EVENTS.get(name)
    if spec is None:
        raise ValueError(f"unknown event {name!r}")
    _check_reserved(fields, _EVENT_ENVELOPE)
    missing = [field for field in spec.required if field not in fields]
    if missing:
        raise ValueError(f"event {name!r} needs {missing}")
    return _pack({"type": "event", "event": name, **fields})


def encode_error(error: ProtocolError) -> bytes:
    """What to send for a refused frame: an error reply if its ref was read, else an error event."""
    if error.ref is not None:
        return encode_reply_error(error.ref, error.code, error.message)
    return encode_event("error", code=error.code, message=error.message)


def _pack(frame: dict[str, object]) -> bytes:
    return cast(bytes, msgpack.packb(frame, use_bin_type=True))


def _check_ref_arg(ref: int) -> None:
    if not _is_ref(ref):
        raise ValueError(f"ref must be an int in 0..{MAX_REF}, got {ref!r}")


def _check_code(code: str) -> None:
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")


def _check_reserved(fields: Mapping[str, object], envelope: frozenset[str]) -> None:
    clash = envelope.intersection(fields)
    if clash:
        raise ValueError(f"fields {sorted(clash)} are envelope keys")


# -- messages --------------------------------------------------------------------------------------


def _wire_name(value: object) -> str:
    return _WIRE_NAMES.get(type(value), type(value).__name__)


def _show(text: str) -> str:
    """A client's string, shortened so an error message never echoes a large payload."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "..."
    return repr(text)
