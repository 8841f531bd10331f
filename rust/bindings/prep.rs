//! prep: `PrepConfig` (the options, typed, with the Rust defaults), `PrepProgress`
//! (live counters and cancel), `prep` and `merge`; manifests come back as dicts.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{guarded, to_python, WwmDistillError};
use crate::corpus::DocSep;
use crate::prep::{defaults, PrepConfig, Progress, Settings};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyPrepConfig>()?;
    m.add_class::<PyProgress>()?;
    m.add_function(wrap_pyfunction!(prep, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add("PREP_READER_PARSES_UP_TO", crate::prep::READER_PARSES_UP_TO)?;
    Ok(())
}

/// Everything `distill-prep` takes; keyword defaults are the Rust core's.
#[pyclass(name = "PrepConfig", frozen)]
pub struct PyPrepConfig(PrepConfig);

#[pymethods]
impl PyPrepConfig {
    #[new]
    #[pyo3(signature = (
        inputs, out, vocab, *,
        do_lower_case=None,
        segmenter=defaults::SEGMENTER,
        hmm=defaults::HMM,
        user_dict=None,
        doc_sep=defaults::DOC_SEP.name(),
        text_fields=Vec::new(),
        max_seq_length=defaults::MAX_SEQ_LENGTH,
        doc_stride=defaults::DOC_STRIDE,
        dupe_factor=defaults::DUPE_FACTOR,
        max_predictions_per_seq=defaults::MAX_PREDICTIONS_PER_SEQ,
        masked_lm_prob=defaults::MASKED_LM_PROB,
        short_seq_prob=defaults::SHORT_SEQ_PROB,
        min_chars=defaults::MIN_CHARS,
        max_doc_chars=defaults::MAX_DOC_CHARS,
        seed=defaults::SEED,
        shard_size=defaults::SHARD_SIZE,
        num_shards=defaults::NUM_SHARDS,
        shard_index=defaults::SHARD_INDEX,
        strict=defaults::STRICT,
        workers=defaults::WORKERS,
        chunk_bytes=defaults::CHUNK_BYTES,
        overwrite=defaults::OVERWRITE,
    ))]
    // The same defaults, spelled out for `inspect.signature` and the stub (a test checks
    // them against `defaults()`).
    #[pyo3(
        text_signature = "(inputs, out, vocab, *, do_lower_case=None, segmenter='jieba', \
        hmm=True, user_dict=None, doc_sep='line', text_fields=[], max_seq_length=512, \
        doc_stride=256, dupe_factor=5, max_predictions_per_seq=20, masked_lm_prob=0.15, \
        short_seq_prob=0.0, min_chars=20, max_doc_chars=1000000, seed=12345, \
        shard_size=65536, num_shards=1, shard_index=0, strict=False, workers=0, \
        chunk_bytes=262144, overwrite=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        inputs: Vec<String>,
        out: PathBuf,
        vocab: PathBuf,
        do_lower_case: Option<bool>,
        segmenter: &str,
        hmm: bool,
        user_dict: Option<PathBuf>,
        doc_sep: &str,
        text_fields: Vec<String>,
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
        workers: usize,
        chunk_bytes: usize,
        overwrite: bool,
    ) -> PyResult<Self> {
        let doc_sep = DocSep::parse(doc_sep).ok_or_else(|| {
            WwmDistillError::new_err(format!("--doc-sep {doc_sep:?}: expected line or blank"))
        })?;
        Ok(Self(PrepConfig {
            inputs,
            out,
            vocab,
            do_lower_case,
            user_dict,
            workers,
            chunk_bytes,
            overwrite,
            settings: Settings {
                segmenter: segmenter.to_string(),
                hmm,
                doc_sep,
                text_fields,
                max_seq_length,
                doc_stride,
                dupe_factor,
                max_predictions_per_seq,
                masked_lm_prob,
                short_seq_prob,
                min_chars,
                max_doc_chars,
                seed,
                shard_size,
                num_shards,
                shard_index,
                strict,
            },
        }))
    }

    /// The default of every keyword option (what the CLI offers).
    #[staticmethod]
    fn defaults<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = Self(PrepConfig::new(Vec::new(), PathBuf::new(), PathBuf::new())).to_dict(py)?;
        for required in ["inputs", "out", "vocab"] {
            d.del_item(required)?;
        }
        Ok(d)
    }

    /// Every option, as keyword arguments of the constructor.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.0;
        let d = PyDict::new(py);
        d.set_item("inputs", &c.inputs)?;
        d.set_item("out", c.out.display().to_string())?;
        d.set_item("vocab", c.vocab.display().to_string())?;
        d.set_item("do_lower_case", c.do_lower_case)?;
        d.set_item(
            "user_dict",
            c.user_dict.as_ref().map(|p| p.display().to_string()),
        )?;
        let settings = to_python(py, &c.settings)?;
        d.update(settings.downcast::<pyo3::types::PyMapping>()?)?;
        d.set_item("workers", c.workers)?;
        d.set_item("chunk_bytes", c.chunk_bytes)?;
        d.set_item("overwrite", c.overwrite)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("PrepConfig({})", self.to_dict(py)?.repr()?))
    }
}

/// Live counters of a running `prep`, polled by the Python progress bar.
#[pyclass(name = "PrepProgress", frozen)]
struct PyProgress(Arc<Progress>);

#[pymethods]
impl PyProgress {
    #[new]
    fn new() -> Self {
        Self(Arc::new(Progress::default()))
    }
    #[getter]
    fn input_bytes_total(&self) -> u64 {
        self.0.input_bytes_total.load(Ordering::Relaxed)
    }
    #[getter]
    fn input_bytes_read(&self) -> u64 {
        self.0.input_bytes_read.load(Ordering::Relaxed)
    }
    #[getter]
    fn documents(&self) -> u64 {
        self.0.documents.load(Ordering::Relaxed)
    }
    #[getter]
    fn examples(&self) -> u64 {
        self.0.examples.load(Ordering::Relaxed)
    }
    #[getter]
    fn chars(&self) -> u64 {
        self.0.chars.load(Ordering::Relaxed)
    }
    /// Ask the running job to stop; it raises KeyboardInterrupt.
    fn cancel(&self) {
        self.0.cancel.store(true, Ordering::Relaxed);
    }
}

/// Runs distill-prep (the GIL released); returns the manifest, also written to
/// `config.out/manifest.json`.
#[pyfunction]
fn prep<'py>(
    py: Python<'py>,
    config: &PyPrepConfig,
    progress: &PyProgress,
) -> PyResult<Bound<'py, PyAny>> {
    let cfg = config.0.clone();
    let p = progress.0.clone();
    let m = guarded(py, move || crate::prep::run(&cfg, &p))?;
    to_python(py, &m)
}

/// Combine the outputs of several `--num-shards/--shard-index` runs into `out`; returns
/// the merged manifest.
#[pyfunction]
#[pyo3(signature = (out, dirs, overwrite=false))]
fn merge<'py>(
    py: Python<'py>,
    out: PathBuf,
    dirs: Vec<PathBuf>,
    overwrite: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let m = guarded(py, move || crate::merge::merge(&out, &dirs, overwrite))?;
    to_python(py, &m)
}
