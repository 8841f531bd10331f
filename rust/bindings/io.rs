//! Python face of [`crate::io`]: the one sha256 of a file (manifests record it; the
//! teacher cache and eval results pin the examples they were made from by it).

use std::path::PathBuf;

use pyo3::prelude::*;

use super::guarded;

/// Hex sha256 of the file at `path` (GIL released while it reads).
#[pyfunction]
fn sha256_file(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    guarded(py, move || crate::io::sha256_file(&path))
}

pub(super) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(sha256_file, m)?)
}
