"""One default per setting (issue 33.3): the settings dataclasses hold it; params.yaml differs from it only with a
comment on that line naming the default; the network constructors have none for what the settings give."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from pipeline.tools.defaults import differing, main
from syndgan.training.settings import PretrainSettings, SynthSettings

ROOT = Path(__file__).resolve().parent.parent


def test_every_params_value_that_differs_from_its_default_says_so():
    bad = [
        f"params.yaml:{d.line}: {d.key}: {d.value!r}, default {d.expected}: '{d.comment}'"
        for d in differing(ROOT / "params.yaml")
        if not d.documented
    ]
    assert not bad, "\n".join(["differ from their default without '# default <value>: why' on their line:", *bad])


def test_the_checker_lists_differing_leaves_and_reads_their_comments(tmp_path, capsys):
    f = tmp_path / "params.yaml"
    f.write_text(
        "ingest:\n"
        "  split: {train: 0.6, val: 0.2, test: 0.2}   # default {train: 0.7, val: 0.1, test: 0.2}: more val\n"
        "  seed: 0                # equal to its default: not listed, comment or not\n"
        "classify:\n"
        "  train:\n"
        "    epochs: 5            # demo-sized\n"  # says why, not which default
        "    batch_size: 16       # default 16: stale\n"
        "    resolution: 64       # default 96 (real data): documented\n"
        "    device: '#cpu'\n"  # a '#' inside a value is no comment
        "  synthetic: [{weight: 0.3}]\n"  # a list of settings compares whole
        "rasterize:\n"
        "  resolution: 64         # default 1280\n"  # names a wrong default that contains the right one (128)
        "augment:\n"
        "  placement:\n"
        "    scale: [0.5, 1.0]    # default [0.8, 1.25]: smaller defects\n",
        encoding="utf-8",
    )
    rows = {d.key: d for d in differing(f)}
    assert set(rows) == {
        "ingest.split.train", "ingest.split.val", "classify.train.epochs", "classify.train.batch_size",
        "classify.train.resolution", "classify.train.device", "classify.synthetic", "rasterize.resolution",
        "augment.placement.scale",
    }  # fmt: skip
    documented = {k for k, d in rows.items() if d.documented}
    want = {"ingest.split.train", "ingest.split.val", "classify.train.resolution", "augment.placement.scale"}
    assert documented == want
    assert rows["classify.train.epochs"].line == 6 and rows["classify.train.epochs"].expected == "10"
    assert rows["classify.train.device"].comment == ""
    assert rows["classify.synthetic"].expected == "[{pretrain: null, share: null, weight: 1.0}]"
    assert main([str(f)]) == 1
    assert "classify.train.epochs: 5.0 (default 10) UNDOCUMENTED" in capsys.readouterr().out


def _settings_kwargs():
    """(constructor, the settings' values of its parameters): what the settings build each network with."""
    from syndgan.models.diffaug import DiffAugment, diff_augment
    from syndgan.models.discriminator import ProjectedDiscriminator, RandomProjection, ScaleDiscriminator
    from syndgan.models.fastgan import FastGANGenerator, FastGANSynthesis
    from syndgan.models.generators import create_generator
    from syndgan.models.sft import SFTLayer
    from syndgan.models.stylegan2 import StyleGAN2Generator, StyleGAN2Synthesis
    from syndgan.models.synthesis_network import SynthesisEncoder, SynthesisNetwork
    from syndgan.training.pretrain import discriminator_spec

    pre, synth = PretrainSettings(), SynthSettings()
    gen, disc, net = pre.generator_kwargs(), discriminator_spec(pre), synth.network_kwargs()
    disc.pop("proj_seed")  # derived from the seed, not a setting of its own
    return [  # fmt: skip
        (create_generator, gen),
        (StyleGAN2Generator, gen),
        (FastGANGenerator, gen),
        (StyleGAN2Synthesis, gen),
        (FastGANSynthesis, gen),
        (ProjectedDiscriminator, disc),
        (ScaleDiscriminator, disc),
        (RandomProjection, {"cout": pre.d_proj_channels}),
        (DiffAugment, {"policy": pre.diffaug}),
        (diff_augment, {"policy": pre.diffaug}),
        (SynthesisNetwork, net),
        (SynthesisEncoder, net),
        (SFTLayer, {"hidden": synth.sft_hidden}),
    ]


CONSTRUCTORS = _settings_kwargs()


@pytest.mark.parametrize("make, values", CONSTRUCTORS, ids=[make.__qualname__ for make, _ in CONSTRUCTORS])
def test_network_constructors_have_no_defaults_of_their_own_for_settings(make, values):
    """The settings' kwargs (which checkpoints store) build every network; a constructor default would be a second
    default (4096 against the settings' 2048 once). None from the settings: the models import no training code."""
    params = inspect.signature(make).parameters
    assert set(values) & set(params), make.__qualname__
    defaults = {n: p.default for n, p in params.items() if n in values and p.default is not inspect.Parameter.empty}
    assert not defaults, f"{make.__qualname__}: defaults for what the settings give: {defaults}"
