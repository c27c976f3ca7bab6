"""Stage `train_generation`: the generation-only baseline (paper Tables 1 and 4, Projected FastGAN / ADA rows).

Fine-tunes one copy of the pretrained generator ``<pretrain.out>/generator.pt`` and its projected discriminator
``<pretrain.out>/discriminator.pt`` per defect class, on that class's train-pool images (``<rasterize.out>/``,
after ``rasterize.k_shot``; never val or test), resized to the generator's resolution. Writes
``<train_generation.out>/`` (``generators.pt`` for the augment method ``generation``, ``samples/<class>/``,
``summary.json``) and ``<plots>/<class>.csv``. The loss and the discriminator's feature weights are pretraining's
(``loss``, ``feature_weights``: null; another value is an error naming ``generator.pt``).

A killed run resumes each class from ``.syndgan/resume/train_generation/<class>.pt`` (in the working directory,
outside the DVC outputs, so that DVC's run cache keeps this stage); they are deleted once the outputs are written.

A class's images are those whose image label is the class (what the classifier is taught they are). The generator
learns whole images, also when pretraining used ``data_mode: patch`` windows (fine-tuning then adapts it to whole
images).
"""

from __future__ import annotations

import logging

import torch

from pipeline.common import RESUME_ROOT, finish_resume, stage_main
from pipeline.config import Params, library_settings
from syndgan.data.datasets import ProcessedImages
from syndgan.data.processed import NORMAL, ProcessedDataset, train_pool
from syndgan.errors import DataError
from syndgan.generation.finetune import read_pretrained, train_generation

log = logging.getLogger("syndgan.train_generation")

RESUME_DIR = RESUME_ROOT / "train_generation"


def run(params: Params) -> dict:
    cfg = params.train_generation
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pre_dir = params.resolve(params.pretrain.out)
    gen_ckpt, disc_ckpt = pre_dir / "generator.pt", pre_dir / "discriminator.pt"
    spec = read_pretrained(gen_ckpt)["generator"]
    resolution, channels = int(spec["img_resolution"]), int(spec["img_channels"])
    processed = params.resolve(params.rasterize.out)
    dataset = ProcessedDataset.load(processed)
    if dataset.channels != channels:
        raise DataError(gen_ckpt, f"generator makes {channels}-channel images, the dataset has {dataset.channels}")
    if not dataset.classes:
        raise DataError(processed / "dataset.json", "no defect classes to generate")
    pool = train_pool(dataset)
    datasets = {}
    for name in dataset.class_names:
        ids = pool.loc[pool["label"] == name, "id"]
        if len(ids):
            datasets[name] = ProcessedImages(processed, split="train", resolution=resolution, keep_ids=set(ids))
    log.info(
        "train_generation: %s at %d px, %d steps of %d per class, on %s train-pool images",
        spec["name"], resolution, cfg.steps, cfg.batch_size, {n: len(d) for n, d in datasets.items()},
    )  # fmt: skip
    resume = params.resolve(RESUME_DIR)
    summary = train_generation(
        library_settings(cfg),
        datasets,
        params.resolve(cfg.out),
        generator_checkpoint=gen_ckpt,
        discriminator_checkpoint=disc_ckpt,
        classes=dataset.classes,
        normal_ids=sorted(pool.loc[pool["label"] == NORMAL, "id"]),  # what pretraining learned normal images from
        log_dir=params.resolve(cfg.plots),
        resume_dir=resume,
    )
    if summary["finished"]:
        finish_resume(resume)
    return summary


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        "train_generation",
        run,
        argv,
        __doc__,
        outputs=lambda p: [p.train_generation.out, p.train_generation.plots, RESUME_DIR],
    )


if __name__ == "__main__":
    raise SystemExit(main())
