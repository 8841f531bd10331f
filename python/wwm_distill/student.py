"""Students: a Hugging Face masked-LM directory as it is, a smaller model built from
chosen layers of a bigger one (embeddings, those layers, MLM head), or a fresh config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from wwm_distill.data import Examples
from wwm_distill.errors import TrainingError
from wwm_distill.model import check_vocab, load_masked_lm


def spread_layers(total: int, n: int) -> list[int]:
    """``n`` layer indices spread evenly over ``total`` (always the first and last)."""
    if not 1 <= n <= total:
        raise TrainingError(f"--num-layers {n}: the model has {total} layers")
    if n == 1:
        return [total - 1]
    return [round(i * (total - 1) / (n - 1)) for i in range(n)]


def has_tokenizer(directory: Path) -> bool:
    return (directory / "vocab.txt").is_file() or (directory / "tokenizer.json").is_file()


def layer_container(model):
    enc = model.base_model.encoder
    if not hasattr(enc, "layer"):
        raise TrainingError(f"{type(model).__name__}: no encoder.layer list to pick layers from")
    return enc


def build_student(
    *,
    student: str | os.PathLike | None = None,
    init_from: str | os.PathLike | None = None,
    layers: list[int] | None = None,
    num_layers: int | None = None,
    config: str | os.PathLike | None = None,
    examples: Examples | None = None,
    seed: int = 0,
):
    """Returns ``(model, source_dir)``; ``source_dir`` holds the tokenizer files."""
    from transformers import AutoConfig, AutoModelForMaskedLM

    chosen = [x for x in (student, init_from, config) if x is not None]
    if len(chosen) != 1:
        raise TrainingError("give exactly one of --student, --init-from or --config")
    if student is not None:
        model = load_masked_lm(student)
        source = Path(student)
    elif init_from is not None:
        big = load_masked_lm(init_from)
        total = big.config.num_hidden_layers
        picked = layers if layers else spread_layers(total, num_layers or total)
        if any(not 0 <= i < total for i in picked):
            raise TrainingError(f"--layers {picked}: the model has layers 0..{total - 1}")
        cfg = big.config.__class__.from_dict(
            {**big.config.to_dict(), "num_hidden_layers": len(picked)}
        )
        model = AutoModelForMaskedLM.from_config(cfg)
        src_state = big.state_dict()
        prefix = next(k for k in src_state if ".layer.0." in k).split(".layer.0.")[0]
        state = {}
        for k, v in src_state.items():
            if k.startswith(prefix + ".layer."):
                rest = k[len(prefix) + 7 :]
                old, tail = rest.split(".", 1)
                if int(old) in picked:
                    state[f"{prefix}.layer.{picked.index(int(old))}.{tail}"] = v
            else:
                state[k] = v
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [m for m in missing if not m.endswith("position_ids")]
        if missing or unexpected:
            raise TrainingError(
                f"cannot map weights: missing {missing[:3]}, unexpected {unexpected[:3]}"
            )
        model.tie_weights()
        model.config.wwm_distill_layers = picked
        source = Path(init_from)
    else:
        torch.manual_seed(seed)
        cfg_path = Path(config)
        try:
            cfg_dict = json.loads(cfg_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise TrainingError(f"{cfg_path}: cannot read the config ({e})") from None
        model_type = cfg_dict.pop("model_type", "bert")
        if examples is not None:  # sizes the examples fix, unless the config says otherwise
            cfg_dict.setdefault("vocab_size", examples.manifest["vocab"]["size"])
            cfg_dict.setdefault("pad_token_id", examples.pad_id)
        model = AutoModelForMaskedLM.from_config(AutoConfig.for_model(model_type, **cfg_dict))
        source = cfg_path.parent
        if examples is not None and not has_tokenizer(source):
            vocab = Path(examples.manifest["vocab"]["path"])  # the examples' own vocabulary
            source = vocab if vocab.is_dir() else vocab.parent
    if examples is not None:
        check_vocab(source, examples, model)
    return model, source
