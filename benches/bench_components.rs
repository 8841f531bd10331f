//! The bare components of prep, single-threaded (run by `benches/bench_prep.py`):
//!
//!     cargo run --release --example bench_components -- VOCAB TEXTS.jsonl [--no-hmm] [--repeat N]
//!         [--only jieba|tokenize|pipeline|process] [--read CORPUS_FILE]...
//!
//! TEXTS.jsonl holds one JSON string per line. Prints one JSON object: seconds spent by
//! jieba-rs cut (`jieba_s`), our WordPiece encode (`tokenize_s`, with its fast path), the
//! `tokenizers` BERT pipeline alone (`pipeline_s`) and prep's whole per-document work at
//! its default settings (`process_s`: segment, tokenize, continuation marks, windows,
//! masking × 5; no reading or writing); wall time, and the thread's CPU
//! time as `*_cpu_s` where the OS reports it (steady when other processes share the
//! cores); `jieba_new_s`, the first build of jieba-rs's dictionary in the process;
//! `chars` and `text_bytes` of the texts. With `--read FILE` (repeatable), also `read`: for
//! each file, the seconds `distill-prep`'s reader takes alone over it (`read_s`: decompress,
//! hash, split into documents, parse JSON), the seconds it takes only to cut the file into
//! pieces of lines for the workers to parse (`cut_s`, as with many workers) and the
//! document text it yields (`text_bytes`).
//! Each component runs N times (default 1); the fastest run counts.
//! jieba-rs is the floor of the prep pipeline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use wwm_distill::corpus::{self, Document, Item};
use wwm_distill::prep::pipeline::{DocOutput, Pipeline};
use wwm_distill::prep::{defaults, PrepConfig, Settings};
use wwm_distill::segment::Segmenter;
use wwm_distill::tokenize::WordPieceTokenizer;
use wwm_distill::Result;

/// CPU time of the calling thread in seconds (Linux schedstat), or `None` elsewhere.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

fn measure(
    vocab: &Path,
    texts: &[String],
    hmm: bool,
    repeat: usize,
    only: Option<&str>,
) -> Result<serde_json::Value> {
    let tok = WordPieceTokenizer::from_path(vocab, None)?;
    // jieba-rs's dictionary, built once per process (the first build, as a prep run pays
    // it: its embedded dictionary is decompressed then).
    let t = Instant::now();
    let seg = Segmenter::jieba(hmm, None)?;
    let jieba_new_s = t.elapsed().as_secs_f64();
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    let mut out = serde_json::Map::new();
    let mut count = 0usize;
    let mut timed = |name: &str, f: &mut dyn FnMut() -> Result<usize>| {
        if only.is_some_and(|o| o != name) {
            return Ok(());
        }
        let mut best: Option<(f64, Option<f64>)> = None;
        for _ in 0..repeat.max(1) {
            let (t, c) = (Instant::now(), thread_cpu_s());
            count += f()?;
            let wall = t.elapsed().as_secs_f64();
            let cpu = c.and_then(|c| Some(thread_cpu_s()? - c));
            if best.is_none_or(|(w, _)| wall < w) {
                best = Some((wall, cpu));
            }
        }
        let (wall, cpu) = best.expect("at least one run");
        out.insert(format!("{name}_s"), wall.into());
        if let Some(cpu) = cpu {
            out.insert(format!("{name}_cpu_s"), cpu.into());
        }
        Ok::<_, wwm_distill::Error>(())
    };
    timed("jieba", &mut || {
        Ok(texts.iter().map(|t| seg.words(t).len()).sum())
    })?;
    timed("tokenize", &mut || {
        texts.iter().map(|t| Ok(tok.encode(t)?.0.len())).sum()
    })?;
    timed("pipeline", &mut || {
        texts
            .iter()
            .map(|t| Ok(tok.encode_pipeline(t)?.0.len()))
            .sum()
    })?;
    let cfg = PrepConfig::new(Vec::new(), PathBuf::new(), vocab.to_path_buf());
    let pipeline = Pipeline::new(&cfg, tok, Segmenter::jieba(hmm, None)?);
    let docs: Vec<Document> = (0..texts.len())
        .map(|i| Document {
            file: 0,
            line: i as u64 + 1,
            piece: 0,
            text: texts[i].clone(),
            bad_utf8_lines: 0,
        })
        .collect();
    // As a worker does: each document's output buffers are handed back for the next one.
    let mut reuse = Some(DocOutput::default());
    timed("process", &mut || {
        docs.iter()
            .map(|d| {
                let out = pipeline.process_reusing(d, reuse.take().unwrap_or_default())?;
                let n = out.examples.len();
                reuse = Some(out);
                Ok(n)
            })
            .sum()
    })?;
    std::hint::black_box(count);
    out.insert("chars".into(), chars.into());
    let text_bytes: usize = texts.iter().map(|t| t.len()).sum();
    out.insert("text_bytes".into(), text_bytes.into());
    out.insert("jieba_new_s".into(), jieba_new_s.into());
    Ok(out.into())
}

/// The fastest of `repeat` runs of `f`, in seconds.
fn fastest_s(repeat: usize, f: &mut dyn FnMut() -> Result<()>) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

/// Seconds the reader of `distill-prep` takes alone over `path` (decompress, hash, split,
/// parse; default settings), fastest of `repeat`, and the bytes of document text it yields.
fn measure_read(path: &Path, repeat: usize) -> Result<serde_json::Value> {
    let cfg = Settings::default().reader_config();
    let mut text_bytes = 0usize;
    let read_s = fastest_s(repeat, &mut || {
        text_bytes = 0;
        corpus::read_file(path, 0, &cfg, Default::default(), &mut |item| {
            if let Item::Doc(d) = item {
                text_bytes += d.text.len();
            }
            Ok(())
        })
        .map(drop)
    })?;
    // With more workers than `READER_PARSES_UP_TO` the reader only cuts pieces of lines.
    let cut_s = if corpus::splits_at_line_ends(path, &cfg) {
        Some(fastest_s(repeat, &mut || {
            let mut cut = |raw: corpus::RawLines| {
                std::hint::black_box(raw.bytes.len());
                Ok(())
            };
            corpus::read_raw(path, 0, Default::default(), defaults::CHUNK_BYTES, &mut cut).map(drop)
        })?)
    } else {
        None
    };
    Ok(serde_json::json!({
        "path": path.display().to_string(),
        "read_s": read_s,
        "cut_s": cut_s,
        "text_bytes": text_bytes,
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hmm = !args.iter().any(|a| a == "--no-hmm");
    let usage =
        "usage: bench_components VOCAB TEXTS.jsonl [--no-hmm] [--repeat N] [--only COMPONENT] \
         [--read CORPUS_FILE]...";
    let mut repeat = 1usize;
    let mut only: Option<String> = None;
    let mut reads: Vec<PathBuf> = Vec::new();
    let mut paths: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--repeat" {
            match it.next().and_then(|n| n.parse().ok()) {
                Some(n) => repeat = n,
                None => {
                    eprintln!("{usage}");
                    return ExitCode::from(2);
                }
            }
        } else if a == "--read" {
            match it.next() {
                Some(path) => reads.push(PathBuf::from(path)),
                None => {
                    eprintln!("{usage}");
                    return ExitCode::from(2);
                }
            }
        } else if a == "--only" {
            match it.next() {
                Some(name) => only = Some(name.clone()),
                None => {
                    eprintln!("{usage}");
                    return ExitCode::from(2);
                }
            }
        } else if !a.starts_with("--") {
            paths.push(a);
        }
    }
    let [vocab, texts] = paths[..] else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let texts: Vec<String> = match std::fs::read_to_string(texts) {
        Ok(s) => match s
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(serde_json::from_str)
            .collect()
        {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{texts}: not one JSON string per line ({e})");
                return ExitCode::FAILURE;
            }
        },
        Err(e) => {
            eprintln!("{texts}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let measured =
        measure(Path::new(vocab), &texts, hmm, repeat, only.as_deref()).and_then(|mut v| {
            if !reads.is_empty() {
                let r: Result<Vec<_>> = reads.iter().map(|p| measure_read(p, repeat)).collect();
                v["read"] = r?.into();
                v["reader_parses_up_to"] = wwm_distill::prep::READER_PARSES_UP_TO.into();
            }
            Ok(v)
        });
    match measured {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bench_components: {e}");
            ExitCode::FAILURE
        }
    }
}
