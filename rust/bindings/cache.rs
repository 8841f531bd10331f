//! Teacher caches: `CacheWriter` / `CacheReader` (one `.tkc` shard), `TeacherCache` (a
//! whole cache directory, by global example index) and the cache manifest functions.

use std::path::PathBuf;
use std::sync::Mutex;

use numpy::{
    IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{guarded, json_text, to_py, to_python, WwmDistillError};
use crate::cache::{
    self, CacheManifest, CacheParams, CacheReader, CacheWriter, Chunk, Gathered, Mode, TeacherCache,
};
use crate::error::Error;

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("CACHE_DEFAULT_STEP", decimal(cache::DEFAULT_STEP))?;
    m.add("CACHE_MAX_STEP", decimal(cache::MAX_STEP))?;
    m.add_class::<PyCacheWriter>()?;
    m.add_class::<PyCacheReader>()?;
    m.add_class::<PyTeacherCache>()?;
    m.add_function(wrap_pyfunction!(read_cache_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(write_cache_manifest, m)?)?;
    m.add_function(wrap_pyfunction!(cache_shard_name, m)?)?;
    m.add_function(wrap_pyfunction!(cache_shard_path, m)?)?;
    m.add_function(wrap_pyfunction!(write_cache_shard_record, m)?)?;
    m.add_function(wrap_pyfunction!(read_cache_shard_record, m)?)?;
    Ok(())
}

/// The shortest decimal that reads back as `x`, as a Python float (0.05, not
/// 0.05000000074505806, for an `f32` constant).
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

/// Writes one teacher-cache shard (`.tkc`). `push` releases the GIL, so a Python thread
/// can encode and write while the teacher computes the next batch.
#[pyclass(name = "CacheWriter", frozen)]
struct PyCacheWriter(Mutex<Option<CacheWriter>>);

#[pymethods]
impl PyCacheWriter {
    #[new]
    #[pyo3(signature = (path, mode, k_max, id_bytes=2, step=cache::DEFAULT_STEP, sample_n=0, block_examples=256, level=None, format_version=cache::VERSION))]
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

fn gathered_dict<'py>(py: Python<'py>, g: Gathered) -> PyResult<Bound<'py, PyDict>> {
    let (n, w) = (g.n, g.width);
    let d = PyDict::new(py);
    d.set_item("ids", g.ids.into_pyarray(py).reshape([n, w])?)?;
    d.set_item("logp", g.logp.into_pyarray(py).reshape([n, w])?)?;
    d.set_item("tail", g.tail.into_pyarray(py))?;
    d.set_item("counts", g.counts.into_pyarray(py))?;
    Ok(d)
}

/// A teacher-cache directory (its manifest and one reader per shard), addressed by global
/// example index; with `examples`, checks that the cache was made from them.
#[pyclass(name = "TeacherCache", frozen)]
struct PyTeacherCache(TeacherCache);

#[pymethods]
impl PyTeacherCache {
    #[new]
    #[pyo3(signature = (dir, examples=None))]
    fn new(py: Python<'_>, dir: PathBuf, examples: Option<PathBuf>) -> PyResult<Self> {
        let c = guarded(py, move || {
            let c = TeacherCache::open(&dir)?;
            if let Some(ex) = &examples {
                c.check_examples(ex)?;
            }
            Ok(c)
        })?;
        Ok(Self(c))
    }

    fn __len__(&self) -> usize {
        self.0.len() as usize
    }

    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.0.manifest)
    }

    /// Refuses examples other than those the cache was made from.
    fn check_examples(&self, py: Python<'_>, examples: PathBuf) -> PyResult<()> {
        let c = &self.0;
        guarded(py, move || c.check_examples(&examples))
    }

    /// The positions of the examples (global indices, in order): ids / logp `[N, k]`
    /// padded to the largest k of the request (0 / −inf), tail `[N]`, entry counts `[N]`.
    fn gather<'py>(&self, py: Python<'py>, indices: Vec<u64>) -> PyResult<Bound<'py, PyDict>> {
        let c = &self.0;
        let g = guarded(py, move || c.gather(&indices))?;
        gathered_dict(py, g)
    }
}

/// `dir/manifest.json` of a teacher cache, checked, as a dict.
#[pyfunction]
fn read_cache_manifest<'py>(py: Python<'py>, dir: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let m = guarded(py, move || cache::read_cache_manifest(&dir))?;
    to_python(py, &m)
}

/// Stamps the format and version (first, unless `manifest` names them itself), checks
/// the result (format, version, shards) and writes it to `dir/manifest.json` atomically,
/// as `json.dumps(manifest, indent=2)`; returns the manifest as written.
#[pyfunction]
fn write_cache_manifest<'py>(
    py: Python<'py>,
    dir: PathBuf,
    manifest: Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let stamped = PyDict::new(py);
    stamped.set_item("format", cache::manifest::CACHE_FORMAT)?;
    stamped.set_item("version", cache::manifest::CACHE_VERSION)?;
    for (k, v) in manifest.iter() {
        stamped.set_item(k, v)?;
    }
    let text = json_text(stamped.as_any(), Some(2))?;
    guarded(py, move || {
        cache::manifest::write_cache_manifest_text(&dir, &text).map(|_: CacheManifest| ())
    })?;
    Ok(stamped)
}

/// `dir/teacher-NNNNN.tkc`: the cache shard of example shard `k`.
#[pyfunction]
fn cache_shard_path(dir: PathBuf, k: usize) -> PathBuf {
    cache::manifest::shard_path(&dir, &cache::shard_name(k))
}

/// Writes the completion record of cache shard `k` (`teacher-NNNNN.json`: `CacheWriter.
/// finish`'s dict plus `name` and what the teacher pass adds) atomically.
#[pyfunction]
fn write_cache_shard_record(
    py: Python<'_>,
    dir: PathBuf,
    k: usize,
    record: Bound<'_, PyDict>,
) -> PyResult<()> {
    let text = json_text(record.as_any(), None)?;
    guarded(py, move || {
        cache::manifest::write_shard_record(&dir, k, &text).map(|_| ())
    })
}

/// The completion record of cache shard `k`, or None while the shard is unfinished.
#[pyfunction]
fn read_cache_shard_record<'py>(
    py: Python<'py>,
    dir: PathBuf,
    k: usize,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    match guarded(py, move || cache::manifest::read_shard_record(&dir, k))? {
        None => Ok(None),
        Some(text) => Ok(Some(py.import("json")?.call_method1("loads", (text,))?)),
    }
}

/// The name (no extension) of the cache shard of example shard `k`: `teacher-NNNNN`.
#[pyfunction]
fn cache_shard_name(k: usize) -> String {
    cache::shard_name(k)
}
