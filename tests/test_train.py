"""distill-train: the objective against plain full-vocabulary implementations, students built
from layers, the Rust batch path, exact resume, NaN stop, outputs, torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reference import ReferenceExamples  # noqa: E402  (tests/reference.py)
from wwm_distill import _core  # noqa: E402
from wwm_distill.cache import TeacherCache  # noqa: E402
from wwm_distill.data import Examples  # noqa: E402
from wwm_distill.objective import Objective  # noqa: E402
from wwm_distill.student import build_student, spread_layers  # noqa: E402
from wwm_distill.trainer import split_indices  # noqa: E402

TRAIN = [sys.executable, "-m", "wwm_distill.cli.train"]


def plain_loss(
    logits,
    ids,
    logp,
    tail,
    labels,
    *,
    alpha_ce=1.0,
    alpha_cos=1.0,
    alpha_mlm=0.0,
    temperature=1.0,
    tail_mode="drop",
):
    """The objective written out position by position over the full vocabulary."""
    total = 0.0
    for i in range(logits.shape[0]):
        z = [float(x) / temperature for x in logits[i]]
        m = max(z)
        lse = m + math.log(sum(math.exp(x - m) for x in z))
        s = [x - lse for x in z]
        entries = [
            (int(ids[i, j]), math.exp(float(logp[i, j])))
            for j in range(ids.shape[1])
            if math.isfinite(float(logp[i, j]))
        ]
        mass = sum(p for _, p in entries)
        ce = 0.0
        for t, p in entries:
            w = p / mass if tail_mode == "renorm" else p
            ce -= w * s[t]
        if tail_mode == "bucket":
            ce -= float(tail[i]) * math.log(1.0 - sum(math.exp(s[t]) for t, _ in entries))
        pv = [p for _, p in entries]
        qv = [math.exp(s[t]) for t, _ in entries]
        dot = sum(a * b for a, b in zip(pv, qv))
        cos = 1.0 - dot / (math.sqrt(sum(a * a for a in pv)) * math.sqrt(sum(b * b for b in qv)))
        z1 = [float(x) for x in logits[i]]
        m1 = max(z1)
        mlm = -(z1[int(labels[i])] - m1 - math.log(sum(math.exp(x - m1) for x in z1)))
        total += alpha_ce * ce + alpha_cos * cos + alpha_mlm * mlm
    return total / logits.shape[0]


@pytest.mark.parametrize("tail_mode", ["drop", "renorm", "bucket"])
@pytest.mark.parametrize("temperature,alpha_mlm", [(1.0, 0.0), (2.0, 0.5)])
def test_objective_matches_plain_implementation(tail_mode, temperature, alpha_mlm):
    g = torch.Generator().manual_seed(0)
    n, v, k = 6, 40, 5
    logits = torch.randn(n, v, generator=g, dtype=torch.float64) * 3
    teacher = torch.log_softmax(torch.randn(n, v, generator=g, dtype=torch.float64) * 2, -1)
    logp, ids = teacher.topk(k, -1)
    logp[2, 3:] = -math.inf  # top-p style rows with fewer entries
    ids[2, 3:] = 0
    tail = 1 - torch.where(torch.isfinite(logp), logp.exp(), 0).sum(1)
    labels = torch.randint(0, v, (n,), generator=g)
    obj = Objective(
        alpha_ce=1.0, alpha_cos=1.0, alpha_mlm=alpha_mlm, temperature=temperature, tail=tail_mode
    )
    got = obj(logits, ids, logp.float(), tail.float(), labels)["loss"].item()
    want = plain_loss(
        logits.numpy(),
        ids.numpy(),
        logp.numpy(),
        tail.numpy(),
        labels.numpy(),
        alpha_mlm=alpha_mlm,
        temperature=temperature,
        tail_mode=tail_mode,
    )
    assert abs(got - want) < 1e-4 * max(1.0, abs(want))


def test_default_objective_is_the_seed_loss():
    """CE = -Σ p_T(k) log p_S(k) over the stored ids (full-softmax p_T, not renormalised),
    cos = 1 - cos(p_T[topk], p_S[topk]), summed."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4, 30, generator=g)
    t = torch.log_softmax(torch.randn(4, 30, generator=g), -1)
    lp, ids = t.topk(8, -1)
    out = Objective()(z, ids, lp, 1 - lp.exp().sum(1))
    p_s = torch.softmax(z, -1).gather(1, ids)
    ce = -(lp.exp() * p_s.log()).sum(1).mean()
    cos = (1 - torch.nn.functional.cosine_similarity(lp.exp(), p_s, dim=1)).mean()
    torch.testing.assert_close(out["loss"], ce + cos)


def test_sample_mode_weights_are_counts_over_n():
    z = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    counts = torch.tensor([[5.0, 3.0, 0.0], [8.0, 0.0, 0.0]])
    logp = torch.where(counts > 0, (counts / 8).log(), torch.tensor(-math.inf))
    ids = torch.tensor([[1, 2, 0], [7, 0, 0]])
    out = Objective(alpha_cos=0.0)(z, ids, logp, torch.zeros(2))
    s = torch.log_softmax(z, -1)
    want = (-(5 / 8 * s[0, 1] + 3 / 8 * s[0, 2]) - s[1, 7]) / 2
    torch.testing.assert_close(out["loss"], want)


def test_student_from_chosen_layers(trained_model, examples_dir):
    big = transformers.AutoModelForMaskedLM.from_pretrained(trained_model)
    small, source = build_student(
        init_from=trained_model, layers=[1], examples=Examples(examples_dir)
    )
    assert small.config.num_hidden_layers == 1 and source == Path(trained_model)
    a, b = big.state_dict(), small.state_dict()
    for key, value in b.items():
        src = key.replace("encoder.layer.0.", "encoder.layer.1.")
        torch.testing.assert_close(value, a[src], msg=key)
    assert spread_layers(12, 3) == [0, 6, 11] and spread_layers(24, 1) == [23]


def test_rust_batches_match_python_reference(examples_dir, cache_dir):
    ex = Examples(examples_dir)
    cache = TeacherCache(cache_dir, ex)
    batches = _core.Batches(str(examples_dir), str(cache_dir))
    idx = np.array([5, 400, 0, 251, 17], dtype=np.uint64)  # across shards, out of order
    got = batches.assemble(idx)
    want = ReferenceExamples(examples_dir).batch(idx.tolist())  # independent, numpy only
    for key in ("input_ids", "attention_mask", "masked_rows", "masked_positions", "masked_labels"):
        assert np.array_equal(got[key], want[key]), key
    t = cache.gather(idx.astype(np.int64))
    assert np.array_equal(got["teacher_ids"], t["ids"])
    assert np.array_equal(got["teacher_logp"], t["logp"])
    assert np.array_equal(got["teacher_tail"], t["tail"])
    # the background loader hands out a plan in order
    plan = [np.array([i, i + 1], dtype=np.uint64) for i in range(0, 40, 2)]
    loaded = list(batches.loader(plan, prefetch=2, threads=2))
    assert len(loaded) == 20
    for p, b in zip(plan, loaded):
        assert np.array_equal(b["input_ids"], batches.assemble(p)["input_ids"])


def test_objective_without_teacher_is_plain_masked_lm():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(12, 40, generator=g), torch.randint(0, 40, (12,), generator=g)
    out = Objective(alpha_ce=0.0, alpha_cos=0.0, alpha_mlm=1.0)(logits, labels=labels)
    torch.testing.assert_close(out["loss"], torch.nn.functional.cross_entropy(logits, labels))
    assert "ce" not in out and "cos" not in out
    with pytest.raises(ValueError, match="need a teacher cache"):
        Objective()(logits, labels=labels)


def test_split_is_fixed():
    a = split_indices(1000, 50, 3)
    b = split_indices(1000, 50, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert a[1].size == 50 and np.intersect1d(a[0], a[1]).size == 0


# the flags every test run shares: a 1-layer student, global batch 8 in micro-batches of 4
COMMON = (
    "--num-layers 1 --batch-size 8 --micro-batch-size 4 --lr 1e-3 --warmup-steps 2 "
    "--log-every 1 --eval-every 3 --eval-examples 16 --quiet --device cpu"
).split()


def train_args(out, examples_dir, cache_dir, model, *extra) -> list[str]:
    paths = ["--examples", examples_dir, "--out", out, "--init-from", model]
    if cache_dir is not None:
        paths += ["--cache", cache_dir]
    return [*map(str, paths), *COMMON, *map(str, extra)]


def run_train(out, examples_dir, cache_dir, model, *extra):
    """One intra-op thread: runs compared with each other (resume) must round alike."""
    args = train_args(out, examples_dir, cache_dir, model, *extra)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*TRAIN, *args], capture_output=True, text=True, env=env)


def losses(run: Path) -> dict[int, float]:
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if "loss" in r:
            out[r["step"]] = r["loss"]
    return out


def test_resume_is_exact_and_outputs_load(tmp_path, examples_dir, cache_dir, trained_model):
    full = run_train(
        tmp_path / "full",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        6,
        "--save-every",
        3,
    )
    assert full.returncode == 0, full.stderr
    # the same run interrupted after step 4 (between checkpoints: it saves on stopping)
    part = run_train(
        tmp_path / "part",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        6,
        "--save-every",
        3,
        "--stop-at-step",
        4,
    )
    assert part.returncode == 0, part.stderr
    assert not (tmp_path / "part" / "student").exists()
    rest = run_train(
        tmp_path / "part",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        6,
        "--save-every",
        3,
    )
    assert rest.returncode == 0, rest.stderr
    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    for step in (5, 6):
        assert abs(a[step] - b[step]) < 1e-6, (step, a[step], b[step])
    model = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "full" / "student")
    assert model.config.num_hidden_layers == 1
    ckpt = sorted((tmp_path / "full" / "checkpoints").glob("step-*.pt"))[-1]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["step"] == 6
    evals = [
        json.loads(x)
        for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
        if "eval_loss" in x
    ]
    assert evals and 0 <= evals[-1]["eval_teacher_top1_agreement"] <= 1
    plot = subprocess.run(
        [sys.executable, "-m", "wwm_distill.cli.plot", str(tmp_path / "full")],
        capture_output=True,
        text=True,
    )
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "full" / "loss.png").stat().st_size > 1000


def test_hard_label_training_without_cache(tmp_path, examples_dir, trained_model):
    r = run_train(tmp_path / "hard", examples_dir, None, trained_model, "--max-steps", 4)
    assert r.returncode == 0, r.stderr
    records = [
        json.loads(x) for x in (tmp_path / "hard" / "metrics.jsonl").read_text().splitlines()
    ]
    train = [x for x in records if "loss" in x]
    assert train and all(x["loss"] == x["mlm"] and "ce" not in x for x in train)
    evals = [x for x in records if "eval_loss" in x]
    assert evals and "eval_teacher_top1_agreement" not in evals[-1]
    assert abs(evals[-1]["eval_loss"] - evals[-1]["eval_mlm_loss"]) < 1e-9
    assert (tmp_path / "hard" / "student" / "model.safetensors").is_file()
    # a teacher from scratch: a bare config (no tokenizer beside it) takes the examples' vocab
    cfg = tmp_path / "cfg" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(
        json.dumps(
            {
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
                "max_position_embeddings": 64,
            }
        )
    )
    args = ["--examples", examples_dir, "--out", tmp_path / "scratch", "--config", cfg]
    r = subprocess.run(
        [*TRAIN, *map(str, args), *COMMON[2:], "--max-steps", "2"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    student = tmp_path / "scratch" / "student"
    assert (student / "vocab.txt").read_bytes() == (trained_model / "vocab.txt").read_bytes()
    assert json.loads((student / "config.json").read_text())["vocab_size"] == len(
        (trained_model / "vocab.txt").read_text(encoding="utf-8").split()
    )
    # a loss that needs the teacher is refused without a cache
    r = run_train(tmp_path / "no", examples_dir, None, trained_model, "--alpha-mlm", "0")
    assert r.returncode != 0 and "--alpha-mlm" in r.stderr and "Traceback" not in r.stderr


def test_nan_loss_stops_with_last_good_checkpoint(tmp_path, examples_dir, cache_dir, trained_model):
    r = run_train(
        tmp_path / "nan",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        20,
        "--save-every",
        1,
        "--lr",
        "1e20",
        "--warmup-steps",
        "1",
        "--clip",
        "1e30",
    )
    assert r.returncode != 0
    assert "loss is nan" in r.stderr.lower() or "loss is inf" in r.stderr.lower(), r.stderr
    assert "Traceback" not in r.stderr
    assert list((tmp_path / "nan" / "checkpoints").glob("step-*.pt"))


def test_vocabulary_mismatch_is_refused(tmp_path, examples_dir, cache_dir, vocab_dir):
    cfg = tmp_path / "cfg" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(
        json.dumps(
            {
                "model_type": "bert",
                "vocab_size": 99,
                "hidden_size": 32,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            }
        )
    )
    r = subprocess.run(
        [
            *TRAIN,
            "--examples",
            str(examples_dir),
            "--cache",
            str(cache_dir),
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(cfg),
            "--max-steps",
            "1",
            "--quiet",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and "vocabulary" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_torchrun_matches_single_process(tmp_path, examples_dir, cache_dir, trained_model):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # no dropout: its masks depend on how the batch is split between processes
    single = run_train(
        tmp_path / "one",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        4,
        "--save-every",
        4,
        "--dropout",
        0,
    )
    assert single.returncode == 0, single.stderr
    args = train_args(
        tmp_path / "two",
        examples_dir,
        cache_dir,
        trained_model,
        "--max-steps",
        4,
        "--save-every",
        4,
        "--dropout",
        0,
    )
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",
            "-m",
            "wwm_distill.cli.train",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert two.returncode == 0, two.stderr
    a = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "one" / "student")
    b = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "two" / "student")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-4, msg=k)
