"""``Synthesizer`` API: types and sizes round-trip, blending keeps everything outside the feathered mask
exactly, label and colour masks agree, patch mode on large images, one-line errors."""

import numpy as np
import pytest
import torch
from PIL import Image
from synth_helpers import CLASSES, one_thread, write_synthesizer  # noqa: F401 (fixture)

from syndgan.data.processed import downsample_labels
from syndgan.errors import DataError
from syndgan.synthesis import (
    SynthesisInputError,
    Synthesizer,
    defect_windows,
    feather_alpha,
    mask_to_labelmap,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_synthesizer(tmp_path_factory.mktemp("synth") / "synthesizer.pt")


@pytest.fixture(scope="module")
def synth(ckpt):
    return Synthesizer.from_checkpoint(ckpt, device="cpu")


def _image(h, w, c=3, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)
    return arr[:, :, 0] if c == 1 else arr


def _labels(h, w):
    lm = np.zeros((h, w), np.uint8)
    lm[10:16, 12:20] = 1
    lm[30:33, 40:44] = 2
    return lm


def _outside_band(synth, lm, scale):
    return feather_alpha(lm, *synth.blend_margins(scale)) == 0


def test_pil_and_array_round_trip_with_exact_outside(synth):
    h, w = 48, 60  # not square, not the network size
    arr = _image(h, w)
    lm = _labels(h, w)
    out = synth.synthesize(arr, lm)
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == np.uint8
    keep = _outside_band(synth, lm, max(h, w) / synth.resolution)
    assert keep.sum() > 0.5 * h * w
    assert np.array_equal(out[keep], arr[keep])  # blending on: exactly the input outside the band
    assert (out[lm > 0] != arr[lm > 0]).any()  # and the defect region was painted
    pil = synth.synthesize(Image.fromarray(arr), Image.fromarray(lm))
    assert isinstance(pil, Image.Image) and pil.mode == "RGB" and pil.size == (w, h)
    assert np.array_equal(np.asarray(pil), out)  # deterministic, same result for PIL and arrays
    raw = synth.synthesize(arr, lm, blend=False)
    assert (raw[keep] != arr[keep]).any()  # without blending the whole image is the network's


def test_colour_map_equals_label_map(synth):
    arr = _image(40, 40)
    lm = _labels(40, 40)
    palette = np.zeros((3, 3), np.uint8)
    for c in CLASSES:
        palette[c["id"]] = c["color"]
    colour = palette[lm]
    assert np.array_equal(mask_to_labelmap(colour, CLASSES, (40, 40)), lm)
    assert np.array_equal(synth.synthesize(arr, colour), synth.synthesize(arr, lm))
    assert np.array_equal(synth.synthesize(arr, np.zeros_like(lm)), arr)  # empty mask: unchanged


def test_gray_input_to_rgb_model_keeps_type(synth):
    arr = _image(36, 36, c=1)
    lm = _labels(36, 36)
    out = synth.synthesize(Image.fromarray(arr, "L"), lm)
    assert out.mode == "L" and out.size == (36, 36)
    keep = _outside_band(synth, lm, 36 / synth.resolution)
    assert np.array_equal(np.asarray(out)[keep], arr[keep])


def test_patch_mode_large_image(ckpt):
    synth = Synthesizer.from_checkpoint(ckpt, device="cpu", dilate=1, feather=3)
    synth.mode, synth.patch_size = "patch", 32
    h, w = 150, 220
    arr = _image(h, w, seed=1)
    lm = np.zeros((h, w), np.uint8)
    lm[5:9, 3:8] = 1  # near the border
    lm[100:104, 150:190] = 2  # wider than a patch: a larger window
    lm[110:112, 160:162] = 1  # inside that window
    wins = defect_windows(lm, 32, 2)
    assert len(wins) == 2 and wins[1][0].size >= 44
    out = synth.synthesize(arr, lm)
    keep = feather_alpha(lm, 1, 3) == 0
    assert np.array_equal(out[keep], arr[keep])
    assert (out[lm > 0] != arr[lm > 0]).any()


def test_tiny_defects_survive_downsampling():
    lm = np.zeros((200, 200), np.uint8)
    lm[50, 50] = 2
    small = downsample_labels(lm, 32)
    assert small.shape == (32, 32) and (small == 2).sum() == 1


@pytest.mark.parametrize(
    "image, mask, match",
    [
        (np.zeros((20, 20, 3), np.uint8), np.zeros((20, 21), np.uint8), "mask is 21x20 but the image is 20x20"),
        (np.zeros((20, 20, 3), np.uint8), np.full((20, 20), 3, np.uint8), "label value 3 .* class ids 1..2"),
        (np.zeros((20, 20, 3), np.uint8), np.full((20, 20, 3), 7, np.uint8) + np.array([0, 1, 2], np.uint8), "colour"),
        (np.zeros((20, 20, 3), np.float32), np.zeros((20, 20), np.uint8), "uint8"),
        (np.zeros((20, 20, 3), np.uint8), np.ones((20, 20), bool), "binary mask"),
        (Image.new("RGBA", (20, 20)), np.zeros((20, 20), np.uint8), "mode 'RGBA'"),
        ("not an image", np.zeros((20, 20), np.uint8), "PIL image or a uint8"),
    ],
)
def test_bad_inputs_are_one_line_errors(synth, image, mask, match):
    with pytest.raises(SynthesisInputError, match=match) as e:
        synth.synthesize(image, mask)
    assert "\n" not in str(e.value)


def test_bad_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(DataError, match="not a SyNDGAN synthesizer"):
        Synthesizer.from_checkpoint(bad)
    with pytest.raises(DataError, match="not found"):
        Synthesizer.from_checkpoint(tmp_path / "missing.pt")


def test_inference_imports_no_training_code(ckpt, tmp_path):
    """Loading and running a synthesizer (and the studio's discriminator scorer) pulls in no trainer module."""
    import subprocess
    import sys
    from pathlib import Path

    from synth_helpers import write_pretrained

    _, disc = write_pretrained(tmp_path / "pretrain")
    code = (
        "import sys, numpy as np\n"
        "from syndgan.synthesis import Synthesizer\n"
        "from syndgan.studio.core import DiscriminatorScorer\n"
        f"s = Synthesizer.from_checkpoint({str(ckpt)!r}, device='cpu')\n"
        "m = np.zeros((32, 32), np.uint8); m[10:16, 10:16] = 1\n"
        "s.synthesize(np.zeros((32, 32, 3), np.uint8), m)\n"
        f"DiscriminatorScorer.from_file({str(disc)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('syndgan.training')))\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(root)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
