"""The status page at ``/``: one HTML file with its style and script inline.

The page holds no data: its script reads the JSON routes (``/status``,
``/peers``, ``/snake``, ``/sessions``, ``/gateway``, ``/relay``) every 2 s and
draws them, so it needs nothing from outside the node.  The file ships inside
the package (``status.html``, beside this module) and is read at each request.
"""

from __future__ import annotations

from typing import Any

from router.daemon.admin.body import Body
from router.daemon.node import Node

PAGE_FILE = "status.html"
CONTENT_TYPE = "text/html; charset=utf-8"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page's own inline script and style, and requests to this node; nothing else."""
PAGE_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
)


def page_bytes() -> bytes:
    """The status page as shipped in the package."""
    # Imported at the first view: importlib.resources brings tempfile, shutil
    # and the compression modules, which an unwatched node never needs.
    from importlib import resources  # noqa: PLC0415

    return resources.files("router.daemon.admin").joinpath(PAGE_FILE).read_bytes()


async def get_page(node: Node, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
    return 200, Body(CONTENT_TYPE, page_bytes(), PAGE_HEADERS)
