//! What `distill-prep` takes: the options, their defaults (named constants, shared with the
//! Python CLI through the bindings), their validation, and the part of them a run records
//! in its manifest and progress file ([`PrepParams`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::corpus::{DocSep, ReaderConfig};
use crate::error::{Error, Result};

/// The default of every option.
pub mod defaults {
    use crate::corpus::DocSep;

    pub const SEGMENTER: &str = "jieba";
    pub const HMM: bool = true;
    pub const DOC_SEP: DocSep = DocSep::Line;
    pub const MAX_SEQ_LENGTH: usize = 512;
    pub const DOC_STRIDE: usize = 256;
    pub const DUPE_FACTOR: usize = 5;
    pub const MAX_PREDICTIONS_PER_SEQ: usize = 20;
    pub const MASKED_LM_PROB: f64 = 0.15;
    pub const SHORT_SEQ_PROB: f64 = 0.0;
    pub const MIN_CHARS: usize = 20;
    pub const MAX_DOC_CHARS: usize = 1_000_000;
    pub const SEED: u64 = 12345;
    pub const SHARD_SIZE: usize = 65536;
    pub const NUM_SHARDS: usize = 1;
    pub const SHARD_INDEX: usize = 0;
    pub const STRICT: bool = false;
    /// Worker threads; 0 = one per core.
    pub const WORKERS: usize = 0;
    /// Text per chunk a worker takes at a time (the output does not depend on it).
    pub const CHUNK_BYTES: usize = 256 << 10;
    pub const OVERWRITE: bool = false;
}

/// The options that define the output (recorded in the manifest; a rerun must match
/// them to resume).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub segmenter: String,
    pub hmm: bool,
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

impl Default for Settings {
    fn default() -> Self {
        use defaults::*;
        Self {
            segmenter: SEGMENTER.into(),
            hmm: HMM,
            doc_sep: DOC_SEP,
            text_fields: Vec::new(),
            max_seq_length: MAX_SEQ_LENGTH,
            doc_stride: DOC_STRIDE,
            dupe_factor: DUPE_FACTOR,
            max_predictions_per_seq: MAX_PREDICTIONS_PER_SEQ,
            masked_lm_prob: MASKED_LM_PROB,
            short_seq_prob: SHORT_SEQ_PROB,
            min_chars: MIN_CHARS,
            max_doc_chars: MAX_DOC_CHARS,
            seed: SEED,
            shard_size: SHARD_SIZE,
            num_shards: NUM_SHARDS,
            shard_index: SHARD_INDEX,
            strict: STRICT,
        }
    }
}

impl Settings {
    /// What the reader of the inputs needs of these settings.
    pub fn reader_config(&self) -> ReaderConfig {
        ReaderConfig {
            doc_sep: self.doc_sep,
            text_fields: self.text_fields.clone(),
            min_chars: self.min_chars,
            max_doc_chars: self.max_doc_chars,
            strict: self.strict,
        }
    }
}

fn chunk_bytes_default() -> usize {
    defaults::CHUNK_BYTES
}

/// Everything `distill-prep` takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepConfig {
    pub inputs: Vec<String>,
    pub out: PathBuf,
    pub vocab: PathBuf,
    /// `None`: the model's tokenizer_config.json, else true.
    #[serde(default)]
    pub do_lower_case: Option<bool>,
    #[serde(default)]
    pub user_dict: Option<PathBuf>,
    #[serde(default)]
    pub workers: usize,
    #[serde(default = "chunk_bytes_default")]
    pub chunk_bytes: usize,
    #[serde(default)]
    pub overwrite: bool,
    #[serde(flatten)]
    pub settings: Settings,
}

impl PrepConfig {
    /// A configuration with every option at its default.
    pub fn new(inputs: Vec<String>, out: PathBuf, vocab: PathBuf) -> Self {
        Self {
            inputs,
            out,
            vocab,
            do_lower_case: None,
            user_dict: None,
            workers: defaults::WORKERS,
            chunk_bytes: defaults::CHUNK_BYTES,
            overwrite: defaults::OVERWRITE,
            settings: Settings::default(),
        }
    }

    /// Refuses options out of range, with the CLI's option names.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Invalid(m));
        let s = &self.settings;
        if self.inputs.is_empty() {
            return bad("no input files given".into());
        }
        if self.chunk_bytes == 0 {
            return bad("--chunk-bytes must be at least 1".into());
        }
        if !(3..=65535).contains(&s.max_seq_length) {
            return bad(format!(
                "--max-seq-length {} must be in 3..65535",
                s.max_seq_length
            ));
        }
        if s.doc_stride == 0 || s.doc_stride > s.max_seq_length - 2 {
            return bad(format!(
                "--doc-stride {} must be in 1..{} (max-seq-length - 2)",
                s.doc_stride,
                s.max_seq_length - 2
            ));
        }
        if s.dupe_factor == 0 || s.max_predictions_per_seq == 0 || s.shard_size == 0 {
            return bad(
                "--dupe-factor, --max-predictions-per-seq and --shard-size must be ≥ 1".into(),
            );
        }
        if !(s.masked_lm_prob > 0.0 && s.masked_lm_prob <= 1.0) {
            return bad(format!(
                "--masked-lm-prob {} must be in (0, 1]",
                s.masked_lm_prob
            ));
        }
        if !(0.0..=1.0).contains(&s.short_seq_prob) {
            return bad(format!(
                "--short-seq-prob {} must be in [0, 1]",
                s.short_seq_prob
            ));
        }
        if s.num_shards == 0 || s.shard_index >= s.num_shards {
            return bad(format!(
                "--shard-index {} must be below --num-shards {}",
                s.shard_index, s.num_shards
            ));
        }
        if !matches!(s.segmenter.as_str(), "jieba" | "none") {
            return bad(format!(
                "--segmenter {:?}: expected jieba or none",
                s.segmenter
            ));
        }
        if s.max_doc_chars < 1000 {
            return bad("--max-doc-chars must be ≥ 1000".into());
        }
        Ok(())
    }
}

/// The parameters that define the output, as the manifest and progress record hold
/// them: the [`Settings`] plus what was resolved from the files they name.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct PrepParams {
    pub vocab_sha256: String,
    pub do_lower_case: bool,
    pub user_dict_sha256: Option<String>,
    #[serde(flatten)]
    pub settings: Settings,
    /// [`crate::masking::MASKING_VERSION`] of the run; absent (1) in manifests written
    /// before the lazily drawn order.
    #[serde(default = "first_version")]
    pub masking_version: u32,
    /// The example shard format written ([`crate::examples::format::IDX_VERSION`]);
    /// absent (1) in manifests written before documents were stored once per shard. A
    /// resumed run does not mix two formats in one directory.
    #[serde(default = "first_version")]
    pub shard_version: u32,
}

fn first_version() -> u32 {
    1
}

/// The on-disk field order of [`PrepParams`] (older manifests list them so).
#[derive(Serialize)]
struct ParamsWire<'a> {
    vocab_sha256: &'a str,
    do_lower_case: bool,
    segmenter: &'a str,
    hmm: bool,
    user_dict_sha256: &'a Option<String>,
    doc_sep: DocSep,
    text_fields: &'a [String],
    max_seq_length: usize,
    doc_stride: usize,
    dupe_factor: usize,
    max_predictions_per_seq: usize,
    masked_lm_prob: f64,
    short_seq_prob: f64,
    min_chars: usize,
    max_doc_chars: usize,
    seed: u64,
    shard_size: usize,
    num_shards: usize,
    shard_index: usize,
    strict: bool,
    masking_version: u32,
    shard_version: u32,
}

impl Serialize for PrepParams {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> std::result::Result<S::Ok, S::Error> {
        let s = &self.settings;
        ParamsWire {
            vocab_sha256: &self.vocab_sha256,
            do_lower_case: self.do_lower_case,
            segmenter: &s.segmenter,
            hmm: s.hmm,
            user_dict_sha256: &self.user_dict_sha256,
            doc_sep: s.doc_sep,
            text_fields: &s.text_fields,
            max_seq_length: s.max_seq_length,
            doc_stride: s.doc_stride,
            dupe_factor: s.dupe_factor,
            max_predictions_per_seq: s.max_predictions_per_seq,
            masked_lm_prob: s.masked_lm_prob,
            short_seq_prob: s.short_seq_prob,
            min_chars: s.min_chars,
            max_doc_chars: s.max_doc_chars,
            seed: s.seed,
            shard_size: s.shard_size,
            num_shards: s.num_shards,
            shard_index: s.shard_index,
            strict: s.strict,
            masking_version: self.masking_version,
            shard_version: self.shard_version,
        }
        .serialize(ser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_takes_defaults_and_refuses_unknown_options() {
        let c: PrepConfig =
            serde_json::from_str(r#"{"inputs": ["a.txt"], "out": "o", "vocab": "v", "seed": 7}"#)
                .unwrap();
        assert_eq!(c.settings.seed, 7);
        assert_eq!(c.settings.max_seq_length, defaults::MAX_SEQ_LENGTH);
        assert_eq!(c.workers, defaults::WORKERS);
        c.validate().unwrap();
        let e = serde_json::from_str::<PrepConfig>(
            r#"{"inputs": ["a.txt"], "out": "o", "vocab": "v", "sede": 7}"#,
        );
        assert!(e.is_err());
        let mut c = PrepConfig::new(vec!["a".into()], "o".into(), "v".into());
        c.settings.doc_stride = 511;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--doc-stride"));
    }

    #[test]
    fn params_serialize_in_the_recorded_order_and_read_back() {
        let p = PrepParams {
            vocab_sha256: "ab".into(),
            do_lower_case: true,
            user_dict_sha256: None,
            settings: Settings::default(),
            masking_version: crate::masking::MASKING_VERSION,
            shard_version: crate::examples::format::IDX_VERSION,
        };
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.starts_with(
            r#"{"vocab_sha256":"ab","do_lower_case":true,"segmenter":"jieba","hmm":true,"user_dict_sha256":null,"doc_sep":"line","text_fields":[],"max_seq_length":512,"#
        ), "{json}");
        assert!(
            json.ends_with(r#""num_shards":1,"shard_index":0,"strict":false,"masking_version":2,"shard_version":2}"#),
            "{json}"
        );
        let back: PrepParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        // A manifest from before the field records the first masking procedure.
        let old = json.replace(r#","masking_version":2,"shard_version":2"#, "");
        let back: PrepParams = serde_json::from_str(&old).unwrap();
        assert_eq!((back.masking_version, back.shard_version), (1, 1));
    }
}
