"""Model inputs: encoded sentence batches, sliding-window span features, n-best decoding.

Span features are the standard ones (Hugging Face ``run_qa``): ``[CLS] question [SEP]
context window [SEP]``; a context longer than one window is cut into windows that overlap
by ``doc_stride`` tokens. A window that holds the whole answer is labelled with its first
and last token, any other with ``[CLS]`` (0). At prediction time the ``n_best`` highest
start and end logits of every window are paired, pairs outside the context, reversed or
longer than ``max_answer_length`` tokens are dropped, and the best start + end logit over
all windows of a question gives its answer, cut from the context by the token offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from wwm_distill.eval.data import SpanExample, TextExample

MAX_QUERY_LENGTH = 64  # tokens of the question kept in a span feature


def encode_texts(tokenizer, batch: list[TextExample], max_length: int, labels=None) -> dict:
    """One padded batch of sentences or sentence pairs (with ``labels`` ids if given)."""
    pairs = [ex.text_b for ex in batch] if batch[0].text_b is not None else None
    enc = tokenizer(
        [ex.text_a for ex in batch],
        pairs,
        truncation=True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    if labels is not None:
        enc["labels"] = torch.tensor([labels.index(ex.label) for ex in batch])
    return dict(enc)


@dataclass
class SpanFeatures:
    tensors: dict[str, torch.Tensor]  # input_ids, token_type_ids, attention_mask[, positions]
    example_index: list[int]  # the question each window belongs to
    offsets: list[list[tuple[int, int] | None]]  # context character span per token

    def __len__(self) -> int:
        return len(self.example_index)


def span_features(
    tokenizer,
    examples: list[SpanExample],
    max_length: int,
    doc_stride: int,
    with_positions: bool,
) -> SpanFeatures:
    """Every window of every example, padded to ``max_length``. The windows are cut here
    rather than by the tokenizer's overflow, which some ``tokenizers`` releases (0.23.2)
    stop after the second window."""
    cls, sep, pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
    questions = tokenizer(
        [ex.question for ex in examples],
        add_special_tokens=False,
        truncation=True,
        max_length=MAX_QUERY_LENGTH,
    )["input_ids"]
    contexts = tokenizer(
        [ex.context for ex in examples], add_special_tokens=False, return_offsets_mapping=True
    )
    rows: dict[str, list] = {"input_ids": [], "token_type_ids": [], "attention_mask": []}
    example_index, offsets = [], []
    for e, question in enumerate(questions):
        ids, offs = contexts["input_ids"][e], contexts["offset_mapping"][e]
        head = [cls, *question, sep]
        room = max_length - len(head) - 1
        if room <= doc_stride:
            raise ValueError(
                f"question {examples[e].id!r}: max_seq_length {max_length} leaves {room} context "
                f"tokens a window, not more than doc_stride {doc_stride}"
            )
        for start in _window_starts(len(ids), room, doc_stride):
            window = ids[start : start + room]
            tokens = head + window + [sep]
            padding = [0] * (max_length - len(tokens))
            rows["input_ids"].append(tokens + [pad] * len(padding))
            rows["token_type_ids"].append([0] * len(head) + [1] * (len(window) + 1) + padding)
            rows["attention_mask"].append([1] * len(tokens) + padding)
            offsets.append(
                [None] * len(head) + list(offs[start : start + room]) + [None] * (1 + len(padding))
            )
            example_index.append(e)
    tensors = {k: torch.tensor(v) for k, v in rows.items() if k in tokenizer.model_input_names}
    if with_positions:
        spans = [_token_span(examples[e], offs) for e, offs in zip(example_index, offsets)]
        tensors["start_positions"] = torch.tensor([s for s, _ in spans])
        tensors["end_positions"] = torch.tensor([e for _, e in spans])
    return SpanFeatures(tensors, example_index, offsets)


def _window_starts(n: int, room: int, overlap: int) -> list[int]:
    """Starts of windows of ``room`` tokens over ``n``, each sharing ``overlap`` with the last."""
    starts = [0]
    while starts[-1] + room < n:
        starts.append(starts[-1] + room - overlap)
    return starts


def _token_span(ex: SpanExample, offsets) -> tuple[int, int]:
    """First and last token of the answer in this window, or (0, 0) if it is not inside."""
    if ex.answer_start < 0:
        return 0, 0
    start, end = ex.answer_start, ex.answer_start + len(ex.answers[0])
    tokens = [i for i, o in enumerate(offsets) if o is not None]
    if not tokens or offsets[tokens[0]][0] > start or offsets[tokens[-1]][1] < end:
        return 0, 0
    first = next(i for i in tokens if offsets[i][1] > start)
    last = next(i for i in reversed(tokens) if offsets[i][0] < end)
    return first, last


def decode_spans(
    examples: list[SpanExample],
    features: SpanFeatures,
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    n_best: int,
    max_answer_length: int,
) -> list[str]:
    """The best answer text of every example ('' if no window offers a valid span)."""
    best = [(-np.inf, "") for _ in examples]
    for f, (e, offs) in enumerate(zip(features.example_index, features.offsets)):
        starts = np.argsort(start_logits[f])[::-1][:n_best]
        ends = np.argsort(end_logits[f])[::-1][:n_best]
        for s in starts:
            for t in ends:
                if offs[s] is None or offs[t] is None or t < s or t - s + 1 > max_answer_length:
                    continue
                score = start_logits[f][s] + end_logits[f][t]
                if score > best[e][0]:
                    best[e] = (score, examples[e].context[offs[s][0] : offs[t][1]])
    return [text for _, text in best]
