//! Teacher caches: `teacher-NNNNN.tkc`, one per example shard. Per masked position the
//! teacher's stored entries (ids, quantised full-softmax log-probs or sample counts) and
//! the tail mass. Blocks of examples are independent zstd frames (with content checksums)
//! indexed by a table at the end, so a reader memory-maps the file and decodes only the
//! blocks it needs. Format 2 stores frequency ranks instead of ids (the rank table once
//! per file); format 3 entropy-codes the values and ranks (`ans.rs`); format 1 and 2 files
//! stay readable. Byte layout: `format.rs`, docs/FORMATS.md.

mod ans;
mod dir;
mod format;
pub mod manifest;
mod reader;
mod writer;

pub use dir::{TeacherCache, LRU_BLOCKS};
pub use manifest::{read_cache_manifest, shard_name, write_cache_manifest, CacheManifest};

pub use format::{
    DEFAULT_STEP, FOOTER_MAGIC, HEADER_BYTES, INDEX_ENTRY_BYTES, MAGIC, MAX_STEP, Q_MAX, VERSION,
    VERSIONS,
};
pub use reader::CacheReader;
pub use writer::{default_level, CacheWriter};

use crate::error::{Error, Result};

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
    pub(crate) fn code(self) -> u32 {
        match self {
            Mode::TopK => 0,
            Mode::TopP => 1,
            Mode::Sample => 2,
        }
    }
    pub(crate) fn from_code(c: u32) -> Option<Self> {
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

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheInfo {
    pub examples: u64,
    pub positions: u64,
    pub entries: u64,
    pub bytes: u64,
    pub sha256: String,
}

pub struct Gathered {
    pub n: usize,
    pub width: usize,
    pub ids: Vec<i64>,
    pub logp: Vec<f32>,
    pub tail: Vec<f32>,
    pub counts: Vec<i32>,
}

impl Gathered {
    /// Empty arrays with room for `n` positions of `width` entries.
    pub fn with_capacity(n: usize, width: usize) -> Self {
        Self {
            n,
            width,
            ids: Vec::with_capacity(n * width),
            logp: Vec::with_capacity(n * width),
            tail: Vec::with_capacity(n),
            counts: Vec::with_capacity(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::path::Path;

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
    fn round_trip_all_modes_all_versions() {
        for (mode, version) in [Mode::TopK, Mode::TopP, Mode::Sample]
            .into_iter()
            .flat_map(|m| VERSIONS.map(|v| (m, v)))
        {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("teacher-00000.tkc");
            let p = params(mode);
            let mut w = CacheWriter::create_version(&path, p, 7, 3, version).unwrap();
            // the second push holds ids the first (format 2's id table) never saw
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
            assert_eq!((r.params, r.version), (p, version));
            let all: Vec<u64> = (0..50).collect();
            let g = r.gather(&all).unwrap();
            assert_eq!(g.n, k.len());
            // format 3 stores entries of equal value (from entry 1 on) by rank: compare the
            // written entries in that order
            let mut want_ids = ids.clone();
            if version >= 3 {
                for row in 0..g.n {
                    let kk = k[row] as usize;
                    let got = &g.ids[row * g.width..row * g.width + kk];
                    let want = &mut want_ids[row * 8..row * 8 + kk];
                    assert_eq!(got[0], want[0], "the first entry keeps its place");
                    let key = |j: usize| match mode {
                        Mode::Sample => counts[row * 8 + j] as u32,
                        _ => quantise(logp[row * 8 + j], p.step),
                    };
                    let mut j = 1;
                    while j < kk {
                        let mut end = j + 1;
                        while end < kk && key(end) == key(j) {
                            end += 1;
                        }
                        let mut run = got[j..end].to_vec();
                        run.sort_unstable();
                        want[j..end].sort_unstable();
                        assert_eq!(run, want[j..end].to_vec(), "a tie run holds other ids");
                        want[j..end].copy_from_slice(&got[j..end]);
                        j = end;
                    }
                }
            }
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
                    assert_eq!(gid, want_ids[row * 8 + j]);
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
        for version in VERSIONS {
            corruption_of(version);
        }
    }

    fn corruption_of(version: u32) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tkc");
        let mut w = CacheWriter::create_version(&path, params(Mode::TopP), 5, 3, version).unwrap();
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

    /// Writes `o` (pushed in two parts) with format `version` and returns everything read
    /// back.
    fn write_read(o: &Outputs, p: CacheParams, version: u32, dir: &Path) -> Gathered {
        let path = dir.join(format!("v{version}.tkc"));
        let mut w = CacheWriter::create_version(&path, p, 4, 3, version).unwrap();
        let n_ex = o.0.len();
        let split = n_ex / 3;
        let ps: usize = o.0[..split].iter().map(|&n| n as usize).sum();
        let w8 = |a: usize, b: usize| a * 8..b * 8;
        let n_pos = o.1.len();
        for (ex, pr) in [(0..split, 0..ps), (split..n_ex, ps..n_pos)] {
            w.push(&Chunk {
                positions_per_example: &o.0[ex],
                k: &o.1[pr.clone()],
                width: 8,
                ids: &o.2[w8(pr.start, pr.end)],
                logp: &o.3[w8(pr.start, pr.end)],
                counts: &o.4[w8(pr.start, pr.end)],
                tail: &o.5[pr.clone()],
            })
            .unwrap();
        }
        w.finish().unwrap();
        let r = CacheReader::open(&path, 3).unwrap();
        assert_eq!(r.version, version);
        r.gather(&(0..n_ex as u64).collect::<Vec<_>>()).unwrap()
    }

    /// `g` with the entries of each run of equal log-probs (from entry 1 on) sorted by id.
    fn ties_by_id(g: &Gathered) -> Gathered {
        let mut out = Gathered::with_capacity(g.n, g.width);
        out.ids = g.ids.clone();
        out.logp = g.logp.clone();
        out.tail = g.tail.clone();
        out.counts = g.counts.clone();
        for row in 0..g.n {
            let (r0, k) = (row * g.width, g.counts[row] as usize);
            let mut j = 1;
            while j < k {
                let mut end = j + 1;
                while end < k && g.logp[r0 + end].to_bits() == g.logp[r0 + j].to_bits() {
                    end += 1;
                }
                out.ids[r0 + j..r0 + end].sort_unstable();
                j = end;
            }
        }
        out
    }

    fn assert_same(a: &Gathered, b: &Gathered) {
        assert_eq!((a.n, a.width), (b.n, b.width));
        assert_eq!(a.ids, b.ids);
        assert_eq!(a.counts, b.counts);
        // the same stored integers through the same decoding arithmetic: bit-identical
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.logp), bits(&b.logp));
        assert_eq!(bits(&a.tail), bits(&b.tail));
    }

    #[test]
    fn versions_2_and_3_read_back_what_version_1_does() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [Mode::TopK, Mode::TopP, Mode::Sample] {
            for id_bytes in [2, 4] {
                let mut o = outputs(mode, 60, 5);
                if id_bytes == 4 {
                    // ids beyond 16 bits and beyond the rank table's limit
                    for (i, id) in o.2.iter_mut().enumerate() {
                        *id = match i % 5 {
                            0 => *id + 70_000,
                            1 => format::RANK_ID_LIMIT as i64 + i as i64,
                            2 => u32::MAX as i64 - (i as i64 % 7),
                            _ => *id,
                        };
                    }
                }
                let p = CacheParams {
                    id_bytes,
                    ..params(mode)
                };
                let v1 = write_read(&o, p, 1, dir.path());
                let v2 = write_read(&o, p, 2, dir.path());
                assert_same(&v1, &v2);
                // format 3: the same up to the order of entries of equal value
                let v3 = write_read(&o, p, 3, dir.path());
                for row in 0..v1.n {
                    assert_eq!(v1.ids[row * v1.width], v3.ids[row * v3.width]);
                }
                assert_same(&ties_by_id(&v1), &ties_by_id(&v3));
            }
        }
    }

    #[test]
    fn empty_and_position_free_shards() {
        let dir = tempfile::tempdir().unwrap();
        for version in VERSIONS {
            // no push at all
            let path = dir.path().join(format!("empty{version}.tkc"));
            let w = CacheWriter::create_version(&path, params(Mode::TopK), 4, 3, version).unwrap();
            assert_eq!(w.finish().unwrap().examples, 0);
            let r = CacheReader::open(&path, 2).unwrap();
            assert_eq!((r.n_examples, r.n_blocks()), (0, 0));
            // examples without masked positions
            let o: Outputs = (vec![0; 9], vec![], vec![], vec![], vec![], vec![]);
            let g = write_read(&o, params(Mode::TopK), version, dir.path());
            assert_eq!(g.n, 0);
        }
    }

    #[test]
    fn a_huge_id_table_length_is_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tkc");
        let mut w = CacheWriter::create(&path, params(Mode::TopK), 4, 3).unwrap();
        w.push(&whole(&outputs(Mode::TopK, 10, 3))).unwrap();
        w.finish().unwrap();
        let mut data = std::fs::read(&path).unwrap();
        let at = data.len() - format::Footer::bytes(2) + 48; // table_ids
        data[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&path, &data).unwrap();
        let e = CacheReader::open(&path, 2).err().unwrap().to_string();
        assert!(e.contains("id table") && e.contains("t.tkc"), "{e}");
    }

    #[test]
    fn unknown_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tkc");
        assert!(CacheWriter::create_version(&path, params(Mode::TopK), 4, 3, 4).is_err());
        let w = CacheWriter::create(&path, params(Mode::TopK), 4, 3).unwrap();
        w.finish().unwrap();
        let mut data = std::fs::read(&path).unwrap();
        data[8] = 4; // the version field
        std::fs::write(&path, &data).unwrap();
        let e = CacheReader::open(&path, 2).err().unwrap().to_string();
        assert!(e.contains("version 4") && e.contains("t.tkc"), "{e}");
    }
}
