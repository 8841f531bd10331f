"""distill-prep end to end: masking rules on real text, windows, determinism, resume,
scale-out merge, the Examples reader and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import wwm_distill
from reference import write_version_1  # tests/reference.py
from wwm_distill import _core
from wwm_distill.data import Examples, prepare

CLI = [sys.executable, "-m", "wwm_distill.cli.prep"]


def py_round(x: float) -> int:
    return round(x)  # Python 3: half to even, as the Rust core


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, zh_docs) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    path = d / "docs.txt"
    path.write_text("\n".join(zh_docs) + "\n", encoding="utf-8")
    return path


def run_prep(inputs, out, vocab, **options):
    options.setdefault("workers", 1)
    return prepare([str(p) for p in inputs], out, vocab, progress=False, **options)


def doc_lines(path: Path) -> dict[int, str]:
    return {i + 1: line for i, line in enumerate(path.read_text(encoding="utf-8").split("\n"))}


SMALL = dict(max_seq_length=64, doc_stride=32, max_predictions_per_seq=20, masked_lm_prob=0.15)
# Enough workers that the reader only cuts lines and the workers parse them.
MANY = _core.PREP_READER_PARSES_UP_TO + 1


def groups_of(marks: np.ndarray) -> list[tuple[int, int]]:
    """Runs of a token plus its continuations, as (start, end) in body coordinates."""
    out: list[list[int]] = []
    for i, m in enumerate(marks):
        if m and out:
            out[-1][1] = i + 1
        else:
            out.append([i, i + 1])
    return [tuple(g) for g in out]


def test_masking_rules_on_real_text(tmp_path, corpus, vocab_file, text_pipeline):
    params = dict(SMALL, masked_lm_prob=0.25)  # more masked tokens for the 80/10/10 check
    manifest = run_prep([corpus], tmp_path / "ex", vocab_file, dupe_factor=40, **params)
    ex = Examples(tmp_path / "ex", verify=True)
    assert len(ex) == manifest["examples"] > 0
    lines = doc_lines(corpus)
    replacement = set(text_pipeline.replacement_ids().tolist())
    mask_id = manifest["vocab"]["mask_id"]
    cls_id, sep_id = manifest["vocab"]["cls_id"], manifest["vocab"]["sep_id"]
    w = SMALL["max_seq_length"] - 2
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ops = {"mask": 0, "kept": 0, "random": 0}
    partial_room = 0
    for i in range(len(ex)):
        e = ex[i]
        if e["line"] not in cache:
            cache[e["line"]] = text_pipeline.tokens_and_marks(lines[e["line"]])
        ids, marks = cache[e["line"]]
        s = e["window"] * SMALL["doc_stride"]
        body, bmarks = ids[s : s + w], marks[s : s + w]
        original = np.concatenate([[cls_id], body, [sep_id]])
        inp = np.asarray(e["input_ids"])
        pos = np.asarray(e["masked_positions"], dtype=np.int64)
        labels = np.asarray(e["masked_labels"])
        assert len(inp) == len(original)
        # labels are the original ids; positions sorted; specials never masked
        assert np.array_equal(labels, original[pos])
        assert np.all(np.diff(pos) > 0)
        assert pos.min() >= 1 and pos.max() <= len(original) - 2
        unmasked = np.setdiff1d(np.arange(len(original)), pos)
        assert np.array_equal(inp[unmasked], original[unmasked])
        # n per window, and groups all-or-nothing
        n = min(params["max_predictions_per_seq"], max(1, py_round(len(original) * 0.25)))
        assert len(pos) <= n
        chosen = set((pos - 1).tolist())
        room = n - len(pos)
        for g0, g1 in groups_of(bmarks):
            inside = [k in chosen for k in range(g0, g1)]
            assert all(inside) or not any(inside), "a whole word was partly masked"
            if not any(inside):
                # greedy fill: a group left out did not fit in the room left
                assert g1 - g0 > room
        partial_room += room
        for p, lab in zip(pos, labels):
            if inp[p] == mask_id:
                ops["mask"] += 1
            elif inp[p] == lab:
                ops["kept"] += 1
            else:
                ops["random"] += 1
                assert int(inp[p]) in replacement
    total = sum(ops.values())
    assert total >= 100_000
    assert total == manifest["report"]["masked_positions"]
    frac = {k: v / total for k, v in ops.items()}
    print("mask/kept/random:", frac, "over", total)
    assert abs(frac["mask"] - 0.8) < 0.006
    assert abs(frac["kept"] - 0.1) < 0.006
    assert abs(frac["random"] - 0.1) < 0.006
    # whole-word grouping did group something (the fixture has many multi-character words)
    assert any(m.any() for _, m in cache.values())


def test_windows_cover_each_document(tmp_path, corpus, vocab_file, text_pipeline):
    run_prep([corpus], tmp_path / "ex", vocab_file, dupe_factor=1, **SMALL)
    ex = Examples(tmp_path / "ex")
    lines = doc_lines(corpus)
    w, stride = SMALL["max_seq_length"] - 2, SMALL["doc_stride"]
    windows: dict[int, list[int]] = {}
    for i in range(len(ex)):
        e = ex[i]
        windows.setdefault(e["line"], []).append(e["window"])
        assert e["piece"] == 0 and e["dupe"] == 0
    for line, ws in windows.items():
        n = len(text_pipeline.encode(lines[line])[0])
        expected = 1 if n <= w else 1 + -(-(n - w) // stride)
        assert sorted(ws) == list(range(expected))
        covered = np.zeros(n, bool)
        for k in ws:
            covered[k * stride : k * stride + w] = True
        assert covered.all()
    used = [ln for ln, t in lines.items() if len(t.strip()) >= 20]
    assert sorted(windows) == used


def test_deterministic_across_workers_and_distinct_streams(tmp_path, corpus, vocab_file):
    a = run_prep([corpus], tmp_path / "w1", vocab_file, workers=1, shard_size=300)
    b = run_prep([corpus], tmp_path / "w2", vocab_file, workers=2, shard_size=300)
    # one document per chunk, three workers: chunks finish out of order, the writer puts
    # them back in order
    c = run_prep([corpus], tmp_path / "w3", vocab_file, workers=3, shard_size=300, chunk_bytes=1)
    # the workers parse pieces of lines (one line each, then many)
    d = run_prep([corpus], tmp_path / "wm", vocab_file, workers=MANY, shard_size=300, chunk_bytes=1)
    e = run_prep([corpus], tmp_path / "wn", vocab_file, workers=MANY, shard_size=300)
    assert len(a["shards"]) > 1
    for other in (b, c, d, e):
        assert [s["bin_sha256"] for s in a["shards"]] == [s["bin_sha256"] for s in other["shards"]]
        assert [s["idx_sha256"] for s in a["shards"]] == [s["idx_sha256"] for s in other["shards"]]
    # where the time went: setup, then the workers' per-document work, which one worker
    # does within the rest of the run and two within twice that
    for m, workers in ((a, 1), (b, 2), (c, 3), (d, MANY), (e, MANY)):
        r = m["report"]
        assert 0 < r["setup_s"] < r["elapsed_s"]
        assert 0 < r["work_s"] <= workers * (r["elapsed_s"] - r["setup_s"])
    # two files with the same text: never the same random stream
    twin = tmp_path / "twin"
    twin.mkdir()
    shutil.copy(corpus, twin / "a.txt")
    shutil.copy(corpus, twin / "b.txt")
    run_prep([twin], tmp_path / "tw", vocab_file, dupe_factor=1)
    ex = Examples(tmp_path / "tw")
    by_file: dict[int, list] = {0: [], 1: []}
    for i in range(len(ex)):
        e = ex[i]
        by_file[e["file"]].append(tuple(e["masked_positions"]))
    assert len(by_file[0]) == len(by_file[1])
    same = sum(x == y for x, y in zip(by_file[0], by_file[1]))
    assert same < len(by_file[0]) * 0.05


def test_rerun_policy(tmp_path, corpus, vocab_file):
    out = tmp_path / "ex"
    first = run_prep([corpus], out, vocab_file)
    again = run_prep([corpus], out, vocab_file)  # finished: nothing is redone
    assert again["shards"] == first["shards"]
    with pytest.raises(wwm_distill.WwmDistillError, match="--overwrite"):
        run_prep([corpus], out, vocab_file, seed=7)
    other = run_prep([corpus], out, vocab_file, seed=7, overwrite=True)
    assert other["shards"][0]["bin_sha256"] != first["shards"][0]["bin_sha256"]


@pytest.mark.parametrize("field", ["masking_version", "shard_version"])
def test_output_of_a_first_version_is_not_mixed_in(tmp_path, corpus, vocab_file, field):
    # A run finished before masking_version 2 (the lazily drawn order) or shard_version 2
    # (documents stored once per shard) has no such field in its manifest: it is another
    # run's output, and resuming into it would mix two maskings or two shard formats.
    out = tmp_path / "ex"
    run_prep([corpus], out, vocab_file)
    path = out / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    assert manifest["params"][field] == 2
    del manifest["params"][field]
    path.write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(wwm_distill.WwmDistillError, match=rf"{field}: 1 → 2.*--overwrite"):
        run_prep([corpus], out, vocab_file)


@pytest.mark.parametrize("workers", [1, MANY])
def test_resume_after_kill(tmp_path, corpus, vocab_file, workers):
    big = tmp_path / "big.txt"
    text = corpus.read_text(encoding="utf-8").strip("\n")
    big.write_text("\n".join([text] * 150) + "\n", encoding="utf-8")
    args = [
        "--vocab",
        str(vocab_file),
        "--quiet",
        "--workers",
        str(workers),
        "--shard-size",
        "300",
        str(big),
    ]
    ref = tmp_path / "ref"
    subprocess.run([*CLI, "--out", str(ref), *args], check=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen([*CLI, "--out", str(out), *args])
    deadline = time.time() + 120
    while not (out / "progress.json").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists(), "run finished before it could be killed"
    done_before = len(json.loads((out / "progress.json").read_text())["shards"])
    assert done_before >= 1
    subprocess.run([*CLI, "--out", str(out), *args], check=True)
    a = json.loads((ref / "manifest.json").read_text())
    b = json.loads((out / "manifest.json").read_text())
    assert [s["bin_sha256"] for s in a["shards"]] == [s["bin_sha256"] for s in b["shards"]]
    assert a["examples"] == b["examples"]
    for key in ("documents_read", "documents_used", "tokens", "windows", "masked_positions"):
        assert a["report"][key] == b["report"][key], key
    assert not list(out.glob("*.tmp")) and not (out / "progress.json").exists()


def test_scale_out_merge_equals_single_run(tmp_path, corpus, vocab_file):
    src = tmp_path / "src"
    src.mkdir()
    lines = corpus.read_text(encoding="utf-8").strip("\n").split("\n")
    for k in range(4):
        (src / f"part{k}.txt").write_text("\n".join(lines[k::4]) + "\n", encoding="utf-8")
    single = run_prep([src], tmp_path / "single", vocab_file, shard_size=200)
    parts = []
    for i in range(2):
        d = tmp_path / f"m{i}"
        run_prep([src], d, vocab_file, shard_size=200, num_shards=2, shard_index=i)
        parts.append(d)
    proc = subprocess.run(
        [*CLI, "merge", str(tmp_path / "merged"), *map(str, parts)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    merged = json.loads((tmp_path / "merged" / "manifest.json").read_text())
    assert merged["examples"] == single["examples"]
    assert merged["report"]["tokens"] == single["report"]["tokens"]

    def keyed(path):
        ex = Examples(path, verify=True)
        return sorted(
            (e["file"], e["line"], e["window"], e["dupe"], e["input_ids"].tobytes())
            for e in (ex[i] for i in range(len(ex)))
        )

    assert keyed(tmp_path / "merged") == keyed(tmp_path / "single")
    bad = subprocess.run(
        [*CLI, "merge", str(tmp_path / "m2"), str(parts[0])], capture_output=True, text=True
    )
    assert bad.returncode != 0 and "shard-index 1" in bad.stderr


def test_examples_reader_and_batches(tmp_path, corpus, vocab_file):
    m = run_prep([corpus], tmp_path / "ex", vocab_file, shard_size=100, **SMALL)
    ex = Examples(tmp_path / "ex")
    assert len(ex.shards) == len(m["shards"]) > 2
    e = ex[len(ex) - 1]
    assert e["input_ids"].dtype == np.uint16
    # zero-copy: the arrays are read-only views of the memory-mapped shard, which the
    # shard object (their base) keeps mapped
    tokens = ex.shards[0].tokens
    assert not tokens.flags.owndata and not tokens.flags.writeable
    assert isinstance(tokens.base, _core.ExamplesShard)
    pos = e["masked_positions"]
    assert not pos.flags.owndata and isinstance(pos.base, _core.ExamplesShard)
    # a shard stores each document's tokens once, not once per masking and window
    manifest = ex.manifest
    assert manifest["report"]["tokens"] <= manifest["tokens"] < 1.2 * manifest["report"]["tokens"]
    b = ex.batch([0, 150, len(ex) - 1])
    assert b["input_ids"].shape[1] % 8 == 0
    assert b["attention_mask"].sum() == sum(len(ex[i]["input_ids"]) for i in (0, 150, len(ex) - 1))
    assert np.array_equal(
        b["input_ids"][b["masked_rows"], b["masked_positions"]] != -1,
        np.ones(len(b["masked_rows"]), bool),
    )
    with pytest.raises(IndexError):
        ex[len(ex)]
    # corruption is detected
    binf = tmp_path / "ex" / "examples-00001.bin"
    data = bytearray(binf.read_bytes())
    data[10] ^= 0xFF
    binf.write_bytes(bytes(data))
    with pytest.raises(wwm_distill.WwmDistillError, match="checksum"):
        Examples(tmp_path / "ex", verify=True)
    binf.write_bytes(bytes(data[:-2]))
    with pytest.raises(wwm_distill.WwmDistillError, match="truncated"):
        Examples(tmp_path / "ex")


# ---------------------------------------------------------------- bad input


def cli(*args, cwd=None):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=cwd)


def assert_clean_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "panicked" not in proc.stderr, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("distill-prep: error:"), proc.stderr
    for n in needles:
        assert n in err[0], err[0]


def test_malformed_json_and_invalid_utf8(tmp_path, vocab_file, zh_docs):
    good = [d for d in zh_docs if len(d) >= 20][:5]
    lines = [json.dumps({"text": good[0]}, ensure_ascii=False).encode()]
    lines.append(b'{"text": "broken')
    lines.append(json.dumps({"title": "t", "content": good[1]}, ensure_ascii=False).encode())
    lines.append(b"")
    lines.append(json.dumps({"text": good[2]}, ensure_ascii=False).encode()[:-2] + b'\xff"}')
    lines.append(b'{"unrelated": 1}')
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    for workers in (1, MANY):  # the reader parses; the workers do
        m = run_prep([path], tmp_path / f"ex{workers}", vocab_file, workers=workers, chunk_bytes=8)
        r = m["report"]
        assert r["documents_read"] == 6 and r["documents_used"] == 3
        assert r["skipped"] == {"malformed_json": 1, "empty": 1, "no_text_field": 1}
        assert r["invalid_utf8_lines"] == 1
        assert r["skipped_examples"][0].startswith(f"{path}:2")
    proc = cli("--vocab", vocab_file, "--out", tmp_path / "s", "--strict", "--quiet", path)
    assert_clean_error(proc, f"{path}:2", "malformed JSON")
    del lines[1]
    path.write_bytes(b"\n".join(lines) + b"\n")
    proc = cli("--vocab", vocab_file, "--out", tmp_path / "s2", "--strict", "--quiet", path)
    assert_clean_error(proc, f"{path}:4", "invalid UTF-8")


@pytest.mark.parametrize("workers", [3, MANY])
def test_a_failure_midway_stops_in_input_order_and_keeps_what_was_written(
    tmp_path, vocab_file, zh_docs, workers
):
    # Many chunks (one document each) over three workers: the chunks after the bad line
    # may be done first, but the writer stops at the bad line, with every shard closed
    # before it on disk and in progress.json.
    good = [d for d in zh_docs if len(d) >= 20]
    docs = [good[i % len(good)] for i in range(120)]
    lines = [json.dumps({"text": d}, ensure_ascii=False) for d in docs]
    bad = 90
    lines.insert(bad - 1, '{"text": "broken')
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "ex"
    opts = dict(workers=workers, chunk_bytes=1, shard_size=40, strict=True, **SMALL)
    with pytest.raises(wwm_distill.WwmDistillError, match=f"{path}:{bad}"):
        run_prep([path], out, vocab_file, **opts)
    progress = json.loads((out / "progress.json").read_text(encoding="utf-8"))
    assert progress["shards"] and not (out / "manifest.json").exists()
    assert progress["position"]["line"] < bad
    for shard in progress["shards"]:
        for kind in ("bin", "idx"):
            data = (out / f"{shard['name']}.{kind}").read_bytes()
            assert len(data) == shard[f"{kind}_bytes"]
            assert hashlib.sha256(data).hexdigest() == shard[f"{kind}_sha256"]


def test_compressed_inputs_and_google_format(tmp_path, vocab_file, zh_docs):
    import gzip

    import zstandard

    docs = [d for d in zh_docs if len(d) >= 20][:6]
    plain = "\n".join(docs) + "\n"
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(plain.encode()))
    (tmp_path / "b.txt.zst").write_bytes(zstandard.ZstdCompressor().compress(plain.encode()))
    m = run_prep([tmp_path / "a.txt.gz", tmp_path / "b.txt.zst"], tmp_path / "ex", vocab_file)
    assert m["report"]["documents_used"] == 12
    # the inputs' sha256 are of the files as they are on disk (compressed)
    for f in m["inputs"]:
        assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
    # Google style: sentences per line, blank lines between documents
    g = tmp_path / "g.txt"
    g.write_text("\n\n".join(d.replace("。", "。\n").strip() for d in docs) + "\n", "utf-8")
    m = run_prep([g], tmp_path / "gx", vocab_file, doc_sep="blank")
    assert m["report"]["documents_used"] == 6


def test_clear_errors_for_bad_setup(tmp_path, vocab_file, corpus):
    out = tmp_path / "o"
    assert_clean_error(cli("--vocab", tmp_path / "nope.txt", "--out", out, corpus), "nope.txt")
    bad_vocab = tmp_path / "bad_vocab.txt"
    bad_vocab.write_text("a\nb\nc\n")
    assert_clean_error(cli("--vocab", bad_vocab, "--out", out, corpus), "[CLS]")
    assert_clean_error(
        cli("--vocab", vocab_file, "--out", out, tmp_path / "missing.txt"), "missing.txt"
    )
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clean_error(
        cli("--vocab", vocab_file, "--out", blocker / "sub", corpus),
        "cannot create output directory",
    )
    assert_clean_error(
        cli("--vocab", vocab_file, "--out", out, "--doc-stride", "0", corpus), "--doc-stride"
    )
    unknown = tmp_path / "data.csv"
    unknown.write_text("a,b\n")
    assert_clean_error(cli("--vocab", vocab_file, "--out", out, unknown), "unknown input type")


@pytest.mark.slow
def test_50mb_line_bounded_memory(tmp_path, vocab_file, zh_docs):
    text = "".join(d for d in zh_docs if len(d) >= 20)
    line = (text * (50_000_000 // len(text.encode()) + 1)).encode()[: 50 * 1024 * 1024]
    line = line.decode("utf-8", "ignore")
    path = tmp_path / "huge.txt"
    path.write_text(line + "\n", encoding="utf-8")
    # VmHWM of the child itself: ru_maxrss would also count the pages of this (pytest,
    # torch-laden) process that the child shares between fork and exec
    code = (
        "import re, sys; from wwm_distill.cli.prep import main; main(sys.argv[1:]); "
        "print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    )
    start = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--vocab",
            str(vocab_file),
            "--out",
            str(tmp_path / "ex"),
            "--quiet",
            "--dupe-factor",
            "1",
            "--workers",
            "2",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    elapsed = time.time() - start
    assert proc.returncode == 0, proc.stderr
    peak_mb = int(proc.stdout.split()[-1]) / 1024
    m = json.loads((tmp_path / "ex" / "manifest.json").read_text())
    r = m["report"]
    print(
        f"50 MB line: {elapsed:.1f} s, peak RSS {peak_mb:.0f} MB, "
        f"{r['long_document_pieces']} extra pieces, {r['examples']} examples"
    )
    assert r["documents_used"] == 1 and r["long_document_pieces"] >= 15
    assert r["chars"] == len(line)
    # bounded: tokenizing the 50 MB document whole would take > 1.5 GB (encodings and
    # alignments of 17 M tokens); in pieces it stays near 250 MB
    assert peak_mb < 800


def test_document_tokens_shared_across_shards_pieces_and_cut_windows(tmp_path, corpus, vocab_file):
    # Format 2 stores a document's tokens once per shard and its examples as windows into
    # them. Exercised where that is hardest: uint32 ids (a vocabulary over 65,536
    # entries), long documents cut into pieces, windows cut short, and shards so small
    # that a document's examples span several of them (its tokens stored in each).
    vocab = tmp_path / "vocab.txt"
    words = vocab_file.read_text(encoding="utf-8").splitlines()
    extra = [f"[extra{i}]" for i in range(70_000 - len(words))]
    vocab.write_text("\n".join(words + extra) + "\n", encoding="utf-8")
    lines = [t for t in corpus.read_text(encoding="utf-8").splitlines() if t.strip()]
    long_docs = tmp_path / "long.txt"
    long_docs.write_text("\n".join("".join(lines[i::3]) for i in range(3)) + "\n", "utf-8")
    params = dict(SMALL, short_seq_prob=0.3, max_doc_chars=1000, shard_size=37, dupe_factor=3)
    m = run_prep([long_docs], tmp_path / "ex", vocab, **params)
    assert m["vocab"]["token_bytes"] == 4 and len(m["shards"]) > 5
    assert m["report"]["long_document_pieces"] > 0
    ex = Examples(tmp_path / "ex", verify=True)
    cls_id, sep_id = m["vocab"]["cls_id"], m["vocab"]["sep_id"]
    # a piece's tokens are stored once in each shard that holds examples of it: all its
    # windows there start at one base
    assert m["tokens"] > m["report"]["tokens"]  # pieces span shards: stored in each
    for sh in ex.shards:
        base: dict[tuple, set[int]] = {}
        for j in range(len(sh)):
            key = (int(sh.file[j]), int(sh.line[j]), int(sh.piece[j]))
            start = int(sh.token_index[j]) - int(sh.window[j]) * SMALL["doc_stride"]
            base.setdefault(key, set()).add(start)
        assert all(len(b) == 1 for b in base.values()), sh.name
    windows: dict[tuple, np.ndarray] = {}
    cut = 0
    for i in range(len(ex)):
        e = ex[i]
        inp, pos = e["input_ids"], e["masked_positions"].astype(np.int64)
        assert inp.dtype == np.uint32 and inp[0] == cls_id and inp[-1] == sep_id
        window = inp.copy()
        window[pos] = e["masked_labels"]
        key = (e["file"], e["line"], e["piece"], e["window"])
        # every masking of a window holds the same tokens
        assert np.array_equal(windows.setdefault(key, window), window), key
        cut += len(window) - 2 < SMALL["max_seq_length"] - 2
    # overlapping windows of a piece agree on the tokens they share
    stride, overlaps = SMALL["doc_stride"], 0
    for (f, line, piece, w), a in windows.items():
        b = windows.get((f, line, piece, w + 1))
        shared = min(len(a) - 2 - stride, len(b) - 2) if b is not None else 0  # a may be cut
        if shared > 0:
            assert np.array_equal(a[1 + stride : 1 + stride + shared], b[1 : 1 + shared])
            overlaps += 1
    assert cut > 0 and overlaps > 100
    # the same examples through the version-1 layout
    old = tmp_path / "v1"
    shutil.copytree(tmp_path / "ex", old)
    write_version_1(old)
    v1 = Examples(old, verify=True)
    for i in range(0, len(ex), 7):
        a, b = ex[i], v1[i]
        for k in ("input_ids", "masked_positions", "masked_labels"):
            assert np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype, k
