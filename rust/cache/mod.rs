//! Teacher caches: `teacher-NNNNN.tkc`, one per example shard. Per masked position the
//! teacher's stored entries (ids, quantised full-softmax log-probs or sample counts) and
//! the tail mass. Blocks of examples are independent zstd frames (with content checksums)
//! indexed by a table at the end, so a reader memory-maps the file and decodes only the
//! blocks it needs. Byte layout: docs/FORMATS.md.

use std::fs::File;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use crate::error::{Error, IoContext, Result};
use crate::shard::AtomicFile;

pub const MAGIC: &[u8; 8] = b"WWMTKC\0\0";
pub const FOOTER_MAGIC: &[u8; 8] = b"WWMTKCF\0";
pub const VERSION: u32 = 1;
pub const HEADER_BYTES: usize = 64;
pub const FOOTER_BYTES: usize = 48;
pub const INDEX_ENTRY_BYTES: usize = 40;
/// Largest quantised value: log-probs below −q_max·step are stored as −q_max·step.
pub const Q_MAX: u32 = 65535;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The K most probable ids (K fixed, the seed's choice).
    TopK,
    /// The shortest sorted prefix holding mass ≥ P, at most K entries.
    TopP,
    /// N draws from the teacher distribution: unique ids with counts.
    Sample,
}

impl Mode {
    fn code(self) -> u32 {
        match self {
            Mode::TopK => 0,
            Mode::TopP => 1,
            Mode::Sample => 2,
        }
    }
    fn from_code(c: u32) -> Option<Self> {
        match c {
            0 => Some(Mode::TopK),
            1 => Some(Mode::TopP),
            2 => Some(Mode::Sample),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Mode::TopK => "topk",
            Mode::TopP => "top-p",
            Mode::Sample => "sample",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "topk" => Ok(Mode::TopK),
            "top-p" | "topp" => Ok(Mode::TopP),
            "sample" => Ok(Mode::Sample),
            _ => Err(Error::Invalid(format!(
                "unknown cache mode {s:?} (topk, top-p, sample)"
            ))),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CacheParams {
    pub mode: Mode,
    /// 2 or 4.
    pub id_bytes: usize,
    /// Most entries per position.
    pub k_max: usize,
    /// Quantisation step of log-probs in nats (error ≤ step / 2).
    pub step: f32,
    /// Draws per position in sample mode (0 otherwise).
    pub sample_n: u32,
}

/// The teacher outputs of a run of examples, as handed over by the teacher loop.
/// Positions are in example order; entries of position `p` are
/// `ids[p*width .. p*width + k[p]]`, sorted by decreasing probability (or count).
pub struct Chunk<'a> {
    pub positions_per_example: &'a [u16],
    pub k: &'a [u16],
    pub width: usize,
    pub ids: &'a [i64],
    /// Full-softmax log-probs (top-k / top-p), ignored in sample mode.
    pub logp: &'a [f32],
    /// Sample counts (sample mode), ignored otherwise.
    pub counts: &'a [u16],
    /// 1 − Σ stored probabilities (computed from exact values by the caller).
    pub tail: &'a [f32],
}

fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Quantised magnitude of a log-prob: round(−logp / step), clamped to [0, Q_MAX].
pub fn quantise(logp: f32, step: f32) -> u32 {
    let q = (-logp / step).round();
    if q.is_nan() || q >= Q_MAX as f32 {
        Q_MAX
    } else if q <= 0.0 {
        0
    } else {
        q as u32
    }
}

/// Encodes one block (raw, before zstd). Layout in docs/FORMATS.md.
fn encode_block(
    p: &CacheParams,
    c: &Chunk,
    ex: std::ops::Range<usize>,
    pos: std::ops::Range<usize>,
) -> Result<Vec<u8>> {
    let n_pos = pos.len();
    let entries: usize = c.k[pos.clone()].iter().map(|&k| k as usize).sum();
    let mut out = Vec::with_capacity(8 + ex.len() * 2 + n_pos * 6 + entries * (p.id_bytes + 2));
    out.extend_from_slice(&(ex.len() as u32).to_le_bytes());
    out.extend_from_slice(&(n_pos as u32).to_le_bytes());
    for &n in &c.positions_per_example[ex] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    for &k in &c.k[pos.clone()] {
        if k as usize > p.k_max || (k == 0 && p.mode != Mode::Sample) {
            return Err(Error::Invalid(format!(
                "a position has {k} entries (1..{} allowed)",
                p.k_max
            )));
        }
        out.extend_from_slice(&k.to_le_bytes());
    }
    for &t in &c.tail[pos.clone()] {
        out.extend_from_slice(&t.to_le_bytes());
    }
    // ids as byte planes: all low bytes, then all second bytes, …
    let start = out.len();
    out.resize(start + entries * p.id_bytes, 0);
    let mut e = 0usize;
    for q in pos.clone() {
        let row = &c.ids[q * c.width..q * c.width + c.k[q] as usize];
        for &id in row {
            if id < 0 || (p.id_bytes == 2 && id > u16::MAX as i64) || id > u32::MAX as i64 {
                return Err(Error::Invalid(format!(
                    "token id {id} does not fit the cache"
                )));
            }
            let b = (id as u32).to_le_bytes();
            for (plane, &byte) in b.iter().enumerate().take(p.id_bytes) {
                out[start + plane * entries + e] = byte;
            }
            e += 1;
        }
    }
    // values: per position the first quantised value, then deltas (non-negative because
    // entries are sorted), as LEB128 varints; counts in sample mode.
    for q in pos {
        let k = c.k[q] as usize;
        let base = q * c.width;
        if p.mode == Mode::Sample {
            for &n in &c.counts[base..base + k] {
                if n == 0 || n as u32 > p.sample_n {
                    return Err(Error::Invalid(format!(
                        "sample count {n} outside 1..={} draws",
                        p.sample_n
                    )));
                }
                put_varint(&mut out, n as u32);
            }
        } else {
            let mut prev = 0u32;
            for (j, &lp) in c.logp[base..base + k].iter().enumerate() {
                let v = quantise(lp, p.step);
                if j > 0 && v < prev {
                    return Err(Error::Invalid(
                        "entries of a position are not sorted by decreasing probability".into(),
                    ));
                }
                put_varint(&mut out, v - if j == 0 { 0 } else { prev });
                prev = v;
            }
        }
    }
    Ok(out)
}

struct IndexEntry {
    offset: u64,
    comp_len: u64,
    first_example: u64,
    n_examples: u32,
    n_positions: u32,
    raw_len: u32,
    crc: u32,
}

/// Appends blocks to `teacher-NNNNN.tkc.tmp`; `finish` writes the index and footer and
/// renames the file into place.
pub struct CacheWriter {
    params: CacheParams,
    file: AtomicFile,
    header_crc: u32,
    offset: u64,
    index: Vec<IndexEntry>,
    n_examples: u64,
    n_positions: u64,
    n_entries: u64,
    block_examples: usize,
    level: i32,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheInfo {
    pub examples: u64,
    pub positions: u64,
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl CacheWriter {
    pub fn create(
        path: &Path,
        params: CacheParams,
        block_examples: usize,
        level: i32,
    ) -> Result<Self> {
        if params.id_bytes != 2 && params.id_bytes != 4 {
            return Err(Error::Invalid("id width must be 2 or 4 bytes".into()));
        }
        if params.k_max == 0 || params.k_max > u16::MAX as usize {
            return Err(Error::Invalid("k must be in 1..65535".into()));
        }
        if !(params.step > 0.0 && params.step <= 0.02) {
            return Err(Error::Invalid(
                "log-prob step must be in (0, 0.02] (error ≤ 0.01 nats)".into(),
            ));
        }
        let mut file = AtomicFile::create(path)?;
        let mut h = Vec::with_capacity(HEADER_BYTES);
        h.extend_from_slice(MAGIC);
        for v in [
            VERSION,
            params.mode.code(),
            params.id_bytes as u32,
            params.k_max as u32,
        ] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&params.step.to_le_bytes());
        h.extend_from_slice(&params.sample_n.to_le_bytes());
        h.extend_from_slice(&(block_examples as u32).to_le_bytes());
        h.resize(HEADER_BYTES, 0);
        file.write(&h)?;
        Ok(Self {
            params,
            file,
            header_crc: crc32fast::hash(&h),
            offset: HEADER_BYTES as u64,
            index: Vec::new(),
            n_examples: 0,
            n_positions: 0,
            n_entries: 0,
            block_examples: block_examples.max(1),
            level,
        })
    }

    /// Encodes and appends the examples of `chunk` (blocks never straddle two calls).
    pub fn push(&mut self, c: &Chunk) -> Result<()> {
        let n_ex = c.positions_per_example.len();
        let n_pos: usize = c.positions_per_example.iter().map(|&n| n as usize).sum();
        if c.k.len() != n_pos || c.tail.len() != n_pos || c.ids.len() < n_pos * c.width {
            return Err(Error::Invalid(format!(
                "chunk arrays disagree: {n_pos} positions by the examples, k {}, tail {}, ids {}",
                c.k.len(),
                c.tail.len(),
                c.ids.len()
            )));
        }
        let values_len = if self.params.mode == Mode::Sample {
            c.counts.len()
        } else {
            c.logp.len()
        };
        if values_len < n_pos * c.width || c.width < c.k.iter().copied().max().unwrap_or(0) as usize
        {
            return Err(Error::Invalid(
                "chunk values are shorter than its ids".into(),
            ));
        }
        let mut ex0 = 0usize;
        let mut pos0 = 0usize;
        while ex0 < n_ex {
            let ex1 = (ex0 + self.block_examples).min(n_ex);
            let pos1 = pos0
                + c.positions_per_example[ex0..ex1]
                    .iter()
                    .map(|&n| n as usize)
                    .sum::<usize>();
            let raw = encode_block(&self.params, c, ex0..ex1, pos0..pos1)?;
            let mut enc = zstd::bulk::Compressor::new(self.level)
                .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
            enc.include_checksum(true)
                .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
            let comp = enc
                .compress(&raw)
                .map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
            self.file.write(&comp)?;
            self.n_entries += c.k[pos0..pos1].iter().map(|&k| k as u64).sum::<u64>();
            self.index.push(IndexEntry {
                offset: self.offset,
                comp_len: comp.len() as u64,
                first_example: self.n_examples,
                n_examples: (ex1 - ex0) as u32,
                n_positions: (pos1 - pos0) as u32,
                raw_len: raw.len() as u32,
                crc: crc32fast::hash(&comp),
            });
            self.offset += comp.len() as u64;
            self.n_examples += (ex1 - ex0) as u64;
            self.n_positions += (pos1 - pos0) as u64;
            ex0 = ex1;
            pos0 = pos1;
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<CacheInfo> {
        let mut idx = Vec::with_capacity(self.index.len() * INDEX_ENTRY_BYTES);
        for e in &self.index {
            for v in [e.offset, e.comp_len, e.first_example] {
                idx.extend_from_slice(&v.to_le_bytes());
            }
            for v in [e.n_examples, e.n_positions, e.raw_len, e.crc] {
                idx.extend_from_slice(&v.to_le_bytes());
            }
        }
        let index_offset = self.offset;
        self.file.write(&idx)?;
        let mut f = Vec::with_capacity(FOOTER_BYTES);
        for v in [
            self.n_examples,
            self.n_positions,
            index_offset,
            self.index.len() as u64,
        ] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&crc32fast::hash(&idx).to_le_bytes());
        f.extend_from_slice(&self.header_crc.to_le_bytes());
        f.extend_from_slice(FOOTER_MAGIC);
        self.file.write(&f)?;
        let (bytes, sha256) = self.file.commit()?;
        Ok(CacheInfo {
            examples: self.n_examples,
            positions: self.n_positions,
            entries: self.n_entries,
            bytes,
            sha256,
        })
    }
}

/// A decoded block: entries of every position, values as float log-probs.
struct Block {
    /// Position offsets of the block's examples (len n_examples + 1).
    ex_pos: Vec<u32>,
    /// Entry offsets of the block's positions (len n_positions + 1).
    pos_entry: Vec<u32>,
    tail: Vec<f32>,
    ids: Vec<u32>,
    logp: Vec<f32>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
    what: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(e) => {
                let s = &self.buf[self.at..e];
                self.at = e;
                Ok(s)
            }
            None => Err(Error::data(self.what, "block payload is truncated")),
        }
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
}

/// LEB128 varint at `buf[*at..]` (at most 5 bytes); `None` if truncated or too long.
#[inline(always)]
fn read_varint(buf: &[u8], at: &mut usize) -> Option<u32> {
    let b = *buf.get(*at)?;
    *at += 1;
    if b < 0x80 {
        return Some(b as u32); // the common case: one byte
    }
    let mut v = (b & 0x7f) as u32;
    for shift in [7u32, 14, 21, 28] {
        let b = *buf.get(*at)?;
        *at += 1;
        v |= ((b & 0x7f) as u32) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

/// A memory-mapped cache shard with a small LRU of decoded blocks.
pub struct CacheReader {
    pub path: PathBuf,
    map: Mmap,
    pub params: CacheParams,
    pub n_examples: u64,
    pub n_positions: u64,
    index: Vec<IndexEntry>,
    lru: Mutex<lru::LruCache<usize, Arc<Block>>>,
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn rd_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

impl CacheReader {
    pub fn open(path: &Path, lru_blocks: usize) -> Result<Self> {
        let f = File::open(path).at(path)?;
        // SAFETY: cache files are written once (temp file + rename), never modified.
        let map = unsafe { Mmap::map(&f) }.at(path)?;
        let name = path.display().to_string();
        let bad = |m: &str| Error::data(name.clone(), m.to_string());
        if map.len() < HEADER_BYTES + FOOTER_BYTES || &map[..8] != MAGIC {
            return Err(bad("not a teacher cache (bad magic or too short)"));
        }
        let version = rd_u32(&map, 8);
        if version != VERSION {
            return Err(bad(&format!(
                "format version {version}, this build reads {VERSION}"
            )));
        }
        let mode = Mode::from_code(rd_u32(&map, 12)).ok_or_else(|| bad("unknown mode"))?;
        let id_bytes = rd_u32(&map, 16) as usize;
        let k_max = rd_u32(&map, 20) as usize;
        let step = f32::from_le_bytes(map[24..28].try_into().unwrap());
        let sample_n = rd_u32(&map, 28);
        if !(id_bytes == 2 || id_bytes == 4) || k_max == 0 || !(step > 0.0 && step <= 0.02) {
            return Err(bad("corrupt header"));
        }
        let foot = map.len() - FOOTER_BYTES;
        if &map[foot + 40..foot + 48] != FOOTER_MAGIC {
            return Err(bad("truncated (no footer)"));
        }
        if crc32fast::hash(&map[..HEADER_BYTES]) != rd_u32(&map, foot + 36) {
            return Err(bad("header checksum mismatch"));
        }
        let n_examples = rd_u64(&map, foot);
        let n_positions = rd_u64(&map, foot + 8);
        let index_offset = rd_u64(&map, foot + 16) as usize;
        let n_blocks = rd_u64(&map, foot + 24) as usize;
        let index_crc = rd_u32(&map, foot + 32);
        let index_len = n_blocks.checked_mul(INDEX_ENTRY_BYTES);
        if index_len.and_then(|l| l.checked_add(index_offset)) != Some(foot) {
            return Err(bad("block index does not fit the file (truncated?)"));
        }
        let idx = &map[index_offset..foot];
        if crc32fast::hash(idx) != index_crc {
            return Err(bad("block index checksum mismatch"));
        }
        let mut index = Vec::with_capacity(n_blocks);
        let (mut next_ex, mut next_off, mut pos_total) = (0u64, HEADER_BYTES as u64, 0u64);
        for b in 0..n_blocks {
            let a = b * INDEX_ENTRY_BYTES;
            let e = IndexEntry {
                offset: rd_u64(idx, a),
                comp_len: rd_u64(idx, a + 8),
                first_example: rd_u64(idx, a + 16),
                n_examples: rd_u32(idx, a + 24),
                n_positions: rd_u32(idx, a + 28),
                raw_len: rd_u32(idx, a + 32),
                crc: rd_u32(idx, a + 36),
            };
            if e.offset != next_off || e.first_example != next_ex || e.n_examples == 0 {
                return Err(bad(&format!("block {b}: index entry out of sequence")));
            }
            next_off = e.offset.saturating_add(e.comp_len);
            next_ex += e.n_examples as u64;
            pos_total += e.n_positions as u64;
            index.push(e);
        }
        if next_off != index_offset as u64 || next_ex != n_examples || pos_total != n_positions {
            return Err(bad("block index disagrees with the footer"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            params: CacheParams {
                mode,
                id_bytes,
                k_max,
                step,
                sample_n,
            },
            n_examples,
            n_positions,
            index,
            lru: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(lru_blocks.max(1)).unwrap(),
            )),
        })
    }

    pub fn n_blocks(&self) -> usize {
        self.index.len()
    }

    fn block_of(&self, example: u64) -> usize {
        self.index
            .partition_point(|e| e.first_example + e.n_examples as u64 <= example)
    }

    fn block(&self, b: usize) -> Result<Arc<Block>> {
        if let Some(blk) = self.lru.lock().unwrap().get(&b) {
            return Ok(blk.clone());
        }
        let blk = Arc::new(self.decode(b)?);
        self.lru.lock().unwrap().put(b, blk.clone());
        Ok(blk)
    }

    fn decode(&self, b: usize) -> Result<Block> {
        let e = &self.index[b];
        let what = format!("{} block {b}", self.path.display());
        let bad = |m: &str| Error::data(what.clone(), m.to_string());
        let comp = &self.map[e.offset as usize..(e.offset + e.comp_len) as usize];
        if crc32fast::hash(comp) != e.crc {
            return Err(bad("checksum mismatch (corrupted)"));
        }
        let raw = zstd::bulk::decompress(comp, e.raw_len as usize)
            .map_err(|err| bad(&format!("zstd: {err}")))?;
        if raw.len() != e.raw_len as usize {
            return Err(bad("decoded size differs from the index"));
        }
        let mut c = Cursor {
            buf: &raw,
            at: 0,
            what: &what,
        };
        let n_ex = c.u32()? as usize;
        let n_pos = c.u32()? as usize;
        if n_ex != e.n_examples as usize || n_pos != e.n_positions as usize {
            return Err(bad("block header disagrees with the index"));
        }
        let mut ex_pos = Vec::with_capacity(n_ex + 1);
        ex_pos.push(0u32);
        for ch in c.take(n_ex * 2)?.chunks_exact(2) {
            let n = u16::from_le_bytes([ch[0], ch[1]]) as u32;
            ex_pos.push(ex_pos.last().unwrap() + n);
        }
        if *ex_pos.last().unwrap() as usize != n_pos {
            return Err(bad("positions per example do not add up"));
        }
        let mut pos_entry = Vec::with_capacity(n_pos + 1);
        pos_entry.push(0u32);
        for ch in c.take(n_pos * 2)?.chunks_exact(2) {
            let k = u16::from_le_bytes([ch[0], ch[1]]) as u32;
            if k as usize > self.params.k_max {
                return Err(bad("more entries than k"));
            }
            pos_entry.push(pos_entry.last().unwrap() + k);
        }
        let entries = *pos_entry.last().unwrap() as usize;
        let tail: Vec<f32> = c
            .take(n_pos * 4)?
            .chunks_exact(4)
            .map(|ch| f32::from_le_bytes(ch.try_into().unwrap()))
            .collect();
        let ib = self.params.id_bytes;
        let planes = c.take(entries * ib)?;
        let mut ids = vec![0u32; entries];
        for (plane, bytes) in planes.chunks_exact(entries.max(1)).enumerate().take(ib) {
            let shift = 8 * plane;
            for (id, &byte) in ids.iter_mut().zip(bytes) {
                *id |= (byte as u32) << shift;
            }
        }
        let mut logp = Vec::with_capacity(entries);
        let values = &raw[c.at..];
        let mut at = 0usize;
        let bad_varint = || bad("bad or truncated varint in block payload");
        if self.params.mode == Mode::Sample {
            // ln(count / N) from a table: counts are 1..=N
            let n = self.params.sample_n.max(1);
            let lut: Vec<f32> = (0..=n).map(|c| (c as f32 / n as f32).ln()).collect();
            for _ in 0..entries {
                let v = read_varint(values, &mut at).ok_or_else(bad_varint)? as usize;
                if v == 0 || v >= lut.len() {
                    return Err(bad("sample count out of range"));
                }
                logp.push(lut[v]);
            }
        } else {
            let step = self.params.step;
            for w in pos_entry.windows(2) {
                let mut acc = 0u32;
                for _ in w[0]..w[1] {
                    let v = read_varint(values, &mut at).ok_or_else(bad_varint)?;
                    acc = acc.saturating_add(v); // first value, then deltas
                    logp.push(-(acc as f32) * step);
                }
            }
        }
        c.at += at;
        if c.at != raw.len() {
            return Err(bad("trailing bytes in block payload"));
        }
        Ok(Block {
            ex_pos,
            pos_entry,
            tail,
            ids,
            logp,
        })
    }

    /// Number of masked positions of each example in `examples`.
    pub fn positions_of(&self, examples: &[u64]) -> Result<Vec<u32>> {
        let mut out = Vec::with_capacity(examples.len());
        for &x in examples {
            let (blk, local) = self.locate(x)?;
            out.push(blk.ex_pos[local + 1] - blk.ex_pos[local]);
        }
        Ok(out)
    }

    fn locate(&self, x: u64) -> Result<(Arc<Block>, usize)> {
        if x >= self.n_examples {
            return Err(Error::Invalid(format!(
                "{}: example {x} out of range ({} examples)",
                self.path.display(),
                self.n_examples
            )));
        }
        let b = self.block_of(x);
        Ok((self.block(b)?, (x - self.index[b].first_example) as usize))
    }

    /// Gathers the positions of `examples` (in order) into padded arrays of width
    /// `max k` over the request: ids `[N, k]` (0-padded), log-probs `[N, k]` (−inf
    /// padded), tail `[N]`, entry counts `[N]`.
    pub fn gather(&self, examples: &[u64]) -> Result<Gathered> {
        let mut spans = Vec::with_capacity(examples.len());
        let mut width = 0usize;
        let mut n = 0usize;
        for &x in examples {
            let (blk, local) = self.locate(x)?;
            let (p0, p1) = (blk.ex_pos[local] as usize, blk.ex_pos[local + 1] as usize);
            for p in p0..p1 {
                width = width.max((blk.pos_entry[p + 1] - blk.pos_entry[p]) as usize);
            }
            n += p1 - p0;
            spans.push((blk, p0, p1));
        }
        let width = width.max(1);
        let mut g = Gathered {
            n,
            width,
            ids: Vec::with_capacity(n * width),
            logp: Vec::with_capacity(n * width),
            tail: Vec::with_capacity(n),
            counts: Vec::with_capacity(n),
        };
        // one pass over the output: each row's entries, then its padding
        for (blk, p0, p1) in spans {
            for p in p0..p1 {
                let (e0, e1) = (blk.pos_entry[p] as usize, blk.pos_entry[p + 1] as usize);
                let pad = width - (e1 - e0);
                g.ids.extend(blk.ids[e0..e1].iter().map(|&id| id as i64));
                g.ids.extend(std::iter::repeat_n(0i64, pad));
                g.logp.extend_from_slice(&blk.logp[e0..e1]);
                g.logp.extend(std::iter::repeat_n(f32::NEG_INFINITY, pad));
                g.tail.push(blk.tail[p]);
                g.counts.push((e1 - e0) as i32);
            }
        }
        Ok(g)
    }
}

pub struct Gathered {
    pub n: usize,
    pub width: usize,
    pub ids: Vec<i64>,
    pub logp: Vec<f32>,
    pub tail: Vec<f32>,
    pub counts: Vec<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn params(mode: Mode) -> CacheParams {
        CacheParams {
            mode,
            id_bytes: 2,
            k_max: 8,
            step: 0.019,
            sample_n: if mode == Mode::Sample { 16 } else { 0 },
        }
    }

    type Outputs = (Vec<u16>, Vec<u16>, Vec<i64>, Vec<f32>, Vec<u16>, Vec<f32>);

    /// Random sorted teacher outputs for `n_ex` examples.
    fn outputs(mode: Mode, n_ex: usize, seed: u64) -> Outputs {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let per_ex: Vec<u16> = (0..n_ex).map(|_| rng.random_range(0..5)).collect();
        let n_pos: usize = per_ex.iter().map(|&n| n as usize).sum();
        let mut k = Vec::new();
        let (mut ids, mut logp, mut counts, mut tail) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n_pos {
            let kk = if mode == Mode::TopK {
                8
            } else {
                rng.random_range(1..=8)
            };
            k.push(kk as u16);
            let mut lp: Vec<f32> = (0..8).map(|_| -rng.random_range(0.0f32..12.0)).collect();
            lp.sort_by(|a, b| b.partial_cmp(a).unwrap());
            let mut c: Vec<u16> = (0..8).map(|_| rng.random_range(1..16)).collect();
            c.sort_by(|a, b| b.cmp(a));
            for j in 0..8 {
                ids.push(rng.random_range(0..21128));
                logp.push(lp[j]);
                counts.push(c[j]);
            }
            tail.push(rng.random_range(0.0..1.0));
        }
        (per_ex, k, ids, logp, counts, tail)
    }

    #[test]
    fn round_trip_all_modes() {
        for mode in [Mode::TopK, Mode::TopP, Mode::Sample] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("teacher-00000.tkc");
            let p = params(mode);
            let mut w = CacheWriter::create(&path, p, 7, 3).unwrap();
            let (per_ex, k, ids, logp, counts, tail) = outputs(mode, 50, 1);
            // two pushes: blocks never straddle them
            let split = 23;
            let pos_split: usize = per_ex[..split].iter().map(|&n| n as usize).sum();
            for (ex, pr) in [(0..split, 0..pos_split), (split..50, pos_split..k.len())] {
                w.push(&Chunk {
                    positions_per_example: &per_ex[ex],
                    k: &k[pr.clone()],
                    width: 8,
                    ids: &ids[pr.start * 8..pr.end * 8],
                    logp: &logp[pr.start * 8..pr.end * 8],
                    counts: &counts[pr.start * 8..pr.end * 8],
                    tail: &tail[pr.clone()],
                })
                .unwrap();
            }
            let info = w.finish().unwrap();
            assert_eq!(info.examples, 50);
            let r = CacheReader::open(&path, 2).unwrap();
            assert_eq!(r.params, p);
            let all: Vec<u64> = (0..50).collect();
            let g = r.gather(&all).unwrap();
            assert_eq!(g.n, k.len());
            for row in 0..g.n {
                let kk = k[row] as usize;
                assert_eq!(g.counts[row] as usize, kk);
                assert_eq!(g.tail[row], tail[row]);
                for j in 0..g.width {
                    let (gid, glp) = (g.ids[row * g.width + j], g.logp[row * g.width + j]);
                    if j >= kk {
                        assert_eq!((gid, glp), (0, f32::NEG_INFINITY));
                        continue;
                    }
                    assert_eq!(gid, ids[row * 8 + j]);
                    let want = if mode == Mode::Sample {
                        (counts[row * 8 + j] as f32 / 16.0).ln()
                    } else {
                        logp[row * 8 + j]
                    };
                    assert!((glp - want).abs() <= 0.0096, "{glp} vs {want}");
                }
            }
            // a subset, out of order
            let g2 = r.gather(&[49, 3, 3]).unwrap();
            let pos = r.positions_of(&[49, 3, 3]).unwrap();
            assert_eq!(g2.n as u32, pos.iter().sum::<u32>());
            assert!(r.gather(&[50]).is_err());
        }
    }

    /// All of `o` as one chunk of width 8.
    fn whole(o: &Outputs) -> Chunk<'_> {
        Chunk {
            positions_per_example: &o.0,
            k: &o.1,
            width: 8,
            ids: &o.2,
            logp: &o.3,
            counts: &o.4,
            tail: &o.5,
        }
    }

    #[test]
    fn sample_counts_outside_the_draws_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = outputs(Mode::Sample, 20, 2);
        for bad in [0u16, 17] {
            o.4[0] = bad; // the first position's first count; 16 draws
            let path = dir.path().join(format!("teacher-{bad}.tkc"));
            let mut w = CacheWriter::create(&path, params(Mode::Sample), 7, 3).unwrap();
            let err = w
                .push(&whole(&o))
                .expect_err("a count outside 1..=16 must be refused");
            assert!(err.to_string().contains("sample count"), "{err}");
        }
    }

    #[test]
    fn corruption_is_always_an_error_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tkc");
        let mut w = CacheWriter::create(&path, params(Mode::TopP), 5, 3).unwrap();
        w.push(&whole(&outputs(Mode::TopP, 40, 2))).unwrap();
        w.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let all: Vec<u64> = (0..40).collect();
        let bad_path = dir.path().join("bad.tkc");
        for trial in 0..600 {
            let mut data = good.clone();
            if trial % 3 == 0 {
                data.truncate(rng.random_range(0..data.len()));
            } else {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..data.len());
                    data[at] ^= 1 << rng.random_range(0..8);
                }
            }
            std::fs::write(&bad_path, &data).unwrap();
            let res = CacheReader::open(&bad_path, 2).and_then(|r| r.gather(&all).map(|_| ()));
            if data != good {
                let e = res.expect_err("a damaged file was read without an error");
                assert!(e.to_string().contains("bad.tkc"), "{e}");
            }
        }
    }
}
