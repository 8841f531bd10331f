"""scripts/quality.py (the experiment behind `make demo` and benches/bench_quality.py): every
stage at the tiny preset on the fixture documents, resumable stage by stage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import quality  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, zh_docs, small_vocab) -> quality.Inputs:
    d = tmp_path_factory.mktemp("quality_inputs")
    (d / "docs.txt").write_text("\n".join(zh_docs) + "\n", encoding="utf-8")
    # a labelled file in THUCNews' layout: the category is the document's parity
    lines = [
        json.dumps({"category": ["甲", "乙"][i % 2], "text": doc[:60]}, ensure_ascii=False)
        for i, doc in enumerate(zh_docs * 2)
    ]
    (d / "labelled.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return quality.Inputs(d / "docs.txt", small_vocab / "vocab.txt", d / "labelled.jsonl")


def test_every_stage_runs_and_reports(tmp_path, inputs):
    work = tmp_path / "work"
    report = quality.run("tiny", work, inputs=inputs, progress=False)
    split = report["data"]
    assert split["train_documents"] + split["heldout_documents"] == split["documents"]
    rows = {row["model"]: row for row in report["table"]}
    preset = quality.PRESETS["tiny"]
    assert set(rows) == {"teacher", "layers-hard", "layers-seed", "fresh-hard", "fresh-seed"} | {
        f"layers-{v}" for v in preset.variants
    }
    assert rows["layers-seed"]["runs"] == len(preset.seeds)
    for row in report["table"]:
        assert all(0 <= x <= 100 for x in row["top1"] + row["top5"])
        assert all(t1 <= t5 for t1, t5 in zip(row["top1"], row["top5"]))
    assert len(rows["layers-hard"]["thucnews"]) == len(preset.seeds) * preset.thucnews_seeds
    assert set(report["caches"]) == set(preset.caches)
    trap = report["trap"]
    assert trap["distill_teacher_refused"] == (not trap["reinitialised_head"]["passed"])
    md = (work / "report.md").read_text(encoding="utf-8")
    assert "**Verdict:**" in md and "layers-seed" in md
    assert all((work / c).is_file() for c in report["curves"])
    # a finished experiment is not redone: every stage skips
    stamp = (work / "teacher" / "student" / "model.safetensors").stat().st_mtime_ns
    quality.run("tiny", work, inputs=inputs, progress=False)
    assert (work / "teacher" / "student" / "model.safetensors").stat().st_mtime_ns == stamp


def test_verdict_states_the_spread():
    rows = [
        {"model": "layers-hard", "top1": [10.0, 11.0, 12.0], "thucnews": []},
        {"model": "layers-seed", "top1": [20.0, 21.0, 22.0], "thucnews": []},
        {"model": "fresh-hard", "top1": [10.0, 14.0], "thucnews": [50.0, 52.0]},
        {"model": "fresh-seed", "top1": [11.0, 13.0], "thucnews": [51.0, 51.0]},
    ]
    v = quality.Experiment.verdict(rows)
    assert "layers student: distilled beats hard labels" in v and "(+10.00 points" in v
    assert "more than the spread over 3 seeds" in v
    assert "fresh student: distilled does not beat" in v and "within the spread" in v
    assert "THUCNews accuracy +0.00" in v


@pytest.mark.parametrize("name", sorted(quality.PRESETS))
def test_presets_are_consistent(name):
    """Every preset, the GPU ones included (they cannot run here), fits together."""
    p = quality.PRESETS[name]
    for cfg in (p.teacher, p.fresh):
        assert cfg["hidden_size"] % cfg["num_attention_heads"] == 0
        assert cfg["max_position_embeddings"] >= p.seq
    assert all(0 <= i < p.teacher["num_hidden_layers"] for i in p.student_layers)
    assert 0 < p.stride <= p.seq - 2
    for v in ["seed", *p.variants]:
        cache = quality.VARIANTS[v].cache
        assert cache in p.caches and cache in quality.CACHES
    assert set(p.caches) <= set(quality.CACHES) and p.seeds and p.thucnews_seeds >= 1
    assert not p.variants or p.variant_seeds
