"""Command-line front ends: small argparse layers over importable functions."""

import sys
from typing import NoReturn


def fail(prog: str, message: str, code: int = 1) -> NoReturn:
    """One clear error line and a non-zero exit, never a traceback."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)
