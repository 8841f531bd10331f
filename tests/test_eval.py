"""distill-eval: metrics against hand-computed cases, the format loaders on fixtures of every
task, sliding-window span features and n-best decoding, and end-to-end runs of each task
family on a tiny random BERT (the loss falls, results.json / the tables are well formed,
reruns skip finished runs)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import one_torch_thread

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from wwm_distill.cli import eval as cli  # noqa: E402
from wwm_distill.eval import TASKS, data, features, metrics  # noqa: E402
from wwm_distill.eval.data import DataError, SpanExample  # noqa: E402
from wwm_distill.eval.finetune import defaults, load_tokenizer  # noqa: E402
from wwm_distill.eval.report import mean_std  # noqa: E402
from wwm_distill.eval.tasks import find_split  # noqa: E402

FIX = Path(__file__).parent / "fixtures" / "eval"

# ----------------------------------------------------------------------------- metrics


def test_accuracy():
    assert metrics.accuracy(["1", "0", "1", "1"], ["1", "1", "1", "0"]) == 50.0
    with pytest.raises(ValueError):
        metrics.accuracy(["1"], ["1", "0"])


def test_segments_mix_characters_and_words():
    # CJK characters one by one; other runs as words (numbers whole); marks removed.
    assert metrics.segments("Apple的iPhone 12手机，售价5,999元。") == [
        "apple", "的", "iphone", "12", "手", "机", "售", "价", "5,999", "元",
    ]  # fmt: skip
    assert metrics.segments("《红楼梦》") == ["红", "楼", "梦"]
    assert metrics.segments("  ") == []


def test_longest_common_substring_is_contiguous():
    assert metrics.longest_common_substring(list("北京大学"), list("北京的大学")) == 2
    assert metrics.longest_common_substring(list("abcde"), list("xbcdy")) == 3
    assert metrics.longest_common_substring([], list("abc")) == 0


@pytest.mark.parametrize(
    "prediction, answers, f1, em",
    [
        ("北京", ["北京"], 1.0, 1.0),
        # lcs 2 of a 4-segment prediction and a 2-segment answer: p 1/2, r 1 -> 2/3
        ("北京大学", ["北京"], 2 / 3, 0.0),
        # a common substring, not subsequence: lcs 2, p 2/5, r 2/4 -> 4/9
        ("北京的大学", ["北京大学"], 4 / 9, 0.0),
        # punctuation and spaces are removed for both F1 and EM
        ("《红楼梦》", ["红楼梦"], 1.0, 1.0),
        ("红楼 梦", ["红楼梦"], 1.0, 1.0),
        ("一九八七年。", ["一九八七年"], 1.0, 1.0),
        # case is folded; an English word is one segment: p 2/4, r 2/2 -> 2/3
        ("iPhone 6手机", ["IPHONE 6"], 2 / 3, 0.0),
        # the best over all reference answers: "1998年" gives 2/3, "1998" gives 1
        ("1998", ["1998年", "1998"], 1.0, 1.0),
        # p 1, r 2/3 -> 0.8 (the second answer scores less)
        ("嘉峪", ["嘉峪关", "西至嘉峪关"], 0.8, 0.0),
        ("", ["明朝"], 0.0, 0.0),
        ("唐朝", ["明朝"], 0.5, 0.0),
    ],
)
def test_cmrc2018_f1_em(prediction, answers, f1, em):
    assert metrics.span_f1(prediction, answers) == pytest.approx(f1)
    assert metrics.span_em(prediction, answers) == em


def test_cmrc2018_corpus_scores():
    scores = metrics.cmrc2018(
        ["明朝", "嘉峪", ""], [["明朝", "明朝", "明"], ["嘉峪关"], ["一九八七年"]]
    )
    assert scores["em"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0) / 3)
    assert scores["average"] == pytest.approx((scores["em"] + scores["f1"]) / 2)


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == "2.00 ± 1.00"
    assert mean_std([81.234]) == "81.23"


# ----------------------------------------------------------------------------- loaders


@pytest.mark.parametrize(
    "task, name, n, first",
    [
        ("lcqmc", "lcqmc/train.tsv", 16, ("怎么把照片", "手机里的照片", "1")),
        ("lcqmc", "lcqmc/LCQMC_dev.csv", 6, ("怎么把视频", "电脑上怎样", "1")),
        ("lcqmc", "lcqmc.jsonl", 3, ("手机充不进电", "手机无法充电", "1")),
        ("afqmc", "afqmc.jsonl", 2, ("借呗还款日", "借呗能不能", "1")),
        ("cmnli", "cmnli.jsonl", 3, ("小明每天早上", "小明会骑", "entailment")),
        ("xnli", "xnli.tsv", 4, ("他把窗户", "屋子里的", "entailment")),
        ("xnli", "xnli_original.tsv", 2, ("猫坐在垫子上", "有一只猫", "entailment")),
        ("tnews", "tnews/train.json", 15, ("主队在最后", None, "103")),
        ("chnsenticorp", "chnsenticorp.tsv", 3, ("房间干净整洁", None, "1")),
        ("chnsenticorp", "chnsenticorp_htl.csv", 2, ("早餐种类多,", None, "1")),
        ("thucnews", "thucnews.txt", 3, ("国家队在热身赛", None, "体育")),
        ("thucnews", "thucnews.jsonl", 2, ("网球公开赛", None, "体育")),
    ],
)
def test_classification_loaders(task, name, n, first):
    examples = data.load(FIX / name, TASKS[task])
    assert len(examples) == n
    ex, (a, b, label) = examples[0], first
    assert ex.text_a.startswith(a) and ex.label == label
    assert ex.text_b is None if b is None else ex.text_b.startswith(b)


def test_loader_details():
    # the BOM is gone and a quoted field keeps its comma
    dev = data.load(FIX / "lcqmc" / "LCQMC_dev.csv", TASKS["lcqmc"])
    assert dev[1].text_a == "你好，请问银行几点开门？" and dev[1].line == 3
    # integer labels in JSON lines; blank lines skipped
    assert [ex.label for ex in data.load(FIX / "lcqmc.jsonl", TASKS["lcqmc"])] == ["1", "0", "1"]
    # CMNLI "-" records are skipped; XNLI "contradictory" is contradiction
    assert [ex.label for ex in data.load(FIX / "cmnli.jsonl", TASKS["cmnli"])] == [
        "entailment", "contradiction", "neutral",
    ]  # fmt: skip
    assert data.load(FIX / "xnli.tsv", TASKS["xnli"])[1].label == "contradiction"
    # a TSV quote is text
    assert data.load(FIX / "xnli.tsv", TASKS["xnli"])[3].text_a == '"雨停了"，她说。'
    # labels discovered from the train split when the task has no fixed set
    train = data.load(FIX / "tnews" / "train.json", TASKS["tnews"])
    assert data.labels_of(TASKS["tnews"], train) == ("103", "104", "108")
    assert data.labels_of(TASKS["lcqmc"], []) == ("0", "1")


def test_span_loaders():
    train = data.load(FIX / "cmrc2018" / "cmrc2018_train.json", TASKS["cmrc2018"])
    assert len(train) == 7
    for ex in train:
        assert ex.context[ex.answer_start :].startswith(ex.answers[0])
    # the fixture's answer_start of this one is off by 3: the nearest "苏堤" is taken
    off = next(ex for ex in train if ex.id == "TRAIN_0_QUERY_3")
    assert off.shifted and off.answer_start == off.context.rfind("苏堤")
    assert sum(ex.shifted for ex in train) == 1
    dev = data.load(FIX / "cmrc2018" / "cmrc2018_dev.json", TASKS["cmrc2018"])
    assert dev[0].answers == ("明朝", "明朝", "明")
    drcd = data.load(FIX / "drcd.json", TASKS["drcd"])
    assert [ex.answers[0] for ex in drcd] == ["信義區", "一百零一層"]


def _write(tmp_path: Path, name: str, text: str, encoding="utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


AFQMC_LINE = '{"sentence1": "甲", "sentence2": "乙", "label": "0"}\n'
SQUAD_NO_ANSWER = """{"data": [{"paragraphs": [{"context": "甲乙",
"qas": [
{"id": "q1", "question": "问", "answers": []}]}]}]}"""
SQUAD_NO_CONTEXT = """{"data": [{"paragraphs": [{"qas": [
{"id": "q2", "question": "问", "answers": [{"text": "甲"}]}]}]}]}"""


@pytest.mark.parametrize(
    "task, name, text, message",
    [
        ("lcqmc", "a.tsv", "甲\t乙\t1\n丙\t丁\n", r"a\.tsv:2: expected 3 fields \(text_a, text_b"),
        ("lcqmc", "b.csv", "sentence1,sentence2,label\n甲,乙,2\n", r"b\.csv:2: label '2' is not"),
        ("lcqmc", "g.csv", 'sentence1,sentence2,label\n"甲,乙,1\n', r"g\.csv:2: expected 3 fields"),
        ("afqmc", "c.json", AFQMC_LINE + '{"sentence1": 1\n', r"c\.json:2: not a JSON object"),
        (
            "afqmc",
            "test.json",
            '{"id": 0, "sentence1": "甲", "sentence2": "乙"}\n',
            r":1: no label",
        ),
        ("cmnli", "d.json", '{"sentence1": "甲", "label": "neutral"}\n', r":1: expected two"),
        ("xnli", "e.tsv", "text_a\ttext_b\tlabel\n甲\t乙\tmaybe\n", r"e\.tsv:2: label 'maybe'"),
        ("tnews", "f.json", '{"label": "", "sentence": "甲"}\n', r"f\.json:1: no label"),
        ("cmrc2018", "h.json", '{"data": [\n{"paragraphs": [\n', r"h\.json:3: invalid JSON"),
        ("cmrc2018", "i.json", '[{"context": "甲"}]', r"i\.json: not SQuAD-format JSON"),
        ("drcd", "j.json", SQUAD_NO_ANSWER, r"j\.json:3: question 'q1': expected answers"),
        ("cmrc2018", "k.json", SQUAD_NO_CONTEXT, r"k\.json:2: question 'q2': .* no context"),
    ],
)
def test_loader_errors_name_file_and_line(tmp_path, task, name, text, message):
    with pytest.raises(DataError, match=message):
        data.load(_write(tmp_path, name, text), TASKS[task])


def test_loader_rejects_other_encodings(tmp_path):
    path = _write(tmp_path, "gbk.tsv", "甲\t乙\t1\n", encoding="gbk")
    with pytest.raises(DataError, match=r"gbk\.tsv: not UTF-8"):
        data.load(path, TASKS["lcqmc"])


def test_eval_labels_must_be_known():
    train = data.load(FIX / "tnews" / "train.json", TASKS["tnews"])
    odd = [data.TextExample("甲", None, "116", 7)]
    with pytest.raises(DataError, match=r"dev\.json:7: label '116' is not in the train split"):
        data.check_labels("dev.json", odd, data.labels_of(TASKS["tnews"], train))


def test_subset_is_fixed_and_in_order():
    items = list(range(100))
    a, b = data.subset(items, 10), data.subset(items, 10)
    assert a == b == sorted(a) and len(set(a)) == 10
    assert data.subset(items, None) is items and data.subset(items, 500) is items


def _labelled(counts: dict[str, int]) -> list[data.TextExample]:
    """Examples of each label, interleaved as in a real file."""
    out, line = [], 0
    for i in range(max(counts.values())):
        for label, n in counts.items():
            if i < n:
                line += 1
                out.append(data.TextExample(f"{label}{i}", None, label, line))
    return out


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_stratified_split_keeps_proportions(fraction):
    counts = {"体育": 97, "财经": 50, "科技": 13, "房产": 2, "家居": 1}
    examples = _labelled(counts)
    train, test = data.stratified_split(examples, fraction, seed=0)
    # disjoint, complete, each in file order
    assert len(train) + len(test) == len(examples)
    assert not {ex.line for ex in train} & {ex.line for ex in test}
    assert [ex.line for ex in train] == sorted(ex.line for ex in train)
    assert [ex.line for ex in test] == sorted(ex.line for ex in test)
    assert len(test) == round(fraction * len(examples))
    for label, n in counts.items():
        held = sum(ex.label == label for ex in test)
        assert abs(held - fraction * n) < 1 + 1e-9  # within one example of the quota
        assert sum(ex.label == label for ex in train) >= 1  # every label is learnt
    # seeded: the same seed gives the same split, another seed another one
    assert data.stratified_split(examples, fraction, seed=0) == (train, test)
    other = data.stratified_split(examples, fraction, seed=1)[1]
    assert [ex.line for ex in other] != [ex.line for ex in test]
    assert sorted(ex.label for ex in other) == sorted(ex.label for ex in test)


def test_runs_of_earlier_results_files_still_match():
    from wwm_distill.eval.runner import same_run

    old = {"task": "lcqmc", "model": "/m", "seed": 0, "hparams": {"lr": 1.0}}  # no "split"
    assert same_run(old, {**old, "split": None})
    assert not same_run(old, {**old, "split": {"kind": "stratified"}})
    assert not same_run(old, {**old, "seed": 1})


def test_stratified_split_errors():
    examples = _labelled({"a": 3, "b": 3})
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="test fraction must be between 0 and 1"):
            data.stratified_split(examples, bad)
    with pytest.raises(ValueError, match="leaves no test example"):
        data.stratified_split(examples, 0.01)
    # a label with one example stays in train
    train, test = data.stratified_split(_labelled({"a": 1, "b": 9}), 0.5)
    assert [ex.label for ex in train].count("a") == 1 and len(test) == 5


def test_find_split(tmp_path):
    assert find_split(FIX / "lcqmc", "train").name == "train.tsv"
    assert find_split(FIX / "lcqmc", "dev").name == "LCQMC_dev.csv"
    assert find_split(FIX / "cmrc2018", "dev").name == "cmrc2018_dev.json"
    for name in ("DRCD_training.json", "cnews.val.txt", "labels.json"):
        (tmp_path / name).write_text("")
    assert find_split(tmp_path, "train").name == "DRCD_training.json"
    assert find_split(tmp_path, "dev").name == "cnews.val.txt"
    (tmp_path / "dev.json").write_text("")
    with pytest.raises(ValueError, match="several dev splits .*--eval FILE"):
        find_split(tmp_path, "dev")
    with pytest.raises(ValueError, match=r"no train split .*--train FILE"):
        find_split(FIX, "train")


# ----------------------------------------------------------------------------- span features


@pytest.fixture(scope="module")
def char_vocab(tmp_path_factory) -> Path:
    """A character vocabulary of every fixture file, plus ASCII letters and digits."""
    chars = set("abcdefghijklmnopqrstuvwxyz0123456789")
    for path in FIX.rglob("*"):
        if path.is_file():
            chars |= {c for c in path.read_text(encoding="utf-8-sig").lower() if not c.isspace()}
    d = tmp_path_factory.mktemp("char_vocab")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    (d / "vocab.txt").write_text("\n".join(specials + sorted(chars)) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, char_vocab) -> Path:
    """A tiny randomly initialised BERT masked LM with only vocab.txt for a tokenizer."""
    torch.manual_seed(0)
    n = len((char_vocab / "vocab.txt").read_text(encoding="utf-8").split())
    config = transformers.BertConfig(
        vocab_size=n,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    path = tmp_path_factory.mktemp("models") / "tiny-bert"
    transformers.BertForMaskedLM(config).save_pretrained(path)
    (path / "vocab.txt").write_bytes((char_vocab / "vocab.txt").read_bytes())
    return path


def test_tokenizer_from_vocab_or_config(char_vocab, vocab_dir):
    tok = load_tokenizer(char_vocab)  # vocab.txt only
    assert tok.is_fast and tok.convert_ids_to_tokens(tok("西湖")["input_ids"])[1:3] == ["西", "湖"]
    assert load_tokenizer(vocab_dir).is_fast  # with tokenizer_config.json
    with pytest.raises(ValueError, match="no tokenizer"):
        load_tokenizer(FIX)


def test_sliding_windows_label_the_answer(char_vocab):
    tok = load_tokenizer(char_vocab)
    examples = data.load(FIX / "cmrc2018" / "cmrc2018_train.json", TASKS["cmrc2018"])
    feats = features.span_features(tok, examples, max_length=48, doc_stride=16, with_positions=True)
    per_example = np.bincount(feats.example_index)
    assert len(per_example) == len(examples) and per_example.min() >= 3  # long contexts
    starts, ends = feats.tensors["start_positions"], feats.tensors["end_positions"]
    assert feats.tensors["input_ids"].shape == (len(feats), 48)
    found = set()
    for f, e in enumerate(feats.example_index):
        s, t = int(starts[f]), int(ends[f])
        if s == 0:
            assert t == 0
            continue
        offs, ex = feats.offsets[f], examples[e]
        assert ex.context[offs[s][0] : offs[t][1]] == ex.answers[0]
        assert offs[s][0] == ex.answer_start
        found.add(e)
    assert found == set(range(len(examples)))  # every answer is whole in some window
    # the windows cover every context token, neighbours sharing exactly doc_stride tokens
    for e, ex in enumerate(examples):
        windows = [
            [o for o in feats.offsets[f] if o] for f, i in enumerate(feats.example_index) if i == e
        ]
        whole = tok(ex.context, add_special_tokens=False, return_offsets_mapping=True)
        assert sorted({o for w in windows for o in w}) == [
            tuple(o) for o in whole["offset_mapping"]
        ]
        assert windows[-1][-1][1] == len(ex.context)
        for left, right in zip(windows, windows[1:]):
            assert len(set(left) & set(right)) == 16 and right[0] == left[-16]


def test_windows_need_room_for_the_context(char_vocab):
    tok = load_tokenizer(char_vocab)
    examples = data.load(FIX / "drcd.json", TASKS["drcd"])
    with pytest.raises(ValueError, match="max_seq_length 24 leaves .* doc_stride 16"):
        features.span_features(tok, examples, max_length=24, doc_stride=16, with_positions=False)


def test_decode_spans_takes_best_valid_span_over_windows(char_vocab):
    tok = load_tokenizer(char_vocab)
    context = "长城东起山海关，西至嘉峪关，全长八千八百多千米。" * 3
    ex = SpanExample("q", "长城西边到哪里？", context, ("嘉峪关",), context.find("嘉峪关"), False)
    feats = features.span_features(tok, [ex], max_length=32, doc_stride=8, with_positions=False)
    assert len(feats) > 1
    n, width = len(feats), 32
    start, end = np.full((n, width), -100.0), np.full((n, width), -100.0)
    # window 0: the wanted span "嘉峪关" scores 5 + 5
    s = next(i for i, o in enumerate(feats.offsets[0]) if o and o[0] == context.find("嘉峪关"))
    start[0, s], end[0, s + 2] = 5.0, 5.0
    # higher logits that are invalid: on [CLS], and an end before its start
    start[0, 0] = end[0, 0] = 50.0
    start[0, s + 4], end[0, s - 1] = 20.0, 20.0
    # window 1: a valid but lower-scoring one-token span
    t = next(i for i, o in enumerate(feats.offsets[1]) if o)
    start[1, t], end[1, t] = 4.0, 4.0
    other = context[feats.offsets[1][t][0] : feats.offsets[1][t][1]]
    assert features.decode_spans([ex], feats, start, end, 20, 30) == ["嘉峪关"]
    # "嘉峪关" is 3 tokens: too long for max_answer_length 2
    assert features.decode_spans([ex], feats, start, end, 20, 2) == [other]
    # n_best 1: window 0 offers only [CLS] ([CLS]), so window 1 wins
    assert features.decode_spans([ex], feats, start, end, 1, 30) == [other]
    # no valid span at all: ''
    assert features.decode_spans([ex], feats, start[:, :1], end[:, :1], 20, 30) == [""]


def test_defaults_and_overrides():
    cls, span = defaults(TASKS["lcqmc"]), defaults(TASKS["cmrc2018"])
    assert (cls.lr, cls.batch_size, cls.epochs, cls.max_seq_length) == (2e-5, 32, 3, 128)
    assert (span.lr, span.epochs, span.max_seq_length, span.doc_stride) == (3e-5, 2, 384, 128)
    assert (span.max_answer_length, span.n_best, span.warmup_ratio) == (30, 20, 0.1)
    assert defaults(TASKS["tnews"], lr=1e-3, epochs=None).lr == 1e-3
    with pytest.raises(ValueError, match="doc_stride"):
        defaults(TASKS["drcd"], doc_stride=-1)
    with pytest.raises(ValueError, match="batch_size must be positive"):
        defaults(TASKS["lcqmc"], batch_size=0)


# ----------------------------------------------------------------------------- end to end

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # distill-eval's default
FAST = ["--lr", "3e-3", "--batch-size", "4", "--epochs", "12", "--max-seq-length", "64"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: tiny models gain nothing from more, and lose a lot on a busy machine."""
    with one_torch_thread():
        yield


def _run(capsys, args: list[str], quiet=True) -> tuple[str, str]:
    cli.main(args + ["--quiet"] if quiet else args)
    out = capsys.readouterr()
    return out.out, out.err


def _check_runs(out_dir: Path, task: str, n: int, metric_names: tuple[str, ...]) -> list[dict]:
    runs = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))["runs"]
    assert len(runs) == n
    for run in runs:
        assert run["task"] == task and run["model_name"] == "tiny-bert"
        assert set(run["metrics"]) == set(metric_names)
        assert all(0.0 <= v <= 100.0 and math.isfinite(v) for v in run["metrics"].values())
        assert run["train_loss"][-1] < 0.9 * run["train_loss"][0]  # the loss falls
        assert run["time_s"] > 0 and run["device"] == DEVICE
        assert run["hparams"]["lr"] == 3e-3 and run["hparams"]["batch_size"] == 4
    assert [r["seed"] for r in runs] == list(range(n))
    return runs


def test_end_to_end_pair_with_rerun(tmp_path, capsys, tiny_model):
    out = tmp_path / "results"
    args = ["--task", "lcqmc", "--data", str(FIX / "lcqmc"), "--model", str(tiny_model)]
    args += ["--seeds", "2", "--out", str(out), *FAST]
    table, log = _run(capsys, args, quiet=False)
    runs = _check_runs(out, "lcqmc", 2, ("accuracy",))
    assert runs[0]["n_train"] == 16 and runs[0]["n_eval"] == 6
    assert runs[0]["train_file"].endswith("train.tsv")
    assert "| model | seeds | Accuracy | s / run |" in table and "| tiny-bert | 2 |" in table
    assert " ± " in table and "lcqmc: tiny-bert seed 1: accuracy" in log
    md = (out / "results-lcqmc.md").read_text(encoding="utf-8")
    assert table.strip() in md and "## Runs" in md and md.count("| tiny-bert |") == 3
    # the rerun skips both runs and prints the same table; a third seed runs alone
    again, log = _run(capsys, args, quiet=False)
    assert again == table and log.count("finished before, skipped") == 2
    assert json.loads((out / "results.json").read_text())["runs"] == runs
    _run(capsys, [*args, "--seeds", "3"])
    assert len(_check_runs(out, "lcqmc", 3, ("accuracy",))) == 3


def test_end_to_end_single_sentence(tmp_path, capsys, tiny_model):
    out = tmp_path / "results"
    tnews = FIX / "tnews"
    args = ["--task", "tnews", "--train", str(tnews / "train.json"), "--eval"]
    args += [str(tnews / "dev.json"), "--model", str(tiny_model), "--seeds", "1"]
    table, _ = _run(capsys, args + ["--out", str(out), *FAST, "--max-eval-examples", "4"])
    (run,) = _check_runs(out, "tnews", 1, ("accuracy",))
    assert run["n_eval"] == 4 and run["hparams"]["max_eval_examples"] == 4
    assert "| tiny-bert | 1 |" in table


def test_end_to_end_span(tmp_path, capsys, tiny_model):
    out = tmp_path / "results"
    args = ["--task", "cmrc2018", "--data", str(FIX / "cmrc2018"), "--model", str(tiny_model)]
    args += ["--seeds", "1", "--out", str(out), *FAST, "--doc-stride", "16"]
    table, _ = _run(capsys, args)
    (run,) = _check_runs(out, "cmrc2018", 1, ("em", "f1", "average"))
    assert run["n_train"] == 7 and run["n_eval"] == 5
    assert run["train_features"] > run["n_train"]  # long contexts make several windows
    assert run["metrics"]["average"] == pytest.approx(
        (run["metrics"]["em"] + run["metrics"]["f1"]) / 2
    )
    assert "| model | seeds | EM | F1 | Average | s / run |" in table


THUCNEWS_TEXTS = {
    "体育": "国家队在热身赛中以二比零战胜对手，主教练赛后表示满意",
    "财经": "央行宣布下调存款准备金率，市场流动性将更加充裕",
    "科技": "新款手机搭载自研芯片，续航和拍照都有明显提升",
}


def _thucnews_file(tmp_path: Path, per_label: int = 10) -> Path:
    """A THUCNews-style JSON-lines file (scripts/corpus.py): category, granularity, text."""
    lines = []
    for category, text in THUCNEWS_TEXTS.items():  # grouped by category, like the real file
        for i in range(per_label):
            record = {"category": category, "granularity": "sentence", "text": text[i:] + text[:i]}
            lines.append(json.dumps(record, ensure_ascii=False))
    path = tmp_path / "thucnews.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_end_to_end_one_file_split(tmp_path, capsys, tiny_model):
    out = tmp_path / "results"
    path = _thucnews_file(tmp_path)
    args = ["--task", "thucnews", "--data", str(path), "--model", str(tiny_model)]
    args += ["--seeds", "2", "--out", str(out), *FAST, "--epochs", "4"]
    args += ["--test-fraction", "0.3", "--split-seed", "7"]
    table, _ = _run(capsys, args)
    runs = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert len(runs) == 2
    for run in runs:  # 3 of each label's 10 held out
        assert run["n_train"] == 21 and run["n_eval"] == 9
        assert run["split"] == {"kind": "stratified", "test_fraction": 0.3, "seed": 7}
        assert run["train_file"] == run["eval_file"] == str(path.resolve())
        assert 0.0 <= run["metrics"]["accuracy"] <= 100.0
    md = (out / "results-thucnews.md").read_text(encoding="utf-8")
    assert "stratified 70 / 30 (train / test), split seed 7: 21 train / 9 test" in md
    _run(capsys, [*args, "--max-eval-examples", "5", "--out", str(tmp_path / "sample")])
    md = (tmp_path / "sample" / "results-thucnews.md").read_text(encoding="utf-8")
    assert "split seed 7: 21 train / 5 of 9 test examples" in md
    assert "| tiny-bert | 2 |" in table
    # the rerun skips; another split seed is another run
    _, log = _run(capsys, args, quiet=False)
    assert log.count("finished before, skipped") == 2
    _run(capsys, [*args[:-1], "8", "--seeds", "1"])
    runs = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert len(runs) == 3 and runs[-1]["split"]["seed"] == 8


def test_one_file_split_uses_the_default_fraction(tmp_path, capsys, tiny_model):
    out = tmp_path / "results"
    args = ["--task", "thucnews", "--data", str(_thucnews_file(tmp_path)), "--model"]
    args += [str(tiny_model), "--seeds", "1", "--out", str(out), *FAST, "--epochs", "1"]
    _run(capsys, args)
    (run,) = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert run["split"] == {"kind": "stratified", "test_fraction": 0.2, "seed": 0}
    assert run["n_train"] == 24 and run["n_eval"] == 6


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--data", str(FIX / "cmrc2018" / "cmrc2018_train.json"), "--task", "cmrc2018"],
         "a span task needs separate train and dev files"),
        (["--data", str(FIX / "lcqmc"), "--test-fraction", "0.2"],
         "--test-fraction / --split-seed split one labelled file: give --data FILE"),
        (["--data", str(FIX / "afqmc.jsonl"), "--test-fraction", "1"],
         "--test-fraction must be between 0 and 1"),
        (["--data", str(FIX / "nothing.jsonl")], "nothing.jsonl: no such file or directory"),
        (["--data", str(FIX / "afqmc.jsonl"), "--train", str(FIX / "afqmc.jsonl")],
         "either --data or --train/--eval"),
        (["--data", str(FIX / "afqmc.jsonl")], "leaves no test example"),
    ],
)  # fmt: skip
def test_one_file_split_errors(tmp_path, capsys, tiny_model, extra, message):
    args = ["--task", "afqmc", "--model", str(tiny_model), "--out", str(tmp_path), *extra]
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "--quiet"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("distill-eval: error: ") and err.count("\n") == 1
    assert re.search(re.escape(message), err), err


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give --data DIR, --data FILE, or both --train FILE and --eval FILE"),
        (["--data", str(FIX)], "eval: no train split"),
        (["--data", str(FIX / "lcqmc"), "--task", "afqmc", "--model", str(FIX)], "no config.json"),
        (["--train", str(FIX / "afqmc.jsonl"), "--eval", str(FIX / "cmnli.jsonl")],
         r"cmnli\.jsonl:1: label 'entailment' is not one of 0, 1 \(afqmc\)"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(tmp_path, capsys, tiny_model, extra, message):
    args = ["--task", "afqmc", "--model", str(tiny_model), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        cli.main(args + extra)
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("distill-eval: error: ") and err.count("\n") == 1
    assert re.search(message, err)


def test_help_documents_defaults(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "2e-5" in text and "3e-5" in text and "--max-train-examples" in text
    assert "cmrc2018_dev.json" in text
    assert "--test-fraction" in text and "--split-seed" in text and "stratified" in text
