"""The ``syndgan`` command: synthesize round trip (in-process and the installed console script), errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth_helpers import one_thread, write_synthesizer  # noqa: F401 (fixture)

from pipeline.tools.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    ckpt = write_synthesizer(d / "synthesizer.pt")
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)
    Image.fromarray(img).save(d / "normal.png")
    mask = np.zeros((40, 50, 3), np.uint8)
    mask[10:20, 10:20] = [64, 128, 255]  # class "dust" by colour
    Image.fromarray(mask).save(d / "mask.png")
    return d, ckpt, img


def test_synthesize_round_trip(files, capsys):
    d, ckpt, img = files
    out = d / "defect.png"
    args = ["synthesize", "--checkpoint", str(ckpt), "--image", str(d / "normal.png"), "--mask", str(d / "mask.png")]
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 0
    res = np.asarray(Image.open(out))
    assert res.shape == img.shape
    assert np.array_equal(res[30:, 30:], img[30:, 30:])  # far from the mask: untouched
    assert (res[10:20, 10:20] != img[10:20, 10:20]).any()
    assert main(["info", "--checkpoint", str(ckpt)]) == 0
    assert "2=dust" in capsys.readouterr().out


def test_errors_are_one_line(files, capsys):
    d, ckpt, _ = files
    Image.new("L", (10, 10)).save(d / "small.png")
    base = ["synthesize", "--checkpoint", str(ckpt), "--out", str(d / "x.png"), "--image", str(d / "normal.png")]
    assert main([*base, "--mask", str(d / "small.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("syndgan synthesize: error:") and "mask is 10x10" in err and "\n" not in err
    assert main([*base, "--mask", str(d / "missing.png")]) == 1
    assert "missing.png: mask not found" in capsys.readouterr().err
    assert not (d / "x.png").exists()


def test_console_script(files):
    d, ckpt, _ = files
    exe = shutil.which("syndgan", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("console script not installed (pip install -e .)")
    out = d / "script.png"
    cmd = [
        exe,
        "synthesize",
        "--checkpoint",
        str(ckpt),
        "--image",
        str(d / "normal.png"),
        "--mask",
        str(d / "mask.png"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [*cmd, "--out", str(out), "--device", "cpu"], capture_output=True, text=True, timeout=120, env=env
    )
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (50, 40)


def test_refused_output_suffix_and_missing_checkpoint_say_what_to_do(files, capsys, monkeypatch, tmp_path):
    d, ckpt, _ = files
    io = ["--image", str(d / "normal.png"), "--mask", str(d / "mask.png")]
    assert main(["synthesize", "--checkpoint", str(ckpt), *io, "--out", str(d / "x.txt")]) == 1
    err = capsys.readouterr().err
    assert "x.txt: output must end in .png, .jpg, .jpeg, got '.txt'" in err and "\n" not in err.strip()
    assert not (d / "x.txt").exists()
    monkeypatch.chdir(tmp_path)  # a clone before the pipeline ran: no models/
    for cmd in (["synthesize", *io, "--out", str(d / "y.png")], ["info"], ["studio"]):
        assert main(cmd) == 1  # the default checkpoint: how to make one
        err = capsys.readouterr().err
        assert "models/train_synth/synthesizer.pt: checkpoint not found: build it with `make repro`" in err
        assert "dvc pull" in err and "\n" not in err.strip()
        assert main([*cmd, "--checkpoint", str(d / "none.pt")]) == 1  # a path given: it is not there
        err = capsys.readouterr().err
        assert "none.pt: no such file (given as --checkpoint)" in err and "make repro" not in err
        assert main([*cmd, "--checkpoint", str(d)]) == 1
        assert "a folder, not a checkpoint file (given as --checkpoint)" in capsys.readouterr().err
    assert not (d / "y.png").exists()


def test_synthesize_help_example_runs(files, tmp_path, capsys, monkeypatch):
    """The mask example in `syndgan synthesize --help` works as printed (with this test's checkpoint)."""
    _, ckpt, _ = files
    with pytest.raises(SystemExit):
        main(["synthesize", "--help"])
    text = capsys.readouterr().out
    assert "0 = background, k = the class with id k" in text
    example = text.split("example:", 1)[1].splitlines()[1:]
    make_mask = "\n".join(example[:-1]).replace("python ", f"{sys.executable} ", 1)
    subprocess.run(["bash", "-c", make_mask], cwd=tmp_path, check=True, timeout=60)
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    assert mask.shape == (128, 128) and set(np.unique(mask)) == {0, 2} and (mask == 2).sum() == 400
    Image.new("RGB", (128, 128), (90, 90, 90)).save(tmp_path / "normal.png")
    args = example[-1].split()  # the printed `syndgan synthesize ...` line
    assert args[:2] == ["syndgan", "synthesize"]
    monkeypatch.chdir(tmp_path)
    assert main([*args[1:], "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    out = np.asarray(Image.open(tmp_path / "defect.png").convert("L")).astype(int)
    assert (out[40:60, 10:30] != 90).any() and (out[100:, 100:] == 90).all()  # painted inside the mask only
