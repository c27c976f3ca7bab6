"""Seeds derived from names: stable across Python runs (unlike ``hash``), and free of torch and of the models, so
that what only needs a seed (a rank's stream, a class's fine-tune) imports nothing heavy."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from any parts."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
