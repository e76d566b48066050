"""``pinewood run``: the node, its admin API and the event loop, until a signal stops them.

Apart from :mod:`router.daemon.cli` so that the client commands do not load
the node's modules (the sessions, gateway, relay and QUIC engines among them).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from router import __version__
from router.daemon.admin import start_admin
from router.daemon.build import is_compiled
from router.daemon.config import NodeConfig, load_config_sources
from router.daemon.errors import StartupError
from router.daemon.keyfile import KeyFileError, load_or_create_identity
from router.daemon.node import Node, startup_step
from router.daemon.settings import flag_values
from router.links.multicast import DiscoveryError
from router.logs import LogFormat, configure_logging, get_logger
from router.quic.errors import QuicEngineError
from router.wire.keys import Identity

log = get_logger("pinewood")


def _log_unhandled(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's last resort: an error no task handled, as one structured event."""
    exc = context.get("exception")
    log.error(
        "unhandled error",
        message=context.get("message"),
        error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
        exc_info=exc if isinstance(exc, BaseException) else None,
    )


async def _serve(config: NodeConfig, identity: Identity, sources: dict[str, str]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(_log_unhandled)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with startup_step("data_dir", f"cannot set the node up in {config.data_path}"):
        node = Node(config, identity, sources)
    try:
        await node.start()
        host, port = config.admin_address
        with startup_step("admin", f"cannot listen for the admin API on {host}:{port}"):
            admin = await start_admin(node, host, port)
    except BaseException:
        with contextlib.suppress(Exception):  # the first failure is the one to report
            await node.stop()
        raise
    log.info("started")
    await stop.wait()
    log.info("stopping")
    admin.close()
    await node.stop()
    log.info("stopped")


def run(args: argparse.Namespace) -> int:
    """Run the node configured by ``args`` until SIGINT or SIGTERM; the exit status."""
    config, sources = load_config_sources(Path(args.config) if args.config else None, flags=flag_values(args))
    configure_logging(LogFormat(config.log_format), config.log_level)
    try:
        identity, source = load_or_create_identity(config.key_path)
        log.info(
            "pinewood starting",
            version=__version__,
            build="compiled" if is_compiled() else "pure",
            key=identity.public_key.hex(),
            key_source=source,
        )
        if config.uvloop:
            import uvloop  # noqa: PLC0415  (1.4 MiB resident, loaded only to be used)

            uvloop.run(_serve(config, identity, sources))
        else:
            asyncio.run(_serve(config, identity, sources))
    except (KeyFileError, StartupError, DiscoveryError, QuicEngineError) as exc:
        log.error("cannot start", reason=str(exc))
        return 1
    except OSError as exc:  # one that no start-up step named
        log.error("cannot start", reason=f"{exc.strerror or exc}")
        return 1
    return 0
