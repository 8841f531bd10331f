"""Command-line front ends: small argparse layers over importable functions."""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (distill-prep's start-up)
if TYPE_CHECKING:
    from typing import NoReturn


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    """One clear error line and a non-zero exit, never a traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def defaults_of(function) -> dict:
    """The keyword defaults a function declares, for its command-line options."""
    import inspect

    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
