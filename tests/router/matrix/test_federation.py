"""Which inbound requests reach the homeserver: paths, and the signed origin."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.matrix.federation import (
    DEFAULT_PATHS,
    Refusal,
    check_origin,
    check_path,
    xmatrix_origins,
)
from router.matrix.names import server_name

PEER = bytes(range(32))
OTHER = bytes(range(1, 33))


@pytest.mark.parametrize(
    "target",
    [
        b"/_matrix/federation/v1/version",
        b"/_matrix/federation/v1/send/1700000000000",
        b"/_matrix/federation/v2/send_join/%21room%3Aexample/%24event?omit_members=true",
        b"/_matrix/federation/v1/media/download/abcdef",
        b"/_matrix/federation/v1/media/thumbnail/abcdef?width=32&height=32",
        b"/_matrix/key/v2/server",
        b"/_matrix/key/v2/query",
        b"/_matrix/media/v3/download/example.org/abcdef",
        b"/_matrix/media/r0/download/example.org/abcdef/cat.png",
        b"/_matrix/media/v3/thumbnail/example.org/abcdef?width=32",
        b"/_matrix/media/r0/thumbnail/example.org/abcdef",
    ],
)
def test_the_server_server_api_passes(target: bytes) -> None:
    assert check_path(target, DEFAULT_PATHS) is None


@pytest.mark.parametrize(
    "target",
    [
        b"/_matrix/client/versions",
        b"/_matrix/client/v3/register",
        b"/_synapse/admin/v1/register",
        b"/_dendrite/admin/evacuateRoom/x",
        b"/_matrix/media/v3/upload",
        b"/_matrix/media/v3/config",
        b"/",
        b"/made/up/path",
        b"*",
        b"http://example.org/_matrix/federation/v1/version",
        b"example.org:443",
        b"/_matrix/federatio",
        b"/_matrix//federation/v1/version",
        b"/_matrix/%66ederation/v1/version",  # an escaped prefix: matches decoded, not as sent
    ],
)
def test_anything_else_is_not_federation(target: bytes) -> None:
    assert check_path(target, DEFAULT_PATHS) is Refusal.NOT_FEDERATION


@pytest.mark.parametrize(
    "target",
    [
        b"/_matrix/federation/../client/versions",
        b"/_matrix/federation/v1/..",
        b"/_matrix/federation/%2e%2e/%2e%2e/_synapse/admin/v1/register",
        b"/_matrix/federation/%2E%2E/client/versions",
        b"/_matrix/federation/v1/%2f..%2fclient",
        b"/_matrix/federation/./v1/version",
        b"/_matrix/federation/..%5c..%5cclient",
        b"/_matrix/federation/v1/version%00",
        b"/_matrix/federation/v1/version%23x",
    ],
)
def test_paths_that_could_leave_their_prefix_are_refused(target: bytes) -> None:
    assert check_path(target, DEFAULT_PATHS) is Refusal.UNSAFE_PATH


def test_an_operator_may_add_a_prefix() -> None:
    allowed = (*DEFAULT_PATHS, "/_matrix/client/versions/")
    assert check_path(b"/_matrix/client/versions/", allowed) is None
    assert check_path(b"/_matrix/client/v3/login", allowed) is Refusal.NOT_FEDERATION


def auth(origin: str, quoted: bool = True) -> tuple[bytes, bytes]:
    value = f'"{origin}"' if quoted else origin
    return (
        b"authorization",
        f'X-Matrix origin={value},destination="dest",key="ed25519:a_b",sig="c2lnbmF0dXJl"'.encode(),
    )


SEND = b"/_matrix/federation/v1/send/1"


@pytest.mark.parametrize(
    "origin",
    [
        server_name(PEER),
        PEER.hex(),
        server_name(PEER, ".p2p"),
        PEER.hex() + ".p2p",
        server_name(PEER) + ":8448",
        server_name(PEER).upper(),
    ],
)
def test_the_peer_in_any_of_its_names_is_its_own_origin(origin: str) -> None:
    assert check_origin(SEND, [auth(origin)], PEER, ".p2p") is None
    assert check_origin(SEND, [auth(origin, quoted=False)], PEER, ".p2p") is None


@pytest.mark.parametrize(
    "origin",
    [server_name(OTHER), OTHER.hex(), "matrix.org", server_name(PEER, ".other"), ""],
)
def test_an_origin_that_is_not_the_peer_is_refused(origin: str) -> None:
    found = check_origin(SEND, [auth(origin)], PEER, ".p2p")
    assert found is not None and found[0] is Refusal.FORGED_ORIGIN and found[1] == origin


def test_every_signature_must_name_the_peer() -> None:
    headers = [auth(server_name(PEER)), auth(server_name(OTHER))]
    found = check_origin(SEND, headers, PEER, "")
    assert found is not None and found[0] is Refusal.FORGED_ORIGIN


def test_federation_requests_must_be_signed_except_where_the_spec_says() -> None:
    for target in (SEND, b"/_matrix/federation/v1/media/download/x", b"/_matrix/federation/v1/version/"):
        assert check_origin(target, [], PEER, "") == (Refusal.UNSIGNED, "")
    bearer = [(b"authorization", b"Bearer abc")]
    assert check_origin(SEND, bearer, PEER, "") == (Refusal.UNSIGNED, "")
    for target in (
        b"/_matrix/federation/v1/version",
        b"/_matrix/federation/v1/openid/userinfo?access_token=x",
        b"/_matrix/key/v2/server",
        b"/_matrix/key/v2/query",
        b"/_matrix/media/v3/download/example.org/abc",
    ):
        assert check_origin(target, [], PEER, "") is None, target
    # Unsigned is allowed there, forged is not.
    found = check_origin(b"/_matrix/key/v2/query", [auth("matrix.org")], PEER, "")
    assert found is not None and found[0] is Refusal.FORGED_ORIGIN


@pytest.mark.parametrize(
    "value",
    [b"X-Matrix destination=x,key=y,sig=z", b'X-Matrix origin="a",origin="b"', b"X-Matrix", b"X-Matrix ,,,="],
)
def test_an_x_matrix_header_without_one_origin_is_malformed(value: bytes) -> None:
    assert check_origin(SEND, [(b"authorization", value)], PEER, "") == (Refusal.MALFORMED_AUTH, "")


def test_quoted_values_may_hold_commas_and_escapes() -> None:
    value = b'x-matrix key="ed25519:1", origin = "a\\"b,c" , sig=xyz'
    assert xmatrix_origins([(b"authorization", value)]) == ['a"b,c']


@given(st.binary(max_size=200))
def test_any_header_value_is_parsed_without_error(value: bytes) -> None:
    origins = xmatrix_origins([(b"authorization", b"X-Matrix " + value)])
    assert len(origins) == 1


def test_each_refusal_answers_a_matrix_error_with_its_reason() -> None:
    for refusal in Refusal:
        body = json.loads(refusal.answer("detail"))
        assert body["errcode"].startswith("M_") and refusal.value in body["error"]
        assert str(refusal.status.value) in refusal.counter
    assert Refusal.NOT_FEDERATION.status == 404 and Refusal.FORGED_ORIGIN.status == 401
    assert Refusal.OVER_RATE.status == 429 and Refusal.NOT_HTTP.status == 400
