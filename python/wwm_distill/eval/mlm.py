"""Masked-LM scores of a model on held-out ``distill-prep`` examples (``--task mlm``).

At every masked position of the examples, with ``q = softmax(logits)`` the model's
distribution over the whole vocabulary (LM head at the masked positions only, fp32):

* ``top1`` / ``top5``: percent of positions whose true label is the model's most probable
  token / among its five most probable;
* ``ce``: mean cross entropy ``-log q[label]`` in nats; ``perplexity = exp(ce)``.

With a teacher cache made from the same examples (stored entries ``(id_j, p_j)`` per
position, ``p_j = exp`` of the stored, quantised log-prob; in a ``sample`` cache
``p_j = count_j / N``; ``tail`` the teacher mass left out of the entries):

* ``teacher_agreement``: percent of positions where the model's argmax is the cache's first
  stored id (the teacher's most probable token; in a ``sample`` cache the most drawn one);
* ``kl``: ``Σ_j p_j (log p_j - log q[id_j])`` summed over the *stored entries only*, mean
  over positions, nats. It is the teacher-weighted part of KL(teacher ‖ student) that the
  cache can see; the teacher's tail is left out, so it is not a full KL: it is 0 for a
  model equal to the teacher (up to the cache's quantisation), and can go slightly below 0
  when the model puts more mass on the stored ids than the teacher does;
* ``kl_bucket``: the same plus ``tail · (log tail - log(1 - Σ_j q[id_j]))``, i.e. the exact
  KL between teacher and model once every token that is not stored is merged into one
  "rest" outcome. It is ≥ 0 (up to quantisation) and never more than the full KL; with no
  tail (a ``sample`` cache, or top-k covering all the mass) it equals ``kl``.

The examples are scored in length-sorted batches; the metrics are sums over positions, so
they do not depend on the batch size beyond float rounding. Nothing is random: one run
per model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from wwm_distill import _core
from wwm_distill.cache import TeacherCache
from wwm_distill.data import Examples
from wwm_distill.errors import EvalError
from wwm_distill.model import check_vocab, load_masked_lm, masked_logits

TOP_K = 5
ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")  # positions start after padding_idx


def sample_indices(n: int, max_examples: int | None, seed: int = 0) -> np.ndarray:
    """A fixed random sample of ``max_examples`` example indices, sorted (all when None)."""
    if max_examples is None or max_examples >= n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_examples, replace=False)).astype(np.int64)


def position_limit(config) -> int:
    """The longest input the model takes (RoBERTa's positions start after its pad id)."""
    n = int(config.max_position_embeddings)
    if getattr(config, "model_type", "") in ROBERTA_TYPES:
        n -= int(getattr(config, "pad_token_id", 1) or 0) + 1
    return n


def check_positions(model_dir, model, examples: Examples, lengths: np.ndarray) -> int:
    """The model's position limit; a clear error if the examples are longer."""
    limit = position_limit(model.config)
    longest = int(lengths.max()) if lengths.size else 0
    if longest > limit:
        made = examples.manifest.get("params", {}).get("max_seq_length", "?")
        raise EvalError(
            f"{model_dir}: the model takes at most {limit} positions "
            f"(max_position_embeddings {model.config.max_position_embeddings}), but the "
            f"examples in {examples.path} are up to {longest} tokens long (distill-prep "
            f"--max-seq-length {made}); prepare shorter examples for this model"
        )
    return limit


def score_positions(
    logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_ids: torch.Tensor | None = None,
    teacher_logp: torch.Tensor | None = None,
    teacher_tail: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-position values ``[N]`` (float64): top1, top5, ce, and with the teacher's
    entries agreement, kl, kl_bucket (see the module docstring)."""
    logq = torch.log_softmax(logits.float(), dim=-1)
    best = logq.argmax(-1)
    top = logq.topk(min(TOP_K, logq.shape[-1]), dim=-1).indices
    out = {
        "top1": (best == labels).double(),
        "top5": (top == labels[:, None]).any(-1).double(),
        "ce": -logq.gather(1, labels[:, None]).squeeze(1).double(),
    }
    if teacher_ids is None:
        return out
    valid = torch.isfinite(teacher_logp)
    logp = torch.where(valid, teacher_logp.double(), torch.zeros((), dtype=torch.float64))
    p = torch.where(valid, logp.exp(), torch.zeros((), dtype=torch.float64))
    logq_ids = logq.gather(1, teacher_ids).double().masked_fill(~valid, 0.0)
    kl = (p * (logp - logq_ids)).sum(1)
    tail = teacher_tail.double().clamp_min(0.0)
    rest = (1.0 - (logq_ids.exp() * valid).sum(1)).clamp_min(1e-30)
    bucket = torch.where(tail > 0, tail * (tail.clamp_min(1e-30).log() - rest.log()), 0.0)
    out.update(
        agreement=(best == teacher_ids[:, 0]).double(),
        kl=kl,
        kl_bucket=kl + bucket,
        stored_mass=p.sum(1),
    )
    return out


def _load(model_dir, device):
    """``load_masked_lm`` without transformers' weight-loading progress bar."""
    from transformers.utils import logging

    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        return load_masked_lm(model_dir, device)
    finally:
        if bars:
            logging.enable_progress_bar()


@torch.inference_mode()
def evaluate(
    model_dir: str | Path,
    examples_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    max_examples: int | None = None,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> dict:
    """Scores of one model: ``metrics`` (percent for accuracies, nats for ce / kl) and the
    sizes (``n_eval`` examples, ``positions``)."""
    from tqdm import tqdm

    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, not {batch_size}")
    examples = Examples(examples_dir)
    if cache_dir is not None:
        TeacherCache(cache_dir, examples)  # refuses a cache of other examples
    model = _load(model_dir, device)
    check_vocab(model_dir, examples, model)
    lengths = examples.lengths()
    limit = check_positions(model_dir, model, examples, lengths)
    indices = sample_indices(len(examples), max_examples)
    batches = _core.Batches(str(examples_dir), None if cache_dir is None else str(cache_dir))
    order = indices[np.argsort(-lengths[indices], kind="stable")]
    sums: dict[str, float] = {}
    positions = 0
    chunks = range(0, order.size, batch_size)
    bar = tqdm(chunks, desc=f"mlm {Path(model_dir).name}", disable=not progress, leave=False)
    for s in bar:
        chunk = order[s : s + batch_size]
        longest = int(lengths[chunk].max())
        multiple = 8 if -(-longest // 8) * 8 <= limit else 1  # padding stays within limit
        b = batches.assemble(chunk.astype(np.uint64), multiple_of=multiple)
        if b["masked_labels"].size == 0:
            continue
        t = {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in b.items()}
        logits = masked_logits(
            model,
            t["input_ids"].long(),
            t["attention_mask"].long(),
            t["masked_rows"].long(),
            t["masked_positions"].long(),
        )
        cached = "teacher_ids" in t
        values = score_positions(
            logits,
            t["masked_labels"].long(),
            t["teacher_ids"].long() if cached else None,
            t.get("teacher_logp"),
            t.get("teacher_tail"),
        )
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + float(v.sum())
        positions += int(b["masked_labels"].size)
    if positions == 0:
        raise ValueError(f"{examples_dir}: no masked positions in the examples scored")
    mean = {k: v / positions for k, v in sums.items()}
    metrics = {
        "top1": 100.0 * mean["top1"],
        "top5": 100.0 * mean["top5"],
        "ce": mean["ce"],
        "perplexity": math.exp(mean["ce"]) if mean["ce"] < 700 else math.inf,
    }
    result = {"metrics": metrics, "n_eval": int(indices.size), "positions": positions}
    if cache_dir is not None:
        metrics.update(
            teacher_agreement=100.0 * mean["agreement"],
            kl=mean["kl"],
            kl_bucket=mean["kl_bucket"],
        )
        result["teacher_stored_mass"] = mean["stored_mass"]
    return result
