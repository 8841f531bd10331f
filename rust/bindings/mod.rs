//! PyO3 glue: the only module that knows about Python, one file per core concept (the
//! Python face of a core type is found by its name): [`prep`] (PrepConfig, PrepProgress,
//! prep, merge), [`text`] (TextPipeline), [`examples`] (Examples, ExamplesShard),
//! [`cache`] (CacheWriter, CacheReader, TeacherCache, cache manifests), [`batch`]
//! (Batches, BatchLoader), [`io`] (sha256_file). Errors become `wwm_distill._core.WwmDistillError` (or OSError /
//! KeyboardInterrupt); panics are caught here and never cross into Python as anything but
//! an exception.

#![allow(clippy::type_complexity)] // PyO3 signatures returning tuples of arrays

mod batch;
mod cache;
mod examples;
mod io;
mod prep;
mod text;

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyKeyboardInterrupt, PyOSError};
use pyo3::prelude::*;

use crate::error::Error;

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

/// A serializable Rust value as Python objects (through Python's json module, so dicts,
/// lists, str, int, float and bool come out as `json.loads` would give them).
fn to_python<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| to_py(Error::Internal(e.to_string())))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A Python object (dict, list, …) as JSON text, as `json.dumps(obj, indent=indent)`
/// writes it.
fn json_text(obj: &Bound<'_, PyAny>, indent: Option<usize>) -> PyResult<String> {
    let kwargs = pyo3::types::PyDict::new(obj.py());
    kwargs.set_item("indent", indent)?;
    obj.py()
        .import("json")?
        .call_method("dumps", (obj,), Some(&kwargs))?
        .extract()
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("WwmDistillError", m.py().get_type::<WwmDistillError>())?;
    prep::register(m)?;
    text::register(m)?;
    examples::register(m)?;
    cache::register(m)?;
    batch::register(m)?;
    io::register(m)?;
    Ok(())
}
