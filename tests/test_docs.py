"""The README stays a guide (issue 32): at most 20 KB, the two set-up commands shown, and every relative link in
README.md and docs/*.md leads to a file that exists (and, with a #fragment into a Markdown file, to a heading)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_BYTES = 20_000
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets and parentheses are no links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", md.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def relative_links(md: Path) -> list[str]:
    targets = LINK.findall(prose(md.read_text(encoding="utf-8")))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]  # http:, https:, mailto:...


def broken_links(md: Path) -> list[str]:
    broken = []
    for target in relative_links(md):
        path, _, fragment = target.partition("#")
        dest = (md.parent / unquote(path)).resolve() if path else md
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and dest.is_file() and fragment.lower() not in anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.name}")
    return broken


def test_readme_is_a_guide_of_at_most_20_kb():
    size = README.stat().st_size
    assert size <= README_MAX_BYTES, (
        f"README.md is {size} bytes (limit {README_MAX_BYTES}): move measured results and details to docs/"
    )


def test_readme_shows_the_two_setup_commands():
    text = README.read_text(encoding="utf-8")
    for command in ("make repro", "make test"):
        assert re.search(rf"^{command}\b", text, re.M), f"README.md shows no line starting with `{command}`"


@pytest.mark.parametrize("md", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_lead_to_existing_files(md):
    assert broken_links(md) == []


def test_link_checker_sees_broken_links(tmp_path):
    (tmp_path / "there.md").write_text("# A heading: with `code`\n", encoding="utf-8")
    md = tmp_path / "doc.md"
    md.write_text(
        "[ok](there.md) [ok](there.md#a-heading-with-code) ![img](missing.png) [web](https://example.com/x)\n"
        "[bad anchor](there.md#nope) [self](#top) `[not a link](nowhere.md)`\n"
        "```\n[in code](nowhere.md)\n```\n# Top\n",
        encoding="utf-8",
    )
    assert broken_links(md) == ["missing.png: no such file", "there.md#nope: no heading #nope in there.md"]
