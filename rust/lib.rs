//! wwm-distill core: corpus reading, jieba segmentation, WordPiece tokenization,
//! whole-word masking and example shards. Pure Rust; the Python bindings live in
//! `bindings.rs` behind the `python` feature.

pub mod batch;
pub mod cache;
pub mod corpus;
pub mod error;
pub mod masking;
pub mod prep;
pub mod segment;
pub mod shard;
pub mod tokenize;

pub use error::{Error, Result};

pub mod merge;

#[cfg(feature = "python")]
mod bindings;

/// mimalloc returns memory freed by another thread promptly (the pipeline allocates in
/// worker threads and frees in the writer), which keeps peak memory flat.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
