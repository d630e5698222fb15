"""Fuzzing the codec: whatever arrives, decoding returns a valid frame or raises ProtocolError.

Four sources of input, about 3,300 frames per run: arbitrary bytes, arbitrary msgpack values,
valid requests generated from the schema table, and those valid requests mutated byte by byte or
field by field. Any exception other than ProtocolError fails the test.
"""

from __future__ import annotations

from typing import Any

import msgpack
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from protocol.wire.codec import (
    decode_request,
    decode_server_frame,
    encode_error,
    encode_request,
)
from protocol.wire.errors import ERROR_CODES, ProtocolError
from protocol.wire.frames import MAX_REF, REQUESTS, Field, FrameSpec, Kind, Request, Role


def fuzz(examples: int) -> settings:
    """Explicit example counts, so the default run always covers the same volume."""
    return settings(
        max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


ROLES = st.sampled_from([None, *Role])

_KIND_TYPES: dict[Kind, type] = {
    Kind.STR: str,
    Kind.INT: int,
    Kind.FLOAT: float,
    Kind.BOOL: bool,
    Kind.STR_LIST: tuple,
}


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def check_refusal(error: ProtocolError) -> None:
    """A refusal carries a documented code, a valid ref if any, and can be told to the client."""
    assert error.code in ERROR_CODES
    assert error.ref is None or 0 <= error.ref <= MAX_REF
    decode_server_frame(encode_error(error))


def check_request(data: bytes, role: Role | None) -> Request | None:
    """Decode ``data``; assert the outcome is a well-formed request or a coded ProtocolError."""
    try:
        request = decode_request(data, role=role)
    except ProtocolError as error:
        check_refusal(error)
        event(f"refused: {error.code}")  # shown by --hypothesis-show-statistics
        return None
    event("decoded")
    spec = REQUESTS[request.type]
    assert role is None or role in spec.roles
    assert 0 <= request.ref <= MAX_REF
    kinds = {f.name: f.kind for f in spec.fields}
    for name, value in request.fields.items():
        assert type(value) is _KIND_TYPES[kinds[name]], (name, value)
    again = decode_request(encode_request(request.type, request.ref, **request.fields), role=role)
    assert again == request
    return request


def check_server_frame(data: bytes) -> None:
    """Decode ``data`` as a server frame; only ProtocolError may escape."""
    try:
        decode_server_frame(data)
    except ProtocolError as error:
        check_refusal(error)


# -- arbitrary msgpack values ----------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
KEYS = (
    st.text(max_size=12)
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.binary(max_size=8)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=20,
)
STRING_KEYED = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
FIELD_NAMES = sorted({f.name for spec in REQUESTS.values() for f in spec.fields})
FRAME_LIKE = st.builds(
    lambda envelope, fields: {**fields, **envelope},
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(sorted(REQUESTS)) | VALUES,
            "ref": st.integers(min_value=-1, max_value=MAX_REF + 1) | VALUES,
        },
    ),
    st.dictionaries(
        st.sampled_from(FIELD_NAMES) | st.text(max_size=8), SCALARS | STRING_KEYED, max_size=8
    ),
)


# -- valid requests, generated from the table ------------------------------------------------------


def values_for(field: Field) -> st.SearchStrategy[Any]:
    """Values that satisfy ``field``'s entry in the table."""
    if field.choices:
        return st.sampled_from(field.choices)
    if field.kind is Kind.STR:
        return st.text(min_size=field.min_len, max_size=min(64, field.max_len // 4))
    if field.kind is Kind.INT:
        return st.integers(min_value=int(field.lo or 0), max_value=int(field.hi or MAX_REF))
    if field.kind is Kind.FLOAT:
        lo, hi = field.lo or 0.0, field.hi or 1e12
        return st.floats(min_value=lo, max_value=hi) | st.integers(int(lo), int(hi))
    if field.kind is Kind.BOOL:
        return st.booleans()
    item = st.text(min_size=field.item_min_len, max_size=min(16, field.item_max_len // 4))
    return st.lists(item, min_size=field.min_len, max_size=min(field.max_len, 5))


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[dict[str, Any], Role]:
    """A valid request frame (as a dict) and a role that may send it."""
    spec: FrameSpec = draw(st.sampled_from(sorted(REQUESTS.values(), key=lambda s: s.type)))
    role: Role = draw(st.sampled_from(sorted(spec.roles)))
    fields: dict[str, Any] = {}
    for field in spec.fields:
        if not field.applies_to(role):
            continue
        if field.required_for(role) or draw(st.booleans()):
            fields[field.name] = draw(values_for(field))
    if spec.at_least_one and not any(name in fields for name in spec.at_least_one):
        name = draw(st.sampled_from(spec.at_least_one))
        fields[name] = draw(values_for(next(f for f in spec.fields if f.name == name)))
    for name, value, other in spec.needs:
        if fields.get(name) == value and other not in fields:
            fields[other] = draw(values_for(next(f for f in spec.fields if f.name == other)))
    ref = draw(st.integers(min_value=0, max_value=MAX_REF))
    return {"type": spec.type, "ref": ref, **fields}, role


# -- the properties --------------------------------------------------------------------------------


class TestFuzz:
    @fuzz(1000)
    @given(data=st.binary(max_size=512), role=ROLES)
    def test_arbitrary_bytes(self, data: bytes, role: Role | None) -> None:
        """Random bytes decode to a valid frame or a ProtocolError, never anything else."""
        check_request(data, role)
        check_server_frame(data)

    @fuzz(1000)
    @given(value=VALUES | FRAME_LIKE, role=ROLES)
    def test_arbitrary_msgpack_values(self, value: object, role: Role | None) -> None:
        """Any packed msgpack value, nested or not, decodes or is refused with a code."""
        data = pack(value)
        check_request(data, role)
        check_server_frame(data)

    @fuzz(300)
    @given(request=valid_requests())
    def test_valid_requests_decode(self, request: tuple[dict[str, Any], Role]) -> None:
        """Every request built from the table's own limits is accepted."""
        frame, role = request
        decoded = check_request(pack(frame), role)
        assert decoded is not None
        assert (frame["type"], frame["ref"]) == (decoded.type, decoded.ref)
        assert set(frame) - {"type", "ref"} == set(decoded.fields)

    @fuzz(500)
    @given(request=valid_requests(), data=st.data())
    def test_byte_mutations(
        self, request: tuple[dict[str, Any], Role], data: st.DataObject
    ) -> None:
        """Valid frames with bytes flipped, cut, inserted or dropped never crash the decoder."""
        frame, role = request
        raw = bytearray(pack(frame))
        for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
            at = data.draw(st.integers(min_value=0, max_value=len(raw)))
            operation = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete"]))
            if operation == "flip" and at < len(raw):
                raw[at] ^= 1 << data.draw(st.integers(min_value=0, max_value=7))
            elif operation == "truncate":
                del raw[at:]
            elif operation == "insert":
                raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
            else:
                del raw[at : at + data.draw(st.integers(min_value=1, max_value=8))]
        check_request(bytes(raw), role)
        check_server_frame(bytes(raw))

    @fuzz(500)
    @given(request=valid_requests(), data=st.data())
    def test_field_mutations(
        self, request: tuple[dict[str, Any], Role], data: st.DataObject
    ) -> None:
        """Valid frames with fields swapped for random values, dropped or added never crash."""
        frame, role = request
        for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
            operation = data.draw(st.sampled_from(["swap", "drop", "add"]))
            if operation == "add" or not frame:
                frame[data.draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=8))] = data.draw(
                    VALUES
                )
            elif operation == "swap":
                frame[data.draw(st.sampled_from(sorted(frame)))] = data.draw(VALUES)
            else:
                del frame[data.draw(st.sampled_from(sorted(frame)))]
        check_request(pack(frame), role)
