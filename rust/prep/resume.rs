//! Resuming: the progress record a run writes each time it closes a shard, and what a
//! run finds in its output directory when it starts (nothing, an unfinished run to resume,
//! a finished one, or another run's output to refuse).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{PrepConfig, PrepParams};
use crate::error::{Error, IoContext, Result};
use crate::examples::format::is_shard_file;
use crate::examples::manifest::{MANIFEST_FILE, MANIFEST_FORMAT, MANIFEST_VERSION};
use crate::examples::{self, read_manifest, InputFile, Manifest, Report, ShardInfo};
use crate::io::write_atomic;

pub const PROGRESS_FILE: &str = "progress.json";

/// Where a resumed run picks up: the document being written when the last shard closed
/// and how many of its examples that shard (and earlier ones) hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub file: u32,
    pub line: u64,
    pub piece: u32,
    pub consumed: u64,
}

impl Position {
    /// Whether the item at (file, line, piece) lies before this position (written already).
    pub fn is_past(&self, file: u32, line: u64, piece: u32) -> bool {
        (file, line, piece) < (self.file, self.line, self.piece)
    }
    /// Whether the document at (file, line, piece) is the one this position is inside.
    pub fn is_at(&self, file: u32, line: u64, piece: u32) -> bool {
        (file, line, piece) == (self.file, self.line, self.piece)
    }
}

/// `progress.json`: the state of an unfinished run after its last closed shard.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProgressRecord {
    format: String,
    version: u32,
    pub params: PrepParams,
    pub inputs: Vec<InputFile>,
    pub shards: Vec<ShardInfo>,
    pub position: Option<Position>,
    pub report: Report,
}

impl ProgressRecord {
    /// Writes the record (input checksums left out: a resumed run reads its files again).
    pub fn write(
        dir: &Path,
        params: &PrepParams,
        inputs: &[InputFile],
        shards: &[ShardInfo],
        position: Option<Position>,
        report: &Report,
    ) -> Result<()> {
        let rec = ProgressRecord {
            format: format!("{MANIFEST_FORMAT}-progress"),
            version: MANIFEST_VERSION,
            params: params.clone(),
            inputs: inputs
                .iter()
                .map(|f| InputFile {
                    sha256: None,
                    ..f.clone()
                })
                .collect(),
            shards: shards.to_vec(),
            position,
            report: report.clone(),
        };
        let json = serde_json::to_vec_pretty(&rec).expect("serializable");
        write_atomic(&dir.join(PROGRESS_FILE), &json)?;
        Ok(())
    }

    /// Removes the record of a run that finished.
    pub fn remove(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(PROGRESS_FILE));
    }
}

fn is_our_file(name: &str) -> bool {
    name == MANIFEST_FILE || name == PROGRESS_FILE || name.ends_with(".tmp") || is_shard_file(name)
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
        let kept = keep.iter().any(|s| {
            let (bin, idx) = (
                examples::format::bin_path(dir, &s.name),
                examples::format::idx_path(dir, &s.name),
            );
            entry.path() == bin || entry.path() == idx
        });
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
pub enum Start {
    Fresh,
    Resume(Box<ProgressRecord>),
    Done(Box<Manifest>),
}

pub fn inspect_out_dir(
    cfg: &PrepConfig,
    params: &PrepParams,
    inputs: &[InputFile],
) -> Result<Start> {
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
            for (p, bytes) in [
                (examples::format::bin_path(out, &s.name), s.bin_bytes),
                (examples::format::idx_path(out, &s.name), s.idx_bytes),
            ] {
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
