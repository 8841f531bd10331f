//! Generic file I/O shared by every format: atomic writes, memory maps and sha256 (the one
//! place a sha256 is computed).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

/// An incremental sha256, finished as lowercase hex.
#[derive(Clone, Default)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Self {
        Self(Sha256::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// sha256 (hex) of some bytes.
pub fn sha256_bytes(data: &[u8]) -> String {
    let mut h = Hasher::new();
    h.update(data);
    h.finish()
}

/// sha256 (hex) of a file's contents, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).at(path)?;
    let mut h = Hasher::new();
    std::io::copy(&mut f, &mut h).at(path)?;
    Ok(h.finish())
}

/// `path.tmp` → fsync → rename to `path`: readers never see a partial file.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    hasher: Hasher,
    bytes: u64,
}

impl AtomicFile {
    pub fn create(path: &Path) -> Result<Self> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let f = File::create(&tmp).at(&tmp)?;
        Ok(Self {
            path: path.to_path_buf(),
            tmp,
            out: BufWriter::with_capacity(1 << 20, f),
            hasher: Hasher::new(),
            bytes: 0,
        })
    }

    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        self.out.write_all(data).at(&self.tmp)
    }

    /// Returns (bytes, sha256 hex).
    pub fn commit(self) -> Result<(u64, String)> {
        let f = self
            .out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        f.sync_all().at(&self.tmp)?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).at(&self.path)?;
        if let Some(dir) = self.path.parent() {
            // Make the rename itself durable (best effort: not every filesystem allows it).
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok((self.bytes, self.hasher.finish()))
    }
}

/// Writes a whole small file atomically (manifests, progress records); returns its sha256.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<String> {
    let mut f = AtomicFile::create(path)?;
    f.write(data)?;
    Ok(f.commit()?.1)
}

/// A read-only memory map of a file written once (temp file + rename) and never modified
/// in place, which is what makes the map safe to hand out as plain slices.
pub fn map_file(path: &Path) -> Result<Mmap> {
    let f = File::open(path).at(path)?;
    // SAFETY: our shard and cache files are never modified after their rename.
    unsafe { Mmap::map(&f) }.at(path)
}

/// The text of a small file (a manifest); a missing file is [`Error::Data`] with
/// `missing` as its message (e.g. "no examples manifest (run distill-prep)").
pub fn read_text(path: &Path, missing: &str) -> Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::data(path.display().to_string(), missing))
        }
        r => r.at(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_bytes_file_and_atomic_write_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        let sha = write_atomic(&p, b"hello").unwrap();
        assert_eq!(
            sha,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(sha256_file(&p).unwrap(), sha);
        assert_eq!(sha256_bytes(b"hello"), sha);
        assert!(!dir.path().join("x.json.tmp").exists());
        assert_eq!(&map_file(&p).unwrap()[..], b"hello");
    }
}
