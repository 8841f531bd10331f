//! `manifest.json` of a teacher-cache directory (written when `distill-teacher` finishes):
//! which examples the cache belongs to and its shards, `teacher-NNNNN.tkc`, one per
//! example shard. Rust types the fields it needs; every other field (teacher, mode,
//! check, report, …) is kept as it is, so a manifest reads and writes back unchanged.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, IoContext, Result};
use crate::io::{read_text, write_atomic};

pub const CACHE_FORMAT: &str = "wwm-distill/teacher";
pub const CACHE_VERSION: u32 = 1;
pub const CACHE_MANIFEST_FILE: &str = "manifest.json";
const SHARD_PREFIX: &str = "teacher-";
pub const SHARD_EXTENSION: &str = "tkc";

/// The name (without extension) of the cache shard of example shard `k`.
pub fn shard_name(k: usize) -> String {
    format!("{SHARD_PREFIX}{k:05}")
}

/// `dir/NAME.tkc`.
pub fn shard_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{SHARD_EXTENSION}"))
}

/// `dir/teacher-NNNNN.json`: the completion record of shard `k` (resume: a shard with a
/// record is finished). Its fields are [`CacheShardInfo`]'s plus whatever the teacher pass
/// adds (e.g. `top1_hits`).
pub fn shard_record_path(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("{}.json", shard_name(k)))
}

/// Writes the completion record of shard `k` atomically (after its `.tkc` is in place).
pub fn write_shard_record(dir: &Path, k: usize, text: &str) -> Result<CacheShardInfo> {
    let path = shard_record_path(dir, k);
    let info: CacheShardInfo = serde_json::from_str(text).map_err(|e| {
        Error::data(
            path.display().to_string(),
            format!("not a shard record: {e}"),
        )
    })?;
    if info.name != shard_name(k) {
        return Err(Error::data(
            path.display().to_string(),
            format!("record names {:?}, not {:?}", info.name, shard_name(k)),
        ));
    }
    write_atomic(&path, text.as_bytes())?;
    Ok(info)
}

/// The completion record of shard `k` (its text), or None while the shard is unfinished.
pub fn read_shard_record(dir: &Path, k: usize) -> Result<Option<String>> {
    let path = shard_record_path(dir, k);
    let text = match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.at(&path)?,
    };
    serde_json::from_str::<CacheShardInfo>(&text).map_err(|e| {
        Error::data(
            path.display().to_string(),
            format!("not a shard record: {e}"),
        )
    })?;
    Ok(Some(text))
}

/// The examples a cache was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExamplesRef {
    /// sha256 of the examples' `manifest.json`.
    pub manifest_sha256: String,
    /// Number of examples.
    pub examples: u64,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheShardInfo {
    pub name: String,
    pub examples: u64,
    pub positions: u64,
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CacheManifest {
    pub format: String,
    pub version: u32,
    pub examples: ExamplesRef,
    pub shards: Vec<CacheShardInfo>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl CacheManifest {
    /// Parses and checks a manifest's text; `what` names it in errors.
    pub fn from_json(text: &str, what: &str) -> Result<Self> {
        let m: CacheManifest = serde_json::from_str(text)
            .map_err(|e| Error::data(what, format!("bad teacher cache manifest: {e}")))?;
        m.check(what)?;
        Ok(m)
    }

    /// Format and version, shard names that are plain file names, and shard example
    /// counts that add up to the examples'.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.format != CACHE_FORMAT || self.version != CACHE_VERSION {
            return Err(Error::data(
                what,
                format!(
                    "not a teacher cache of version {CACHE_VERSION} ({} v{})",
                    self.format, self.version
                ),
            ));
        }
        for s in &self.shards {
            if s.name.is_empty() || s.name.contains(['/', '\\']) || s.name.starts_with('.') {
                return Err(Error::data(what, format!("bad shard name {:?}", s.name)));
            }
        }
        let total: u64 = self.shards.iter().map(|s| s.examples).sum();
        if total != self.examples.examples {
            return Err(Error::data(
                what,
                format!(
                    "its shards hold {total} examples, its examples {}",
                    self.examples.examples
                ),
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serializable")
    }
}

/// Reads and checks `dir/manifest.json`.
pub fn read_cache_manifest(dir: &Path) -> Result<CacheManifest> {
    let path = dir.join(CACHE_MANIFEST_FILE);
    let text = read_text(&path, "no teacher cache manifest")?;
    CacheManifest::from_json(&text, &path.display().to_string())
}

/// Writes `dir/manifest.json` atomically.
pub fn write_cache_manifest(dir: &Path, m: &CacheManifest) -> Result<()> {
    let path = dir.join(CACHE_MANIFEST_FILE);
    m.check(&path.display().to_string())?;
    write_atomic(&path, m.to_json().as_bytes())?;
    Ok(())
}

/// Checks `text` as a manifest and writes it as it is, atomically (keeps the writer's
/// own formatting).
pub fn write_cache_manifest_text(dir: &Path, text: &str) -> Result<CacheManifest> {
    let path = dir.join(CACHE_MANIFEST_FILE);
    let m = CacheManifest::from_json(text, &path.display().to_string())?;
    write_atomic(&path, text.as_bytes())?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"{
  "format": "wwm-distill/teacher",
  "version": 1,
  "examples": {"path": "ex", "manifest_sha256": "ab", "vocab_sha256": "cd", "examples": 5},
  "teacher": {"name": "t", "dtype": "fp32"},
  "mode": {"name": "topk", "k": 8},
  "shards": [
    {"name": "teacher-00000", "examples": 3, "positions": 9, "entries": 72, "bytes": 100, "sha256": "x"},
    {"name": "teacher-00001", "examples": 2, "positions": 4, "entries": 32, "bytes": 60, "sha256": "y"}
  ],
  "report": {"positions": 13, "mean_tail_mass": 0.25}
}"#;

    #[test]
    fn shard_records_round_trip_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_shard_record(dir.path(), 3).unwrap().is_none());
        let text = r#"{"name": "teacher-00003", "examples": 2, "positions": 4, "entries": 8, "bytes": 9, "sha256": "z", "top1_hits": 1}"#;
        let info = write_shard_record(dir.path(), 3, text).unwrap();
        assert_eq!(
            (info.positions, info.other["top1_hits"].as_u64()),
            (4, Some(1))
        );
        assert_eq!(
            read_shard_record(dir.path(), 3).unwrap().as_deref(),
            Some(text)
        );
        assert!(write_shard_record(dir.path(), 2, text).is_err()); // another shard's name
        assert!(write_shard_record(dir.path(), 3, r#"{"name": "teacher-00003"}"#).is_err());
        std::fs::write(shard_record_path(dir.path(), 5), "{").unwrap();
        assert!(read_shard_record(dir.path(), 5).is_err());
    }

    #[test]
    fn keeps_every_field_and_checks_what_it_types() {
        let dir = tempfile::tempdir().unwrap();
        let m = write_cache_manifest_text(dir.path(), TEXT).unwrap();
        assert_eq!(m.shards[1].name, shard_name(1));
        assert_eq!(m.examples.manifest_sha256, "ab");
        let back = read_cache_manifest(dir.path()).unwrap();
        assert_eq!(back, m);
        let all: Value = serde_json::from_str(TEXT).unwrap();
        let again: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(all, again, "nothing lost");
        write_cache_manifest(dir.path(), &m).unwrap();
        assert_eq!(read_cache_manifest(dir.path()).unwrap(), m);

        let bad = TEXT.replace("\"examples\": 5", "\"examples\": 6");
        assert!(write_cache_manifest_text(dir.path(), &bad).is_err());
        let bad = TEXT.replace("\"version\": 1", "\"version\": 2");
        assert!(CacheManifest::from_json(&bad, "m").is_err());
        let bad = TEXT.replace("teacher-00001", "../x");
        assert!(CacheManifest::from_json(&bad, "m").is_err());
        let e = read_cache_manifest(&dir.path().join("nope")).unwrap_err();
        assert!(e.to_string().contains("no teacher cache manifest"), "{e}");
    }
}
