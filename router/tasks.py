"""Ending asyncio tasks for certain, for every layer that runs them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait for them to end, cancelling again while they do not:
    on Python 3.11 ``asyncio.wait_for`` can swallow a cancellation that arrives
    as the awaited thing completes, and a loop in such a task would run on."""
    pending = {t for t in tasks if not t.done()}
    deadline = asyncio.get_running_loop().time() + timeout
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            return
        _, pending = await asyncio.wait(pending, timeout=min(0.5, remaining))
