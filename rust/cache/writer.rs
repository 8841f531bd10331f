//! Encoding blocks and writing a shard (`teacher-NNNNN.tkc.tmp`, renamed on `finish`).

use std::path::Path;

use super::ans;
use super::format::{
    put_planes, put_varint, rank_context, value_context, Footer, Header, IdMap, IndexEntry,
    TableRef, HEADER_BYTES, INDEX_ENTRY_BYTES, LANES, MAX_STEP, RANK_CONTEXTS, VALUE_CONTEXTS,
    VERSION, VERSIONS,
};
use super::{quantise, CacheInfo, CacheParams, Chunk, Mode};
use crate::error::{Error, Result};
use crate::io::AtomicFile;

/// zstd level a writer of `version` uses unless told otherwise: format 1 was written at 3;
/// format 2 at 6, where ranks repeat in runs that level 6 finds and level 3 misses
/// (benches/explore_id_coding.py: 141 → 134 B/position at top-k 128, encode still far
/// faster than the teacher); format 3 compresses only the small per-position part with
/// zstd (ids and values are entropy-coded), where level 3 does as well.
pub fn default_level(version: u32) -> i32 {
    if version == 2 {
        6
    } else {
        3
    }
}

fn zstd_err(e: std::io::Error) -> Error {
    Error::Codec(format!("zstd: {e}"))
}

/// One zstd frame with zstd's content checksum.
fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>> {
    let mut enc = zstd::bulk::Compressor::new(level).map_err(zstd_err)?;
    enc.include_checksum(true).map_err(zstd_err)?;
    enc.compress(raw).map_err(zstd_err)
}

/// A token id, checked against the id width.
fn checked_id(p: &CacheParams, id: i64) -> Result<u32> {
    if id < 0 || (p.id_bytes == 2 && id > u16::MAX as i64) || id > u32::MAX as i64 {
        return Err(Error::Invalid(format!(
            "token id {id} does not fit the cache"
        )));
    }
    Ok(id as u32)
}

/// The part every format's block starts with: examples and positions, positions per
/// example, entries per position (checked against k), tails.
fn put_counts(
    out: &mut Vec<u8>,
    p: &CacheParams,
    c: &Chunk,
    ex: std::ops::Range<usize>,
    pos: std::ops::Range<usize>,
) -> Result<()> {
    out.extend_from_slice(&(ex.len() as u32).to_le_bytes());
    out.extend_from_slice(&(pos.len() as u32).to_le_bytes());
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
    for &t in &c.tail[pos] {
        out.extend_from_slice(&t.to_le_bytes());
    }
    Ok(())
}

/// A sample count, checked against the number of draws.
fn checked_count(p: &CacheParams, n: u16) -> Result<u32> {
    if n == 0 || n as u32 > p.sample_n {
        return Err(Error::Invalid(format!(
            "sample count {n} outside 1..={} draws",
            p.sample_n
        )));
    }
    Ok(n as u32)
}

/// One block's payload (raw, before zstd) and where its parts end: the per-example and
/// per-position part, each id byte plane, the values. Format 2 compresses each part into
/// its own zstd frame, so each frame sees homogeneous bytes.
struct RawBlock {
    payload: Vec<u8>,
    part_ends: Vec<usize>,
}

/// Encodes one block; `map` is format 2's id table (None: format 1). Layout in
/// docs/FORMATS.md.
fn encode_block(
    p: &CacheParams,
    map: Option<&IdMap>,
    c: &Chunk,
    ex: std::ops::Range<usize>,
    pos: std::ops::Range<usize>,
) -> Result<RawBlock> {
    let n_pos = pos.len();
    let entries: usize = c.k[pos.clone()].iter().map(|&k| k as usize).sum();
    let mut out = Vec::with_capacity(8 + ex.len() * 2 + n_pos * 6 + entries * (p.id_bytes + 2));
    put_counts(&mut out, p, c, ex, pos.clone())?;
    let mut part_ends = vec![out.len()];
    // ids (format 1) or their ranks (format 2), as byte planes
    let mut coded = Vec::with_capacity(entries);
    for q in pos.clone() {
        for &id in &c.ids[q * c.width..q * c.width + c.k[q] as usize] {
            let id = checked_id(p, id)?;
            coded.push(map.map_or(id, |m| m.rank(id)));
        }
    }
    put_planes(&mut out, &coded, p.id_bytes);
    let ids_start = part_ends[0];
    part_ends.extend((1..=p.id_bytes).map(|plane| ids_start + plane * entries));
    // values: per position the first quantised value, then deltas (non-negative because
    // entries are sorted), as LEB128 varints; counts in sample mode.
    for q in pos {
        let k = c.k[q] as usize;
        let base = q * c.width;
        if p.mode == Mode::Sample {
            for &n in &c.counts[base..base + k] {
                put_varint(&mut out, checked_count(p, n)?);
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
    part_ends.push(out.len());
    Ok(RawBlock {
        payload: out,
        part_ends,
    })
}

/// Encodes one block of format 3 into its bytes on disk; returns them and the size of the
/// decoded head (the index's `raw_len`). Layout in docs/FORMATS.md: a zstd frame of the
/// per-example and per-position part and the coding tables, then the rANS stream and the
/// raw bits of every entry's value and rank. Entries tied in value (from entry 1 on) are
/// stored by increasing rank: their order carries no information.
fn encode_block_v3(
    p: &CacheParams,
    map: &IdMap,
    c: &Chunk,
    ex: std::ops::Range<usize>,
    pos: std::ops::Range<usize>,
    level: i32,
) -> Result<(Vec<u8>, usize)> {
    let n_pos = pos.len();
    let entries: usize = c.k[pos.clone()].iter().map(|&k| k as usize).sum();
    let mut head = Vec::with_capacity(8 + ex.len() * 2 + n_pos * 6 + 1024);
    put_counts(&mut head, p, c, ex, pos.clone())?;
    // every position's values and ranks, in canonical order
    let mut vals: Vec<u32> = Vec::with_capacity(entries);
    let mut ranks: Vec<u32> = Vec::with_capacity(entries);
    for q in pos.clone() {
        let k = c.k[q] as usize;
        let base = q * c.width;
        let at = vals.len();
        for &id in &c.ids[base..base + k] {
            ranks.push(map.rank(checked_id(p, id)?));
        }
        if p.mode == Mode::Sample {
            for &n in &c.counts[base..base + k] {
                let n = checked_count(p, n)?;
                if vals.len() > at && n > vals[vals.len() - 1] {
                    return Err(Error::Invalid(
                        "entries of a position are not sorted by decreasing count".into(),
                    ));
                }
                vals.push(n);
            }
        } else {
            for &lp in &c.logp[base..base + k] {
                let v = quantise(lp, p.step);
                if vals.len() > at && v < vals[vals.len() - 1] {
                    return Err(Error::Invalid(
                        "entries of a position are not sorted by decreasing probability".into(),
                    ));
                }
                vals.push(v);
            }
        }
        // runs of equal values from entry 1 on, by increasing rank
        let (v, r) = (&vals[at..], &mut ranks[at..]);
        let mut j = 1;
        while j < k {
            let mut end = j + 1;
            while end < k && v[end] == v[j] {
                end += 1;
            }
            if end - j > 1 {
                r[j..end].sort_unstable();
            }
            j = end;
        }
    }
    // the values (first value, then deltas) and the ranks, each in LANES streams (entry j
    // in stream j mod LANES)
    let mut values = ans::Encoder::new(VALUE_CONTEXTS, LANES);
    let mut ranks_enc = ans::Encoder::new(RANK_CONTEXTS, LANES);
    values.reserve(entries);
    ranks_enc.reserve(entries);
    let mut at = 0;
    for q in pos {
        let k = c.k[q] as usize;
        let (v, r) = (&vals[at..at + k], &ranks[at..at + k]);
        for j in 0..k {
            let d = if j == 0 {
                v[0]
            } else {
                v[j].abs_diff(v[j - 1])
            };
            values.value(j % LANES, value_context(j), d);
            let tied = j >= 2 && d == 0;
            let x = if tied { r[j] - r[j - 1] } else { r[j] };
            ranks_enc.value(j % LANES, rank_context(j, tied), x);
        }
        at += k;
    }
    let coded = [values.finish(), ranks_enc.finish()];
    for s in &coded {
        for t in &s.tables {
            put_varint(&mut head, t.len() as u32);
            for &f in t {
                put_varint(&mut head, f);
            }
        }
    }
    for lane in coded.iter().flat_map(|s| &s.lanes) {
        if lane.bits.len() > ans::MAX_BITS_BYTES {
            return Err(Error::Invalid(format!(
                "a cache block this large is not supported (over {} MiB of raw bits in one \
                 stream): write fewer examples per block",
                ans::MAX_BITS_BYTES >> 20
            )));
        }
        head.extend_from_slice(&(lane.rans.len() as u32).to_le_bytes());
        head.extend_from_slice(&(lane.bits.len() as u32).to_le_bytes());
    }
    let frame = compress(&head, level)?;
    let mut out = Vec::with_capacity(4 + frame.len() + 6 * entries);
    out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    out.extend_from_slice(&frame);
    for lane in coded.iter().flat_map(|s| &s.lanes) {
        out.extend_from_slice(&lane.rans);
        out.extend_from_slice(&lane.bits);
    }
    Ok((out, head.len()))
}

/// Appends blocks to `teacher-NNNNN.tkc.tmp`; `finish` writes the id table (formats 2, 3),
/// the index and the footer, and renames the file into place.
pub struct CacheWriter {
    params: CacheParams,
    version: u32,
    file: AtomicFile,
    header_crc: u32,
    offset: u64,
    index: Vec<IndexEntry>,
    n_examples: u64,
    n_positions: u64,
    n_entries: u64,
    block_examples: usize,
    level: i32,
    /// Formats 2 and 3: the id table, made from the first `push`.
    map: Option<IdMap>,
}

impl CacheWriter {
    /// A writer of the current format (VERSION).
    pub fn create(
        path: &Path,
        params: CacheParams,
        block_examples: usize,
        level: i32,
    ) -> Result<Self> {
        Self::create_version(path, params, block_examples, level, VERSION)
    }

    /// A writer of format `version` (1, 2 or 3; the older ones only to test that old files
    /// stay readable and to compare against).
    pub fn create_version(
        path: &Path,
        params: CacheParams,
        block_examples: usize,
        level: i32,
        version: u32,
    ) -> Result<Self> {
        if !VERSIONS.contains(&version) {
            return Err(Error::Invalid(format!(
                "cache format version {version} (this build writes {VERSIONS:?})"
            )));
        }
        if params.id_bytes != 2 && params.id_bytes != 4 {
            return Err(Error::Invalid("id width must be 2 or 4 bytes".into()));
        }
        if params.k_max == 0 || params.k_max > u16::MAX as usize {
            return Err(Error::Invalid("k must be in 1..65535".into()));
        }
        if !(params.step > 0.0 && params.step <= MAX_STEP) {
            return Err(Error::Invalid(format!(
                "log-prob step must be in (0, {MAX_STEP}] nats (error at most half the step)"
            )));
        }
        let mut file = AtomicFile::create(path)?;
        let h = Header {
            version,
            mode: params.mode,
            id_bytes: params.id_bytes as u32,
            k_max: params.k_max as u32,
            step: params.step,
            sample_n: params.sample_n,
            block_examples: block_examples as u32,
        }
        .encode();
        file.write(&h)?;
        Ok(Self {
            params,
            version,
            file,
            header_crc: crc32fast::hash(&h),
            offset: HEADER_BYTES as u64,
            index: Vec::new(),
            n_examples: 0,
            n_positions: 0,
            n_entries: 0,
            block_examples: block_examples.max(1),
            level,
            map: None,
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
        if self.version >= 2 && self.map.is_none() {
            // the id table: frequencies of the first chunk's stored ids (invalid ids are
            // left out here and refused by encode_block)
            let ids = (0..n_pos).flat_map(|q| {
                c.ids[q * c.width..q * c.width + c.k[q] as usize]
                    .iter()
                    .filter(|&&id| (0..=u32::MAX as i64).contains(&id))
                    .map(|&id| id as u32)
            });
            self.map = Some(IdMap::from_ids(ids));
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
            let (comp, raw_len) = if self.version >= 3 {
                let map = self.map.as_ref().expect("made above");
                encode_block_v3(&self.params, map, c, ex0..ex1, pos0..pos1, self.level)?
            } else {
                let raw = encode_block(&self.params, self.map.as_ref(), c, ex0..ex1, pos0..pos1)?;
                let len = raw.payload.len();
                (self.compress_parts(raw)?, len)
            };
            self.file.write(&comp)?;

            self.n_entries += c.k[pos0..pos1].iter().map(|&k| k as u64).sum::<u64>();
            self.index.push(IndexEntry {
                offset: self.offset,
                comp_len: comp.len() as u64,
                first_example: self.n_examples,
                n_examples: (ex1 - ex0) as u32,
                n_positions: (pos1 - pos0) as u32,
                raw_len: raw_len as u32,
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

    /// Formats 1 and 2: the payload as one zstd frame (1) or one per non-empty part (2).
    fn compress_parts(&self, raw: RawBlock) -> Result<Vec<u8>> {
        if self.version == 1 {
            return compress(&raw.payload, self.level);
        }
        let mut comp = Vec::new();
        let mut start = 0;
        for &end in &raw.part_ends {
            if end > start {
                comp.extend(compress(&raw.payload[start..end], self.level)?);
            }
            start = end;
        }
        Ok(comp)
    }

    pub fn finish(mut self) -> Result<CacheInfo> {
        let table = if self.version >= 2 {
            let ids = self.map.as_ref().map_or(&[][..], |m| &m.table[..]);
            let mut raw = Vec::with_capacity(ids.len() * self.params.id_bytes);
            put_planes(&mut raw, ids, self.params.id_bytes);
            let comp = compress(&raw, self.level)?;
            let t = TableRef {
                offset: self.offset,
                n_ids: ids.len() as u32,
                crc: crc32fast::hash(&comp),
            };
            self.file.write(&comp)?;
            self.offset += comp.len() as u64;
            Some(t)
        } else {
            None
        };
        let mut idx = Vec::with_capacity(self.index.len() * INDEX_ENTRY_BYTES);
        for e in &self.index {
            e.encode(&mut idx);
        }
        self.file.write(&idx)?;
        let footer = Footer {
            n_examples: self.n_examples,
            n_positions: self.n_positions,
            index_offset: self.offset,
            n_blocks: self.index.len() as u64,
            index_crc: crc32fast::hash(&idx),
            header_crc: self.header_crc,
            table,
        };
        self.file.write(&footer.encode())?;
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
