"""The life of one homeserver process in a test, whichever homeserver it is.

A subclass says how to configure and start its server (:meth:`write_config`,
:meth:`command`, :meth:`environment`) and where it writes (:attr:`log_path`,
:attr:`stdio_path`); this class starts it, waits until its client API answers,
stops it, registers users through the shared-secret admin API, and gathers
the logs when something fails.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from tests.e2e.client import MatrixClient, register_user

PROXY_VARIABLES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})
CA_VARIABLES = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR"})


def environment_without_proxy_or_ca() -> dict[str, str]:
    """This process's environment minus proxy and CA settings, for a homeserver
    whose proxy and CA a test sets itself."""
    return {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES and k not in CA_VARIABLES}


class HomeserverFailed(RuntimeError):
    """A homeserver process did not start, or died; the message carries its logs' tails."""


class HomeserverProcess:
    """One homeserver process, as a context manager."""

    failure: ClassVar[type[RuntimeError]] = HomeserverFailed

    def __init__(self, server_name: str, data_dir: Path) -> None:
        self.server_name = server_name
        self.data_dir = data_dir.resolve()
        self.registration_shared_secret = secrets.token_hex(16)
        self._process: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ for subclasses

    @property
    def client_url(self) -> str:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    @property
    def stdio_path(self) -> Path:
        """The process's stdout and stderr (start-up failures land here)."""
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        raise NotImplementedError

    # ------------------------------------------------------------ the process

    def start(self, timeout: float = 120.0) -> None:
        """Write the configuration, start the server and wait until its client API answers."""
        self.write_config()
        with self.stdio_path.open("ab") as stdio:
            self._process = subprocess.Popen(
                self.command(),
                cwd=self.data_dir,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=stdio,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                raise self.failure(
                    f"{self.server_name} exited with {self._process.returncode} during start-up\n"
                    + self.diagnostics()
                )
            try:
                with urllib.request.urlopen(f"{self.client_url}/_matrix/client/versions", timeout=2):
                    return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise self.failure(
                    f"{self.server_name} did not answer within {timeout:.0f}s\n" + self.diagnostics()
                )
            time.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the server's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def diagnostics(self, lines: int = 60) -> str:
        """Tails of the process output and of the log, labelled with their paths."""
        try:
            stdio = "\n".join(self.stdio_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            stdio = ""
        return f"--- {self.stdio_path}\n{stdio}\n--- {self.log_path}\n{self.log_tail(lines)}"

    def register_user(
        self, username: str, password: str | None = None, *, admin: bool = False
    ) -> MatrixClient:
        """Create a user through the shared-secret admin API; returns a logged-in client."""
        return register_user(
            self.client_url,
            self.registration_shared_secret,
            username,
            password or secrets.token_hex(8),
            admin=admin,
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
