"""Defect studio over HTTP (Starlette's in-process client): the happy path and every refused input.

Refusals must give a one-line ``{"error": "<field>: <problem>"}`` and write nothing.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from studio_helpers import SIZE, make_project, make_studio
from synth_helpers import CLASSES, one_thread  # noqa: F401

from syndgan.data.ingest import Source, ingest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
from starlette.testclient import TestClient  # noqa: E402

from pipeline.tools.studio import create_app  # noqa: E402

TRIANGLE = [[10, 10], [22, 12], [14, 24]]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("studio"))


@pytest.fixture
def client(project, one_thread):  # noqa: F811
    studio = make_studio(project)
    with TestClient(create_app(studio)) as c:
        c.studio = studio
        yield c


def _poly(points=TRIANGLE, cls="bump"):
    return {"tool": "polygon", "class": cls, "points": points}


def _synth(client, ops, image="demo/normal0", **kw):
    return client.post("/api/synthesize", json={"image": image, "ops": ops, **kw})


def _png(client, url) -> np.ndarray:
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.int16)


def _written(project) -> list:
    return sorted(p.name for p in project["out"].glob("*")) if project["out"].exists() else []


def test_page_lists_normal_train_images_and_classes(client):
    assert "defect studio" in client.get("/").text
    assert "canvas" in client.get("/static/studio.js").text
    info = client.get("/api/info").json()
    assert [c["name"] for c in info["classes"]] == ["bump", "dust"] and info["scorer"] is None
    assert [i["id"] for i in client.get("/api/images").json()["images"]] == ["demo/normal0", "demo/normal1"]
    assert [i["id"] for i in client.get("/api/images?split=test").json()["images"]] == ["demo/normal2"]
    thumb = Image.open(io.BytesIO(client.get("/api/thumb?id=demo/normal0").content))
    assert thumb.size == SIZE  # small images stay as they are


def test_polygon_synthesis_changes_only_near_the_polygon_and_saves_labelme(client, tmp_path):
    client.studio.out_dir = tmp_path / "saved"  # the project's out folder stays empty for the refusal tests
    r = _synth(client, [_poly()], variants=3, jitter=1.5, seed=7)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [v["seed"] for v in body["results"]] == [7, 8, 9] and body["results"][0]["jitter"] == 0
    before = _png(client, "/api/image?id=demo/normal0")
    after = _png(client, f"/api/result/{body['results'][0]['id']}.png")
    changed = np.argwhere((before != after).any(axis=2))
    assert len(changed) > 20
    # resize mode at 48 -> 32 px: dilate 1 + feather 2 network px = at most ~5 native px from the polygon
    assert changed[:, 1].min() >= 10 - 6 and changed[:, 1].max() <= 22 + 6
    assert changed[:, 0].min() >= 10 - 6 and changed[:, 0].max() <= 24 + 6
    mask = _png(client, f"/api/mask/{body['mask']}.png")
    assert (mask[15, 15] == CLASSES[0]["color"]).all() and (mask[35, 40] == 0).all()

    saved = client.post("/api/save", json={"result": body["results"][1]["id"]}).json()
    doc = json.loads(open(saved["json"]).read())
    assert doc["flags"] == {"synthetic": True} and doc["imagePath"] == f"{saved['name']}.png"
    prov = doc["syndgan"]
    assert (
        prov["source_image"] == "demo/normal0" and prov["seed"] == 8 and prov["checkpoint"].endswith("synthesizer.pt")
    )
    assert [s["label"] for s in doc["shapes"]] == ["bump"] and doc["shapes"][0]["shape_type"] == "polygon"
    assert doc["shapes"][0]["points"] != TRIANGLE  # the jittered polygon the network actually painted
    res = ingest([Source("labelme", tmp_path / "saved", name="studio", synthetic=True)], ["bump", "dust"])
    assert res.manifest[["label", "split"]].values.tolist() == [["bump", "train"]]
    assert len(res.annotations) == 1


def test_brush_and_eraser_save_as_a_mask_shape_that_ingests(client, tmp_path):
    ops = [
        {"tool": "brush", "class": "dust", "points": [[5, 30], [20, 30]], "radius": 2},
        {"tool": "eraser", "points": [[12, 30]], "radius": 1.5},
        _poly([[30, 5], [40, 5], [40, 12]], "bump"),
    ]
    body = _synth(client, ops).json()
    client.studio.out_dir = tmp_path / "brush"
    saved = client.post("/api/save", json={"result": body["results"][0]["id"]}).json()
    doc = json.loads(open(saved["json"]).read())
    assert sorted((s["label"], s["shape_type"]) for s in doc["shapes"]) == [("bump", "mask"), ("dust", "mask")]
    res = ingest([Source("labelme", tmp_path / "brush", synthetic=True)], ["bump", "dust"])
    assert res.manifest["labels"].tolist() == ["bump|dust"] and res.manifest["split"].tolist() == ["train"]
    dust = res.annotations[res.annotations["label"] == "dust"].iloc[0]
    assert dust["x0"] == 3 and dust["x1"] == 23  # the stroke with its 2 px round caps


# --------------------------------------------------------------------------- refusals: nothing written


def _refused(r, status: int, *words: str) -> str:
    assert r.status_code == status, r.text
    msg = r.json()["error"]
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


@pytest.mark.parametrize(
    "ops, words",
    [
        ([], ["mask: empty"]),
        ([_poly(), {"tool": "eraser", "points": [[15, 15]], "radius": 40}], ["mask: empty", "eraser"]),
        ([_poly([[10, 10], [60, 12], [14, 24]])], ["ops[0].points[1]", "(60, 12) is outside the 48x40 image"]),
        ([_poly(cls="scratch")], ["ops[0].class", "unknown class 'scratch'", "bump, dust"]),
        ([_poly([[5, 5], [20, 20], [20, 5], [5, 20]])], ["ops[0].points", "crosses itself"]),
        ([{"tool": "brush", "class": "bump", "points": [[5, 5]], "radius": 0}], ["ops[0].radius"]),
        ([{"tool": "lasso", "points": [[5, 5]]}], ["ops[0].tool", "'lasso'"]),
    ],
)
def test_bad_masks_are_refused(client, project, ops, words):
    _refused(_synth(client, ops), 400, *words)
    assert _written(project) == []


def test_bad_uploads_are_refused(project, one_thread):  # noqa: F811
    studio = make_studio(project, max_upload_bytes=4000)
    with TestClient(create_app(studio)) as c:
        _refused(
            c.post("/api/upload?name=notes.txt", content=b"hello, not an image"),
            400,
            "upload",
            "notes.txt",
            "not an image",
        )
        good = io.BytesIO()
        Image.new("RGB", SIZE, (90, 90, 90)).save(good, format="PNG")
        data = good.getvalue()
        _refused(c.post("/api/upload?name=cut.png", content=data[: len(data) // 2]), 400, "upload", "cut.png")
        big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(big).save(buf, format="PNG")
        _refused(c.post("/api/upload?name=big.png", content=buf.getvalue()), 413, "upload", "big.png", "limit of 4000")
        ok = c.post("/api/upload?name=../../etc/part.png", content=data).json()
        assert ok["name"] == "part.png" and ok["id"].startswith("upload:") and ok["split"] == "upload"
        r = _synth(c, [_poly()], image=ok["id"])
        assert r.status_code == 200, r.text
    assert _written(project) == []


def test_paths_never_escape(client, project):
    _refused(client.get("/api/image?id=../../etc/passwd"), 404, "image", "not a normal image")
    _refused(client.get("/api/thumb?id=demo/defect0"), 404, "not a normal image")  # listed only if normal
    assert client.get("/static/..%2F..%2Fcore.py").status_code == 404
    _refused(client.get("/api/result/..%2F..%2Fx.png"), 404, "not found")
    _refused(client.post("/api/save", json={"result": "../../../tmp/x"}), 404, "result")
    studio = make_studio({**project, "data": project["data"] / "elsewhere"})  # the files lie outside its root
    with TestClient(create_app(studio)) as c:
        _refused(c.get("/api/image?id=demo/normal0"), 403, "outside the dataset folders")
    assert _written(project) == []


def test_wrong_checkpoints_and_held_out_saves_are_refused(project, one_thread):  # noqa: F811
    other = [*CLASSES, {"name": "crack", "id": 3, "color": [9, 9, 9]}]
    with TestClient(create_app(make_studio(project, classes=other))) as c:
        _refused(_synth(c, [_poly()]), 409, "checkpoint", "trained for classes ['bump', 'dust']", "crack")
    foreign = make_studio(project)
    foreign.checkpoints["tiny"].path = project["data"] / "normal0.png"  # not a checkpoint at all
    with TestClient(create_app(foreign)) as c:
        _refused(_synth(c, [_poly()]), 409, "checkpoint", "normal0.png: cannot load")
    with TestClient(create_app(make_studio(project, channels=1))) as c:
        _refused(_synth(c, [_poly()]), 409, "checkpoint", "3-channel", "1 channel")
    with TestClient(create_app(make_studio(project))) as c:
        _refused(_synth(c, [_poly()], checkpoint="../x.pt"), 400, "checkpoint", "not one of tiny")
        _refused(c.post("/api/synthesize", content=b"{not json"), 400, "request", "JSON")
        _refused(_synth(c, [_poly()], variants=99), 400, "variants")
        rid = _synth(c, [_poly()], image="demo/normal2").json()["results"][0]["id"]
        _refused(c.post("/api/save", json={"result": rid}), 409, "save", "demo/normal2 is a test image")
    assert _written(project) == []


def test_a_real_data_classifier_scores_each_result(project, tmp_path, one_thread):  # noqa: F811
    import torch

    from syndgan.classify import real_data_model
    from syndgan.classify.train import create_classifier
    from syndgan.errors import DataError
    from syndgan.studio.core import ClassifierScorer, find_scorer

    torch.manual_seed(0)
    model = create_classifier("tf_efficientnet_lite0", 3, pretrained=False)
    path = real_data_model(tmp_path / "reports/classify")  # where classify saves it (test_classify runs it)
    path.parent.mkdir(parents=True)
    torch.save({"model": model.state_dict(), "arch": "tf_efficientnet_lite0", "classes": ["normal", "bump", "dust"],
                "resolution": 32, "method": "none", "seed": 0, "dose": "0"}, path)  # fmt: skip
    scorer = find_scorer(tmp_path / "reports/classify")  # the project's real-data classifier
    assert scorer is not None and "none-s0" in scorer.name
    studio = make_studio(project)
    studio.scorer = scorer
    with TestClient(create_app(studio)) as c:
        assert c.get("/api/info").json()["scorer"] == scorer.name
        body = _synth(c, [_poly(cls="dust")], variants=2, jitter=1).json()
    scores = [r["score"] for r in body["results"]]
    assert all(0.0 <= s <= 1.0 for s in scores)
    img = studio.result(body["results"][0]["id"]).image
    assert scores[0] == pytest.approx(scorer.score(img, "dust"))
    assert scorer.score(img, "crack") is None  # a class the classifier never saw gets no score
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt: not a classify model.pt"):
        ClassifierScorer.from_file(bad)
    assert find_scorer(tmp_path / "nothing") is None


def test_build_studio_from_params_and_the_cli_refuses_a_foreign_checkpoint(project, tmp_path, monkeypatch, capsys):
    from pipeline.config import parse_params
    from pipeline.tools.cli import main
    from pipeline.tools.studio import build_studio

    monkeypatch.chdir(tmp_path)
    (tmp_path / "interim").mkdir()
    rows = project["manifest"].assign(
        path=[str(p).replace(str(project["data"]), "data") for p in project["manifest"]["path"]]
    )
    shutil.copytree(project["data"], tmp_path / "data")
    rows.to_parquet(tmp_path / "interim" / "manifest.parquet")
    classes = {c["name"]: c["color"] for c in CLASSES}
    params = parse_params({"ingest": {"classes": classes, "out": "interim"}, "train_synth": {"ablation_out": "abl"}})
    (tmp_path / "abl" / "no_pretrain").mkdir(parents=True)
    (tmp_path / "abl" / "no_pretrain" / "synthesizer.pt").write_bytes(project["checkpoint"].read_bytes())
    studio = build_studio(params, project["checkpoint"], no_scorer=True)
    assert studio.info()["checkpoints"] == [str(project["checkpoint"]), "abl/no_pretrain/synthesizer.pt"]
    assert [i["id"] for i in studio.images.listing("train")] == ["demo/normal0", "demo/normal1"]
    assert studio.images.get("demo/normal0").image.size == SIZE
    assert studio.out_dir == tmp_path / "data/studio"  # outside data/raw: a save leaves the pipeline as it was

    (tmp_path / "params.yaml").write_text(json.dumps({"ingest": {"classes": {**classes, "crack": [1, 2, 3]}}}))
    assert main(["studio", "--checkpoint", str(project["checkpoint"]), "--no-scorer"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("syndgan studio: error: checkpoint: ") and "crack" in err and "\n" not in err
    # --params is an overlay of params.yaml here too (as for every stage): the classes still come from params.yaml
    (tmp_path / "mine.yaml").write_text("pretrain: {steps: 5}\n")
    assert main(["studio", "--checkpoint", str(project["checkpoint"]), "--no-scorer", "--params", "mine.yaml"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("syndgan studio: error: checkpoint: ") and "crack" in err and "\n" not in err


def test_without_a_classifier_the_pretraining_discriminator_scores(project, tmp_path, one_thread):  # noqa: F811
    from synth_helpers import write_pretrained

    from syndgan.studio.core import DiscriminatorScorer, find_scorer

    write_pretrained(tmp_path / "pretrain")
    scorer = find_scorer(tmp_path / "project", pretrain_dir=tmp_path / "pretrain")
    assert isinstance(scorer, DiscriminatorScorer) and scorer.resolution == 32
    studio = make_studio(project)
    studio.scorer = scorer
    body = studio.synthesize({"image": "demo/normal0", "ops": [_poly()], "variants": 2, "jitter": 2})
    scores = [r["score"] for r in body["results"]]
    assert all(0.0 < s < 1.0 for s in scores) and body["scorer"].startswith("discriminator realism")
    img = studio.result(body["results"][0]["id"]).image
    assert scores[0] == pytest.approx(scorer.score(img, "bump"))
    assert scorer.score(img, "bump", (8, 8, 16)) != pytest.approx(scores[0])  # a patch-mode window is judged alone


def test_patch_mode_paints_a_large_upload_only_around_the_defect(project, tmp_path, one_thread):  # noqa: F811
    from studio_helpers import smooth_image
    from synth_helpers import write_synthesizer

    from syndgan.studio import ImageStore, Studio

    ckpt = write_synthesizer(tmp_path / "patch.pt", data={"mode": "patch", "patch_size": 32})
    studio = Studio(CLASSES, {"patch": ckpt}, ImageStore(None, []), tmp_path / "out", device="cpu")
    src = studio.images.add_upload(smooth_image(tmp_path / "big.png", 5, (160, 120)).read_bytes(), "big.png")
    body = studio.synthesize({"image": src.ref, "ops": [_poly([[100, 60], [106, 60], [103, 66]], "dust")]})
    x0, y0, x1, y1 = body["results"][0]["changed"]
    assert 100 - 32 <= x0 and x1 <= 106 + 32 and 60 - 32 <= y0 and y1 <= 66 + 32  # inside the 32 px window
    assert studio.result(body["results"][0]["id"]).image.size == (160, 120)


def test_results_held_for_saving_are_bounded(project, monkeypatch, one_thread):  # noqa: F811
    import syndgan.studio.core as core

    studio = make_studio(project)
    one = SIZE[0] * SIZE[1] * 4  # RGB result + label map
    monkeypatch.setattr(core, "KEEP_BYTES", 3 * one)
    ids = [studio.synthesize({"image": "demo/normal0", "ops": [_poly()]})["results"][0]["id"] for _ in range(5)]
    assert list(studio.results) == ids[-3:]  # the oldest went first
    with pytest.raises(core.StudioError, match="unknown or expired"):
        studio.save(ids[0])


def test_jittered_variants_differ_and_are_reproducible():
    from syndgan.studio.masks import jitter_ops, parse_ops, rasterize_ops

    ops = parse_ops(
        [_poly(), {"tool": "brush", "class": "dust", "points": [[30, 30], [40, 32]], "radius": 1.5}], CLASSES, SIZE
    )
    base = rasterize_ops(ops, SIZE)
    for seed in range(1, 6):
        moved = jitter_ops(ops, seed, 1.0, SIZE)
        assert moved == jitter_ops(ops, seed, 1.0, SIZE)  # the seed saved in provenance redraws it
        assert moved[1].points != ops[1].points  # a stroke always moves (by whole px)
        labels = rasterize_ops(moved, SIZE)
        assert not np.array_equal(labels[:, 25:], base[:, 25:]) and set(np.unique(labels)) == {0, 1, 2}
    assert jitter_ops(ops, 3, 0, SIZE) == ops
