"""Benchmark the training data path and cached distillation (CPU; see bench_gpu.py for GPU).

On the same model and data, in one run (each measurement in its own child process, so
peak RSS is per mode):

(a) steps/s with the streaming Rust loader (``Batches.loader``: examples + teacher cache
    assembled in background threads) vs the same batches preloaded as tensors in memory
    (target: ratio >= 0.98);
(b) training from the cache vs DistilBERT-style online distillation, where a teacher 2x
    deeper and wider than the student runs forward every step (speed-up);
(c) peak RSS of each.

Usage::

    python benches/bench_train.py [--steps 40] [--batch-size 32] [--repeats 3] [--write-results]

The three modes run in turn, ``--repeats`` rounds, and each mode reports its median round,
so a burst of load on a shared machine hits every mode alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import common  # benches/common.py (run this file as a script); puts scripts/ on sys.path
import corpus  # scripts/corpus.py

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"
SEQ = 128
STUDENT = dict(layers=2, hidden=128, heads=2)
TEACHER = dict(layers=4, hidden=256, heads=4)  # 2x deeper and wider


def setup(cache_root: Path, n_examples: int) -> dict:
    """Examples of the People's Daily corpus (length 128), a random 2x teacher and its
    top-128 cache over the first shard (speed, not quality, is measured here)."""
    import torch
    import wwm_distill
    from wwm_distill import teacher

    vocab = corpus.fetch_vocab(cache_root)
    text = corpus.fetch_corpus(cache_root)
    work = cache_root / "bench" / "train"
    ex = work / "examples"
    if not (ex / "manifest.json").exists():
        wwm_distill.prepare(
            [text],
            ex,
            vocab,
            progress=False,
            max_seq_length=SEQ,
            doc_stride=SEQ // 2,
            dupe_factor=1,
            shard_size=n_examples,
        )
    tdir = work / f"teacher-{TEACHER['layers']}x{TEACHER['hidden']}"
    if not (tdir / "config.json").exists():
        torch.manual_seed(0)
        n = wwm_distill.Examples(ex).manifest["vocab"]["size"]
        m = common.bert(n, **TEACHER, max_len=SEQ)
        m.save_pretrained(tdir)
        (tdir / "vocab.txt").write_bytes(Path(vocab).read_bytes())
    cache = work / "cache"
    if not (cache / "manifest.json").exists():
        teacher.run_teacher(
            tdir,
            ex,
            cache,
            mode=teacher.Mode("topk", k=128),
            batch_size=64,
            skip_check=True,
            progress=False,
        )
    return {"examples": str(ex), "cache": str(cache), "teacher": str(tdir)}


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ``ru_maxrss`` would also count the pages of the
    parent that this child shared between fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, paths: dict, steps: int, batch: int) -> dict:
    """One measurement: ``steps`` optimizer steps of the student in ``mode``."""
    import numpy as np
    import torch
    from wwm_distill import _core
    from wwm_distill.data import Examples
    from wwm_distill.model import load_masked_lm, masked_logits
    from wwm_distill.objective import Objective
    from wwm_distill.trainer import to_torch

    torch.manual_seed(0)
    n_threads = torch.get_num_threads()
    ex = Examples(paths["examples"])
    vocab = ex.manifest["vocab"]["size"]
    student = common.bert(vocab, **STUDENT, max_len=SEQ).train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    objective = Objective()
    batches = _core.Batches(paths["examples"], paths["cache"])
    n = len(ex.shards[0])
    rng = np.random.default_rng(0)
    plan = [
        np.sort(rng.choice(n, batch, replace=False)).astype(np.uint64) for _ in range(steps + 3)
    ]
    big = load_masked_lm(paths["teacher"]) if mode == "online" else None

    def step(b):
        logits = masked_logits(
            student, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
        )
        if big is not None:  # DistilBERT-style: the teacher runs now
            with torch.no_grad():
                t = masked_logits(
                    big,
                    b["input_ids"],
                    b["attention_mask"],
                    b["masked_rows"],
                    b["masked_positions"],
                )
                logp, ids = torch.log_softmax(t.float(), -1).topk(128, -1)
            tail = 1 - logp.exp().sum(1)
        else:
            logp, ids, tail = b["teacher_logp"], b["teacher_ids"], b["teacher_tail"]
        loss = objective(logits, ids, logp, tail)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if mode == "preloaded":
        data = [to_torch(batches.assemble(p), "cpu") for p in plan]
        source = iter(data)
    else:
        source = (to_torch(b, "cpu") for b in batches.loader(plan, prefetch=4, threads=1))
    for _ in range(3):  # warm-up
        step(next(source))
    t = time.perf_counter()
    for _ in range(steps):
        step(next(source))
    elapsed = time.perf_counter() - t
    return {
        "mode": mode,
        "steps": steps,
        "batch": batch,
        "steps_per_s": steps / elapsed,
        "samples_per_s": steps * batch / elapsed,
        "torch_threads": n_threads,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--examples", type=int, default=4096, help="examples in the cached shard")
    p.add_argument("--cache", default=os.environ.get("WWM_CACHE", str(BENCH.parent / ".cache")))
    p.add_argument("--repeats", type=int, default=3, help="rounds of the three modes")
    p.add_argument("--write-results", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--paths", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, json.loads(a.paths), a.steps, a.batch_size)))
        return
    paths = setup(Path(a.cache), a.examples)
    load_start = os.getloadavg()[0]
    rounds: dict[str, list[dict]] = {"preloaded": [], "streaming": [], "online": []}
    for _ in range(a.repeats):
        for mode in rounds:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    mode,
                    "--paths",
                    json.dumps(paths),
                    "--steps",
                    str(a.steps),
                    "--batch-size",
                    str(a.batch_size),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rounds[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rounds[mode][-1]), flush=True)
    load_end = os.getloadavg()[0]
    runs = {m: sorted(rs, key=lambda r: r["steps_per_s"])[len(rs) // 2] for m, rs in rounds.items()}
    stream = runs["streaming"]["steps_per_s"] / runs["preloaded"]["steps_per_s"]
    speedup = runs["streaming"]["steps_per_s"] / runs["online"]["steps_per_s"]
    rows = [
        "| mode | steps/s (median) | samples/s | every round, steps/s | peak RSS MB |",
        "| --- | ---: | ---: | --- | ---: |",
    ]
    names = {
        "preloaded": "cache, batches preloaded as tensors",
        "streaming": "cache, streaming Rust loader",
        "online": f"online teacher ({TEACHER['layers']}L/{TEACHER['hidden']}H) each step",
    }
    for mode, r in runs.items():
        every = ", ".join(f"{x['steps_per_s']:.3f}" for x in rounds[mode])
        rows.append(
            f"| {names[mode]} | {r['steps_per_s']:.3f} | {r['samples_per_s']:.1f} | "
            f"{every} | "
            f"{max(x['peak_rss_mb'] for x in rounds[mode]):.0f} |"
        )
    rows += [
        "",
        "| metric | value | target | met |",
        "| --- | ---: | ---: | :---: |",
        f"| streaming / preloaded steps/s | {stream:.3f} | >= 0.98 | "
        f"{'yes' if stream >= 0.98 else '**no**'} |",
        f"| cached / online distillation speed-up | {speedup:.2f}x | (report) | |",
    ]
    table = "\n".join(rows)
    print(table)
    if a.write_results:
        cmd = "python benches/bench_train.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(RESULTS, "a", encoding="utf-8") as f:
            f.write(
                f"\n## distill-train data path, {stamp}"
                f"\n\n`{cmd}`\n\n{platform.processor() or platform.machine()}, "
                f"{os.cpu_count()} CPUs; student BERT {STUDENT['layers']} layers / hidden "
                f"{STUDENT['hidden']}, length {SEQ}, batch {a.batch_size}, {a.steps} timed "
                f"steps after 3 warm-up; top-128 cache of a random "
                f"{TEACHER['layers']}-layer / {TEACHER['hidden']} teacher; median of "
                f"{a.repeats} rounds; 1-minute load average {load_start:.1f} at the start, "
                f"{load_end:.1f} at the end.\n\n{table}\n"
            )


if __name__ == "__main__":
    main()
