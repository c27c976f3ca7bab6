"""SFT layer and the synthesis network (encoder + decoder): behaviour and shapes at 32 px."""

import pytest
import torch
from synth_helpers import CLASSES, GEN_KW, one_thread  # noqa: F401 (fixture)

from syndgan.models.generators import create_generator
from syndgan.models.sft import SFTLayer
from syndgan.models.synthesis_network import SynthesisNetwork, dilate
from syndgan.training.settings import SynthSettings

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_network(G, **settings) -> SynthesisNetwork:
    """Built as train_synth builds it: from the settings' kwargs (the constructor has no defaults)."""
    s = SynthSettings(**({"n_blocks": 3, "enc_channel_base": 64} | settings))
    return SynthesisNetwork(G, 2, [c["color"] for c in CLASSES], **s.network_kwargs())


def test_sft_zero_map_is_a_per_channel_affine():
    torch.manual_seed(0)
    sft = SFTLayer(channels=5, seg_channels=3, hidden=4)
    x = torch.randn(2, 5, 16, 16)
    gamma, beta = sft.modulation(torch.zeros(2, 3, 16, 16), (16, 16))
    assert gamma.shape == beta.shape == (2, 5, 16, 16)
    # Empty map: the same gamma/beta at every pixel (borders included), gamma in (0, 1) from the sigmoid.
    assert torch.allclose(gamma, gamma[:, :, :1, :1].expand_as(gamma))
    assert torch.allclose(beta, beta[:, :, :1, :1].expand_as(beta))
    assert bool(((gamma > 0) & (gamma < 1)).all())
    out = sft(x, torch.zeros(2, 3, 16, 16))
    assert torch.allclose(out, x * gamma + beta)


def test_sft_modulation_comes_from_the_map_locally():
    torch.manual_seed(0)
    sft = SFTLayer(channels=4, seg_channels=2, hidden=4)
    seg = torch.zeros(1, 2, 16, 16)
    g0, b0 = sft.modulation(seg, (16, 16))
    seg[:, 1, 2:4, 2:4] = 1.0
    g1, b1 = sft.modulation(seg, (16, 16))
    near = (slice(None), slice(None), slice(0, 6), slice(0, 6))
    far = (slice(None), slice(None), slice(8, 16), slice(8, 16))
    assert (g1 - g0)[near].abs().max() > 1e-4 and (b1 - b0)[near].abs().max() > 1e-4
    assert torch.equal(g1[far], g0[far]) and torch.equal(b1[far], b0[far])  # two 3x3 convs: 2 px reach
    # A map at a higher resolution is area-averaged down to the feature size.
    g2, _ = sft.modulation(torch.zeros(1, 2, 32, 32), (16, 16))
    assert torch.allclose(g2, g0)


@pytest.mark.parametrize("generator", ["fastgan", "stylegan2"])
@pytest.mark.parametrize("latent", ["w", "w+"])
def test_u_network_shapes(generator, latent):
    torch.manual_seed(0)
    G = create_generator(generator, **GEN_KW)
    network = tiny_network(G, latent=latent, n_blocks=7, enc_channel_base=128, enc_channel_max=16)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    lm = torch.zeros(2, 32, 32, dtype=torch.long)
    lm[0, 5:9, 5:9] = 2
    out, ws = network(x, lm, return_ws=True)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()
    assert ws.shape == (2, G.num_ws, G.w_dim)
    if latent == "w" and G.num_ws > 1:
        assert torch.equal(ws[:, 0], ws[:, -1])
    assert len(network.encoder.blocks) == 7 and network.encoder.out_res == 4  # conv + 7 residual blocks down to 4x4
    _, skips = network.encode(x, lm)
    assert sorted(skips) == [8, 16, 32]
    for r, t in skips.items():
        assert t.shape == (2, G.synthesis.channels_at(r), r, r)
    # Skip convs start at zero: the decoder initially renders exactly G.synthesis(ws).
    assert torch.allclose(out, G.synthesis(ws, noise_mode="const"), atol=1e-6)


def test_conditioning_encodings_and_erasing():
    G = create_generator("fastgan", **GEN_KW)
    lm = torch.zeros(1, 32, 32, dtype=torch.long)
    lm[0, 10, 10] = 1
    lm[0, 20, 20] = 2
    for enc, ch in (("onehot", 2), ("color", 3), ("both", 5)):
        network = tiny_network(G, seg_encoding=enc)
        seg = network.condition(lm)
        assert seg.shape == (1, ch, 32, 32)
        assert network.condition(torch.zeros_like(lm)).abs().sum() == 0  # empty map: all zeros
        if enc != "color":
            assert seg[0, 0, 10, 10] == 1 and seg[0, 1, 20, 20] == 1 and seg[0, 0, 20, 20] == 0
        if enc != "onehot":
            assert torch.allclose(seg[0, -3:, 10, 10], torch.tensor([1.0, 64 / 255, 64 / 255]))
    network = tiny_network(G, erase_dilate=1)
    x = torch.ones(1, 3, 32, 32)
    erased = network.erase(x, lm)
    assert erased[0, :, 9:12, 9:12].abs().sum() == 0 and erased[0, :, 12, 12].eq(1).all()
    assert dilate(torch.zeros(1, 1, 4, 4), 2).sum() == 0


def test_u_network_rejects_mismatched_maps():
    G = create_generator("fastgan", **GEN_KW)
    network = tiny_network(G)
    with pytest.raises(ValueError, match="labelmap"):
        network(torch.zeros(1, 3, 32, 32), torch.zeros(1, 16, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="palette"):
        SynthesisNetwork(G, 3, [c["color"] for c in CLASSES], **SynthSettings().network_kwargs())
