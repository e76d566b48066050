"""The command line's side of the admin API: requests, errors an operator can act
on, and node keys given by prefix.

Errors never show the API's paths: a refusal is the node's own message, and a
node that cannot be reached gets a hint (is it running, is ``--admin`` right).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from router.daemon.errors import DaemonError
from router.daemon.settings import DEFAULT_ADMIN, env_name
from router.matrix.names import key_for_name


class CLIError(DaemonError):
    """A client command failed; the message is for the operator.  ``code`` is the
    command's exit status (see :class:`ExitCode`)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class ExitCode:
    """What ``pinewood`` exits with."""

    OK = 0
    FAILED = 1  # the node refused, or what was asked did not happen (no answer, peer unreachable)
    USAGE = 2  # bad arguments or configuration
    UNREACHABLE = 3  # the node's admin API could not be reached
    CLOSED_PIPE = 141  # the reader of our output went away (as 128 + SIGPIPE)


HEX_KEY_CHARS = 64


@dataclass(frozen=True, slots=True)
class AdminClient:
    """Requests to one node's admin API, as JSON."""

    address: str

    @classmethod
    def from_flag(cls, flag: str | None) -> AdminClient:
        return cls(flag or os.environ.get(env_name("admin")) or DEFAULT_ADMIN)

    def call(self, method: str, path: str, body: object = None, timeout: float = 10.0) -> Any:
        """The node's JSON answer; :class:`CLIError` with the node's reason if it refused."""
        # Imported here: ``pinewood run`` loads this module, and with these the
        # mail parser, tempfile and more (about 3 MiB resident) it never uses.
        import http.client  # noqa: PLC0415
        import urllib.error  # noqa: PLC0415
        import urllib.request  # noqa: PLC0415

        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://{self.address}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except (ValueError, AttributeError):
                message = exc.reason
            message = str(message)
            if exc.code == 404 and message.startswith("no route for"):
                message = "this node does not know that command (is it an older version?)"
            raise CLIError(str(message)) from None
        except http.client.HTTPException:
            raise CLIError(f"the service at {self.address} is not a Pinewood admin API") from None
        except TimeoutError:
            raise CLIError(f"the node at {self.address} did not answer within {timeout:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            text = getattr(reason, "strerror", None) or str(reason)
            raise CLIError(
                f"cannot reach the node's admin API at {self.address} ({text.lower()}): is the node "
                f"running? If its admin API listens elsewhere, give --admin HOST:PORT or set "
                f"${env_name('admin')}",
                ExitCode.UNREACHABLE,
            ) from None
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            raise CLIError(f"the service at {self.address} is not a Pinewood admin API") from None

    def known_keys(self) -> set[str]:
        """Every node key this node knows of: peers, snake neighbours and routes,
        sessions and cached coordinates (hex)."""
        keys: set[str] = set()
        keys.update(p["key"] for p in self.call("GET", "/peers") if p.get("key"))
        snake = self.call("GET", "/snake")
        if snake.get("descending"):
            keys.add(snake["descending"])
        keys.update(r["key"] for r in snake["routes"])
        keys.update(s["key"] for s in self.call("GET", "/sessions")["sessions"])
        keys.update(c["key"] for c in self.call("GET", "/coords"))
        return keys

    def resolve_key(self, text: str) -> str:
        """A node key given whole (hex or a server name), or by a hex prefix that
        only one key the node knows of starts with."""
        given = text.strip().lower()
        if len(given) == HEX_KEY_CHARS and _is_hex(given):
            return given
        by_name = key_for_name(given)
        if by_name is not None:
            return by_name.hex()
        if not given or not _is_hex(given) or len(given) > HEX_KEY_CHARS:
            raise CLIError(
                f"{text!r} is not a node key: give its 64 hex characters, its server name, or a hex "
                "prefix of a key this node knows of",
                ExitCode.USAGE,
            )
        matches = sorted(k for k in self.known_keys() if k.startswith(given))
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise CLIError(
                f"no node this node knows of (peers, snake, sessions) has a key starting with {given}; "
                "give the whole key"
            )
        listed = ", ".join(m[: len(given) + 4] + "..." for m in matches[:5])
        raise CLIError(f"{given} is the start of {len(matches)} keys ({listed}); give more of it")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
