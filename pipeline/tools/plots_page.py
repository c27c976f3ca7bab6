"""``make plots``: DVC's plots as one HTML page that renders with no network, each chart titled apart.

``dvc plots show`` writes a page that loads Vega, Vega-Lite and vega-embed from a CDN, so offline it is
blank. This takes DVC's plots as JSON (``dvc plots show --json``: per plot its file and its filled Vega-Lite
spec) and writes them into a page with the three inlined (``vl-convert-python`` ships them, no download).
Vega-Lite is pinned to the 5.x line because DVC's plot specs declare the v5 schema.

A folder of plots (one CSV per class, per dose) is one dvc.yaml entry with one title, and DVC gives every
file's chart that same title; ``{file}`` in a title is replaced here by the chart's file name without its
suffix (``bump``, ``dose-all``), so each chart says which it is.

    python -m pipeline.tools.plots_page [--out dvc_plots]   # then open dvc_plots/index.html
"""

from __future__ import annotations

import argparse
import html
import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

from syndgan.errors import SyndganError
from syndgan.io import atomic_write_text

VEGA_LITE = "5.21"
FILE_TOKEN = "{file}"  # in a dvc.yaml plot title: the plotted file's name, filled in here

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>syndgan plots</title>
  <script>{bundle}</script>
  <style>body {{ font-family: sans-serif; }} .plot {{ display: inline-block; margin: 15px; }}</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def offline_bundle() -> str:
    """vega-embed (and the Vega / Vega-Lite it bundles) as one inline script, ``vegaEmbed`` global."""
    import vl_convert

    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=VEGA_LITE)
    return bundle.replace("</script", "<\\/script")  # an inline script ends at the first "</script"


def fill_title(spec: dict, plot_id: str) -> dict:
    """``spec`` with ``{file}`` in its title replaced by the stem of ``plot_id`` (the plotted file)."""
    title = spec.get("title")
    text = title.get("text") if isinstance(title, dict) else title
    if isinstance(text, str) and FILE_TOKEN in text:
        text = text.replace(FILE_TOKEN, PurePosixPath(plot_id).stem)
        spec = {**spec, "title": {**title, "text": text} if isinstance(title, dict) else text}
    return spec


def plot_divs(shown: dict, out_dir: Path) -> list[str]:
    """The page's charts from ``dvc plots show --json``'s ``data``: a vega-embed call per Vega plot, an
    ``<img>`` per image plot (DVC copied it under ``out_dir``)."""
    divs = []
    for plot_id, entries in shown.items():
        for entry in entries:
            div = f"plot-{len(divs)}"
            if entry.get("type") == "vega":
                spec = json.dumps(fill_title(entry["content"], plot_id)).replace("</", "<\\/")
                divs.append(f'<div class="plot" id="{div}"></div>\n<script>vegaEmbed(\'#{div}\', {spec});</script>')
            elif entry.get("type") == "image":
                src = Path(entry["url"])
                src = src.relative_to(out_dir) if src.is_relative_to(out_dir) else src.resolve().as_uri()
                alt = html.escape(f"{plot_id} ({', '.join(entry.get('revisions') or [])})")
                divs.append(f'<div class="plot" id="{div}"><p>{alt}</p><img src="{html.escape(str(src))}"></div>')
    return divs


def render(project_dir: str | Path = ".", out: str | Path = "dvc_plots") -> Path:
    """Write ``<out>/index.html`` for the project's plots; returns its path."""
    project_dir = Path(project_dir).resolve()
    out_dir = project_dir / out
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--json", "-o", str(out_dir)],
        cwd=project_dir,
        capture_output=True,
        text=True,
    )
    try:
        doc = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        doc = None
    if doc is None:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise SyndganError(f"dvc plots show failed ({proc.returncode}): {last}")
    shown = doc.get("data") or {}
    if not shown:  # DVC exits 0 when dvc.yaml does not parse: its reason is in "errors"
        why = [e.get("msg") for e in doc.get("errors", []) if e.get("msg")]
        raise SyndganError(f"dvc plots show: no plots: {why[0] if why else 'no plot file of dvc.yaml exists yet'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    page = PAGE.format(bundle=offline_bundle(), plot_divs="\n".join(plot_divs(shown, out_dir)))
    return atomic_write_text(out_dir / "index.html", page)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.tools.plots_page", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="dvc_plots", help="folder for index.html (default: dvc_plots)")
    args = parser.parse_args(argv)
    try:
        index = render(".", args.out)
    except SyndganError as e:
        print(f"plots: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {index} (Vega inlined: opens offline)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
