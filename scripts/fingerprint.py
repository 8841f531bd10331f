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

# JSON keys whose values are times, rates, hosts or paths (they differ run to run).
VOLATILE = re.compile(
    r"(second|elapsed|time|date|_s$|per_s|rate|throughput|samples_s|host|path|dir$|"
    r"^vocab$|^out$|^examples$|^cache$|^model$|^inputs$|^file$|^student$|^teacher$|^config$)"
)
SKIPPED = {".png", ".md", ".log"}


def scrub(obj):
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items() if not VOLATILE.search(k)}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def digest(path: Path) -> str | None:
    if path.suffix in SKIPPED or path.name in {"timings.json"}:
        return None
    if path.suffix in {".json", ".jsonl"}:
        text = path.read_text(encoding="utf-8")
        rows = text.splitlines() if path.suffix == ".jsonl" else [text]
        canon = [json.dumps(scrub(json.loads(r)), sort_keys=True) for r in rows if r.strip()]
        return hashlib.sha256("\n".join(canon).encode()).hexdigest()
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
        h = digest(path)
        if h is not None:
            lines.append(f"{h}  {path.relative_to(a.work)}")
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if a.out:
        a.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
