//! A whole teacher-cache directory: its manifest and one reader per shard, addressed by
//! global example index.

use std::path::{Path, PathBuf};

use super::manifest::{read_cache_manifest, shard_path, CacheManifest};
use super::{CacheReader, Gathered};
use crate::error::{Error, Result};
use crate::examples::manifest::MANIFEST_FILE;
use crate::io::sha256_file;

/// Blocks each shard reader keeps decoded.
pub const LRU_BLOCKS: usize = 16;

pub struct TeacherCache {
    pub dir: PathBuf,
    pub manifest: CacheManifest,
    pub readers: Vec<CacheReader>,
    starts: Vec<u64>,
}

impl TeacherCache {
    /// Opens the shards the manifest lists.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_cache_manifest(dir)?;
        let mut readers = Vec::with_capacity(manifest.shards.len());
        let mut starts = vec![0u64];
        for s in &manifest.shards {
            let r = CacheReader::open(&shard_path(dir, &s.name), LRU_BLOCKS)?;
            starts.push(starts.last().unwrap() + r.n_examples);
            readers.push(r);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            readers,
            starts,
        })
    }

    /// Refuses examples other than those the cache was made from (by the sha256 of
    /// their manifest).
    pub fn check_examples(&self, examples: &Path) -> Result<()> {
        let got = sha256_file(&examples.join(MANIFEST_FILE))?;
        if got != self.manifest.examples.manifest_sha256 {
            return Err(Error::Invalid(format!(
                "{} was made from other examples than {}",
                self.dir.display(),
                examples.display()
            )));
        }
        crate::examples::read_manifest(examples)?;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        *self.starts.last().unwrap()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The positions of `indices` (global example indices, in order), padded to the
    /// largest entry count of the request: ids 0, log-probs −inf.
    pub fn gather(&self, indices: &[u64]) -> Result<Gathered> {
        // consecutive runs of the same shard, in the request's order
        let mut parts: Vec<Gathered> = Vec::new();
        let mut run: Vec<u64> = Vec::new();
        let mut run_shard = usize::MAX;
        for &i in indices {
            if i >= self.len() {
                return Err(Error::Invalid(format!(
                    "example {i} out of range ({} examples)",
                    self.len()
                )));
            }
            let k = self.starts.partition_point(|&s| s <= i) - 1;
            if k != run_shard && !run.is_empty() {
                parts.push(self.readers[run_shard].gather(&run)?);
                run.clear();
            }
            run_shard = k;
            run.push(i - self.starts[k]);
        }
        if !run.is_empty() {
            parts.push(self.readers[run_shard].gather(&run)?);
        }
        let width = parts.iter().map(|g| g.width).max().unwrap_or(1);
        let n: usize = parts.iter().map(|g| g.n).sum();
        let mut out = Gathered::with_capacity(n, width);
        for g in parts {
            let pad = width - g.width;
            for r in 0..g.n {
                let row = r * g.width..(r + 1) * g.width;
                out.ids.extend_from_slice(&g.ids[row.clone()]);
                out.ids.extend(std::iter::repeat_n(0i64, pad));
                out.logp.extend_from_slice(&g.logp[row]);
                out.logp.extend(std::iter::repeat_n(f32::NEG_INFINITY, pad));
            }
            out.tail.extend_from_slice(&g.tail);
            out.counts.extend_from_slice(&g.counts);
        }
        Ok(out)
    }
}
