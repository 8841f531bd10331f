//! `Examples` (an examples directory: manifest + shards, by global index) and
//! `ExamplesShard` (one shard): numpy views that borrow the memory maps, kept alive by
//! the Python object that owns them.

use std::path::PathBuf;

use numpy::ndarray::ArrayView1;
use numpy::{Element, PyArray1};
use pyo3::exceptions::PyIndexError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use super::{guarded, to_python};
use crate::examples::{read_manifest, Ids, Manifest, Shard, ShardInfo};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyExamples>()?;
    m.add_class::<PyExamplesShard>()?;
    m.add_function(wrap_pyfunction!(read_examples_manifest, m)?)?;
    Ok(())
}

/// A read-only numpy view of `data`, which `owner` keeps alive.
fn view<'py, T: Element>(data: &[T], owner: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayView1::from(data);
    // SAFETY: `data` lies in a memory map owned by `owner` (a frozen pyclass that never
    // replaces or unmaps it); the array holds a reference to `owner` as its base.
    let arr = unsafe { PyArray1::borrow_from_array(&a, owner.clone()) }.into_any();
    arr.getattr("flags")?.setattr("writeable", false)?;
    Ok(arr)
}

fn ids_view<'py>(ids: Ids<'_>, owner: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    match ids {
        Ids::U16(s) => view(s, owner),
        Ids::U32(s) => view(s, owner),
    }
}

fn index(i: isize, len: usize, what: &str) -> PyResult<usize> {
    let j = if i < 0 { i + len as isize } else { i };
    if j < 0 || j as usize >= len {
        return Err(PyIndexError::new_err(format!(
            "{what} {i} out of range ({len} examples)"
        )));
    }
    Ok(j as usize)
}

/// One `examples-NNNNN.{bin,idx}` pair, memory-mapped: every array is a read-only view.
#[pyclass(name = "ExamplesShard", frozen)]
struct PyExamplesShard {
    shard: Shard,
    info: ShardInfo,
}

#[pymethods]
impl PyExamplesShard {
    #[getter]
    fn name(&self) -> &str {
        &self.info.name
    }
    /// The shard's entry in the manifest.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.info)
    }
    #[getter]
    fn n(&self) -> usize {
        self.shard.n
    }
    fn __len__(&self) -> usize {
        self.shard.n
    }
    /// Token width in bytes (2: uint16 ids, 4: uint32).
    #[getter]
    fn token_bytes(&self) -> usize {
        self.shard.token_bytes
    }
    /// The shard's format version (1 or 2; see docs/FORMATS.md).
    #[getter]
    fn version(&self) -> u32 {
        self.shard.version()
    }
    /// The `.bin`'s token section: the documents' unmasked tokens (version 2) or every
    /// example's masked input_ids (version 1).
    #[getter]
    fn tokens<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ids_view(slf.get().shard.all_tokens(), slf.as_any())
    }
    /// One id per masked position: the input id there (version 2) or the label (1).
    #[getter]
    fn masked_ids<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        ids_view(slf.get().shard.all_masked_ids(), slf.as_any())
    }
    #[getter]
    fn positions<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.all_positions(), slf.as_any())
    }
    /// `token_starts` (version 2, one per example) or `token_offsets` (version 1, one more).
    #[getter]
    fn token_index<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.token_index(), slf.as_any())
    }
    /// Length of every example's input_ids, with [CLS] and [SEP] (a new array).
    #[getter]
    fn lengths<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u32>> {
        let s = &self.shard;
        PyArray1::from_iter(py, (0..s.n).map(|i| s.input_len(i) as u32))
    }
    #[getter]
    fn mask_offsets<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.mask_offsets(), slf.as_any())
    }
    #[getter]
    fn line<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.lines(), slf.as_any())
    }
    #[getter]
    fn file<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.files(), slf.as_any())
    }
    #[getter]
    fn piece<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.pieces(), slf.as_any())
    }
    #[getter]
    fn window<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.windows(), slf.as_any())
    }
    #[getter]
    fn dupe<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        view(slf.get().shard.dupes(), slf.as_any())
    }

    /// Example `i`: input_ids and masked_labels (new arrays in the token width),
    /// masked_positions (a view) and provenance.
    fn __getitem__<'py>(slf: &Bound<'py, Self>, i: isize) -> PyResult<Bound<'py, PyDict>> {
        let s = &slf.get().shard;
        let i = index(i, s.n, "example")?;
        let py = slf.py();
        let ids_array = |ids: &[u32]| -> Bound<'py, PyAny> {
            if s.token_bytes == 2 {
                PyArray1::from_iter(py, ids.iter().map(|&x| x as u16)).into_any()
            } else {
                PyArray1::from_slice(py, ids).into_any()
            }
        };
        let (mut input_ids, mut labels) = (Vec::new(), Vec::new());
        s.input_ids_into(i, &mut input_ids);
        s.labels_into(i, &mut labels);
        let d = PyDict::new(py);
        d.set_item("input_ids", ids_array(&input_ids))?;
        d.set_item("masked_positions", view(s.positions(i), slf.as_any())?)?;
        d.set_item("masked_labels", ids_array(&labels))?;
        d.set_item("file", s.files()[i])?;
        d.set_item("line", s.lines()[i])?;
        d.set_item("piece", s.pieces()[i])?;
        d.set_item("window", s.windows()[i])?;
        d.set_item("dupe", s.dupes()[i])?;
        Ok(d)
    }
}

/// The examples written by distill-prep: `len()`, `[i]` → dict of numpy arrays, `shards`
/// for the raw zero-copy arrays, `verify()` for the checksums.
#[pyclass(name = "Examples", frozen)]
struct PyExamples {
    dir: PathBuf,
    manifest: Manifest,
    shards: Vec<Py<PyExamplesShard>>,
    starts: Vec<u64>,
}

#[pymethods]
impl PyExamples {
    #[new]
    #[pyo3(signature = (path, verify=false))]
    fn new(py: Python<'_>, path: PathBuf, verify: bool) -> PyResult<Self> {
        let dir = path.clone();
        let (manifest, opened) = guarded(py, move || {
            let m = read_manifest(&dir)?;
            let mut opened = Vec::with_capacity(m.shards.len());
            for info in &m.shards {
                let shard = Shard::open(&dir, &info.name)?;
                if verify {
                    shard.verify(&dir, info)?;
                }
                opened.push(shard);
            }
            Ok((m, opened))
        })?;
        let mut starts = vec![0u64];
        let mut shards = Vec::with_capacity(opened.len());
        for (shard, info) in opened.into_iter().zip(&manifest.shards) {
            starts.push(starts.last().unwrap() + shard.n as u64);
            let info = info.clone();
            shards.push(Py::new(py, PyExamplesShard { shard, info })?);
        }
        Ok(Self {
            dir: path,
            manifest,
            shards,
            starts,
        })
    }

    fn __len__(&self) -> usize {
        *self.starts.last().unwrap() as usize
    }

    #[getter]
    fn path(&self) -> String {
        self.dir.display().to_string()
    }

    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &self.manifest)
    }

    #[getter]
    fn pad_id(&self) -> u32 {
        self.manifest.vocab.pad_id
    }

    /// First global index of each shard, and the total at the end.
    #[getter]
    fn starts(&self) -> Vec<u64> {
        self.starts.clone()
    }

    #[getter]
    fn shards<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.shards.iter().map(|s| s.clone_ref(py)))
    }

    /// Global example index → (shard, index in shard); negative counts from the end.
    fn locate(&self, i: isize) -> PyResult<(usize, usize)> {
        let i = index(i, self.__len__(), "example")? as u64;
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        Ok((k, (i - self.starts[k]) as usize))
    }

    fn __getitem__<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Bound<'py, PyDict>> {
        let (k, j) = self.locate(i)?;
        PyExamplesShard::__getitem__(self.shards[k].bind(py), j as isize)
    }

    /// Checks every shard file against the sha256 in the manifest.
    fn verify(&self, py: Python<'_>) -> PyResult<()> {
        let (dir, shards) = (&self.dir, &self.shards);
        let pairs: Vec<(&Shard, &ShardInfo)> = shards
            .iter()
            .map(|s| {
                let s = s.get();
                (&s.shard, &s.info)
            })
            .collect();
        guarded(py, move || {
            pairs.iter().try_for_each(|(s, info)| s.verify(dir, info))
        })
    }
}

/// `dir/manifest.json` of an examples directory, checked, as a dict.
#[pyfunction]
fn read_examples_manifest<'py>(py: Python<'py>, dir: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let m = guarded(py, move || read_manifest(&dir))?;
    to_python(py, &m)
}
