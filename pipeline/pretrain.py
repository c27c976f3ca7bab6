"""Stage `pretrain`: ProjectedGAN pretraining of the generator on every training image (normal + defect).

Reads ``<rasterize.out>/`` (index.parquet, dataset.json) in ``resize`` mode, or the original images of
``<ingest.out>/manifest.parquet`` + ``annotations.parquet`` in ``patch`` mode. Writes ``<pretrain.out>/``
(``generator.pt``, ``discriminator.pt``, ``samples/``, ``summary.json``), ``<pretrain.plots>/{losses,fid}.csv`` and
``<pretrain.metrics>`` (fid_effnet at start and end, images/s).

A killed run resumes from ``.syndgan/resume/pretrain/last.pt`` (in the working directory, outside the DVC
outputs, so that DVC's run cache keeps this stage); it is deleted once the outputs are written.
"""

from __future__ import annotations

import logging

import torch

from pipeline.common import RESUME_ROOT, data_digest, finish_resume, is_writer, stage_main
from pipeline.config import Params, PretrainConfig, library_settings
from syndgan.data.datasets import PatchDataset, ProcessedImages
from syndgan.data.processed import read_dataset_info, train_pool_ids
from syndgan.io import atomic_write_json
from syndgan.training.pretrain import train_pretrain
from syndgan.training.settings import PretrainSettings

log = logging.getLogger("syndgan.pretrain")

RESUME_DIR = RESUME_ROOT / "pretrain"


def settings_for(cfg: PretrainConfig, resolution: int, channels: int, classes: list[dict]) -> PretrainSettings:
    """The library part of the section, with what the data decides filled in."""
    n_classes = cfg.n_classes or (len(classes) + 1 if cfg.aux_weight > 0 else 0)  # + 1: normal
    return library_settings(cfg, resolution=resolution, channels=channels, n_classes=n_classes)


def build_dataset(params: Params, resolution: int, channels: int, classes: list[dict]):
    cfg = params.pretrain
    keep = train_pool_ids(params.resolve(params.rasterize.out))  # the scarcity setting
    if cfg.data_mode == "patch":
        interim = params.resolve(params.ingest.out)
        return PatchDataset(
            interim / "manifest.parquet",
            interim / "annotations.parquet",
            classes,
            split="train",
            patch_size=cfg.patch_size,
            resolution=resolution,
            channels=channels,
            defect_patch_prob=cfg.defect_patch_prob,
            keep_ids=keep,
        )
    return ProcessedImages(params.resolve(params.rasterize.out), split="train", resolution=resolution, keep_ids=keep)


def run(params: Params) -> dict:
    cfg = params.pretrain
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = read_dataset_info(params.resolve(params.rasterize.out))
    resolution = cfg.resolution or int(info["resolution"])
    channels = int(info["channels"])
    dataset = build_dataset(params, resolution, channels, info["classes"])
    settings = settings_for(cfg, resolution, channels, info["classes"])
    log.info(
        "pretraining %s at %d px, %d channel(s), %s mode, on %d training images, %d steps of %d",
        cfg.generator, resolution, channels, cfg.data_mode, len(dataset), cfg.steps, cfg.batch_size,
    )  # fmt: skip
    resume = params.resolve(RESUME_DIR)
    summary = train_pretrain(
        settings, dataset, params.resolve(cfg.out), log_dir=params.resolve(cfg.plots),
        resume_path=resume / "last.pt", data_digest=data_digest(params),
    )  # fmt: skip
    if not is_writer():
        return summary
    metrics = {
        k: summary[k]
        for k in ("fid_effnet", "fid_effnet_start", "fid_samples", "steps", "images", "images_per_s", "train_seconds")
    }
    metrics["data_mode"] = cfg.data_mode
    metrics["train_images"] = len(dataset)
    atomic_write_json(params.resolve(cfg.metrics), metrics)
    finish_resume(resume)
    log.info(
        "fid_effnet %s -> %s; %.1f images/s",
        _f(summary["fid_effnet_start"]), _f(summary["fid_effnet"]), summary["images_per_s"],
    )  # fmt: skip
    return metrics


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}"


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        "pretrain",
        run,
        argv,
        __doc__,
        outputs=lambda p: [p.pretrain.out, p.pretrain.metrics, p.pretrain.plots, RESUME_DIR],
    )


if __name__ == "__main__":
    raise SystemExit(main())
