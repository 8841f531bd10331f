"""Teacher-cache file formats: format-1 and format-2 files written by old builds stay
readable; format 2 reads back exactly what format 1 does, and format 3 the same up to the
order of entries of equal value (the training side must not notice)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from wwm_distill import WwmDistillError, _core

FIXTURES = Path(__file__).parent / "fixtures" / "cache_v1"
FIXTURES_V2 = Path(__file__).parent / "fixtures" / "cache_v2"
MODES = ("topk", "top-p", "sample")
SAMPLE_N = 16


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "inputs.npz") as f:
        return {name: f[name] for name in f.files}


def read_all(path: Path) -> tuple[_core.CacheReader, tuple[np.ndarray, ...]]:
    r = _core.CacheReader(str(path), lru_blocks=2)
    return r, r.gather(np.arange(r.n_examples, dtype=np.uint64))


# the step the fixtures were written with (the default before 0.05)
FIXTURE_STEP = 0.019


def write(path: Path, mode: str, inputs: dict, version: int | None = None, **kw) -> dict:
    k = inputs["k_topk"] if mode == "topk" else inputs["k_var"]
    n = SAMPLE_N if mode == "sample" else 0
    extra = {"format_version": version} if version is not None else {}
    kw = {"step": FIXTURE_STEP, **kw}
    w = _core.CacheWriter(
        str(path), mode, inputs["ids"].shape[1], sample_n=n, block_examples=5, **extra, **kw
    )
    values = {"counts": inputs["counts"]} if mode == "sample" else {"logp": inputs["logp"]}
    # two pushes: format 2's id table comes from the first
    ppe = inputs["ppe"]
    split = len(ppe) // 3
    ps = int(ppe[:split].sum())
    for ex, pos in ((slice(0, split), slice(0, ps)), (slice(split, None), slice(ps, None))):
        w.push(
            positions_per_example=ppe[ex],
            k=k[pos],
            ids=inputs["ids"][pos],
            tail=inputs["tail"][pos],
            **{name: v[pos] for name, v in values.items()},
        )
    return dict(w.finish())


@pytest.mark.parametrize("mode", MODES)
def test_format_1_fixture_stays_readable(inputs, mode):
    reader, (ids, logp, tail, counts) = read_all(FIXTURES / f"{mode}.tkc")
    assert reader.version == 1 and reader.mode == mode
    k = inputs["k_topk"] if mode == "topk" else inputs["k_var"]
    assert reader.n_examples == len(inputs["ppe"])
    every = np.arange(len(inputs["ppe"]), dtype=np.uint64)
    np.testing.assert_array_equal(reader.positions_of(every), inputs["ppe"])
    np.testing.assert_array_equal(counts, k)
    np.testing.assert_array_equal(tail, inputs["tail"])
    valid = np.arange(ids.shape[1])[None, :] < k[:, None]
    np.testing.assert_array_equal(np.where(valid, ids, 0), np.where(valid, inputs["ids"], 0))
    want = np.log(inputs["counts"] / SAMPLE_N) if mode == "sample" else inputs["logp"]
    assert np.abs(np.where(valid, logp - want, 0)).max() <= FIXTURE_STEP / 2 + 1e-4
    assert np.isneginf(logp[~valid]).all()


def ties_by_id(ids: np.ndarray, logp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``ids`` with each run of equal log-probs (from entry 1 on) sorted by id."""
    out = ids.copy()
    for row in range(len(k)):
        j = 1
        while j < k[row]:
            end = j + 1
            while end < k[row] and logp[row, end] == logp[row, j]:
                end += 1
            out[row, j:end] = np.sort(out[row, j:end])
            j = end
    return out


@pytest.mark.parametrize("mode", MODES)
def test_format_2_fixture_reads_back_exactly_what_format_1_does(tmp_path, inputs, mode):
    _, v1 = read_all(FIXTURES / f"{mode}.tkc")
    reader, v2 = read_all(FIXTURES_V2 / f"{mode}.tkc")
    assert reader.version == 2 and reader.mode == mode
    # ids and counts are integers; log-probs and tails come from the same stored integers
    # and floats through the same decoding code, so they are equal bit for bit
    for a, b in zip(v1, v2):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # and the current build's format-1 and format-2 writers still write what old builds did
    for version in (1, 2):
        write(tmp_path / f"v{version}.tkc", mode, inputs, version=version)
        old_reader, again = read_all(tmp_path / f"v{version}.tkc")
        assert old_reader.version == version
        for a, b in zip(v1, again):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_format_3_reads_back_what_format_1_does_up_to_ties(tmp_path, inputs, mode):
    _, (ids1, logp1, tail1, k1) = read_all(FIXTURES / f"{mode}.tkc")
    info = write(tmp_path / "t.tkc", mode, inputs)  # the default format
    reader, (ids3, logp3, tail3, k3) = read_all(tmp_path / "t.tkc")
    assert reader.version == 3
    assert info["entries"] == int(k1.sum())
    for a, b in ((logp1, logp3), (tail1, tail3), (k1, k3)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    # the first entry (the teacher's argmax) keeps its place; entries of equal value are
    # stored by rank, so only their order may differ
    np.testing.assert_array_equal(ids1[:, 0], ids3[:, 0])
    np.testing.assert_array_equal(ties_by_id(ids1, logp1, k1), ties_by_id(ids3, logp3, k3))
    if mode == "sample":  # counts 1..16 over 8 entries: ties are the rule here
        assert not np.array_equal(ids1, ids3)


@pytest.mark.parametrize("version", [2, 3])
def test_corruption_is_an_error_naming_the_file(tmp_path, inputs, version):
    write(tmp_path / "good.tkc", "top-p", inputs, version=version)
    good = (tmp_path / "good.tkc").read_bytes()
    rng = np.random.default_rng(3)
    bad = tmp_path / "bad.tkc"
    for trial in range(200):
        data = bytearray(good)
        if trial % 4 == 0:
            data = data[: int(rng.integers(0, len(data)))]
        else:
            at = int(rng.integers(0, len(data)))
            data[at] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(data))
        with pytest.raises(WwmDistillError, match="bad.tkc"):
            read_all(bad)


def test_unknown_format_version_is_refused(tmp_path, inputs):
    with pytest.raises(WwmDistillError, match="version"):
        write(tmp_path / "t.tkc", "topk", inputs, version=4)


def test_log_prob_step_is_bounded_and_its_error_is_half_of_it(tmp_path, inputs):
    with pytest.raises(WwmDistillError, match="step"):
        write(tmp_path / "coarse.tkc", "topk", inputs, step=2 * _core.CACHE_MAX_STEP)
    assert 0 < _core.CACHE_DEFAULT_STEP <= _core.CACHE_MAX_STEP
    exact = inputs["logp"]
    for step in (_core.CACHE_DEFAULT_STEP, _core.CACHE_MAX_STEP):
        write(tmp_path / "t.tkc", "topk", inputs, step=step)
        _, (_, logp, _, k) = read_all(tmp_path / "t.tkc")
        stored = np.arange(logp.shape[1])[None, :] < k[:, None]
        # values are stored in order, so the i-th stored value is the i-th true one's
        # rounding: at most half a step away (slack for float32)
        err = np.abs(logp[stored] - exact[:, : logp.shape[1]][stored])
        assert err.max() <= step / 2 + 1e-4, (step, err.max())
        assert err.max() > step / 8  # the step is the one used
