"""Masked-LM models: loading a Hugging Face BERT/RoBERTa checkpoint, its encoder and LM
head, logits at the masked positions only, the vocabulary check against the examples, and
the examples' batches as tensors."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from wwm_distill import _core
from wwm_distill.data import Examples
from wwm_distill.errors import TeacherError

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def default_device() -> str:
    """The device when none is given: cuda if available, else cpu."""
    return "cuda" if torch.cuda.is_available() else "cpu"


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


# ----------------------------------------------------------------------------- batches


def to_device_batch(examples: Examples, indices, device) -> dict[str, torch.Tensor]:
    b = examples.batch(indices)
    return {k: torch.from_numpy(v).to(device) for k, v in b.items()}


def length_bucketed(examples: Examples, indices: np.ndarray, batch_size: int) -> list:
    """Batches of similar length (less padding); order within the run is restored later."""
    lengths = examples.lengths()[indices]
    order = np.argsort(-lengths, kind="stable")
    return [indices[order[s : s + batch_size]] for s in range(0, len(order), batch_size)]
