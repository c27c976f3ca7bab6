"""``params.yaml`` parsed once into typed, validated configs.

Every section is a dataclass field of ``Params``; unknown keys and wrong types fail with the key's dotted name, e.g.
``ConfigError: params.yaml: ingest.split.train: expected float, got str 'a lot'``.
Stage name = module name = params section.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pipeline.config_augment import AugmentConfig
from pipeline.typed_yaml import convert, hints, rest_field
from syndgan.classify.paths import NO_IMAGES_KEY
from syndgan.classify.settings import ClassifierSettings, SyntheticUse, dose_key
from syndgan.data.demo import DemoSettings
from syndgan.errors import ConfigError
from syndgan.generation.settings import GenerationSettings
from syndgan.training.settings import PretrainSettings, SynthSettings

# --------------------------------------------------------------------------- sections


@dataclass
class DemoConfig(DemoSettings):
    """Synthetic insert-like inspection dataset (paper Fig. 3 in spirit): the library's settings
    (syndgan/data/demo.py) plus the output folder."""

    out: str = "data/raw/demo"


@dataclass
class SourceConfig:
    """One input dataset. Formats: labelme, coco, cvat, mvtec, magnetic_tile, masks."""

    format: Literal["labelme", "coco", "cvat", "mvtec", "magnetic_tile", "masks"]
    root: str  # dataset root; relative paths are relative to the project root
    name: str = ""  # prefix of image ids; defaults to the root folder name
    annotations: str | None = None  # coco json / cvat xml, relative to root (required for those formats)
    group_pattern: str | None = None  # regex on the image stem; group(1) (or the match) names the group
    label_map: dict[str, str] = field(default_factory=dict)  # source label -> project class (or "normal")
    images: str | None = None  # image folder apart from the annotations (labelme, coco, cvat, masks); paths as root
    masks: str | None = None  # class-id mask folder (masks); paths as root
    mask_suffix: str = ""  # mask stem = image stem + this (masks)
    mask_values: dict[int, str] = field(default_factory=dict)  # mask pixel value -> class or "normal" (masks)
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
    # The train pool, decided here once for every stage that learns from train images (recorded in dataset.json)
    k_shot: int | None = None  # keep k train images per defect class (val/test unchanged); null: all
    k_shot_seed: int = 0  # which k: the same for every stage, method and seed


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
class PretrainConfig(PretrainSettings):
    """The ``pretrain`` section: the library's settings (syndgan/training/settings.py, every training knob) plus
    the stage's data and output keys."""

    data_mode: Literal["resize", "patch"] = "resize"  # patch: native-resolution windows of the original images
    patch_size: int = 128  # window size in native pixels (patch mode); resized to `resolution`
    defect_patch_prob: float = 0.5  # patch mode: chance a window is centred on an annotated defect
    threads: int = 1  # torch CPU threads (0: torch default); 1 stays fast when other jobs share the cores
    out: str = "models/pretrain"
    metrics: str = "metrics/pretrain.json"
    plots: str = "plots/pretrain"

    def __post_init__(self):
        super().__post_init__()
        _check_stage_keys(self)


# SyNDGAN ablations (paper Table 5) runnable as `train_synth_ablation` stages; pipeline/train_synth.py maps
# each name onto settings.
SYNTH_ABLATIONS = ("no_pretrain", "no_pretrained_decoder", "no_inversion", "single_scale_d", "aux_classifier_d")


@dataclass
class TrainSynthConfig(SynthSettings):
    """The ``train_synth`` section: the library's settings (syndgan/training/settings.py) plus the stage's data,
    evaluation, ablation and output keys."""

    data_mode: Literal["resize", "patch"] = "resize"  # patch: native-resolution windows around the defects
    patch_size: int = 128  # patch mode: window size in native pixels (resized to the decoder's resolution)
    defect_patch_prob: float = 0.9  # patch mode: chance a defect image's window is centred on a defect
    threads: int = 1  # torch CPU threads (0: torch default); 1 stays fast when other jobs share the cores
    eval_split: Literal["train", "val", "test"] = "test"  # reconstruction metrics on this split
    ablations: list[Literal[SYNTH_ABLATIONS]] = field(default_factory=lambda: ["no_pretrain"])  # type: ignore[valid-type]
    out: str = "models/train_synth"
    metrics: str = "metrics/train_synth.json"
    plots: str = "plots/train_synth"
    ablation_out: str = "models/train_synth_ablations"  # <ablation_out>/<name>/
    ablation_metrics: str = "metrics/train_synth_ablations"  # <ablation_metrics>/<name>.json

    def __post_init__(self):
        super().__post_init__()
        _check_stage_keys(self)
        if len(set(self.ablations)) != len(self.ablations):
            raise ConfigError(f"ablations: names must be unique, got {self.ablations}")


@dataclass
class TrainGenerationConfig(GenerationSettings):
    """The ``train_generation`` section: the library's settings (syndgan/generation/settings.py) plus the stage's
    output keys. The generation-only baseline: the pretrained generator fine-tuned per defect class."""

    threads: int = 1  # torch CPU threads (0: torch default); 1 stays fast when other jobs share the cores
    out: str = "models/train_generation"
    plots: str = "plots/train_generation"  # <plots>/<class>.csv: each class's losses

    def __post_init__(self):
        super().__post_init__()
        if self.threads < 0:
            raise ConfigError("threads: must be >= 0")


def _check_stage_keys(c: PretrainConfig | TrainSynthConfig) -> None:
    if c.patch_size < 8:
        raise ConfigError(f"patch_size: must be >= 8, got {c.patch_size}")
    if not 0 <= c.defect_patch_prob <= 1:
        raise ConfigError("defect_patch_prob: must be in [0, 1]")
    if c.threads < 0:
        raise ConfigError("threads: must be >= 0")


TrainingSettings = PretrainSettings | SynthSettings | GenerationSettings


def library_settings(section: TrainingSettings, **changes) -> TrainingSettings:
    """The library part of a training section (its base class), without the stage's keys: what the trainer gets
    and its checkpoints store. ``changes``: values the stage resolves (resolution, ablation overrides)."""
    cls = next(c for c in type(section).__mro__ if c in (PretrainSettings, SynthSettings, GenerationSettings))
    return cls(**({f.name: getattr(section, f.name) for f in dataclasses.fields(cls)} | changes))


@dataclass
class ClassifyConfig:
    """EfficientNet defect classification, one run per (method, seed), compared against honest baselines."""

    methods: list[str] = field(default_factory=lambda: ["none", "cutmix", "copy_paste", "syndgan"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    doses: list[int | str] = field(default_factory=lambda: ["all"])  # synthetic images per class: all | N
    # how runs use their synthetic images (loss weight, share per batch, synthetic-only pretraining;
    # syndgan/classify/settings.py): every dose runs with every rule, and the dose x rule with the best val
    # macro-F1 is the method's (key 30_w0.3)
    synthetic: list[SyntheticUse] = field(default_factory=lambda: [SyntheticUse()])
    select_on: Literal["val"] = "val"  # a method's reported dose is its best val macro-F1 (test is read once)
    train: ClassifierSettings = field(default_factory=ClassifierSettings)  # one run (syndgan/classify/settings.py)
    save_model: bool = True
    out: str = "reports/classify"  # <out>/<method>-s<seed>/
    plots: str = "plots/classify"  # <plots>/<method>-s<seed>/dose-<dose>.csv (confusion plots)
    metrics: str = "metrics/classify.json"  # mean +- std over seeds per method and dose
    table: str = "metrics/classify_table"  # <table>.md and <table>.csv
    verdict: str = "metrics/classify_verdict.json"  # the winner on val, its test gap over none, beyond the noise?

    def runs_of(self, makes_images: bool) -> list[tuple[str, int | str, SyntheticUse]]:
        """(key, dose, rule) of every run a method gets: doses x rules for methods that make images; one run
        (dose 0, the default rule) for training-time methods."""
        if not makes_images:
            return [(NO_IMAGES_KEY, 0, SyntheticUse())]
        return [(dose_key(d, u), d, u) for d in self.doses for u in self.synthetic]


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
    threads: int = 1  # torch CPU threads (0: torch default); 1, as every stage: fast when other jobs share the cores
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
class HeadlineConfig:
    """The headline metrics (stage ``headline``): ``<out>/<method>.json``, the files ``dvc metrics show`` lists."""

    out: str = "metrics/headline"


@dataclass
class ScarcityConfig:
    """The scarcity benchmark (``python -m pipeline.scarcity``, ``make benchmark``): the pipeline once per k,
    classify.methods x classify.seeds x classify.doses each time, in a DVC project of its own."""

    dataset: str = "demo"  # name recorded in every result
    ks: list[int | str] = field(default_factory=lambda: [5, 10, 20, "all"])  # defect images per class kept
    report_ks: list[int | str] = field(default_factory=list)  # these ks also run evaluate + report (the full report)
    records: str = "metrics/scarcity.json"  # one record per (k, method, seed) at the dose chosen on val
    summary: str = "metrics/scarcity_summary.json"  # mean +- std per (k, method): DVC metrics
    plot: str = "plots/scarcity.csv"  # macro-F1 against k per method (DVC plots)
    figure: str = "scarcity.png"  # the same with std bands
    table: str = "scarcity.md"
    verdicts: str = "verdicts.json"  # per k: the method won on val, its gap over none, beyond the noise?


@dataclass
class Params:
    demo: DemoConfig = field(default_factory=DemoConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    rasterize: RasterizeConfig = field(default_factory=RasterizeConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    train_synth: TrainSynthConfig = field(default_factory=TrainSynthConfig)
    train_generation: TrainGenerationConfig = field(default_factory=TrainGenerationConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    classify: ClassifyConfig = field(default_factory=ClassifyConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    headline: HeadlineConfig = field(default_factory=HeadlineConfig)
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


def load_user_params(path: str | Path = "params.yaml") -> Params:
    """What ``--params FILE`` means at every entry point: an overlay of the working directory's ``params.yaml``
    (the project's, as under DVC), or the file alone where there is none."""
    base = Path("params.yaml")
    return load_params(path, base=base if base.is_file() else None)


def load_raw(path: str | Path, base: str | Path | None = None) -> dict:
    """The YAML of ``path``, merged onto ``base`` (see ``merge_params``) unless ``base`` is that same file."""
    raw = _read_yaml(Path(path))
    if base is None or Path(base).resolve() == Path(path).resolve():
        return raw
    return merge_params(_read_yaml(Path(base)), raw, path)


def merge_params(base: dict, overlay: dict, src: str | Path = "params") -> dict:
    """``overlay`` onto ``base``: sections merge key by key (``augment.<method>`` too); any other value (numbers,
    lists, free-form maps such as ``ingest.classes`` or ``label_map``) is replaced whole, so an overlay's classes
    are exactly its classes."""
    return _merge(base, overlay, Params, "", src)


def _merge(base: dict, over: dict, tp: Any, key: str, src: Any) -> dict:
    if not isinstance(over, dict):
        raise ConfigError(f"{src}: {key or 'top level'}: expected a mapping, got {type(over).__name__} {over!r}")
    fields = hints(tp)
    rest = rest_field(tp) if dataclasses.is_dataclass(tp) else None
    out = dict(base)
    for k, v in over.items():
        sub = fields.get(k) if k != rest else None
        if dataclasses.is_dataclass(sub) and isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = _merge(base[k], v, sub, f"{key}.{k}" if key else k, src)
        elif rest is not None and sub is None and isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = _merge_sections(base[k], v)  # augment.<method>: settings the registry holds, key by key
        else:
            out[k] = v  # unknown keys pass through: parse_params names them
    return out


def _merge_sections(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge_sections(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _read_yaml(path: Path) -> dict:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a params file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not a text (UTF-8) file: byte 0x{e.object[e.start]:02x} at offset {e.start}"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from None
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
    kwargs = {name: convert(raw[name], hints(Params)[name], name, path) for name in raw}
    params = Params(**kwargs, path=Path(path))
    from pipeline.config_checks import validate  # the rules across fields; per-field types are checked above

    validate(params, path)
    return params
