"""The masked-LM head: the check that it is trained (top-1 on held-out positions vs always
predicting the most frequent token), and ``fit-head``, which trains only the head with the
encoder frozen."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from wwm_distill.data import Examples
from wwm_distill.errors import TeacherError
from wwm_distill.model import (
    TOKENIZER_FILES,
    check_vocab,
    length_bucketed,
    load_masked_lm,
    masked_logits,
    split_model,
    to_device_batch,
)

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
