"""Token ids and offsets of ``TextPipeline.encode`` must equal Hugging Face's BERT fast tokenizer.

Both sides use the same generated vocabulary (see conftest.py). The inputs are ~10k seeded
random lines built to hit the tricky parts of BERT's basic tokenization: CJK splitting,
lowercasing and accent stripping, full-width forms, control and zero-width characters,
emoji, characters outside the vocabulary and words longer than WordPiece's 100-char limit.

``encode`` takes a one-lookup-per-character fast path for characters BERT always makes a
token of their own (rust/tokenize.rs); the tests at the end check it on every character of
the vocabulary and of the CJK blocks, in several contexts, and on seeded random Unicode,
cased and uncased, with the generated vocabulary and bert-base-chinese's when it is cached.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

transformers = pytest.importorskip("transformers")

N_LINES = 10_000
N_CASED_LINES = 2_500

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

LATIN_WORDS = [
    "BERT",
    "bert",
    "Bert",
    "Transformer",
    "TRANSFORMERS",
    "GPU",
    "gpus",
    "iPhone",
    "IPHONE",
    "Learning",
    "learning",
    "LEARNING",
    "deep",
    "Data",
    "models",
    "Tokenization",
    "tokens",
    "the",
    "The",
    "and",
    "Hello",
    "World",
    "python",
    "Rust",
    "training",
    "trained",
    "pipelines",
    "worked",
    "faster",
    "quickly",
    "openness",
    "xyzzy",
    "qwerty",
    "foobar",
    "kiwi",
    "Zebra",
]
ACCENTED_WORDS = [
    "Café",
    "café",
    "CAFÉ",
    "naïve",
    "Naïve",
    "résumé",
    "Über",
    "über",
    "façade",
    "jalapeño",
    "Zoë",
    "Ångström",
    "crème",
    "brûlée",
    "El Niño",
    "São",
    "Ørsted",
    "Łódź",
    "cafe\u0301",
    "e\u0301",
    "n\u0303",
    "ﬁne",
    "ß",
    "İstanbul",
    "ǅ",
    "Ǆ",
]
OTHER_SCRIPTS = [
    "Ελληνικά",
    "Москва",
    "русский",
    "مرحبا",
    "שלום",
    "ภาษาไทย",
    "한국어",
    "안녕하세요",
    "ひらがな",
    "カタカナ",
    "ﾊﾝｶｸ",
    "हिन्दी",
    "Ⅻ",
    "①②③",
    "㎏",
    "™",
    "½",
    "²",
]
NUMBERS = [
    "2019",
    "2019年",
    "3.5%",
    "0.25",
    "1,000,000",
    "12:30",
    "3.1415926",
    "-42",
    "+7",
    "1e-5",
    "v2.3.1",
    "No.1",
    "100%",
    "５０％",
    "１２３",
    "２０２４年",
    "007",
    "1/2",
]
FULLWIDTH_FORMS = [
    "ＡＢＣ",
    "ａｂｃ",
    "ＢＥＲＴ",
    "１２３",
    "０",
    "Ｇｏｏｇｌｅ",
    "＄",
    "＆",
    "＠",
    "＃",
    "（",
    "）",
    "［",
    "］",
    "｛",
    "｝",
    "＜",
    "＞",
    "＿",
    "｜",
    "＼",
    "＾",
    "｀",
    "＂",
    "＇",
]
CJK_PUNCT = list("，。！？：；“”‘’《》（）、…—·「」『』【】〈〉〔〕〖〗～％＋－／＝") + ["……", "——"]
ASCII_PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["...", "--", "!!", "?!", "\\n"]
EMOJI = [
    "😀",
    "🚀",
    "🙂",
    "👍",
    "👍🏻",
    "❤️",
    "❤",
    "🇨🇳",
    "👨\u200d👩\u200d👧",
    "🎉",
    "☕",
    "✅",
    "🀄",
    "🈶",
    "©",
    "®",
    "⭐",
]
RARE_CJK = [
    "𠀀",
    "𪚥",
    "㐀",
    "㐁",
    "㐏",
    "㐐",
    "䶵",
    "𠮷",
    "𡃁",
    "𫝀",
    "𬺰",
    "龥",
    "鿿",
    "鿕",
    "\uf900",
    "\ufa0e",
    "\U0002f800",
    "〇",
    "々",
    "⺀",
    "⿰",
    "㊣",
]
CONTROL = [
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\x00",
    "\x01",
    "\x07",
    "\x1b",
    "\x7f",
    "\x85",
    "\x0b",
    "\x0c",
    "\u00a0",
    "\u3000",
    "\u2028",
    "\u2029",
    "\u2003",
    "\u202f",
    "\ufffd",
    "\u00ad",
    "\u200e",
]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\u0301", "\ufe0f", "\u034f"]
SEPARATORS = ["", "", "", " ", " ", "  ", "   ", "\t", " \t ", "\u3000", "\n"]


def _zh_fragment(rng: random.Random, docs: list[str]) -> str:
    doc = rng.choice(docs)
    n = rng.randint(1, 60)
    start = rng.randint(0, max(0, len(doc) - n))
    return doc[start : start + n]


def _latin_word(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.5:
        w = rng.choice(LATIN_WORDS)
    elif r < 0.8:
        w = rng.choice(ACCENTED_WORDS)
    else:
        letters = "abcdefghijklmnopqrstuvwxyzéèüöñç"
        w = "".join(rng.choice(letters) for _ in range(rng.randint(1, 14)))
    mode = rng.random()
    if mode < 0.15:
        w = w.upper()
    elif mode < 0.3:
        w = "".join(c.upper() if rng.random() < 0.5 else c for c in w)
    return w


def _long_word(rng: random.Random) -> str:
    n = rng.choice([99, 100, 101, 102, rng.randint(101, 400)])
    kind = rng.random()
    if kind < 0.4:
        alphabet = "abcdefghijklmnopqrstuvwxyz"
    elif kind < 0.6:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789"
    elif kind < 0.8:
        alphabet = "0123456789"
    else:
        alphabet = "aeiouéüñ"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _piece(rng: random.Random, docs: list[str]) -> str:
    r = rng.random()
    if r < 0.30:
        return _zh_fragment(rng, docs)
    if r < 0.45:
        return _latin_word(rng)
    if r < 0.52:
        return rng.choice(NUMBERS) if rng.random() < 0.6 else str(rng.randint(0, 10**9))
    if r < 0.57:
        return rng.choice(FULLWIDTH_FORMS)
    if r < 0.64:
        return rng.choice(CJK_PUNCT)
    if r < 0.69:
        return rng.choice(ASCII_PUNCT)
    if r < 0.74:
        return rng.choice(EMOJI)
    if r < 0.79:
        return rng.choice(RARE_CJK)
    if r < 0.85:
        return rng.choice(CONTROL)
    if r < 0.89:
        return rng.choice(ZERO_WIDTH)
    if r < 0.92:
        return rng.choice(OTHER_SCRIPTS)
    if r < 0.95:
        return _long_word(rng)
    # A random code point from the BMP or the CJK extension planes (no surrogates).
    cp = rng.choice([rng.randint(0x20, 0xD7FF), rng.randint(0xE000, 0xFFFD)])
    if rng.random() < 0.3:
        cp = rng.randint(0x20000, 0x2FFFF)
    return chr(cp)


def make_lines(docs: list[str], n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines: list[str] = []
    # Fixed edge cases first.
    lines += [
        "",
        " ",
        "\t\n",
        "\u200b",
        "\x00\x00",
        "a" * 100,
        "a" * 101,
        "中" * 150,
        "Café naïve ＡＢＣ１２３ 😀🚀 𠀀𪚥㐀",
        "  多个   空格\t制表符\u3000全角空格  ",
        "BERT模型在GPU上训练了3.5天，效果提升１２３％！",
    ]
    lines += docs
    while len(lines) < n:
        k = rng.randint(1, 12)
        parts = []
        for _ in range(k):
            parts.append(_piece(rng, docs))
            parts.append(rng.choice(SEPARATORS))
        line = "".join(parts)
        # Literal special tokens are matched as added tokens by transformers but are plain
        # text for the prep pipeline: not what this test compares.
        if any(s in line for s in SPECIAL_TOKENS):
            continue
        lines.append(line)
    return lines


def load_hf_tokenizer(vocab_file: Path, do_lower_case: bool):
    """``BertTokenizerFast`` for a local vocab.txt, no hub access.

    transformers 4 takes ``vocab_file=``; transformers 5 (where ``BertTokenizerFast`` is
    ``BertTokenizer``) takes ``vocab=`` and silently ignores ``vocab_file``.
    """
    from transformers import BertTokenizerFast

    n_vocab = sum(1 for _ in vocab_file.open(encoding="utf-8"))
    tok = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=do_lower_case)
    if tok.backend_tokenizer.get_vocab_size() != n_vocab:
        tok = BertTokenizerFast(vocab=str(vocab_file), do_lower_case=do_lower_case)
    assert tok.backend_tokenizer.get_vocab_size() == n_vocab
    assert tok.is_fast
    return tok


def char_to_byte_offsets(line: str, char_offsets) -> list[list[int]]:
    cum = [0]
    for ch in line:
        cum.append(cum[-1] + len(ch.encode("utf-8")))
    return [[cum[s], cum[e]] for s, e in char_offsets]


def compare(pipeline, hf_tok, lines: list[str]) -> tuple[list[str], int]:
    """Mismatch descriptions (ids first, then offsets) and the number of tokens compared."""
    enc = hf_tok(lines, add_special_tokens=False, return_offsets_mapping=True)
    mismatches: list[str] = []
    n_tokens = 0
    for i, line in enumerate(lines):
        ids, offsets = pipeline.encode(line)
        assert ids.dtype == np.uint32
        assert offsets.dtype == np.uint64
        assert offsets.shape == (len(ids), 2)
        got_ids = ids.tolist()
        want_ids = enc["input_ids"][i]
        n_tokens += len(want_ids)
        if got_ids != want_ids:
            toks_got = [pipeline.token(t) for t in got_ids]
            toks_want = hf_tok.convert_ids_to_tokens(want_ids)
            mismatches.append(f"ids   line {i} {line!r}:\n  ours {toks_got}\n  hf   {toks_want}")
            continue
        want_offsets = char_to_byte_offsets(line, enc["offset_mapping"][i])
        if offsets.tolist() != want_offsets:
            mismatches.append(
                f"offs  line {i} {line!r}:\n  ours {offsets.tolist()}\n  hf   {want_offsets}"
            )
    return mismatches, n_tokens


def _report(mismatches: list[str], n_lines: int) -> str:
    head = "\n".join(mismatches[:8])
    return f"{len(mismatches)} of {n_lines} lines differ from BertTokenizerFast:\n{head}"


@pytest.fixture(scope="module")
def parity_lines(zh_docs: list[str]) -> list[str]:
    return make_lines(zh_docs, N_LINES, seed=0)


def test_generated_lines_cover_edge_cases(parity_lines: list[str]) -> None:
    assert len(parity_lines) >= N_LINES
    text = "".join(parity_lines)
    for probe in ["\u200b", "\t", "  ", "😀", "𠀀", "ＡＢＣ", "Café", "\x00", "，"]:
        assert probe in text, probe
    assert any(len(w) > 100 for line in parity_lines for w in line.split())


def test_vocab_layout(text_pipeline, vocab_tokens: list[str]) -> None:
    assert text_pipeline.vocab_size == len(vocab_tokens)
    assert text_pipeline.do_lower_case is True  # read from tokenizer_config.json
    for i, name in [(0, "[PAD]"), (100, "[UNK]"), (101, "[CLS]"), (102, "[SEP]"), (103, "[MASK]")]:
        assert text_pipeline.token(i) == name


def test_ids_and_offsets_match_bert_tokenizer_fast(
    text_pipeline, vocab_file: Path, parity_lines: list[str]
) -> None:
    hf_tok = load_hf_tokenizer(vocab_file, do_lower_case=True)
    mismatches, n_tokens = compare(text_pipeline, hf_tok, parity_lines)
    print(
        f"\nparity (lowercase): {len(parity_lines)} lines, {n_tokens} tokens, "
        f"{len(mismatches)} mismatching lines"
    )
    assert not mismatches, _report(mismatches, len(parity_lines))


def test_ids_and_offsets_match_without_lowercasing(
    vocab_file: Path, parity_lines: list[str]
) -> None:
    import wwm_distill

    pipeline = wwm_distill.TextPipeline(str(vocab_file), do_lower_case=False)
    assert pipeline.do_lower_case is False
    hf_tok = load_hf_tokenizer(vocab_file, do_lower_case=False)
    lines = parity_lines[:N_CASED_LINES]
    mismatches, n_tokens = compare(pipeline, hf_tok, lines)
    print(
        f"\nparity (cased): {len(lines)} lines, {n_tokens} tokens, "
        f"{len(mismatches)} mismatching lines"
    )
    assert not mismatches, _report(mismatches, len(lines))


# ---------------------------------------------------------------- the fast path, exhaustively

# Unicode blocks around Chinese text: BERT's CJK ranges and their neighbours (radicals,
# symbols and punctuation, kana, enclosed and compatibility forms, full-width forms,
# extensions up to H).
CJK_BLOCKS = [
    (0x2E80, 0x2FDF),
    (0x2FF0, 0x31FF),
    (0x3200, 0x4DBF),
    (0x4DC0, 0x9FFF),
    (0xF900, 0xFAFF),
    (0xFE10, 0xFE4F),
    (0xFF00, 0xFFEF),
    (0x20000, 0x2FA1F),
    (0x30000, 0x323AF),
]
# Neighbours each character is tested between: characters that stand alone (CJK,
# punctuation), a compatibility ideograph NFD changes, letters, digits, combining marks,
# whitespace and removed characters.
CONTEXTS = [
    ("", ""),
    ("中", "国"),
    ("a", "b"),
    ("", "\u0301"),
    ("，", "1"),
    ("É", "\uf900"),
    ("\u200b", "\t"),
]
BERT_BASE_CHINESE = (
    Path(os.environ.get("WWM_CACHE") or Path(__file__).resolve().parents[1] / ".cache")
    / "bert-base-chinese"
    / "vocab.txt"
)


def _vocab_chars(vocab_file: Path) -> set[str]:
    chars: set[str] = set()
    for line in vocab_file.read_text(encoding="utf-8").splitlines():
        token = line.rstrip()
        chars.update(token.removeprefix("##"))
    return chars


def _context_lines(chars: list[str], per_line: int = 48) -> list[str]:
    lines = []
    for i in range(0, len(chars), per_line):
        block = chars[i : i + per_line]
        for k, (before, after) in enumerate(CONTEXTS):
            sep = " " if k % 2 else "。"
            lines.append(sep.join(f"{before}{c}{after}" for c in block))
        lines.append("".join(block))
    return [line for line in lines if not any(s in line for s in SPECIAL_TOKENS)]


VOCAB_PARAMS = [
    pytest.param("generated", id="generated-vocab"),
    pytest.param(
        "bert-base-chinese",
        id="bert-base-chinese",
        marks=pytest.mark.skipif(
            not BERT_BASE_CHINESE.is_file(), reason="bert-base-chinese vocab not cached"
        ),
    ),
]


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
@pytest.mark.parametrize("which", VOCAB_PARAMS)
def test_every_vocab_and_cjk_character_matches_bert_tokenizer_fast(
    which: str, do_lower_case: bool, vocab_file: Path
) -> None:
    import wwm_distill

    vocab = vocab_file if which == "generated" else BERT_BASE_CHINESE
    chars = _vocab_chars(vocab)
    for lo, hi in CJK_BLOCKS:
        chars.update(chr(c) for c in range(lo, hi + 1))
    ordered = sorted(chars)
    assert len(ordered) > 100_000
    lines = _context_lines(ordered)
    pipeline = wwm_distill.TextPipeline(str(vocab), do_lower_case=do_lower_case)
    hf_tok = load_hf_tokenizer(vocab, do_lower_case=do_lower_case)
    mismatches, n_tokens = compare(pipeline, hf_tok, lines)
    print(f"\n{which} lower={do_lower_case}: {len(ordered)} characters, {n_tokens} tokens")
    assert not mismatches, _report(mismatches, len(lines))


# Pools the fuzz draws characters from: alone characters and what can interact with them.
FUZZ_POOLS = [
    [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0xF900, 0xFAFF), (0x20000, 0x2FA1F)],
    [(0x21, 0x7E), (0x3000, 0x303F), (0xFF00, 0xFFEF), (0x2000, 0x206F)],
    [(0x300, 0x36F), (0x591, 0x5C7), (0x1AB0, 0x1AFF), (0x20D0, 0x20FF)],
    [(0x0, 0x20), (0x7F, 0xA0), (0x2028, 0x202F), (0xFFF0, 0xFFFF)],
    [(0xA0, 0x24F), (0x370, 0x52F), (0x1E00, 0x1FFF), (0xAC00, 0xD7A3)],
    [(0x0, 0xD7FF), (0xE000, 0x10FFFF)],
]


def _fuzz_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    while len(lines) < n:
        chars = []
        for _ in range(rng.randint(0, 40)):
            lo, hi = rng.choice(rng.choice(FUZZ_POOLS))
            chars.append(chr(rng.randint(lo, hi)))
        line = "".join(chars)
        if not any(s in line for s in SPECIAL_TOKENS):
            lines.append(line)
    return lines


@pytest.mark.parametrize("do_lower_case", [True, False], ids=["uncased", "cased"])
def test_random_unicode_matches_bert_tokenizer_fast(vocab_file: Path, do_lower_case: bool) -> None:
    import wwm_distill

    lines = _fuzz_lines(5_000, seed=7)
    pipeline = wwm_distill.TextPipeline(str(vocab_file), do_lower_case=do_lower_case)
    hf_tok = load_hf_tokenizer(vocab_file, do_lower_case=do_lower_case)
    mismatches, _ = compare(pipeline, hf_tok, lines)
    assert not mismatches, _report(mismatches, len(lines))
