"""The Rust core's Python face against the Python code it is to replace: the examples
reader (against the numpy reference of FORMATS.md), PrepConfig's defaults (against the
CLI), and the teacher-cache manifest and TeacherCache (against the reference gather)."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from reference import (  # tests/reference.py
    ReferenceExamples,
    ReferenceTeacherCache,
    write_version_1,
)
from wwm_distill import WwmDistillError, _core
from wwm_distill.cli.prep import build_parser
from wwm_distill.data import Examples, read_manifest

CACHE_FIXTURES = Path(__file__).parent / "fixtures" / "cache_v1"
COLUMNS = ("tokens", "masked_ids", "positions", "token_index", "mask_offsets")
COLUMNS += ("line", "file", "piece", "window", "dupe")


def test_examples_reader_matches_the_numpy_reference(examples_dir):
    ex, ref = Examples(examples_dir, verify=True), ReferenceExamples(examples_dir)
    assert len(ex) == len(ref) > 0 and len(ex.shards) == len(ref.shards) > 1
    assert ex.manifest == ref.manifest and ex.pad_id == ref.pad_id
    assert list(ex.starts) == list(ref.starts)
    for a, b in zip(ex.shards, ref.shards):
        assert len(a) == len(b) and a.name == b.name and a.info == b.info
        assert a.version == b.version == 2
        for name in COLUMNS:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
            assert not x.flags.writeable and not x.flags.owndata
        assert a.lengths.dtype == b.lengths.dtype and np.array_equal(a.lengths, b.lengths)
    for i in [*range(len(ex)), -1, -len(ex)]:
        a, b = ex[i], ref[i]
        assert a.keys() == b.keys()
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == b[key].dtype and np.array_equal(value, b[key]), key
            else:
                assert value == b[key] and type(value) is int, key
    for bad in (len(ex), -len(ex) - 1):
        with pytest.raises(IndexError):
            ex[bad]
    # views outlive the Python objects they came from: the shard stays mapped
    view = Examples(examples_dir).shards[0].tokens
    assert np.array_equal(view, ref.shards[0].tokens)
    # the package's batch() is Batches.assemble, equal to the Python reference
    idx = [3, len(ex) - 1, 0, 250]
    want, got = ref.batch(idx), ex.batch(idx)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype and np.array_equal(got[key], want[key]), key
    assert _core.read_examples_manifest(examples_dir) == ref.manifest
    assert read_manifest(examples_dir / "manifest.json") == read_manifest(examples_dir)
    with pytest.raises(WwmDistillError, match="no examples manifest"):
        read_manifest(examples_dir / "nowhere")


def test_version_1_shards_read_as_the_same_examples(examples_dir, tmp_path):
    # Shards written before format version 2 stored every example's masked input_ids;
    # the reader gives the same examples and batches from them.
    old = tmp_path / "v1"
    shutil.copytree(examples_dir, old)
    write_version_1(old)
    new, ex = Examples(examples_dir), Examples(old, verify=True)
    assert [s.version for s in ex.shards] == [1] * len(ex.shards)
    assert sum(s.info["bin_bytes"] for s in ex.shards) > 2 * sum(
        s.info["bin_bytes"] for s in new.shards
    )
    ref = ReferenceExamples(old)
    assert np.array_equal(ex.lengths(), new.lengths())
    for i in range(len(ex)):
        a, b, c = ex[i], new[i], ref[i]
        for key, value in a.items():
            if isinstance(value, np.ndarray):
                assert value.dtype == b[key].dtype and np.array_equal(value, b[key]), key
                assert np.array_equal(value, c[key]), key
            else:
                assert value == b[key] == c[key], key
    idx = [3, len(ex) - 1, 0, 250]
    got, want = ex.batch(idx), new.batch(idx)
    for key in want:
        assert np.array_equal(got[key], want[key]), key


def test_prep_config_defaults_are_the_clis(tmp_path):
    d = _core.PrepConfig.defaults()
    args = vars(build_parser().parse_args(["--vocab", "v", "--out", "o", "in.txt"]))
    for key, value in d.items():
        if key == "text_fields":
            assert args[key] == ",".join(value)
        else:
            assert args[key] == value, key
    shown = inspect.signature(_core.PrepConfig).parameters  # the stub is checked against it
    assert {k: p.default for k, p in shown.items() if k not in ("inputs", "out", "vocab")} == d
    c = _core.PrepConfig(["a.txt"], tmp_path, "v.txt", seed=7, text_fields=["title"])
    got = c.to_dict()
    assert got["seed"] == 7 and got["text_fields"] == ["title"]
    assert {k: v for k, v in got.items() if k not in ("inputs", "out", "vocab")} == d | {
        "seed": 7,
        "text_fields": ["title"],
    }
    with pytest.raises(TypeError):
        _core.PrepConfig(["a.txt"], tmp_path, "v.txt", sede=7)
    with pytest.raises(WwmDistillError, match="doc-sep"):
        _core.PrepConfig(["a.txt"], tmp_path, "v.txt", doc_sep="para")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_shard_cache(tmp_path, examples_dir) -> Path:
    """A cache directory over the format-1 fixtures: a top-p shard (k varies), then a
    top-k one, with a manifest as distill-teacher writes it."""
    out = tmp_path / "cache"
    out.mkdir()
    shards = []
    for k, mode in enumerate(("top-p", "topk")):
        name = _core.cache_shard_name(k)
        shutil.copy(CACHE_FIXTURES / f"{mode}.tkc", out / f"{name}.tkc")
        r = _core.CacheReader(str(out / f"{name}.tkc"))
        every = np.arange(r.n_examples, dtype=np.uint64)
        shards.append(
            {
                "name": name,
                "examples": r.n_examples,
                "positions": r.n_positions,
                "entries": int(r.gather(every)[3].sum()),
                "bytes": (out / f"{name}.tkc").stat().st_size,
                "sha256": sha256(out / f"{name}.tkc"),
            }
        )
    manifest = {
        "format": "wwm-distill/teacher",
        "version": 1,
        "examples": {
            "path": str(examples_dir),
            "manifest_sha256": sha256(examples_dir / "manifest.json"),
            "vocab_sha256": "x",
            "examples": sum(s["examples"] for s in shards),
        },
        "teacher": {"path": "t", "name": "t", "dtype": "fp32"},
        "mode": {"name": "top-p", "k": 8, "id_bytes": 2},
        "shards": shards,
        "report": {"positions": sum(s["positions"] for s in shards), "mean_tail_mass": 0.1},
    }
    _core.write_cache_manifest(out, manifest)
    assert (out / "manifest.json").read_text() == json.dumps(manifest, indent=2)
    assert _core.read_cache_manifest(out) == manifest
    return out


def test_cache_manifest_is_checked(tmp_path, two_shard_cache):
    m = _core.read_cache_manifest(two_shard_cache)
    for change in (
        {"version": 2},
        {"format": "other"},
        {"examples": m["examples"] | {"examples": 1}},
        {"shards": [m["shards"][0] | {"name": "../x"}]},
    ):
        with pytest.raises(WwmDistillError):
            _core.write_cache_manifest(tmp_path, m | change)
    assert not (tmp_path / "manifest.json").exists()
    with pytest.raises(WwmDistillError, match="no teacher cache manifest"):
        _core.read_cache_manifest(tmp_path)
    # the writer stamps the format and version, first, when the caller leaves them out
    bare = {k: v for k, v in m.items() if k not in ("format", "version")}
    assert _core.write_cache_manifest(tmp_path, bare) == m
    assert (tmp_path / "manifest.json").read_text() == json.dumps(m, indent=2)


def test_rust_teacher_cache_gathers_what_the_python_one_does(two_shard_cache, examples_dir):
    assert [_core.cache_shard_name(k) for k in range(3)] == [
        "teacher-00000",
        "teacher-00001",
        "teacher-00002",
    ]
    py = ReferenceTeacherCache(two_shard_cache)
    rs = _core.TeacherCache(two_shard_cache, examples_dir)
    assert len(rs) == len(py) and rs.manifest == py.manifest
    n0 = py.readers[0].n_examples
    rng = np.random.default_rng(0)
    requests = [
        np.arange(len(py)),
        rng.integers(0, len(py), 40),
        np.array([n0 + 1, 2, n0, 0, n0 + 3]),  # shards interleaved: runs split and padded
        np.array([1]),
    ]
    for idx in requests:
        want, got = py.gather(idx), rs.gather(idx)
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype, key
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    with pytest.raises(OSError):  # as the Python one: no examples manifest to hash
        _core.TeacherCache(two_shard_cache, two_shard_cache.parent / "elsewhere")
    other = two_shard_cache.parent / "ex2"
    shutil.copytree(examples_dir, other)
    (other / "manifest.json").write_text((other / "manifest.json").read_text() + " ")
    with pytest.raises(WwmDistillError, match="other examples"):
        _core.TeacherCache(two_shard_cache, other)
