//! `distill-prep`: corpus → whole-word-masked example shards, in parallel, streaming,
//! deterministic for a seed whatever the number of workers, resumable after a crash.
//!
//! Threads: a reader (decompress, split documents, parse JSON) feeds batches to the
//! rayon pool (segment, tokenize, window, mask), whose ordered results go to a writer
//! (shards, progress records, manifest). Bounded channels keep memory flat.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::corpus::{self, DocSep, Document, Item, ReaderConfig, SkipReason};
use crate::error::{Error, IoContext, Result};
use crate::masking::{mask_groups, word_groups, MaskBuffers, MaskingConfig, StreamKey};
use crate::segment::{continuation_marks_into, Segmenter};
use crate::shard::{self, Example, ShardInfo, ShardWriter};
use crate::tokenize::{WordPieceTokenizer, U16_VOCAB_LIMIT};

pub const MANIFEST_FORMAT: &str = "wwm-distill/examples";
pub const MANIFEST_VERSION: u32 = 1;
const PROGRESS_FILE: &str = "progress.json";
const MANIFEST_FILE: &str = "manifest.json";
/// Characters tokenized per call: keeps tokenizer memory small on huge documents.
const CHUNK_CHARS: usize = 8192;
/// A batch handed to the worker pool ends after this many bytes of text or items.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ITEMS: usize = 4096;
/// Malformed-record locations kept in the report.
const MAX_LISTED: usize = 20;

/// Everything `distill-prep` takes, as the Python CLI passes it (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    pub inputs: Vec<String>,
    pub out: PathBuf,
    pub vocab: PathBuf,
    #[serde(default)]
    pub do_lower_case: Option<bool>,
    #[serde(default = "default_segmenter")]
    pub segmenter: String,
    #[serde(default = "yes")]
    pub hmm: bool,
    #[serde(default)]
    pub user_dict: Option<PathBuf>,
    #[serde(default = "default_doc_sep")]
    pub doc_sep: DocSep,
    #[serde(default)]
    pub text_fields: Vec<String>,
    #[serde(default = "d512")]
    pub max_seq_length: usize,
    #[serde(default = "d256")]
    pub doc_stride: usize,
    #[serde(default = "d5")]
    pub dupe_factor: usize,
    #[serde(default = "d20")]
    pub max_predictions_per_seq: usize,
    #[serde(default = "d015")]
    pub masked_lm_prob: f64,
    #[serde(default)]
    pub short_seq_prob: f64,
    #[serde(default = "d20")]
    pub min_chars: usize,
    #[serde(default = "d1m")]
    pub max_doc_chars: usize,
    #[serde(default = "dseed")]
    pub seed: u64,
    #[serde(default = "dshard")]
    pub shard_size: usize,
    #[serde(default = "d1")]
    pub num_shards: usize,
    #[serde(default)]
    pub shard_index: usize,
    #[serde(default)]
    pub strict: bool,
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub overwrite: bool,
}

fn default_segmenter() -> String {
    "jieba".into()
}
fn yes() -> bool {
    true
}
fn default_doc_sep() -> DocSep {
    DocSep::Line
}
fn d512() -> usize {
    512
}
fn d256() -> usize {
    256
}
fn d5() -> usize {
    5
}
fn d20() -> usize {
    20
}
fn d1() -> usize {
    1
}
fn d015() -> f64 {
    0.15
}
fn d1m() -> usize {
    1_000_000
}
fn dseed() -> u64 {
    12345
}
fn dshard() -> usize {
    65536
}

/// The parameters that define the output: a rerun must match them to resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrepParams {
    pub vocab_sha256: String,
    pub do_lower_case: bool,
    pub segmenter: String,
    pub hmm: bool,
    pub user_dict_sha256: Option<String>,
    pub doc_sep: DocSep,
    pub text_fields: Vec<String>,
    pub max_seq_length: usize,
    pub doc_stride: usize,
    pub dupe_factor: usize,
    pub max_predictions_per_seq: usize,
    pub masked_lm_prob: f64,
    pub short_seq_prob: f64,
    pub min_chars: usize,
    pub max_doc_chars: usize,
    pub seed: u64,
    pub shard_size: usize,
    pub num_shards: usize,
    pub shard_index: usize,
    pub strict: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputFile {
    /// Index in the sorted list of all inputs (all machines): keys the random streams.
    pub index: u32,
    pub path: String,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Records read: documents (a long one counts once) and skipped records.
    pub documents_read: u64,
    pub documents_used: u64,
    pub skipped: BTreeMap<String, u64>,
    /// First malformed records, as `file:line: why`.
    pub skipped_examples: Vec<String>,
    pub invalid_utf8_lines: u64,
    /// Extra pieces cut from documents longer than `max_doc_chars`.
    pub long_document_pieces: u64,
    pub chars: u64,
    pub bytes: u64,
    pub tokens: u64,
    pub unk_tokens: u64,
    pub unk_rate: f64,
    pub windows: u64,
    pub examples: u64,
    pub masked_positions: u64,
    pub elapsed_s: f64,
    pub chars_per_s: f64,
}

/// Counters the caller polls for a progress bar, and a cancel switch.
#[derive(Debug, Default)]
pub struct Progress {
    pub input_bytes_total: AtomicU64,
    pub input_bytes_read: Arc<AtomicU64>,
    pub documents: AtomicU64,
    pub examples: AtomicU64,
    pub chars: AtomicU64,
    pub cancel: AtomicBool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocabInfo {
    pub path: String,
    pub sha256: String,
    pub size: usize,
    pub do_lower_case: bool,
    pub token_bytes: usize,
    pub cls_id: u32,
    pub sep_id: u32,
    pub mask_id: u32,
    pub pad_id: u32,
    pub unk_id: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub tool: String,
    pub params: PrepParams,
    pub vocab: VocabInfo,
    pub inputs: Vec<InputFile>,
    pub shards: Vec<ShardInfo>,
    pub examples: u64,
    pub tokens: u64,
    pub masked: u64,
    pub report: Report,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<String>,
}

/// Where a resumed run picks up: the document being written when the last shard closed
/// and how many of its examples that shard (and earlier ones) hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Position {
    file: u32,
    line: u64,
    piece: u32,
    consumed: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct ProgressRecord {
    format: String,
    version: u32,
    params: PrepParams,
    inputs: Vec<InputFile>,
    shards: Vec<ShardInfo>,
    position: Option<Position>,
    report: Report,
}

pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).at(&path)?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::data(path.display().to_string(), format!("bad manifest: {e}")))?;
    if m.format != MANIFEST_FORMAT || m.version != MANIFEST_VERSION {
        return Err(Error::data(
            path.display().to_string(),
            format!(
                "not an examples manifest of version {MANIFEST_VERSION} ({} v{})",
                m.format, m.version
            ),
        ));
    }
    Ok(m)
}

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
}

impl DocOutput {
    /// Example `k` written into `ex`, reusing its buffers.
    pub fn example_into(&self, k: usize, cls: u32, sep: u32, doc: &Document, ex: &mut Example) {
        let spec = &self.examples[k];
        ex.input_ids.clear();
        ex.input_ids.push(cls);
        ex.input_ids
            .extend_from_slice(&self.ids[spec.start..spec.end]);
        ex.input_ids.push(sep);
        let positions = &self.masks.positions[spec.masks.clone()];
        for (&p, &v) in positions.iter().zip(&self.masks.values[spec.masks.clone()]) {
            ex.input_ids[p as usize] = v;
        }
        ex.positions.clear();
        ex.positions.extend_from_slice(positions);
        ex.labels.clear();
        ex.labels
            .extend_from_slice(&self.masks.labels[spec.masks.clone()]);
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
        SCRATCH.with(|s| self.process_with(doc, &mut s.borrow_mut()))
    }

    fn process_with(&self, doc: &Document, scratch: &mut Scratch) -> Result<DocOutput> {
        let mut ids = Vec::with_capacity(doc.text.len() / 3 + 16);
        let mut marks = std::mem::take(&mut scratch.marks);
        marks.clear();
        let r = self.tokens_and_marks_into(&doc.text, &mut ids, &mut marks, scratch);
        let (groups, shuffled) = (&mut scratch.groups, &mut scratch.shuffled);
        let out = r.map(|()| self.windows(doc, ids, &marks, groups, shuffled));
        scratch.marks = marks;
        out
    }

    /// Windows of a tokenized document, each masked `dupe_factor` times.
    fn windows(
        &self,
        doc: &Document,
        ids: Vec<u32>,
        marks: &[bool],
        groups: &mut Vec<(u32, u32)>,
        shuffled: &mut Vec<(u32, u32)>,
    ) -> DocOutput {
        let mut out = DocOutput {
            chars: doc.text.chars().count() as u64,
            bytes: doc.text.len() as u64,
            tokens: ids.len() as u64,
            unk: ids.iter().filter(|&&i| i == self.tok.unk_id).count() as u64,
            ..Default::default()
        };
        if ids.is_empty() {
            return out;
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
        out.ids = ids;
        out
    }
}

fn reason_name(r: SkipReason) -> &'static str {
    match r {
        SkipReason::Empty => "empty",
        SkipReason::TooShort => "too_short",
        SkipReason::MalformedJson => "malformed_json",
        SkipReason::NoTextField => "no_text_field",
    }
}

fn validate(cfg: &PrepConfig) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(m));
    if cfg.inputs.is_empty() {
        return bad("no input files given".into());
    }
    if !(3..=65535).contains(&cfg.max_seq_length) {
        return bad(format!(
            "--max-seq-length {} must be in 3..65535",
            cfg.max_seq_length
        ));
    }
    if cfg.doc_stride == 0 || cfg.doc_stride > cfg.max_seq_length - 2 {
        return bad(format!(
            "--doc-stride {} must be in 1..{} (max-seq-length - 2)",
            cfg.doc_stride,
            cfg.max_seq_length - 2
        ));
    }
    if cfg.dupe_factor == 0 || cfg.max_predictions_per_seq == 0 || cfg.shard_size == 0 {
        return bad("--dupe-factor, --max-predictions-per-seq and --shard-size must be ≥ 1".into());
    }
    if !(cfg.masked_lm_prob > 0.0 && cfg.masked_lm_prob <= 1.0) {
        return bad(format!(
            "--masked-lm-prob {} must be in (0, 1]",
            cfg.masked_lm_prob
        ));
    }
    if !(0.0..=1.0).contains(&cfg.short_seq_prob) {
        return bad(format!(
            "--short-seq-prob {} must be in [0, 1]",
            cfg.short_seq_prob
        ));
    }
    if cfg.num_shards == 0 || cfg.shard_index >= cfg.num_shards {
        return bad(format!(
            "--shard-index {} must be below --num-shards {}",
            cfg.shard_index, cfg.num_shards
        ));
    }
    if !matches!(cfg.segmenter.as_str(), "jieba" | "none") {
        return bad(format!(
            "--segmenter {:?}: expected jieba or none",
            cfg.segmenter
        ));
    }
    if cfg.max_doc_chars < 1000 {
        return bad("--max-doc-chars must be ≥ 1000".into());
    }
    Ok(())
}

/// Builds the pipeline and the parameters recorded in the manifest.
pub fn build(cfg: &PrepConfig) -> Result<(Pipeline, PrepParams)> {
    validate(cfg)?;
    let tok = WordPieceTokenizer::from_path(&cfg.vocab, cfg.do_lower_case)?;
    let seg = if cfg.segmenter == "none" {
        Segmenter::None
    } else {
        Segmenter::jieba(cfg.hmm, cfg.user_dict.as_deref())?
    };
    let user_dict_sha256 = match &cfg.user_dict {
        Some(p) => Some(shard::sha256_file(p)?),
        None => None,
    };
    let params = PrepParams {
        vocab_sha256: tok.vocab_sha256.clone(),
        do_lower_case: tok.do_lower_case,
        segmenter: cfg.segmenter.clone(),
        hmm: cfg.hmm,
        user_dict_sha256,
        doc_sep: cfg.doc_sep,
        text_fields: cfg.text_fields.clone(),
        max_seq_length: cfg.max_seq_length,
        doc_stride: cfg.doc_stride,
        dupe_factor: cfg.dupe_factor,
        max_predictions_per_seq: cfg.max_predictions_per_seq,
        masked_lm_prob: cfg.masked_lm_prob,
        short_seq_prob: cfg.short_seq_prob,
        min_chars: cfg.min_chars,
        max_doc_chars: cfg.max_doc_chars,
        seed: cfg.seed,
        shard_size: cfg.shard_size,
        num_shards: cfg.num_shards,
        shard_index: cfg.shard_index,
        strict: cfg.strict,
    };
    let pipeline = Pipeline {
        masking: MaskingConfig {
            max_predictions: cfg.max_predictions_per_seq,
            masked_lm_prob: cfg.masked_lm_prob,
        },
        max_seq_length: cfg.max_seq_length,
        doc_stride: cfg.doc_stride,
        dupe_factor: cfg.dupe_factor,
        short_seq_prob: cfg.short_seq_prob,
        seed: cfg.seed,
        tok,
        seg,
    };
    Ok((pipeline, params))
}

fn is_our_file(name: &str) -> bool {
    name == MANIFEST_FILE
        || name == PROGRESS_FILE
        || name.ends_with(".tmp")
        || (name.starts_with("examples-") && (name.ends_with(".bin") || name.ends_with(".idx")))
}

/// Removes shard files and temp files that no record lists (left by a crash).
fn clean_dir(dir: &Path, keep: &[ShardInfo], remove_records: bool) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let entry = entry.at(dir)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_our_file(&name) {
            continue;
        }
        let record = name == MANIFEST_FILE || name == PROGRESS_FILE;
        let kept = keep
            .iter()
            .any(|s| name == format!("{}.bin", s.name) || name == format!("{}.idx", s.name));
        if (record && remove_records) || (!record && !kept) {
            std::fs::remove_file(entry.path()).at(entry.path())?;
        }
    }
    Ok(())
}

fn describe_difference(old: &PrepParams, new: &PrepParams) -> String {
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let mut diffs = Vec::new();
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        for (k, v) in b {
            if a.get(k) != Some(v) {
                diffs.push(format!(
                    "{k}: {} → {}",
                    a.get(k).cloned().unwrap_or_default(),
                    v
                ));
            }
        }
    }
    if diffs.is_empty() {
        "the input files differ".into()
    } else {
        diffs.join(", ")
    }
}

/// The run's state on disk when it starts.
enum Start {
    Fresh,
    Resume(Box<ProgressRecord>),
    Done(Box<Manifest>),
}

fn inspect_out_dir(cfg: &PrepConfig, params: &PrepParams, inputs: &[InputFile]) -> Result<Start> {
    let out = &cfg.out;
    std::fs::create_dir_all(out).map_err(|e| {
        Error::Invalid(format!(
            "cannot create output directory {}: {e}",
            out.display()
        ))
    })?;
    let same_inputs = |old: &[InputFile]| {
        old.len() == inputs.len()
            && old
                .iter()
                .zip(inputs)
                .all(|(a, b)| a.path == b.path && a.bytes == b.bytes && a.index == b.index)
    };
    let refuse = |what: &str, old: &PrepParams| {
        Error::Invalid(format!(
            "{} holds {what} made with other arguments ({}); use --overwrite to replace it",
            out.display(),
            describe_difference(old, params)
        ))
    };
    let manifest_path = out.join(MANIFEST_FILE);
    let progress_path = out.join(PROGRESS_FILE);
    if cfg.overwrite {
        clean_dir(out, &[], true)?;
        return Ok(Start::Fresh);
    }
    if manifest_path.exists() {
        let m = read_manifest(out)?;
        if m.params != *params || !same_inputs(&m.inputs) {
            return Err(refuse("a finished run", &m.params));
        }
        return Ok(Start::Done(Box::new(m)));
    }
    if progress_path.exists() {
        let text = std::fs::read_to_string(&progress_path).at(&progress_path)?;
        let rec: ProgressRecord = serde_json::from_str(&text).map_err(|e| {
            Error::data(
                progress_path.display().to_string(),
                format!("unreadable: {e}"),
            )
        })?;
        if rec.params != *params || !same_inputs(&rec.inputs) {
            return Err(refuse("an unfinished run", &rec.params));
        }
        for s in &rec.shards {
            for (ext, bytes) in [("bin", s.bin_bytes), ("idx", s.idx_bytes)] {
                let p = out.join(format!("{}.{ext}", s.name));
                let len = std::fs::metadata(&p).at(&p)?.len();
                if len != bytes {
                    return Err(Error::data(
                        p.display().to_string(),
                        format!("has {len} bytes, its progress record says {bytes}; rerun with --overwrite"),
                    ));
                }
            }
        }
        clean_dir(out, &rec.shards, false)?;
        return Ok(Start::Resume(Box::new(rec)));
    }
    clean_dir(out, &[], true)?;
    Ok(Start::Fresh)
}

enum Msg {
    Items(Vec<Item>),
    FileDone(u32, String),
}

struct Processed {
    item: Item,
    output: Option<DocOutput>,
}

/// Runs `distill-prep`. Returns the manifest (also written to `out/manifest.json`).
pub fn run(cfg: &PrepConfig, progress: &Progress) -> Result<Manifest> {
    let t0 = Instant::now();
    let (pipeline, params) = build(cfg)?;
    let all = corpus::expand_inputs(&cfg.inputs)?;
    let mut inputs = Vec::new();
    for (i, p) in all.iter().enumerate() {
        if i % cfg.num_shards != cfg.shard_index {
            continue;
        }
        let bytes = std::fs::metadata(p).at(p)?.len();
        inputs.push(InputFile {
            index: i as u32,
            path: p.display().to_string(),
            bytes,
            sha256: None,
        });
    }
    let (shards, position, mut report) = match inspect_out_dir(cfg, &params, &inputs)? {
        Start::Done(m) => return Ok(*m),
        Start::Fresh => (Vec::new(), None, Report::default()),
        Start::Resume(r) => (r.shards, r.position, r.report),
    };
    let prior_elapsed = report.elapsed_s;
    progress
        .input_bytes_total
        .store(inputs.iter().map(|f| f.bytes).sum(), Ordering::Relaxed);

    let token_bytes = if pipeline.tok.vocab_size() <= U16_VOCAB_LIMIT {
        2
    } else {
        4
    };
    let workers = if cfg.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.workers
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {workers} workers: {e}")))?;
    let reader_cfg = ReaderConfig {
        doc_sep: cfg.doc_sep,
        text_fields: cfg.text_fields.clone(),
        min_chars: cfg.min_chars,
        max_doc_chars: cfg.max_doc_chars,
        strict: cfg.strict,
    };

    let (to_pool, from_reader) = crossbeam_channel::bounded::<Result<Msg>>(2);
    let (to_writer, from_pool) =
        crossbeam_channel::bounded::<(Vec<Processed>, Vec<(u32, String)>)>(2);

    let mut writer = Writer {
        dir: cfg.out.clone(),
        token_bytes,
        shard_size: cfg.shard_size,
        params: params.clone(),
        vocab: vocab_info(&pipeline.tok, token_bytes),
        inputs: inputs.clone(),
        shards,
        current: None,
        resume: position,
        report: std::mem::take(&mut report),
        prior_elapsed,
        t0,
        cls_id: pipeline.tok.cls_id,
        sep_id: pipeline.tok.sep_id,
        example: empty_example(),
    };

    let result = std::thread::scope(|scope| -> Result<Writer> {
        let reader_inputs = &inputs;
        let cancel = &progress.cancel;
        let counter = progress.input_bytes_read.clone();
        scope.spawn(move || {
            let r = read_all(
                reader_inputs,
                &reader_cfg,
                position,
                counter,
                cancel,
                &to_pool,
            );
            if let Err(e) = r {
                let _ = to_pool.send(Err(e));
            }
        });
        let writer_handle = scope.spawn(move || -> Result<Writer> {
            for (batch, done) in from_pool {
                writer.consume(batch, progress)?;
                for (i, sha) in done {
                    if let Some(f) = writer.inputs.iter_mut().find(|f| f.index == i) {
                        f.sha256 = Some(sha);
                    }
                }
            }
            Ok(writer)
        });
        let mut failure = None;
        for msg in from_reader.iter() {
            if progress.cancel.load(Ordering::Relaxed) {
                failure = Some(Error::Cancelled);
                break;
            }
            let (batch, done) = match msg {
                Err(e) => {
                    failure = Some(e);
                    break;
                }
                Ok(Msg::FileDone(i, sha)) => (Vec::new(), vec![(i, sha)]),
                Ok(Msg::Items(items)) => {
                    let processed: Result<Vec<Processed>> = pool.install(|| {
                        items
                            .into_par_iter()
                            .map(|item| {
                                let output = match &item {
                                    Item::Doc(d) => Some(pipeline.process(d)?),
                                    Item::Skipped { .. } => None,
                                };
                                Ok(Processed { item, output })
                            })
                            .collect()
                    });
                    match processed {
                        Ok(p) => (p, Vec::new()),
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
            };
            if to_writer.send((batch, done)).is_err() {
                break; // the writer failed: its error is reported below
            }
        }
        drop(to_writer);
        drop(from_reader); // unblocks the reader
        let w = writer_handle
            .join()
            .map_err(|_| Error::Invalid("internal error: writer thread panicked".into()))??;
        match failure {
            Some(e) => Err(e),
            None => Ok(w),
        }
    })?;
    result.finish()
}

fn read_all(
    inputs: &[InputFile],
    cfg: &ReaderConfig,
    resume: Option<Position>,
    counter: Arc<AtomicU64>,
    cancel: &AtomicBool,
    tx: &crossbeam_channel::Sender<Result<Msg>>,
) -> Result<()> {
    let mut batch: Vec<Item> = Vec::new();
    let mut batch_bytes = 0usize;
    let stopped = || Error::Invalid("stopped".into());
    for f in inputs {
        let path = Path::new(&f.path);
        let sha = corpus::read_file(path, f.index, cfg, counter.clone(), &mut |item| {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            // Items before the resume position were written by an earlier run.
            if let Some(p) = resume {
                let key = match &item {
                    Item::Doc(d) => (d.file, d.line, d.piece),
                    Item::Skipped { line, .. } => (f.index, *line, 0),
                };
                if key < (p.file, p.line, p.piece) {
                    return Ok(());
                }
            }
            if let Item::Doc(d) = &item {
                batch_bytes += d.text.len();
            }
            batch.push(item);
            if batch_bytes >= BATCH_BYTES || batch.len() >= BATCH_ITEMS {
                batch_bytes = 0;
                tx.send(Ok(Msg::Items(std::mem::take(&mut batch))))
                    .map_err(|_| stopped())?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            batch_bytes = 0;
            tx.send(Ok(Msg::Items(std::mem::take(&mut batch))))
                .map_err(|_| stopped())?;
        }
        tx.send(Ok(Msg::FileDone(f.index, sha)))
            .map_err(|_| stopped())?;
    }
    Ok(())
}

fn empty_example() -> Example {
    Example {
        input_ids: Vec::new(),
        positions: Vec::new(),
        labels: Vec::new(),
        file: 0,
        piece: 0,
        line: 0,
        window: 0,
        dupe: 0,
    }
}

struct Writer {
    dir: PathBuf,
    token_bytes: usize,
    shard_size: usize,
    params: PrepParams,
    vocab: VocabInfo,
    inputs: Vec<InputFile>,
    shards: Vec<ShardInfo>,
    current: Option<ShardWriter>,
    resume: Option<Position>,
    report: Report,
    prior_elapsed: f64,
    t0: Instant,
    cls_id: u32,
    sep_id: u32,
    /// The example being written, reused.
    example: Example,
}

impl Writer {
    fn consume(&mut self, batch: Vec<Processed>, progress: &Progress) -> Result<()> {
        for p in batch {
            match (p.item, p.output) {
                (
                    Item::Skipped {
                        reason,
                        location,
                        bad_utf8_lines,
                        ..
                    },
                    _,
                ) => {
                    self.report.documents_read += 1;
                    self.report.invalid_utf8_lines += bad_utf8_lines as u64;
                    *self
                        .report
                        .skipped
                        .entry(reason_name(reason).into())
                        .or_default() += 1;
                    if reason == SkipReason::MalformedJson
                        && self.report.skipped_examples.len() < MAX_LISTED
                    {
                        self.report.skipped_examples.push(location);
                    }
                }
                (Item::Doc(doc), Some(out)) => self.consume_doc(&doc, out, progress)?,
                (Item::Doc(_), None) => unreachable!("documents are always processed"),
            }
        }
        Ok(())
    }

    fn consume_doc(&mut self, doc: &Document, out: DocOutput, progress: &Progress) -> Result<()> {
        let mut skip = 0usize;
        match self.resume.take() {
            Some(p) if (p.file, p.line, p.piece) == (doc.file, doc.line, doc.piece) => {
                skip = p.consumed as usize; // its counts are in the restored report
            }
            _ => {
                let r = &mut self.report;
                if doc.piece == 0 {
                    r.documents_read += 1;
                    r.documents_used += 1;
                } else {
                    r.long_document_pieces += 1;
                }
                r.invalid_utf8_lines += doc.bad_utf8_lines as u64;
                r.chars += out.chars;
                r.bytes += out.bytes;
                r.tokens += out.tokens;
                r.unk_tokens += out.unk;
                r.windows += out.windows;
                progress.documents.fetch_add(1, Ordering::Relaxed);
                progress.chars.fetch_add(out.chars, Ordering::Relaxed);
            }
        }
        let mut ex = std::mem::replace(&mut self.example, empty_example());
        let r = self.write_examples(doc, &out, skip, &mut ex, progress);
        self.example = ex;
        r
    }

    fn write_examples(
        &mut self,
        doc: &Document,
        out: &DocOutput,
        skip: usize,
        ex: &mut Example,
        progress: &Progress,
    ) -> Result<()> {
        for k in skip..out.examples.len() {
            out.example_into(k, self.cls_id, self.sep_id, doc, ex);
            if self.current.is_none() {
                self.current = Some(ShardWriter::create(
                    &self.dir,
                    self.shards.len(),
                    self.token_bytes,
                )?);
            }
            let w = self.current.as_mut().unwrap();
            w.push(ex)?;
            self.report.examples += 1;
            self.report.masked_positions += ex.positions.len() as u64;
            progress.examples.fetch_add(1, Ordering::Relaxed);
            if w.len() >= self.shard_size {
                let pos = Position {
                    file: doc.file,
                    line: doc.line,
                    piece: doc.piece,
                    consumed: k as u64 + 1,
                };
                self.close_shard(Some(pos))?;
            }
        }
        Ok(())
    }

    fn close_shard(&mut self, position: Option<Position>) -> Result<()> {
        if let Some(w) = self.current.take() {
            self.shards.push(w.finish()?);
        }
        self.report.elapsed_s = self.prior_elapsed + self.t0.elapsed().as_secs_f64();
        let rec = ProgressRecord {
            format: format!("{MANIFEST_FORMAT}-progress"),
            version: MANIFEST_VERSION,
            params: self.params.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|f| InputFile {
                    sha256: None,
                    ..f.clone()
                })
                .collect(),
            shards: self.shards.clone(),
            position,
            report: self.report.clone(),
        };
        let json = serde_json::to_vec_pretty(&rec).expect("serializable");
        shard::write_atomic(&self.dir.join(PROGRESS_FILE), &json)?;
        Ok(())
    }

    fn finish(mut self) -> Result<Manifest> {
        if self.current.as_ref().is_some_and(|w| !w.is_empty()) {
            self.close_shard(None)?;
        }
        self.current = None;
        let r = &mut self.report;
        r.elapsed_s = self.prior_elapsed + self.t0.elapsed().as_secs_f64();
        r.unk_rate = if r.tokens > 0 {
            r.unk_tokens as f64 / r.tokens as f64
        } else {
            0.0
        };
        r.chars_per_s = if r.elapsed_s > 0.0 {
            r.chars as f64 / r.elapsed_s
        } else {
            0.0
        };
        let m = Manifest {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            tool: format!("wwm-distill {}", env!("CARGO_PKG_VERSION")),
            vocab: self.vocab,
            params: self.params,
            inputs: self.inputs,
            examples: self.shards.iter().map(|s| s.examples).sum(),
            tokens: self.shards.iter().map(|s| s.tokens).sum(),
            masked: self.shards.iter().map(|s| s.masked).sum(),
            shards: self.shards,
            report: self.report,
            merged_from: Vec::new(),
        };
        write_manifest(&self.dir, &m)?;
        let _ = std::fs::remove_file(self.dir.join(PROGRESS_FILE));
        Ok(m)
    }
}

pub fn vocab_info(tok: &WordPieceTokenizer, token_bytes: usize) -> VocabInfo {
    VocabInfo {
        path: tok.source.display().to_string(),
        sha256: tok.vocab_sha256.clone(),
        size: tok.vocab_size(),
        do_lower_case: tok.do_lower_case,
        token_bytes,
        cls_id: tok.cls_id,
        sep_id: tok.sep_id,
        mask_id: tok.mask_id,
        pad_id: tok.pad_id,
        unk_id: tok.unk_id,
    }
}

pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let json = serde_json::to_vec_pretty(m).expect("serializable");
    shard::write_atomic(&dir.join(MANIFEST_FILE), &json)?;
    Ok(())
}
