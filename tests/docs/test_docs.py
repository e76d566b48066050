"""The Markdown documents point at what exists, and the admin API's route list
in deploy/README.md is the table the admin server serves.

Links are checked as GitHub renders them: a relative link must name a file or
directory of the checkout, and a ``#fragment`` into a Markdown file must be the
anchor of one of its headings (lower case, punctuation dropped, spaces made
hyphens, ``-1``, ``-2`` ... for a heading met again).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from router.daemon.admin.views import ROUTES
from tests.conftest import REPO_ROOT

DOCUMENTS = sorted(
    [REPO_ROOT / "README.md", REPO_ROOT / "deploy" / "README.md", *(REPO_ROOT / "docs").glob("*.md")]
)
"""The documents whose links are checked."""
ADMIN_DOCUMENT = REPO_ROOT / "deploy" / "README.md"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
ROUTE_LINE = re.compile(r"^- `(GET|HEAD|POST|PUT|PATCH|DELETE) (/[^`\s]*)`")


def prose_lines(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading's text (before the ``-N`` of a repeated one)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = INLINE_CODE.sub(r"\2", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file."""
    seen: Counter[str] = Counter()
    found = set()
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match is None:
            continue
        base = anchor(match.group(2))
        found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
        seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of a document's links that are not URLs (inline code left out)."""
    targets = []
    for line in prose_lines(path.read_text()):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if not EXTERNAL.match(target):
                targets.append(target)
    return targets


def broken_link(document: Path, target: str) -> str | None:
    """Why ``target``, a link of ``document``, leads nowhere (None if it leads somewhere)."""
    where, _, fragment = target.partition("#")
    destination = (document.parent / where).resolve() if where else document
    if not destination.exists():
        return f"{target}: no such file"
    if fragment and destination.suffix == ".md" and fragment not in anchors(destination):
        return f"{target}: no heading with the anchor #{fragment} in {destination.name}"
    return None


def test_the_documents_are_there() -> None:
    assert len(DOCUMENTS) > 2 and all(d.is_file() for d in DOCUMENTS), DOCUMENTS


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.relative_to(REPO_ROOT).as_posix())
def test_every_relative_link_leads_somewhere(document: Path) -> None:
    broken = [why for target in relative_links(document) if (why := broken_link(document, target))]
    assert not broken, f"{document.relative_to(REPO_ROOT)}: {broken}"


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Installing beside a homeserver with systemd", "installing-beside-a-homeserver-with-systemd"),
        ("3. The gateway's CA certificate", "3-the-gateways-ca-certificate"),
        ("The Go reference and Dendrite (`tests/interop/`)", "the-go-reference-and-dendrite-testsinterop"),
        (
            "tuwunel, of the Conduit family (`tests/interop/test_conduit.py`)",
            "tuwunel-of-the-conduit-family-testsinteroptest_conduitpy",
        ),
        ("Networks like its users': the testbed", "networks-like-its-users-the-testbed"),
    ],
)
def test_anchors_follow_githubs_rules(heading: str, expected: str) -> None:
    assert anchor(heading) == expected


def test_a_repeated_heading_gets_a_numbered_anchor(tmp_path: Path) -> None:
    document = tmp_path / "doc.md"
    document.write_text("# Notes\n\n## Notes\n\n```sh\n# not a heading\n```\n")
    assert anchors(document) == {"notes", "notes-1"}


def documented_routes() -> list[tuple[str, str]]:
    """The routes deploy/README.md lists, one a line: ``- `METHOD /path` ...``."""
    routes = []
    for line in prose_lines(ADMIN_DOCUMENT.read_text()):
        match = ROUTE_LINE.match(line)
        if match is not None:
            method, target = match.groups()
            routes.append((method, target.partition("?")[0]))
    return routes


def test_the_admin_api_routes_listed_are_those_the_server_serves() -> None:
    listed = documented_routes()
    repeated = [route for route, n in Counter(listed).items() if n > 1]
    assert not repeated, f"listed more than once in deploy/README.md: {repeated}"
    served = set(ROUTES)
    assert set(listed) == served, {
        "served but not listed": sorted(served - set(listed)),
        "listed but not served": sorted(set(listed) - served),
    }
