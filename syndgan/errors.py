"""Errors a person can act on: every data error names the file and the problem, on one line."""

from __future__ import annotations

from pathlib import Path


class SyndganError(Exception):
    """Base class for all errors raised by syndgan."""


class DataError(SyndganError):
    """A problem with one input file. ``str(err)`` is ``"<path>: <problem>"`` on one line."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = " ".join(str(problem).split())  # force one line
        super().__init__(f"{self.path}: {self.problem}")


class ImageError(DataError):
    """Corrupt, truncated, unreadable or oversized image."""


class AnnotationError(DataError):
    """Malformed annotation file or shape (bad JSON, bad polygon, unknown class, size mismatch...)."""


class PathEscapeError(DataError):
    """An annotation refers to a file outside the dataset root."""


class PairingError(DataError):
    """Images and masks do not pair up (missing mask, orphan mask, size mismatch)."""


class DuplicateImageError(DataError):
    """Two inputs are the same image (same sha256)."""


class ConfigError(SyndganError):
    """Invalid configuration value; the message names the key."""
