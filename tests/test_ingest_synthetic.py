"""Ingest of a ``synthetic: true`` source (the defect studio's output): train only, real splits unchanged."""

from __future__ import annotations

from syndgan.data.ingest import Source, ingest


def _real(root, ingest_image, ingest_labelme, n=12):
    for k in range(n):
        ingest_image(root / f"part{k:02d}.png")
        shapes = [("dent", [(2, 2), (10, 2), (10, 8)])] if k % 3 == 0 else []
        ingest_labelme(root / f"part{k:02d}.json", shapes=shapes)


def test_synthetic_source_goes_to_train_and_leaves_real_splits_alone(tmp_path, ingest_image, ingest_labelme):
    _real(tmp_path / "real", ingest_image, ingest_labelme)
    for k in range(6):
        ingest_image(tmp_path / "studio" / f"syn{k}.png")
        ingest_labelme(
            tmp_path / "studio" / f"syn{k}.json",
            shapes=[("dent", [(3, 3), (12, 3), (12, 9)])],
            flags={"synthetic": True},
        )
    split = (0.5, 0.25, 0.25)
    alone = ingest([Source("labelme", tmp_path / "real", name="real")], ["dent"], split=split).manifest
    both = ingest(
        [Source("labelme", tmp_path / "real", name="real"), Source("labelme", tmp_path / "studio", synthetic=True)],
        ["dent"],
        split=split,
    ).manifest
    syn = both[both["source"] == "studio"]
    assert len(syn) == 6 and set(syn["split"]) == {"train"} and set(syn["label"]) == {"dent"}
    real = both[both["source"] == "real"].set_index("id")["split"]
    assert real.to_dict() == alone.set_index("id")["split"].to_dict()
    assert {"val", "test"} <= set(real)  # the real data is still split three ways
