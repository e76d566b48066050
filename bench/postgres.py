"""A real PostgreSQL server for the tests, from Debian's packages, on loopback.

Started once per test process in a temporary directory (initdb, a free port
on 127.0.0.1, a Unix socket beside the data, trust authentication) and
stopped at exit.  Where the binaries are missing it installs Debian's
``postgresql`` package (root and apt needed).  As root the server runs as
the ``postgres`` system user the package creates.  Where any of this fails,
the PostgreSQL tests are skipped with the reason.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "postgres"
START_TIMEOUT_S = 60
INSTALL_TIMEOUT_S = 900


@dataclass
class Server:
    bindir: Path
    root: Path
    port: int
    user: str | None  # whom the server runs as when we are root
    install_s: float
    start_s: float

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


_server: Server | None = None
_failure: str | None = None
_names = itertools.count(1)


def postgres_url(database: str) -> str:
    """A URL for a fresh, empty database named after ``database``."""
    server = _ensure_server()
    name = f"t_{re.sub(r'[^a-z0-9_]', '_', database.lower())[:40]}_{os.getpid()}_{next(_names)}"
    try:
        _run(
            server,
            [
                str(server.bindir / "psql"),
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                server.url("postgres"),
                "-c",
                f'CREATE DATABASE "{name}"',
            ],
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"PostgreSQL: CREATE DATABASE {name} failed: {_why(exc)}")
    return server.url(name)


def postgres_dump(url: str) -> bytes:
    """pg_dump of the database ``url`` names: schema and data, plain SQL (bytea as hex)."""
    server = _ensure_server()
    result = _run(server, [str(server.bindir / "pg_dump"), "--no-owner", "--dbname", url], timeout=120)
    return result.stdout


# ---------------------------------------------------------------- the server


def _ensure_server() -> Server:
    global _server, _failure  # noqa: PLW0603 - one server per test process
    if _server is not None:
        return _server
    if _failure is not None:
        pytest.skip(_failure)
    try:
        _server = _start()
    except _Unavailable as exc:
        _failure = f"PostgreSQL server unavailable: {exc}"
        pytest.skip(_failure)
    return _server


class _Unavailable(Exception):
    pass


def _find_bindir() -> Path | None:
    candidates = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for bindir in candidates:
        if all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres", "psql", "pg_dump")):
            return bindir
    return None


def _install() -> None:
    """Debian's packages, non-interactively, without the package's own cluster."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise _Unavailable(
            "no PostgreSQL binaries (/usr/lib/postgresql/*/bin) and cannot apt-get install them"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "UCF_FORCE_CONFFOLD": "1"}
    # Keep the package from creating and starting a 'main' cluster on port 5432
    # (postgresql-common keeps an existing createcluster.conf).
    conf = Path("/etc/postgresql-common/createcluster.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text("create_main_cluster = false\n")
    install = [
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "-o",
        "Dpkg::Options::=--force-confold",
        "postgresql",
    ]
    lists = Path("/var/lib/apt/lists")
    if not any(lists.glob("*_Packages*")):
        _apt(["apt-get", "update", "-q"], env)
    try:
        _apt(install, env)
    except _Unavailable:
        _apt(["apt-get", "update", "-q"], env)  # the lists may be stale
        _apt(install, env)


def _apt(command: list[str], env: dict[str, str]) -> None:
    try:
        subprocess.run(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _Unavailable(f"{' '.join(command)} failed: {_why(exc)}") from exc


def _server_user() -> str | None:
    """None when we are not root; else the unprivileged user to run the server as."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        try:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SUPERUSER],
                capture_output=True,
                check=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise _Unavailable(f"no '{SUPERUSER}' user to run the server as: {_why(exc)}") from exc
    return SUPERUSER


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start() -> Server:
    began = time.monotonic()
    bindir = _find_bindir()
    if bindir is None:
        _install()
        bindir = _find_bindir()
        if bindir is None:
            raise _Unavailable("apt-get installed postgresql, yet no /usr/lib/postgresql/*/bin/initdb")
    install_s = time.monotonic() - began
    began = time.monotonic()
    user = _server_user()
    # As root, somewhere the server's user can reach whatever TMPDIR says; short, for the socket path.
    root = Path(tempfile.mkdtemp(prefix="pinewood-pg-", dir="/tmp" if user is not None else None))
    server = Server(bindir, root, 0, user, install_s, 0.0)
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    try:
        _run(
            server,
            [
                str(bindir / "initdb"),
                "-D",
                str(root / "data"),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise _Unavailable(f"initdb failed: {_why(exc)}") from exc
    atexit.register(_stop, server)
    failure = ""
    for _attempt in range(3):  # a free port can be taken before the server binds it
        server.port = _free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories={root}"
        try:
            _run(
                server,
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(root / "data"),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                ],
                timeout=START_TIMEOUT_S + 10,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            failure = _why(exc)
            continue
        server.start_s = time.monotonic() - began
        return server
    log = (root / "server.log").read_text(errors="replace")[-2000:] if (root / "server.log").exists() else ""
    raise _Unavailable(f"pg_ctl start failed: {failure}\n{log}")


def _stop(server: Server) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        _run(
            server,
            [str(server.bindir / "pg_ctl"), "-D", str(server.root / "data"), "-m", "fast", "-w", "stop"],
            timeout=60,
        )
    shutil.rmtree(server.root, ignore_errors=True)


def _run(server: Server, command: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    """Run a PostgreSQL tool, as the server's user when we are root."""
    return subprocess.run(
        command,
        cwd=server.root,
        env={**os.environ, "HOME": str(server.root)},
        user=server.user,
        group=None if server.user is None else pwd.getpwnam(server.user).pw_gid,
        extra_groups=None if server.user is None else [],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=timeout,
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        output = (exc.stderr or b"").decode(errors="replace").strip()
        return f"exit {exc.returncode}: {output[-1500:]}"
    return f"{type(exc).__name__}: {exc}"
