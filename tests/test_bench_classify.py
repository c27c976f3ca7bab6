"""The classifier recipe benchmark on tiny data: other draws of the k kept defect images (``--subsets``)."""

import dataclasses
import json

import yaml
from test_augment import make_tiny_processed

from pipeline.experiments import bench_classify
from syndgan.data.processed import ProcessedDataset, train_pool


def test_subsets_draw_other_kept_images_each_reported_and_cached(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the benchmark moves into its work folder; this puts the cwd back after
    tiny = make_tiny_processed(tmp_path / "data", resolution=32)
    overlay = tmp_path / "p.yaml"
    train = {"resolution": 32, "batch_size": 4, "epochs": 1, "eval_from_epoch": 0, "threads": 1, "device": "cpu"}
    overlay.write_text(yaml.safe_dump({"rasterize": {"out": str(tiny)}, "classify": {"train": train}}))
    work = tmp_path / "work"
    work.mkdir()
    import syndgan.classify

    trained_on = []  # the kept defect images each loaded pool trains on
    real_load = syndgan.classify.load_real

    def load_real(pool, *args):
        trained_on.append(set(train_pool(pool)["id"]))
        return real_load(pool, *args)

    monkeypatch.setattr(syndgan.classify, "load_real", load_real)
    argv = ["--params", str(overlay), "--workdir", str(work), "--k-shot", "1", "--seeds", "0", "--variants"]
    argv += ["processed", "--subsets", "0", "1", "1"]  # a repeated subset runs once
    assert bench_classify.main(argv) == 0
    out = capsys.readouterr().out
    # subset 0 is the pipeline's draw (its folder as before); subset 1 keeps other images
    first = json.loads((work / "bench_classify" / "k1" / "processed-s0.json").read_text())
    other = json.loads((work / "bench_classify" / "k1-subset1" / "processed-s0.json").read_text())
    assert (first["subset"], other["subset"]) == (0, 1)
    dataset = ProcessedDataset.load(tiny)
    pools = [set(train_pool(dataclasses.replace(dataset, k_shot=1, k_shot_seed=s))["id"]) for s in (0, 1)]
    assert pools[0] != pools[1] and len(pools[0]) == len(pools[1]) and trained_on == pools
    rows = [line for line in out.splitlines() if line.startswith("| 1 | processed |")]
    assert [r.split(" | ")[2:4] for r in rows] == [["0", "1"], ["1", "1"], ["0+1", "2"]]
    # cached: a second call trains nothing and prints the same table
    assert bench_classify.main(argv) == 0
    again = capsys.readouterr().out
    assert (
        len(trained_on) == 2
        and '"seconds"' not in again
        and rows == [line for line in again.splitlines() if line.startswith("| 1 |")]
    )
