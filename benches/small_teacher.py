"""bench_cache's teacher: a small Chinese masked LM trained on the CPU in minutes with a
crop curriculum (no checkpoint can be downloaded here). The product trains teachers,
baselines and students with one loop, ``distill-train``; this bench keeps its own only for
the curriculum, so that its recorded figures stay those of the same teacher."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch
import transformers
from wwm_distill.data import Examples
from wwm_distill.head import CHECK_EXAMPLES, check_head, mlm_loss


def train(
    examples: Examples,
    indices,
    config: dict,
    *,
    steps: int,
    crop_tokens: int,
    crop_steps: int,
    lr: float,
    batch_size: int = 32,
    progress: bool = True,
):
    """A ``BertForMaskedLM`` of ``config`` (weights seeded 0) trained with plain masked LM
    on ``examples[indices]`` through ``Curriculum``; returns (model, last loss, head check
    on ``wwm_distill.head.check_sample``'s held-out examples)."""
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(transformers.BertConfig(**config))
    loss = train_mlm(
        model,
        Curriculum(examples, indices, crop_tokens, crop_steps),
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=0,
        progress=progress,
    )
    return model, loss, check_head(model, examples, CHECK_EXAMPLES)


def save(model, vocab: Path, out: Path, files: dict[str, str] | None = None) -> None:
    """``out`` as a complete model directory (weights, ``vocab.txt`` and ``files``), written
    beside it and renamed into place."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.copy(vocab, tmp / "vocab.txt")
    for name, text in (files or {}).items():
        (tmp / name).write_text(text, encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)


class Curriculum:
    """Some examples of an ``Examples``, as ``train_mlm`` takes them, with the
    first ``crop_steps`` batches cut to ``crop`` tokens per example (a window around a
    random masked position) and the rest whole, with fewer examples so that every step
    holds about as many tokens (``batch_size * crop / max_seq_length`` examples).

    Why: on this CPU a BERT trained on whole 128-token examples stays on the unigram
    plateau (it predicts the corpus' token frequencies whatever the context) for longer
    than the minutes we have; with uniform attention over 128 tokens the neighbours of a
    masked word barely reach it. On short windows it learns to use the context within a
    few hundred steps; the whole examples at the end train the positions past ``crop``.
    The objective stays plain masked LM on the examples' own masks.
    """

    def __init__(self, examples: Examples, indices, crop: int, crop_steps: int, seed: int = 0):
        self.examples = examples
        self.indices = np.asarray(indices, dtype=np.int64)
        self.max_len = int(examples.manifest["params"]["max_seq_length"])
        self.crop = crop
        self.crop_steps = crop_steps
        self.calls = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return int(self.indices.size)

    def batch(self, indices, multiple_of: int = 8) -> dict:
        indices = np.asarray(indices)
        self.calls += 1
        if self.calls > self.crop_steps:
            rows = max(1, indices.size * self.crop // self.max_len)
            return self.examples.batch(self.indices[indices[:rows]], multiple_of)
        b = self.examples.batch(self.indices[indices], multiple_of)
        if b["input_ids"].shape[1] <= self.crop:
            return b
        ids, mask = b["input_ids"], b["attention_mask"]
        rows, pos = b["masked_rows"], b["masked_positions"]
        n, crop = ids.shape[0], self.crop
        lengths = mask.sum(1)
        # a window of `crop` tokens around one masked position of each row
        anchor = np.array([self.rng.choice(pos[rows == r]) for r in range(n)])
        start = anchor - self.rng.integers(0, crop, size=n)
        start = np.clip(start, 0, np.maximum(lengths - crop, 0))
        cols = start[:, None] + np.arange(crop)[None, :]
        inside = cols < lengths[:, None]
        cols = np.minimum(cols, ids.shape[1] - 1)
        new_ids = np.where(inside, np.take_along_axis(ids, cols, 1), self.examples.pad_id)
        keep = (pos >= start[rows]) & (pos < start[rows] + crop)
        return {
            "input_ids": new_ids,
            "attention_mask": inside.astype(np.int64),
            "masked_rows": rows[keep],
            "masked_positions": pos[keep] - start[rows[keep]],
            "masked_labels": b["masked_labels"][keep],
        }


def train_mlm(
    model,
    examples: Examples,
    *,
    steps: int,
    lr=5e-4,
    batch_size=32,
    device="cpu",
    seed=0,
    progress=True,
) -> float:
    """Masked-LM training of a whole model on ``examples`` (a ``Curriculum``) with the hard
    labels; returns the last loss. bench_cache keeps this loop, and not ``distill-train``,
    only for its crop curriculum: its recorded figures are of the teacher it makes."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10)) * max(0.0, 1 - s / steps)
    )
    loss_value = float("nan")
    for _ in tqdm(range(steps), desc="mlm", disable=not progress, dynamic_ncols=True):
        idx = rng.choice(len(examples), size=min(batch_size, len(examples)), replace=False)
        loss = mlm_loss(model, examples, idx, device)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_value = float(loss.detach())
    model.eval()
    return loss_value
