"""Shared fixtures: the Chinese test documents and a generated BERT-style Chinese vocabulary.

Nothing here touches the network or any model cache: the vocabulary is written from
scratch in a temporary directory, laid out like bert-base-chinese (specials at 0 and
100..103, then punctuation, digits, letters, CJK characters and English wordpieces).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import string
from pathlib import Path

import pytest

# Never let transformers / huggingface_hub reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# Full-width / CJK punctuation kept as single tokens.
FULLWIDTH_PUNCT = "，。！？：；“”‘’《》（）、…—·「」【】〈〉％＋－／＝～"

# Extension A characters in the vocabulary: U+3400..U+340F only, so other extension
# characters (extension B and later, e.g. U+20000, U+2A6A5) stay [UNK].
EXTENSION_CHARS = "".join(chr(c) for c in range(0x3400, 0x3410))

# Common English words (lowercase, as in an uncased vocabulary).
ENGLISH_WORDS = """
the of and to in is was for on that with as by at from it an be this are or which
not have has had but were their they all been more one two three first new also its
can will would about other there when who what into some time only after most over
such year years up out so no may many these then than them any people use used using
data model models learning machine deep neural network networks training train test
bert transformer transformers gpu gpus cpu memory language languages text token tokens
word words chinese english mask masking whole pre attention layer layers head heads
task tasks fine tuning corpus dataset datasets batch size loss accuracy score best
python rust code file files line lines read write open source library version release
iphone android apple google phone phones app apps web internet online computer
world city country china beijing shanghai university school student students teacher
team game games sport sports football basketball player players match win cup
market price prices bank money economy growth report news press today week month
day days night morning home house family friend friends food water coffee tea cafe
good great small large big long short high low old young right left very much well
time times life work works working worked make makes made take takes took get got
say says said see seen know known think go goes went come came look looking find
show shows help need needs want wants like love play played run running runs
open close start end set sets point points part parts number numbers case cases
system systems process processing research science scientist study studies paper
result results method methods based base performance fast faster speed speeds
hello world simple pipeline team our your my his her we you he she i me us
""".split()

# A few cased / accented entries, useful when lowercasing is off.
CASED_WORDS = ["BERT", "GPU", "GPT", "Transformer", "iPhone", "Python", "Rust", "café", "naïve"]

SUBWORD_SUFFIXES = """
s es ing ed er ers est ly tion tions ment ness able ize ized al ic ical ous ful less
""".split()


def _vocab_tokens() -> list[str]:
    tokens: list[str] = ["[PAD]"]
    tokens += [f"[unused{i}]" for i in range(1, 100)]
    tokens += ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"]
    tokens += list(string.punctuation)
    tokens += list(string.digits)
    tokens += list(string.ascii_lowercase)
    tokens += list(FULLWIDTH_PUNCT)
    tokens += [chr(c) for c in range(0x4E00, 0x9FA6)]
    tokens += list(EXTENSION_CHARS)
    tokens += ENGLISH_WORDS
    tokens += CASED_WORDS
    tokens += [f"##{s}" for s in SUBWORD_SUFFIXES]
    tokens += [f"##{d}" for d in string.digits]
    tokens += [f"##{c}" for c in string.ascii_lowercase]
    # Drop duplicates, keeping the first id of each token.
    seen: set[str] = set()
    unique = []
    for t in tokens:
        if t not in seen:
            seen.add(t)
            unique.append(t)
    return unique


@pytest.fixture(scope="session")
def zh_docs() -> list[str]:
    """The fixture documents, one per line (including a few deliberately short ones)."""
    text = (FIXTURES / "zh_docs.txt").read_text(encoding="utf-8")
    return [line for line in text.split("\n") if line]


@pytest.fixture(scope="session")
def vocab_tokens() -> list[str]:
    """The generated vocabulary, in id order."""
    return _vocab_tokens()


@pytest.fixture(scope="session")
def vocab_dir(tmp_path_factory: pytest.TempPathFactory, vocab_tokens: list[str]) -> Path:
    """A model-style directory holding ``vocab.txt`` and ``tokenizer_config.json``."""
    d = tmp_path_factory.mktemp("vocab")
    (d / "vocab.txt").write_text("\n".join(vocab_tokens) + "\n", encoding="utf-8")
    (d / "tokenizer_config.json").write_text(
        json.dumps({"do_lower_case": True}) + "\n", encoding="utf-8"
    )
    return d


@pytest.fixture(scope="session")
def vocab_file(vocab_dir: Path) -> Path:
    return vocab_dir / "vocab.txt"


@pytest.fixture(scope="session")
def text_pipeline(vocab_file: Path):
    import wwm_distill

    return wwm_distill.TextPipeline(str(vocab_file))


# ----------------------------------------------------------------------------- tiny models
# A character vocabulary of the fixture documents and tiny BERTs built here (no downloads).

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_config(vocab_size: int, **kw):
    import transformers

    return transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        **kw,
    )


@pytest.fixture(scope="session")
def small_vocab(tmp_path_factory, zh_docs) -> Path:
    """A character vocabulary of the fixture documents: a small head keeps tests fast."""
    chars = sorted({c for d in zh_docs for c in d.lower() if not c.isspace()})
    d = tmp_path_factory.mktemp("small_vocab")
    (d / "vocab.txt").write_text("\n".join(SPECIALS + chars) + "\n", encoding="utf-8")
    return d


@pytest.fixture(scope="session")
def examples_dir(tmp_path_factory, zh_docs, small_vocab) -> Path:
    d = tmp_path_factory.mktemp("teacher_ex")
    corpus = d / "docs.txt"
    corpus.write_text("\n".join(zh_docs) + "\n", encoding="utf-8")
    import wwm_distill

    wwm_distill.prepare(
        [corpus],
        d / "ex",
        small_vocab / "vocab.txt",
        progress=False,
        max_seq_length=64,
        doc_stride=32,
        dupe_factor=2,
        shard_size=250,
    )
    return d / "ex"


@contextlib.contextmanager
def one_torch_thread():
    """Shared models and caches are built with one intra-op thread, whichever test asks for
    them first: trained weights differ in the last bits between thread counts (and CPUs), so
    a failure must not depend on which test ran first."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def save_model(model, path: Path, vocab_dir: Path) -> Path:
    model.save_pretrained(path)
    shutil.copy(vocab_dir / "vocab.txt", path / "vocab.txt")
    return path


@pytest.fixture(scope="session")
def random_model(tmp_path_factory, small_vocab) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    n = len((small_vocab / "vocab.txt").read_text(encoding="utf-8").split("\n")) - 1
    model = transformers.BertForMaskedLM(tiny_config(n))
    return save_model(model, tmp_path_factory.mktemp("m") / "random", small_vocab)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, random_model, small_vocab, examples_dir) -> Path:
    """The tiny model after plain masked-LM training (distill-train without a cache) on the
    fixture examples."""
    from wwm_distill.trainer import TrainConfig, train

    home = tmp_path_factory.mktemp("m")
    run = home / "trained-run"
    with one_torch_thread():
        train(
            TrainConfig(
                examples=str(examples_dir),
                out=str(run),
                student=str(random_model),
                batch_size=32,
                lr=2e-3,
                warmup_steps=30,
                max_steps=300,
                eval_examples=0,
                save_every=300,
                progress=False,
            )
        )
    os.replace(run / "student", home / "trained")  # tests name the model by its directory
    return home / "trained"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory, trained_model, examples_dir) -> Path:
    """A top-8 teacher cache of the trained tiny model over the fixture examples."""
    from wwm_distill import teacher

    out = tmp_path_factory.mktemp("cache") / "teacher"
    with one_torch_thread():
        teacher.run_teacher(
            trained_model,
            examples_dir,
            out,
            mode=teacher.Mode("topk", k=8),
            batch_size=16,
            progress=False,
        )
    return out
