"""Does the teacher cache's log-prob step change what a student learns?

On the quality benchmark's teacher and data (``benches/bench_quality.py``'s work directory,
run through its students first), a top-k 128 cache of the students' examples is written at
each ``--steps`` value, and the benchmark's "layers-seed" student (the teacher's layers,
the seed objective) is trained from each over the preset's seeds; each student is scored on
held-out masked LM as the benchmark scores it. Everything else is the benchmark's: same
examples, initialisation, steps and seeds, so the steps differ only in the cache.

    python benches/ablate_step.py --scale cpu --steps 0.019 0.05 0.1 --write-results

Finished caches and students are kept under WORK/ablate-step/ and reused by a rerun.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "scripts"))
import quality  # noqa: E402
from common import cpu_model, version  # noqa: E402

METRICS = ("top1", "top5", "ce", "teacher_agreement", "kl")


def run(scale: str, work: Path, steps: list[float], progress: bool) -> list[dict]:
    from wwm_distill import _core, teacher

    exp = quality.Experiment(quality.PRESETS[scale], work, quality.Inputs.fetch(), progress)
    if not (exp.teacher_dir / "config.json").is_file() or not exp.path("data").is_dir():
        raise SystemExit(f"no finished quality benchmark in {work}: run bench_quality.py first")
    root = exp.path("ablate-step")
    rows = []
    for step in steps:
        cache = root / "caches" / f"topk128-step{step}"
        if not (cache / "manifest.json").is_file():
            quality.log(f"cache at step {step}")
            teacher.run_teacher(
                exp.teacher_dir,
                exp.path("data", "student-ex"),
                cache,
                mode=teacher.Mode("topk", k=128, step=step),
                batch_size=64,
                device=exp.preset.device,
                skip_check=exp.preset.skip_check,
                progress=progress,
            )
        report = _core.read_cache_manifest(cache)["report"]
        scores = []
        for seed in exp.preset.seeds:
            out = root / "students" / f"layers-seed-step{step}-s{seed}"
            if not (out / "student" / "config.json").is_file():
                quality.log(f"student at step {step}, seed {seed}")
                exp.train_student(out, "layers", cache, seed, {})
            scores.append(exp.score_mlm(out / "student"))
        rows.append(
            {
                "step": step,
                "bytes_per_position": report["bytes_per_position"],
                "runs": len(scores),
                **{m: [s[m] for s in scores] for m in METRICS},
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| log-prob step (nats) | cache B / position | runs | held-out top-1 % | top-5 % "
        "| CE (nats) | agreement w/ teacher % | KL(T‖S) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['bytes_per_position']:.1f} | {r['runs']} | "
            + " | ".join(quality.mean_std(r[m]) for m in METRICS)
            + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=("demo", "cpu", "gpu", "tiny"), default="cpu")
    ap.add_argument("--work", type=Path, help="default .cache/quality-SCALE")
    ap.add_argument("--steps", type=float, nargs="+", default=[0.019, 0.05, 0.1])
    ap.add_argument("--write-results", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    work = a.work or HERE.parent / ".cache" / f"quality-{a.scale}"
    t = time.perf_counter()
    rows = run(a.scale, work, a.steps, not a.quiet)
    table = markdown(rows)
    print(table)
    if a.write_results:
        args = argv if argv is not None else sys.argv[1:]
        cmd = "python benches/ablate_step.py " + " ".join(args)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        text = (
            f"\n## {stamp}: cache log-prob step vs what the student learns (`ablate_step.py`)\n\n"
            f"`{cmd}`\n\n{cpu_model()}, torch {version('torch')}; "
            f"{(time.perf_counter() - t) / 60:.1f} minutes; the quality benchmark's teacher, data "
            f"and layers-seed student in `{work.name}`, one cache per step.\n\n{table}\n"
        )
        with open(HERE / "RESULTS.md", "a", encoding="utf-8") as f:
            f.write(text)
        print("appended to benches/RESULTS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
