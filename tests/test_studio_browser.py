"""The defect studio in a real headless Chromium (Debian's ``chromium``, driven over the DevTools pipe):
load the page, draw a polygon with mouse clicks, pick a class, synthesize, check that the result
changed only near the polygon, save it, ingest the saved folder. Skipped only when Chromium is absent.

``STUDIO_SCREENSHOT=path.png`` also keeps a screenshot of the page with its result.
"""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
import urllib.request

import numpy as np
import pytest
from cdp import Browser, find_chromium
from PIL import Image
from studio_helpers import SIZE, make_project, make_studio
from synth_helpers import one_thread  # noqa: F401

from syndgan.data.ingest import Source, ingest

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium not installed (.ci/run installs it)")
POLYGON = [(12, 8), (30, 10), (26, 26), (14, 22)]  # native px of the 48x40 image


@pytest.fixture
def server(tmp_path, one_thread):  # noqa: F811
    import uvicorn

    from pipeline.tools.studio import create_app

    project = make_project(tmp_path)
    studio = make_studio(project)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(studio), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", project
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    b = Browser(1280, 1000)
    yield b
    b.close()


def _get_png(url: str) -> np.ndarray:
    with urllib.request.urlopen(url, timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert("RGB"), np.int16)


def test_draw_synthesize_save_in_chromium(server, browser):
    base, project = server
    browser.open(base + "/")
    browser.wait(
        "document.querySelectorAll('#gallery img').length == 2 && document.querySelector('#gallery img').complete"
    )
    assert browser.eval("document.getElementById('scorer').textContent") == "no scorer"
    browser.click('#gallery img[data-id="demo/normal1"]')
    browser.wait("document.getElementById('image-name').textContent.includes('48x40')")
    browser.eval("const s = document.getElementById('class'); s.value = 'dust'; s.dispatchEvent(new Event('change'))")

    rect = browser.eval(
        "(() => { const r = document.getElementById('overlay').getBoundingClientRect(); return [r.left, r.top, r.width]; })()"
    )
    left, top, width = rect
    zoom = width / SIZE[0]
    assert zoom >= 4  # small images are shown enlarged for drawing small defects
    for x, y in POLYGON:
        browser.click_at(left + x * zoom, top + y * zoom)
    browser.click("#close-poly")
    assert browser.eval("state.ops.length") == 1 and browser.eval("state.ops[0].class") == "dust"
    drawn = browser.eval("state.ops[0].points")
    assert np.allclose(drawn, POLYGON, atol=0.5)  # native image px, whatever the zoom

    browser.eval("document.getElementById('variants').value = 2")
    browser.click("#synthesize")
    browser.wait("document.querySelectorAll('#variants-list .variant').length == 2", timeout=120)
    browser.wait(
        "document.getElementById('result-img').complete && document.getElementById('result-img').naturalWidth > 0"
    )
    assert browser.eval("document.getElementById('error').hidden")
    rid = browser.eval("document.querySelector('#variants-list .variant').dataset.id")

    before = _get_png(base + "/api/image?id=demo/normal1")
    after = _get_png(f"{base}/api/result/{rid}.png")
    changed = np.argwhere((before != after).any(axis=2))
    assert len(changed) > 20
    xs, ys = [p[0] for p in POLYGON], [p[1] for p in POLYGON]
    margin = 6  # dilate + feather around the polygon (resize mode, 48 -> 32 px)
    assert changed[:, 1].min() >= min(xs) - margin and changed[:, 1].max() <= max(xs) + margin
    assert changed[:, 0].min() >= min(ys) - margin and changed[:, 0].max() <= max(ys) + margin

    browser.click("#variants-list .variant button.save")
    saved = browser.wait("document.getElementById('saved').textContent")
    if os.environ.get("STUDIO_SCREENSHOT"):
        browser.screenshot(os.environ["STUDIO_SCREENSHOT"])
    files = sorted(p.name for p in project["out"].iterdir())
    assert len(files) == 2 and files[0] in saved
    doc = json.loads((project["out"] / [f for f in files if f.endswith(".json")][0]).read_text())
    assert doc["shapes"][0]["label"] == "dust" and np.allclose(doc["shapes"][0]["points"], drawn)
    assert doc["syndgan"]["source_image"] == "demo/normal1" and doc["flags"] == {"synthetic": True}
    res = ingest([Source("labelme", project["out"], name="studio", synthetic=True)], ["bump", "dust"])
    assert res.manifest[["label", "split"]].values.tolist() == [["dust", "train"]]
    assert res.report["counts"]["skipped"] == 0


def test_bad_input_is_shown_on_the_page(server, browser, tmp_path):
    base, project = server
    browser.open(base + "/")
    browser.wait("document.querySelectorAll('#gallery img').length == 2")
    browser.click("#synthesize")  # nothing chosen yet
    assert "image: choose" in browser.wait(
        "!document.getElementById('error').hidden && document.getElementById('error').textContent"
    )
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is no image")
    doc = browser.send("DOM.getDocument")
    node = browser.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"], "selector": "#upload"})["nodeId"]
    browser.send("DOM.setFileInputFiles", {"files": [str(bad)], "nodeId": node})
    msg = browser.wait(
        "document.getElementById('error').textContent.includes('notes.png') && document.getElementById('error').textContent"
    )
    assert msg.startswith("upload: ") and "not an image" in msg
    browser.click('#gallery img[data-id="demo/normal0"]')
    browser.wait("document.getElementById('image-name').textContent.includes('48x40')")
    browser.click("#synthesize")  # an image but no region
    assert "mask: empty" in browser.wait(
        "document.getElementById('error').textContent.includes('mask') && document.getElementById('error').textContent"
    )
    assert not project["out"].exists()
