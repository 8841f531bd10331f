"""The teacher pass: run a masked-LM teacher once over the examples and keep, per masked
position, its top-k / top-p / sampled distribution in a compressed cache.

The encoder runs on the whole (length-bucketed) batch; the LM head runs only on the hidden
states of masked positions; log-softmax and top-k happen on the device; only k values per
position leave it. Encoding and writing happen in Rust (``_core.CacheWriter``) on a
background thread while the next chunk computes.
"""

from __future__ import annotations

import concurrent.futures
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wwm_distill import _core
from wwm_distill.data import Examples
from wwm_distill.distributed import dist_info, maybe_init_distributed, process_device
from wwm_distill.errors import TeacherError
from wwm_distill.head import CHECK_EXAMPLES, check_head, untrained_head_message
from wwm_distill.model import (
    check_vocab,
    config_sha256,
    length_bucketed,
    load_masked_lm,
    masked_logits,
    to_device_batch,
)

# ----------------------------------------------------------------------------- caching


@dataclass
class Mode:
    kind: str = "topk"  # topk | top-p | sample
    k: int = 128
    top_p: float | None = None
    sample_n: int | None = None
    step: float = _core.CACHE_DEFAULT_STEP  # nats; error <= step / 2

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "k": self.k,
            "top_p": self.top_p,
            "sample_n": self.sample_n,
            "logprob_step": self.step,
        }

    @property
    def width(self) -> int:
        return self.sample_n if self.kind == "sample" else self.k


def mode_from_options(
    topk: int = Mode.k,
    top_p: float | None = Mode.top_p,
    sample: int | None = Mode.sample_n,
    step: float = Mode.step,
) -> Mode:
    """The mode ``distill-teacher``'s ``--topk`` / ``--top-p`` / ``--sample`` ask for."""
    if sample is not None and top_p is not None:
        raise TeacherError("--sample and --top-p exclude each other")
    if sample is not None:
        return Mode("sample", k=sample, sample_n=sample, step=step)
    if top_p is not None:
        return Mode("top-p", k=topk, top_p=top_p, step=step)
    return Mode("topk", k=topk, step=step)


def select(logp: torch.Tensor, mode: Mode, generator: torch.Generator | None = None) -> dict:
    """Per-position stored entries from full-vocabulary log-probs ``[N, V]`` (float32),
    on the device; returns numpy arrays ready for ``CacheWriter.push``."""
    n = logp.shape[0]
    if mode.kind == "sample":
        draws = (
            torch.multinomial(logp.exp(), mode.sample_n, replacement=True, generator=generator)
            .cpu()
            .numpy()
        )
        return unique_counts(draws, logp.shape[1])
    vals, ids = logp.topk(min(mode.k, logp.shape[1]), dim=-1)  # sorted, descending
    mass = vals.double().exp().cumsum(-1)
    if mode.kind == "top-p":
        k = ((mass < mode.top_p).sum(-1) + 1).clamp(max=vals.shape[1])
    else:
        k = torch.full((n,), vals.shape[1], device=vals.device)
    tail = (1.0 - mass.gather(1, (k - 1).unsqueeze(1)).squeeze(1)).clamp(min=0.0)
    return {
        "k": k.to(torch.int32).cpu().numpy().astype(np.uint16),
        "ids": ids.cpu().numpy().astype(np.int64),
        "logp": vals.float().cpu().numpy(),
        "tail": tail.float().cpu().numpy(),
    }


def unique_counts(draws: np.ndarray, vocab: int) -> dict:
    """Rows of sampled ids ``[N, S]`` → unique ids with counts, sorted by decreasing
    count (then id), padded to ``S``. Vectorised: no loop per position."""
    n, s = draws.shape
    keys, counts = np.unique(np.arange(n)[:, None] * vocab + draws, return_counts=True)
    rows, ids = keys // vocab, keys % vocab
    order = np.lexsort((ids, -counts, rows))
    rows, ids, counts = rows[order], ids[order], counts[order]
    k = np.bincount(rows, minlength=n)
    starts = np.concatenate([[0], np.cumsum(k)[:-1]])
    col = np.arange(rows.size) - starts[rows]
    out_ids = np.zeros((n, s), np.int64)
    out_counts = np.zeros((n, s), np.uint16)
    out_ids[rows, col] = ids
    out_counts[rows, col] = counts
    return {
        "k": k.astype(np.uint16),
        "ids": out_ids,
        "counts": out_counts,
        "tail": np.zeros(n, np.float32),
    }


def run_chunk(
    model, examples: Examples, indices: np.ndarray, mode: Mode, batch_size: int, device, generator
) -> tuple[dict, int]:
    """Teacher outputs for consecutive examples ``indices`` in their order, and top-1 hits."""
    pieces: dict[int, dict] = {}
    hits = 0
    for batch in length_bucketed(examples, indices, batch_size):
        b = to_device_batch(examples, batch, device)
        with torch.inference_mode():
            logits = masked_logits(
                model, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
            )
            logp = torch.log_softmax(logits.float(), dim=-1)
            hits += int((logp.argmax(-1) == b["masked_labels"]).sum())
            sel = select(logp, mode, generator)
        rows = b["masked_rows"].cpu().numpy()
        for r, ex in enumerate(batch):
            m = rows == r
            pieces[int(ex)] = {key: v[m] for key, v in sel.items()}
    order = [pieces[int(i)] for i in indices]
    width = mode.width
    out = {"positions_per_example": np.array([len(p["k"]) for p in order], np.uint16)}
    for key in order[0]:
        arrays = [p[key] for p in order]
        if arrays[0].ndim == 2:  # pad to the mode's width
            arrays = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in arrays]
        out[key] = np.ascontiguousarray(np.concatenate(arrays))
    return out, hits


def check_resumed_shard(path: str, mode: Mode) -> None:
    """A shard an earlier run finished must hold what this run would write."""
    r = _core.CacheReader(path)
    had = (r.mode, r.k_max, r.sample_n)
    want = (mode.kind, mode.width, mode.sample_n or 0)
    if had != want or abs(r.step - mode.step) > 1e-5 * mode.step:
        raise TeacherError(
            f"{path}: written by an earlier run with mode {r.mode}, k {r.k_max}, "
            f"log-prob step {r.step:g}, sample {r.sample_n}; this run asks for "
            f"{mode.kind}, k {mode.width}, step {mode.step:g}, sample {mode.sample_n or 0}. "
            "Rerun with the earlier options, or write to a new --out."
        )


def run_teacher(
    model_dir,
    examples_dir,
    out_dir,
    *,
    mode: Mode | None = None,
    batch_size=32,
    dtype="fp32",
    device="cpu",
    skip_check=False,
    check_examples=CHECK_EXAMPLES,
    chunk_examples=1024,
    seed=0,
    format_version=None,
    progress=True,
) -> dict:
    """Cache the teacher's outputs for every example; resumable per shard; under torchrun
    each rank takes every world-size-th shard and rank 0 writes the manifest.
    ``format_version``: the ``.tkc`` format to write (default the newest, the smallest; 2
    is ~10-20 % larger but decodes ~2x faster, for training runs short of CPU)."""
    from tqdm import tqdm

    mode = mode or Mode()
    if mode.kind == "top-p" and not (mode.top_p and 0 < mode.top_p <= 1):
        raise TeacherError("--top-p must be in (0, 1]")
    if mode.kind == "sample" and not (mode.sample_n and 0 < mode.sample_n < 65536):
        raise TeacherError("--sample must be in 1..65535")
    maybe_init_distributed(device)
    rank, world = dist_info()
    device = process_device(device, rank, world)
    examples = Examples(examples_dir)
    model = load_masked_lm(model_dir, device, dtype)
    check_vocab(model_dir, examples, model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chk = check_head(model, examples, check_examples, batch_size, device, seed)
    if not chk.ok and not skip_check:
        raise TeacherError(untrained_head_message(model_dir, examples_dir, chk))
    id_bytes = 2 if examples.manifest["vocab"]["size"] <= 65536 else 4
    positions_total = sum(s["masked"] for s in examples.manifest["shards"])
    mine = [k for k in range(len(examples.shards)) if k % world == rank]
    bar = tqdm(
        total=sum(examples.shards[k].info["masked"] for k in mine),
        unit="pos",
        desc=f"teacher[{rank}]" if world > 1 else "teacher",
        disable=not progress,
        dynamic_ncols=True,
    )
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wwm-cache-writer")
    timings = {"forward_s": 0.0, "wait_for_writer_s": 0.0}
    start = time.monotonic()
    for k in mine:
        if _core.read_cache_shard_record(out, k) is not None:  # finished by an earlier run
            check_resumed_shard(_core.cache_shard_path(out, k), mode)
            bar.update(examples.shards[k].info["masked"])
            continue
        base = int(examples.starts[k])
        n = len(examples.shards[k])
        writer = _core.CacheWriter(
            _core.cache_shard_path(out, k),
            mode.kind,
            mode.width,
            id_bytes=id_bytes,
            step=mode.step,
            sample_n=mode.sample_n or 0,
            **({} if format_version is None else {"format_version": format_version}),
        )
        generator = None
        if mode.kind == "sample":
            generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + k)
        pending, hits = None, 0
        for c0 in range(0, n, chunk_examples):
            t = time.monotonic()
            indices = np.arange(base + c0, base + min(c0 + chunk_examples, n))
            arrays, h = run_chunk(model, examples, indices, mode, batch_size, device, generator)
            hits += h
            timings["forward_s"] += time.monotonic() - t
            t = time.monotonic()
            if pending is not None:
                pending.result()
            timings["wait_for_writer_s"] += time.monotonic() - t
            pending = pool.submit(writer.push, **arrays)
            bar.update(int(arrays["positions_per_example"].sum()))
        if pending is not None:
            pending.result()
        info = dict(writer.finish())
        info.update(name=_core.cache_shard_name(k), top1_hits=hits)
        _core.write_cache_shard_record(out, k, info)
    pool.shutdown()
    bar.close()
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return {}
    records = [_core.read_cache_shard_record(out, k) for k in range(len(examples.shards))]
    cache_tail = 0.0
    for k in range(len(examples.shards)):
        reader = _core.CacheReader(_core.cache_shard_path(out, k))
        all_ex = np.arange(reader.n_examples, dtype=np.uint64)
        for s in range(0, all_ex.size, 4096):
            cache_tail += float(reader.gather(all_ex[s : s + 4096])[2].astype(np.float64).sum())
    positions = sum(r["positions"] for r in records)
    entries = sum(r["entries"] for r in records)
    size = sum(r["bytes"] for r in records)
    report = {
        "positions": positions,
        "mean_entries_per_position": entries / max(positions, 1),
        "bytes": size,
        "bytes_per_position": size / max(positions, 1),
        "mean_tail_mass": cache_tail / max(positions, 1),
        "teacher_top1_accuracy": sum(r["top1_hits"] for r in records) / max(positions, 1),
        "elapsed_s": time.monotonic() - start,
        **timings,
    }
    assert positions == positions_total, "cache and examples disagree"
    manifest = {  # the format and version are stamped by the Rust writer
        "examples": {
            "path": str(Path(examples_dir)),
            "manifest_sha256": _core.sha256_file(Path(examples_dir) / "manifest.json"),
            "vocab_sha256": examples.manifest["vocab"]["sha256"],
            "examples": len(examples),
        },
        "teacher": {
            "path": str(Path(model_dir)),
            "name": Path(model_dir).name,
            "architecture": type(model).__name__,
            "config_sha256": config_sha256(model_dir),
            "dtype": dtype,
        },
        "mode": mode.as_dict() | {"id_bytes": id_bytes},
        "check": chk.as_dict() | {"skipped": bool(skip_check and not chk.ok)},
        "shards": [
            {k: r[k] for k in ("name", "examples", "positions", "entries", "bytes", "sha256")}
            for r in records
        ],
        "report": report,
    }
    return _core.write_cache_manifest(out, manifest)
