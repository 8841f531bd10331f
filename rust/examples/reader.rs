//! A memory-mapped example shard. Opening checks the header (layout: `format.rs`), the
//! file sizes and that every offset lies inside the file; `verify` also checks the sha256
//! against the manifest.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::format::{self, IdxHeader};
use super::manifest::ShardInfo;
use super::Example;
use crate::error::{Error, Result};
use crate::io::{map_file, sha256_file};

/// Token ids of either width, borrowed from a memory map.
#[derive(Clone, Copy, Debug)]
pub enum Ids<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl Ids<'_> {
    pub fn len(&self) -> usize {
        match self {
            Ids::U16(s) => s.len(),
            Ids::U32(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Ids::U16(s) => s[i] as u32,
            Ids::U32(s) => s[i],
        }
    }
    pub fn to_vec(&self) -> Vec<u32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

pub struct Shard {
    pub path: PathBuf,
    pub name: String,
    bin: Mmap,
    idx: Mmap,
    header: IdxHeader,
    pub token_bytes: usize,
    pub n: usize,
}

impl Shard {
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        let bin_path = format::bin_path(dir, name);
        let idx_path = format::idx_path(dir, name);
        let bad = |msg: &str| Error::data(idx_path.display().to_string(), msg.to_string());
        let bin = map_file(&bin_path)?;
        let idx = map_file(&idx_path)?;
        let header = IdxHeader::decode(&idx).map_err(|m| bad(&m))?;
        if header.idx_bytes() != Some(idx.len()) {
            return Err(bad("truncated or oversized index"));
        }
        if header.expected_bin_bytes() != Some(bin.len()) || header.bin_bytes != bin.len() {
            return Err(Error::data(
                bin_path.display().to_string(),
                "size does not match its index (truncated?)",
            ));
        }
        let s = Self {
            path: bin_path,
            name: name.to_string(),
            bin,
            idx,
            header,
            token_bytes: header.token_bytes,
            n: header.n,
        };
        let (to, mo) = (s.token_offsets(), s.mask_offsets());
        let monotone = |o: &[u64], end: usize| {
            o[0] == 0 && o[o.len() - 1] as usize == end && o.windows(2).all(|w| w[0] <= w[1])
        };
        if !monotone(to, header.n_tokens) || !monotone(mo, header.n_masked) {
            return Err(bad("offsets out of order or out of range"));
        }
        Ok(s)
    }

    pub fn header(&self) -> &IdxHeader {
        &self.header
    }

    /// The mapped `.bin` and `.idx` files, whole (for zero-copy views).
    pub fn bin_data(&self) -> &[u8] {
        &self.bin
    }
    pub fn idx_data(&self) -> &[u8] {
        &self.idx
    }

    /// Checks both files against the sha256 recorded in the manifest.
    pub fn verify(&self, dir: &Path, info: &ShardInfo) -> Result<()> {
        for (path, want) in [
            (format::bin_path(dir, &info.name), &info.bin_sha256),
            (format::idx_path(dir, &info.name), &info.idx_sha256),
        ] {
            if &sha256_file(&path)? != want {
                return Err(Error::data(
                    path.display().to_string(),
                    "checksum does not match the manifest",
                ));
            }
        }
        Ok(())
    }

    fn idx_u64(&self, r: std::ops::Range<usize>) -> &[u64] {
        bytemuck::cast_slice(&self.idx[r])
    }

    fn idx_u32(&self, k: usize) -> &[u32] {
        bytemuck::cast_slice(&self.idx[self.header.u32_column(k)])
    }

    pub fn token_offsets(&self) -> &[u64] {
        self.idx_u64(self.header.token_offsets())
    }
    pub fn mask_offsets(&self) -> &[u64] {
        self.idx_u64(self.header.mask_offsets())
    }
    pub fn lines(&self) -> &[u64] {
        self.idx_u64(self.header.lines())
    }
    pub fn files(&self) -> &[u32] {
        self.idx_u32(format::FILE)
    }
    pub fn pieces(&self) -> &[u32] {
        self.idx_u32(format::PIECE)
    }
    pub fn windows(&self) -> &[u32] {
        self.idx_u32(format::WINDOW)
    }
    pub fn dupes(&self) -> &[u32] {
        self.idx_u32(format::DUPE)
    }

    fn ids(&self, r: std::ops::Range<usize>) -> Ids<'_> {
        let bytes = &self.bin[r];
        if self.token_bytes == 2 {
            Ids::U16(bytemuck::cast_slice(bytes))
        } else {
            Ids::U32(bytemuck::cast_slice(bytes))
        }
    }

    pub fn all_tokens(&self) -> Ids<'_> {
        self.ids(self.header.tokens())
    }
    pub fn all_labels(&self) -> Ids<'_> {
        self.ids(self.header.labels())
    }
    pub fn all_positions(&self) -> &[u16] {
        bytemuck::cast_slice(&self.bin[self.header.positions()])
    }

    /// Example `i` decoded into owned vectors.
    pub fn example(&self, i: usize) -> Example {
        let (to, mo) = (self.token_offsets(), self.mask_offsets());
        let (t0, t1) = (to[i] as usize, to[i + 1] as usize);
        let (m0, m1) = (mo[i] as usize, mo[i + 1] as usize);
        let tokens = self.all_tokens();
        let labels = self.all_labels();
        Example {
            input_ids: (t0..t1).map(|k| tokens.get(k)).collect(),
            positions: self.all_positions()[m0..m1].to_vec(),
            labels: (m0..m1).map(|k| labels.get(k)).collect(),
            file: self.files()[i],
            piece: self.pieces()[i],
            line: self.lines()[i],
            window: self.windows()[i],
            dupe: self.dupes()[i],
        }
    }
}
