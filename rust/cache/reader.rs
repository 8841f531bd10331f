//! Reading a shard: memory-mapped, blocks decoded on demand into a small LRU. Formats 1,
//! 2 and 3 decode to the same values (format 3 orders entries of equal value by rank).

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use super::ans;
use super::format::{
    get_planes, rank_context, read_varint, value_context, Footer, Header, IdMap, IndexEntry,
    HEADER_BYTES, INDEX_ENTRY_BYTES, LANES, RANK_CONTEXTS, RANK_ID_LIMIT, VALUE_CONTEXTS,
};
use super::{CacheParams, Gathered, Mode};
use crate::error::{Error, Result};
use crate::io::map_file;

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

/// A memory-mapped cache shard with a small LRU of decoded blocks.
pub struct CacheReader {
    pub path: PathBuf,
    map: Mmap,
    pub params: CacheParams,
    /// Format version of the file (1, 2 or 3).
    pub version: u32,
    pub n_examples: u64,
    pub n_positions: u64,
    index: Vec<IndexEntry>,
    /// Formats 2 and 3: rank → id.
    ids: Option<IdMap>,
    lru: Mutex<lru::LruCache<usize, Arc<Block>>>,
}

impl CacheReader {
    pub fn open(path: &Path, lru_blocks: usize) -> Result<Self> {
        let map = map_file(path)?;
        let bad = |m: &str| Error::data(path.display().to_string(), m.to_string());
        let h = Header::decode(&map).map_err(|m| bad(&m))?;
        let footer_bytes = Footer::bytes(h.version);
        if map.len() < HEADER_BYTES + footer_bytes {
            return Err(bad("truncated (no footer)"));
        }
        let foot = map.len() - footer_bytes;
        let f = Footer::decode(&map[foot..], h.version).map_err(bad)?;
        if crc32fast::hash(&map[..HEADER_BYTES]) != f.header_crc {
            return Err(bad("header checksum mismatch"));
        }
        let index_len = (f.n_blocks as usize).checked_mul(INDEX_ENTRY_BYTES);
        let index_offset = f.index_offset as usize;
        if index_len.and_then(|l| l.checked_add(index_offset)) != Some(foot) {
            return Err(bad("block index does not fit the file (truncated?)"));
        }
        let idx = &map[index_offset..foot];
        if crc32fast::hash(idx) != f.index_crc {
            return Err(bad("block index checksum mismatch"));
        }
        // the blocks end where the id table (formats 2, 3) or the index (format 1) starts
        let blocks_end = match f.table {
            Some(t) if t.offset >= HEADER_BYTES as u64 && t.offset <= f.index_offset => t.offset,
            Some(_) => return Err(bad("id table does not fit the file")),
            None => f.index_offset,
        };
        let ids = match f.table {
            Some(t) => {
                let comp = &map[t.offset as usize..index_offset];
                if crc32fast::hash(comp) != t.crc {
                    return Err(bad("id table checksum mismatch"));
                }
                let n = t.n_ids as usize;
                if t.n_ids > RANK_ID_LIMIT {
                    return Err(bad("id table too long")); // before allocating for it
                }
                let raw_len = n
                    .checked_mul(h.id_bytes as usize)
                    .ok_or_else(|| bad("id table too long"))?;
                let raw = zstd::bulk::decompress(comp, raw_len)
                    .map_err(|e| bad(&format!("id table: zstd: {e}")))?;
                if raw.len() != raw_len {
                    return Err(bad("id table size differs from the footer"));
                }
                let table = get_planes(&raw, n, h.id_bytes as usize);
                Some(IdMap::from_table(table).map_err(bad)?)
            }
            None => None,
        };
        let mut index = Vec::with_capacity(f.n_blocks as usize);
        let (mut next_ex, mut next_off, mut pos_total) = (0u64, HEADER_BYTES as u64, 0u64);
        for (b, raw) in idx.chunks_exact(INDEX_ENTRY_BYTES).enumerate() {
            let e = IndexEntry::decode(raw);
            if e.offset != next_off || e.first_example != next_ex || e.n_examples == 0 {
                return Err(bad(&format!("block {b}: index entry out of sequence")));
            }
            next_off = e.offset.saturating_add(e.comp_len);
            next_ex += e.n_examples as u64;
            pos_total += e.n_positions as u64;
            index.push(e);
        }
        if next_off != blocks_end || next_ex != f.n_examples || pos_total != f.n_positions {
            return Err(bad("block index disagrees with the footer"));
        }
        Ok(Self {
            path: path.to_path_buf(),
            map,
            params: CacheParams {
                mode: h.mode,
                id_bytes: h.id_bytes as usize,
                k_max: h.k_max as usize,
                step: h.step,
                sample_n: h.sample_n,
            },
            version: h.version,
            n_examples: f.n_examples,
            n_positions: f.n_positions,
            index,
            ids,
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
        if self.version >= 3 {
            return self.decode_v3(e, comp, &what);
        }
        let raw = Self::unzstd(e, comp, &what)?;
        let mut c = Cursor {
            buf: &raw,
            at: 0,
            what: &what,
        };
        let (ex_pos, pos_entry, tail) = self.counts(&mut c, e)?;
        let entries = *pos_entry.last().unwrap() as usize;
        let ib = self.params.id_bytes;
        let mut ids = get_planes(c.take(entries * ib)?, entries, ib);
        if let Some(m) = &self.ids {
            for id in ids.iter_mut() {
                *id = m.id(*id); // rank → id
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

    /// A zstd frame of the block's raw payload (all of it, or format 3's head), which must
    /// decode to the index's `raw_len` bytes.
    fn unzstd(e: &IndexEntry, frame: &[u8], what: &str) -> Result<Vec<u8>> {
        let bad = |m: &str| Error::data(what.to_string(), m.to_string());
        let raw = zstd::bulk::decompress(frame, e.raw_len as usize)
            .map_err(|err| bad(&format!("zstd: {err}")))?;
        if raw.len() != e.raw_len as usize {
            return Err(bad("decoded size differs from the index"));
        }
        Ok(raw)
    }

    /// Format 3: the zstd frame of the head (counts, tables, stream lengths), then the
    /// coded lanes (rANS words and raw bits) of the values and of the ranks.
    fn decode_v3(&self, e: &IndexEntry, comp: &[u8], what: &str) -> Result<Block> {
        let bad = |m: &str| Error::data(what.to_string(), m.to_string());
        let frame_len = comp
            .get(..4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()) as usize)
            .filter(|&n| n <= comp.len() - 4)
            .ok_or_else(|| bad("block is truncated"))?;
        let raw = Self::unzstd(e, &comp[4..4 + frame_len], what)?;
        let mut c = Cursor {
            buf: &raw,
            at: 0,
            what,
        };
        let (ex_pos, pos_entry, tail) = self.counts(&mut c, e)?;
        let bad_varint = || bad("bad or truncated varint in block payload");
        let mut read_tables = |n_ctx: usize| -> Result<Vec<Vec<u32>>> {
            let mut tables = Vec::with_capacity(n_ctx);
            for _ in 0..n_ctx {
                let n = read_varint(&raw, &mut c.at).ok_or_else(bad_varint)? as usize;
                if n > ans::TOKENS {
                    return Err(bad("entropy table too long"));
                }
                let mut t = Vec::with_capacity(n);
                for _ in 0..n {
                    t.push(read_varint(&raw, &mut c.at).ok_or_else(bad_varint)?);
                }
                tables.push(t);
            }
            Ok(tables)
        };
        let value_tables = read_tables(VALUE_CONTEXTS)?;
        let rank_tables = read_tables(RANK_CONTEXTS)?;
        // values' streams, then the ranks': each rANS words, then raw bits
        let mut lens = [0usize; 4 * LANES];
        for l in lens.iter_mut() {
            *l = c.u32()? as usize;
        }
        if c.at != raw.len() {
            return Err(bad("trailing bytes in block head"));
        }
        let mut streams = &comp[4 + frame_len..];
        if lens.iter().try_fold(0usize, |a, &l| a.checked_add(l)) != Some(streams.len()) {
            return Err(bad("coded streams do not fill the block"));
        }
        let value_tables = ans::Tables::<VALUE_CONTEXTS>::new(&value_tables).map_err(bad)?;
        let rank_tables = ans::Tables::<RANK_CONTEXTS>::new(&rank_tables).map_err(bad)?;
        if lens.chunks_exact(2).any(|l| l[1] > ans::MAX_BITS_BYTES) {
            return Err(bad("coded stream too long"));
        }
        let mut decoders = Vec::with_capacity(2 * LANES);
        for l in lens.chunks_exact(2) {
            let (words, rest) = streams.split_at(l[0]);
            let (bits, rest) = rest.split_at(l[1]);
            streams = rest;
            decoders.push(
                ans::Decoder::new(words, bits).ok_or_else(|| bad("coded streams are truncated"))?,
            );
        }
        const _: () = assert!(
            LANES == 2,
            "the decoding loops take turns between two lanes"
        );
        let [v0, v1, r0, r1]: [ans::Decoder; 4] =
            decoders.try_into().map_err(|_| bad("coded streams"))?;
        let (mut dv, mut dr) = ([v0, v1], [r0, r1]);
        let entries = *pos_entry.last().unwrap() as usize;
        let bad_count = || bad("sample count out of range");
        let sample = self.params.mode == Mode::Sample;
        let n_draws = self.params.sample_n.max(1);
        let step = self.params.step;
        let map = self.ids.as_ref().ok_or_else(|| bad("no id table"))?;
        // two passes, entry j from lane j mod 2: every value (the first, then the
        // deltas), then every rank (entries tied in value code the increase over the rank
        // before)
        let k_max = pos_entry.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
        let value_ctx: Vec<u8> = (0..k_max).map(|j| value_context(j) as u8).collect();
        // the values are decoded into the log-probs' own memory (as integers), and the
        // ranks into the ids', then each converted in place
        let mut logp = vec![0f32; entries];
        let vals: &mut [u32] = bytemuck::cast_slice_mut(&mut logp);
        let mut wrapped = false;
        for w in pos_entry.windows(2) {
            let v = &mut vals[w[0] as usize..w[1] as usize];
            ans::values2(&mut dv, &value_tables, v, &value_ctx[..v.len()]);
            // prefix sums (sample mode: of decreasing counts)
            let mut acc = 0u32;
            for (j, x) in v.iter_mut().enumerate() {
                if sample && j > 0 {
                    let (a, o) = acc.overflowing_sub(*x);
                    wrapped |= o;
                    acc = a;
                } else {
                    acc = acc.saturating_add(*x);
                }
                *x = acc;
            }
        }
        if wrapped {
            return Err(bad_count());
        }
        let mut ids = vec![0u32; entries];
        let mut overflow = false;
        let ctx_if = |tied: bool| -> Vec<u8> {
            (0..k_max)
                .map(|j| rank_context(j, tied && j >= 2) as u8)
                .collect()
        };
        let (untied_ctx, tied_ctx) = (ctx_if(false), ctx_if(true));
        let mut rank_ctx = vec![0u8; k_max];
        for w in pos_entry.windows(2) {
            let (e0, e1) = (w[0] as usize, w[1] as usize);
            let v = &vals[e0..e1];
            let k = v.len();
            // entry j ≥ 1 tied with entry j − 1 (what matters from j = 2 on)
            let tied = v.iter().zip(v.iter().skip(1)).map(|(a, b)| a == b);
            let ctx = &mut rank_ctx[..k];
            ctx[..k.min(1)].copy_from_slice(&untied_ctx[..k.min(1)]);
            let pairs = untied_ctx[1..k.max(1)].iter().zip(&tied_ctx[1..k.max(1)]);
            for (c, ((&u, &t), tied)) in ctx.iter_mut().skip(1).zip(pairs.zip(tied.clone())) {
                *c = if tied { t } else { u };
            }
            let r = &mut ids[e0..e1];
            ans::values2(&mut dr, &rank_tables, r, ctx);
            // a tied entry's rank (j ≥ 2) is the increase over the one before
            if k > 2 {
                let mut prev = r[1];
                for (x, tied) in r[2..].iter_mut().zip(tied.skip(1)) {
                    let y = x.wrapping_add(prev & (tied as u32).wrapping_neg());
                    overflow |= y < *x;
                    *x = y;
                    prev = y;
                }
            }
        }
        for r in ids.iter_mut() {
            *r = map.id(*r);
        }
        if sample {
            // ln(count / N) from a table: counts are 1..=N
            let lut: Vec<f32> = (0..=n_draws)
                .map(|c| (c as f32 / n_draws as f32).ln())
                .collect();
            let mut bad_value = false;
            for x in logp.iter_mut() {
                let c = x.to_bits() as usize;
                bad_value |= c == 0 || c >= lut.len();
                *x = lut[c.min(n_draws as usize)];
            }
            if bad_value {
                return Err(bad_count());
            }
        } else {
            for x in logp.iter_mut() {
                *x = -(x.to_bits() as f32) * step;
            }
        }
        if overflow || !dv.iter().chain(&dr).all(|d| d.finished()) {
            return Err(bad(
                "corrupt or truncated entropy-coded streams (they do not end where the block does)",
            ));
        }
        Ok(Block {
            ex_pos,
            pos_entry,
            tail,
            ids,
            logp,
        })
    }

    /// The per-example and per-position part shared by every format: counts, positions per
    /// example, entries per position, tails.
    #[allow(clippy::type_complexity)]
    fn counts(&self, c: &mut Cursor<'_>, e: &IndexEntry) -> Result<(Vec<u32>, Vec<u32>, Vec<f32>)> {
        let bad = |m: &str| Error::data(c.what.to_string(), m.to_string());
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
        let tail: Vec<f32> = c
            .take(n_pos * 4)?
            .chunks_exact(4)
            .map(|ch| f32::from_le_bytes(ch.try_into().unwrap()))
            .collect();
        Ok((ex_pos, pos_entry, tail))
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
        let mut g = Gathered::with_capacity(n, width);
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
