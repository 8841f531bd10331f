//! BERT WordPiece tokenization identical to Hugging Face's `BertTokenizerFast`.
//!
//! The `tokenizers` crate's BERT pipeline (BertNormalizer → BertPreTokenizer → WordPiece),
//! assembled from a `vocab.txt` or a model directory, defines the result. Chinese text is
//! almost all characters that pipeline turns into a token of their own whatever surrounds
//! them, so [`WordPieceTokenizer::encode`] takes a fast path for those: one table lookup
//! per character. Everything between two such characters goes through the pipeline.
//!
//! A character takes the fast path ("stands alone") when
//! * the normaliser pads it with spaces (BERT's Chinese characters: nothing next to it can
//!   join its word), or it is left unchanged by the normaliser and the pre-tokenizer
//!   isolates it (punctuation), and
//! * the pipeline, given that character alone, makes exactly one token spanning it.
//!
//! The normaliser works character by character (cleaning, padding, NFD with canonical
//! reordering of combining marks, dropping marks, lowercasing), so such a character is
//! normalised the same in any context and is its own pre-token: its token, and the
//! tokens of the text between two such characters, are the same whether the pipeline
//! sees the whole text or the pieces. The decision for each character is made by the
//! pipeline itself, the first time the character is met, and kept in a table.
//! The pipeline's result for a short stretch between two such characters depends on
//! that stretch only; each thread remembers it for the stretches it has met (numbers,
//! mostly), so a repeated one costs a hash lookup.
//! Tests compare the two paths over every code point, in contexts, and on random text.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{
    ModelWrapper, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString,
    PreTokenizer, Tokenizer,
};

use crate::error::{Error, Result};

/// Largest vocabulary whose ids fit in `u16` shards.
pub const U16_VOCAB_LIMIT: usize = 1 << 16;

/// Token ids and their byte offsets `(start, end)` in the text.
pub type Encoded = (Vec<u32>, Vec<(usize, usize)>);

/// Code points below this have a fast-path table entry (the BMP and the CJK extension
/// planes 2 and 3).
const TABLE_CHARS: usize = 0x30000;
/// Table entry of a character not classified yet.
const UNSEEN: u32 = u32::MAX;
/// Table entry of a character the pipeline must handle.
const FALLBACK: u32 = u32::MAX - 1;
/// Stretches between alone characters up to this many bytes are remembered per thread…
const MEMO_MAX_BYTES: usize = 32;
/// … up to this many of them (then the memo starts over: memory stays bounded).
const MEMO_MAX_RUNS: usize = 1 << 16;

/// Distinguishes tokenizers in the per-thread memo.
static NEXT_UID: AtomicU64 = AtomicU64::new(0);

/// A token of a short stretch: id, start and end byte relative to the stretch.
type RunToken = (u32, u8, u8);

/// The pipeline's tokens for short stretches of text, for the tokenizer `uid`.
#[derive(Default)]
struct RunMemo {
    uid: u64,
    runs: ahash::AHashMap<Box<str>, Box<[RunToken]>>,
}

thread_local! {
    static MEMO: RefCell<RunMemo> = RefCell::default();
}

pub struct WordPieceTokenizer {
    tokenizer: Tokenizer,
    normalizer: BertNormalizer,
    /// Per code point: the token id of a character that stands alone, `FALLBACK`, or
    /// `UNSEEN`. Filled on first use; every thread computes the same value.
    alone: Box<[AtomicU32]>,
    /// Key of this tokenizer's entries in the per-thread memo.
    uid: u64,
    /// Token strings by id.
    tokens: Vec<String>,
    /// `true` for `##` pieces: continuations of the previous token's word.
    is_subword: Vec<bool>,
    /// Ids a random replacement may take: every token that is not `[...]`-bracketed.
    replacement_ids: Vec<u32>,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    pub unk_id: u32,
    pub pad_id: u32,
    pub do_lower_case: bool,
    /// sha256 of the id-ordered token list joined by `\n` (independent of the file format).
    pub vocab_sha256: String,
    /// The file the vocabulary came from.
    pub source: PathBuf,
}

/// Where a vocabulary lives: a `vocab.txt`, or a model directory with `vocab.txt` or
/// `tokenizer.json`.
fn resolve_vocab_file(path: &Path) -> Result<PathBuf> {
    if path.is_dir() {
        for name in ["vocab.txt", "tokenizer.json"] {
            let p = path.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
        return Err(Error::vocab(
            path,
            "directory holds neither vocab.txt nor tokenizer.json",
        ));
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(Error::vocab(path, "no such file or directory"))
}

/// `do_lower_case` recorded next to the vocabulary (tokenizer_config.json), if any.
pub fn recorded_lower_case(path: &Path) -> Option<bool> {
    let dir = if path.is_dir() { path } else { path.parent()? };
    let text = std::fs::read_to_string(dir.join("tokenizer_config.json")).ok()?;
    let value: serde_json::Value = serde_json::from_str(&text).ok()?;
    value.get("do_lower_case")?.as_bool()
}

fn read_vocab_txt(file: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(file).map_err(|e| Error::io(file, e))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| Error::vocab(file, format!("not UTF-8 text ({e})")))?;
    // Same rule as the tokenizers crate's WordPiece::read_file: one token per line,
    // trailing whitespace trimmed.
    Ok(text.lines().map(|l| l.trim_end().to_owned()).collect())
}

fn read_tokenizer_json_vocab(file: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::vocab(file, format!("not valid JSON ({e})")))?;
    let model = &value["model"];
    if model["type"].as_str() != Some("WordPiece") {
        return Err(Error::vocab(
            file,
            "tokenizer.json is not a WordPiece (BERT) tokenizer",
        ));
    }
    let vocab = model["vocab"]
        .as_object()
        .ok_or_else(|| Error::vocab(file, "tokenizer.json has no model.vocab"))?;
    let mut tokens = vec![None; vocab.len()];
    for (tok, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < tokens.len())
            .ok_or_else(|| Error::vocab(file, format!("bad id for token {tok:?}")))?;
        tokens[id as usize] = Some(tok.clone());
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.ok_or_else(|| Error::vocab(file, format!("no token has id {i}"))))
        .collect()
}

impl WordPieceTokenizer {
    /// Load from `vocab.txt` or a model directory. `do_lower_case = None` takes the value
    /// recorded in `tokenizer_config.json`, else `true` (BERT-Chinese and RoBERTa-wwm).
    pub fn from_path(path: &Path, do_lower_case: Option<bool>) -> Result<Self> {
        let file = resolve_vocab_file(path)?;
        let tokens = if file.extension().and_then(|e| e.to_str()) == Some("json") {
            read_tokenizer_json_vocab(&file)?
        } else {
            read_vocab_txt(&file)?
        };
        let lower = do_lower_case
            .or_else(|| recorded_lower_case(path))
            .unwrap_or(true);
        Self::from_tokens(tokens, lower, file)
    }

    pub fn from_tokens(tokens: Vec<String>, do_lower_case: bool, source: PathBuf) -> Result<Self> {
        if tokens.is_empty() {
            return Err(Error::vocab(&source, "vocabulary is empty"));
        }
        let mut map = ahash::AHashMap::with_capacity(tokens.len());
        for (i, t) in tokens.iter().enumerate() {
            map.insert(t.clone(), i as u32);
        }
        let id_of = |name: &str| -> Result<u32> {
            map.get(name)
                .copied()
                .ok_or_else(|| Error::vocab(&source, format!("vocabulary has no {name} token")))
        };
        let (cls_id, sep_id, mask_id, unk_id, pad_id) = (
            id_of("[CLS]")?,
            id_of("[SEP]")?,
            id_of("[MASK]")?,
            id_of("[UNK]")?,
            id_of("[PAD]")?,
        );
        let model = WordPiece::builder()
            .vocab(map)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(100)
            .build()
            .map_err(|e| Error::vocab(&source, e.to_string()))?;
        let mut tokenizer = Tokenizer::new(ModelWrapper::WordPiece(model));
        let normalizer = BertNormalizer::new(true, true, None, do_lower_case);
        tokenizer.with_normalizer(Some(normalizer));
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));

        let is_subword = tokens.iter().map(|t| t.starts_with("##")).collect();
        let replacement_ids = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !is_bracketed_special(t))
            .map(|(i, _)| i as u32)
            .collect::<Vec<_>>();
        if replacement_ids.is_empty() {
            return Err(Error::vocab(&source, "vocabulary has only special tokens"));
        }
        let mut h = crate::io::Hasher::new();
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                h.update(b"\n");
            }
            h.update(t.as_bytes());
        }
        Ok(Self {
            tokenizer,
            normalizer,
            alone: (0..TABLE_CHARS).map(|_| AtomicU32::new(UNSEEN)).collect(),
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            tokens,
            is_subword,
            replacement_ids,
            cls_id,
            sep_id,
            mask_id,
            unk_id,
            pad_id,
            do_lower_case,
            vocab_sha256: h.finish(),
            source,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.tokens.len()
    }

    pub fn token(&self, id: u32) -> &str {
        &self.tokens[id as usize]
    }

    pub fn is_subword(&self, id: u32) -> bool {
        self.is_subword[id as usize]
    }

    /// [`is_subword`](Self::is_subword) of every id, indexed by id.
    pub fn subword_flags(&self) -> &[bool] {
        &self.is_subword
    }

    pub fn replacement_ids(&self) -> &[u32] {
        &self.replacement_ids
    }

    /// Token ids and byte offsets into `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        let mut offsets = Vec::with_capacity(text.len() / 3 + 1);
        self.encode_into(text, &mut ids, &mut offsets)?;
        Ok((ids, offsets))
    }

    /// [`encode`](Self::encode), appending to `ids` and `offsets` (byte offsets into `text`).
    pub fn encode_into(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        offsets: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        // Start of the text not tokenized yet: what lies between two alone characters.
        let mut pending = 0usize;
        // Chinese text: about one token per 3 bytes.
        ids.reserve(text.len() / 3 + 1);
        offsets.reserve(text.len() / 3 + 1);
        let bytes = text.as_bytes();
        let mut i = 0usize;
        while i < bytes.len() {
            let (c, end) = next_char(bytes, i);
            let id = self.alone_id_of(c);
            if id != FALLBACK {
                if pending < i {
                    self.run_into(&text[pending..i], pending, ids, offsets)?;
                }
                ids.push(id);
                offsets.push((i, end));
                pending = end;
            }
            i = end;
        }
        if pending < text.len() {
            self.run_into(&text[pending..], pending, ids, offsets)?;
        }
        Ok(())
    }

    /// The `tokenizers` pipeline alone, without the fast path: the definition `encode`
    /// must match, and the baseline of benchmarks.
    pub fn encode_pipeline(&self, text: &str) -> Result<Encoded> {
        let mut ids = Vec::new();
        let mut offsets = Vec::new();
        self.pipeline_into(text, 0, &mut ids, &mut offsets)?;
        Ok((ids, offsets))
    }

    /// The pipeline's tokens for `run` (text between alone characters, at byte `base`),
    /// from the per-thread memo when `run` is short.
    fn run_into(
        &self,
        run: &str,
        base: usize,
        ids: &mut Vec<u32>,
        offsets: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        if run.len() > MEMO_MAX_BYTES {
            return self.pipeline_into(run, base, ids, offsets);
        }
        MEMO.with(|memo| {
            let mut memo = memo.borrow_mut();
            if memo.uid != self.uid {
                memo.runs.clear();
                memo.uid = self.uid;
            }
            if let Some(tokens) = memo.runs.get(run) {
                for &(id, s, e) in tokens.iter() {
                    ids.push(id);
                    offsets.push((base + s as usize, base + e as usize));
                }
                return Ok(());
            }
            // `ids` and `offsets` may hold different lengths already (callers append).
            let (first_id, first_offset) = (ids.len(), offsets.len());
            self.pipeline_into(run, base, ids, offsets)?;
            let tokens = ids[first_id..]
                .iter()
                .zip(&offsets[first_offset..])
                .map(|(&id, &(s, e))| (id, (s - base) as u8, (e - base) as u8))
                .collect();
            if memo.runs.len() >= MEMO_MAX_RUNS {
                memo.runs.clear();
            }
            memo.runs.insert(run.into(), tokens);
            Ok(())
        })
    }

    fn pipeline_into(
        &self,
        text: &str,
        base: usize,
        ids: &mut Vec<u32>,
        offsets: &mut Vec<(usize, usize)>,
    ) -> Result<()> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Invalid(format!("tokenizer failed: {e}")))?;
        ids.extend_from_slice(enc.get_ids());
        offsets.extend(enc.get_offsets().iter().map(|&(s, e)| (s + base, e + base)));
        Ok(())
    }

    /// The token id of the character with code point `c` if it stands alone, else
    /// `FALLBACK`.
    #[inline]
    fn alone_id_of(&self, c: u32) -> u32 {
        let Some(slot) = self.alone.get(c as usize) else {
            return FALLBACK;
        };
        let id = slot.load(Ordering::Relaxed);
        if id != UNSEEN {
            return id;
        }
        self.classify_slow(c, slot)
    }

    #[cold]
    #[inline(never)]
    fn classify_slow(&self, c: u32, slot: &AtomicU32) -> u32 {
        let id = char::from_u32(c).map_or(FALLBACK, |c| self.classify(c));
        slot.store(id, Ordering::Relaxed);
        id
    }

    /// Asks the pipeline whether `c` stands alone (see the module documentation).
    fn classify(&self, c: char) -> u32 {
        let mut buf = [0u8; 4];
        let s: &str = c.encode_utf8(&mut buf);
        let mut normalized = NormalizedString::from(s);
        if self.normalizer.normalize(&mut normalized).is_err() {
            return FALLBACK;
        }
        let n = normalized.get();
        // Padded by the Chinese-character rule: " c ", whatever NFD/lowercasing made of c.
        let padded = n.len() > 2 && n.starts_with(' ') && n.ends_with(' ');
        let isolated = padded || (n == s && self.pre_tokenizer_isolates(s));
        if !isolated {
            return FALLBACK;
        }
        match self.tokenizer.encode(s, false) {
            Ok(enc) if enc.get_ids().len() == 1 && enc.get_offsets()[0] == (0, s.len()) => {
                let id = enc.get_ids()[0];
                debug_assert!(id < FALLBACK);
                id
            }
            _ => FALLBACK,
        }
    }

    /// Whether BERT's pre-tokenizer makes `s` a word of its own between two letters
    /// (punctuation; whitespace is dropped, anything else joins the letters).
    fn pre_tokenizer_isolates(&self, s: &str) -> bool {
        let mut pre = PreTokenizedString::from(format!("a{s}a"));
        if BertPreTokenizer.pre_tokenize(&mut pre).is_err() {
            return false;
        }
        let splits = pre.get_splits(OffsetReferential::Original, OffsetType::Byte);
        splits.len() == 3 && splits[1].1 == (1, 1 + s.len())
    }
}

/// The code point of the character starting at byte `i` of valid UTF-8 `b` (a character
/// boundary), and the byte after it. The 3-byte form (every CJK character of the BMP)
/// comes first and costs one bounds check.
#[inline(always)]
pub(crate) fn next_char(b: &[u8], i: usize) -> (u32, usize) {
    let b0 = b[i] as u32;
    if b0 < 0x80 {
        return (b0, i + 1);
    }
    let cont = |x: u8| x as u32 & 0x3F;
    match b.get(i..i + 3) {
        Some(&[_, b1, b2]) if (0xE0..0xF0).contains(&b0) => {
            (((b0 & 0x0F) << 12) | (cont(b1) << 6) | cont(b2), i + 3)
        }
        _ if b0 < 0xE0 => (((b0 & 0x1F) << 6) | cont(b[i + 1]), i + 2),
        _ => (
            ((b0 & 0x07) << 18) | (cont(b[i + 1]) << 12) | (cont(b[i + 2]) << 6) | cont(b[i + 3]),
            i + 4,
        ),
    }
}

/// `[CLS]`, `[unused3]`, … : tokens a random replacement never takes.
pub fn is_bracketed_special(token: &str) -> bool {
    token.len() > 2 && token.starts_with('[') && token.ends_with(']')
}

/// BERT's definition of a CJK character (`_is_chinese_char` in the original tokenizer).
#[inline]
pub fn is_cjk(c: char) -> bool {
    is_cjk_code(c as u32)
}

/// [`is_cjk`] of a code point; the unified ideographs, nearly every CJK character of real
/// text, are tested first.
#[inline]
pub fn is_cjk_code(c: u32) -> bool {
    (0x4E00..=0x9FFF).contains(&c) || is_rare_cjk_code(c)
}

#[inline(never)]
fn is_rare_cjk_code(c: u32) -> bool {
    matches!(c,
        0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small vocabulary for unit tests (written here, not third-party).
    pub fn test_tokenizer() -> WordPieceTokenizer {
        let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for s in "，。！？、：的我们是中国人民大学生在北京上天气很好今有一个机器习深度模型训练数据"
            .chars()
        {
            tokens.push(s.to_string());
        }
        for s in [
            "hello", "world", "bert", "##s", "##ing", "learn", "1", "##0", "2020",
        ] {
            tokens.push(s.to_string());
        }
        WordPieceTokenizer::from_tokens(tokens, true, PathBuf::from("test-vocab")).unwrap()
    }

    #[test]
    fn next_char_decodes_every_code_point_as_std_does() {
        // Every scalar value, each between ASCII neighbours and at the very end of a text
        // (the 3-byte form's one bounds check must not read past it).
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            for text in [format!("a{c}b"), format!("a{c}")] {
                let b = text.as_bytes();
                assert_eq!(next_char(b, 1), (c as u32, 1 + c.len_utf8()), "{c:?}");
            }
        }
    }

    #[test]
    fn encodes_cjk_per_character_with_offsets() {
        let t = test_tokenizer();
        let text = "我们是Learning中国";
        let (ids, offsets) = t.encode(text).unwrap();
        let toks: Vec<&str> = ids.iter().map(|&i| t.token(i)).collect();
        assert_eq!(toks, ["我", "们", "是", "learn", "##ing", "中", "国"]);
        assert_eq!(&text[offsets[3].0..offsets[4].1], "Learning");
        assert_eq!(&text[offsets[5].0..offsets[5].1], "中");
    }

    #[test]
    fn unknown_and_specials() {
        let t = test_tokenizer();
        let (ids, _) = t.encode("我😀").unwrap();
        assert_eq!(ids[1], t.unk_id);
        assert!(!t.replacement_ids().contains(&t.cls_id));
        assert!(!t.replacement_ids().contains(&5)); // [unused1]
        assert!(t.is_subword(t.encode("learning").unwrap().0[1]));
    }

    /// A vocabulary over every code point below `TABLE_CHARS`: two characters in three are
    /// tokens, one in five also as a `##` piece, plus a few words; the rest are `[UNK]`.
    fn wide_tokenizer(do_lower_case: bool) -> WordPieceTokenizer {
        let mut tokens: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for cp in 0..TABLE_CHARS as u32 {
            let Some(c) = char::from_u32(cp) else {
                continue;
            };
            if cp % 3 != 0 {
                tokens.push(c.to_string());
            }
            if cp % 5 == 0 {
                tokens.push(format!("##{c}"));
            }
        }
        for w in [
            "hello", "##ing", "ab", "1998", "##99", "Ab", "é", "##é", "cafe", "café",
        ] {
            tokens.push(w.to_string());
        }
        WordPieceTokenizer::from_tokens(tokens, do_lower_case, PathBuf::from("wide-vocab")).unwrap()
    }

    /// Compares the fast path with the pipeline on `text`; a readable failure names the
    /// first differing token.
    fn assert_same(t: &WordPieceTokenizer, text: &str) {
        let fast = t.encode(text).unwrap();
        let slow = t.encode_pipeline(text).unwrap();
        if fast != slow {
            let k = (0..fast.0.len().min(slow.0.len()))
                .find(|&k| fast.0[k] != slow.0[k] || fast.1[k] != slow.1[k])
                .unwrap_or(fast.0.len().min(slow.0.len()));
            let show = |e: &Encoded| -> Vec<String> {
                e.0.iter()
                    .zip(&e.1)
                    .skip(k.saturating_sub(2))
                    .take(5)
                    .map(|(&i, &(s, e))| format!("{}@{s}..{e}={:?}", t.token(i), &text[s..e]))
                    .collect()
            };
            panic!(
                "lower={} fast path differs from the pipeline at token {k}:\n  fast {:?}\n  pipe {:?}",
                t.do_lower_case,
                show(&fast),
                show(&slow)
            );
        }
    }

    /// Neighbours each code point is tested between: alone characters (CJK, punctuation,
    /// a compatibility ideograph that NFD changes), letters, digits, combining marks of
    /// different classes, whitespace, removed characters.
    const CONTEXTS: [(&str, &str); 9] = [
        ("", ""),
        ("中", "中"),
        ("a", "a"),
        ("", "\u{301}"),
        ("\u{301}", "\u{327}"),
        ("，", "1"),
        ("é", "\u{F900}"),
        ("\u{200B}", " "),
        ("E\u{334}", "\u{5B0}b"),
    ];

    /// Every code point in every context, many per text so the pipeline runs on long
    /// strings (contexts are separated by a character that stands alone or by a space).
    fn check_code_points(t: &WordPieceTokenizer, cps: impl Iterator<Item = u32>, per_text: usize) {
        let chars: Vec<char> = cps.filter_map(char::from_u32).collect();
        for block in chars.chunks(per_text) {
            for (i, &(before, after)) in CONTEXTS.iter().enumerate() {
                let sep = if i % 2 == 0 { " " } else { "。" };
                let mut text = String::new();
                for &c in block {
                    text.push_str(before);
                    text.push(c);
                    text.push_str(after);
                    text.push_str(sep);
                }
                assert_same(t, &text);
            }
            // Each character alone, and next to each other.
            for &c in block.iter().take(8) {
                assert_same(t, c.encode_utf8(&mut [0u8; 4]));
            }
            assert_same(t, &block.iter().collect::<String>());
        }
    }

    #[test]
    fn fast_path_equals_pipeline_on_every_table_code_point() {
        for lower in [true, false] {
            let t = wide_tokenizer(lower);
            check_code_points(&t, 0..TABLE_CHARS as u32, 64);
            let alone = t
                .alone
                .iter()
                .filter(|a| a.load(Ordering::Relaxed) < FALLBACK)
                .count();
            // BERT's Chinese characters (assigned ones) and punctuation stand alone.
            assert!(alone > 80_000, "only {alone} characters stand alone");
            for c in ('\u{4E00}'..='\u{9FA5}').chain("，。！？、“”《》!?,.%".chars()) {
                assert!(
                    t.alone_id_of(c as u32) < FALLBACK,
                    "{c:?} does not stand alone"
                );
            }
        }
    }

    #[test]
    fn fast_path_equals_pipeline_above_the_table() {
        // Above the table everything takes the pipeline; check the joins around alone
        // characters on every code point once (context 1: between CJK characters).
        let t = wide_tokenizer(true);
        let chars: Vec<char> = (TABLE_CHARS as u32..=0x10FFFF)
            .filter_map(char::from_u32)
            .collect();
        for block in chars.chunks(512) {
            let mut text = String::new();
            for &c in block {
                text.push('中');
                text.push(c);
                text.push('a');
            }
            assert_same(&t, &text);
        }
    }

    #[test]
    fn fast_path_equals_pipeline_on_random_unicode() {
        use rand::{Rng, SeedableRng};
        // Seeded and bounded: ~20k strings of up to 40 characters from pools that mix
        // alone characters with everything that can interact with them.
        let pools: [&[(u32, u32)]; 6] = [
            &[
                (0x4E00, 0x9FFF),
                (0x3400, 0x4DBF),
                (0xF900, 0xFAFF),
                (0x20000, 0x2FA1F),
            ],
            &[
                (0x21, 0x7E),
                (0x3000, 0x303F),
                (0xFF00, 0xFFEF),
                (0x2000, 0x206F),
            ],
            &[
                (0x300, 0x36F),
                (0x591, 0x5C7),
                (0x1AB0, 0x1AFF),
                (0x20D0, 0x20FF),
            ],
            &[
                (0x0, 0x20),
                (0x7F, 0xA0),
                (0x2028, 0x202F),
                (0xFFF0, 0xFFFF),
            ],
            &[
                (0xA0, 0x24F),
                (0x370, 0x52F),
                (0x1E00, 0x1FFF),
                (0xAC00, 0xD7A3),
            ],
            &[(0x0, 0xD7FF), (0xE000, 0x10FFFF)],
        ];
        for lower in [true, false] {
            let t = wide_tokenizer(lower);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
            for _ in 0..10_000 {
                let n = rng.random_range(0..40);
                let text: String = (0..n)
                    .filter_map(|_| {
                        let pool = pools[rng.random_range(0..pools.len())];
                        let (lo, hi) = pool[rng.random_range(0..pool.len())];
                        char::from_u32(rng.random_range(lo..=hi))
                    })
                    .collect();
                assert_same(&t, &text);
            }
        }
    }

    #[test]
    fn memo_is_per_tokenizer() {
        // The same stretches, alternately through a cased and an uncased tokenizer on one
        // thread: each must get its own pipeline's tokens.
        let (lower, cased) = (wide_tokenizer(true), wide_tokenizer(false));
        for _ in 0..3 {
            for text in ["中Ab中", "中CAFÉ。", "，Ab1998，", "中ab中"] {
                assert_same(&lower, text);
                assert_same(&cased, text);
            }
        }
        assert_ne!(lower.encode("中Ab").unwrap(), cased.encode("中Ab").unwrap());
    }

    #[test]
    fn encode_into_appends_to_buffers_of_any_length() {
        // As prep calls it: ids of the whole document so far, offsets of this chunk only.
        let t = test_tokenizer();
        let chunks = [
            "中国1998年，hello世界",
            "2020年1998，中1998国learning",
            "1998",
        ];
        let mut ids = vec![7u32; 1000];
        let mut want = ids.clone();
        for chunk in chunks {
            let mut offsets = Vec::new();
            t.encode_into(chunk, &mut ids, &mut offsets).unwrap();
            let (pids, poffsets) = t.encode_pipeline(chunk).unwrap();
            want.extend(pids);
            assert_eq!(offsets, poffsets, "{chunk}");
            assert_eq!(ids, want, "{chunk}");
        }
    }

    #[test]
    fn long_words_and_unknown_alone_characters() {
        let t = test_tokenizer();
        // Over WordPiece's 100-character limit, between alone characters.
        for text in [
            format!("中{}国", "a".repeat(101)),
            format!("中{}", "a".repeat(100)),
            "中".repeat(150),
            "龘中😀，Hello，".to_string(),
        ] {
            assert_same(&t, &text);
        }
        // A Chinese character outside the vocabulary is [UNK] on the fast path too.
        let (ids, offsets) = t.encode("龘中").unwrap();
        assert_eq!(ids, [t.unk_id, t.encode("中").unwrap().0[0]]);
        assert_eq!(offsets, [(0, 3), (3, 6)]);
    }

    #[test]
    fn missing_special_token_is_an_error() {
        let e = WordPieceTokenizer::from_tokens(vec!["a".into()], true, "v.txt".into());
        assert!(e.err().unwrap().to_string().contains("[CLS]"));
    }
}
