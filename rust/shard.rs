//! Example shards: `examples-NNNNN.bin` (token data) + `examples-NNNNN.idx` (offsets and
//! provenance), plain little-endian arrays that `numpy.memmap` reads as they are.
//! Byte layout: docs/FORMATS.md.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::error::{Error, IoContext, Result};

pub const IDX_MAGIC: &[u8; 8] = b"WWMEXIDX";
pub const IDX_VERSION: u32 = 1;
pub const IDX_HEADER_BYTES: usize = 64;

/// One masked example, as produced by the pipeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    pub positions: Vec<u16>,
    pub labels: Vec<u32>,
    pub file: u32,
    pub piece: u32,
    pub line: u64,
    pub window: u32,
    pub dupe: u32,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShardInfo {
    pub name: String,
    pub examples: u64,
    pub tokens: u64,
    pub masked: u64,
    pub bin_bytes: u64,
    pub idx_bytes: u64,
    pub bin_sha256: String,
    pub idx_sha256: String,
}

pub fn shard_name(index: usize) -> String {
    format!("examples-{index:05}")
}

/// `path.tmp` → fsync → rename to `path`: readers never see a partial file.
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: BufWriter<File>,
    hasher: Sha256,
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
            hasher: Sha256::new(),
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
        Ok((self.bytes, hex::encode(self.hasher.finalize())))
    }
}

/// Writes a whole small file atomically (manifests, progress records).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<String> {
    let mut f = AtomicFile::create(path)?;
    f.write(data)?;
    Ok(f.commit()?.1)
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).at(path)?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).at(path)?;
    Ok(hex::encode(h.finalize()))
}

/// Streams token ids to the `.bin` temp file; keeps the small per-example arrays in
/// memory until `finish`.
pub struct ShardWriter {
    name: String,
    dir: PathBuf,
    token_bytes: usize,
    bin: AtomicFile,
    token_offsets: Vec<u64>,
    mask_offsets: Vec<u64>,
    labels: Vec<u32>,
    positions: Vec<u16>,
    line: Vec<u64>,
    file: Vec<u32>,
    piece: Vec<u32>,
    window: Vec<u32>,
    dupe: Vec<u32>,
    scratch: Vec<u8>,
}

fn put_ids(out: &mut Vec<u8>, ids: &[u32], token_bytes: usize) {
    if token_bytes == 2 {
        for &i in ids {
            out.extend_from_slice(&(i as u16).to_le_bytes());
        }
    } else {
        for &i in ids {
            out.extend_from_slice(&i.to_le_bytes());
        }
    }
}

impl ShardWriter {
    pub fn create(dir: &Path, index: usize, token_bytes: usize) -> Result<Self> {
        let name = shard_name(index);
        let bin = AtomicFile::create(&dir.join(format!("{name}.bin")))?;
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            token_bytes,
            bin,
            token_offsets: vec![0],
            mask_offsets: vec![0],
            labels: Vec::new(),
            positions: Vec::new(),
            line: Vec::new(),
            file: Vec::new(),
            piece: Vec::new(),
            window: Vec::new(),
            dupe: Vec::new(),
            scratch: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn push(&mut self, ex: &Example) -> Result<()> {
        self.scratch.clear();
        put_ids(&mut self.scratch, &ex.input_ids, self.token_bytes);
        self.bin.write(&self.scratch)?;
        let t = *self.token_offsets.last().unwrap() + ex.input_ids.len() as u64;
        self.token_offsets.push(t);
        let m = *self.mask_offsets.last().unwrap() + ex.positions.len() as u64;
        self.mask_offsets.push(m);
        self.labels.extend_from_slice(&ex.labels);
        self.positions.extend_from_slice(&ex.positions);
        self.line.push(ex.line);
        self.file.push(ex.file);
        self.piece.push(ex.piece);
        self.window.push(ex.window);
        self.dupe.push(ex.dupe);
        Ok(())
    }

    pub fn finish(mut self) -> Result<ShardInfo> {
        let mut tail = Vec::with_capacity(self.labels.len() * (self.token_bytes + 2));
        put_ids(&mut tail, &self.labels, self.token_bytes);
        tail.extend_from_slice(bytemuck::cast_slice(&self.positions));
        self.bin.write(&tail)?;
        let (bin_bytes, bin_sha256) = self.bin.commit()?;

        let n = self.line.len() as u64;
        let n_tokens = *self.token_offsets.last().unwrap();
        let n_masked = *self.mask_offsets.last().unwrap();
        let mut idx = Vec::with_capacity(IDX_HEADER_BYTES + (n as usize) * 40);
        idx.extend_from_slice(IDX_MAGIC);
        idx.extend_from_slice(&IDX_VERSION.to_le_bytes());
        idx.extend_from_slice(&(self.token_bytes as u32).to_le_bytes());
        for v in [n, n_tokens, n_masked, bin_bytes] {
            idx.extend_from_slice(&v.to_le_bytes());
        }
        idx.resize(IDX_HEADER_BYTES, 0);
        idx.extend_from_slice(bytemuck::cast_slice(&self.token_offsets));
        idx.extend_from_slice(bytemuck::cast_slice(&self.mask_offsets));
        idx.extend_from_slice(bytemuck::cast_slice(&self.line));
        for a in [&self.file, &self.piece, &self.window, &self.dupe] {
            idx.extend_from_slice(bytemuck::cast_slice(a));
        }
        let idx_path = self.dir.join(format!("{}.idx", self.name));
        let mut f = AtomicFile::create(&idx_path)?;
        f.write(&idx)?;
        let (idx_bytes, idx_sha256) = f.commit()?;
        Ok(ShardInfo {
            name: self.name,
            examples: n,
            tokens: n_tokens,
            masked: n_masked,
            bin_bytes,
            idx_bytes,
            bin_sha256,
            idx_sha256,
        })
    }
}

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

/// A memory-mapped shard. Opening checks the header and that every offset lies inside
/// the file; `verify` also checks the sha256 against the manifest.
pub struct Shard {
    pub path: PathBuf,
    bin: Mmap,
    idx: Mmap,
    pub token_bytes: usize,
    pub n: usize,
    n_tokens: usize,
    n_masked: usize,
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl Shard {
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        let bin_path = dir.join(format!("{name}.bin"));
        let idx_path = dir.join(format!("{name}.idx"));
        let bad = |msg: &str| Error::data(idx_path.display().to_string(), msg.to_string());
        let bin = map(&bin_path)?;
        let idx = map(&idx_path)?;
        if idx.len() < IDX_HEADER_BYTES || &idx[..8] != IDX_MAGIC {
            return Err(bad("not an examples index (bad magic)"));
        }
        let version = u32::from_le_bytes(idx[8..12].try_into().unwrap());
        if version != IDX_VERSION {
            return Err(bad(&format!(
                "format version {version}, this build reads {IDX_VERSION}"
            )));
        }
        let token_bytes = u32::from_le_bytes(idx[12..16].try_into().unwrap()) as usize;
        if token_bytes != 2 && token_bytes != 4 {
            return Err(bad("bad token width"));
        }
        let n = u64_at(&idx, 16) as usize;
        let n_tokens = u64_at(&idx, 24) as usize;
        let n_masked = u64_at(&idx, 32) as usize;
        let bin_bytes = u64_at(&idx, 40) as usize;
        let want_idx = n
            .checked_mul(40)
            .and_then(|x| x.checked_add(IDX_HEADER_BYTES + 16));
        if want_idx != Some(idx.len()) {
            return Err(bad("truncated or oversized index"));
        }
        let want_bin = n_tokens
            .checked_add(n_masked)
            .and_then(|x| x.checked_mul(token_bytes))
            .and_then(|x| x.checked_add(n_masked * 2));
        if want_bin != Some(bin.len()) || bin_bytes != bin.len() {
            return Err(Error::data(
                bin_path.display().to_string(),
                "size does not match its index (truncated?)",
            ));
        }
        let s = Self {
            path: bin_path,
            bin,
            idx,
            token_bytes,
            n,
            n_tokens,
            n_masked,
        };
        let (to, mo) = (s.token_offsets(), s.mask_offsets());
        let monotone = |o: &[u64], end: usize| {
            o[0] == 0 && o[o.len() - 1] as usize == end && o.windows(2).all(|w| w[0] <= w[1])
        };
        if !monotone(to, n_tokens) || !monotone(mo, n_masked) {
            return Err(bad("offsets out of order or out of range"));
        }
        Ok(s)
    }

    fn idx_u64(&self, start: usize, len: usize) -> &[u64] {
        bytemuck::cast_slice(&self.idx[start..start + len * 8])
    }

    fn idx_u32(&self, k: usize) -> &[u32] {
        let start = IDX_HEADER_BYTES + (self.n + 1) * 16 + self.n * 8 + k * self.n * 4;
        bytemuck::cast_slice(&self.idx[start..start + self.n * 4])
    }

    pub fn token_offsets(&self) -> &[u64] {
        self.idx_u64(IDX_HEADER_BYTES, self.n + 1)
    }

    pub fn mask_offsets(&self) -> &[u64] {
        self.idx_u64(IDX_HEADER_BYTES + (self.n + 1) * 8, self.n + 1)
    }

    pub fn lines(&self) -> &[u64] {
        self.idx_u64(IDX_HEADER_BYTES + (self.n + 1) * 16, self.n)
    }
    pub fn files(&self) -> &[u32] {
        self.idx_u32(0)
    }
    pub fn pieces(&self) -> &[u32] {
        self.idx_u32(1)
    }
    pub fn windows(&self) -> &[u32] {
        self.idx_u32(2)
    }
    pub fn dupes(&self) -> &[u32] {
        self.idx_u32(3)
    }

    fn ids(&self, byte_start: usize, count: usize) -> Ids<'_> {
        let bytes = &self.bin[byte_start..byte_start + count * self.token_bytes];
        if self.token_bytes == 2 {
            Ids::U16(bytemuck::cast_slice(bytes))
        } else {
            Ids::U32(bytemuck::cast_slice(bytes))
        }
    }

    pub fn all_tokens(&self) -> Ids<'_> {
        self.ids(0, self.n_tokens)
    }
    pub fn all_labels(&self) -> Ids<'_> {
        self.ids(self.n_tokens * self.token_bytes, self.n_masked)
    }
    pub fn all_positions(&self) -> &[u16] {
        let start = (self.n_tokens + self.n_masked) * self.token_bytes;
        bytemuck::cast_slice(&self.bin[start..start + self.n_masked * 2])
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

fn map(path: &Path) -> Result<Mmap> {
    let f = File::open(path).at(path)?;
    // SAFETY: shards are written once (temp file + rename) and never modified in place.
    unsafe { Mmap::map(&f) }.at(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(k: u32, len: usize) -> Example {
        Example {
            input_ids: (0..len as u32).map(|i| i * 7 + k).collect(),
            positions: vec![1, 3],
            labels: vec![k, k + 1],
            file: k,
            piece: 0,
            line: 10 + k as u64,
            window: k * 2,
            dupe: k % 5,
        }
    }

    #[test]
    fn round_trip_both_widths() {
        for width in [2usize, 4] {
            let dir = tempfile::tempdir().unwrap();
            let mut w = ShardWriter::create(dir.path(), 3, width).unwrap();
            let exs: Vec<Example> = (0..50).map(|k| ex(k, 5 + k as usize)).collect();
            for e in &exs {
                w.push(e).unwrap();
            }
            let info = w.finish().unwrap();
            assert_eq!(info.name, "examples-00003");
            assert_eq!(info.examples, 50);
            assert_eq!(
                sha256_file(&dir.path().join("examples-00003.bin")).unwrap(),
                info.bin_sha256
            );
            let s = Shard::open(dir.path(), &info.name).unwrap();
            for (i, e) in exs.iter().enumerate() {
                assert_eq!(&s.example(i), e);
            }
        }
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), 0, 2).unwrap();
        for k in 0..10 {
            w.push(&ex(k, 20)).unwrap();
        }
        w.finish().unwrap();
        let bin = dir.path().join("examples-00000.bin");
        let data = std::fs::read(&bin).unwrap();
        std::fs::write(&bin, &data[..data.len() - 3]).unwrap();
        let e = Shard::open(dir.path(), "examples-00000").err().unwrap();
        assert!(e.to_string().contains("examples-00000.bin"), "{e}");
        std::fs::write(&bin, &data).unwrap();
        let idx = dir.path().join("examples-00000.idx");
        let mut d = std::fs::read(&idx).unwrap();
        d[0] = b'X';
        std::fs::write(&idx, &d).unwrap();
        assert!(Shard::open(dir.path(), "examples-00000").is_err());
    }
}
