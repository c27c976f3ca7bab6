"""The ``syndgan`` command.

    syndgan synthesize --checkpoint models/train_synth/synthesizer.pt --image normal.png --mask mask.png --out defect.png
    syndgan synthesize --help      # the mask encoding, with an example
    syndgan info [--checkpoint models/train_synth/synthesizer.pt]
    syndgan studio [--checkpoint models/train_synth/synthesizer.pt] [--port 8765] [--host 127.0.0.1]

``--mask`` is a label map (grayscale PNG: 0 background, k = class id) or a class-coloured map (RGB: the class
colours of the checkpoint, black background), the same size as the image. Errors are one line, exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from syndgan.errors import DataError, ImageError, SyndganError

DEFAULT_CHECKPOINT = "models/train_synth/synthesizer.pt"
# Outside data/raw (ingest's DVC dependency): a save changes nothing in the pipeline until the user moves the
# files there and adds {format: labelme, root: data/raw/studio, synthetic: true} to ingest.sources.
STUDIO_OUT = "data/studio"
STUDIO_PORT = 8765
OUT_SUFFIXES = (".png", ".jpg", ".jpeg")

MASK_HELP = """\
mask encoding (--mask), a PNG the size of --image:
  label map      grayscale (mode L): 0 = background, k = the class with id k
  colour map     RGB: each class in its colour, black (0,0,0) = background
  `syndgan info` lists a checkpoint's classes: "1=bump (255, 64, 64), 2=chipping (64, 200, 64)".

example: a chipping defect in the square x 10..29, y 40..59 of a 128x128 image
  python -c "from PIL import Image, ImageDraw; m = Image.new('L', (128, 128)); \\
    ImageDraw.Draw(m).rectangle([10, 40, 29, 59], fill=2); m.save('mask.png')"
  syndgan synthesize --image normal.png --mask mask.png --out defect.png
"""


def _open_image(path: Path, what: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            img = im.copy()
    except FileNotFoundError:
        raise ImageError(path, f"{what} not found") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ImageError(path, f"cannot read {what}: {e}") from None
    return img


def _image_mode(img):
    """Images become "L" or "RGB" (what the synthesizer takes); 16-bit and float gray become 8-bit gray."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "I", "I;16", "F", "LA"):
        return img.convert("L")
    return img.convert("RGB")


def _mask_mode(img):
    if img.mode in ("L", "RGB", "1"):
        return img
    if img.mode in ("P", "RGBA"):
        return img.convert("RGB")
    if img.mode == "LA":
        return img.convert("L")
    return img


def _require_checkpoint(given: Path | None) -> Path:
    """The checkpoint to load: ``--checkpoint``, else the pipeline's. A clone has no models until the pipeline
    ran: for the default say how to make one; for a given path, that it is not there (a typo, not a build)."""
    if given is not None:
        if not given.is_file():
            problem = "a folder, not a checkpoint file" if given.is_dir() else "no such file"
            raise DataError(given, f"{problem} (given as --checkpoint)")
        return given
    path = Path(DEFAULT_CHECKPOINT)
    if not path.is_file():
        raise DataError(
            path,
            "checkpoint not found: build it with `make repro` (or `dvc repro train_synth`), "
            "fetch it with `dvc pull train_synth` from the team's DVC remote, or pass --checkpoint",
        )
    return path


def cmd_synthesize(args: argparse.Namespace) -> None:
    from syndgan.io import atomic_save_image
    from syndgan.synthesis import SynthesisInputError, Synthesizer

    if args.out.suffix.lower() not in OUT_SUFFIXES:
        raise DataError(
            args.out, f"output must end in {', '.join(OUT_SUFFIXES)}, got {args.out.suffix or 'no suffix'!r}"
        )
    args.checkpoint = _require_checkpoint(args.checkpoint)
    synth = Synthesizer.from_checkpoint(args.checkpoint, device=args.device)
    image = _image_mode(_open_image(args.image, "image"))
    mask = _mask_mode(_open_image(args.mask, "mask"))
    try:
        out = synth.synthesize(image, mask, blend=not args.no_blend)
    except SynthesisInputError as e:
        raise SynthesisInputError(f"{args.image} + {args.mask}: {e}") from None
    atomic_save_image(args.out, out)
    logging.getLogger("syndgan.cli").info("wrote %s (%dx%d, %s)", args.out, out.width, out.height, out.mode)


def cmd_info(args: argparse.Namespace) -> None:
    from syndgan.models.snapshots import check_synthesizer, load_checkpoint

    args.checkpoint = _require_checkpoint(args.checkpoint)
    state = check_synthesizer(load_checkpoint(args.checkpoint), args.checkpoint)
    gen = state["generator"]
    print(f"checkpoint: {args.checkpoint}")
    print(f"decoder: {gen['name']} {gen['img_resolution']} px, {gen['img_channels']} channel(s)")
    data = state["data"]
    print(f"data mode: {data['mode']}" + (f", patch {data['patch_size']} px" if data.get("patch_size") else ""))
    print(
        "classes (mask label = id): "
        + ", ".join(f"{c['id']}={c['name']} {tuple(c['color'])}" for c in state["classes"])
    )
    summary = state.get("summary") or {}
    recon = {k: v for k, v in summary.items() if k.startswith("recon_") and isinstance(v, float)}
    for k, v in sorted(recon.items()):
        print(f"{k}: {v:.4f}")


def cmd_studio(args: argparse.Namespace) -> None:
    from pipeline.config import load_user_params
    from pipeline.tools.studio import build_studio, serve

    args.checkpoint = _require_checkpoint(args.checkpoint)
    studio = build_studio(
        load_user_params(args.params),
        args.checkpoint,
        out=args.out,
        scorer=args.scorer,
        no_scorer=args.no_scorer,
        device=args.device,
    )
    studio.synthesizer(None)  # a missing or mismatched checkpoint fails here, before the page is served
    serve(studio, args.host, args.port)


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], None]]] = {}
EPILOGS = {"synthesize": MASK_HELP}


def _synthesize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--image", type=Path, required=True, help="normal image (any size)")
    p.add_argument("--mask", type=Path, required=True, help="label map or class-coloured map, same size (below)")
    p.add_argument("--out", type=Path, required=True, help="output image: .png, .jpg or .jpeg (format by suffix)")
    p.add_argument("--no-blend", action="store_true", help="keep the raw network output in the whole window")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: CUDA when present)")


def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help=f"default: {DEFAULT_CHECKPOINT}")


def _studio_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=None, help=f"default: {DEFAULT_CHECKPOINT}")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=STUDIO_PORT, help=f"default: {STUDIO_PORT}")
    p.add_argument(
        "--params", type=Path, default=Path("params.yaml"), help="an overlay of params.yaml, as for every stage"
    )
    p.add_argument(
        "--out", default=STUDIO_OUT, help=f"saved results, a LabelMe source for ingest (default: {STUDIO_OUT})"
    )
    p.add_argument("--scorer", default=None, help="classify model.pt scoring results (default: the real-data one)")
    p.add_argument("--no-scorer", action="store_true", help="show no quality score")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1...")


COMMANDS["synthesize"] = ("paint defects into a normal image from a mask", _synthesize_args, cmd_synthesize)
COMMANDS["info"] = ("show a synthesizer checkpoint's classes, mode and metrics", _info_args, cmd_info)
COMMANDS["studio"] = (
    "defect studio: paint defects in the browser, save them as training data",
    _studio_args,
    cmd_studio,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syndgan", description="SyNDGAN defect synthesis")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(
            sub.add_parser(
                name,
                help=help_text,
                description=help_text,
                epilog=EPILOGS.get(name),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        COMMANDS[args.command][2](args)
    except SyndganError as e:
        print(f"syndgan {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
