//! The `.tkc` byte layout in one place: header, block index entry, footer, the id table of
//! formats 2 and 3, the varints of the block payload and format 3's coding contexts. The writer and the reader both go
//! through these types; no offset is spelled out anywhere else. Documented byte by byte in
//! docs/FORMATS.md.

use super::Mode;

pub const MAGIC: &[u8; 8] = b"WWMTKC\0\0";
pub const FOOTER_MAGIC: &[u8; 8] = b"WWMTKCF\0";
/// The version a writer produces unless told otherwise.
pub const VERSION: u32 = 3;
/// The versions this build reads (and can write).
pub const VERSIONS: [u32; 3] = [1, 2, 3];
pub const HEADER_BYTES: usize = 64;
pub const INDEX_ENTRY_BYTES: usize = 40;
/// Largest quantised value: log-probs below −q_max·step are stored as −q_max·step.
pub const Q_MAX: u32 = 65535;
/// Ids at or above this are never ranked (they stay as they are); bounds the reader's
/// tables (2 × 4 bytes × this at most).
pub const RANK_ID_LIMIT: u32 = 1 << 22;

/// Little-endian fields appended in order.
struct Put(Vec<u8>);

impl Put {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Little-endian fields read in order from a slice whose length the caller checked.
struct Get<'a>(&'a [u8]);

impl Get<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (a, rest) = self.0.split_at(N);
        self.0 = rest;
        a.try_into().unwrap()
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn f32(&mut self) -> f32 {
        f32::from_le_bytes(self.take())
    }
}

/// The 64-byte header at offset 0 (the same fields in both versions).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub mode: Mode,
    pub id_bytes: u32,
    pub k_max: u32,
    pub step: f32,
    pub sample_n: u32,
    pub block_examples: u32,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Put(Vec::with_capacity(HEADER_BYTES));
        p.bytes(MAGIC)
            .u32(self.version)
            .u32(self.mode.code())
            .u32(self.id_bytes)
            .u32(self.k_max)
            .f32(self.step)
            .u32(self.sample_n)
            .u32(self.block_examples);
        p.0.resize(HEADER_BYTES, 0); // reserved, zero
        p.0
    }

    /// `b` holds at least HEADER_BYTES bytes.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < HEADER_BYTES || &b[..8] != MAGIC {
            return Err("not a teacher cache (bad magic or too short)".into());
        }
        let mut g = Get(&b[8..HEADER_BYTES]);
        let version = g.u32();
        if !VERSIONS.contains(&version) {
            return Err(format!(
                "format version {version}, this build reads {VERSIONS:?}"
            ));
        }
        let mode = Mode::from_code(g.u32()).ok_or("unknown mode")?;
        let h = Header {
            version,
            mode,
            id_bytes: g.u32(),
            k_max: g.u32(),
            step: g.f32(),
            sample_n: g.u32(),
            block_examples: g.u32(),
        };
        if !(h.id_bytes == 2 || h.id_bytes == 4)
            || h.k_max == 0
            || !(h.step > 0.0 && h.step <= MAX_STEP)
        {
            return Err("corrupt header".into());
        }
        Ok(h)
    }
}

/// Where format 2 keeps its id table: `n_ids` ids, stored from `offset` up to the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRef {
    pub offset: u64,
    pub n_ids: u32,
    pub crc: u32,
}

/// The footer at the end of the file: 48 bytes in format 1, 64 in formats 2 and 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub n_examples: u64,
    pub n_positions: u64,
    pub index_offset: u64,
    pub n_blocks: u64,
    pub index_crc: u32,
    pub header_crc: u32,
    /// Formats 2 and 3.
    pub table: Option<TableRef>,
}

impl Footer {
    pub fn bytes(version: u32) -> usize {
        if version >= 2 {
            64
        } else {
            48
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut p = Put(Vec::with_capacity(64));
        p.u64(self.n_examples)
            .u64(self.n_positions)
            .u64(self.index_offset)
            .u64(self.n_blocks)
            .u32(self.index_crc)
            .u32(self.header_crc);
        if let Some(t) = self.table {
            p.u64(t.offset).u32(t.n_ids).u32(t.crc);
        }
        p.bytes(FOOTER_MAGIC);
        p.0
    }

    /// `b` is the last `Footer::bytes(version)` bytes of the file.
    pub fn decode(b: &[u8], version: u32) -> Result<Self, &'static str> {
        if b.len() != Self::bytes(version) || &b[b.len() - 8..] != FOOTER_MAGIC {
            return Err("truncated (no footer)");
        }
        let mut g = Get(b);
        let mut f = Footer {
            n_examples: g.u64(),
            n_positions: g.u64(),
            index_offset: g.u64(),
            n_blocks: g.u64(),
            index_crc: g.u32(),
            header_crc: g.u32(),
            table: None,
        };
        if version >= 2 {
            f.table = Some(TableRef {
                offset: g.u64(),
                n_ids: g.u32(),
                crc: g.u32(),
            });
        }
        Ok(f)
    }
}

/// One row of the block index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub offset: u64,
    pub comp_len: u64,
    pub first_example: u64,
    pub n_examples: u32,
    pub n_positions: u32,
    pub raw_len: u32,
    pub crc: u32,
}

impl IndexEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut p = Put(std::mem::take(out));
        p.u64(self.offset)
            .u64(self.comp_len)
            .u64(self.first_example)
            .u32(self.n_examples)
            .u32(self.n_positions)
            .u32(self.raw_len)
            .u32(self.crc);
        *out = p.0;
    }

    /// `b` holds INDEX_ENTRY_BYTES bytes.
    pub fn decode(b: &[u8]) -> Self {
        let mut g = Get(b);
        IndexEntry {
            offset: g.u64(),
            comp_len: g.u64(),
            first_example: g.u64(),
            n_examples: g.u32(),
            n_positions: g.u32(),
            raw_len: g.u32(),
            crc: g.u32(),
        }
    }
}

/// The bijection between ids and ranks of formats 2 and 3. The table lists ids by decreasing frequency
/// (ties by id); `T` = 1 + its largest id. Rank `r < L` (table length) is `table[r]`; the
/// ranks `L..T` are the ids below `T` missing from the table, in increasing order; ids
/// (and ranks) `≥ T` map to themselves.
#[derive(Clone, Debug, Default)]
pub struct IdMap {
    pub table: Vec<u32>,
    to_rank: Vec<u32>,
    to_id: Vec<u32>,
}

impl IdMap {
    /// The table of `ids` ranked by decreasing count (ties by increasing id); ids at or
    /// above RANK_ID_LIMIT are left out.
    pub fn from_ids(ids: impl Iterator<Item = u32>) -> Self {
        let mut counts: Vec<u32> = Vec::new();
        for id in ids.filter(|&id| id < RANK_ID_LIMIT) {
            let i = id as usize;
            if i >= counts.len() {
                counts.resize(i + 1, 0);
            }
            counts[i] += 1;
        }
        let mut table: Vec<u32> = (0..counts.len() as u32)
            .filter(|&i| counts[i as usize] > 0)
            .collect();
        table.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
        Self::from_table(table).expect("a table built from counts is valid")
    }

    /// From a stored table; `Err` if an id repeats or is out of range.
    pub fn from_table(table: Vec<u32>) -> Result<Self, &'static str> {
        let t = table.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
        if t > RANK_ID_LIMIT as usize {
            return Err("id table entry out of range");
        }
        const NONE: u32 = u32::MAX;
        let mut to_rank = vec![NONE; t];
        for (r, &id) in table.iter().enumerate() {
            if to_rank[id as usize] != NONE {
                return Err("id table repeats an id");
            }
            to_rank[id as usize] = r as u32;
        }
        let mut to_id = Vec::with_capacity(t);
        to_id.extend_from_slice(&table);
        for id in 0..t as u32 {
            if to_rank[id as usize] == NONE {
                to_rank[id as usize] = to_id.len() as u32;
                to_id.push(id);
            }
        }
        Ok(Self {
            table,
            to_rank,
            to_id,
        })
    }

    #[inline(always)]
    pub fn rank(&self, id: u32) -> u32 {
        match self.to_rank.get(id as usize) {
            Some(&r) => r,
            None => id,
        }
    }

    #[inline(always)]
    pub fn id(&self, rank: u32) -> u32 {
        match self.to_id.get(rank as usize) {
            Some(&i) => i,
            None => rank,
        }
    }
}

/// `values` as `width`-byte little-endian byte planes: all low bytes, then all second
/// bytes, …
pub fn put_planes(out: &mut Vec<u8>, values: &[u32], width: usize) {
    let start = out.len();
    let n = values.len();
    out.resize(start + n * width, 0);
    for (e, &v) in values.iter().enumerate() {
        for (plane, &byte) in v.to_le_bytes().iter().enumerate().take(width) {
            out[start + plane * n + e] = byte;
        }
    }
}

/// Inverse of `put_planes`: `planes` holds exactly `n * width` bytes.
pub fn get_planes(planes: &[u8], n: usize, width: usize) -> Vec<u32> {
    let mut v = vec![0u32; n];
    if n == 0 {
        return v;
    }
    for (plane, bytes) in planes.chunks_exact(n).enumerate().take(width) {
        let shift = 8 * plane;
        for (x, &byte) in v.iter_mut().zip(bytes) {
            *x |= (byte as u32) << shift;
        }
    }
    v
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u32) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// LEB128 varint at `buf[*at..]` (at most 5 bytes); `None` if truncated or too long.
#[inline(always)]
pub fn read_varint(buf: &[u8], at: &mut usize) -> Option<u32> {
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

/// Format 3: the slot bucket of entry `j` of a position: 0 for j = 0, else 1 + ⌊log2 j⌋,
/// at most 7 (entries 64 and beyond share one).
#[inline(always)]
pub fn slot_bucket(j: usize) -> usize {
    if j == 0 {
        0
    } else {
        (1 + j.ilog2() as usize).min(SLOT_BUCKETS - 1)
    }
}

/// The coarsest log-prob quantisation step a cache may use, in nats (a stored log-prob is
/// then off by at most 0.1 nats: 10 % of the probability).
pub const MAX_STEP: f32 = 0.2;

/// The default step: a stored log-prob is off by at most 0.05 nats. On the quality
/// benchmark's teacher that costs 2.5e-4 nats of KL (truncation to the top 128: 0.75;
/// `benches/explore_step.py`), students distilled from caches at steps 0.019, 0.05 and 0.1
/// score the same within their spread over 3 seeds (`benches/ablate_step.py`), and the
/// cache is 20 % smaller than at 0.019 (145 against 181 bytes per top-128 position).
pub const DEFAULT_STEP: f32 = 0.1;

pub const SLOT_BUCKETS: usize = 8;

/// Format 3's coding contexts of the values (the first value, then the deltas): the slot
/// bucket.
pub const VALUE_CONTEXTS: usize = SLOT_BUCKETS;
/// ... of the ranks: the slot bucket, and whether the entry ties with the one before it.
pub const RANK_CONTEXTS: usize = 2 * SLOT_BUCKETS;

/// Format 3 codes values and ranks each in this many streams: entry `j` of every position
/// goes to stream `j mod LANES`, so that a decoder works on two independent chains.
pub const LANES: usize = 2;

/// Context of the value (or delta) of entry `j`.
#[inline(always)]
pub fn value_context(j: usize) -> usize {
    slot_bucket(j)
}

/// Context of the rank of entry `j`; `tied`: `j ≥ 2` and its stored value equals entry
/// `j − 1`'s (then the rank is coded as the increase over entry `j − 1`'s).
#[inline(always)]
pub fn rank_context(j: usize, tied: bool) -> usize {
    SLOT_BUCKETS * tied as usize + slot_bucket(j)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_map_is_a_bijection() {
        let m = IdMap::from_ids([7u32, 3, 7, 9, 3, 7, 20].into_iter());
        assert_eq!(m.table, vec![7, 3, 9, 20]);
        for id in 0..40u32 {
            assert_eq!(m.id(m.rank(id)), id);
        }
        assert_eq!(m.rank(0), 4); // first id missing from the table
        assert_eq!(m.rank(21), 21); // beyond T
        assert_eq!(m.rank(RANK_ID_LIMIT + 5), RANK_ID_LIMIT + 5);
        assert!(IdMap::from_table(vec![1, 2, 1]).is_err());
        assert!(IdMap::from_table(vec![RANK_ID_LIMIT]).is_err());
        let empty = IdMap::from_ids(std::iter::empty());
        assert_eq!((empty.rank(5), empty.id(5)), (5, 5));
    }

    #[test]
    fn layouts_round_trip() {
        let h = Header {
            version: 2,
            mode: Mode::TopP,
            id_bytes: 2,
            k_max: 128,
            step: 0.019,
            sample_n: 0,
            block_examples: 256,
        };
        let b = h.encode();
        assert_eq!(b.len(), HEADER_BYTES);
        assert_eq!(Header::decode(&b).unwrap(), h);
        for table in [
            None,
            Some(TableRef {
                offset: 9,
                n_ids: 3,
                crc: 4,
            }),
        ] {
            let f = Footer {
                n_examples: 1,
                n_positions: 2,
                index_offset: 3,
                n_blocks: 4,
                index_crc: 5,
                header_crc: 6,
                table,
            };
            let v = if table.is_some() { 2 } else { 1 };
            let b = f.encode();
            assert_eq!(b.len(), Footer::bytes(v));
            assert_eq!(Footer::decode(&b, v).unwrap(), f);
        }
        let e = IndexEntry {
            offset: 1,
            comp_len: 2,
            first_example: 3,
            n_examples: 4,
            n_positions: 5,
            raw_len: 6,
            crc: 7,
        };
        let mut b = vec![];
        e.encode(&mut b);
        assert_eq!(b.len(), INDEX_ENTRY_BYTES);
        assert_eq!(IndexEntry::decode(&b), e);
        let v = [1u32, 70000, 258, 0];
        let mut p = vec![];
        put_planes(&mut p, &v, 4);
        assert_eq!(get_planes(&p, 4, 4), v);
    }
}
