"""DVC plots: every chart says what it draws (dvc.yaml), and the page renders in a browser with no network."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cdp import Browser, find_chromium

from pipeline.plots_page import render

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
def test_plots_page_renders_with_networking_off(tmp_path):
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
    finally:
        browser.close()
