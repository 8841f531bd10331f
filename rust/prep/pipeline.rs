//! The per-document work of prep, run by the worker pool: tokenize and segment a
//! document, cut its tokens into overlapping windows and mask each window `dupe_factor`
//! times with whole-word masking. Read-only, shared by the workers.

use std::cell::RefCell;

use rand::Rng;

use super::config::PrepConfig;
use crate::corpus::{self, Document};
use crate::error::Result;
use crate::examples::Example;
use crate::masking::{mask_groups, word_groups, MaskBuffers, MaskingConfig, StreamKey};
use crate::segment::{continuation_marks_into, Segmenter};
use crate::tokenize::WordPieceTokenizer;

/// Characters tokenized per call: keeps tokenizer memory small on huge documents.
const CHUNK_CHARS: usize = 8192;

/// The read-only parts of a run, shared by the workers.
pub struct Pipeline {
    pub tok: WordPieceTokenizer,
    pub seg: Segmenter,
    pub masking: MaskingConfig,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub dupe_factor: usize,
    pub short_seq_prob: f64,
    pub seed: u64,
}

/// One example of a document: a window of its tokens and where its masking lies in the
/// document's [`MaskBuffers`]. The writer builds the sequence (no copy per example here).
pub struct ExampleSpec {
    pub window: u32,
    pub dupe: u32,
    /// Token range of the window in the document.
    pub start: usize,
    pub end: usize,
    /// Range of this example in the masking buffers.
    pub masks: std::ops::Range<usize>,
}

/// A document's tokens, its examples and per-document counts, summed by the writer.
#[derive(Default)]
pub struct DocOutput {
    pub ids: Vec<u32>,
    pub examples: Vec<ExampleSpec>,
    pub masks: MaskBuffers,
    pub chars: u64,
    pub bytes: u64,
    pub tokens: u64,
    pub unk: u64,
    pub windows: u64,
    /// Seconds this document took (the report's `work_s`).
    pub work_s: f64,
}

impl DocOutput {
    /// Example `k` written into `ex`, reusing its buffers.
    pub fn example_into(&self, k: usize, cls: u32, sep: u32, doc: &Document, ex: &mut Example) {
        let spec = &self.examples[k];
        let window = &self.ids[spec.start..spec.end];
        ex.input_ids.clear();
        ex.input_ids.push(cls);
        ex.input_ids.extend_from_slice(window);
        ex.input_ids.push(sep);
        let positions = &self.masks.positions[spec.masks.clone()];
        for (&p, &v) in positions.iter().zip(&self.masks.values[spec.masks.clone()]) {
            ex.input_ids[p as usize] = v;
        }
        ex.positions.clear();
        ex.positions.extend_from_slice(positions);
        ex.labels.clear();
        ex.labels
            .extend(positions.iter().map(|&p| window[p as usize - 1]));
        ex.file = doc.file;
        ex.piece = doc.piece;
        ex.line = doc.line;
        ex.window = spec.window;
        ex.dupe = spec.dupe;
    }
}

/// Per-thread buffers reused from document to document.
#[derive(Default)]
struct Scratch {
    offsets: Vec<(usize, usize)>,
    words: Vec<(usize, usize)>,
    marks: Vec<bool>,
    /// A window's word groups in order, and a copy to shuffle.
    groups: Vec<(u32, u32)>,
    shuffled: Vec<(u32, u32)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

impl Pipeline {
    /// The pipeline of a (validated) configuration.
    pub fn new(cfg: &PrepConfig, tok: WordPieceTokenizer, seg: Segmenter) -> Self {
        let s = &cfg.settings;
        Self {
            masking: MaskingConfig {
                max_predictions: s.max_predictions_per_seq,
                masked_lm_prob: s.masked_lm_prob,
            },
            max_seq_length: s.max_seq_length,
            doc_stride: s.doc_stride,
            dupe_factor: s.dupe_factor,
            short_seq_prob: s.short_seq_prob,
            seed: s.seed,
            tok,
            seg,
        }
    }

    /// Token ids and continuation marks of a whole text.
    pub fn tokens_and_marks(&self, text: &str) -> Result<(Vec<u32>, Vec<bool>)> {
        let mut ids = Vec::new();
        let mut marks = Vec::new();
        let mut scratch = Scratch::default();
        self.tokens_and_marks_into(text, &mut ids, &mut marks, &mut scratch)?;
        Ok((ids, marks))
    }

    fn tokens_and_marks_into(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        marks: &mut Vec<bool>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        for chunk in corpus::safe_chunks(text, CHUNK_CHARS) {
            let first = ids.len();
            scratch.offsets.clear();
            self.tok.encode_into(chunk, ids, &mut scratch.offsets)?;
            scratch.words.clear();
            self.seg.words_into(chunk, &mut scratch.words);
            continuation_marks_into(
                &self.tok,
                chunk,
                &ids[first..],
                &scratch.offsets,
                &scratch.words,
                marks,
            );
        }
        Ok(())
    }

    /// Window start offsets over `n` tokens: 0, stride, … until one reaches the end.
    pub fn window_starts(&self, n: usize) -> Vec<usize> {
        let w = self.max_seq_length - 2;
        let mut starts = vec![0];
        while starts.last().unwrap() + w < n {
            starts.push(starts.last().unwrap() + self.doc_stride);
        }
        starts
    }

    pub fn process(&self, doc: &Document) -> Result<DocOutput> {
        self.process_reusing(doc, DocOutput::default())
    }

    /// [`process`](Self::process) into the buffers of an earlier document's output (the
    /// writer hands them back): no allocation or fresh memory per document once warm.
    pub fn process_reusing(&self, doc: &Document, out: DocOutput) -> Result<DocOutput> {
        let t = std::time::Instant::now();
        let mut out = SCRATCH.with(|s| self.process_with(doc, out, &mut s.borrow_mut()))?;
        out.work_s = t.elapsed().as_secs_f64();
        Ok(out)
    }

    fn process_with(
        &self,
        doc: &Document,
        mut out: DocOutput,
        scratch: &mut Scratch,
    ) -> Result<DocOutput> {
        out.ids.clear();
        out.ids.reserve(doc.text.len() / 3 + 16);
        let mut marks = std::mem::take(&mut scratch.marks);
        marks.clear();
        let r = self.tokens_and_marks_into(&doc.text, &mut out.ids, &mut marks, scratch);
        let (groups, shuffled) = (&mut scratch.groups, &mut scratch.shuffled);
        let r = r.map(|()| {
            self.windows(doc, &mut out, &marks, groups, shuffled);
            out
        });
        scratch.marks = marks;
        r
    }

    /// Windows of a tokenized document (`out.ids`), each masked `dupe_factor` times, into
    /// `out` (its other buffers cleared first).
    fn windows(
        &self,
        doc: &Document,
        out: &mut DocOutput,
        marks: &[bool],
        groups: &mut Vec<(u32, u32)>,
        shuffled: &mut Vec<(u32, u32)>,
    ) {
        let ids = &out.ids;
        out.examples.clear();
        out.masks.clear();
        out.chars = doc.text.chars().count() as u64;
        out.bytes = doc.text.len() as u64;
        out.tokens = ids.len() as u64;
        out.unk = ids.iter().filter(|&&i| i == self.tok.unk_id).count() as u64;
        out.windows = 0;
        if ids.is_empty() {
            return;
        }
        let w = self.max_seq_length - 2;
        let key = |window: u32, dupe: u32| StreamKey {
            seed: self.seed,
            file: doc.file,
            piece: doc.piece,
            line: doc.line,
            window,
            dupe,
        };
        let starts = self.window_starts(ids.len());
        out.examples.reserve(starts.len() * self.dupe_factor);
        for (wi, &s) in starts.iter().enumerate() {
            let mut end = (s + w).min(ids.len());
            if self.short_seq_prob > 0.0 {
                let mut rng = key(wi as u32, u32::MAX).rng();
                if rng.random::<f64>() < self.short_seq_prob {
                    let target = rng.random_range(2..=w.max(2));
                    end = end.min(s + target);
                }
            }
            out.windows += 1;
            word_groups(&marks[s..end], groups);
            for d in 0..self.dupe_factor {
                let first = out.masks.positions.len();
                shuffled.clear();
                shuffled.extend_from_slice(groups);
                mask_groups(
                    &ids[s..end],
                    shuffled,
                    self.tok.mask_id,
                    self.tok.replacement_ids(),
                    &self.masking,
                    &mut key(wi as u32, d as u32).rng(),
                    &mut out.masks,
                );
                out.examples.push(ExampleSpec {
                    window: wi as u32,
                    dupe: d as u32,
                    start: s,
                    end,
                    masks: first..out.masks.positions.len(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tests::test_tokenizer;

    fn pipeline(max_seq_length: usize, doc_stride: usize, seg: Segmenter) -> Pipeline {
        let mut cfg = PrepConfig::new(vec!["x".into()], "o".into(), "v".into());
        cfg.settings.max_seq_length = max_seq_length;
        cfg.settings.doc_stride = doc_stride;
        cfg.settings.dupe_factor = 3;
        cfg.settings.max_predictions_per_seq = 4;
        cfg.settings.masked_lm_prob = 0.3;
        cfg.validate().unwrap();
        Pipeline::new(&cfg, test_tokenizer(), seg)
    }

    fn doc(text: &str) -> Document {
        Document {
            file: 2,
            line: 7,
            piece: 0,
            text: text.into(),
            bad_utf8_lines: 0,
        }
    }

    #[test]
    fn window_starts_cover_the_document_with_the_stride() {
        let p = pipeline(10, 3, Segmenter::None); // windows of 8 tokens
        let w = 8;
        assert_eq!(p.window_starts(0), [0]);
        assert_eq!(p.window_starts(8), [0]);
        assert_eq!(p.window_starts(9), [0, 3]);
        for n in 1..60 {
            let s = p.window_starts(n);
            assert_eq!(s[0], 0);
            assert!(s.windows(2).all(|x| x[1] - x[0] == 3), "{n}: {s:?}");
            // the last window reaches the end, the one before does not
            assert!(s.last().unwrap() + w >= n, "{n}: {s:?}");
            if s.len() > 1 {
                assert!(s[s.len() - 2] + w < n, "{n}: {s:?}");
            }
        }
    }

    #[test]
    fn a_document_becomes_windows_of_whole_word_masked_examples() {
        let text = "我们是中国人民大学生，今天天气很好。我们在北京学习深度学习模型。";
        let p = pipeline(12, 5, Segmenter::jieba(true, None).unwrap());
        let (ids, marks) = p.tokens_and_marks(text).unwrap();
        let d = doc(text);
        let out = p.process(&d).unwrap();
        assert_eq!(out.ids, ids);
        assert_eq!(out.tokens, ids.len() as u64);
        assert_eq!(out.chars, text.chars().count() as u64);
        let starts = p.window_starts(ids.len());
        assert_eq!(out.windows, starts.len() as u64);
        assert_eq!(out.examples.len(), starts.len() * 3);
        assert_eq!(out.examples.last().unwrap().end, ids.len());
        let mut ex = Example::default();
        let mut total_masked = 0;
        for (k, spec) in out.examples.iter().enumerate() {
            assert_eq!(spec.start, starts[spec.window as usize]);
            assert_eq!(spec.end, (spec.start + 10).min(ids.len()));
            out.example_into(k, p.tok.cls_id, p.tok.sep_id, &d, &mut ex);
            let window = &ids[spec.start..spec.end];
            assert_eq!(ex.input_ids.len(), window.len() + 2);
            assert_eq!(ex.input_ids[0], p.tok.cls_id);
            assert_eq!(*ex.input_ids.last().unwrap(), p.tok.sep_id);
            assert_eq!((ex.file, ex.line, ex.piece), (2, 7, 0));
            assert_eq!((ex.window, ex.dupe), (spec.window, spec.dupe));
            assert!(ex.positions.len() <= 4);
            total_masked += ex.positions.len();
            assert_eq!(ex.positions.len(), ex.labels.len());
            let masked: std::collections::BTreeSet<usize> =
                ex.positions.iter().map(|&q| q as usize).collect();
            assert_eq!(masked.len(), ex.positions.len(), "positions repeat");
            for (&q, &label) in ex.positions.iter().zip(&ex.labels) {
                let q = q as usize;
                assert!((1..=window.len()).contains(&q));
                assert_eq!(label, window[q - 1], "label is the original token");
            }
            // whole words: a masked token's word is masked entirely within the window
            let m = &marks[spec.start..spec.end];
            for &q in &masked {
                let t = q - 1;
                if t + 1 < m.len() && m[t + 1] {
                    assert!(masked.contains(&(q + 1)), "word cut after {q}");
                }
                if m[t] && t > 0 {
                    assert!(masked.contains(&(q - 1)), "word cut before {q}");
                }
            }
            // tokens that were not masked are the window's
            for (c, &id) in ex.input_ids[1..ex.input_ids.len() - 1].iter().enumerate() {
                if !masked.contains(&(c + 1)) {
                    assert_eq!(id, window[c]);
                }
            }
        }
        assert!(total_masked > 0);
    }

    #[test]
    fn an_empty_document_has_no_examples() {
        let p = pipeline(10, 3, Segmenter::None);
        let out = p.process(&doc("")).unwrap();
        assert!(out.examples.is_empty());
        assert_eq!(out.windows, 0);
    }
}
