"""Format loaders: the public files of each task, auto-detected, as plain examples.

Classification files (pair or single sentence) may be

* JSON lines (CLUE: AFQMC, CMNLI, TNEWS; THUCNews-style ``category``/``text``);
* CSV, optionally with a byte-order mark (LCQMC ``sentence1,sentence2,label``,
  ChnSentiCorp hotels ``label,review``);
* TSV (LCQMC ``text_a<TAB>text_b<TAB>label``, XNLI ``text_a/text_b/label`` or the original
  multi-language ``xnli.*.tsv``, ChnSentiCorp ``label<TAB>text_a``, THUCNews
  ``category<TAB>text``).

A first row naming known columns is a header; without one, pair files are read as
``text_a, text_b, label`` and single-sentence files as ``label, text`` (``text, label``
when only the last field is a known label). Span extraction files are SQuAD-format JSON
(CMRC2018, DRCD); an answer that does not start at its ``answer_start`` is looked for in
the context and the nearest occurrence is taken.

Every record that does not fit raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from wwm_distill.eval.tasks import PAIR, SPAN, Task

TEXT_A = ("sentence1", "text_a", "premise", "sentence", "text", "review", "content", "query1")
TEXT_B = ("sentence2", "text_b", "hypothesis", "hypo", "query2")
LABEL = ("label", "gold_label", "category")
COLUMNS = set(TEXT_A + TEXT_B + LABEL + ("language",))


class DataError(ValueError):
    """A file or one of its records does not fit the task's format."""


@dataclass(frozen=True)
class TextExample:
    text_a: str
    text_b: str | None
    label: str
    line: int


@dataclass(frozen=True)
class SpanExample:
    id: str
    question: str
    context: str
    answers: tuple[str, ...]
    answer_start: int  # of answers[0] in context; -1 if it is not there
    shifted: bool  # the file's answer_start was off and the answer was found nearby


def load(path: str | Path, task: Task) -> list:
    """All examples of ``path`` for ``task``: TextExample or SpanExample objects."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if task.family == SPAN:
        return _squad(path, text)
    if text.lstrip().startswith("{"):
        rows = _json_lines(path, text)
    else:
        rows = _delimited(path, text, task)
    examples = [ex for n, rec in rows if (ex := _text_example(path, n, rec, task)) is not None]
    if not examples:
        raise DataError(f"{path}: no examples")
    return examples


def labels_of(task: Task, train: list[TextExample]) -> tuple[str, ...]:
    """The task's fixed labels, or those of its train split (sorted)."""
    return task.labels or tuple(sorted({ex.label for ex in train}))


def check_labels(path: str | Path, examples: list[TextExample], labels: tuple[str, ...]):
    for ex in examples:
        if ex.label not in labels:
            raise DataError(f"{path}:{ex.line}: label {ex.label!r} is not in the train split")


def subset(examples: list, n: int | None, seed: int = 0) -> list:
    """A fixed random sample of ``n`` examples in file order (all when n is None)."""
    if n is None or n >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


def stratified_split(
    examples: list[TextExample], test_fraction: float, seed: int = 0
) -> tuple[list[TextExample], list[TextExample]]:
    """A seeded stratified (train, test) split of one labelled file, both in file order.

    Every label gives ``test_fraction`` of its examples to the test part, the counts
    apportioned by largest remainder so the test part holds ``round(test_fraction * n)``
    examples and each label's share is within one example of its exact quota; a label
    always keeps at least one training example. The same ``seed`` gives the same split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test fraction must be between 0 and 1, not {test_fraction}")
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    labels = sorted(by_label)
    quota = {lab: test_fraction * len(by_label[lab]) for lab in labels}
    take = {lab: min(int(quota[lab]), len(by_label[lab]) - 1) for lab in labels}
    wanted = round(test_fraction * len(examples))
    # the remaining test places go to the labels with the largest fractional quotas
    for lab in sorted(labels, key=lambda lab: (take[lab] - quota[lab], lab)):
        if sum(take.values()) >= wanted:
            break
        if take[lab] < len(by_label[lab]) - 1:
            take[lab] += 1
    rng = random.Random(seed)
    test: set[int] = set()
    for lab in labels:
        test.update(rng.sample(by_label[lab], take[lab]))
    if not test:
        raise ValueError(
            f"{len(examples)} examples: a test fraction of {test_fraction} leaves no test example"
        )
    train = [ex for i, ex in enumerate(examples) if i not in test]
    return train, [ex for i, ex in enumerate(examples) if i in test]


# ----------------------------------------------------------------------------- classification


def _json_lines(path: Path, text: str):
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not a JSON object ({e.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{n}: not a JSON object")
        yield n, rec


def _delimited(path: Path, text: str, task: Task):
    first = text.split("\n", 1)[0]
    if "\t" in first:  # TSV files quote nothing: a quote is text
        reader = csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(io.StringIO(text))
    columns = None
    try:
        for row in reader:
            n = reader.line_num
            if not any(f.strip() for f in row):
                continue
            if columns is None:
                header = [f.strip().lower() for f in row]
                if COLUMNS.intersection(header):
                    columns = header
                    continue
                columns = _positional(task, row)
            if len(row) != len(columns):
                want = ", ".join(columns)
                raise DataError(
                    f"{path}:{n}: expected {len(columns)} fields ({want}), found {len(row)}"
                )
            yield n, dict(zip(columns, row))
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: {e}") from None


def _positional(task: Task, row: list[str]) -> list[str]:
    if task.family == PAIR:
        return ["text_a", "text_b", "label"]
    if task.labels and row[0].strip() not in task.labels and row[-1].strip() in task.labels:
        return ["text_a", "label"]
    return ["label", "text_a"]


def _field(rec: dict, names: tuple[str, ...]):
    """The first non-empty of these fields; '' if they are all empty; None if none is there."""
    present = [rec[k] for k in names if rec.get(k) is not None]
    return next((v for v in present if v != ""), present[0] if present else None)


def _text_example(path: Path, n: int, rec: dict, task: Task) -> TextExample | None:
    if rec.get("language", "zh") != "zh":  # the original multi-language XNLI files
        return None
    label = _field(rec, LABEL)
    a, b = _field(rec, TEXT_A), _field(rec, TEXT_B)
    keys = ", ".join(rec) or "none"
    if label is None or str(label).strip() == "":
        raise DataError(f"{path}:{n}: no label (fields: {keys})")
    if a is None or (task.family == PAIR and b is None):
        want = "two sentences" if task.family == PAIR else "a text"
        raise DataError(f"{path}:{n}: expected {want} (fields: {keys})")
    label = str(label).strip()
    label = task.aliases.get(label, label)
    if label in task.ignore:
        return None
    if task.labels and label not in task.labels:
        raise DataError(
            f"{path}:{n}: label {label!r} is not one of {', '.join(task.labels)} ({task.name})"
        )
    return TextExample(str(a), str(b) if task.family == PAIR else None, label, n)


# ----------------------------------------------------------------------------- span extraction


def _squad(path: Path, text: str) -> list[SpanExample]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise DataError(f"{path}: not SQuAD-format JSON (no top-level 'data' list)")
    examples = []
    for article in doc["data"]:
        for para in article.get("paragraphs", []):
            context = para.get("context")
            for qa in para.get("qas", []):
                examples.append(_span_example(path, text, context, qa))
    if not examples:
        raise DataError(f"{path}: no questions")
    return examples


def _span_example(path: Path, text: str, context, qa: dict) -> SpanExample:
    qid = str(qa.get("id", ""))

    def error(problem: str) -> DataError:
        return DataError(f"{path}:{_line_of(text, qid)}: question {qid!r}: {problem}")

    if not isinstance(context, str) or not context:
        raise error("its paragraph has no context")
    if not isinstance(
        qa.get("question"), str
    ):  # an empty question is kept (CMRC2018 trial has one)
        raise error("no question")
    answers = qa.get("answers") or []
    if not answers or any(not isinstance(a, dict) or not a.get("text") for a in answers):
        raise error("expected answers with a text")
    try:
        given = int(answers[0].get("answer_start", -1))
    except (TypeError, ValueError):
        raise error("answer_start is not a number") from None
    start = _locate(context, answers[0]["text"], given)
    texts = tuple(str(a["text"]) for a in answers)
    return SpanExample(qid, qa["question"], context, texts, start, start not in (-1, given))


def _locate(context: str, answer: str, start: int) -> int:
    """``start`` if the answer is there, else its occurrence nearest to it, else -1."""
    if start >= 0 and context.startswith(answer, start):
        return start
    hits, i = [], context.find(answer)
    while i != -1:
        hits.append(i)
        i = context.find(answer, i + 1)
    return min(hits, key=lambda h: abs(h - start), default=-1)


def _line_of(text: str, qid: str) -> int:
    """The line where the question id appears (1 when it cannot be found)."""
    at = text.find(json.dumps(qid, ensure_ascii=False)) if qid else -1
    return text.count("\n", 0, at) + 1 if at >= 0 else 1
