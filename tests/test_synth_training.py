"""SyNDGAN training at 32 px: every loss term finite with gradients, deterministic CPU steps, resume, ablations."""

import math
import shutil

import pytest
import torch
from synth_helpers import CLASSES, TinyDataset, one_thread, tiny_settings, write_pretrained  # noqa: F401 (fixture)

from syndgan.errors import ConfigError, DataError
from syndgan.models.snapshots import load_checkpoint
from syndgan.training.settings import SynthSettings
from syndgan.training.synth import build_decoder, build_discriminator, build_network, read_pretrained, train_synth
from syndgan.training.synth_step import SynthLosses, collate, make_optimizers, region_l1, sample_batch, train_step

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return write_pretrained(tmp_path_factory.mktemp("pretrain"))


@pytest.fixture(scope="module")
def perceptual():
    from syndgan.metrics.perceptual import create_perceptual

    return create_perceptual("effnet")


def _build(pretrained, settings, seed=0):
    gen, last = pretrained
    pre = read_pretrained(gen)
    torch.manual_seed(seed)
    G = build_decoder(pre, settings.pretrained_decoder, settings.seed)
    network = build_network(G, CLASSES, settings)
    D = build_discriminator(last, settings, len(CLASSES) + 1)
    return network.train(), D.train()


def test_every_loss_term_is_finite_and_has_gradients(pretrained, perceptual):
    s = tiny_settings(aux_classifier=True, w_l1_region=1.0)
    network, D = _build(pretrained, s)
    losses = SynthLosses(s, perceptual)
    assert losses.perceptual_name == "perceptual_effnet"
    ds = TinyDataset()
    x, m, y = collate(ds, [1, 2, 0])
    # Skip convs start at zero; make them non-zero so every path carries gradient in one step.
    for conv in network.skips.values():
        torch.nn.init.normal_(conv.weight, std=0.1)
    _, terms = losses.generator_terms(network, D, x, m, y)
    assert set(terms) == {"l1", "l1_region", "adv", "aux", "perceptual", "inversion"}
    enc_params = [p for n, p in network.named_parameters() if n.startswith("encoder.")]
    for name, value in terms.items():
        assert value.dim() == 0 and math.isfinite(float(value.detach())), name
        grads = torch.autograd.grad(value, enc_params, retain_graph=True, allow_unused=True)
        total = sum(float(g.abs().sum()) for g in grads if g is not None)
        assert total > 0, f"{name} gives the encoder no gradient"
    loss_d, real_logits, _ = losses.discriminator_loss(D, x, network(x, m), y)
    assert math.isfinite(float(loss_d.detach()))
    head = [p for n, p in D.named_parameters() if n.startswith("heads.")]
    grads = torch.autograd.grad(loss_d, head, allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    total = losses.generator_total(terms)
    assert math.isfinite(float(total.detach()))


def test_pretrained_weights_are_loaded_and_ablations_change_them(pretrained):
    gen, last = pretrained
    s = tiny_settings()
    network, D = _build(pretrained, s)
    G_state = load_checkpoint(gen)["G_ema"]
    assert all(torch.equal(network.decoder.state_dict()[k], v) for k, v in G_state.items())
    D_state = load_checkpoint(last)["D"]
    assert all(torch.equal(D.trainable_state_dict()[k], v) for k, v in D_state.items())
    U2, D2 = _build(pretrained, tiny_settings(pretrained_decoder=False, pretrained_discriminator=False))
    assert not all(torch.equal(U2.decoder.state_dict()[k], v) for k, v in G_state.items() if v.is_floating_point())
    single = build_discriminator(last, tiny_settings(d_scales=[3]), 3)
    assert list(single.scales) == [3] and set(single.heads) == {"3"}
    assert torch.equal(
        single.heads["3"].logits.parametrizations.weight.original, D.heads["3"].logits.parametrizations.weight.original
    )
    aux = build_discriminator(last, tiny_settings(aux_classifier=True), 3)
    _, cls = aux(torch.zeros(2, 3, 32, 32), return_classes=True)
    assert cls.shape == (2, 3)


def test_cpu_step_is_deterministic(pretrained, perceptual):
    ds = TinyDataset()
    results = []
    for _ in range(2):
        s = tiny_settings()
        network, D = _build(pretrained, s)
        opt_g, opt_d = make_optimizers(network, D, s)
        losses = SynthLosses(s, perceptual)
        torch.manual_seed(123)
        x, m, y = collate(ds, sample_batch(ds.labels, 2, 0.5))
        vals = train_step(network, D, opt_g, opt_d, losses, x, m, y, torch.device("cpu"))
        results.append((vals, {k: v.clone() for k, v in network.state_dict().items()}))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(v, results[1][1][k]) for k, v in results[0][1].items())
    assert results[0][0]["l1"] > 0


def test_region_l1_averages_over_the_painted_region_only(pretrained, perceptual):
    fake, real = torch.zeros(2, 3, 8, 8), torch.zeros(2, 3, 8, 8)
    region = torch.zeros(2, 1, 8, 8)
    region[0, 0, 2:4, 2:4] = 1.0  # 4 px of image 0; image 1 has no defect
    fake[0, :, 2:4, 2:4] = 0.5  # the painted pixels are off by 0.5, everything else exact
    fake[0, :, 2:4, 2] = 0.0  # ... but half of them are exact: region mean 0.25
    assert float(region_l1(fake, real, region)) == pytest.approx(0.25)
    assert float((fake - real).abs().mean()) == pytest.approx(0.25 * 4 * 3 / (2 * 3 * 64))  # what w_l1 sees
    assert float(region_l1(fake, real, torch.zeros_like(region))) == 0.0  # no defect, no term
    # the region is the network's own (dilated) painted region; the term enters the total with its weight
    s = tiny_settings(w_l1_region=2.0)
    network, D = _build(pretrained, s)
    losses = SynthLosses(s, perceptual)
    x, m, y = collate(TinyDataset(), [1, 2, 0])
    painted = network.painted_region(m)
    assert painted.sum() > (m > 0).sum()  # erase_dilate widens the mask
    assert torch.equal(network.erase(x, m), x * (1 - painted))
    torch.manual_seed(0)
    with torch.no_grad():
        fake, terms = losses.generator_terms(network, D, x, m, y)
    assert float(terms["l1_region"]) == pytest.approx(float(region_l1(fake, x, painted)), rel=1e-6)
    assert float(terms["l1_region"]) > float(terms["l1"])  # the region is where the network is worst
    off = SynthLosses(tiny_settings(), perceptual)
    base = float(off.generator_total(terms))
    assert float(losses.generator_total(terms)) == pytest.approx(base + 2.0 * float(terms["l1_region"]), rel=1e-6)
    with pytest.raises(ConfigError, match="w_l1_region"):
        SynthSettings(w_l1_region=-1.0)


def test_batches_mix_defects_and_normals():
    torch.manual_seed(0)
    labels = [0, 0, 0, 0, 1, 2]
    batch = sample_batch(labels, 8, 0.5)
    assert len(batch) == 8 and sum(labels[i] > 0 for i in batch) == 4
    assert len(sample_batch([0, 0], 4, 0.5)) == 4


def test_resume_matches_uninterrupted_run(pretrained, perceptual, tmp_path):
    gen, last = pretrained
    ds = TinyDataset()
    kw = dict(generator_checkpoint=gen, discriminator_checkpoint=last, classes=CLASSES, perceptual=perceptual)
    full = train_synth(tiny_settings(), ds, tmp_path / "full", eval_dataset=ds, **kw)
    resume = tmp_path / "resume" / "last.pt"  # outside the outputs, as the stage keeps it
    (tmp_path / "split").mkdir()
    (tmp_path / "split" / "losses.csv").write_bytes(b"step,l1\n9,0.5\n")  # the previous run's curve
    part = train_synth(tiny_settings(), ds, tmp_path / "split", max_steps=1, resume_path=resume, **kw)
    assert part == {"step": 1, "finished": False}
    assert load_checkpoint(resume)["step"] == 1
    assert (tmp_path / "split" / "losses.csv").read_bytes() == b"step,l1\n9,0.5\n"  # a kill leaves it intact
    shutil.rmtree(tmp_path / "split")  # DVC deletes a stage's outputs before a rerun
    resumed = train_synth(tiny_settings(), ds, tmp_path / "split", eval_dataset=ds, resume_path=resume, **kw)
    assert load_checkpoint(resume)["step"] == 2
    a = load_checkpoint(tmp_path / "full" / "synthesizer.pt")["state"]
    b = load_checkpoint(tmp_path / "split" / "synthesizer.pt")["state"]
    assert all(torch.equal(v, b[k]) for k, v in a.items())
    keys = ("recon_perceptual_effnet_normal", "recon_perceptual_effnet_defect", "recon_l1_defect_nomap")
    for key in (*keys, "recon_l1_defect_region"):
        assert math.isfinite(full[key]) and full[key] == resumed[key]
    assert full["recon_images_normal"] == 2 and full["recon_images_defect"] == 4
    assert (tmp_path / "full" / "reconstructions.png").exists()
    rows = (tmp_path / "split" / "losses.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]  # each step logged once across the restart


def test_wrong_resolution_dataset_is_a_one_line_error(pretrained, tmp_path):
    gen, last = pretrained
    with pytest.raises(DataError, match="decoder needs"):
        train_synth(
            tiny_settings(),
            TinyDataset(res=16),
            tmp_path,
            generator_checkpoint=gen,
            discriminator_checkpoint=last,
            classes=CLASSES,
        )


def test_discriminator_file_is_read_strictly(pretrained, tmp_path):
    """train_synth rebuilds D from discriminator.pt's spec alone: a missing spec key or a foreign file is an error
    naming the file, never a default architecture."""
    from syndgan.models.snapshots import DISCRIMINATOR_FORMAT
    from syndgan.training.common import save_checkpoint

    _, disc = pretrained
    state = load_checkpoint(disc)
    assert state["format"] == DISCRIMINATOR_FORMAT and state["spec"]["proj_channels"] == 8
    spec = {k: v for k, v in state["spec"].items() if k != "channel_max"}
    broken = save_checkpoint(tmp_path / "discriminator.pt", {**state, "spec": spec})
    with pytest.raises(DataError, match="missing 'channel_max'"):
        build_discriminator(broken, tiny_settings(), 3)
    foreign = save_checkpoint(tmp_path / "last.pt", {"D": state["D"]})
    with pytest.raises(DataError, match="not a pretrain discriminator.pt"):
        build_discriminator(foreign, tiny_settings(), 3)
