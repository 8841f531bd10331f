//! `manifest.json` of an examples directory: what prep (or merge) wrote, with which
//! parameters, vocabulary and inputs, the shards with their checksums and the run's report.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{read_text, write_atomic};
use crate::prep::PrepParams;

pub const MANIFEST_FORMAT: &str = "wwm-distill/examples";
pub const MANIFEST_VERSION: u32 = 1;
pub const MANIFEST_FILE: &str = "manifest.json";
/// Malformed-record locations kept in a report.
pub const MAX_LISTED: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    pub name: String,
    pub examples: u64,
    pub tokens: u64,
    pub masked: u64,
    pub bin_bytes: u64,
    pub idx_bytes: u64,
    pub bin_sha256: String,
    pub idx_sha256: String,
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
    /// Seconds from the start of a run until its workers could begin: the vocabulary and
    /// jieba-rs's dictionary built, inputs and output directory checked (summed over
    /// resumed runs).
    #[serde(default)]
    pub setup_s: f64,
    /// Seconds the workers spent on the documents (segment, tokenize, mask), summed over
    /// workers: `work_s / (elapsed_s - setup_s)` is how busy they were.
    #[serde(default)]
    pub work_s: f64,
}

impl Report {
    /// A skipped record (`reason` as named in the report); malformed ones are listed.
    pub fn add_skipped(&mut self, reason: &str, location: String, bad_utf8_lines: u64) {
        self.documents_read += 1;
        self.invalid_utf8_lines += bad_utf8_lines;
        *self.skipped.entry(reason.into()).or_default() += 1;
        if reason == "malformed_json" {
            self.list(location);
        }
    }

    fn list(&mut self, location: String) {
        if self.skipped_examples.len() < MAX_LISTED {
            self.skipped_examples.push(location);
        }
    }

    /// Adds the counts of `other` (a document of this run, or another machine's run):
    /// sums (`work_s` too), the first listed records, and the longer of the two elapsed
    /// and setup times. The one
    /// arithmetic prep (per document) and merge (per run) use.
    pub fn add(&mut self, other: &Report) {
        self.documents_read += other.documents_read;
        self.documents_used += other.documents_used;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for loc in &other.skipped_examples {
            self.list(loc.clone());
        }
        self.invalid_utf8_lines += other.invalid_utf8_lines;
        self.long_document_pieces += other.long_document_pieces;
        self.chars += other.chars;
        self.bytes += other.bytes;
        self.tokens += other.tokens;
        self.unk_tokens += other.unk_tokens;
        self.windows += other.windows;
        self.examples += other.examples;
        self.masked_positions += other.masked_positions;
        self.elapsed_s = self.elapsed_s.max(other.elapsed_s);
        self.setup_s = self.setup_s.max(other.setup_s);
        self.work_s += other.work_s;
    }

    /// `unk_rate` from the counts.
    pub fn set_unk_rate(&mut self) {
        self.unk_rate = if self.tokens > 0 {
            self.unk_tokens as f64 / self.tokens as f64
        } else {
            0.0
        };
    }

    /// The derived fields of a finished run that took `elapsed_s` in all.
    pub fn finish(&mut self, elapsed_s: f64) {
        self.elapsed_s = elapsed_s;
        self.set_unk_rate();
        self.chars_per_s = if elapsed_s > 0.0 {
            self.chars as f64 / elapsed_s
        } else {
            0.0
        };
    }
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

impl Manifest {
    /// A manifest over `shards`, its totals summed from them.
    pub fn new(
        params: PrepParams,
        vocab: VocabInfo,
        inputs: Vec<InputFile>,
        shards: Vec<ShardInfo>,
        report: Report,
    ) -> Self {
        Self {
            format: MANIFEST_FORMAT.into(),
            version: MANIFEST_VERSION,
            tool: format!("wwm-distill {}", env!("CARGO_PKG_VERSION")),
            params,
            vocab,
            inputs,
            examples: shards.iter().map(|s| s.examples).sum(),
            tokens: shards.iter().map(|s| s.tokens).sum(),
            masked: shards.iter().map(|s| s.masked).sum(),
            shards,
            report,
            merged_from: Vec::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("serializable")
    }
}

/// Reads and checks `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST_FILE);
    let text = read_text(&path, "no examples manifest (run distill-prep)")?;
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

/// Writes `dir/manifest.json` atomically.
pub fn write_manifest(dir: &Path, m: &Manifest) -> Result<()> {
    let json = serde_json::to_vec_pretty(m).expect("serializable");
    write_atomic(&dir.join(MANIFEST_FILE), &json)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_add_sums_lists_at_most_max_and_keeps_the_longest_times() {
        let mut a = Report {
            tokens: 10,
            unk_tokens: 1,
            elapsed_s: 3.0,
            ..Default::default()
        };
        for i in 0..15 {
            a.add_skipped("malformed_json", format!("a:{i}"), 1);
        }
        a.setup_s = 0.5;
        a.work_s = 2.0;
        let mut b = a.clone();
        b.elapsed_s = 5.0;
        b.setup_s = 0.25;
        a.add(&b);
        assert_eq!((a.setup_s, a.work_s), (0.5, 4.0));
        assert_eq!(a.tokens, 20);
        assert_eq!(a.documents_read, 30);
        assert_eq!(a.invalid_utf8_lines, 30);
        assert_eq!(a.skipped["malformed_json"], 30);
        assert_eq!(a.skipped_examples.len(), MAX_LISTED);
        assert_eq!(a.elapsed_s, 5.0);
        a.set_unk_rate();
        assert!((a.unk_rate - 0.1).abs() < 1e-12);
        a.finish(2.0);
        assert_eq!(a.chars_per_s, 0.0);
    }
}
