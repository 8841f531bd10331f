"""``distill-prep``: raw Chinese corpora → whole-word-masked example shards.

distill-prep --vocab VOCAB_OR_MODEL_DIR --out DIR INPUT... [options]
distill-prep merge OUT DIR...
"""

from __future__ import annotations

import argparse
import os
import sys

from wwm_distill import WwmDistillError, _core
from wwm_distill.cli import fail
from wwm_distill.data import merge, prepare

PROG = "distill-prep"


def build_parser() -> argparse.ArgumentParser:
    d = _core.PrepConfig.defaults()  # the Rust core's defaults, in one place
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Segment (jieba), WordPiece-tokenize and whole-word-mask Chinese corpora "
        "into example shards. Inputs: .txt (one document per line, or --doc-sep blank) and "
        ".jsonl/.json lines, optionally .gz or .zst; files, directories or globs. "
        "`distill-prep merge OUT DIR...` combines --num-shards runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, directories or globs")
    p.add_argument("--vocab", required=True, help="vocab.txt, or a model directory")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--do-lower-case",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lowercase as the model expects (default: tokenizer_config.json, else true)",
    )
    g = p.add_argument_group("segmentation")
    g.add_argument(
        "--segmenter",
        choices=["jieba", "none"],
        default=d["segmenter"],
        help="word boundaries for whole-word masking; none = character level",
    )
    g.add_argument(
        "--no-hmm", dest="hmm", action="store_false", help="turn off jieba's HMM for unknown words"
    )
    g.add_argument("--user-dict", help="jieba user dictionary (word [freq] [tag] per line)")
    g = p.add_argument_group("input")
    g.add_argument(
        "--doc-sep",
        choices=["line", "blank"],
        default=d["doc_sep"],
        help="text files: one document per line, or blank-line separated",
    )
    g.add_argument(
        "--text-fields",
        default=",".join(d["text_fields"]),
        help="JSON fields to join, comma separated (default: text | "
        "title,desc,answer | title,content)",
    )
    g.add_argument("--min-chars", type=int, default=d["min_chars"], help="skip shorter documents")
    g.add_argument(
        "--max-doc-chars",
        type=int,
        default=d["max_doc_chars"],
        help="cut longer documents into pieces at sentence ends",
    )
    g.add_argument(
        "--strict",
        action="store_true",
        help="malformed JSON or invalid UTF-8 is fatal (default: skip and count)",
    )
    g = p.add_argument_group("masking")
    g.add_argument("--max-seq-length", type=int, default=d["max_seq_length"])
    g.add_argument("--doc-stride", type=int, default=d["doc_stride"])
    g.add_argument("--dupe-factor", type=int, default=d["dupe_factor"])
    g.add_argument("--max-predictions-per-seq", type=int, default=d["max_predictions_per_seq"])
    g.add_argument("--masked-lm-prob", type=float, default=d["masked_lm_prob"])
    g.add_argument("--short-seq-prob", type=float, default=d["short_seq_prob"])
    g.add_argument("--seed", type=int, default=d["seed"])
    g = p.add_argument_group("output and scale-out")
    g.add_argument("--shard-size", type=int, default=d["shard_size"], help="examples per shard")
    g.add_argument(
        "--workers", type=int, default=d["workers"], help="worker threads (0: all cores)"
    )
    g.add_argument(
        "--chunk-bytes",
        type=int,
        default=d["chunk_bytes"],
        help="text a worker takes at a time (the output does not depend on it)",
    )
    g.add_argument(
        "--num-shards",
        type=int,
        default=d["num_shards"],
        help="machines sharing the inputs (each takes every K-th file)",
    )
    g.add_argument("--shard-index", type=int, default=d["shard_index"], help="this machine's index")
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier run's output made with other arguments",
    )
    g.add_argument("--quiet", action="store_true", help="no progress bar or report")
    return p


def merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{PROG} merge", description="Combine the outputs of --num-shards runs."
    )
    p.add_argument("out", help="output directory")
    p.add_argument("dirs", nargs="+", help="output directories of the shard-index runs")
    p.add_argument("--overwrite", action="store_true")
    return p


def format_report(manifest: dict) -> str:
    r = manifest["report"]
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(r["skipped"].items())) or "none"
    lines = [
        f"documents read    {r['documents_read']:,} (used {r['documents_used']:,}; "
        f"skipped: {skipped})",
        f"characters        {r['chars']:,} ({r['bytes'] / 1e6:.1f} MB of text)",
        f"tokens            {r['tokens']:,} ([UNK] rate {100 * r['unk_rate']:.3f} %)",
        f"windows           {r['windows']:,}",
        f"examples          {r['examples']:,} in {len(manifest['shards'])} shard(s)",
        f"masked positions  {r['masked_positions']:,}",
        f"invalid UTF-8     {r['invalid_utf8_lines']:,} line(s) replaced",
        f"time              {r['elapsed_s']:.1f} s ({r['chars_per_s'] / 1e6:.2f} M chars/s; "
        f"setup {r.get('setup_s', 0):.2f} s, workers busy {r.get('work_s', 0):.1f} s)",
    ]
    if r["long_document_pieces"]:
        lines.append(f"long documents    cut into {r['long_document_pieces']:,} extra piece(s)")
    lines += [f"  malformed: {loc}" for loc in r["skipped_examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["merge"]:
            a = merge_parser().parse_args(argv[1:])
            manifest = merge(a.out, a.dirs, overwrite=a.overwrite)
            print(f"merged {len(a.dirs)} run(s) into {a.out}")
            print(format_report(manifest))
            return
        a = build_parser().parse_args(argv)
        options = vars(a).copy()
        for key in ("inputs", "out", "vocab", "quiet"):
            options.pop(key)
        options["text_fields"] = [f.strip() for f in a.text_fields.split(",") if f.strip()]
        manifest = prepare(a.inputs, a.out, a.vocab, progress=not a.quiet, **options)
        if not a.quiet:
            print(format_report(manifest))
            print(f"output: {os.path.abspath(a.out)}")
    except WwmDistillError as e:
        fail(PROG, str(e))
    except OSError as e:
        fail(PROG, str(e))
    except KeyboardInterrupt:
        fail(PROG, "interrupted; rerun the same command to resume", 130)


if __name__ == "__main__":
    main()
