//! BERT WordPiece tokenization identical to Hugging Face's `BertTokenizerFast`.
//!
//! The `tokenizers` crate does the work; this module only assembles the BERT pipeline
//! (BertNormalizer → BertPreTokenizer → WordPiece) from a `vocab.txt` or a model
//! directory, and keeps the per-id tables the masking needs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::error::{Error, Result};

/// Largest vocabulary whose ids fit in `u16` shards.
pub const U16_VOCAB_LIMIT: usize = 1 << 16;

/// Token ids and their byte offsets `(start, end)` in the text.
pub type Encoded = (Vec<u32>, Vec<(usize, usize)>);

pub struct WordPieceTokenizer {
    tokenizer: Tokenizer,
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
        tokenizer.with_normalizer(Some(BertNormalizer::new(true, true, None, do_lower_case)));
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
        let mut h = Sha256::new();
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                h.update(b"\n");
            }
            h.update(t.as_bytes());
        }
        Ok(Self {
            tokenizer,
            tokens,
            is_subword,
            replacement_ids,
            cls_id,
            sep_id,
            mask_id,
            unk_id,
            pad_id,
            do_lower_case,
            vocab_sha256: hex::encode(h.finalize()),
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

    pub fn replacement_ids(&self) -> &[u32] {
        &self.replacement_ids
    }

    /// Token ids and byte offsets into `text`, without special tokens.
    pub fn encode(&self, text: &str) -> Result<Encoded> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Invalid(format!("tokenizer failed: {e}")))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }
}

/// `[CLS]`, `[unused3]`, … : tokens a random replacement never takes.
pub fn is_bracketed_special(token: &str) -> bool {
    token.len() > 2 && token.starts_with('[') && token.ends_with(']')
}

/// BERT's definition of a CJK character (`_is_chinese_char` in the original tokenizer).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
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

    #[test]
    fn missing_special_token_is_an_error() {
        let e = WordPieceTokenizer::from_tokens(vec!["a".into()], true, "v.txt".into());
        assert!(e.err().unwrap().to_string().contains("[CLS]"));
    }
}
