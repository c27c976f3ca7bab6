"""``make plots``: DVC's plots page as one HTML file that renders with no network.

``dvc plots show`` writes a page that loads Vega, Vega-Lite and vega-embed from a CDN, so offline it is
blank. This writes an HTML template with the three inlined (``vl-convert-python`` ships them, no download)
and renders the plots with ``dvc plots show --html-template``. Vega-Lite is pinned to the 5.x line because
DVC's plot specs declare the v5 schema.

    python -m pipeline.plots_page [--out dvc_plots]   # then open dvc_plots/index.html
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from syndgan.errors import SyndganError
from syndgan.io import atomic_write_text

VEGA_LITE = "5.21"
TEMPLATE = ".dvc/tmp/plots_offline.html"  # .dvc/tmp is DVC's own scratch space, never committed

PAGE = """<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>syndgan plots</title>
  <script>{bundle}</script>
  <style>body {{ font-family: sans-serif; }} table {{ border-spacing: 15px; }}</style>
</head>
<body>
  {{plot_divs}}
</body>
</html>
"""


def offline_template() -> str:
    """DVC's page template with vega-embed (and the Vega / Vega-Lite it bundles) inlined."""
    import vl_convert

    # the snippet runs inside the bundle: DVC's plot divs call the global ``vegaEmbed``
    bundle = vl_convert.javascript_bundle("window.vegaEmbed = vegaEmbed;", vl_version=VEGA_LITE)
    # an inline script ends at the first "</script"; DVC fills only the {plot_divs}-like placeholders
    bundle = bundle.replace("</script", "<\\/script")
    for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}"):
        if placeholder in bundle:
            raise SyndganError(f"vl-convert's JavaScript bundle contains DVC's placeholder {placeholder}")
    return PAGE.format(bundle=bundle)


def render(project_dir: str | Path = ".", out: str | Path = "dvc_plots") -> Path:
    """Write ``<out>/index.html`` for the project's plots; returns its path."""
    project_dir = Path(project_dir).resolve()
    template = atomic_write_text(project_dir / TEMPLATE, offline_template())
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(template), "-o", str(out)],
        cwd=project_dir,
        capture_output=True,
        text=True,
    )
    index = project_dir / out / "index.html"
    if proc.returncode != 0 or not index.is_file():
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise SyndganError(f"dvc plots show failed ({proc.returncode}): {last}")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.plots_page", description=__doc__.splitlines()[0])
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
