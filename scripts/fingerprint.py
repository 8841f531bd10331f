"""Fingerprint of every output the pipeline writes, for "behaviour unchanged" checks.

Runs the quality experiment's tiny preset (prep → teacher trained from scratch → head trap
→ caches in three modes → students → eval) on the repository's fixture documents, plus a
two-worker prep at the default masking settings, all on one torch thread, then prints one
line per output file: its sha256 and its path. JSON files are hashed without the fields
that hold wall-clock times, rates or absolute paths; plots and logs are left out.

    python scripts/fingerprint.py --work DIR [--out fingerprint.txt]

Run it before and after a change on the same machine and ``diff`` the two files: the
formats are byte-identical when nothing but the listed exclusions differs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "tests" / "fixtures" / "zh_docs.txt"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# JSON keys whose values are wall-clock times or rates (they differ run to run), and the
# hash of an examples manifest (a file that holds paths and times; it is fingerprinted
# itself, scrubbed).
VOLATILE = re.compile(
    r"(second|elapsed|time|date|finished|started|_s$|per_s|rate|throughput|manifest_sha256)"
)
SKIPPED = {".png", ".md", ".log"}


def scrub(obj, work: str):
    """Times and rates dropped, the working directory's path written as <WORK>."""
    if isinstance(obj, dict):
        return {k: scrub(v, work) for k, v in obj.items() if not VOLATILE.search(str(k))}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, work) for v in obj]
    if isinstance(obj, str):
        return obj.replace(work, "<WORK>")
    if isinstance(obj, Path):
        return str(obj).replace(work, "<WORK>")
    if hasattr(obj, "detach"):  # a tensor: its dtype, shape and bytes
        t = obj.detach().cpu().contiguous()
        raw = t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes()
        return f"{t.dtype}{tuple(t.shape)}:{hashlib.sha256(raw).hexdigest()}"
    if isinstance(obj, float) and obj != obj:
        return "nan"
    return obj


def digest(path: Path, work: str) -> str | None:
    if path.suffix in SKIPPED or path.name in {"timings.json"}:
        return None
    if path.suffix in {".json", ".jsonl"}:
        text = path.read_text(encoding="utf-8")
        rows = text.splitlines() if path.suffix == ".jsonl" else [text]
        canon = [json.dumps(scrub(json.loads(r), work), sort_keys=True) for r in rows if r.strip()]
        return hashlib.sha256("\n".join(canon).encode()).hexdigest()
    if path.suffix == ".pt":  # a pickle holding the run's paths: hash what it holds
        import torch

        obj = scrub(torch.load(path, map_location="cpu", weights_only=False), work)
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=repr).encode()).hexdigest()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def inputs(work: Path):
    sys.path.insert(0, str(REPO / "scripts"))
    import quality

    d = work / "inputs"
    d.mkdir(parents=True, exist_ok=True)
    docs = [line for line in DOCS.read_text(encoding="utf-8").split("\n") if line]
    (d / "docs.txt").write_text("\n".join(docs) + "\n", encoding="utf-8")
    chars = sorted({c for doc in docs for c in doc.lower() if not c.isspace()})
    (d / "vocab.txt").write_text("\n".join(SPECIALS + chars) + "\n", encoding="utf-8")
    lines = [
        json.dumps({"category": ["甲", "乙"][i % 2], "text": doc[:60]}, ensure_ascii=False)
        for i, doc in enumerate(docs * 2)
    ]
    (d / "labelled.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return quality, quality.Inputs(d / "docs.txt", d / "vocab.txt", d / "labelled.jsonl")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="empty or missing directory")
    ap.add_argument("--out", type=Path, help="write the fingerprint here too")
    a = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import wwm_distill

    torch.set_num_threads(1)
    a.work = a.work.resolve()
    quality, ins = inputs(a.work)
    quality.run("tiny", a.work / "tiny", inputs=ins, progress=False)
    wwm_distill.prepare(
        [ins.corpus],
        a.work / "prep-2w",
        ins.vocab,
        progress=False,
        max_seq_length=64,
        doc_stride=32,
        workers=2,
        shard_size=100,
    )
    lines = []
    for path in sorted(p for p in a.work.rglob("*") if p.is_file()):
        h = digest(path, str(a.work.resolve()))
        if h is not None:
            lines.append(f"{h}  {path.relative_to(a.work)}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
