//! One error type for the crate; the Python bindings turn it into exceptions.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure on a named file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Bad input data at a known place (file, line or block).
    #[error("{location}: {message}")]
    Data { location: String, message: String },
    /// A vocabulary / tokenizer that cannot be used.
    #[error("vocabulary {path}: {message}")]
    Vocab { path: PathBuf, message: String },
    /// Arguments or directory state that the command refuses.
    #[error("{0}")]
    Invalid(String),
    /// A compressed block that cannot be encoded (zstd) on writing.
    #[error("{0}")]
    Codec(String),
    /// A failure of our own machinery (a worker thread that panicked or stopped early).
    #[error("internal error: {0}")]
    Internal(String),
    /// A run stopped on request (Ctrl-C).
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub fn data(location: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data {
            location: location.into(),
            message: message.into(),
        }
    }

    pub fn vocab(path: impl AsRef<Path>, message: impl Into<String>) -> Self {
        Error::Vocab {
            path: path.as_ref().to_path_buf(),
            message: message.into(),
        }
    }
}

/// Attach a path to an `io::Result`.
pub trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
