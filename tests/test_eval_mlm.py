"""distill-eval --task mlm: masked-LM scores against a plain reference from the full-sequence
head (computed here, in float64, from Python-side batches), the teacher-cache metrics (the
teacher agrees with its own cache, KL ~ 0 for it and > 0 for a random model), reruns that
skip, and the refusals (other vocabulary, too few positions, a cache of other examples)."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import wwm_distill  # noqa: E402
from conftest import one_torch_thread, save_model, tiny_config  # noqa: E402
from wwm_distill.cache import TeacherCache  # noqa: E402
from wwm_distill.cli import eval as cli  # noqa: E402
from wwm_distill.data import Examples  # noqa: E402
from wwm_distill.eval import mlm  # noqa: E402
from wwm_distill.model import load_masked_lm  # noqa: E402

TIE = 1e-3  # logit gaps below this may order differently across batchings / thread counts


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One thread: tiny models gain nothing from more, and lose a lot on a busy machine."""
    with one_torch_thread():
        yield


def reference(model_dir: Path, examples_dir: Path, indices=None, cache_dir: Path | None = None):
    """Scores from the full-sequence head in float64, one example at a time (memoised)."""
    key = (str(model_dir), str(examples_dir), None if indices is None else tuple(indices))
    key += (str(cache_dir),)
    if key not in _REFERENCES:
        _REFERENCES[key] = _reference(model_dir, examples_dir, indices, cache_dir)
    return _REFERENCES[key]


_REFERENCES: dict[tuple, dict] = {}


def _reference(model_dir: Path, examples_dir: Path, indices, cache_dir: Path | None):
    model = load_masked_lm(model_dir)
    ex = Examples(examples_dir)
    cache = TeacherCache(cache_dir, ex) if cache_dir else None
    indices = range(len(ex)) if indices is None else indices
    logits, labels, t_ids, t_logp, t_tail = [], [], [], [], []
    with torch.no_grad():
        for i in indices:
            e = ex[int(i)]
            ids = torch.from_numpy(e["input_ids"].astype(np.int64))[None]
            full = model(input_ids=ids).logits[0].double().numpy()
            logits.append(full[e["masked_positions"].astype(np.int64)])
            labels.append(e["masked_labels"].astype(np.int64))
            if cache is not None:
                g = cache.gather([int(i)])
                t_ids += list(g["ids"])
                t_logp += list(g["logp"])
                t_tail += list(g["tail"])
    z = np.concatenate(logits)
    y = np.concatenate(labels)
    logq = z - z.max(1, keepdims=True)
    logq -= np.log(np.exp(logq).sum(1, keepdims=True))
    rows = np.arange(y.size)
    label_z = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    ranked = -np.sort(-others, axis=1)
    out = {
        "n": y.size,
        "ce": float(-logq[rows, y].mean()),
        "top1_hits": int((label_z > ranked[:, 0]).sum()),
        "top5_hits": int((label_z > ranked[:, 4]).sum()),
        # positions whose top-1 / top-5 membership a rounding difference could flip
        "top1_ties": int((np.abs(label_z - ranked[:, 0]) < TIE).sum()),
        "top5_ties": int((np.abs(label_z - ranked[:, 4]) < TIE).sum()),
    }
    if cache is not None:
        width = max(len(a) for a in t_ids)
        ids = np.array([np.pad(a, (0, width - len(a))) for a in t_ids])
        logp = np.array([np.pad(a, (0, width - len(a)), constant_values=-np.inf) for a in t_logp])
        valid = np.isfinite(logp)
        p = np.where(valid, np.exp(np.where(valid, logp, 0.0)), 0.0)
        lq = logq[rows[:, None], ids]
        out["kl"] = float(np.where(valid, p * (np.where(valid, logp, 0.0) - lq), 0.0).sum(1).mean())
        top2 = -np.sort(-z, axis=1)[:, :2]
        out["agree"] = int((z.argmax(1) == ids[:, 0]).sum())
        out["agree_ties"] = int((top2[:, 0] - top2[:, 1] < TIE).sum())
    return out


def close_hits(percent: float, n: int, hits: int, ties: int) -> bool:
    return abs(round(percent * n / 100) - hits) <= ties


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_scores_match_full_sequence_reference(trained_model, examples_dir, batch_size):
    ref = reference(trained_model, examples_dir)
    got = mlm.evaluate(trained_model, examples_dir, batch_size=batch_size, progress=False)
    m = got["metrics"]
    assert got["positions"] == ref["n"] and got["n_eval"] == len(Examples(examples_dir))
    assert m["ce"] == pytest.approx(ref["ce"], rel=1e-4, abs=1e-5)
    assert m["perplexity"] == pytest.approx(math.exp(m["ce"]), rel=1e-9)
    assert close_hits(m["top1"], ref["n"], ref["top1_hits"], ref["top1_ties"])
    assert close_hits(m["top5"], ref["n"], ref["top5_hits"], ref["top5_ties"])
    assert 0.0 <= m["top1"] <= m["top5"] <= 100.0
    assert "kl" not in m and "teacher_agreement" not in m


def test_sample_of_examples_is_fixed(random_model, examples_dir):
    n = len(Examples(examples_dir))
    idx = mlm.sample_indices(n, 10)
    assert idx.size == 10 and np.all(np.diff(idx) > 0)
    assert np.array_equal(idx, mlm.sample_indices(n, 10))
    assert np.array_equal(mlm.sample_indices(n, None), np.arange(n))
    assert np.array_equal(mlm.sample_indices(n, n + 5), np.arange(n))
    got = mlm.evaluate(random_model, examples_dir, max_examples=10, progress=False)
    ref = reference(random_model, examples_dir, idx)
    assert got["n_eval"] == 10 and got["positions"] == ref["n"]
    assert got["metrics"]["ce"] == pytest.approx(ref["ce"], rel=1e-4)
    # a random model: CE near log(vocabulary size)
    vocab = Examples(examples_dir).manifest["vocab"]["size"]
    assert abs(got["metrics"]["ce"] - math.log(vocab)) < 1.0


def test_teacher_against_its_own_cache(trained_model, random_model, examples_dir, cache_dir):
    ref = reference(trained_model, examples_dir, cache_dir=cache_dir)
    got = mlm.evaluate(trained_model, examples_dir, cache_dir, batch_size=8, progress=False)
    m, n = got["metrics"], ref["n"]
    # agreement with its own top-k is 100 % up to near-ties of its two best tokens
    assert close_hits(m["teacher_agreement"], n, n, ref["agree_ties"])
    assert ref["agree"] >= n - ref["agree_ties"]
    # KL over the stored entries: only the cache's log-prob quantisation is left, each
    # stored log-prob off by at most half a step
    half = TeacherCache(cache_dir).manifest["mode"]["logprob_step"] / 2
    mass = got["teacher_stored_mass"]
    assert m["kl"] == pytest.approx(ref["kl"], abs=1e-4)
    assert abs(m["kl"]) <= half * mass + 1e-4 and m["kl_bucket"] > -(half * mass + 1e-4)
    assert 0.0 < mass <= math.exp(half) + 1e-6
    # the plain metrics do not change with a cache
    plain = mlm.evaluate(trained_model, examples_dir, batch_size=8, progress=False)["metrics"]
    for k in ("top1", "top5", "ce"):
        assert m[k] == pytest.approx(plain[k], abs=1e-6)
    # a random model is far from the teacher
    r = mlm.evaluate(random_model, examples_dir, cache_dir, progress=False)["metrics"]
    rref = reference(random_model, examples_dir, cache_dir=cache_dir)
    assert r["kl"] == pytest.approx(rref["kl"], rel=1e-4)
    assert r["kl"] > 0.5 and r["kl_bucket"] > 0.0
    assert r["teacher_agreement"] < m["teacher_agreement"] and r["top1"] < m["top1"]


def test_score_positions_by_hand():
    # two positions over a vocabulary of 6
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.1, 0.1, 0.05, 0.05]] * 2))
    labels = torch.tensor([0, 5])
    ids = torch.tensor([[0, 1], [0, 3]])
    logp = torch.log(torch.tensor([[0.5, 0.2], [0.8, float("nan")]]))
    logp[1, 1] = -float("inf")  # padding
    tail = torch.tensor([0.3, 0.2])
    v = mlm.score_positions(logits, labels, ids, logp, tail)
    assert v["top1"].tolist() == [1.0, 0.0] and v["top5"].tolist() == [1.0, 0.0]
    assert v["ce"].tolist() == pytest.approx([-math.log(0.5), -math.log(0.05)])
    assert v["agreement"].tolist() == [1.0, 1.0]
    # the same distribution on the stored entries: 0; then 0.8 log(0.8 / 0.5)
    assert v["kl"].tolist() == pytest.approx([0.0, 0.8 * math.log(0.8 / 0.5)], abs=1e-6)
    # tail bucket: 0.3 log(0.3 / 0.3) = 0; 0.2 log(0.2 / 0.5)
    bucket = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    assert v["kl_bucket"].tolist() == pytest.approx([0.0, bucket], abs=1e-6)
    assert bucket > 0  # the bucketed KL is a true KL of the merged distributions
    assert v["stored_mass"].tolist() == pytest.approx([0.7, 0.8])


# ----------------------------------------------------------------------------- CLI


def _run(capsys, args: list[str]) -> tuple[str, str]:
    cli.main(args)
    out = capsys.readouterr()
    return out.out, out.err


def test_cli_table_results_and_rerun(
    tmp_path, capsys, trained_model, random_model, examples_dir, cache_dir
):
    out = tmp_path / "results"
    args = ["--task", "mlm", "--examples", str(examples_dir), "--cache", str(cache_dir)]
    args += ["--model", str(trained_model), str(random_model), "--out", str(out)]
    table, log = _run(capsys, args)
    runs = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert [r["model_name"] for r in runs] == ["trained", "random"]
    for r in runs:
        assert r["task"] == "mlm" and r["examples"] == str(examples_dir.resolve())
        assert r["cache"] == str(cache_dir.resolve()) and len(r["cache_manifest_sha256"]) == 64
        assert (
            len(r["examples_manifest_sha256"]) == 64 and r["hparams"]["max_eval_examples"] is None
        )
        assert set(r["metrics"]) == {
            "top1", "top5", "ce", "perplexity", "teacher_agreement", "kl", "kl_bucket",
        }  # fmt: skip
        assert "seed" not in r and r["time_s"] > 0
    header = table.splitlines()[0]
    assert header.startswith("| model | examples | positions | Top-1 % | Top-5 % | CE (nats) |")
    assert "Teacher top-1 agreement %" in header and "KL stored (nats)" in header
    assert re.search(r"^\| trained \|", table, re.M) and re.search(r"^\| random \|", table, re.M)
    assert "mlm: trained: top1" in log
    md = (out / "results-mlm.md").read_text(encoding="utf-8")
    assert table.strip() in md and "one run per model" in md and "## Runs" not in md
    # a rerun skips both; another sample size, or no cache, is another run
    again, log = _run(capsys, args)
    assert again == table and log.count("finished before, skipped") == 2
    assert json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"] == runs
    plain, log = _run(capsys, args[:4] + ["--model", str(random_model), "--out", str(out)])
    assert "skipped" not in log and "agreement" not in plain.splitlines()[0]
    _, log = _run(capsys, [*args, "--max-eval-examples", "5", "--quiet"])
    assert log == ""
    runs = json.loads((out / "results.json").read_text(encoding="utf-8"))["runs"]
    assert len(runs) == 5 and runs[-1]["n_eval"] == 5


def test_help_explains_mlm(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert "--task mlm" in text and "--examples" in text and "--cache" in text
    assert "one run per model" in text and "--seeds" in text and "stored entries" in text


@pytest.fixture(scope="module")
def short_model(tmp_path_factory, small_vocab) -> Path:
    """Like random_model, but with only 32 positions (the examples are up to 64 long)."""
    n = len((small_vocab / "vocab.txt").read_text(encoding="utf-8").split("\n")) - 1
    config = tiny_config(n)
    config.max_position_embeddings = 32
    return save_model(
        transformers.BertForMaskedLM(config), tmp_path_factory.mktemp("m") / "short", small_vocab
    )


@pytest.fixture(scope="module")
def other_vocab_model(tmp_path_factory, random_model) -> Path:
    path = tmp_path_factory.mktemp("m") / "other-vocab"
    shutil.copytree(random_model, path)
    lines = (path / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[10], lines[11] = lines[11], lines[10]
    (path / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def other_examples(tmp_path_factory, zh_docs, small_vocab) -> Path:
    d = tmp_path_factory.mktemp("other_ex")
    (d / "o.txt").write_text("\n".join(zh_docs[:10]) + "\n", encoding="utf-8")
    wwm_distill.prepare([d / "o.txt"], d / "ex", small_vocab / "vocab.txt", progress=False)
    return d / "ex"


@pytest.mark.parametrize(
    "case, message",
    [
        ("other-vocab", r"other-vocab: vocabulary differs from the one the examples were made"),
        ("short", r"short: the model takes at most 32 positions .* up to \d+ tokens long"),
        ("other-examples", r"was made from other examples than"),
        ("no-examples", r"--task mlm needs --examples DIR"),
        ("seeds", r"--seeds, --lr: not for --task mlm"),
        ("data", r"--data: not for --task mlm"),
        ("not-examples", r"no examples manifest"),
        ("batch", r"batch_size must be positive"),
        ("examples-finetune", r"--examples is for --task mlm"),
    ],
)
def test_cli_errors(
    tmp_path,
    capsys,
    case,
    message,
    random_model,
    examples_dir,
    cache_dir,
    short_model,
    other_vocab_model,
    other_examples,
):
    model, task, extra = random_model, "mlm", ["--examples", str(examples_dir)]
    if case == "other-vocab":
        model = other_vocab_model
    elif case == "short":
        model = short_model
    elif case == "other-examples":
        extra = ["--examples", str(other_examples), "--cache", str(cache_dir)]
    elif case == "no-examples":
        extra = []
    elif case == "seeds":
        extra += ["--seeds", "2", "--lr", "1e-3"]
    elif case == "data":
        extra += ["--data", str(tmp_path)]
    elif case == "not-examples":
        extra = ["--examples", str(tmp_path)]
    elif case == "batch":
        extra += ["--batch-size", "0"]
    elif case == "examples-finetune":
        task, extra = "tnews", ["--data", str(tmp_path), "--examples", str(examples_dir)]
    args = ["--task", task, "--model", str(model), "--out", str(tmp_path / "r"), *extra]
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "--quiet"])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("distill-eval: error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "r" / "results.json").exists()
