"""Fine-tune one model with one seed on one task and score it: a thin PyTorch loop over the
standard ``transformers`` heads (``AutoModelForSequenceClassification``,
``AutoModelForQuestionAnswering``).

AdamW (no decay on biases and LayerNorm weights), linear warm-up then linear decay to 0,
gradient clipping at 1.0, bf16 autocast on a GPU, fp32 on the CPU. The seed sets the new
head's initialisation, dropout and the order of the training examples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from wwm_distill.eval import features, metrics
from wwm_distill.eval.tasks import SPAN, Task
from wwm_distill.model import default_device


@dataclass(frozen=True)
class Hyper:
    lr: float
    batch_size: int
    epochs: int
    max_seq_length: int
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    doc_stride: int = 128  # span tasks: tokens shared by neighbouring windows
    max_answer_length: int = 30  # span tasks: tokens (one per Chinese character)
    n_best: int = 20  # span tasks: start and end candidates per window
    max_train_examples: int | None = None
    max_eval_examples: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


# The usual fine-tuning settings of the Chinese BERT-wwm / CLUE baselines.
CLASSIFICATION_DEFAULTS = Hyper(lr=2e-5, batch_size=32, epochs=3, max_seq_length=128)
SPAN_DEFAULTS = Hyper(lr=3e-5, batch_size=32, epochs=2, max_seq_length=384)


def defaults(task: Task, **overrides) -> Hyper:
    """The task family's defaults with the given (non-None) settings replacing them."""
    base = SPAN_DEFAULTS if task.family == SPAN else CLASSIFICATION_DEFAULTS
    hp = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    for name in ("lr", "batch_size", "epochs", "max_seq_length", "n_best", "max_answer_length"):
        if getattr(hp, name) <= 0:
            raise ValueError(f"{name} must be positive, not {getattr(hp, name)}")
    for name in ("max_train_examples", "max_eval_examples"):
        if getattr(hp, name) is not None and getattr(hp, name) <= 0:
            raise ValueError(f"{name} must be positive, not {getattr(hp, name)}")
    if hp.doc_stride < 0:
        raise ValueError(f"doc_stride must not be negative, not {hp.doc_stride}")
    return hp


def pick_device(name: str | None = None) -> torch.device:
    return torch.device(name or default_device())


def load_tokenizer(model_dir: str | Path):
    """The model directory's fast tokenizer: ``tokenizer.json`` if there is one, else a BERT
    WordPiece tokenizer over ``vocab.txt`` (with ``tokenizer_config.json``'s casing)."""
    from transformers import AutoTokenizer, BertTokenizerFast

    d = Path(model_dir)
    if (d / "tokenizer.json").is_file():
        tok = AutoTokenizer.from_pretrained(str(d), local_files_only=True)
    elif (d / "vocab.txt").is_file():
        config = d / "tokenizer_config.json"
        settings = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        keep = ("do_lower_case", "strip_accents", "tokenize_chinese_chars")
        tok = BertTokenizerFast(
            vocab=str(d / "vocab.txt"), **{k: settings[k] for k in keep if k in settings}
        )
    else:
        raise ValueError(f"{d}: no tokenizer (tokenizer.json or vocab.txt)")
    if not tok.is_fast:
        raise ValueError(f"{d}: the tokenizer has no fast version (character offsets needed)")
    return tok


def load_model(model_dir: str | Path, task: Task, num_labels: int = 0):
    """The checkpoint with a new, randomly initialised task head."""
    import transformers

    d = Path(model_dir)
    if not (d / "config.json").is_file():
        raise ValueError(f"{d}: not a model directory (no config.json)")
    if task.family == SPAN:
        auto, kw = transformers.AutoModelForQuestionAnswering, {}
    else:
        auto, kw = transformers.AutoModelForSequenceClassification, {"num_labels": num_labels}
    log = transformers.logging
    verbosity, bars = log.get_verbosity(), log.is_progress_bar_enabled()
    log.set_verbosity_error()  # "newly initialized head weights" is expected
    log.disable_progress_bar()
    try:
        return auto.from_pretrained(
            str(d), local_files_only=True, ignore_mismatched_sizes=True, **kw
        )
    finally:
        log.set_verbosity(verbosity)
        if bars:
            log.enable_progress_bar()


def finetune(
    task: Task,
    model_dir: str | Path,
    train: list,
    evaluation: list,
    hp: Hyper,
    seed: int,
    labels: tuple[str, ...] = (),
    device: torch.device | None = None,
    progress: bool = True,
) -> dict:
    """Train on ``train``, score on ``evaluation``: metrics (percent), per-epoch mean
    training loss and the sizes of the splits."""
    import transformers

    device = device or pick_device()
    transformers.set_seed(seed)
    model = load_model(model_dir, task, len(labels)).to(device)
    run = Run(model, load_tokenizer(model_dir), hp, seed, device, progress, Path(model_dir).name)
    if task.family == SPAN:
        return _spans(run, train, evaluation)
    return _classes(run, train, evaluation, labels)


@dataclass
class Run:
    """What one fine-tuning run works with."""

    model: torch.nn.Module
    tok: object
    hp: Hyper
    seed: int
    device: torch.device
    progress: bool
    name: str


def _classes(r: Run, train: list, evaluation: list, labels: tuple[str, ...]) -> dict:
    def batches(examples, with_labels):
        return lambda idx: features.encode_texts(
            r.tok, [examples[i] for i in idx], r.hp.max_seq_length, labels if with_labels else None
        )

    losses = fit(r, len(train), batches(train, True))
    (logits,) = predict(r, len(evaluation), batches(evaluation, False))
    predicted = [labels[i] for i in logits.argmax(-1)]
    accuracy = metrics.accuracy(predicted, [ex.label for ex in evaluation])
    return {
        "metrics": {"accuracy": accuracy},
        "train_loss": losses,
        "n_train": len(train),
        "n_eval": len(evaluation),
    }


def _spans(r: Run, train: list, evaluation: list) -> dict:
    hp = r.hp
    train = [ex for ex in train if ex.answer_start >= 0]  # drop answers not in their context
    if not train:
        raise ValueError("no training question has its answer in the context")
    feats = features.span_features(r.tok, train, hp.max_seq_length, hp.doc_stride, True)
    losses = fit(r, len(feats), _rows(feats))
    evals = features.span_features(r.tok, evaluation, hp.max_seq_length, hp.doc_stride, False)
    start, end = predict(r, len(evals), _rows(evals))
    answers = features.decode_spans(evaluation, evals, start, end, hp.n_best, hp.max_answer_length)
    return {
        "metrics": metrics.cmrc2018(answers, [ex.answers for ex in evaluation]),
        "train_loss": losses,
        "n_train": len(train),
        "n_eval": len(evaluation),
        "train_features": len(feats),
        "eval_features": len(evals),
    }


def _rows(feats: features.SpanFeatures) -> Callable:
    return lambda idx: {k: v[list(idx)] for k, v in feats.tensors.items()}


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def fit(r: Run, n: int, batch_of: Callable) -> list[float]:
    """The training loop over ``n`` rows; returns the mean loss of every epoch."""
    from transformers import get_linear_schedule_with_warmup

    hp, model = r.hp, r.model
    params = list(model.parameters())  # biases and LayerNorm weights (1-D) are not decayed
    decay, no_decay = [p for p in params if p.ndim >= 2], [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay}],
        lr=hp.lr,
        weight_decay=0.0,
    )
    total = hp.epochs * math.ceil(n / hp.batch_size)
    sched = get_linear_schedule_with_warmup(opt, int(hp.warmup_ratio * total), total)
    order = torch.Generator().manual_seed(r.seed)
    model.train()
    epoch_loss = []
    bar = tqdm(total=total, desc=f"train {r.name}", disable=not r.progress, dynamic_ncols=True)
    with bar:
        for _ in range(hp.epochs):
            perm, losses = torch.randperm(n, generator=order).tolist(), []
            for i in range(0, n, hp.batch_size):
                rows = perm[i : i + hp.batch_size]
                batch = {k: v.to(r.device) for k, v in batch_of(rows).items()}
                with _autocast(r.device):
                    loss = model(**batch).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.update()
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            epoch_loss.append(float(np.mean(losses)))
    return epoch_loss


@torch.no_grad()
def predict(r: Run, n: int, batch_of: Callable) -> list[np.ndarray]:
    """Logits of every row: ``[logits]`` or ``[start_logits, end_logits]``, as numpy."""
    r.model.eval()
    size, outs = r.hp.batch_size, []
    for i in tqdm(range(0, n, size), desc="predict", disable=not r.progress, leave=False):
        rows = range(i, min(n, i + size))
        batch = {k: v.to(r.device) for k, v in batch_of(rows).items()}
        with _autocast(r.device):
            out = r.model(**batch)
        heads = ("start_logits", "end_logits") if "start_logits" in out else ("logits",)
        outs.append([out[h].float().cpu().numpy() for h in heads])
    return [np.concatenate(parts) for parts in zip(*outs)]
