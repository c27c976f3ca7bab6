"""Shared plumbing for stage modules: argument parsing, logging, one-line errors, CPU threads."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.config import Params, load_params
from syndgan.errors import SyndganError


def stage_main(name: str, run: Callable[[Params], object], argv: list[str] | None = None, doc: str = "") -> int:
    """Parse ``--params``, set up logging, call ``run(params)``; turn our errors into one line + exit 1."""
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.{name}", description=doc)
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        run(load_params(args.params))
    except SyndganError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    return 0
