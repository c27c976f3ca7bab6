"""``params.yaml`` parsed once into typed, validated configs.

Every section is a dataclass field of ``Params``; unknown keys and wrong types fail with the key's dotted name, e.g.
``ConfigError: params.yaml: ingest.split.train: expected float, got str 'a lot'``.
Stage name = module name = params section.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from syndgan.classify.settings import ClassifierSettings
from syndgan.errors import ConfigError

# --------------------------------------------------------------------------- sections


@dataclass
class DemoConfig:
    """Synthetic insert-like inspection dataset (paper Fig. 3 in spirit): 4 illuminations per part."""

    seed: int = 0
    parts: int = 80  # each part is imaged under 4 illuminations -> 4 images
    resolution: int = 256
    defect_fraction: float = 0.18  # fraction of parts with a defect (paper: ~18 % of images)
    min_defect_px: int = 4  # smallest defect extent, in pixels at full resolution
    out: str = "data/raw/demo"


@dataclass
class SourceConfig:
    """One input dataset. Formats: labelme, coco, cvat, mvtec, magnetic_tile."""

    format: Literal["labelme", "coco", "cvat", "mvtec", "magnetic_tile"]
    root: str  # dataset root; relative paths are relative to the project root
    name: str = ""  # prefix of image ids; defaults to the root folder name
    annotations: str | None = None  # coco json / cvat xml, relative to root (required for those formats)
    group_pattern: str | None = None  # regex on the image stem; group(1) (or the match) names the group
    label_map: dict[str, str] = field(default_factory=dict)  # source label -> project class (or "normal")
    images: str | None = None  # image folder apart from the annotations (labelme, coco, cvat); paths as root
    unlabelled: Literal["normal", "ignore"] = "normal"  # images without any annotation: normal images, or left out
    split: Literal["pool", "source"] = "pool"  # source: keep the dataset's own train/test (mvtec); val from train
    synthetic: bool = False  # generated images (defect studio): always in train, never val/test


@dataclass
class SplitConfig:
    train: float = 0.7
    val: float = 0.1
    test: float = 0.2


@dataclass
class IngestConfig:
    sources: list[SourceConfig] = field(default_factory=list)  # empty: the demo dataset
    classes: dict[str, list[int]] = field(default_factory=dict)  # defect class -> RGB colour; id = order + 1
    split: SplitConfig = field(default_factory=SplitConfig)
    seed: int = 0
    on_error: Literal["fail", "skip"] = "fail"
    max_pixels: int = 40_000_000  # larger images are rejected (decompression-bomb guard)
    multi_label: Literal["largest_area", "first"] = "largest_area"  # image label when several classes
    out: str = "data/interim"


@dataclass
class RasterizeConfig:
    resolution: int = 128  # working resolution (square)
    out: str = "data/processed"
    coverage: float = 0.5  # a working pixel takes a class when that class covers this fraction of it
    channels: int = 0  # 0: auto (1 when every source image is grayscale, else 3)


@dataclass
class FlowsConfig:
    """Prefect orchestration (flows/): one server address for server, UI and clients; retrain schedule."""

    host: str = "127.0.0.1"  # the local Prefect server binds here; UI and clients use the same address
    port: int = 4200
    home: str = ".prefect"  # PREFECT_HOME: the server database stays inside the project
    retries: int = 0  # retries of a failed stage task (stages are deterministic: retry infra failures only)
    retry_delay_seconds: int = 30
    retrain_interval_minutes: int | None = 60  # scheduled retrain check; ignored when retrain_cron is set
    retrain_cron: str | None = None  # e.g. "0 2 * * *"
    retrain_from: str = "ingest"  # stage re-run, with everything downstream, when sources change
    retrain_event: str = "syndgan.sources.uploaded"  # an event of this name also starts a retrain check
    watch: list[str] = field(default_factory=list)  # folders to watch; empty: ingest.sources roots (demo.out)
    watch_suffixes: list[str] = field(
        default_factory=lambda: [".json", ".xml", ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"]
    )
    state: str = ".syndgan/watch_state.json"  # content hashes of the last successful retrain
    dvc_pull: bool = False  # `dvc repro --pull`: fetch missing cached inputs from the DVC remote (fresh workers)
    dvc_push: bool = False  # `dvc push <stage>` after each stage: its outputs land on the DVC remote


@dataclass
class PretrainConfig:
    """ProjectedGAN pretraining of the generator SyNDGAN later decodes with (paper III.B-2, III.C-1, IV.A)."""

    # Defaults: the paper's generator and optimiser (IV.A) with CPU-sized networks. For a 5-minute CPU run
    # (demo, 64 px, 1200 steps) use lr_g 2e-3, lr_d 2e-4, betas [0, 0.99]: stylegan2 has an equalized learning
    # rate (StyleGAN2's own lr is 2e-3); at lr_g 2e-4 it was still colour noise after 800 steps.
    generator: Literal["stylegan2", "fastgan"] = "stylegan2"
    z_dim: int = 128
    w_dim: int = 128
    resolution: int | None = None  # None: rasterize.resolution
    data_mode: Literal["resize", "patch"] = "resize"  # patch: native-resolution windows of the original images
    patch_size: int = 128  # window size in native pixels (patch mode); resized to `resolution`
    defect_patch_prob: float = 0.5  # patch mode: chance a window is centred on an annotated defect
    g_channel_base: int = 1024  # generator channels at resolution r: min(g_channel_max, g_channel_base // r)
    g_channel_max: int = 128
    d_resize: int | None = None  # None: feature network at native size; 224: ProjectedGAN's upsampling
    d_scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])  # [3]: single-scale discriminator
    d_channel_base: int = 2048
    d_channel_max: int = 128
    d_proj_channels: int = 32  # CCM output channels of the first scale (x2 per deeper scale)
    diffaug: str = "color,translation,cutout"
    loss: Literal["hinge", "logistic"] = "hinge"
    batch_size: int = 8
    steps: int = 1200
    lr_g: float = 2e-4  # paper IV.A
    lr_d: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # paper; ProjectedGAN uses [0, 0.99]
    ema: float = 2000.0  # G_ema half-life, in images
    checkpoint_every: int = 200  # steps
    sample_every: int = 400
    fid_every: int = 400  # 0: fid_effnet only at start and end
    fid_samples: int = 128  # G_ema samples (and real images) per fid_effnet; 0 disables it
    seed: int = 0
    threads: int = 1  # torch CPU threads (0: torch default); 1 stays fast when other jobs share the cores
    device: str = "auto"  # auto: CUDA when present (bf16 autocast), else CPU
    out: str = "models/pretrain"
    metrics: str = "metrics/pretrain.json"
    plots: str = "plots/pretrain"


# SyNDGAN ablations (paper Table 5) runnable as `train_synth_ablation` stages; pipeline/train_synth.py maps
# each name onto settings.
SYNTH_ABLATIONS = ("no_pretrain", "no_pretrained_decoder", "no_inversion", "single_scale_d", "aux_classifier_d")


@dataclass
class TrainSynthConfig:
    """SyNDGAN synthesis network (paper III.B-3, III.C-2): SFT encoder + pretrained decoder, losses of eq. 2."""

    data_mode: Literal["resize", "patch"] = "resize"  # patch: native-resolution windows around the defects
    patch_size: int = 128  # patch mode: window size in native pixels (resized to the decoder's resolution)
    defect_patch_prob: float = 0.9  # patch mode: chance a defect image's window is centred on a defect
    seg_encoding: Literal["onehot", "color", "both"] = "both"  # class map fed to the encoder and SFT layers
    latent: Literal["w", "w+"] = "w+"  # encoder output: one W code or per-layer W+ codes
    n_blocks: int = 7  # SFT residual blocks (paper: 7)
    enc_channel_base: int = 2048  # encoder channels at resolution r: min(enc_channel_max, base // r)
    enc_channel_max: int = 128
    sft_hidden: int = 16  # channels of the SFT conv branches
    skip_min_res: int = 8  # encoder features are injected into the decoder at resolutions >= this
    erase_dilate: int = 1  # px (working resolution) blanked around the mask in the input
    pretrained_decoder: bool = True  # false: random decoder (ablation "w/o Pretrained")
    pretrained_discriminator: bool = True  # false: random discriminator heads
    freeze_decoder: bool = False  # true: only the encoder (and skips) learn
    decoder_lr_mult: float = 0.2  # decoder learning rate = lr_g * this (2e-4: the paper's generator rate)
    d_scales: list[int] | None = None  # null: the pretrained discriminator's scales; [3]: single scale
    aux_classifier: bool = False  # auxiliary-classifier discriminator head (Table 5)
    aux_weight: float = 1.0
    w_l1: float = 1.0  # eq. 3
    w_adv: float = 0.05  # eq. 4
    w_perceptual: float = 1.0  # eq. 5 (LPIPS-VGG, or the EfficientNet distance without VGG weights)
    w_inversion: float = 1.0  # eq. 6 (in-domain inversion)
    perceptual: Literal["auto", "vgg", "effnet"] = "auto"  # auto: vgg when its weights are in the torch cache
    loss: Literal["hinge", "logistic"] = "hinge"
    batch_size: int = 8
    steps: int = 200
    lr_g: float = 1e-3  # encoder + skips: a few hundred CPU steps, not the paper's days (2e-4) on a GPU
    lr_d: float = 1e-4  # paper IV.A
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    defect_fraction: float = 0.5  # share of defect images in each batch
    grad_clip: float = 1.0  # max gradient norm of the network's step (0: off)
    ema: float = 500.0  # half-life of the network's EMA, in images
    checkpoint_every: int = 100
    sample_every: int = 400
    seed: int = 0
    threads: int = 1  # torch CPU threads (0: torch default); 1 stays fast when other jobs share the cores
    device: str = "auto"
    eval_split: Literal["train", "val", "test"] = "test"  # reconstruction metrics on this split
    ablations: list[Literal[SYNTH_ABLATIONS]] = field(default_factory=lambda: ["no_pretrain"])  # type: ignore[valid-type]
    out: str = "models/train_synth"
    metrics: str = "metrics/train_synth.json"
    plots: str = "plots/train_synth"
    ablation_out: str = "models/train_synth_ablations"  # <ablation_out>/<name>/
    ablation_metrics: str = "metrics/train_synth_ablations"  # <ablation_metrics>/<name>.json


@dataclass
class AugmentTargetsConfig:
    """Synthetic images added per defect class (counts of the train split, after classify.k_shot)."""

    mode: Literal["ratio", "count", "balance"] = "ratio"  # ratio x normals | count each | up to the largest class
    ratio: float = 0.5  # mode ratio: the paper adds about 0.5 x the normal count per defect class
    count: int = 30  # mode count
    per_class: dict[str, int] = field(default_factory=dict)  # absolute overrides, e.g. {dust: 100}


@dataclass
class AugmentPlacementConfig:
    """Real train masks on train normal images: random transform, kept in the image and on the object."""

    flip: bool = True
    rotate90: bool = True
    max_rotation: float = 15.0  # degrees, on top of the 90-degree turns
    scale: list[float] = field(default_factory=lambda: [0.8, 1.25])
    min_context_agreement: float = 0.9  # object/background around the placed mask must match its source
    tries: int = 200  # candidate placements per normal image
    max_defects: int = 1  # >1 composes 1..max_defects defects of the class in one image
    appearance_top_k: int = 3  # mask source drawn among the k train defects looking most like the normal
    fg_window: int = 5  # object estimate: local-texture window (px)
    fg_separability: float = 0.75  # below it (unimodal texture) the whole image is object


@dataclass
class CopyPasteConfig:
    feather: float = 1.5  # px of edge feathering
    match_intensity: bool = True  # shift pasted pixels to the target's local brightness


@dataclass
class SyndganAugmentConfig:
    checkpoint: str = "models/train_synth/synthesizer.pt"  # written by the train_synth stage
    device: str = "auto"


@dataclass
class CutmixConfig:
    alpha: float = 1.0  # box area ~ Beta(alpha, alpha)
    prob: float = 0.5  # chance a training batch is mixed


@dataclass
class AugmentConfig:
    """Class-balanced augmentation: one output folder per method, ``<out>/<method>``."""

    seed: int = 0
    targets: AugmentTargetsConfig = field(default_factory=AugmentTargetsConfig)
    placement: AugmentPlacementConfig = field(default_factory=AugmentPlacementConfig)
    copy_paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)
    syndgan: SyndganAugmentConfig = field(default_factory=SyndganAugmentConfig)
    cutmix: CutmixConfig = field(default_factory=CutmixConfig)
    threads: int = 1  # torch CPU threads for rendering networks; 0: torch default
    out: str = "data/augmented"


@dataclass
class ClassifyConfig:
    """EfficientNet defect classification, one run per (method, seed), compared against honest baselines."""

    methods: list[str] = field(default_factory=lambda: ["none", "cutmix", "copy_paste", "syndgan"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    doses: list[int | str] = field(default_factory=lambda: ["all"])  # synthetic images per class: all | N
    k_shot: int | None = None  # keep k train images per defect class (test unchanged); null: all
    k_shot_seed: int = 0  # which k: the same for every method and seed
    select_on: Literal["val"] = "val"  # a method's reported dose is its best val macro-F1 (test is read once)
    train: ClassifierSettings = field(default_factory=ClassifierSettings)  # one run (syndgan/classify/settings.py)
    save_model: bool = True
    out: str = "reports/classify"  # <out>/<method>-s<seed>/
    plots: str = "plots/classify"  # <plots>/<method>-s<seed>/dose-<dose>.csv (confusion plots)
    metrics: str = "metrics/classify.json"  # mean +- std over seeds per method and dose
    table: str = "metrics/classify_table"  # <table>.md and <table>.csv


# Registry names evaluate may compute on unpaired image sets (generic ones resolve to inception / vgg when
# their weights are cached, else effnet; the recorded name says which).
QUALITY_METRICS = (
    "fid", "kid", "ic_perceptual", "ic_lpips",
    "fid_effnet", "fid_inception", "kid_effnet", "kid_inception", "ic_perceptual_effnet", "ic_lpips_vgg",
)  # fmt: skip


@dataclass
class EvaluateConfig:
    """Synthesis quality (paper Table 1): each method's synthesized images of a class against the real TEST
    defects of that class, per class and pooled, next to the real-vs-real baseline; plus the reconstruction
    table (Tables 2 and 5) collected from train_synth."""

    methods: list[str] = field(default_factory=lambda: ["copy_paste", "syndgan"])  # <augment.out>/<method>/
    ablations: bool = True  # also the train_synth ablations (synthesized here when augment made none)
    quality_metrics: list[Literal[QUALITY_METRICS]] = field(  # type: ignore[valid-type]
        default_factory=lambda: ["fid", "kid", "ic_perceptual"]
    )
    max_images_per_class: int = 64  # synthesized images per class evaluated (first by rank): bounds the time
    ablation_images_per_class: int = 32  # images per class synthesized for an ablation model
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the smaller set
    ic_max_per_cluster: int = 200
    seed: int = 0  # KID subset draws
    batch_size: int = 16
    threads: int = 2  # torch CPU threads; 0: torch default
    device: str = "auto"
    out: str = "data/evaluate"  # images synthesized for the ablations: <out>/syndgan_<ablation>/
    metrics: str = "metrics/evaluate.json"
    table: str = "metrics/evaluate_table"  # <table>.md (Tables 1, 2/5), <table>_synthesis.csv, _reconstruction.csv


@dataclass
class ReportConfig:
    """``<out>/report.md`` and a self-contained ``<out>/report.html`` (figures in ``<out>/figures/``)."""

    title: str = "SyNDGAN defect synthesis report"
    grid_rows: int = 4  # examples per class in the image grids
    out: str = "reports"


@dataclass
class ScarcityConfig:
    """The scarcity benchmark (``python -m pipeline.scarcity``, ``make benchmark``): the pipeline once per k,
    classify.methods x classify.seeds x classify.doses each time, in a DVC project of its own."""

    dataset: str = "demo"  # name recorded in every result
    ks: list[int | str] = field(default_factory=lambda: [5, 10, 20, "all"])  # defect images per class kept
    records: str = "metrics/scarcity.json"  # one record per (k, method, seed) at the dose chosen on val
    summary: str = "metrics/scarcity_summary.json"  # mean +- std per (k, method): DVC metrics
    plot: str = "plots/scarcity.csv"  # macro-F1 against k per method (DVC plots)
    figure: str = "scarcity.png"  # the same with std bands
    table: str = "scarcity.md"


@dataclass
class Params:
    demo: DemoConfig = field(default_factory=DemoConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    rasterize: RasterizeConfig = field(default_factory=RasterizeConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train_synth: TrainSynthConfig = field(default_factory=TrainSynthConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    flows: FlowsConfig = field(default_factory=FlowsConfig)
    scarcity: ScarcityConfig = field(default_factory=ScarcityConfig)
    path: Path = Path("params.yaml")  # where these were read from

    def resolve(self, p: str | Path) -> Path:
        """Paths in params are relative to the project root (the working directory, as under DVC)."""
        p = Path(os.path.expandvars(str(p))).expanduser()
        return p if p.is_absolute() else Path.cwd() / p


# --------------------------------------------------------------------------- loading


def load_params(path: str | Path = "params.yaml", base: str | Path | None = None) -> Params:
    """Typed params from ``path``; with ``base`` (the project's params.yaml), ``path`` is an overlay of it."""
    return parse_params(load_raw(path, base), path)


def load_raw(path: str | Path, base: str | Path | None = None) -> dict:
    """The YAML of ``path``, merged onto ``base`` (see ``merge_params``) unless ``base`` is that same file."""
    raw = _read_yaml(Path(path))
    if base is None or Path(base).resolve() == Path(path).resolve():
        return raw
    return merge_params(_read_yaml(Path(base)), raw, path)


def merge_params(base: dict, overlay: dict, src: str | Path = "params") -> dict:
    """``overlay`` onto ``base``: sections merge key by key; any other value (numbers, lists, free-form maps such
    as ``ingest.classes`` or ``label_map``) is replaced whole, so an overlay's classes are exactly its classes."""
    return _merge(base, overlay, Params, "", src)


def _merge(base: dict, over: dict, tp: Any, key: str, src: Any) -> dict:
    if not isinstance(over, dict):
        raise ConfigError(f"{src}: {key or 'top level'}: expected a mapping, got {type(over).__name__} {over!r}")
    hints = _hints(tp)
    out = dict(base)
    for k, v in over.items():
        sub = hints.get(k)
        if dataclasses.is_dataclass(sub) and isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = _merge(base[k], v, sub, f"{key}.{k}" if key else k, src)
        else:
            out[k] = v  # unknown keys pass through: parse_params names them
    return out


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    return raw


def parse_params(raw: Any, path: str | Path = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    fields = {f.name for f in dataclasses.fields(Params) if f.name != "path"}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{path}: unknown section '{unknown[0]}' (known: {', '.join(sorted(fields))})")
    kwargs = {name: _convert(raw[name], _hints(Params)[name], name, path) for name in raw}
    params = Params(**kwargs, path=Path(path))
    _validate(params, path)
    return params


def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(value: Any, tp: Any, key: str, src: Any) -> Any:
    def fail(expected: str):
        raise ConfigError(f"{src}: {key}: expected {expected}, got {type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key, src)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{src}: {key}: expected {tp}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{src}: {key}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(f"a mapping (section {tp.__name__})")
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        for k in value:
            if k not in names:
                raise ConfigError(f"{src}: {key}.{k}: unknown key (known: {', '.join(sorted(names))})")
        missing = [
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in value
        ]
        if missing:
            raise ConfigError(f"{src}: {key}.{missing[0]}: required key missing")
        kwargs = {k: _convert(v, hints[k], f"{key}.{k}", src) for k, v in value.items()}
        try:
            return tp(**kwargs)
        except ConfigError as e:  # the library's settings validate themselves: "<field>: <problem>"
            raise ConfigError(f"{src}: {key}.{e}") from None
    if origin is list:
        if not isinstance(value, list):
            fail("a list")
        return [_convert(v, args[0], f"{key}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        return {
            _convert(k, args[0], f"{key} key", src): _convert(v, args[1], f"{key}.{k}", src) for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    raise ConfigError(f"{src}: {key}: unsupported type {tp}")  # a bug in this module, not in params


def _validate(p: Params, src: Any) -> None:
    def bad(key: str, msg: str):
        raise ConfigError(f"{src}: {key}: {msg}")

    _validate_pretrain(p.pretrain, bad)
    _validate_train_synth(p.train_synth, bad)
    _validate_augment(p, bad)
    _validate_classify(p.classify, bad)
    if not p.scarcity.ks:
        bad("scarcity.ks", "must list at least one k (e.g. [10, all])")
    for i, k in enumerate(p.scarcity.ks):
        if not (k == "all" or (isinstance(k, int) and k >= 1)):
            bad(f"scarcity.ks[{i}]", f"must be 'all' or a number of defect images per class >= 1, got {k!r}")
    if len({str(k) for k in p.scarcity.ks}) != len(p.scarcity.ks):
        bad("scarcity.ks", f"values must be unique, got {p.scarcity.ks}")
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
    if p.demo.parts < 4:
        bad("demo.parts", "must be >= 4")
    if not 0 <= p.demo.defect_fraction <= 1:
        bad("demo.defect_fraction", "must be in [0, 1]")


def _validate_pretrain(c: PretrainConfig, bad) -> None:
    res = c.resolution
    if res is not None and (res < 8 or res > 1024 or res & (res - 1)):
        bad("pretrain.resolution", f"must be a power of 2 in 8..1024 (or null for rasterize.resolution), got {res}")
    if c.patch_size < 8:
        bad("pretrain.patch_size", f"must be >= 8, got {c.patch_size}")
    if not 0 <= c.defect_patch_prob <= 1:
        bad("pretrain.defect_patch_prob", "must be in [0, 1]")
    if c.batch_size < 2:
        bad("pretrain.batch_size", "must be >= 2")
    if c.steps < 1:
        bad("pretrain.steps", "must be >= 1")
    for key in ("lr_g", "lr_d", "ema", "z_dim", "w_dim", "g_channel_base", "g_channel_max", "d_channel_base"):
        if getattr(c, key) <= 0:
            bad(f"pretrain.{key}", "must be > 0")
    if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
        bad("pretrain.betas", f"must be two values in [0, 1), got {c.betas}")
    if not c.d_scales or any(sc not in (0, 1, 2, 3) for sc in c.d_scales):
        bad("pretrain.d_scales", f"must be a non-empty subset of [0, 1, 2, 3], got {c.d_scales}")
    if c.d_resize is not None and c.d_resize < 32:
        bad("pretrain.d_resize", f"must be >= 32 (or null), got {c.d_resize}")
    ops = [o.strip() for o in c.diffaug.split(",") if o.strip()]
    if any(o not in ("color", "translation", "cutout") for o in ops):
        bad("pretrain.diffaug", f"comma-separated subset of color, translation, cutout; got {c.diffaug!r}")
    for key in ("checkpoint_every", "sample_every", "fid_every", "threads"):
        if getattr(c, key) < 0:
            bad(f"pretrain.{key}", "must be >= 0")
    if c.fid_samples == 1 or c.fid_samples < 0:
        bad("pretrain.fid_samples", "must be 0 (off) or >= 2")


def _validate_train_synth(c: TrainSynthConfig, bad) -> None:
    if c.patch_size < 8:
        bad("train_synth.patch_size", f"must be >= 8, got {c.patch_size}")
    for key in ("defect_patch_prob", "defect_fraction"):
        if not 0 <= getattr(c, key) <= 1:
            bad(f"train_synth.{key}", "must be in [0, 1]")
    for key in ("n_blocks", "enc_channel_base", "enc_channel_max", "sft_hidden", "steps", "lr_g", "lr_d", "ema"):
        if getattr(c, key) <= 0:
            bad(f"train_synth.{key}", "must be > 0")
    if c.batch_size < 2:
        bad("train_synth.batch_size", "must be >= 2")
    if c.skip_min_res < 4 or c.skip_min_res & (c.skip_min_res - 1):
        bad("train_synth.skip_min_res", f"must be a power of 2 >= 4, got {c.skip_min_res}")
    for key in ("w_l1", "w_adv", "w_perceptual", "w_inversion", "aux_weight", "decoder_lr_mult"):
        if getattr(c, key) < 0:
            bad(f"train_synth.{key}", "must be >= 0")
    for key in ("erase_dilate", "checkpoint_every", "sample_every", "threads", "grad_clip"):
        if getattr(c, key) < 0:
            bad(f"train_synth.{key}", "must be >= 0")
    if len(c.betas) != 2 or not all(0 <= b < 1 for b in c.betas):
        bad("train_synth.betas", f"must be two values in [0, 1), got {c.betas}")
    if c.d_scales is not None and (not c.d_scales or any(sc not in (0, 1, 2, 3) for sc in c.d_scales)):
        bad("train_synth.d_scales", f"must be null or a non-empty subset of [0, 1, 2, 3], got {c.d_scales}")
    if c.freeze_decoder and not c.pretrained_decoder:
        bad("train_synth.freeze_decoder", "a randomly initialised decoder (pretrained_decoder: false) must be trained")
    if len(set(c.ablations)) != len(c.ablations):
        bad("train_synth.ablations", f"names must be unique, got {c.ablations}")


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
    pl = c.placement
    if len(pl.scale) != 2 or not 0 < pl.scale[0] <= pl.scale[1]:
        bad("augment.placement.scale", f"must be [lo, hi] with 0 < lo <= hi, got {pl.scale}")
    if not 0 <= pl.min_context_agreement <= 1:
        bad("augment.placement.min_context_agreement", "must be in [0, 1]")
    if not 0 <= pl.max_rotation <= 180:
        bad("augment.placement.max_rotation", "must be in [0, 180] degrees")
    for key in ("tries", "max_defects"):
        if getattr(pl, key) < 1:
            bad(f"augment.placement.{key}", "must be >= 1")
    if pl.appearance_top_k < 0:
        bad("augment.placement.appearance_top_k", "must be >= 0 (0: any source)")
    if pl.fg_window < 3:
        bad("augment.placement.fg_window", "must be >= 3")
    if not 0 <= pl.fg_separability <= 1:
        bad("augment.placement.fg_separability", "must be in [0, 1]")
    if c.copy_paste.feather < 0:
        bad("augment.copy_paste.feather", "must be >= 0")
    if c.threads < 0:
        bad("augment.threads", "must be >= 0 (0: torch default)")
    if c.cutmix.alpha <= 0:
        bad("augment.cutmix.alpha", "must be > 0")
    if not 0 <= c.cutmix.prob <= 1:
        bad("augment.cutmix.prob", "must be in [0, 1]")


def _validate_classify(c: ClassifyConfig, bad) -> None:
    import re

    if not c.methods:
        bad("classify.methods", "must name at least one method (e.g. [none])")
    for key in ("methods", "seeds"):
        values = getattr(c, key)
        if len(set(values)) != len(values):
            bad(f"classify.{key}", f"values must be unique, got {values}")
    for i, m in enumerate(c.methods):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", m):
            bad(f"classify.methods[{i}]", f"expected a method name like 'copy_paste', got {m!r}")
    if not c.seeds:
        bad("classify.seeds", "must list at least one seed")
    if not c.doses:
        bad("classify.doses", "must list at least one dose (e.g. [all])")
    for i, d in enumerate(c.doses):
        if not (d == "all" or (isinstance(d, int) and d >= 1)):
            bad(f"classify.doses[{i}]", f"must be 'all' or a number of images per class >= 1, got {d!r}")
    if len({str(d) for d in c.doses}) != len(c.doses):
        bad("classify.doses", f"values must be unique, got {c.doses}")
    if c.k_shot is not None and c.k_shot < 1:
        bad("classify.k_shot", f"must be >= 1 or null (all), got {c.k_shot}")


def _validate_evaluate(c: EvaluateConfig, r: ReportConfig, bad) -> None:
    import re

    for i, m in enumerate(c.methods):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", m):
            bad(f"evaluate.methods[{i}]", f"expected a method name like 'copy_paste', got {m!r}")
    if len(set(c.methods)) != len(c.methods):
        bad("evaluate.methods", f"values must be unique, got {c.methods}")
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
        if src_cfg.images is not None and src_cfg.format not in ("labelme", "coco", "cvat"):
            bad(f"{key}.images", f"only for labelme, coco and cvat sources ({src_cfg.format} has its own layout)")
        if src_cfg.split == "source" and src_cfg.format != "mvtec":
            bad(f"{key}.split", f"'source' needs a dataset that ships its own split (mvtec), not {src_cfg.format}")
