//! Word boundaries for whole-word masking: jieba-rs segmentation matched to WordPiece
//! tokens by byte offsets.

use std::io::BufReader;
use std::path::Path;

use jieba_rs::Jieba;

use crate::error::{Error, Result};
use crate::tokenize::{is_cjk, WordPieceTokenizer};

pub enum Segmenter {
    /// jieba-rs with its default dictionary (plus an optional user dictionary).
    Jieba { jieba: Box<Jieba>, hmm: bool },
    /// Character-level masking: only WordPiece `##` pieces group with their head.
    None,
}

impl Segmenter {
    pub fn jieba(hmm: bool, user_dict: Option<&Path>) -> Result<Self> {
        let mut jieba = Jieba::new();
        if let Some(path) = user_dict {
            let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
            jieba
                .load_dict(&mut BufReader::new(f))
                .map_err(|e| Error::data(path.display().to_string(), e.to_string()))?;
        }
        Ok(Segmenter::Jieba {
            jieba: Box::new(jieba),
            hmm,
        })
    }

    /// Byte ranges of the words of `text` (covering it), or nothing for `None`.
    pub fn words(&self, text: &str) -> Vec<(usize, usize)> {
        let mut words = Vec::new();
        self.words_into(text, &mut words);
        words
    }

    /// [`words`](Self::words), appended to `words`.
    pub fn words_into(&self, text: &str, words: &mut Vec<(usize, usize)>) {
        if let Segmenter::Jieba { jieba, hmm } = self {
            words.extend(
                jieba
                    .cut(text, *hmm)
                    .iter()
                    .map(|t| (t.byte_start, t.byte_end)),
            );
        }
    }

    /// Words as strings (for tests and agreement checks).
    pub fn cut<'a>(&self, text: &'a str) -> Vec<&'a str> {
        self.words(text)
            .into_iter()
            .map(|(s, e)| &text[s..e])
            .collect()
    }
}

/// Continuation marks: `marks[i]` is true when token `i` belongs to the same whole word as
/// token `i - 1`. A jieba word of ≥ 2 characters, all CJK, groups its tokens when they are
/// exactly one token per character; `##` pieces always continue their word.
pub fn continuation_marks(
    tok: &WordPieceTokenizer,
    text: &str,
    ids: &[u32],
    offsets: &[(usize, usize)],
    words: &[(usize, usize)],
) -> Vec<bool> {
    let mut marks = Vec::with_capacity(ids.len());
    continuation_marks_into(tok, text, ids, offsets, words, &mut marks);
    marks
}

/// [`continuation_marks`], appended to `out`.
pub fn continuation_marks_into(
    tok: &WordPieceTokenizer,
    text: &str,
    ids: &[u32],
    offsets: &[(usize, usize)],
    words: &[(usize, usize)],
    out: &mut Vec<bool>,
) {
    let first = out.len();
    out.extend(ids.iter().map(|&id| tok.is_subword(id)));
    let marks = &mut out[first..];
    // Tokens are sorted by offset, words too: sweep both once.
    let mut t = 0usize;
    for &(ws, we) in words {
        while t < offsets.len() && offsets[t].0 < ws {
            t += 1;
        }
        // Two CJK characters take at least 6 bytes: shorter words never group (most
        // words are a single character).
        if we - ws < 6 {
            continue;
        }
        // All characters CJK, and the word's tokens exactly its characters, in order.
        let mut pos = ws;
        let mut k = t;
        let mut ok = true;
        for c in text[ws..we].chars() {
            let end = pos + c.len_utf8();
            if !is_cjk(c) || k >= offsets.len() || offsets[k] != (pos, end) {
                ok = false;
                break;
            }
            pos = end;
            k += 1;
        }
        if ok {
            for m in &mut marks[t + 1..k] {
                *m = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::test_tokenizer;

    #[test]
    fn groups_multi_character_words() {
        let tok = test_tokenizer();
        let seg = Segmenter::jieba(true, None).unwrap();
        let text = "我们是中国人民大学的学生";
        let (ids, offs) = tok.encode(text).unwrap();
        let words = seg.words(text);
        let marks = continuation_marks(&tok, text, &ids, &offs, &words);
        // Rebuild groups from marks and compare with jieba's words.
        let mut groups: Vec<String> = Vec::new();
        for (i, &(s, e)) in offs.iter().enumerate() {
            if marks[i] {
                groups.last_mut().unwrap().push_str(&text[s..e]);
            } else {
                groups.push(text[s..e].to_string());
            }
        }
        let cut: Vec<&str> = seg.cut(text);
        assert_eq!(groups, cut);
        assert!(!marks[0]);
    }

    #[test]
    fn none_segmenter_groups_only_wordpieces() {
        let tok = test_tokenizer();
        let text = "中国learning";
        let (ids, offs) = tok.encode(text).unwrap();
        let marks = continuation_marks(&tok, text, &ids, &offs, &Segmenter::None.words(text));
        assert_eq!(marks, [false, false, false, true]);
    }

    #[test]
    fn word_with_unknown_character_falls_back() {
        let tok = test_tokenizer();
        // 「机器」 tokenizes per character; a word whose tokens don't line up is left alone.
        let text = "机器";
        let (ids, offs) = tok.encode(text).unwrap();
        let marks = continuation_marks(&tok, text, &ids, &offs, &[(0, text.len())]);
        assert_eq!(marks, [false, true]);
        let marks = continuation_marks(&tok, text, &ids, &offs[..1], &[(0, text.len())]);
        assert_eq!(marks, [false, false]);
    }
}
