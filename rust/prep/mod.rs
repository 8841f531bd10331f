//! `distill-prep`: corpus → whole-word-masked example shards, in parallel, streaming,
//! deterministic for a seed whatever the number of workers, resumable after a crash.
//!
//! Threads: a reader (decompress, split documents, parse JSON) numbers chunks of
//! documents in input order; whichever worker is free takes the next one ([`pipeline`]:
//! segment, tokenize, window, mask) and hands its results to a writer ([`writer`]: shards,
//! progress records, manifest), which puts them back in input order. With more than
//! [`READER_PARSES_UP_TO`] workers the reader only cuts the inputs into pieces of whole
//! lines and the workers parse them, so that one reader keeps many workers busy. No
//! worker waits for another: there is no barrier per chunk. A chunk holds a ticket from the moment a worker
//! takes it until it is written, so at most a fixed number are in flight and memory stays
//! flat. Options: [`config`]; restarting after a crash: [`resume`].

pub mod config;
pub mod pipeline;
pub mod resume;
mod writer;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

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

/// A chunk handed to a worker ends after `chunk_bytes` of text (an option) or this many
/// items.
const CHUNK_ITEMS: usize = 1024;
/// Chunks in flight (taken by a worker, not yet written) per worker: room for the
/// workers to run ahead of a slow chunk or of the writer closing a shard.
const IN_FLIGHT_PER_WORKER: usize = 4;
/// Up to this many workers the reader parses the inputs itself (on a core the workers
/// leave free); with more, the workers parse pieces of lines. `benches/bench_prep.py`:
/// a reader that parses keeps ~7 workers busy on gzip'd JSON lines, ~20 on plain text.
pub const READER_PARSES_UP_TO: usize = 4;
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
    /// Lines for the worker to parse.
    Lines(corpus::RawLines),
    FileDone(u32, String),
}

/// What the reader, and a worker parsing [`Msg::Lines`], need: the reader's settings, and
/// where a resumed run starts.
struct Parsing<'a> {
    cfg: &'a ReaderConfig,
    resume: Option<Position>,
}

/// Whether `item` (of input file `file`) was written by an earlier run.
fn written_before(resume: Option<Position>, file: u32, item: &Item) -> bool {
    let Some(p) = resume else {
        return false;
    };
    match item {
        Item::Doc(d) => p.is_past(d.file, d.line, d.piece),
        Item::Skipped { line, .. } => p.is_past(file, *line, 0),
    }
}

struct Processed {
    item: Item,
    output: Option<DocOutput>,
}

/// What a worker hands to the writer for one chunk: its items processed, and the inputs
/// read to the end with their sha256.
type ChunkResult = Result<(Vec<Processed>, Vec<(u32, String)>)>;

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
    let reader_cfg = cfg.settings.reader_config();
    let parsing = Parsing {
        cfg: &reader_cfg,
        resume: position,
    };
    let parse_in_workers = workers > READER_PARSES_UP_TO;

    report.setup_s += t0.elapsed().as_secs_f64();
    let (to_workers, from_reader) = crossbeam_channel::bounded::<(u64, Result<Msg>)>(2 * workers);
    // Tickets: a worker takes one before a chunk; the writer gives it back once the chunk
    // is written.
    let in_flight = IN_FLIGHT_PER_WORKER * workers;
    let (tickets_back, tickets) = crossbeam_channel::bounded::<()>(in_flight);
    for _ in 0..in_flight {
        let _ = tickets_back.send(()); // room for all of them
    }
    let (to_writer, from_workers) = crossbeam_channel::unbounded::<(u64, ChunkResult)>();
    // Document outputs go back from the writer to the workers for reuse.
    let (recycle, recycled) = crossbeam_channel::bounded::<DocOutput>(RECYCLED_OUTPUTS);
    // Set when any thread fails or is cancelled: the others stop at their next chunk.
    let stop = AtomicBool::new(false);

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

    let writer = std::thread::scope(|scope| -> Result<Writer> {
        let (reader_inputs, parsing) = (&inputs, &parsing); // references, for `move`
        let cancel = &progress.cancel;
        let counter = progress.input_bytes_read.clone();
        scope.spawn(move || {
            let mut out = Numbered {
                tx: to_workers,
                next: 0,
            };
            let r = read_all(
                reader_inputs,
                parsing,
                counter,
                cancel,
                cfg.chunk_bytes,
                parse_in_workers,
                &mut out,
            );
            if let Err(e) = r {
                let _ = out.send(Err(e));
            }
        });
        for _ in 0..workers {
            let (from_reader, tickets, to_writer) =
                (from_reader.clone(), tickets.clone(), to_writer.clone());
            let (pipeline, recycled, stop) = (&pipeline, &recycled, &stop);
            scope.spawn(move || {
                work(
                    pipeline,
                    parsing,
                    &from_reader,
                    &tickets,
                    &to_writer,
                    recycled,
                    stop,
                    cancel,
                )
            });
        }
        // The workers hold the only senders to the writer and receivers from the reader.
        drop((from_reader, tickets, to_writer));
        let r = write_in_order(&mut writer, &from_workers, &tickets_back, progress);
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        // Unblocks the workers (no more tickets) and, through them, the reader.
        drop((tickets_back, from_workers));
        r.map(|()| writer)
    })?;
    writer.finish()
}

/// The reader's side of the channel to the workers: numbers what it sends.
struct Numbered {
    tx: Sender<(u64, Result<Msg>)>,
    next: u64,
}

impl Numbered {
    fn send(&mut self, msg: Result<Msg>) -> Result<()> {
        self.tx
            .send((self.next, msg))
            .map_err(|_| Error::Internal("stopped".into()))?;
        self.next += 1;
        Ok(())
    }
}

/// A worker: takes a ticket, then the next chunk; processes it; hands the result to the
/// writer. Stops when the reader is done, the writer is gone, or a thread failed.
#[allow(clippy::too_many_arguments)]
fn work(
    pipeline: &Pipeline,
    parsing: &Parsing,
    from_reader: &Receiver<(u64, Result<Msg>)>,
    tickets: &Receiver<()>,
    to_writer: &Sender<(u64, ChunkResult)>,
    recycled: &Receiver<DocOutput>,
    stop: &AtomicBool,
    cancel: &AtomicBool,
) {
    while tickets.recv().is_ok() {
        let Ok((seq, msg)) = from_reader.recv() else {
            return; // the reader is done
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let result = match msg {
            _ if cancel.load(Ordering::Relaxed) => Err(Error::Cancelled),
            Err(e) => Err(e),
            Ok(Msg::FileDone(i, sha)) => Ok((Vec::new(), vec![(i, sha)])),
            Ok(Msg::Items(items)) => guarded(seq, || process_chunk(pipeline, items, recycled)),
            Ok(Msg::Lines(raw)) => guarded(seq, || {
                process_chunk(pipeline, parse_lines(&raw, parsing)?, recycled)
            }),
        };
        let failed = result.is_err();
        if failed {
            stop.store(true, Ordering::Relaxed);
        }
        if to_writer.send((seq, result)).is_err() || failed {
            return;
        }
    }
}

/// A chunk's work, a panic in it becoming the chunk's error: the writer stops there, and
/// the other threads with it (a lost chunk would leave the writer waiting for it).
fn guarded(seq: u64, chunk: impl FnOnce() -> Result<Vec<Processed>>) -> ChunkResult {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(chunk)) {
        Ok(r) => r.map(|p| (p, Vec::new())),
        Err(_) => Err(Error::Internal(format!("a worker panicked on chunk {seq}"))),
    }
}

/// The items of lines cut by the reader, without those an earlier run wrote.
fn parse_lines(raw: &corpus::RawLines, parsing: &Parsing) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    corpus::parse_raw(raw, parsing.cfg, &mut |item| {
        if !written_before(parsing.resume, raw.file, &item) {
            items.push(item);
        }
        Ok(())
    })?;
    Ok(items)
}

fn process_chunk(
    pipeline: &Pipeline,
    items: Vec<Item>,
    recycled: &Receiver<DocOutput>,
) -> Result<Vec<Processed>> {
    let mut processed = Vec::with_capacity(items.len());
    for item in items {
        let output = match &item {
            Item::Doc(d) => {
                let reuse = recycled.try_recv().unwrap_or_default();
                Some(pipeline.process_reusing(d, reuse)?)
            }
            Item::Skipped { .. } => None,
        };
        processed.push(Processed { item, output });
    }
    Ok(processed)
}

/// The writer's loop: the workers' results, written in the reader's order (those that
/// arrive early wait in `early`, at most one per ticket). The first failure in that
/// order ends it, with everything before it written.
fn write_in_order(
    writer: &mut Writer,
    from_workers: &Receiver<(u64, ChunkResult)>,
    tickets_back: &Sender<()>,
    progress: &Progress,
) -> Result<()> {
    let mut next = 0u64;
    let mut early: BTreeMap<u64, ChunkResult> = BTreeMap::new();
    for (seq, result) in from_workers {
        early.insert(seq, result);
        while let Some(result) = early.remove(&next) {
            let (batch, done) = result?;
            writer.consume(batch, progress)?;
            for (i, sha) in done {
                if let Some(f) = writer.inputs.iter_mut().find(|f| f.index == i) {
                    f.sha256 = Some(sha);
                }
            }
            next += 1;
            let _ = tickets_back.send(());
        }
    }
    match early.keys().next() {
        None => Ok(()),
        Some(seq) => Err(Error::Internal(format!(
            "chunk {next} never came back from the workers (chunk {seq} did)"
        ))),
    }
}

/// The reader: every input in order, as chunks of parsed items, or (`raw_lines`, for
/// inputs with a record per line) as pieces of lines the workers parse.
fn read_all(
    inputs: &[InputFile],
    parsing: &Parsing,
    counter: Arc<AtomicU64>,
    cancel: &AtomicBool,
    chunk_bytes: usize,
    raw_lines: bool,
    out: &mut Numbered,
) -> Result<()> {
    let cfg = parsing.cfg;
    let mut batch: Vec<Item> = Vec::new();
    let mut batch_bytes = 0usize;
    for f in inputs {
        let path = Path::new(&f.path);
        if raw_lines && corpus::splits_at_line_ends(path, cfg) {
            let sha = corpus::read_raw(path, f.index, counter.clone(), chunk_bytes, &mut |raw| {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Cancelled);
                }
                out.send(Ok(Msg::Lines(raw)))
            })?;
            out.send(Ok(Msg::FileDone(f.index, sha)))?;
            continue;
        }
        let sha = corpus::read_file(path, f.index, cfg, counter.clone(), &mut |item| {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            // Items before the resume position were written by an earlier run.
            if written_before(parsing.resume, f.index, &item) {
                return Ok(());
            }
            if let Item::Doc(d) = &item {
                batch_bytes += d.text.len();
            }
            batch.push(item);
            if batch_bytes >= chunk_bytes || batch.len() >= CHUNK_ITEMS {
                batch_bytes = 0;
                out.send(Ok(Msg::Items(std::mem::take(&mut batch))))?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            batch_bytes = 0;
            out.send(Ok(Msg::Items(std::mem::take(&mut batch))))?;
        }
        out.send(Ok(Msg::FileDone(f.index, sha)))?;
    }
    Ok(())
}
