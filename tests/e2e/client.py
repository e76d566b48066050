"""A Matrix client for tests, on the standard library alone: shared-secret
registration, login, and the client-server API calls the end-to-end tests make
(rooms, invites, joins, messages), with polling for what arrives over federation.
Synapse and Dendrite both serve all of it."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any


class MatrixError(RuntimeError):
    """A client-server API call answered with an error status."""

    def __init__(self, method: str, path: str, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{method} {path}: {status} {json.dumps(body)}")
        self.status = status
        self.errcode = str(body.get("errcode", ""))
        self.body = body


def _request(
    base_url: str,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    token: str | None = None,
    query: Sequence[tuple[str, str]] = (),
    timeout: float = 60.0,
) -> dict[str, Any]:
    url = base_url + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    for _attempt in range(20):
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                result: dict[str, Any] = json.loads(resp.read() or b"{}")
                return result
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                answer: dict[str, Any] = json.loads(raw)
            except ValueError:
                answer = {"error": raw.decode(errors="replace")}
            if err.code == 429:
                time.sleep(min(float(answer.get("retry_after_ms", 500)) / 1000.0, 5.0))
                continue
            raise MatrixError(method, path, err.code, answer) from None
    raise MatrixError(method, path, 429, {"error": "still rate-limited after 20 attempts"})


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


def register_user(
    client_url: str, shared_secret: str, username: str, password: str, *, admin: bool = False
) -> MatrixClient:
    """Register ``username`` with ``/_synapse/admin/v1/register`` (HMAC-SHA1 of the nonce)."""
    nonce = str(_request(client_url, "GET", "/_synapse/admin/v1/register")["nonce"])
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode()]))
    mac.update(b"\x00" + (b"admin" if admin else b"notadmin"))
    answer = _request(
        client_url,
        "POST",
        "/_synapse/admin/v1/register",
        {"nonce": nonce, "username": username, "password": password, "admin": admin, "mac": mac.hexdigest()},
    )
    return MatrixClient(client_url, str(answer["user_id"]), str(answer["access_token"]))


def login(client_url: str, username: str, password: str) -> MatrixClient:
    """Password login; ``username`` is the localpart or the full user ID."""
    answer = _request(
        client_url,
        "POST",
        "/_matrix/client/v3/login",
        {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": username},
            "password": password,
        },
    )
    return MatrixClient(client_url, str(answer["user_id"]), str(answer["access_token"]))


class MatrixClient:
    """A logged-in user on one homeserver's client API."""

    def __init__(self, base_url: str, user_id: str, access_token: str) -> None:
        self.base_url = base_url
        self.user_id = user_id
        self.access_token = access_token
        self._txn = 0

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        timeout: float = 60.0,
    ) -> dict[str, Any]:
        return _request(
            self.base_url, method, path, body, token=self.access_token, query=query, timeout=timeout
        )

    def create_room(
        self,
        *,
        invite: Sequence[str] = (),
        preset: str = "private_chat",
        alias_localpart: str | None = None,
        name: str | None = None,
    ) -> str:
        """Create a room; returns its ID."""
        body: dict[str, Any] = {"preset": preset, "invite": list(invite)}
        if alias_localpart is not None:
            body["room_alias_name"] = alias_localpart
        if name is not None:
            body["name"] = name
        return str(self.request("POST", "/_matrix/client/v3/createRoom", body)["room_id"])

    def invite(self, room_id: str, user_id: str) -> None:
        """Invite ``user_id`` (on this or any other server: the call waits for its server to sign)."""
        self.request("POST", f"/_matrix/client/v3/rooms/{_quote(room_id)}/invite", {"user_id": user_id})

    def join(self, room_id_or_alias: str, via: Sequence[str] = ()) -> str:
        """Join by ID or alias, through the servers ``via``; returns the room ID."""
        query = [("server_name", s) for s in via] + [("via", s) for s in via]
        answer = self.request(
            "POST", f"/_matrix/client/v3/join/{_quote(room_id_or_alias)}", {}, query=query, timeout=120.0
        )
        return str(answer["room_id"])

    def send_text(self, room_id: str, body: str) -> str:
        """Send an ``m.text`` message; returns its event ID."""
        self._txn += 1
        txn = f"pw{time.monotonic_ns()}-{self._txn}"
        answer = self.request(
            "PUT",
            f"/_matrix/client/v3/rooms/{_quote(room_id)}/send/m.room.message/{txn}",
            {"msgtype": "m.text", "body": body},
        )
        return str(answer["event_id"])

    def messages(self, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The room's latest events, newest first (``/messages`` backwards)."""
        answer = self.request(
            "GET",
            f"/_matrix/client/v3/rooms/{_quote(room_id)}/messages",
            query=[("dir", "b"), ("limit", str(limit))],
        )
        chunk: list[dict[str, Any]] = answer.get("chunk", [])
        return chunk

    def joined_rooms(self) -> list[str]:
        return [str(r) for r in self.request("GET", "/_matrix/client/v3/joined_rooms")["joined_rooms"]]

    def invited_rooms(self) -> list[str]:
        """Rooms with a pending invite for this user (one non-incremental sync)."""
        answer = self.request("GET", "/_matrix/client/v3/sync", query=[("timeout", "0")])
        return list(answer.get("rooms", {}).get("invite", {}))

    def wait_for_invite(self, room_id: str, timeout: float = 60.0) -> None:
        """Poll until an invite to ``room_id`` has reached this user."""
        _poll(lambda: room_id in self.invited_rooms(), timeout, f"{self.user_id}: no invite to {room_id}")

    def wait_for_message(
        self, room_id: str, body: str, timeout: float = 60.0, *, sender: str | None = None
    ) -> dict[str, Any]:
        """Poll ``/messages`` until an ``m.room.message`` with ``body`` shows up; returns the event."""
        found: list[dict[str, Any]] = []

        def seen() -> bool:
            for event in self.messages(room_id):
                if (
                    event.get("type") == "m.room.message"
                    and event.get("content", {}).get("body") == body
                    and (sender is None or event.get("sender") == sender)
                ):
                    found.append(event)
                    return True
            return False

        _poll(seen, timeout, f"{self.user_id}: no message {body!r} in {room_id}")
        return found[0]


def _poll(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
            last = None
        except (MatrixError, OSError) as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} within {timeout:.0f}s" + (f" (last error: {last})" if last else ""))
