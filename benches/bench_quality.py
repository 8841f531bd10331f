"""The quality benchmark: a teacher trained from scratch, its caches in every mode, students
at equal steps, data and initialisation (hard labels; the seed objective and its variants;
from the teacher's layers and fresh), all scored on held-out masked LM and THUCNews
(``scripts/quality.py`` does the work; this records it).

    python benches/bench_quality.py --scale cpu --write-results      # <= 60 min, 2 cores
    python benches/bench_quality.py --scale gpu --minutes 7 --write-results   # one H200:
                                       # repeat the same command until it prints the table

Every stage skips what is finished, so the same command resumes after a stop; with
``--minutes`` it starts no new work (a student, a cache, a scoring; the teacher checkpoints
and stops) after that long, so each command of the GPU sequence stays within 8 minutes. With
``--write-results`` the table goes to benches/RESULTS.md with the command, and the raw JSON
to benches/results/quality_SCALE.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
import quality  # noqa: E402
from common import cpu_model, version  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("cpu", "gpu", "tiny"), default="cpu")
    ap.add_argument("--work", type=Path, help="default .cache/quality-SCALE")
    ap.add_argument("--stage", choices=("all", *quality.STAGES), default="all")
    ap.add_argument("--cache", type=Path, default=None, help="download cache")
    ap.add_argument(
        "--minutes", type=float, help="start no new work after this long (rerun to continue)"
    )
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    work = a.work or HERE.parent / ".cache" / f"quality-{a.scale}"
    stages = quality.STAGES if a.stage == "all" else (a.stage,)
    inputs = quality.Inputs.fetch(a.cache)
    report = quality.run(a.scale, work, stages, inputs, not a.quiet, a.minutes)
    if report is None:
        return 0
    md = (work / "report.md").read_text(encoding="utf-8")
    timings = json.loads((work / "timings.json").read_text())
    took = ", ".join(f"{k} {v / 60:.1f}" for k, v in timings.items())
    print(md)
    print(f"minutes per stage: {took}")
    if a.write_results:
        import torch

        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_model()
        results = HERE / "results"
        results.mkdir(exist_ok=True)
        shutil.copy(work / "report.json", results / f"quality_{a.scale}.json")
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        table = "\n".join(x for x in md.splitlines() if not x.startswith("![")).rstrip()
        section = (
            f"\n## Quality: distilled vs hard-label students ({a.scale} preset), {stamp}\n\n"
            f"`python benches/bench_quality.py --scale {a.scale} --write-results`\n\n"
            f"{device}, torch {version('torch')}, transformers {version('transformers')}; "
            f"minutes per stage: {took}; raw JSON in `benches/results/quality_{a.scale}.json`."
            f"\n\n{table}\n"
        )
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
