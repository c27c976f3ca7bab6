"""DVC plots: every chart says what it draws (dvc.yaml), and the page renders in a browser with no network."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cdp import Browser, find_chromium

from pipeline.tools.plots_page import render

ROOT = Path(__file__).resolve().parents[1]


def _plot_entries():
    doc = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    for name, stage in doc["stages"].items():
        body = stage["do"] if "do" in stage else stage
        for entry in body.get("plots", []):
            yield name, *next(iter(entry.items()))
    for entry in doc.get("plots", []):
        yield "plots", *next(iter(entry.items()))


def test_every_plot_names_its_axes_and_title():
    entries = list(_plot_entries())
    assert len(entries) >= 5
    for where, path, props in entries:
        missing = [k for k in ("x", "y", "title", "x_label", "y_label") if k not in props]
        assert not missing, f"dvc.yaml {where}: plot {path} lacks {missing}"
    confusion = [props for _, _, props in entries if props.get("template") == "confusion"]
    # the report's matrices have actual as rows and predicted as columns: the same here
    assert confusion and all((p["x"], p["y"]) == ("predicted", "actual") for p in confusion)
    # a folder (a CSV per class, per dose) is one chart per file under one title: {file} tells them apart
    folders = [(where, p["title"]) for where, path, p in entries if where != "plots" and not _resolved(path).suffix]
    assert len(folders) >= 2 and all("{file}" in title for _, title in folders), folders


def _resolved(path: str) -> Path:
    """A dvc.yaml path with its ``${...}`` filled from params.yaml (a foreach / matrix item: a placeholder)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))

    def value(m: re.Match) -> str:
        if m.group(1).startswith(("item.", "key")):
            return "x"
        v = params
        for k in m.group(1).split("."):
            v = v[k]
        return str(v)

    return Path(re.sub(r"\$\{([^}]+)\}", value, path))


def _titles(page: Path) -> list[str]:
    """The title of every chart of a page ``render`` wrote, in page order."""
    specs = re.findall(r"vegaEmbed\('#[^']+', (.*?)\);</script>", page.read_text(encoding="utf-8"))
    return [(t["text"] if isinstance(t := json.loads(s)["title"], dict) else t) for s in specs]


PLOTS_YAML = """
stages:
  gen:
    cmd: "true"
    plots:
      - plots/gen:
          title: "gen: loss, class {file}"
          x: step
          y: loss
          cache: false
      - plots/fid.csv:
          title: "gen: FID"
          x: step
          y: fid
          cache: false
"""


def test_a_folder_of_plots_titles_each_chart_by_its_file(tmp_path):
    (tmp_path / "dvc.yaml").write_text(PLOTS_YAML)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "plots/gen").mkdir(parents=True)
    for name in ("bump", "dose-all"):
        (tmp_path / f"plots/gen/{name}.csv").write_text("step,loss\n1,0.5\n2,0.25\n")
    (tmp_path / "plots/fid.csv").write_text("step,fid\n1,90\n")
    titles = _titles(render(tmp_path, "page"))
    assert sorted(titles) == ["gen: FID", "gen: loss, class bump", "gen: loss, class dose-all"]


def test_the_project_charts_are_titled_apart(tmp_path, project_dvc):
    """Every chart of `make plots` on this project (its committed plot files) has a title of its own."""
    titles = _titles(render(ROOT, tmp_path / "page"))
    assert len(titles) >= 5 and len(set(titles)) == len(titles), sorted(titles)
    assert "train_generation: generator loss, class bump" in titles
    assert "classify none, seed 0: test confusion, dose-0" in titles
    assert not [t for t in titles if "{file}" in t]


def _charts_offline(browser: Browser, page: Path, timeout: float) -> int:
    """Open ``page`` with networking off; the number of drawn Vega charts once they stop appearing."""
    browser.open("about:blank")
    browser.send("Network.enable")
    browser.send(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    browser.send("Page.navigate", {"url": page.as_uri()})
    browser.wait("document.readyState === 'complete'", timeout=timeout)
    count = "document.querySelectorAll('.vega-embed canvas, .vega-embed svg.marks').length"
    try:
        browser.wait(f"{count} > 0", timeout=timeout)
    except TimeoutError:
        return 0
    return browser.eval(count)


@pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (apt-get install -y chromium)")
def test_plots_page_renders_with_networking_off(tmp_path, project_dvc):
    env_path = f"{Path(sys.executable).parent}"
    index = render(ROOT, tmp_path / "offline")
    html = index.read_text(encoding="utf-8")
    assert "cdn.jsdelivr" not in html and "<script src=" not in html
    n_plots = html.count("vegaEmbed('#")
    assert n_plots >= 5

    # DVC's own page, for contrast: its scripts come from a CDN, so offline it draws nothing
    subprocess.run(
        [sys.executable, "-m", "dvc", "plots", "show", "-o", str(tmp_path / "cdn")],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={"PATH": env_path, "DVC_NO_ANALYTICS": "1", "HOME": str(tmp_path)},
    )
    browser = Browser()
    try:
        assert _charts_offline(browser, tmp_path / "cdn/index.html", timeout=5) == 0
        assert _charts_offline(browser, index, timeout=60) == n_plots
        charts = "[...document.querySelectorAll('.vega-embed svg.marks')]"
        sizes = browser.eval(f"{charts}.map(c => c.getBoundingClientRect().width * c.getBoundingClientRect().height)")
        assert len(sizes) == n_plots and min(sizes) > 100 * 100  # drawn charts, not empty boxes
        titles = browser.eval(f"{charts}.map(c => c.querySelector('.role-title-text').textContent)")
        assert "pretrain: generator loss" in titles and "pretrain: discriminator loss" in titles
        # each chart shows its own title (a faceted confusion matrix draws its facet header "rev" first)
        drawn = browser.eval(f"{charts}.map(c => [...c.querySelectorAll('.role-title-text')].map(t => t.textContent))")
        expected = _titles(index)
        assert len(set(expected)) == n_plots and all(t in texts for t, texts in zip(expected, drawn, strict=True))
        assert "train_generation: generator loss, class bump" in expected
    finally:
        browser.close()
