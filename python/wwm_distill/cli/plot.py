"""``distill-plot RUN_DIR``: PNG curves of the training loss and the eval metrics."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wwm_distill.cli import fail
from wwm_distill.plot import plot

PROG = "distill-plot"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__)
    p.add_argument("run", help="distill-train run directory")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    run = Path(a.run)
    if not (run / "metrics.jsonl").is_file():
        fail(PROG, f"{run}: no metrics.jsonl (not a distill-train run?)")
    try:
        written = plot(run)
    except ImportError as e:
        fail(PROG, str(e))
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
