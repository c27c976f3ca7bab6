"""Stage `train_synth` (and `train_synth_ablation`): train SyNDGAN's synthesis network.

    python -m pipeline.train_synth [--params params.yaml] [--ablation NAME]

Reads the pretrained decoder ``<pretrain.out>/generator.pt`` and discriminator
``<pretrain.out>/discriminator.pt``, and the training images with their label maps: ``<rasterize.out>/``
in ``resize`` mode, the original images + annotations of ``<ingest.out>/`` in ``patch`` mode. Writes
``<train_synth.out>/`` (``synthesizer.pt`` for ``syndgan.synthesis.Synthesizer``, ``samples/``,
``reconstructions.png``, ``summary.json``), ``<plots>/losses.csv`` and ``<metrics>``: reconstruction distances on
the ``eval_split`` images, normal and defect separately (paper Tables 2 and 5), keyed by the perceptual distance
used (``recon_lpips_vgg_*`` or ``recon_perceptual_effnet_*``).

``--ablation NAME`` trains the Table 5 variant NAME into ``<ablation_out>/NAME/`` and
``<ablation_metrics>/NAME.json`` (the ``train_synth_ablation`` DVC stage, one per ``train_synth.ablations``).

A killed run resumes from ``.syndgan/resume/train_synth/last.pt`` (an ablation: ``train_synth_ablation/NAME/``),
in the working directory and outside the DVC outputs, so that DVC's run cache keeps these stages; it is deleted
once the outputs are written.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from pipeline.common import RESUME_ROOT, data_digest, finish_resume, is_writer, stage_main
from pipeline.config import SYNTH_ABLATIONS, Params, TrainSynthConfig, library_settings
from syndgan.data.datasets import ProcessedImages, SynthPatchDataset
from syndgan.data.processed import read_dataset_info, train_pool_ids
from syndgan.errors import DataError
from syndgan.io import atomic_write_json
from syndgan.training.settings import SynthSettings
from syndgan.training.synth import read_pretrained, train_synth

log = logging.getLogger("syndgan.train_synth")

# Table 5 variants: settings overrides.
ABLATION_OVERRIDES: dict[str, dict] = {
    "no_pretrain": {"pretrained_decoder": False, "pretrained_discriminator": False},  # "w/o Pretrained"
    "no_pretrained_decoder": {"pretrained_decoder": False},
    "no_inversion": {"w_inversion": 0.0},  # "w/o In-domain loss"
    "single_scale_d": {"d_scales": [3]},  # "w/ Single scale D"
    "aux_classifier_d": {"aux_classifier": True},  # "w/ Auxiliary classifier D"
}
assert set(ABLATION_OVERRIDES) == set(SYNTH_ABLATIONS)


def resume_dir(ablation: str | None) -> Path:
    return RESUME_ROOT / "train_synth" if ablation is None else RESUME_ROOT / "train_synth_ablation" / ablation


def settings_for(cfg: TrainSynthConfig, ablation: str | None = None) -> SynthSettings:
    """The library part of the section, with the ablation's overrides (a random decoder is never frozen)."""
    changes = dict(ABLATION_OVERRIDES[ablation]) if ablation is not None else {}
    if not changes.get("pretrained_decoder", cfg.pretrained_decoder):
        changes["freeze_decoder"] = False
    return library_settings(cfg, **changes)


def build_datasets(params: Params, resolution: int, channels: int, classes: list[dict]):
    cfg = params.train_synth
    processed = params.resolve(params.rasterize.out)
    keep = train_pool_ids(processed)  # the scarcity setting
    if cfg.data_mode == "patch":
        interim = params.resolve(params.ingest.out)
        kw = dict(patch_size=cfg.patch_size, resolution=resolution, channels=channels)
        args = (interim / "manifest.parquet", interim / "annotations.parquet", classes)
        train = SynthPatchDataset(*args, split="train", defect_patch_prob=cfg.defect_patch_prob, keep_ids=keep, **kw)
        test = SynthPatchDataset(*args, split=cfg.eval_split, defect_patch_prob=1.0, **kw)
        return train, test
    train = ProcessedImages(processed, split="train", resolution=resolution, with_maps=True, keep_ids=keep)
    test = ProcessedImages(processed, split=cfg.eval_split, resolution=resolution, with_maps=True)
    return train, test


def run(params: Params, ablation: str | None = None) -> dict:
    cfg = params.train_synth
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pre_dir = params.resolve(params.pretrain.out)
    gen_ckpt, disc_ckpt = pre_dir / "generator.pt", pre_dir / "discriminator.pt"
    pre = read_pretrained(gen_ckpt)
    resolution, channels = int(pre["generator"]["img_resolution"]), int(pre["generator"]["img_channels"])
    info = read_dataset_info(params.resolve(params.rasterize.out))
    if int(info["channels"]) != channels:
        raise DataError(gen_ckpt, f"decoder makes {channels}-channel images, the dataset has {info['channels']}")
    classes = info["classes"]
    if not classes:
        raise DataError(params.resolve(params.rasterize.out) / "dataset.json", "no defect classes to synthesize")
    train, test = build_datasets(params, resolution, channels, classes)
    settings = settings_for(cfg, ablation)
    if ablation is None:
        out, metrics_path, plots = cfg.out, cfg.metrics, cfg.plots
    else:
        out = str(Path(cfg.ablation_out) / ablation)
        metrics_path = str(Path(cfg.ablation_metrics) / f"{ablation}.json")
        plots = out
    data = {"mode": cfg.data_mode, "patch_size": cfg.patch_size if cfg.data_mode == "patch" else None}
    log.info(
        "train_synth%s: %d px, %s mode, %d training / %d %s images, %d steps of %d",
        f" [{ablation}]" if ablation else "",
        resolution,
        cfg.data_mode,
        len(train),
        len(test),
        cfg.eval_split,
        settings.steps,
        settings.batch_size,
    )
    resume = params.resolve(resume_dir(ablation))
    summary = train_synth(
        settings,
        train,
        params.resolve(out),
        generator_checkpoint=gen_ckpt,
        discriminator_checkpoint=disc_ckpt,
        classes=classes,
        eval_dataset=test,
        data=data,
        log_dir=params.resolve(plots),
        resume_path=resume / "last.pt",
        data_digest=data_digest(params),
    )
    if not is_writer():
        return summary
    metrics = {k: v for k, v in summary.items() if k.startswith("recon_")}
    metrics.update(
        perceptual=summary["perceptual"],
        ablation=ablation or "none",
        data_mode=cfg.data_mode,
        steps=summary["steps"],
        train_seconds=round(summary["train_seconds"], 2),
        images_per_s=round(summary["images_per_s"], 3),
        train_images=len(train),
    )
    atomic_write_json(params.resolve(metrics_path), metrics)
    finish_resume(resume)
    name = summary["perceptual"]
    log.info(
        "reconstruction %s: normal %.4f, defect %.4f (defect, empty map %.4f); %.0f s training",
        name,
        metrics.get(f"recon_{name}_normal", float("nan")),
        metrics.get(f"recon_{name}_defect", float("nan")),
        metrics.get(f"recon_{name}_defect_nomap", float("nan")),
        summary["train_seconds"],
    )
    return metrics


def outputs(params: Params, ablation: str | None) -> list[str | Path]:
    c = params.train_synth
    if ablation:
        return [Path(c.ablation_out, ablation), Path(c.ablation_metrics, f"{ablation}.json"), resume_dir(ablation)]
    return [c.out, c.metrics, c.plots, resume_dir(None)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--ablation", choices=SYNTH_ABLATIONS, help="train this Table 5 variant instead")
    known, rest = ap.parse_known_args(argv)
    return stage_main(
        "train_synth", lambda p: run(p, known.ablation), rest, __doc__, outputs=lambda p: outputs(p, known.ablation)
    )


if __name__ == "__main__":
    raise SystemExit(main())
