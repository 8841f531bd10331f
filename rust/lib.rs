//! wwm-distill core: corpus reading, jieba segmentation, WordPiece tokenization,
//! whole-word masking, example shards and teacher caches. Pure Rust; the Python bindings
//! live in `bindings` behind the `python` feature.

pub mod batch;
pub mod cache;
pub mod corpus;
pub mod error;
pub mod examples;
pub mod io;
pub mod masking;
pub mod merge;
pub mod prep;
pub mod segment;
pub mod tokenize;

pub use error::{Error, Result};

#[cfg(feature = "python")]
mod bindings;

/// mimalloc returns memory freed by another thread promptly (the pipeline allocates in
/// worker threads and frees in the writer), which keeps peak memory flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
