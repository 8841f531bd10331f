//! `Batches` (examples + optional teacher cache → padded training batches) and
//! `BatchLoader` (a plan of batches assembled ahead in background threads).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{IntoPyArray, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{guarded, to_py};
use crate::batch::{Batch, Dataset, Loader};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBatches>()?;
    m.add_class::<PyLoader>()
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
