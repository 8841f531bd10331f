//! PyO3 glue: the only module that knows about Python. Errors become
//! `wwm_distill._core.WwmDistillError` (or OSError / KeyboardInterrupt); panics are caught
//! here and never cross into Python as anything but an exception.

#![allow(clippy::type_complexity)] // PyO3 signatures returning tuples of arrays

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use numpy::{IntoPyArray, PyArray1, PyArray2, PyArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::error::Error;
use crate::prep::{PrepConfig, Progress};
use crate::segment::{continuation_marks, Segmenter};
use crate::tokenize::WordPieceTokenizer;

create_exception!(
    _core,
    WwmDistillError,
    PyException,
    "Bad input, arguments or files."
);

fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        Error::Cancelled => PyKeyboardInterrupt::new_err("cancelled"),
        other => WwmDistillError::new_err(other.to_string()),
    }
}

/// Runs `f` without the GIL, turning errors and panics into Python exceptions.
fn guarded<T: Send>(py: Python<'_>, f: impl FnOnce() -> crate::Result<T> + Send) -> PyResult<T> {
    let r = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(e)),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(WwmDistillError::new_err(format!("internal error: {msg}")))
        }
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

/// Run distill-prep. `config_json` holds the CLI options; returns the manifest as JSON.
#[pyfunction]
fn prep(py: Python<'_>, config_json: &str, progress: &PyProgress) -> PyResult<String> {
    let cfg: PrepConfig = serde_json::from_str(config_json)
        .map_err(|e| WwmDistillError::new_err(format!("bad prep configuration: {e}")))?;
    let p = progress.0.clone();
    let m = guarded(py, move || crate::prep::run(&cfg, &p))?;
    Ok(serde_json::to_string_pretty(&m).expect("serializable"))
}

/// Combine the outputs of several `--num-shards/--shard-index` runs into `out`.
#[pyfunction]
#[pyo3(signature = (out, dirs, overwrite=false))]
fn merge(py: Python<'_>, out: PathBuf, dirs: Vec<PathBuf>, overwrite: bool) -> PyResult<String> {
    let m = guarded(py, move || crate::merge::merge(&out, &dirs, overwrite))?;
    Ok(serde_json::to_string_pretty(&m).expect("serializable"))
}

/// The tokenizer and segmenter of a prep run, for inspection and tests.
#[pyclass(name = "TextPipeline", frozen)]
struct PyTextPipeline {
    tok: WordPieceTokenizer,
    seg: Segmenter,
}

#[pymethods]
impl PyTextPipeline {
    #[new]
    #[pyo3(signature = (vocab, segmenter="jieba", hmm=true, user_dict=None, do_lower_case=None))]
    fn new(
        py: Python<'_>,
        vocab: PathBuf,
        segmenter: &str,
        hmm: bool,
        user_dict: Option<PathBuf>,
        do_lower_case: Option<bool>,
    ) -> PyResult<Self> {
        let segmenter = segmenter.to_string();
        guarded(py, move || {
            let tok = WordPieceTokenizer::from_path(&vocab, do_lower_case)?;
            let seg = match segmenter.as_str() {
                "none" => Segmenter::None,
                "jieba" => Segmenter::jieba(hmm, user_dict.as_deref())?,
                s => return Err(Error::Invalid(format!("unknown segmenter {s:?}"))),
            };
            Ok(Self { tok, seg })
        })
    }

    #[getter]
    fn vocab_size(&self) -> usize {
        self.tok.vocab_size()
    }
    #[getter]
    fn vocab_sha256(&self) -> String {
        self.tok.vocab_sha256.clone()
    }
    #[getter]
    fn do_lower_case(&self) -> bool {
        self.tok.do_lower_case
    }

    /// Token ids (uint32) and byte offsets (uint64, [n, 2]) of `text`, no special tokens.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray2<u64>>)> {
        let (ids, offsets) = self.tok.encode(text).map_err(to_py)?;
        let flat: Vec<u64> = offsets
            .iter()
            .flat_map(|&(s, e)| [s as u64, e as u64])
            .collect();
        let offs = flat.into_pyarray(py).reshape([offsets.len(), 2])?;
        Ok((ids.into_pyarray(py), offs))
    }

    /// The segmenter's words.
    fn cut(&self, text: &str) -> Vec<String> {
        self.seg.cut(text).into_iter().map(String::from).collect()
    }

    /// Token ids and whole-word continuation marks, as the prep pipeline computes them.
    fn tokens_and_marks<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> PyResult<(Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<bool>>)> {
        let (ids, offsets) = self.tok.encode(text).map_err(to_py)?;
        let words = self.seg.words(text);
        let marks = continuation_marks(&self.tok, text, &ids, &offsets, &words);
        Ok((ids.into_pyarray(py), marks.into_pyarray(py)))
    }

    fn token(&self, id: u32) -> PyResult<String> {
        if (id as usize) < self.tok.vocab_size() {
            Ok(self.tok.token(id).to_string())
        } else {
            Err(WwmDistillError::new_err(format!("id {id} out of range")))
        }
    }

    /// Ids a random replacement may take (all but `[...]` tokens).
    fn replacement_ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        self.tok.replacement_ids().to_vec().into_pyarray(py)
    }
}

/// Single-threaded seconds spent by the bare components on `texts`: jieba-rs cut and
/// tokenizers encode. The practical speed limit of the prep pipeline.
#[pyfunction]
#[pyo3(signature = (vocab, texts, hmm=true))]
fn bench_components<'py>(
    py: Python<'py>,
    vocab: PathBuf,
    texts: Vec<String>,
    hmm: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let (jieba_s, tokenize_s, chars) = guarded(py, move || {
        let tok = WordPieceTokenizer::from_path(Path::new(&vocab), None)?;
        let seg = Segmenter::jieba(hmm, None)?;
        let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
        let t = Instant::now();
        let mut words = 0usize;
        for text in &texts {
            words += seg.words(text).len();
        }
        let jieba_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut tokens = 0usize;
        for text in &texts {
            tokens += tok.encode(text)?.0.len();
        }
        let tokenize_s = t.elapsed().as_secs_f64();
        std::hint::black_box((words, tokens));
        Ok((jieba_s, tokenize_s, chars))
    })?;
    let d = PyDict::new(py);
    d.set_item("jieba_s", jieba_s)?;
    d.set_item("tokenize_s", tokenize_s)?;
    d.set_item("chars", chars)?;
    Ok(d)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WwmDistillError", m.py().get_type::<WwmDistillError>())?;
    m.add_class::<PyProgress>()?;
    m.add_class::<PyTextPipeline>()?;
    m.add_function(wrap_pyfunction!(prep, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(bench_components, m)?)?;
    Ok(())
}
