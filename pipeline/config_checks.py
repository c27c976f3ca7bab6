"""The rules of params.yaml that span fields or sections (ranges, consistency); ``pipeline.config`` checks
each value's type while parsing and then calls ``validate``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.config import (
    ClassifyConfig,
    EvaluateConfig,
    IngestConfig,
    Params,
    ReportConfig,
)
from syndgan.errors import ConfigError


def validate(p: Params, src: Any) -> None:
    """Raise ``ConfigError('<src>: <dotted key>: <problem>')`` for the first rule ``p`` breaks."""

    def bad(key: str, msg: str):
        raise ConfigError(f"{src}: {key}: {msg}")

    _validate_augment(p, bad)
    _validate_classify(p.classify, bad)
    if not p.scarcity.ks:
        bad("scarcity.ks", "must list at least one k (e.g. [10, all])")
    for i, k in enumerate(p.scarcity.ks):
        if not (k == "all" or (isinstance(k, int) and k >= 1)):
            bad(f"scarcity.ks[{i}]", f"must be 'all' or a number of defect images per class >= 1, got {k!r}")
    if len({str(k) for k in p.scarcity.ks}) != len(p.scarcity.ks):
        bad("scarcity.ks", f"values must be unique, got {p.scarcity.ks}")
    for i, k in enumerate(p.scarcity.report_ks):
        if str(k) not in {str(x) for x in p.scarcity.ks}:
            bad(f"scarcity.report_ks[{i}]", f"{k!r} is not one of scarcity.ks {p.scarcity.ks}")
    _validate_evaluate(p.evaluate, p.report, bad)

    f = p.flows
    if not 1 <= f.port <= 65535:
        bad("flows.port", f"must be in 1..65535, got {f.port}")
    if f.retries < 0 or f.retry_delay_seconds < 0:
        bad("flows.retries" if f.retries < 0 else "flows.retry_delay_seconds", "must be >= 0")
    if f.retrain_interval_minutes is not None and f.retrain_interval_minutes <= 0:
        bad("flows.retrain_interval_minutes", "must be > 0 (or null for no interval schedule)")
    if f.retrain_cron is not None and len(f.retrain_cron.split()) not in (5, 6):
        bad("flows.retrain_cron", f"expected 5 cron fields like '0 2 * * *', got {f.retrain_cron!r}")
    for i, suffix in enumerate(f.watch_suffixes):
        if not suffix.startswith(".") or len(suffix) < 2:
            bad(f"flows.watch_suffixes[{i}]", f"expected a suffix like '.json', got {suffix!r}")
    s = p.ingest.split
    for name in ("train", "val", "test"):
        if getattr(s, name) < 0:
            bad(f"ingest.split.{name}", "must be >= 0")
    if s.train <= 0 or abs(s.train + s.val + s.test - 1.0) > 1e-6:
        bad("ingest.split", f"train + val + test must be 1 with train > 0, got {s.train + s.val + s.test:g}")
    for name, color in p.ingest.classes.items():
        if name == "normal":
            bad(f"ingest.classes.{name}", "'normal' is reserved for defect-free images")
        if len(color) != 3 or any(not 0 <= c <= 255 for c in color) or color == [0, 0, 0]:
            bad(f"ingest.classes.{name}", f"colour must be 3 values in 0..255, not black, got {color}")
    colors = [tuple(c) for c in p.ingest.classes.values()]
    if len(set(colors)) != len(colors):
        bad("ingest.classes", "two classes share a colour")
    _validate_ingest(p.ingest, bad)
    if p.rasterize.resolution < 8:
        bad("rasterize.resolution", "must be >= 8")
    if not 0 < p.rasterize.coverage <= 1:
        bad("rasterize.coverage", "must be in (0, 1]")
    if p.rasterize.channels not in (0, 1, 3):
        bad("rasterize.channels", f"must be 0 (auto), 1 or 3, got {p.rasterize.channels}")
    if p.rasterize.k_shot is not None and p.rasterize.k_shot < 1:
        bad("rasterize.k_shot", f"must be >= 1 or null (all), got {p.rasterize.k_shot}")
    if p.demo.parts < 4:
        bad("demo.parts", "must be >= 4")
    if not 0 <= p.demo.defect_fraction <= 1:
        bad("demo.defect_fraction", "must be in [0, 1]")


def _validate_augment(p: Params, bad) -> None:
    c = p.augment
    t = c.targets
    if t.ratio < 0:
        bad("augment.targets.ratio", f"must be >= 0, got {t.ratio}")
    if t.count < 0:
        bad("augment.targets.count", f"must be >= 0, got {t.count}")
    for name, n in t.per_class.items():
        if p.ingest.classes and name not in p.ingest.classes:
            bad(f"augment.targets.per_class.{name}", f"unknown class (ingest.classes: {', '.join(p.ingest.classes)})")
        if n < 0:
            bad(f"augment.targets.per_class.{name}", f"must be >= 0, got {n}")
    if c.threads < 0:
        bad("augment.threads", "must be >= 0 (0: torch default)")
    _check_names("augment.extra_methods", c.extra_methods, bad)  # the registry checks them: pipeline.methods


def _validate_classify(c: ClassifyConfig, bad) -> None:
    if not c.methods:
        bad("classify.methods", "must name at least one method (e.g. [none])")
    _check_names("classify.methods", c.methods, bad)
    if len(set(c.seeds)) != len(c.seeds):
        bad("classify.seeds", f"values must be unique, got {c.seeds}")
    if not c.seeds:
        bad("classify.seeds", "must list at least one seed")
    if not c.doses:
        bad("classify.doses", "must list at least one dose (e.g. [all])")
    for i, d in enumerate(c.doses):
        if not (d == "all" or (isinstance(d, int) and d >= 1)):
            bad(f"classify.doses[{i}]", f"must be 'all' or a number of images per class >= 1, got {d!r}")
    if len({str(d) for d in c.doses}) != len(c.doses):
        bad("classify.doses", f"values must be unique, got {c.doses}")
    if not c.synthetic:
        bad("classify.synthetic", "must list at least one rule (e.g. [{weight: 1.0}])")
    labels = [u.label() for u in c.synthetic]
    if len(set(labels)) != len(labels):
        bad("classify.synthetic", f"rules must differ, got {labels}")


def _validate_evaluate(c: EvaluateConfig, r: ReportConfig, bad) -> None:
    _check_names("evaluate.methods", c.methods, bad)
    if not c.quality_metrics:
        bad("evaluate.quality_metrics", "must name at least one metric (e.g. [fid, kid])")
    if c.max_images_per_class < 2:
        bad("evaluate.max_images_per_class", f"must be >= 2 (FID/KID need 2 images), got {c.max_images_per_class}")
    if c.ablation_images_per_class < 0:
        bad("evaluate.ablation_images_per_class", "must be >= 0 (0: no ablation images)")
    if c.kid_subsets < 1:
        bad("evaluate.kid_subsets", "must be >= 1")
    if c.kid_subset_size < 2:
        bad("evaluate.kid_subset_size", "must be >= 2")
    if c.ic_max_per_cluster < 2:
        bad("evaluate.ic_max_per_cluster", "must be >= 2")
    if c.batch_size < 1:
        bad("evaluate.batch_size", "must be >= 1")
    if c.threads < 0:
        bad("evaluate.threads", "must be >= 0")
    if r.grid_rows < 1:
        bad("report.grid_rows", "must be >= 1")


def _check_names(key: str, names: list[str], bad) -> None:
    import re

    for i, m in enumerate(names):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", m):
            bad(f"{key}[{i}]", f"expected a method name like 'copy_paste', got {m!r}")
    if len(set(names)) != len(names):
        bad(key, f"values must be unique, got {names}")


def _validate_ingest(c: IngestConfig, bad) -> None:
    import re

    if c.seed < 0:
        bad("ingest.seed", f"must be >= 0, got {c.seed}")
    if c.max_pixels < 1:
        bad("ingest.max_pixels", f"must be >= 1, got {c.max_pixels}")
    names: dict[str, int] = {}
    for i, src_cfg in enumerate(c.sources):
        key = f"ingest.sources[{i}]"
        if src_cfg.format in ("coco", "cvat") and not src_cfg.annotations:
            bad(f"{key}.annotations", f"required for format {src_cfg.format}")
        root = os.path.abspath(os.path.expanduser(os.path.expandvars(src_cfg.root)))
        name = src_cfg.name or Path(root).name  # as pipeline.ingest names it
        if not name or "/" in name or "\\" in name:
            bad(f"{key}.name", f"must be non-empty without '/', got {name!r}")
        if name in names:
            bad(f"{key}.name", f"{name!r} is also the name of ingest.sources[{names[name]}]; set distinct names")
        names[name] = i
        if src_cfg.group_pattern:
            try:
                re.compile(src_cfg.group_pattern)
            except re.error as e:
                bad(f"{key}.group_pattern", f"invalid regular expression: {e}")
        for label, target in src_cfg.label_map.items():
            if target != "normal" and target not in c.classes:
                bad(f"{key}.label_map.{label}", f"{target!r} is not in ingest.classes (nor 'normal')")
        if src_cfg.images is not None and src_cfg.format not in ("labelme", "coco", "cvat", "masks"):
            bad(f"{key}.images", f"only for labelme, coco, cvat and masks sources ({src_cfg.format}: own layout)")
        if src_cfg.split == "source" and src_cfg.format != "mvtec":
            bad(f"{key}.split", f"'source' needs a dataset that ships its own split (mvtec), not {src_cfg.format}")
