"""The relay protocol's messages: the bytes each is written as (the same as
older builds wrote them), strict decoding from tables of valid and malformed
maps, and decoders that raise only ProtocolError whatever they are given."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.messages import (
    Ack,
    Acked,
    Answer,
    AnyRequest,
    Deposit,
    Fetch,
    Fetched,
    FetchedEnvelope,
    Forward,
    Refused,
    Register,
    Registered,
    Request,
    Sealed,
    Stats,
    Stored,
    Usage,
    decode_answer,
    decode_request,
    decode_sealed_deposit,
    encode,
    encode_sealed_deposit,
)
from relay.protocol import (
    LENGTH,
    MAX_ANSWER_MESSAGE_BYTES,
    MAX_IDS,
    MAX_MESSAGE_BYTES,
    ErrorCode,
    Op,
    ProtocolError,
)

BOX, SECRET, ID, KEY = b"\x01" * 16, b"\x02" * 32, b"\x03" * 16, b"\x04" * 32
BODY = b"\x05" * 1024


def old_framing(fields: dict[str, Any]) -> bytes:
    """A message as older builds wrote it: the dict, msgpack'd, after its length."""
    body: bytes = msgpack.packb(fields, use_bin_type=True)
    return LENGTH.pack(len(body)) + body


# ------------------------------------------------------------------ the bytes on the wire

REQUESTS_AS_THEY_WERE: list[tuple[AnyRequest, dict[str, Any]]] = [
    (
        Register(BOX, SECRET, 1700000000),
        {"op": "register", "mailbox": BOX, "secret": SECRET, "expires": 1700000000},
    ),
    (
        Deposit(BOX, ID, 1700000000, BODY),
        {"op": "deposit", "mailbox": BOX, "id": ID, "expires": 1700000000, "body": BODY},
    ),
    (Forward(KEY, b"sealed"), {"op": "forward", "relay": KEY, "sealed": b"sealed"}),
    (Sealed(b"sealed"), {"op": "sealed", "sealed": b"sealed"}),
    (Fetch(BOX, SECRET, 100), {"op": "fetch", "mailbox": BOX, "secret": SECRET, "limit": 100}),
    (Ack(BOX, SECRET, (ID, ID)), {"op": "ack", "mailbox": BOX, "secret": SECRET, "ids": [ID, ID]}),
    (Ack(BOX, SECRET, ()), {"op": "ack", "mailbox": BOX, "secret": SECRET, "ids": []}),
    (Stats(BOX, SECRET), {"op": "stats", "mailbox": BOX, "secret": SECRET}),
]
"""Each request beside the dict an older build's client sent for it."""

ANSWERS_AS_THEY_WERE: list[tuple[Request[Any], Answer, dict[str, Any]]] = [
    (
        Register(BOX, SECRET, 1),
        Registered(1700000000, 10_000, 256 << 20),
        {"ok": True, "expires": 1700000000, "max_count": 10_000, "max_bytes": 256 << 20},
    ),
    (Deposit(BOX, ID, 1, BODY), Stored(True), {"ok": True, "stored": True}),
    (Sealed(b""), Stored(False), {"ok": True, "stored": False}),
    (Forward(KEY, b""), Stored(True), {"ok": True, "stored": True}),
    (
        Fetch(BOX, SECRET, 10),
        Fetched((FetchedEnvelope(ID, 1700003600, BODY), FetchedEnvelope(BOX, 7200, b"x"))),
        {"ok": True, "envelopes": [[ID, 1700003600, BODY], [BOX, 7200, b"x"]]},
    ),
    (Fetch(BOX, SECRET, 10), Fetched(()), {"ok": True, "envelopes": []}),
    (Ack(BOX, SECRET, (ID,)), Acked(1), {"ok": True, "removed": 1}),
    (Stats(BOX, SECRET), Usage(2, 2048), {"ok": True, "envelopes": 2, "bytes": 2048}),
    (
        Deposit(BOX, ID, 1, BODY),
        Refused(ErrorCode.OVER_QUOTA, "the mailbox is full"),
        {"ok": False, "code": "over-quota", "message": "the mailbox is full"},
    ),
    (
        Register(BOX, SECRET, 1),
        Refused("a-code-of-a-newer-build", "passed on as it came"),
        {"ok": False, "code": "a-code-of-a-newer-build", "message": "passed on as it came"},
    ),
]
"""Each answer beside the request it answers and the dict an older build's relay sent."""


@pytest.mark.parametrize(("request_", "fields"), REQUESTS_AS_THEY_WERE, ids=lambda v: type(v).__name__)
def test_a_request_is_written_as_older_builds_wrote_it(request_: AnyRequest, fields: dict[str, Any]) -> None:
    framed = encode(request_)
    assert framed == old_framing(fields)
    assert decode_request(framed[LENGTH.size :]) == request_


@pytest.mark.parametrize(
    ("request_", "answer", "fields"), ANSWERS_AS_THEY_WERE, ids=lambda v: type(v).__name__
)
def test_an_answer_is_written_as_older_builds_wrote_it(
    request_: Request[Any], answer: Answer, fields: dict[str, Any]
) -> None:
    framed = encode(answer)
    assert framed == old_framing(fields)
    assert decode_answer(framed[LENGTH.size :], request_) == answer


def test_every_operation_and_answer_has_its_row() -> None:
    assert {r.op for r, _ in REQUESTS_AS_THEY_WERE} == set(Op)
    assert {type(a) for _, a, _ in ANSWERS_AS_THEY_WERE} == {
        Registered,
        Stored,
        Fetched,
        Acked,
        Usage,
        Refused,
    }


def test_a_sealed_deposit_is_written_as_older_builds_wrote_it() -> None:
    deposit = Deposit(BOX, ID, 1700000000, BODY)
    # What an older client sealed to the relay: the deposit's fields, no "op".
    old: bytes = msgpack.packb({"mailbox": BOX, "id": ID, "expires": 1700000000, "body": BODY})
    assert encode_sealed_deposit(deposit) == old
    assert decode_sealed_deposit(old) == deposit


VECTORS: list[tuple[AnyRequest | Answer, list[str]]] = [
    (
        Register(bytes(range(16)), b"\x22" * 32, 1700000000),
        [
            "0000005d",  # the length: 93
            "84",  # a map of 4
            "a2 6f70 a8 7265676973746572",  # "op": "register"
            "a7 6d61696c626f78 c410 000102030405060708090a0b0c0d0e0f",  # "mailbox": bin 16
            "a6 736563726574 c420" + "22" * 32,  # "secret": bin 32
            "a7 65787069726573 ce 6553f100",  # "expires": uint 32, 1700000000
        ],
    ),
    (
        Ack(b"\x01" * 16, b"\x02" * 32, (b"\x03" * 16,)),
        [
            "00000062",  # the length: 98
            "84",  # a map of 4
            "a2 6f70 a3 61636b",  # "op": "ack"
            "a7 6d61696c626f78 c410" + "01" * 16,  # "mailbox": bin 16
            "a6 736563726574 c420" + "02" * 32,  # "secret": bin 32
            "a3 696473 91 c410" + "03" * 16,  # "ids": an array of one bin 16
        ],
    ),
    (
        Fetched((FetchedEnvelope(b"\x11" * 16, 3600, b"\x33" * 4),)),
        [
            "0000002c",  # the length: 44
            "82",  # a map of 2
            "a2 6f6b c3",  # "ok": true
            "a9 656e76656c6f706573 91",  # "envelopes": an array of 1
            "93 c410" + "11" * 16,  # an array of 3: the id, bin 16
            "cd 0e10",  # its expiry, uint 16, 3600
            "c404 33333333",  # its body, bin 4
        ],
    ),
    (
        Refused(ErrorCode.OVER_QUOTA, "full"),
        [
            "00000022",  # the length: 34
            "83",  # a map of 3
            "a2 6f6b c2",  # "ok": false
            "a4 636f6465 aa 6f7665722d71756f7461",  # "code": "over-quota"
            "a7 6d657373616765 a4 66756c6c",  # "message": "full"
        ],
    ),
]
"""Messages and their bytes, field by field."""


@pytest.mark.parametrize(("message", "expected"), VECTORS, ids=lambda v: type(v).__name__)
def test_byte_exact_vectors(message: AnyRequest | Answer, expected: list[str]) -> None:
    assert encode(message).hex() == "".join(expected).replace(" ", "")


# ------------------------------------------------------------------ decoding requests

VALID: dict[str, dict[str, object]] = {
    "register": {"op": "register", "mailbox": BOX, "secret": SECRET, "expires": 1},
    "deposit": {"op": "deposit", "mailbox": BOX, "id": ID, "expires": 1, "body": BODY},
    "forward": {"op": "forward", "relay": KEY, "sealed": b""},
    "sealed": {"op": "sealed", "sealed": b"x"},
    "fetch": {"op": "fetch", "mailbox": BOX, "secret": SECRET, "limit": 0},
    "ack": {"op": "ack", "mailbox": BOX, "secret": SECRET, "ids": [ID]},
    "stats": {"op": "stats", "mailbox": BOX, "secret": SECRET},
}


def changed(which: str, **fields: object) -> dict[str, object]:
    """The valid ``which`` request with ``fields`` changed (a value of ``...`` drops the field)."""
    out = dict(VALID[which])
    for name, value in fields.items():
        if value is ...:
            del out[name]
        else:
            out[name] = value
    return out


def test_each_valid_request_decodes_to_its_record() -> None:
    expected = {
        "register": Register(BOX, SECRET, 1),
        "deposit": Deposit(BOX, ID, 1, BODY),
        "forward": Forward(KEY, b""),
        "sealed": Sealed(b"x"),
        "fetch": Fetch(BOX, SECRET, 0),
        "ack": Ack(BOX, SECRET, (ID,)),
        "stats": Stats(BOX, SECRET),
    }
    for op, fields in VALID.items():
        assert decode_request(msgpack.packb(fields)) == expected[op]


def test_the_order_of_fields_does_not_matter() -> None:
    fields = {"expires": 1, "secret": SECRET, "mailbox": BOX, "op": "register"}
    assert decode_request(msgpack.packb(fields)) == Register(BOX, SECRET, 1)


MALFORMED_REQUESTS: list[tuple[str, object, ErrorCode]] = [
    # not a map
    ("a list", [1, 2], ErrorCode.MALFORMED),
    ("nil", None, ErrorCode.MALFORMED),
    ("bytes", b"register", ErrorCode.MALFORMED),
    # no operation it knows
    ("no op", {"mailbox": BOX}, ErrorCode.UNKNOWN_OP),
    ("op not text", {"op": 1}, ErrorCode.UNKNOWN_OP),
    ("op as bytes", changed("stats", op=b"stats"), ErrorCode.UNKNOWN_OP),
    ("unknown op", {"op": "steal"}, ErrorCode.UNKNOWN_OP),
    # missing fields
    *(
        (f"{op} without {name}", changed(op, **{name: ...}), ErrorCode.MALFORMED)
        for op, fields in VALID.items()
        for name in fields
        if name != "op"
    ),
    # wrong types
    ("mailbox as text", changed("register", mailbox="x" * 16), ErrorCode.MALFORMED),
    ("expires as bool", changed("register", expires=True), ErrorCode.MALFORMED),
    ("expires as float", changed("deposit", expires=1.0), ErrorCode.MALFORMED),
    ("expires negative", changed("deposit", expires=-1), ErrorCode.MALFORMED),
    ("expires too large", changed("deposit", expires=1 << 62), ErrorCode.MALFORMED),
    ("limit as nil", changed("fetch", limit=None), ErrorCode.MALFORMED),
    ("body as a list", changed("deposit", body=[BODY]), ErrorCode.MALFORMED),
    ("ids not a list", changed("ack", ids=ID), ErrorCode.MALFORMED),
    ("an id not bytes", changed("ack", ids=[ID, 3]), ErrorCode.MALFORMED),
    ("sealed as text", changed("sealed", sealed="x"), ErrorCode.MALFORMED),
    # wrong sizes
    ("short mailbox", changed("register", mailbox=BOX[:15]), ErrorCode.MALFORMED),
    ("long secret", changed("fetch", secret=SECRET + b"\x00"), ErrorCode.MALFORMED),
    ("short id", changed("deposit", id=ID[:8]), ErrorCode.MALFORMED),
    ("short relay key", changed("forward", relay=KEY[:31]), ErrorCode.MALFORMED),
    ("a short id among ids", changed("ack", ids=[ID, b"short"]), ErrorCode.MALFORMED),
    # oversized
    ("too many ids", changed("ack", ids=[ID] * (MAX_IDS + 1)), ErrorCode.MALFORMED),
    ("too many fields", {**VALID["stats"], **{f"f{i}": 0 for i in range(16)}}, ErrorCode.MALFORMED),
    ("a body over the limit", changed("deposit", body=bytes(MAX_MESSAGE_BYTES + 1)), ErrorCode.TOO_LARGE),
    ("text too long", changed("register", mailbox="x" * 5000), ErrorCode.MALFORMED),
]


@pytest.mark.parametrize(
    ("value", "code"), [c[1:] for c in MALFORMED_REQUESTS], ids=[c[0] for c in MALFORMED_REQUESTS]
)
def test_a_malformed_request_is_refused_with_its_code(value: object, code: ErrorCode) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(msgpack.packb(value))
    assert caught.value.code is code
    assert str(caught.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x84\xa2op",  # cut short
        msgpack.packb(VALID["stats"]) + b"\x00",  # something after the map
        b"\x91" * 5000 + b"\xc0",  # nested deeper than the decoder goes
        b"\xdf\xff\xff\xff\xff",  # a map that claims 4 billion entries
        b"\x81\xa2op\xa3\xff\xfe\xfd",  # text that is not UTF-8
        b"\x81\x01\x02",  # a key that is not text
        b"\xc7\x01\x05\x00",  # an extension type
    ],
)
def test_bytes_that_are_not_a_message_are_refused_as_malformed(raw: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_request(raw)
    assert caught.value.code is ErrorCode.MALFORMED


def test_a_sealed_deposit_is_read_strictly() -> None:
    inner = {k: v for k, v in VALID["deposit"].items() if k != "op"}
    assert decode_sealed_deposit(msgpack.packb(inner)) == Deposit(BOX, ID, 1, BODY)
    # Its fields are a deposit's whatever else it holds (an "op" included).
    assert decode_sealed_deposit(msgpack.packb({**inner, "op": "fetch"})) == Deposit(BOX, ID, 1, BODY)
    for bad in ({**inner, "id": b"short"}, {"mailbox": BOX}, [inner]):
        with pytest.raises(ProtocolError) as caught:
            decode_sealed_deposit(msgpack.packb(bad))
        assert caught.value.code is ErrorCode.MALFORMED


# ------------------------------------------------------------------ decoding answers


def test_fetched_items_that_are_not_envelopes_are_left_out_and_counted() -> None:
    items = [[ID, 1, BODY], [ID], "x", [ID[:3], 1, BODY], [ID, 1.5, BODY], [ID, True, BODY], [BOX, 2, b"y"]]
    answer = decode_answer(msgpack.packb({"ok": True, "envelopes": items}), Fetch(BOX, SECRET, 10))
    assert answer == Fetched((FetchedEnvelope(ID, 1, BODY), FetchedEnvelope(BOX, 2, b"y")), skipped=5)


MALFORMED_ANSWERS: list[tuple[str, Request[Any], object, ErrorCode]] = [
    ("not a map", Fetch(BOX, SECRET, 1), [True], ErrorCode.MALFORMED),
    ("no ok", Sealed(b""), {"stored": True}, ErrorCode.MALFORMED),
    ("ok as an int", Sealed(b""), {"ok": 1, "stored": True}, ErrorCode.MALFORMED),
    ("stored as an int", Sealed(b""), {"ok": True, "stored": 1}, ErrorCode.MALFORMED),
    (
        "missing quota",
        Register(BOX, SECRET, 1),
        {"ok": True, "expires": 1, "max_count": 1},
        ErrorCode.MALFORMED,
    ),
    ("removed negative", Ack(BOX, SECRET, ()), {"ok": True, "removed": -1}, ErrorCode.MALFORMED),
    ("envelopes not a list", Fetch(BOX, SECRET, 1), {"ok": True, "envelopes": 3}, ErrorCode.MALFORMED),
    (
        "usage as a fetch answer",
        Stats(BOX, SECRET),
        {"ok": True, "envelopes": [], "bytes": 0},
        ErrorCode.MALFORMED,
    ),
    (
        "a fetch answer as usage",
        Fetch(BOX, SECRET, 1),
        {"ok": True, "envelopes": 0, "bytes": 0},
        ErrorCode.MALFORMED,
    ),
    ("refused without a code", Sealed(b""), {"ok": False, "message": "no"}, ErrorCode.MALFORMED),
    ("a code as an int", Sealed(b""), {"ok": False, "code": 3, "message": "no"}, ErrorCode.MALFORMED),
    (
        "over the limit",
        Fetch(BOX, SECRET, 1),
        {"ok": True, "envelopes": [[ID, 1, bytes(1 << 20)]] * 17},
        ErrorCode.TOO_LARGE,
    ),
]


@pytest.mark.parametrize(
    ("request_", "value", "code"), [c[1:] for c in MALFORMED_ANSWERS], ids=[c[0] for c in MALFORMED_ANSWERS]
)
def test_a_malformed_answer_is_refused_with_its_code(
    request_: Request[Any], value: object, code: ErrorCode
) -> None:
    body: bytes = msgpack.packb(value)
    assert code is not ErrorCode.TOO_LARGE or len(body) > MAX_ANSWER_MESSAGE_BYTES
    with pytest.raises(ProtocolError) as caught:
        decode_answer(body, request_)
    assert caught.value.code is code


def test_fields_a_message_does_not_have_are_ignored() -> None:
    # A later build may add a field: requests and answers still read as before.
    assert decode_request(msgpack.packb(changed("register", extra=1))) == decode_request(
        msgpack.packb(VALID["register"])
    )
    assert decode_request(msgpack.packb(changed("sealed", mailbox=BOX))) == decode_request(
        msgpack.packb(VALID["sealed"])
    )
    acked = decode_answer(msgpack.packb({"ok": True, "removed": 0, "more": 1}), Ack(BOX, SECRET, ()))
    assert acked == Acked(0)
    refused = {"ok": False, "code": "x", "message": "", "stored": True}
    assert decode_answer(msgpack.packb(refused), Sealed(b"")) == Refused("x", "")


def test_a_known_error_code_is_read_as_its_enum() -> None:
    answer = decode_answer(msgpack.packb({"ok": False, "code": "forbidden", "message": "no"}), Sealed(b""))
    assert answer == Refused(ErrorCode.FORBIDDEN, "no")
    assert isinstance(answer, Refused) and answer.code is ErrorCode.FORBIDDEN


# ------------------------------------------------------------------ any input at all

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 64) - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.binary(max_size=40)
    | st.sampled_from([BOX, SECRET, KEY, *(op.value for op in Op)]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
"""Any msgpack value, leaning towards the sizes and names the protocol uses."""


@st.composite
def near_requests(draw: st.DrawFn) -> dict[str, object]:
    """A valid request with a field dropped, changed or added: the decoder's deep paths."""
    fields: dict[str, object] = dict(draw(st.sampled_from(list(VALID.values()))))
    name = draw(st.sampled_from([*fields, "extra"]))
    if draw(st.booleans()):
        fields.pop(name, None)
    else:
        fields[name] = draw(msgpack_values)
    return fields


@st.composite
def near_answers(draw: st.DrawFn) -> tuple[object, Request[Any]]:
    """A valid answer's map with a field dropped, changed or added, and the request it answers."""
    request_, _, valid = draw(st.sampled_from(ANSWERS_AS_THEY_WERE))
    fields: dict[str, object] = dict(valid)
    name = draw(st.sampled_from([*fields, "extra"]))
    if draw(st.booleans()):
        fields.pop(name, None)
    else:
        fields[name] = draw(msgpack_values)
    return fields, request_


ANSWER_TYPES: dict[Op, type[Registered | Stored | Fetched | Acked | Usage]] = {
    Op.REGISTER: Registered,
    Op.DEPOSIT: Stored,
    Op.FORWARD: Stored,
    Op.SEALED: Stored,
    Op.FETCH: Fetched,
    Op.ACK: Acked,
    Op.STATS: Usage,
}
"""What a success answers each request with."""
ALL_REQUESTS: list[Request[Any]] = [r for r, _ in REQUESTS_AS_THEY_WERE]


def decoded_or_refused(decode: Any, body: bytes) -> object:
    """What ``decode`` makes of ``body``; None if it raised ProtocolError (and only that)."""
    try:
        return decode(body)
    except ProtocolError as exc:
        assert isinstance(exc.code, ErrorCode)
        return None


@given(st.one_of(msgpack_values, near_requests()))
def test_any_msgpack_value_decodes_as_a_request_or_raises_only_protocol_error(value: object) -> None:
    decoded = decoded_or_refused(decode_request, msgpack.packb(value))
    if decoded is not None:
        assert isinstance(decoded, Register | Deposit | Forward | Sealed | Fetch | Ack | Stats)
        assert decode_request(encode(decoded)[LENGTH.size :]) == decoded


@given(st.one_of(st.tuples(msgpack_values, st.sampled_from(ALL_REQUESTS)), near_answers()))
def test_any_msgpack_value_decodes_as_an_answer_or_raises_only_protocol_error(
    case: tuple[object, Request[Any]],
) -> None:
    value, request_ = case
    decoded = decoded_or_refused(lambda body: decode_answer(body, request_), msgpack.packb(value))
    if decoded is None:
        return
    assert isinstance(decoded, ANSWER_TYPES[request_.op] | Refused)
    again = decode_answer(encode(decoded)[LENGTH.size :], request_)
    # What was left out of a fetch answer is not written again.
    assert again == (Fetched(decoded.envelopes) if isinstance(decoded, Fetched) else decoded)


@given(st.binary(max_size=200), st.sampled_from(ALL_REQUESTS))
def test_any_bytes_decode_or_raise_only_protocol_error(raw: bytes, request_: Request[Any]) -> None:
    decoded_or_refused(decode_request, raw)
    decoded_or_refused(decode_sealed_deposit, raw)
    decoded_or_refused(lambda body: decode_answer(body, request_), raw)


uint = st.integers(min_value=0, max_value=(1 << 62) - 1)
box, secret, key, envelope_id = (st.binary(min_size=n, max_size=n) for n in (16, 32, 32, 16))
requests = st.one_of(
    st.builds(Register, box, secret, uint),
    st.builds(Deposit, box, envelope_id, uint, st.binary(max_size=64)),
    st.builds(Forward, key, st.binary(max_size=64)),
    st.builds(Sealed, st.binary(max_size=64)),
    st.builds(Fetch, box, secret, uint),
    st.builds(Ack, box, secret, st.lists(envelope_id, max_size=5).map(tuple)),
    st.builds(Stats, box, secret),
)


@given(requests)
def test_any_request_round_trips(request_: AnyRequest) -> None:
    assert decode_request(encode(request_)[LENGTH.size :]) == request_
