"""Reference whole-word-masking data prep in pure Python: the speed baseline.

Built from the parts such pipelines are usually made of: Python ``jieba`` 0.42 (HMM on) for
word boundaries, ``tokenizers``' ``BertWordPieceTokenizer`` for WordPiece ids with offsets,
Google's ``create_pretraining_data.py`` whole-word masking transcribed to Python, and numpy
for the output arrays. One process, one thread: documents are encoded one at a time with
``encode`` (only the ``*_batch`` methods of ``tokenizers`` use threads).

Semantics (the same as the Rust pipeline, so the comparison is fair):

* Input: ``.txt`` files, one document per line; a line is stripped of surrounding
  whitespace and skipped when it has fewer than 20 characters. ``.jsonl`` files are read
  too (``text``, or ``title`` + ``content``).
* Each document is tokenized without special tokens, with character offsets, and cut with
  ``jieba.cut(text, HMM=True)``. For every jieba word of >= 2 characters, all CJK (BERT's
  ``_is_chinese_char``), whose characters each map to exactly one token (matched by
  offsets, consecutive), the tokens after the first are continuations; so is every token
  starting with ``##``.
* Windows of 510 tokens with stride 256 (starts 0, 256, ... up to the first window that
  reaches the end), each framed as ``[CLS] window [SEP]``.
* Five maskings per window (dupe_factor 5), each with its own ``random.Random`` seeded from
  (seed, file, line, window, dupe). Candidate groups are a token plus the continuations
  after it; groups are shuffled and taken in order up to
  ``n = min(20, max(1, round(0.15 * len(tokens))))`` positions (a group that would exceed
  ``n`` is skipped). Each chosen token becomes ``[MASK]`` 80%, stays 10%, or becomes a
  random non-special id 10% (ids whose token looks like ``[...]`` are excluded).
* Output in ``out_dir``: ``input_ids.bin`` (uint16, all examples concatenated),
  ``offsets.npy`` (int64, examples + 1), ``masked_positions.npy`` / ``masked_labels.npy``
  (uint16, concatenated) with ``masked_offsets.npy`` (int64, examples + 1), and
  ``report.json`` (the dict that ``run_reference`` returns).

Usage::

    python benches/reference_prep.py --vocab VOCAB --out DIR [--seed N] INPUT...
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import time
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path

import jieba
import numpy as np
from tokenizers import BertWordPieceTokenizer

MAX_SEQ_LENGTH = 512
WINDOW = MAX_SEQ_LENGTH - 2
STRIDE = 256
DUPE_FACTOR = 5
MASKED_LM_PROB = 0.15
MAX_PREDICTIONS_PER_SEQ = 20
MIN_DOC_CHARS = 20

_SPECIAL = re.compile(r"^\[.+\]$")
_FLUSH_EVERY = 1 << 20  # uint16 values buffered before a write


def is_chinese_char(cp: int) -> bool:
    """BERT's ``_is_chinese_char``: the CJK Unified Ideographs blocks, not all of CJK."""
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


def read_documents(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every document of at least MIN_DOC_CHARS characters."""
    jsonl = path.suffix == ".jsonl"
    with path.open(encoding="utf-8", newline="\n") as f:
        for line_no, line in enumerate(f):
            if jsonl:
                if not line.strip():
                    continue
                rec = json.loads(line)
                text = rec.get("text") or "".join(
                    s for s in (rec.get("title"), rec.get("content")) if s
                )
            else:
                text = line
            text = text.strip()
            if len(text) >= MIN_DOC_CHARS:
                yield line_no, text


def window_starts(n_tokens: int) -> list[int]:
    """0, STRIDE, 2*STRIDE, ... up to the first window that reaches the end."""
    starts = [0]
    while starts[-1] + WINDOW < n_tokens:
        starts.append(starts[-1] + STRIDE)
    return starts


def continuation_flags(
    text: str, tokens: Sequence[str], offsets: Sequence[tuple[int, int]]
) -> list[bool]:
    """Which tokens continue the word of the token before them (jieba words and ``##``)."""
    flags = [tok.startswith("##") for tok in tokens]
    one_char = {start: i for i, (start, end) in enumerate(offsets) if end - start == 1}
    pos = 0
    for word in jieba.cut(text, HMM=True):
        n = len(word)
        if n >= 2 and all(is_chinese_char(ord(c)) for c in word):
            first = one_char.get(pos)
            if first is not None and all(one_char.get(pos + k) == first + k for k in range(1, n)):
                for k in range(1, n):
                    flags[first + k] = True
        pos += n
    return flags


def candidate_groups(is_continuation: Sequence[bool]) -> list[list[int]]:
    """Google's whole-word ``cand_indexes`` over ``[CLS] window [SEP]`` positions."""
    groups: list[list[int]] = []
    for i, cont in enumerate(is_continuation, start=1):  # position 0 is [CLS]
        if cont and groups:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def mask_window(
    ids: list[int],
    groups: list[list[int]],
    rng: random.Random,
    mask_id: int,
    random_ids: Sequence[int],
) -> tuple[list[int], list[int], list[int]]:
    """One masking of ``ids`` (with CLS/SEP): (masked ids, positions, labels)."""
    num_to_predict = min(MAX_PREDICTIONS_PER_SEQ, max(1, round(len(ids) * MASKED_LM_PROB)))
    order = groups[:]
    rng.shuffle(order)
    output = ids[:]
    masked: list[int] = []
    for group in order:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(group) > num_to_predict:
            continue
        for index in group:  # groups are disjoint, so no index is covered twice
            if rng.random() < 0.8:
                output[index] = mask_id
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output[index] = random_ids[rng.randint(0, len(random_ids) - 1)]
            masked.append(index)
    masked.sort()
    return output, masked, [ids[i] for i in masked]


class _Uint16Stream:
    """Concatenated uint16 values written to a file in large numpy chunks."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb")
        self._buf = array("H")
        self.count = 0

    def extend(self, values: Sequence[int]) -> None:
        self._buf.extend(values)
        self.count += len(values)
        if len(self._buf) >= _FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        np.frombuffer(self._buf, dtype=np.uint16).tofile(self._file)
        self._buf = array("H")

    def close(self) -> None:
        self.flush()
        self._file.close()


def run_reference(
    inputs: Sequence[str | os.PathLike[str]],
    vocab: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    seed: int = 12345,
) -> dict:
    """Run the baseline over ``inputs``; returns the counts and timings.

    ``elapsed_s`` covers everything from loading the tokenizer and jieba's dictionary to the
    last write; ``init_s`` is the loading part of it.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    tokenizer = BertWordPieceTokenizer(str(vocab), lowercase=True)
    id_to_token = {i: t for t, i in tokenizer.get_vocab().items()}
    cls_id, sep_id, mask_id, unk_id = (
        tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[MASK]", "[UNK]")
    )
    random_ids = [i for i in sorted(id_to_token) if not _SPECIAL.match(id_to_token[i])]
    init_s = time.perf_counter() - t0

    counts = dict.fromkeys(
        (
            "documents",
            "chars",
            "bytes",
            "doc_tokens",
            "unk_tokens",
            "windows",
            "examples",
            "masked",
            "tokens",
        ),
        0,
    )
    offsets = [0]
    masked_offsets = [0]
    input_ids = _Uint16Stream(out / "input_ids.bin")
    positions = array("H")
    labels = array("H")
    try:
        for file_idx, path in enumerate(map(Path, inputs)):
            for line_no, text in read_documents(path):
                enc = tokenizer.encode(text, add_special_tokens=False)
                ids = enc.ids
                counts["documents"] += 1
                counts["chars"] += len(text)
                counts["bytes"] += len(text.encode("utf-8"))
                counts["doc_tokens"] += len(ids)
                counts["unk_tokens"] += ids.count(unk_id)
                if not ids:
                    continue
                flags = continuation_flags(text, enc.tokens, enc.offsets)
                for w, start in enumerate(window_starts(len(ids))):
                    window = [cls_id, *ids[start : start + WINDOW], sep_id]
                    groups = candidate_groups(flags[start : start + WINDOW])
                    counts["windows"] += 1
                    for dupe in range(DUPE_FACTOR):
                        rng = random.Random(f"{seed}/{file_idx}/{line_no}/{w}/{dupe}")
                        masked_ids, pos, lab = mask_window(window, groups, rng, mask_id, random_ids)
                        input_ids.extend(masked_ids)
                        offsets.append(input_ids.count)
                        positions.extend(pos)
                        labels.extend(lab)
                        masked_offsets.append(len(positions))
    finally:
        input_ids.close()
    counts["examples"] = len(offsets) - 1
    counts["tokens"] = input_ids.count
    counts["masked"] = len(positions)
    np.save(out / "offsets.npy", np.asarray(offsets, dtype=np.int64))
    np.save(out / "masked_positions.npy", np.frombuffer(positions, dtype=np.uint16))
    np.save(out / "masked_labels.npy", np.frombuffer(labels, dtype=np.uint16))
    np.save(out / "masked_offsets.npy", np.asarray(masked_offsets, dtype=np.int64))
    elapsed = time.perf_counter() - t0
    report = {
        **counts,
        "init_s": init_s,
        "elapsed_s": elapsed,
        "chars_per_s": counts["chars"] / elapsed,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help=".txt (or .jsonl) files")
    parser.add_argument("--vocab", type=Path, required=True, help="BERT vocab.txt")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--json", action="store_true", help="print the report as JSON only")
    args = parser.parse_args(argv)
    report = run_reference(args.inputs, args.vocab, args.out, seed=args.seed)
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
            print(f"{key:>12}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
