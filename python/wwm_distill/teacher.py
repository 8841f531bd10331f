"""The teacher pass: run a masked-LM teacher once over the examples and keep, per masked
position, its top-k / top-p / sampled distribution in a compressed cache.

The encoder runs on the whole (length-bucketed) batch; the LM head runs only on the hidden
states of masked positions; log-softmax and top-k happen on the device; only k values per
position leave it. Encoding and writing happen in Rust (``_core.CacheWriter``) on a
background thread while the next chunk computes.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wwm_distill import _core
from wwm_distill.data import Examples, read_manifest
from wwm_distill.errors import CacheError, TeacherError

CACHE_FORMAT = "wwm-distill/teacher"
CACHE_VERSION = 1
TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ----------------------------------------------------------------------------- model


def load_masked_lm(model_dir: str | os.PathLike, device="cpu", dtype="fp32"):
    """Any Hugging Face BERT/RoBERTa masked-LM checkpoint from a local directory."""
    from transformers import AutoModelForMaskedLM

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise TeacherError(f"{path}: not a model directory (no config.json)")
    try:
        model = AutoModelForMaskedLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TeacherError(f"{path}: cannot load a masked-LM model ({e})") from None
    if dtype != "fp32" and torch.device(device).type == "cpu":
        dtype = "fp32"  # autocast on CPU is slower and less exact than fp32
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def split_model(model):
    """(encoder, LM head) of a BERT- or RoBERTa-family masked LM."""
    head = getattr(model, "cls", None) or getattr(model, "lm_head", None)
    if head is None:
        raise TeacherError(f"{type(model).__name__}: no MLM head (cls / lm_head) found")
    return model.base_model, head


def masked_logits(model, input_ids, attention_mask, rows, positions) -> torch.Tensor:
    """LM-head logits ``[N, V]`` at the masked positions only."""
    encoder, head = split_model(model)
    hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    return head(hidden[rows, positions])


def config_sha256(model_dir: str | os.PathLike) -> str:
    cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()


def check_vocab(model_dir: str | os.PathLike, examples: Examples, model=None) -> None:
    """Refuse a model whose vocabulary differs from the examples'."""
    want = examples.manifest["vocab"]
    path = Path(model_dir)
    if (path / "vocab.txt").is_file() or (path / "tokenizer.json").is_file():
        got = _core.TextPipeline(str(path), segmenter="none").vocab_sha256
        if got != want["sha256"]:
            raise TeacherError(
                f"{path}: vocabulary differs from the one the examples were made with "
                f"({got[:12]}… vs {want['sha256'][:12]}… in {examples.path}/manifest.json)"
            )
    if model is not None and model.config.vocab_size != want["size"]:
        raise TeacherError(
            f"{path}: model vocabulary has {model.config.vocab_size} entries, the examples' "
            f"{want['size']}"
        )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------- batches


def to_device_batch(examples: Examples, indices, device) -> dict[str, torch.Tensor]:
    b = examples.batch(indices)
    return {k: torch.from_numpy(v).to(device) for k, v in b.items()}


def length_bucketed(examples: Examples, indices: np.ndarray, batch_size: int) -> list:
    """Batches of similar length (less padding); order within the run is restored later."""
    lengths = np.array([len(examples[int(i)]["input_ids"]) for i in indices])
    order = np.argsort(-lengths, kind="stable")
    return [indices[order[s : s + batch_size]] for s in range(0, len(order), batch_size)]


# ----------------------------------------------------------------------------- head check


@dataclass
class HeadCheck:
    accuracy: float
    baseline: float
    baseline_token: int
    positions: int

    @property
    def ok(self) -> bool:
        # "clearly better" than always predicting the most frequent token
        return self.accuracy >= 1.5 * self.baseline + 0.02

    def as_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "most_frequent_token_accuracy": self.baseline,
            "most_frequent_token_id": self.baseline_token,
            "positions": self.positions,
            "passed": self.ok,
        }


# Held-out examples of the masked-LM head check (check_head, fit-head, distill-teacher).
CHECK_EXAMPLES = 256


def check_sample(examples: Examples, n: int, seed: int = 0) -> np.ndarray:
    """A fixed, seeded sample of examples held out from ``fit-head`` training."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(examples), size=min(n, len(examples)), replace=False))


@torch.no_grad()
def check_head(
    model, examples: Examples, n_examples=CHECK_EXAMPLES, batch_size=32, device="cpu", seed=0
):
    """Top-1 masked-LM accuracy of ``model`` on held-out positions vs the most frequent
    token's."""
    sample = check_sample(examples, n_examples, seed)
    hits, labels_all = 0, []
    for batch in length_bucketed(examples, sample, batch_size):
        b = to_device_batch(examples, batch, device)
        logits = masked_logits(
            model, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
        )
        hits += int((logits.argmax(-1) == b["masked_labels"]).sum())
        labels_all.append(b["masked_labels"].cpu().numpy())
    labels = np.concatenate(labels_all) if labels_all else np.zeros(0, np.int64)
    if labels.size == 0:
        raise TeacherError("the examples have no masked positions to check the teacher on")
    counts = np.bincount(labels)
    return HeadCheck(
        accuracy=hits / labels.size,
        baseline=float(counts.max() / labels.size),
        baseline_token=int(counts.argmax()),
        positions=int(labels.size),
    )


def untrained_head_message(model_dir, examples_dir, chk: HeadCheck) -> str:
    return (
        f"the MLM head of {model_dir} looks untrained: top-1 accuracy "
        f"{100 * chk.accuracy:.1f} % on {chk.positions:,} held-out masked positions, vs "
        f"{100 * chk.baseline:.1f} % for always predicting the most frequent token (id "
        f"{chk.baseline_token}). Some released Chinese large checkpoints ship without a trained "
        f"masked-LM head, and their outputs are noise. Fit the head (encoder frozen) with\n"
        f"  distill-teacher fit-head --model {model_dir} --examples {examples_dir} "
        f"--out {Path(model_dir).name}-fithead\n"
        f"and cache with --model {Path(model_dir).name}-fithead, or pass --skip-check."
    )


# ----------------------------------------------------------------------------- fit-head


def mlm_loss(model, examples: Examples, indices, device) -> torch.Tensor:
    """Hard-label cross entropy of the model's LM head at the masked positions."""
    b = to_device_batch(examples, indices, device)
    logits = masked_logits(
        model, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
    )
    return torch.nn.functional.cross_entropy(logits.float(), b["masked_labels"])


def head_parameters(model) -> list[torch.nn.Parameter]:
    """The MLM head's own weights: transform (dense + LayerNorm) and output bias; the
    decoder stays tied to the (frozen) input embeddings."""
    _, head = split_model(model)
    tied = model.get_output_embeddings().weight
    return [p for p in head.parameters() if p is not tied]


@torch.no_grad()
def reinit_head(model, seed: int = 0) -> None:
    """Re-initialise the MLM head's own weights as ``from_pretrained`` does for a checkpoint
    without them (normal(0, initializer_range), zero bias, LayerNorm 1/0): the untrained-head
    trap of some released Chinese checkpoints, reproduced on a model of ours."""
    gen = torch.Generator().manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02)
    _, head = split_model(model)
    for name, p in head.named_parameters():
        if p is model.get_output_embeddings().weight:
            continue
        if "LayerNorm.weight" in name or "layer_norm.weight" in name:
            p.fill_(1.0)
        elif p.dim() > 1:
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        else:
            p.zero_()


def fit_head(
    model_dir,
    examples_dir,
    out_dir,
    *,
    steps=1000,
    lr=1e-3,
    batch_size=32,
    device="cpu",
    seed=0,
    check_examples=CHECK_EXAMPLES,
    progress=True,
) -> dict:
    """Train only the MLM head on the examples' masked positions and save a complete
    model directory; the head check must pass on the result."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    examples = Examples(examples_dir)
    model = load_masked_lm(model_dir, device)
    check_vocab(model_dir, examples, model)
    for p in model.parameters():
        p.requires_grad_(False)
    params = head_parameters(model)
    for p in params:
        p.requires_grad_(True)
    held_out = set(check_sample(examples, check_examples, seed).tolist())
    pool = np.array([i for i in range(len(examples)) if i not in held_out])
    if pool.size == 0:
        raise TeacherError(f"{examples_dir}: too few examples to fit the head on")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    model.train()
    bar = tqdm(range(steps), desc="fit-head", disable=not progress, dynamic_ncols=True)
    loss_value = float("nan")
    for _ in bar:
        idx = rng.choice(pool, size=min(batch_size, pool.size), replace=False)
        loss = mlm_loss(model, examples, idx, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        bar.set_postfix(loss=f"{loss_value:.3f}", refresh=False)
    model.eval()
    chk = check_head(model, examples, check_examples, batch_size, device, seed)
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    for name in TOKENIZER_FILES:
        if (Path(model_dir) / name).is_file():
            shutil.copy(Path(model_dir) / name, tmp / name)
    (tmp / "fit_head.json").write_text(
        json.dumps(
            {
                "source": str(model_dir),
                "examples": str(examples_dir),
                "steps": steps,
                "lr": lr,
                "batch_size": batch_size,
                "final_loss": loss_value,
                "check": chk.as_dict(),
            },
            indent=2,
        )
    )
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return {"final_loss": loss_value, "check": chk.as_dict(), "out": str(out)}


# ----------------------------------------------------------------------------- caching


@dataclass
class Mode:
    kind: str = "topk"  # topk | top-p | sample
    k: int = 128
    top_p: float | None = None
    sample_n: int | None = None
    step: float = 0.019

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


def shard_name(k: int) -> str:
    return f"teacher-{k:05d}"


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def maybe_init_distributed(device) -> None:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)


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
    progress=True,
) -> dict:
    """Cache the teacher's outputs for every example; resumable per shard; under torchrun
    each rank takes every world-size-th shard and rank 0 writes the manifest."""
    from tqdm import tqdm

    mode = mode or Mode()
    if mode.kind == "top-p" and not (mode.top_p and 0 < mode.top_p <= 1):
        raise TeacherError("--top-p must be in (0, 1]")
    if mode.kind == "sample" and not (mode.sample_n and 0 < mode.sample_n < 65536):
        raise TeacherError("--sample must be in 1..65535")
    maybe_init_distributed(device)
    rank, world = dist_info()
    if torch.device(device).type == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
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
        name = shard_name(k)
        record = out / f"{name}.json"
        if record.is_file():  # finished by an earlier run
            bar.update(examples.shards[k].info["masked"])
            continue
        base = int(examples.starts[k])
        n = len(examples.shards[k])
        writer = _core.CacheWriter(
            str(out / f"{name}.tkc"),
            mode.kind,
            mode.width,
            id_bytes=id_bytes,
            step=mode.step,
            sample_n=mode.sample_n or 0,
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
        info.update(name=name, top1_hits=hits)
        tmp = record.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, record)
    pool.shutdown()
    bar.close()
    if world > 1:
        torch.distributed.barrier()
    if rank != 0:
        return {}
    records = [
        json.loads((out / f"{shard_name(k)}.json").read_text()) for k in range(len(examples.shards))
    ]
    cache_tail = 0.0
    for k in range(len(examples.shards)):
        reader = _core.CacheReader(str(out / f"{shard_name(k)}.tkc"))
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
    manifest = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "examples": {
            "path": str(Path(examples_dir)),
            "manifest_sha256": file_sha256(Path(examples_dir) / "manifest.json"),
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
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "manifest.json")
    return manifest


# ----------------------------------------------------------------------------- reading


class TeacherCache:
    """The cache written by ``distill-teacher``, aligned with its examples: ``gather``
    returns padded numpy arrays for any list of global example indices."""

    def __init__(self, path: str | os.PathLike, examples: Examples | None = None):
        self.path = Path(path)
        file = self.path / "manifest.json"
        try:
            self.manifest = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CacheError(f"{file}: no teacher cache manifest") from None
        if (self.manifest.get("format"), self.manifest.get("version")) != (
            CACHE_FORMAT,
            CACHE_VERSION,
        ):
            raise CacheError(f"{file}: not a teacher cache of version {CACHE_VERSION}")
        self.readers = [
            _core.CacheReader(str(self.path / f"{s['name']}.tkc")) for s in self.manifest["shards"]
        ]
        self.starts = np.cumsum([0] + [r.n_examples for r in self.readers])
        if examples is not None:
            self.check_examples(examples)

    def check_examples(self, examples: Examples) -> None:
        want = file_sha256(examples.path / "manifest.json")
        if want != self.manifest["examples"]["manifest_sha256"]:
            raise CacheError(f"{self.path} was made from other examples than {examples.path}")
        read_manifest(examples.path)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def gather(self, indices) -> dict[str, np.ndarray]:
        """Positions of the examples (in order): ids / logp ``[N, k]`` padded to the largest
        k of the request (logp −inf), tail ``[N]``, entry counts ``[N]``."""
        indices = np.asarray(indices, dtype=np.int64)
        shard = np.searchsorted(self.starts, indices, side="right") - 1
        parts = []
        # consecutive runs of the same shard keep the request's order
        cuts = np.flatnonzero(np.diff(shard)) + 1
        for run in np.split(np.arange(indices.size), cuts):
            if run.size == 0:
                continue
            k = int(shard[run[0]])
            local = (indices[run] - self.starts[k]).astype(np.uint64)
            parts.append(self.readers[k].gather(local))
        width = max(p[0].shape[1] for p in parts)

        def pad(a, value):
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=value)

        return {
            "ids": np.concatenate([pad(p[0], 0) for p in parts]),
            "logp": np.concatenate([pad(p[1], -np.inf) for p in parts]),
            "tail": np.concatenate([p[2] for p in parts]),
            "counts": np.concatenate([p[3] for p in parts]),
        }
