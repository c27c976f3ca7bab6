"""Generators, projected discriminator, DiffAugment, losses and the reusable training helpers (tiny, CPU)."""

from __future__ import annotations

import pytest
import torch

from syndgan.errors import DataError
from syndgan.losses import AuxClassifierLoss, HingeDLoss, HingeGLoss, LogisticDLoss, NonSaturatingGLoss
from syndgan.models.diffaug import DiffAugment, diff_augment
from syndgan.models.discriminator import ProjectedDiscriminator
from syndgan.models.generators import GENERATORS, create_generator
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_image_grid,
    seed_step,
    to_plain,
)

RES = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions: one thread is fastest, and 2 threads on 2 shared cores were ~10x slower here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_generator(name: str, channels: int = 3, res: int = RES):
    torch.manual_seed(0)
    return create_generator(
        name, z_dim=16, w_dim=16, img_resolution=res, img_channels=channels, channel_base=256, channel_max=256
    )


# a tiny projected discriminator: every size spelled out, as pretrain's discriminator_spec does (no defaults)
TINY_D = dict(
    resize=None, diffaug="color,translation,cutout", proj_channels=8, scales=(0, 1, 2, 3), channel_base=256,
    channel_max=32, n_classes=0,
)  # fmt: skip


def tiny_disc(channels: int = 3, **kw) -> ProjectedDiscriminator:
    return ProjectedDiscriminator(RES, channels, **(TINY_D | kw))


@pytest.fixture(scope="module")
def disc():
    torch.manual_seed(0)
    return tiny_disc(pretrained=True)


# --------------------------------------------------------------------------- generators


@pytest.mark.parametrize("name", sorted(GENERATORS))
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_interface_forward_backward(name, channels):
    G = tiny_generator(name, channels)
    assert (G.z_dim, G.w_dim, G.img_resolution, G.img_channels) == (16, 16, RES, channels)
    assert G.synthesis.resolutions == [4, 8, 16, 32]
    z = torch.randn(3, 16)
    ws = G.mapping(z)
    assert ws.shape == (3, G.num_ws, 16)
    img = G.synthesis(ws)
    assert img.shape == (3, channels, RES, RES) and torch.isfinite(img).all()
    img.square().mean().backward()
    grads = [p.grad for p in G.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_generator_w_plus_changes_only_with_ws():
    G = tiny_generator("stylegan2").eval()
    ws = G.mapping(torch.randn(2, 16))
    a = G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, G.synthesis(ws, noise_mode="const"))  # const noise: deterministic
    ws2 = ws.clone()
    ws2[:, -1] += 1.0  # W+: the last (toRGB) style alone changes the image
    assert not torch.allclose(a, G.synthesis(ws2, noise_mode="const"))
    assert G.num_ws == 2 * 5 - 2  # StyleGAN2's count for 32 px


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_truncation_psi_zero_gives_the_average_image(name):
    G = tiny_generator(name).eval()
    G.mapping(torch.randn(64, 16), update_emas=True)  # move w_avg off zero
    img = G(torch.randn(4, 16), truncation_psi=0.0, noise_mode="const")
    assert torch.allclose(img[0], img[1], atol=1e-5) and torch.allclose(img[0], img[3], atol=1e-5)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_skips_are_added_at_their_resolution(name):
    G = tiny_generator(name).eval()
    ws = G.mapping(torch.randn(2, 16)).detach()
    base = G.synthesis(ws, noise_mode="const")
    for res in (8, 16):
        c = G.synthesis.channels_at(res)
        skips = {res: torch.randn(2, c, res, res, requires_grad=True)}
        out = G.synthesis(ws, skips=skips, noise_mode="const")
        assert out.shape == base.shape and not torch.allclose(out, base)
        out.mean().backward()
        assert skips[res].grad is not None and skips[res].grad.abs().sum() > 0
    zero = {16: torch.zeros(2, G.synthesis.channels_at(16), 16, 16)}
    assert torch.allclose(G.synthesis(ws, skips=zero, noise_mode="const"), base)
    with pytest.raises(ValueError, match="skip at resolution 16"):
        G.synthesis(ws, skips={16: torch.zeros(2, 3, 16, 16)})
    with pytest.raises(ValueError, match="skip at resolution 12"):
        G.synthesis(ws, skips={12: torch.zeros(2, 3, 12, 12)})


def test_fastgan_output_is_bounded_and_resolution_checked():
    G = tiny_generator("fastgan", res=64)
    assert G.num_ws == 1 and len(G.synthesis.sles) == 1  # SLE 4 -> 64
    img = G(torch.randn(2, 16) * 10)
    assert img.abs().max() <= 1
    with pytest.raises(ValueError, match="power of 2"):
        create_generator(
            "stylegan2", z_dim=16, w_dim=16, img_resolution=48, img_channels=3, channel_base=256, channel_max=256
        )
    with pytest.raises(ValueError, match="unknown generator"):
        create_generator("biggan", img_resolution=32, img_channels=3)


# --------------------------------------------------------------------------- discriminator


def test_discriminator_forward_backward_and_frozen_parts(disc):
    x = torch.rand(2, 3, RES, RES, requires_grad=True) * 2 - 1
    x.retain_grad()
    logits = disc(x)
    assert logits.dim() == 2 and logits.shape[0] == 2
    HingeGLoss()(logits).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # G gets gradients through the frozen network
    assert all(p.grad is None for p in disc.feature_network.parameters())
    assert all(not p.requires_grad for p in disc.projection.parameters())
    head_grads = [p.grad for p in disc.heads.parameters()]
    assert all(g is not None for g in head_grads)
    disc.zero_grad(set_to_none=True)
    disc.train()
    assert not disc.feature_network.body.training and not disc.projection.training and disc.heads.training


def test_discriminator_grayscale_single_scale_and_aux_head():
    torch.manual_seed(0)
    full = tiny_disc(1, pretrained=True)
    single = tiny_disc(1, pretrained=True, scales=(3,), n_classes=4)
    x = torch.rand(3, 1, RES, RES) * 2 - 1
    assert full(x).shape[1] > single(x).shape[1]
    logits, cls = single(x, return_classes=True)
    assert cls.shape == (3, 4)
    loss = AuxClassifierLoss()(cls, torch.tensor([0, 1, 3]))
    loss.backward()
    assert single.heads["3"].classifier.parametrizations.weight.original.grad is not None
    assert full(x, return_classes=True)[1] is None
    with pytest.raises(ValueError, match="scales"):
        tiny_disc(1, scales=(4,))


def test_discriminator_resize_mode_upsamples_before_features():
    D = tiny_disc(pretrained=False, resize=64)
    native = tiny_disc(pretrained=False)
    x = torch.rand(2, 3, RES, RES) * 2 - 1
    feats = D.feature_network(x)
    assert feats[0].shape[-1] == 16 and native.feature_network(x)[0].shape[-1] == 8
    assert D(x, augment=False).shape[0] == 2


def test_random_projection_depends_on_its_seed_only():
    torch.manual_seed(1)
    a = tiny_disc(proj_seed=7)
    torch.manual_seed(2)
    b = tiny_disc(proj_seed=7)
    c = tiny_disc(proj_seed=8)
    pa, pb, pc = (m.projection.state_dict() for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not all(torch.equal(pa[k], pc[k]) for k in pa)


def test_discriminator_trainable_state_round_trip(disc, tmp_path):
    state = disc.trainable_state_dict()
    assert state and not any(k.startswith("feature_network.") for k in state)
    assert any(k.startswith("projection.") for k in state)
    save_checkpoint(tmp_path / "d.pt", {"D": state})
    other = tiny_disc(pretrained=True, proj_seed=5)
    other.load_trainable_state_dict(load_checkpoint(tmp_path / "d.pt")["D"])
    x = torch.rand(2, 3, RES, RES) * 2 - 1
    disc.eval(), other.eval()
    assert torch.equal(disc(x, augment=False), other(x, augment=False))
    disc.train()
    with pytest.raises(KeyError, match="missing"):
        other.load_trainable_state_dict({k: v for k, v in state.items() if "heads" not in k})


# --------------------------------------------------------------------------- DiffAugment and losses


def test_diffaugment_shapes_ranges_and_gradients():
    x = (torch.rand(4, 3, RES, RES) * 2 - 1).requires_grad_(True)
    torch.manual_seed(0)
    for policy, lo, hi in (("translation", -1, 1), ("cutout", -1, 1), ("translation,cutout", -1, 1)):
        y = diff_augment(x, policy)
        assert y.shape == x.shape and y.min() >= lo and y.max() <= hi
    y = diff_augment(x, "color,translation,cutout")
    assert y.shape == x.shape and torch.isfinite(y).all() and y.abs().max() <= 8  # colour jitter is bounded
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cut = diff_augment(torch.ones(8, 1, RES, RES), "cutout")
    holes = (cut == 0).float().mean(dim=(1, 2, 3))
    assert ((holes >= 1 / 16) & (holes <= 1 / 4)).all()  # a half-size square, possibly clipped at a corner
    torch.manual_seed(3)
    a = diff_augment(x.detach(), "color,translation,cutout")
    torch.manual_seed(3)
    assert torch.equal(a, diff_augment(x.detach(), "color,translation,cutout"))
    assert torch.equal(DiffAugment("")(x), x)
    with pytest.raises(ValueError, match="unknown DiffAugment op 'blur'"):
        DiffAugment("color,blur")


def test_grayscale_color_augment_keeps_one_channel():
    x = torch.zeros(2, 1, 8, 8)
    y = diff_augment(x, "color")
    assert y.shape == x.shape and not torch.equal(y, x)  # brightness still applies


def test_adversarial_loss_signs():
    good_real, bad_real = torch.full((4, 5), 2.0), torch.full((4, 5), -2.0)
    good_fake, bad_fake = torch.full((4, 5), -2.0), torch.full((4, 5), 2.0)
    for d_loss in (HingeDLoss(), LogisticDLoss()):
        assert d_loss(good_real, good_fake) < d_loss(bad_real, bad_fake)
    assert HingeDLoss()(good_real, good_fake) == 0  # beyond the margin: no loss
    assert HingeDLoss()(torch.zeros(3), torch.zeros(3)) == 2
    for g_loss in (HingeGLoss(), NonSaturatingGLoss()):
        assert g_loss(torch.full((3,), 2.0)) < g_loss(torch.full((3,), -2.0))  # G wants high fake logits
    assert HingeGLoss()(torch.tensor([1.0, 3.0])) == -2


# --------------------------------------------------------------------------- training helpers


def test_ema_schedule_and_update():
    model = torch.nn.Linear(2, 2)
    ema = ModelEMA(model, halflife_images=100, rampup=None)
    assert ema.beta(10**6, 100) == pytest.approx(0.5)
    ramp = ModelEMA(model, halflife_images=100, rampup=0.5)
    assert ramp.beta(20, 10) == pytest.approx(0.5)  # half-life capped at 0.5 * 20 images = 10
    with torch.no_grad():
        target = model.weight.clone() + 2.0
        model.weight.add_(2.0)
    before = ema.module.weight.clone()
    ema.update(model, images_seen=10**6, batch_size=100)
    assert torch.allclose(ema.module.weight, (before + target) / 2)
    assert not ema.module.weight.requires_grad


def test_checkpoint_round_trip_and_rng(tmp_path):
    torch.manual_seed(123)
    rng = capture_rng_state()
    expected = torch.rand(3)
    state = {"step": 7, "rng": rng, "cfg": to_plain({"betas": (0.9, 0.99), "path": tmp_path}), "w": torch.ones(2)}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")  # weights_only=True inside
    assert back["step"] == 7 and back["cfg"] == {"betas": [0.9, 0.99], "path": str(tmp_path)}
    restore_rng_state(back["rng"])
    assert torch.equal(torch.rand(3), expected)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt: unreadable checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    assert not list(tmp_path.glob(".c.pt.*"))  # atomic write left no temp file
    assert seed_step(0, 5) == seed_step(0, 5) != seed_step(0, 6)


def test_image_grid_and_csv_log(tmp_path):
    from PIL import Image

    save_image_grid(torch.rand(5, 1, 8, 8) * 2 - 1, tmp_path / "g.png", nrow=3)
    with Image.open(tmp_path / "g.png") as im:
        assert im.mode == "L" and im.size == (3 * 10 + 2, 2 * 10 + 2)
    save_image_grid(torch.full((2, 3, 8, 8), 5.0), tmp_path / "c.png")  # out of range: clamped
    with Image.open(tmp_path / "c.png") as im:
        assert im.mode == "RGB" and im.getpixel((3, 3)) == (255, 255, 255)
    log = CsvLog(tmp_path / "l.csv", ["step", "loss"])
    log.append({"step": 1, "loss": 0.5})
    again = CsvLog(tmp_path / "l.csv", ["step", "loss"], rows=log.rows)
    again.append({"step": 2, "loss": float("nan")})
    again.publish()
    assert (tmp_path / "l.csv").read_text() == "step,loss\n1,0.5\n2,\n"


def test_csv_log_replaces_the_previous_table_only_when_published(tmp_path):
    """A run killed at any point leaves the previous table byte for byte; a resumed one logs each step once."""
    from syndgan.io import remove_stale_temps

    path, live = tmp_path / "plots" / "losses.csv", tmp_path / "plots" / ".losses.csv.partial"
    path.parent.mkdir()
    previous = b"step,loss\n1,9\n2,9\n3,9\n"
    path.write_bytes(previous)
    log = CsvLog(path, ["step", "loss"])
    assert path.read_bytes() == previous and live.read_text() == "step,loss\n"
    for step in (1, 2, 3):
        log.append({"step": step, "loss": step / 10})
        assert path.read_bytes() == previous  # a kill here keeps the previous curve
    assert live.read_text() == "step,loss\n1,0.1\n2,0.2\n3,0.3\n"  # the run in progress, readable live
    checkpointed = [dict(r) for r in log.rows[:2]]  # killed after logging step 3, checkpointed at step 2
    with live.open("a") as f:
        f.write("4,0.")  # and mid-row
    resumed = CsvLog(path, ["step", "loss"], rows=checkpointed)
    assert live.read_text() == "step,loss\n1,0.1\n2,0.2\n"  # what the checkpoint does not hold is dropped
    for step in (3, 4):
        resumed.append({"step": step, "loss": step / 10})
    assert path.read_bytes() == previous
    resumed.publish()
    assert path.read_text() == "step,loss\n1,0.1\n2,0.2\n3,0.3\n4,0.4\n" and not live.exists()

    CsvLog(path, ["step", "loss"]).append({"step": 1, "loss": 1.0})  # killed again: its live file is stale
    assert remove_stale_temps([tmp_path / "plots"]) == [live] and path.read_text().endswith("4,0.4\n")
    quiet = CsvLog(tmp_path / "rank1" / "l.csv", ["step"], write=False)  # ranks > 0: rows only, no file
    quiet.append({"step": 1})
    quiet.publish()
    assert quiet.rows == [{"step": "1"}] and not (tmp_path / "rank1").exists()
