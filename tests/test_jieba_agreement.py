"""jieba-rs (inside ``TextPipeline.cut``) must segment like Python jieba 0.42.

Agreement is word-level: the fraction of Python jieba's words, taken as (start, end)
character spans, that jieba-rs produces too. Run with ``-s`` to see the numbers.
"""

from __future__ import annotations

import logging

import pytest

jieba = pytest.importorskip("jieba")

MIN_AGREEMENT = 0.995


def spans(words: list[str]) -> list[tuple[int, int]]:
    out = []
    pos = 0
    for w in words:
        out.append((pos, pos + len(w)))
        pos += len(w)
    return out


@pytest.fixture(scope="module")
def py_jieba(tmp_path_factory: pytest.TempPathFactory):
    """A private Python jieba tokenizer whose dictionary cache lives in a temp directory."""
    jieba.setLogLevel(logging.WARNING)
    dt = jieba.Tokenizer()
    dt.tmp_dir = str(tmp_path_factory.mktemp("jieba"))
    dt.initialize()
    return dt


def agreement(rust_cut, py_cut, docs: list[str]) -> tuple[float, float, list[str]]:
    """(recall of Python's words, precision of jieba-rs' words, examples of differences)."""
    n_py = n_rs = n_common = 0
    diffs: list[str] = []
    for doc in docs:
        rs_words = rust_cut(doc)
        py_words = py_cut(doc)
        assert "".join(rs_words) == doc
        assert "".join(py_words) == doc
        rs_spans, py_spans = set(spans(rs_words)), set(spans(py_words))
        common = rs_spans & py_spans
        n_py += len(py_spans)
        n_rs += len(rs_spans)
        n_common += len(common)
        if rs_spans != py_spans and len(diffs) < 10:
            only_py = sorted(py_spans - rs_spans)
            only_rs = sorted(rs_spans - py_spans)
            diffs.append(
                f"py-only {[doc[s:e] for s, e in only_py]} rs-only {[doc[s:e] for s, e in only_rs]}"
            )
    return n_common / n_py, n_common / n_rs, diffs


@pytest.mark.parametrize("hmm", [True, False], ids=["hmm", "no-hmm"])
def test_jieba_rs_agrees_with_python_jieba(
    hmm: bool, vocab_file, zh_docs: list[str], py_jieba, record_property
) -> None:
    import wwm_distill

    pipeline = wwm_distill.TextPipeline(str(vocab_file), hmm=hmm)
    recall, precision, diffs = agreement(
        pipeline.cut, lambda text: py_jieba.lcut(text, HMM=hmm), zh_docs
    )
    record_property(f"jieba_agreement_{'hmm' if hmm else 'no_hmm'}", recall)
    print(
        f"\njieba agreement (HMM={hmm}) over {len(zh_docs)} docs: "
        f"{recall:.4%} of Python jieba's words, {precision:.4%} of jieba-rs' words"
    )
    for d in diffs:
        print("  " + d)
    assert recall >= MIN_AGREEMENT, "\n".join(diffs)


def test_default_pipeline_uses_hmm(text_pipeline, vocab_file, py_jieba) -> None:
    import wwm_distill

    no_hmm = wwm_distill.TextPipeline(str(vocab_file), hmm=False)
    # Unseen names and places: only the HMM joins their characters into words.
    for text in ["张晓蕾和李锦涛昨天去了图书馆。", "我们在周末去了趣玩岛，玩得很开心。"]:
        assert text_pipeline.cut(text) == py_jieba.lcut(text, HMM=True)
        assert no_hmm.cut(text) == py_jieba.lcut(text, HMM=False)
        assert text_pipeline.cut(text) != no_hmm.cut(text)
