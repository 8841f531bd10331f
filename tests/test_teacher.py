"""distill-teacher: cache round trips against numpy references from full logits, sampling,
alignment, masked-only LM head, the untrained-head check and fit-head, resume, torchrun."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import wwm_distill  # noqa: E402
from conftest import save_model  # noqa: E402
from wwm_distill import _core, teacher  # noqa: E402
from wwm_distill.cache import TeacherCache  # noqa: E402
from wwm_distill.data import Examples  # noqa: E402
from wwm_distill.errors import TeacherError  # noqa: E402
from wwm_distill.head import head_parameters  # noqa: E402
from wwm_distill.model import load_masked_lm, masked_logits, to_device_batch  # noqa: E402


def full_reference(model_dir: Path, examples_dir: Path):
    """Full-sequence logits (float32, one example at a time) at every masked position, in
    example order, with the log-softmax in float64."""
    model = load_masked_lm(model_dir)
    ex = Examples(examples_dir)
    out = []
    with torch.no_grad():
        for i in range(len(ex)):
            e = ex[i]
            ids = torch.from_numpy(e["input_ids"].astype(np.int64))[None]
            logits = model(input_ids=ids).logits[0]  # full-sequence head
            out.append(logits[torch.from_numpy(e["masked_positions"].astype(np.int64))])
    logp = torch.log_softmax(torch.cat(out).double(), -1).numpy()
    return logp


# The teacher pass computes log-probs in float32 on padded batches (masked-only head); the
# reference in float64 one example at a time (full head). They agree to ~1e-6 nats; values
# closer than TIE are ties, which either path may order either way (other CPUs, kernels and
# thread counts round differently), so ids within TIE of each other are interchangeable.
TIE = 1e-4


def assert_top_k(ref_row: np.ndarray, ids: np.ndarray, order_tol: float = TIE) -> None:
    """``ids`` are the reference's k most probable ids in decreasing order, up to ties
    (``order_tol``: how far out of order two ids may be)."""
    k = ids.size
    assert np.unique(ids).size == k
    kth = np.sort(ref_row)[-k]  # the k-th largest reference log-prob
    assert np.all(ref_row[ids] >= kth - TIE), "an id from clearly below the top k"
    clearly_in = np.flatnonzero(ref_row > kth + TIE)
    assert np.isin(clearly_in, ids).all(), "an id clearly inside the top k is missing"
    assert np.all(np.diff(ref_row[ids]) <= order_tol), "not in decreasing order"


def test_head_at_masked_positions_equals_full_head(random_model, examples_dir):
    model = load_masked_lm(random_model)
    ex = Examples(examples_dir)
    b = to_device_batch(ex, [0, 3, 7], "cpu")
    with torch.no_grad():
        masked = masked_logits(
            model, b["input_ids"], b["attention_mask"], b["masked_rows"], b["masked_positions"]
        )
        full = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    torch.testing.assert_close(masked, full[b["masked_rows"], b["masked_positions"]])


@pytest.mark.parametrize(
    "mode",
    [teacher.Mode("topk", k=16), teacher.Mode("top-p", k=64, top_p=0.5)],
    ids=["topk", "top-p"],
)
def test_round_trip_against_full_logits(tmp_path, trained_model, examples_dir, mode):
    m = teacher.run_teacher(
        trained_model, examples_dir, tmp_path / "c", mode=mode, batch_size=16, progress=False
    )
    ex = Examples(examples_dir)
    cache = TeacherCache(tmp_path / "c", ex)
    assert len(cache) == len(ex)
    g = cache.gather(np.arange(len(ex)))
    ref = full_reference(trained_model, examples_dir)
    assert g["ids"].shape[0] == ref.shape[0] == m["report"]["positions"]
    order = np.argsort(-ref, axis=1, kind="stable")
    probs = np.exp(ref)
    for row in range(ref.shape[0]):
        k = int(g["counts"][row])
        if mode.kind == "top-p":
            mass = np.cumsum(probs[row, order[row]])
            want_k = min(int(np.searchsorted(mass, mode.top_p) + 1), mode.k)
            assert abs(k - want_k) <= 1 and k >= 1  # float32 vs float64 at the boundary
        else:
            assert k == mode.k
        ids = g["ids"][row, :k]
        # the cache keeps the teacher's first entry (its argmax) and stores entries of
        # equal quantised log-prob by frequency rank (format 3): exact order up to a step
        assert ref[row, ids[0]] >= ref[row].max() - TIE
        assert np.all(np.diff(g["logp"][row, :k]) <= 0)
        assert_top_k(ref[row], ids, order_tol=mode.step + TIE)
        assert np.all(np.abs(g["logp"][row, :k] - ref[row, ids]) <= mode.step / 2 + TIE)
        assert np.all(np.isneginf(g["logp"][row, k:]))
        kept = probs[row, ids].sum()
        assert abs(g["tail"][row] - (1 - kept)) <= TIE * kept + 1e-7
    r = m["report"]
    assert r["bytes_per_position"] > 0 and 0 <= r["mean_tail_mass"] < 1
    assert m["check"]["passed"]


def test_sampled_mode_is_unbiased(tmp_path, trained_model, examples_dir):
    # the selection step: the mean of many independent draws converges to the teacher
    logp = torch.log_softmax(torch.randn(1, 50, generator=torch.Generator().manual_seed(1)) * 2, -1)
    gen = torch.Generator().manual_seed(0)
    total = np.zeros(50)
    for _ in range(400):
        sel = teacher.select(logp.expand(8, 50), teacher.Mode("sample", k=32, sample_n=32), gen)
        for row in range(8):
            k = sel["k"][row]
            np.add.at(total, sel["ids"][row, :k], sel["counts"][row, :k])
            assert sel["counts"][row, :k].sum() == 32
            assert np.all(np.diff(sel["counts"][row, :k].astype(int)) <= 0)
    est = total / total.sum()
    assert 0.5 * np.abs(est - np.exp(logp[0].numpy())).sum() < 0.02
    # and through the cache: weights are count / N
    teacher.run_teacher(
        trained_model,
        examples_dir,
        tmp_path / "s",
        batch_size=16,
        mode=teacher.Mode("sample", k=24, sample_n=24),
        progress=False,
    )
    g = TeacherCache(tmp_path / "s").gather(np.arange(20))
    w = np.exp(g["logp"])
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-5)
    assert np.allclose(g["tail"], 0)


def test_alignment_and_mismatch(tmp_path, trained_model, examples_dir, small_vocab, zh_docs):
    teacher.run_teacher(
        trained_model,
        examples_dir,
        tmp_path / "c",
        batch_size=16,
        mode=teacher.Mode("topk", k=4),
        progress=False,
    )
    ex = Examples(examples_dir)
    cache = TeacherCache(tmp_path / "c", ex)
    for k, reader in enumerate(cache.readers):
        n = reader.n_examples
        want = np.diff(ex.shards[k].mask_offsets)
        assert np.array_equal(reader.positions_of(np.arange(n, dtype=np.uint64)), want)
    # other examples: refused
    other = tmp_path / "other"
    (tmp_path / "o.txt").write_text("\n".join(zh_docs[:10]) + "\n", encoding="utf-8")
    wwm_distill.prepare([tmp_path / "o.txt"], other, small_vocab / "vocab.txt", progress=False)
    with pytest.raises(wwm_distill.WwmDistillError, match="other examples"):
        TeacherCache(tmp_path / "c", Examples(other))


def test_refuses_other_vocabulary(tmp_path, trained_model, examples_dir):
    model_dir = tmp_path / "m"
    shutil.copytree(trained_model, model_dir)
    lines = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    lines[10], lines[11] = lines[11], lines[10]
    (model_dir / "vocab.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(TeacherError, match="vocabulary differs"):
        teacher.run_teacher(model_dir, examples_dir, tmp_path / "c", progress=False)


def test_untrained_head_is_detected_and_fit_head_fixes_it(
    tmp_path, trained_model, examples_dir, small_vocab
):
    model = load_masked_lm(trained_model)
    torch.manual_seed(1)
    with torch.no_grad():
        for p in head_parameters(model):  # a randomly initialised head
            p.normal_(0, 0.02) if p.dim() > 1 else p.zero_()
        for name, p in model.cls.named_parameters():
            if "LayerNorm.weight" in name:
                p.fill_(1.0)
    broken = save_model(model, tmp_path / "broken", small_vocab)
    cli = [sys.executable, "-m", "wwm_distill.cli.teacher"]
    proc = subprocess.run(
        [
            *cli,
            "--model",
            str(broken),
            "--examples",
            str(examples_dir),
            "--out",
            str(tmp_path / "c"),
            "--quiet",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "looks untrained" in proc.stderr and "fit-head" in proc.stderr
    assert "Traceback" not in proc.stderr
    fixed = tmp_path / "fixed"
    proc = subprocess.run(
        [
            *cli,
            "fit-head",
            "--model",
            str(broken),
            "--examples",
            str(examples_dir),
            "--out",
            str(fixed),
            "--steps",
            "150",
            "--lr",
            "1e-2",
            "--quiet",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((fixed / "fit_head.json").read_text())["check"]["passed"]
    assert (fixed / "vocab.txt").is_file() and (fixed / "model.safetensors").is_file()
    m = teacher.run_teacher(
        fixed,
        examples_dir,
        tmp_path / "c2",
        batch_size=16,
        mode=teacher.Mode("topk", k=4),
        progress=False,
    )
    assert m["check"]["passed"]


def test_resume_recomputes_only_missing_shards(tmp_path, trained_model, examples_dir):
    mode = teacher.Mode("topk", k=8)
    first = teacher.run_teacher(
        trained_model, examples_dir, tmp_path / "c", mode=mode, batch_size=16, progress=False
    )
    assert len(first["shards"]) >= 2
    kept = tmp_path / "c" / "teacher-00000.tkc"
    stamp = kept.stat().st_mtime_ns
    os.remove(tmp_path / "c" / "teacher-00001.json")  # as if killed while writing shard 1
    os.remove(tmp_path / "c" / "teacher-00001.tkc")
    os.remove(tmp_path / "c" / "manifest.json")
    again = teacher.run_teacher(
        trained_model, examples_dir, tmp_path / "c", mode=mode, batch_size=16, progress=False
    )
    assert kept.stat().st_mtime_ns == stamp
    assert again["shards"] == first["shards"]
    # resuming with other options would mix two kinds of shards: refused, naming the shard
    os.remove(tmp_path / "c" / "manifest.json")
    for other in (teacher.Mode("topk", k=4), teacher.Mode("topk", k=8, step=0.02)):
        with pytest.raises(TeacherError, match=r"teacher-00000\.tkc.*earlier run"):
            teacher.run_teacher(
                trained_model, examples_dir, tmp_path / "c", mode=other, progress=False
            )


def test_format_version_2_on_request(tmp_path, trained_model, examples_dir):
    """`--format-version 2` writes the older, faster-to-decode format; same outputs."""
    mode = teacher.Mode("topk", k=8)
    caches = {}
    for version in (2, None):
        out = tmp_path / f"v{version}"
        teacher.run_teacher(
            trained_model,
            examples_dir,
            out,
            mode=mode,
            batch_size=16,
            format_version=version,
            progress=False,
        )
        caches[version] = out
    r2 = _core.CacheReader(str(caches[2] / "teacher-00000.tkc"))
    r3 = _core.CacheReader(str(caches[None] / "teacher-00000.tkc"))
    assert (r2.version, r3.version) == (2, 3)
    every = np.arange(r2.n_examples, dtype=np.uint64)
    ids2, logp2, tail2, k2 = r2.gather(every)
    ids3, logp3, tail3, k3 = r3.gather(every)
    np.testing.assert_array_equal(k2, k3)
    np.testing.assert_array_equal(tail2, tail3)
    np.testing.assert_array_equal(logp2, logp3)  # the same stored integers, decoded alike
    np.testing.assert_array_equal(ids2[:, 0], ids3[:, 0])  # format 3 reorders only ties
    np.testing.assert_array_equal(np.sort(ids2, axis=1), np.sort(ids3, axis=1))


def test_corrupted_cache_is_a_clear_error(tmp_path, trained_model, examples_dir):
    teacher.run_teacher(
        trained_model,
        examples_dir,
        tmp_path / "c",
        batch_size=16,
        mode=teacher.Mode("topk", k=8),
        progress=False,
    )
    path = tmp_path / "c" / "teacher-00000.tkc"
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(wwm_distill.WwmDistillError, match=r"teacher-00000\.tkc"):
        r = _core.CacheReader(str(path))
        r.gather(np.arange(r.n_examples, dtype=np.uint64))
    path.write_bytes(bytes(data[:100]))
    with pytest.raises(wwm_distill.WwmDistillError, match="truncated|too short"):
        _core.CacheReader(str(path))


@pytest.mark.slow
def test_torchrun_two_processes_match_single(tmp_path, trained_model, examples_dir):
    args = [
        "--model",
        str(trained_model),
        "--examples",
        str(examples_dir),
        "--topk",
        "8",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--quiet",
    ]
    # the same intra-op thread count in both runs (torchrun's default is 1): float sums
    # in the encoder may differ in the last bit between thread counts
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = tmp_path / "single"
    subprocess.run(
        [sys.executable, "-m", "wwm_distill.cli.teacher", *args, "--out", str(single)],
        check=True,
        env=env,
    )
    multi = tmp_path / "multi"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--standalone",
            "-m",
            "wwm_distill.cli.teacher",
            *args,
            "--out",
            str(multi),
        ],
        check=True,
        env=env,
    )
    a = json.loads((single / "manifest.json").read_text())
    b = json.loads((multi / "manifest.json").read_text())
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]


def test_top_k_comparison_accepts_ties_only():
    ref = np.log(np.array([0.4, 0.2, 0.2 + 1e-7, 0.1, 0.05, 0.05]))
    assert_top_k(ref, np.array([0, 2, 1]))  # 1 and 2 tie: either order
    assert_top_k(ref, np.array([0, 1, 2]))
    with pytest.raises(AssertionError):
        assert_top_k(ref, np.array([0, 1, 3]))  # 3 is clearly below the top 3
    with pytest.raises(AssertionError):
        assert_top_k(ref, np.array([1, 0, 2]))  # 0 clearly before 1
    assert_top_k(ref, np.array([0, 1, 2, 3, 5]))  # 4 and 5 tie at the boundary
