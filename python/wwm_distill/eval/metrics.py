"""Metrics: accuracy, and the official CMRC2018 span metric (also used for DRCD).

CMRC2018 (``cmrc2018_evaluate.py`` of ymcui/cmrc2018), per question, best over all
reference answers:

* text is lower-cased and the official punctuation marks are removed;
* F1 is over *mixed segments*: every CJK character (U+4E00..U+9FA5) is one segment, and a
  run of other characters is split into words as ``nltk.word_tokenize`` does (whitespace
  separates and is dropped; numbers such as ``1,000`` and ``3.5`` stay whole; any other
  mark is a segment of its own). The overlap is the longest common *substring* of the two
  segment lists: precision = lcs / len(prediction), recall = lcs / len(reference);
* EM: the texts are equal once the punctuation marks and all whitespace are removed (the
  official script strips only outer whitespace; the two differ only on answers with inner
  spaces).

The corpus scores are percentages: EM, F1 and their average, the CMRC2018 headline number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# The official list, plus the ellipsis character it meant to list ("……").
PUNCTUATION = frozenset("-:_*^/\\~`+=，。：？！“”；’《》…·、「」（）－～『』")
CJK = re.compile(r"[\u4e00-\u9fa5]")
WORD = re.compile(r"\d+(?:[.,]\d+)+|\w+|[^\w\s]")


def accuracy(predictions: Sequence, labels: Sequence) -> float:
    if len(predictions) != len(labels) or not labels:
        raise ValueError("accuracy needs as many predictions as labels, at least one")
    return 100.0 * sum(p == g for p, g in zip(predictions, labels)) / len(labels)


def segments(text: str) -> list[str]:
    """CMRC2018's mixed segmentation, punctuation removed."""
    out: list[str] = []
    run = ""
    for ch in str(text).lower().strip():
        if ch in PUNCTUATION:
            continue
        if CJK.match(ch):
            out += WORD.findall(run)
            out.append(ch)
            run = ""
        else:
            run += ch
    return out + WORD.findall(run)


def longest_common_substring(a: Sequence, b: Sequence) -> int:
    """Length of the longest contiguous run that ``a`` and ``b`` share."""
    best, prev = 0, [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def span_f1(prediction: str, answers: Sequence[str]) -> float:
    """CMRC2018 F1 of one prediction, best over the reference answers (0..1)."""
    pred = segments(prediction)
    best = 0.0
    for answer in answers:
        ref = segments(answer)
        lcs = longest_common_substring(ref, pred)
        if lcs:
            p, r = lcs / len(pred), lcs / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def _bare(text: str) -> str:
    return "".join(ch for ch in str(text).lower() if ch not in PUNCTUATION and not ch.isspace())


def span_em(prediction: str, answers: Sequence[str]) -> float:
    """1.0 if the prediction equals one of the answers, punctuation and spaces removed."""
    return float(any(_bare(prediction) == _bare(a) for a in answers))


def cmrc2018(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> dict:
    """Corpus EM, F1 and their average, in percent."""
    if len(predictions) != len(references) or not references:
        raise ValueError("cmrc2018 needs one prediction per question, at least one")
    n = len(references)
    em = 100.0 * sum(span_em(p, r) for p, r in zip(predictions, references)) / n
    f1 = 100.0 * sum(span_f1(p, r) for p, r in zip(predictions, references)) / n
    return {"em": em, "f1": f1, "average": (em + f1) / 2}
