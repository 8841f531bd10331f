//! `distill-prep`: corpus → whole-word-masked example shards, in parallel, streaming,
//! deterministic for a seed whatever the number of workers, resumable after a crash.
//!
//! Threads: a reader (decompress, split documents, parse JSON) feeds batches to the
//! rayon pool ([`pipeline`]: segment, tokenize, window, mask), whose ordered results go to
//! a writer ([`writer`]: shards, progress records, manifest). Bounded channels keep memory
//! flat. Options: [`config`]; restarting after a crash: [`resume`].

pub mod config;
pub mod pipeline;
pub mod resume;
mod writer;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

pub use config::{defaults, PrepConfig, PrepParams, Settings};
pub use pipeline::{DocOutput, ExampleSpec, Pipeline};

use crate::corpus::{self, Item, ReaderConfig};
use crate::error::{Error, IoContext, Result};
use crate::examples::{InputFile, Manifest, Report, VocabInfo};
use crate::io::sha256_file;
use crate::segment::Segmenter;
use crate::tokenize::{WordPieceTokenizer, U16_VOCAB_LIMIT};
use resume::{inspect_out_dir, Position, Start};
use writer::Writer;

/// A batch handed to the worker pool ends after this many bytes of text or items.
const BATCH_BYTES: usize = 1 << 20;
const BATCH_ITEMS: usize = 4096;
/// Document outputs kept for reuse: at most this many…
const RECYCLED_OUTPUTS: usize = 256;
/// … each holding at most this many tokens' worth of buffers (larger ones are freed).
const RECYCLED_MAX_TOKENS: usize = 1 << 16;

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

/// Builds the pipeline and the parameters recorded in the manifest.
pub fn build(cfg: &PrepConfig) -> Result<(Pipeline, PrepParams)> {
    cfg.validate()?;
    let s = &cfg.settings;
    // jieba-rs's dictionary (the larger part of start-up) is built while the vocabulary
    // loads.
    let (tok, seg) = std::thread::scope(|scope| {
        let seg = scope.spawn(|| {
            if s.segmenter == "none" {
                Ok(Segmenter::None)
            } else {
                Segmenter::jieba(s.hmm, cfg.user_dict.as_deref())
            }
        });
        let tok = WordPieceTokenizer::from_path(&cfg.vocab, cfg.do_lower_case);
        let seg = seg
            .join()
            .map_err(|_| Error::Internal("building the segmenter panicked".into()));
        (tok, seg)
    });
    let (tok, seg) = (tok?, seg??);
    let user_dict_sha256 = match &cfg.user_dict {
        Some(p) => Some(sha256_file(p)?),
        None => None,
    };
    let params = PrepParams {
        vocab_sha256: tok.vocab_sha256.clone(),
        do_lower_case: tok.do_lower_case,
        user_dict_sha256,
        settings: s.clone(),
        masking_version: crate::masking::MASKING_VERSION,
        shard_version: crate::examples::format::IDX_VERSION,
    };
    Ok((Pipeline::new(cfg, tok, seg), params))
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
        if i % cfg.settings.num_shards != cfg.settings.shard_index {
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
        .map_err(|e| Error::Internal(format!("cannot start {workers} workers: {e}")))?;
    let reader_cfg = ReaderConfig {
        doc_sep: cfg.settings.doc_sep,
        text_fields: cfg.settings.text_fields.clone(),
        min_chars: cfg.settings.min_chars,
        max_doc_chars: cfg.settings.max_doc_chars,
        strict: cfg.settings.strict,
    };

    report.setup_s += t0.elapsed().as_secs_f64();
    let (to_pool, from_reader) = crossbeam_channel::bounded::<Result<Msg>>(2);
    // Document outputs go back from the writer to the workers for reuse.
    let (recycle, recycled) = crossbeam_channel::bounded::<DocOutput>(RECYCLED_OUTPUTS);
    let (to_writer, from_pool) =
        crossbeam_channel::bounded::<(Vec<Processed>, Vec<(u32, String)>)>(2);

    let mut writer = Writer {
        dir: cfg.out.clone(),
        token_bytes,
        shard_size: cfg.settings.shard_size,
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
        recycle,
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
                                    Item::Doc(d) => {
                                        let reuse = recycled.try_recv().unwrap_or_default();
                                        Some(pipeline.process_reusing(d, reuse)?)
                                    }
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
            .map_err(|_| Error::Internal("writer thread panicked".into()))??;
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
    let stopped = || Error::Internal("stopped".into());
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
                if p.is_past(key.0, key.1, key.2) {
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
