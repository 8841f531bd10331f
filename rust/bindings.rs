//! PyO3 glue: the only module that knows about Python. Errors become
//! `wwm_distill._core.WwmDistillError` (or OSError / KeyboardInterrupt); panics are caught
//! here and never cross into Python as anything but an exception.

#![allow(clippy::type_complexity)] // PyO3 signatures returning tuples of arrays

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::batch::{Batch, Dataset, Loader};
use crate::cache::{self, CacheParams, CacheReader, CacheWriter, Chunk, Mode};
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
            Err(to_py(Error::Internal(msg)))
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
    Ok(m.to_json())
}

/// Combine the outputs of several `--num-shards/--shard-index` runs into `out`.
#[pyfunction]
#[pyo3(signature = (out, dirs, overwrite=false))]
fn merge(py: Python<'_>, out: PathBuf, dirs: Vec<PathBuf>, overwrite: bool) -> PyResult<String> {
    let m = guarded(py, move || crate::merge::merge(&out, &dirs, overwrite))?;
    Ok(m.to_json())
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

/// CPU time of the calling thread in seconds (Linux schedstat), or `None` elsewhere.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

/// Single-threaded seconds spent by the bare components on `texts`: jieba-rs cut
/// (`jieba_s`), our WordPiece encode (`tokenize_s`, with its fast path) and the
/// `tokenizers` BERT pipeline alone (`pipeline_s`); wall time, and the thread's CPU time
/// as `*_cpu_s` where the OS reports it (steady when other processes share the cores).
/// jieba-rs is the floor of the prep pipeline.
#[pyfunction]
#[pyo3(signature = (vocab, texts, hmm=true))]
fn bench_components<'py>(
    py: Python<'py>,
    vocab: PathBuf,
    texts: Vec<String>,
    hmm: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let (times, chars) = guarded(py, move || {
        let tok = WordPieceTokenizer::from_path(Path::new(&vocab), None)?;
        let seg = Segmenter::jieba(hmm, None)?;
        let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
        let mut times = Vec::new();
        let mut count = 0usize;
        let mut timed = |name: &'static str, f: &mut dyn FnMut() -> crate::error::Result<usize>| {
            let (t, c) = (Instant::now(), thread_cpu_s());
            count += f()?;
            let cpu = c.and_then(|c| Some(thread_cpu_s()? - c));
            times.push((name, t.elapsed().as_secs_f64(), cpu));
            Ok::<_, Error>(())
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
        std::hint::black_box(count);
        Ok((times, chars))
    })?;
    let d = PyDict::new(py);
    for (name, wall, cpu) in times {
        d.set_item(format!("{name}_s"), wall)?;
        if let Some(cpu) = cpu {
            d.set_item(format!("{name}_cpu_s"), cpu)?;
        }
    }
    d.set_item("chars", chars)?;
    Ok(d)
}

/// Writes one teacher-cache shard (`.tkc`). `push` releases the GIL, so a Python thread
/// can encode and write while the teacher computes the next batch.
#[pyclass(name = "CacheWriter", frozen)]
struct PyCacheWriter(Mutex<Option<CacheWriter>>);

#[pymethods]
impl PyCacheWriter {
    #[new]
    #[pyo3(signature = (path, mode, k_max, id_bytes=2, step=0.019, sample_n=0, block_examples=256, level=None, format_version=cache::VERSION))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: PathBuf,
        mode: &str,
        k_max: usize,
        id_bytes: usize,
        step: f32,
        sample_n: u32,
        block_examples: usize,
        level: Option<i32>,
        format_version: u32,
    ) -> PyResult<Self> {
        let level = level.unwrap_or_else(|| cache::default_level(format_version));
        let params = CacheParams {
            mode: Mode::parse(mode).map_err(to_py)?,
            id_bytes,
            k_max,
            step,
            sample_n,
        };
        let w = CacheWriter::create_version(&path, params, block_examples, level, format_version)
            .map_err(to_py)?;
        Ok(Self(Mutex::new(Some(w))))
    }

    /// Append the outputs of consecutive examples. `ids`, `logp` (or `counts` in sample
    /// mode) are `[P, W]` with the first `k[p]` entries of row `p` valid, sorted by
    /// decreasing probability (count).
    #[pyo3(signature = (positions_per_example, k, ids, tail, logp=None, counts=None))]
    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        py: Python<'_>,
        positions_per_example: PyReadonlyArray1<u16>,
        k: PyReadonlyArray1<u16>,
        ids: PyReadonlyArray2<i64>,
        tail: PyReadonlyArray1<f32>,
        logp: Option<PyReadonlyArray2<f32>>,
        counts: Option<PyReadonlyArray2<u16>>,
    ) -> PyResult<()> {
        let width = ids.shape()[1];
        let ppe = positions_per_example.as_slice()?;
        let k = k.as_slice()?;
        let ids_s = ids.as_slice()?;
        let tail = tail.as_slice()?;
        let logp_s: &[f32] = match &logp {
            Some(a) => a.as_slice()?,
            None => &[],
        };
        let counts_s: &[u16] = match &counts {
            Some(a) => a.as_slice()?,
            None => &[],
        };
        let chunk = Chunk {
            positions_per_example: ppe,
            k,
            width,
            ids: ids_s,
            logp: logp_s,
            counts: counts_s,
            tail,
        };
        let cell = &self.0;
        guarded(py, move || {
            let mut guard = cell.lock().unwrap();
            let w = guard
                .as_mut()
                .ok_or_else(|| Error::Invalid("cache writer already finished".into()))?;
            w.push(&chunk)
        })
    }

    /// Write the index and footer, rename into place; returns counts, bytes and sha256.
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let w = self
            .0
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| WwmDistillError::new_err("cache writer already finished"))?;
        let info = guarded(py, move || w.finish())?;
        let d = PyDict::new(py);
        d.set_item("examples", info.examples)?;
        d.set_item("positions", info.positions)?;
        d.set_item("entries", info.entries)?;
        d.set_item("bytes", info.bytes)?;
        d.set_item("sha256", info.sha256)?;
        Ok(d)
    }
}

/// Reads one teacher-cache shard: memory-mapped, decodes only the blocks it needs.
#[pyclass(name = "CacheReader", frozen)]
struct PyCacheReader(CacheReader);

#[pymethods]
impl PyCacheReader {
    #[new]
    #[pyo3(signature = (path, lru_blocks=16))]
    fn new(path: PathBuf, lru_blocks: usize) -> PyResult<Self> {
        Ok(Self(CacheReader::open(&path, lru_blocks).map_err(to_py)?))
    }
    #[getter]
    fn n_examples(&self) -> u64 {
        self.0.n_examples
    }
    #[getter]
    fn n_positions(&self) -> u64 {
        self.0.n_positions
    }
    #[getter]
    fn n_blocks(&self) -> usize {
        self.0.n_blocks()
    }
    #[getter]
    fn mode(&self) -> &'static str {
        self.0.params.mode.name()
    }
    /// Format version of the file (1 or 2).
    #[getter]
    fn version(&self) -> u32 {
        self.0.version
    }
    #[getter]
    fn k_max(&self) -> usize {
        self.0.params.k_max
    }
    #[getter]
    fn step(&self) -> f32 {
        self.0.params.step
    }
    #[getter]
    fn sample_n(&self) -> u32 {
        self.0.params.sample_n
    }

    /// Masked positions of each example.
    fn positions_of<'py>(
        &self,
        py: Python<'py>,
        examples: PyReadonlyArray1<u64>,
    ) -> PyResult<Bound<'py, PyArray1<u32>>> {
        let ex = examples.as_slice()?;
        let r = &self.0;
        let v = guarded(py, move || r.positions_of(ex))?;
        Ok(v.into_pyarray(py))
    }

    /// The positions of `examples`, in order: ids int64 `[N, k]`, log-probs float32
    /// `[N, k]` (−inf padding; log(count / n) in sample mode), tail `[N]`, entry counts `[N]`.
    fn gather<'py>(
        &self,
        py: Python<'py>,
        examples: PyReadonlyArray1<u64>,
    ) -> PyResult<(
        Bound<'py, PyArray2<i64>>,
        Bound<'py, PyArray2<f32>>,
        Bound<'py, PyArray1<f32>>,
        Bound<'py, PyArray1<i32>>,
    )> {
        let ex = examples.as_slice()?;
        let r = &self.0;
        let g = guarded(py, move || r.gather(ex))?;
        let (n, w) = (g.n, g.width);
        Ok((
            g.ids.into_pyarray(py).reshape([n, w])?,
            g.logp.into_pyarray(py).reshape([n, w])?,
            g.tail.into_pyarray(py),
            g.counts.into_pyarray(py),
        ))
    }
}

fn batch_to_dict<'py>(py: Python<'py>, b: Batch) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let (r, w, n, k) = (b.rows, b.width, b.masked_rows.len(), b.k);
    d.set_item("input_ids", b.input_ids.into_pyarray(py).reshape([r, w])?)?;
    d.set_item(
        "attention_mask",
        b.attention_mask.into_pyarray(py).reshape([r, w])?,
    )?;
    d.set_item("masked_rows", b.masked_rows.into_pyarray(py))?;
    d.set_item("masked_positions", b.masked_positions.into_pyarray(py))?;
    d.set_item("masked_labels", b.masked_labels.into_pyarray(py))?;
    if k > 0 {
        d.set_item(
            "teacher_ids",
            b.teacher_ids.into_pyarray(py).reshape([n, k])?,
        )?;
        d.set_item(
            "teacher_logp",
            b.teacher_logp.into_pyarray(py).reshape([n, k])?,
        )?;
        d.set_item("teacher_tail", b.teacher_tail.into_pyarray(py))?;
        d.set_item("teacher_counts", b.teacher_counts.into_pyarray(py))?;
    }
    Ok(d)
}

/// Examples plus (optionally) their teacher cache, addressed by global example index.
#[pyclass(name = "Batches", frozen)]
struct PyBatches(Arc<Dataset>);

#[pymethods]
impl PyBatches {
    #[new]
    #[pyo3(signature = (examples, cache=None))]
    fn new(py: Python<'_>, examples: PathBuf, cache: Option<PathBuf>) -> PyResult<Self> {
        let d = guarded(py, move || Dataset::open(&examples, cache.as_deref()))?;
        Ok(Self(Arc::new(d)))
    }

    fn __len__(&self) -> usize {
        self.0.len() as usize
    }

    /// One padded batch (numpy arrays; `torch.from_numpy` shares their memory).
    #[pyo3(signature = (indices, multiple_of=8))]
    fn assemble<'py>(
        &self,
        py: Python<'py>,
        indices: PyReadonlyArray1<u64>,
        multiple_of: usize,
    ) -> PyResult<Bound<'py, PyDict>> {
        let idx = indices.as_slice()?;
        let d = &self.0;
        let b = guarded(py, move || d.assemble(idx, multiple_of))?;
        batch_to_dict(py, b)
    }

    /// Batches of a fixed plan, assembled ahead in background threads, in plan order.
    #[pyo3(signature = (plan, multiple_of=8, prefetch=4, threads=2))]
    fn loader(
        &self,
        plan: Vec<PyReadonlyArray1<u64>>,
        multiple_of: usize,
        prefetch: usize,
        threads: usize,
    ) -> PyResult<PyLoader> {
        let plan: Vec<Vec<u64>> = plan
            .iter()
            .map(|a| a.as_slice().map(|s| s.to_vec()))
            .collect::<Result<_, _>>()?;
        Ok(PyLoader(Mutex::new(Loader::new(
            self.0.clone(),
            plan,
            multiple_of,
            prefetch,
            threads,
        ))))
    }
}

#[pyclass(name = "BatchLoader", frozen)]
struct PyLoader(Mutex<Loader>);

#[pymethods]
impl PyLoader {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let cell = &self.0;
        let next = guarded(py, move || Ok(cell.lock().unwrap().next_batch()))?;
        match next {
            None => Ok(None),
            Some(Ok(b)) => batch_to_dict(py, b).map(Some),
            Some(Err(e)) => Err(to_py(e)),
        }
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WwmDistillError", m.py().get_type::<WwmDistillError>())?;
    m.add_class::<PyProgress>()?;
    m.add_class::<PyTextPipeline>()?;
    m.add_class::<PyCacheWriter>()?;
    m.add_class::<PyCacheReader>()?;
    m.add_class::<PyBatches>()?;
    m.add_class::<PyLoader>()?;
    m.add_function(wrap_pyfunction!(prep, m)?)?;
    m.add_function(wrap_pyfunction!(merge, m)?)?;
    m.add_function(wrap_pyfunction!(bench_components, m)?)?;
    Ok(())
}
