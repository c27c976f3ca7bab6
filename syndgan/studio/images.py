"""Images the studio paints on: normal images of the ingested dataset (by id) and uploads (in memory).

A request names an image by its manifest id or by an upload token, never by a path, so no request can
reach a file outside the dataset; the manifest's own paths are checked to lie under the project or a
configured source root before they are opened.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syndgan.data.images import _open_verified, pixel_limit_disabled
from syndgan.errors import DataError
from syndgan.studio.masks import StudioError

UPLOAD_PREFIX = "upload:"
THUMB_SIDE = 160


def synthesis_mode(img: Image.Image) -> Image.Image:
    """ "L" or "RGB" (what the synthesizer takes); 16-bit and float gray become 8-bit gray."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("1", "I", "I;16", "F", "LA"):
        return img.convert("L")
    return img.convert("RGB")


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class SourceImage:
    """An image to paint on, with what the saved annotation records about it."""

    ref: str  # manifest id or upload:<token>
    image: Image.Image
    name: str  # manifest id or the uploaded file's name
    sha256: str
    split: str  # train / val / test, "upload" for uploads


class ImageStore:
    """Normal images of the manifest (``label == "normal"``) plus a bounded set of uploads."""

    def __init__(
        self,
        manifest: pd.DataFrame | None,
        roots: list[Path],
        *,
        max_upload_bytes: int = 20 << 20,
        max_pixels: int = 40_000_000,
        max_uploads: int = 32,
    ):
        rows = manifest if manifest is not None else pd.DataFrame(columns=["id", "path", "label", "split"])
        rows = rows[rows["label"] == "normal"].sort_values("id")
        self.rows = {r["id"]: r for r in rows.to_dict("records")}
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.max_upload_bytes, self.max_pixels, self.max_uploads = max_upload_bytes, max_pixels, max_uploads
        self.uploads: OrderedDict[str, SourceImage] = OrderedDict()

    def listing(self, split: str | None) -> list[dict]:
        return [
            {"id": i, "width": int(r["width"]), "height": int(r["height"]), "split": r["split"]}
            for i, r in self.rows.items()
            if split in (None, "", "all") or r["split"] == split
        ]

    def _path(self, image_id: str) -> Path:
        row = self.rows.get(image_id)
        if row is None:
            raise StudioError("image", f"{image_id!r} is not a normal image of the dataset", status=404)
        path = Path(os.path.realpath(row["path"]))
        if not any(path.is_relative_to(r) for r in self.roots):
            raise StudioError("image", f"{image_id!r}: {row['path']} lies outside the dataset folders", status=403)
        return path

    def get(self, ref: str) -> SourceImage:
        if not isinstance(ref, str) or not ref:
            raise StudioError("image", "no image chosen")
        if ref.startswith(UPLOAD_PREFIX):
            if ref not in self.uploads:
                raise StudioError("image", f"upload {ref!r} is unknown or expired; upload it again", status=404)
            self.uploads.move_to_end(ref)
            return self.uploads[ref]
        path = self._path(ref)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise StudioError("image", f"{ref!r}: cannot read {path}: {e.strerror or e}", status=404) from None
        img = self._decode(data, str(path), "image")
        return SourceImage(ref, img, ref, hashlib.sha256(data).hexdigest(), str(self.rows[ref]["split"]))

    def _decode(self, data: bytes, where: str, field: str) -> Image.Image:
        with pixel_limit_disabled():
            try:
                return synthesis_mode(_open_verified(data, Path(where), self.max_pixels))
            except DataError as e:
                raise StudioError(field, str(e)) from None

    def add_upload(self, data: bytes, filename: str) -> SourceImage:
        name = Path(str(filename or "upload")).name[:120] or "upload"  # a label only, never a path
        if len(data) > self.max_upload_bytes:
            raise StudioError(
                "upload", f"{name}: {len(data)} bytes, over the limit of {self.max_upload_bytes} bytes", status=413
            )
        if not data:
            raise StudioError("upload", f"{name}: empty file")
        img = self._decode(data, name, "upload")
        ref = UPLOAD_PREFIX + secrets.token_hex(8)
        self.uploads[ref] = SourceImage(ref, img, name, hashlib.sha256(data).hexdigest(), "upload")
        while len(self.uploads) > self.max_uploads:
            self.uploads.popitem(last=False)
        return self.uploads[ref]

    def thumbnail(self, ref: str) -> bytes:
        img = self.get(ref).image.copy()
        img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
        return png_bytes(img)


def changed_box(before: Image.Image, after: Image.Image) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) of the pixels that differ, None when none do."""
    diff = np.asarray(before, np.int16) != np.asarray(after, np.int16)
    if diff.ndim == 3:
        diff = diff.any(axis=2)
    if not diff.any():
        return None
    ys, xs = np.nonzero(diff)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
