"""A report as a list of blocks, rendered to Markdown (figures as relative links) and to one self-contained
HTML file (figures embedded as base64 PNG data URIs, inline CSS, no external URL: it opens offline).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str  # plain text; `code` spans are kept as such in both renderings


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    path: Path  # where the PNG is (or will be) on disk: Markdown links it relative to the report
    caption: str = ""
    png: bytes | None = None  # what HTML embeds; None: read from ``path``
    scale: float = 1.0  # HTML display width / pixel width (small raw image grids: 2)


@dataclass
class Code:
    text: str
    language: str = ""


@dataclass
class Document:
    title: str
    blocks: list = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(Heading(text, level))

    def paragraph(self, text: str) -> None:
        self.blocks.append(Paragraph(text))

    def table(self, header: list[str], rows: list[list[str]], caption: str = "") -> None:
        self.blocks.append(Table(list(header), [list(r) for r in rows], caption))

    def figure(self, path: str | Path, caption: str = "", png: bytes | None = None, scale: float = 1.0) -> None:
        self.blocks.append(Figure(Path(path), caption, png, scale))

    def code(self, text: str, language: str = "") -> None:
        self.blocks.append(Code(text, language))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(doc: Document, base: str | Path) -> str:
    """Markdown; figure links are relative to ``base`` (the folder the .md file is written to)."""
    base = Path(base)
    lines = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            lines += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            lines += [b.text, ""]
        elif isinstance(b, Table):
            if b.caption:
                lines += [f"*{b.caption}*", ""]
            lines.append("| " + " | ".join(_md_cell(h) for h in b.header) + " |")
            lines.append("|" + "---|" * len(b.header))
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in b.rows]
            lines.append("")
        elif isinstance(b, Figure):
            rel = _relative(b.path, base)
            lines += [f"![{b.caption}]({rel})", ""]
            if b.caption:
                lines += [f"*{b.caption}*", ""]
        elif isinstance(b, Code):
            fence = "````" if "```" in b.text else "```"
            lines += [fence + b.language, b.text.rstrip("\n"), fence, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.15em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:right}th{background:#eee}
td:first-child,th:first-child,td.l{text-align:left}
caption{caption-side:top;text-align:left;font-style:italic;padding-bottom:.3em}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #ddd}figcaption{font-style:italic;font-size:.9em}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f2f2f2;padding:0 .2em}.notrun{color:#a40}
""".strip()


def _inline(text: str) -> str:
    """Escape, then render `code` spans (the only inline markup the report uses)."""
    parts = str(text).split("`")
    out = []
    for i, p in enumerate(parts):
        esc = html.escape(p)
        out.append(f"<code>{esc}</code>" if i % 2 and i < len(parts) - 1 else ("`" + esc if i % 2 else esc))
    return "".join(out)


def _png_width(png: bytes) -> int | None:
    """Width from a PNG's IHDR chunk (None when the bytes are no PNG)."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(png[16:20], "big")


_NUMERIC = re.compile(r"[-+0-9.,%±() /]*|n/a")


def _td(cell: str) -> str:
    """Numbers right-aligned (CSS default here), text left-aligned."""
    cls = "" if _NUMERIC.fullmatch(str(cell).strip()) else ' class="l"'
    return f"<td{cls}>{_inline(cell)}</td>"


def render_html(doc: Document) -> str:
    """One self-contained HTML page: images are embedded, nothing is fetched from anywhere."""
    body = [f"<h1>{html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            level = min(max(b.level, 1), 6)
            anchor = "".join(ch if ch.isalnum() else "-" for ch in b.text.lower()).strip("-")
            body.append(f'<h{level} id="{html.escape(anchor)}">{html.escape(b.text)}</h{level}>')
        elif isinstance(b, Paragraph):
            cls = ' class="notrun"' if b.text.lower().startswith("not run") else ""
            body.append(f"<p{cls}>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            rows = ["<table>"]
            if b.caption:
                rows.append(f"<caption>{_inline(b.caption)}</caption>")
            rows.append("<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in b.header) + "</tr>")
            rows += ["<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in b.rows]
            rows.append("</table>")
            body.append("\n".join(rows))
        elif isinstance(b, Figure):
            png = b.png if b.png is not None else b.path.read_bytes()
            data = base64.b64encode(png).decode("ascii")
            alt = html.escape(b.caption or b.path.name)
            cap = f"<figcaption>{_inline(b.caption)}</figcaption>" if b.caption else ""
            width = _png_width(png)
            scaled = width is not None and b.scale != 1.0  # enlarged pixel art stays sharp
            size = f' width="{round(b.scale * width)}" style="image-rendering:pixelated"' if scaled else ""
            body.append(f'<figure><img alt="{alt}"{size} src="data:image/png;base64,{data}">{cap}</figure>')
        elif isinstance(b, Code):
            body.append(f"<pre><code>{html.escape(b.text)}</code></pre>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(doc.title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
