"""Class-folder datasets with mask images: MVTec AD and Magnetic Tile.

The folder names the image's class (``ImageRecord.label``); the mask gives the region. A defect image
whose mask turns out empty (4 Magnetic Tile "Uneven" images) stays a defect image of its folder's
class, with no region rows. Images and masks must pair up one to one; each stray file is a
``PairingError`` naming it.
"""

from __future__ import annotations

from pathlib import Path

from syndgan.data.images import is_image_file
from syndgan.data.records import NORMAL, SHAPE_MASK, Annotation, ErrorHandler, ImageRecord, handle
from syndgan.errors import DataError, PairingError

MASK_THRESHOLD = 127  # both datasets: foreground > 127 (Magnetic Tile masks have soft edges)


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p) and not p.name.startswith("."))


def _mask_annotation(label: str, mask: Path) -> Annotation:
    return Annotation(label, SHAPE_MASK, mask_path=mask, mask_threshold=MASK_THRESHOLD, source_file=mask, where="mask")


# --------------------------------------------------------------------------- MVTec AD


def mvtec_categories(root: Path) -> list[Path]:
    """``root`` itself when it is one category (has train/ or test/), else its category folders."""
    if (root / "train").is_dir() or (root / "test").is_dir():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and ((p / "train").is_dir() or (p / "test").is_dir()))


def read_mvtec(root: str | Path, on_error: ErrorHandler | None = None) -> list[ImageRecord]:
    """``<cat>/train/good/*.png``, ``<cat>/test/<type>/*.png`` and ``<cat>/ground_truth/<type>/<stem>_mask.png``.

    Type ``good`` is normal; any other type is the defect class (map it with the source's label map).
    ``ImageRecord.split`` is the folder (train or test): a source with ``split: source`` keeps it.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(root, "dataset root not found (mvtec)")
    cats = mvtec_categories(root)
    if not cats:
        raise DataError(root, "no MVTec AD category found (folders with train/ or test/)")
    records: list[ImageRecord] = []
    for cat in cats:
        gt = cat / "ground_truth"
        masks = (
            {(t.name, m.name): m for t in sorted(gt.iterdir()) if t.is_dir() for m in _images(t)} if gt.is_dir() else {}
        )
        used = set()
        for split in ("train", "test"):
            split_dir = cat / split
            if not split_dir.is_dir():
                continue
            for type_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
                defect = type_dir.name != "good"
                for img in _images(type_dir):
                    key = (type_dir.name, f"{img.stem}_mask.png")
                    if not defect:
                        records.append(ImageRecord(path=img, label=NORMAL, split=split))
                    elif key in masks:
                        used.add(key)
                        ann = _mask_annotation(type_dir.name, masks[key])
                        records.append(ImageRecord(path=img, label=type_dir.name, annotations=[ann], split=split))
                    else:
                        rel = Path("ground_truth", *key)
                        handle(PairingError(img, f"defect image has no mask {rel}"), on_error)
        for key in sorted(set(masks) - used):
            handle(
                PairingError(masks[key], f"orphan mask: no image test/{key[0]}/{key[1][: -len('_mask.png')]}.*"),
                on_error,
            )
    return records


# --------------------------------------------------------------------------- Magnetic Tile


def read_magnetic_tile(root: str | Path, on_error: ErrorHandler | None = None) -> list[ImageRecord]:
    """``MT_<Class>/Imgs/<stem>.jpg`` with its same-stem ``.png`` mask; ``MT_Free`` is normal.

    The class is the folder name after ``MT_`` as written (``Blowhole``): map it to a project class
    with the source's label map.
    """
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(root, "dataset root not found (magnetic_tile)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("MT_") and (p / "Imgs").is_dir())
    if not folders:
        raise DataError(root, "no MT_<Class>/Imgs folders (not a Magnetic Tile dataset)")
    records: list[ImageRecord] = []
    for folder in folders:
        cls = folder.name[3:]
        label = NORMAL if cls == "Free" else cls
        files = _images(folder / "Imgs")
        masks = {p.stem: p for p in files if p.suffix.lower() == ".png"}
        images = [p for p in files if p.suffix.lower() != ".png"]
        stems = set()
        for img in images:
            if img.stem in stems:
                handle(PairingError(img, f"two images share the stem {img.stem!r}"), on_error)
                continue
            stems.add(img.stem)
            mask = masks.get(img.stem)
            if mask is None:
                handle(PairingError(img, f"image has no mask {img.stem}.png"), on_error)
                continue
            records.append(ImageRecord(path=img, label=label, annotations=[_mask_annotation(label, mask)]))
        for stem in sorted(set(masks) - stems):
            handle(PairingError(masks[stem], f"orphan mask: no image {stem}.jpg"), on_error)
    return records
