//! Word boundaries for whole-word masking: jieba-rs segmentation matched to WordPiece
//! tokens by byte offsets.

use std::io::BufReader;
use std::path::Path;

use jieba_rs::Jieba;

use crate::error::{Error, Result};
use crate::tokenize::{is_cjk_code, next_char, WordPieceTokenizer};

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
    debug_assert_eq!(ids.len(), offsets.len());
    let first = out.len();
    let subword = tok.subword_flags();
    out.extend(ids.iter().map(|&id| subword[id as usize]));
    let marks = &mut out[first..];
    let bytes = text.as_bytes();
    // Tokens are sorted by offset, words too: sweep both once.
    let mut t = 0usize;
    for &(ws, we) in words {
        // Two CJK characters take at least 6 bytes: shorter words never group (most
        // words are a single character).
        if we - ws < 6 {
            continue;
        }
        while t < offsets.len() && offsets[t].0 < ws {
            t += 1;
        }
        // The word's tokens are exactly its characters, in order, each CJK: token k
        // spans the word's k-th character.
        let (mut pos, mut k) = (ws, t);
        while pos < we {
            let (c, end) = next_char(bytes, pos);
            if !is_cjk_code(c) || offsets.get(k) != Some(&(pos, end)) {
                break;
            }
            pos = end;
            k += 1;
        }
        if pos == we {
            marks[t + 1..k].fill(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::is_cjk;
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

    /// The rule of [`continuation_marks`] written out character by character.
    fn reference_marks(
        tok: &WordPieceTokenizer,
        text: &str,
        ids: &[u32],
        offsets: &[(usize, usize)],
        words: &[(usize, usize)],
    ) -> Vec<bool> {
        let mut marks: Vec<bool> = ids.iter().map(|&id| tok.is_subword(id)).collect();
        for &(ws, we) in words {
            let chars: Vec<(usize, char)> = text[ws..we].char_indices().collect();
            if chars.len() < 2 || !chars.iter().all(|&(_, c)| is_cjk(c)) {
                continue;
            }
            let Some(t) = offsets.iter().position(|&(s, _)| s == ws) else {
                continue;
            };
            let aligned = chars
                .iter()
                .enumerate()
                .all(|(i, &(o, c))| offsets.get(t + i) == Some(&(ws + o, ws + o + c.len_utf8())));
            if aligned {
                for m in &mut marks[t + 1..t + chars.len()] {
                    *m = true;
                }
            }
        }
        marks
    }

    #[test]
    fn marks_follow_the_rule_on_random_text() {
        use rand::{Rng, SeedableRng};
        let tok = test_tokenizer();
        let seg = Segmenter::jieba(true, None).unwrap();
        // Known and unknown CJK (BMP and plane 2), Latin, digits, punctuation, spaces.
        let alphabet: Vec<char> =
            "我们是中国人民大学生在北京天气很好机器学习深度模型数据龘𠀀𪚥，。！ a bLearning1 0"
                .chars()
                .collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..2000 {
            let n = rng.random_range(0..40);
            let text: String = (0..n)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let (ids, offs) = tok.encode(&text).unwrap();
            // jieba's words, and arbitrary cuts (words jieba would not make)
            let mut cuts = vec![seg.words(&text)];
            let bounds: Vec<usize> = text
                .char_indices()
                .map(|(i, _)| i)
                .chain([text.len()])
                .collect();
            let mut arbitrary = Vec::new();
            let mut i = 0;
            while i + 1 < bounds.len() {
                let j = (i + rng.random_range(1..5)).min(bounds.len() - 1);
                arbitrary.push((bounds[i], bounds[j]));
                i = j;
            }
            cuts.push(arbitrary);
            for words in cuts {
                let got = continuation_marks(&tok, &text, &ids, &offs, &words);
                let want = reference_marks(&tok, &text, &ids, &offs, &words);
                assert_eq!(got, want, "{text:?} {words:?}");
            }
        }
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
