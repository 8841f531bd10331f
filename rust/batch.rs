//! Training batches: example shards + teacher cache → padded arrays, assembled in
//! background threads with a bounded prefetch queue.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};

use crate::cache::manifest::{shard_path, CACHE_MANIFEST_FILE};
use crate::cache::{CacheReader, TeacherCache};
use crate::error::{Error, Result};
use crate::examples::{read_manifest, Shard};

/// Examples (and optionally their teacher cache) addressed by global index.
pub struct Dataset {
    shards: Vec<Shard>,
    caches: Vec<CacheReader>,
    starts: Vec<u64>,
    pub pad_id: u32,
}

pub struct Batch {
    pub rows: usize,
    pub width: usize,
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub masked_rows: Vec<i64>,
    pub masked_positions: Vec<i64>,
    pub masked_labels: Vec<i64>,
    /// Teacher entries (empty without a cache): `[N, k]`.
    pub k: usize,
    pub teacher_ids: Vec<i64>,
    pub teacher_logp: Vec<f32>,
    pub teacher_tail: Vec<f32>,
    pub teacher_counts: Vec<i32>,
}

impl Dataset {
    pub fn open(examples: &Path, cache: Option<&Path>) -> Result<Self> {
        let m = read_manifest(examples)?;
        let mut shards = Vec::with_capacity(m.shards.len());
        let mut starts = vec![0u64];
        for s in &m.shards {
            let sh = Shard::open(examples, &s.name)?;
            starts.push(starts.last().unwrap() + sh.n as u64);
            shards.push(sh);
        }
        let mut caches = Vec::new();
        if let Some(dir) = cache {
            let c = TeacherCache::open(dir)?;
            if c.readers.len() != shards.len() {
                return Err(Error::data(
                    dir.join(CACHE_MANIFEST_FILE).display().to_string(),
                    format!(
                        "lists {} shards, the examples have {}: cache and examples do not match",
                        c.readers.len(),
                        shards.len()
                    ),
                ));
            }
            for ((r, info), sh) in c.readers.into_iter().zip(&c.manifest.shards).zip(&shards) {
                if r.n_examples != sh.n as u64 {
                    return Err(Error::data(
                        shard_path(dir, &info.name).display().to_string(),
                        format!(
                            "holds {} examples, {} has {}: cache and examples do not match",
                            r.n_examples, sh.name, sh.n
                        ),
                    ));
                }
                caches.push(r);
            }
        }
        Ok(Self {
            shards,
            caches,
            starts,
            pad_id: m.vocab.pad_id,
        })
    }

    pub fn len(&self) -> u64 {
        *self.starts.last().unwrap()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn locate(&self, i: u64) -> Result<(usize, usize)> {
        if i >= self.len() {
            return Err(Error::Invalid(format!(
                "example {i} out of range ({} examples)",
                self.len()
            )));
        }
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        Ok((k, (i - self.starts[k]) as usize))
    }

    /// Pads `input_ids` to the longest example, rounded up to `multiple_of`.
    pub fn assemble(&self, indices: &[u64], multiple_of: usize) -> Result<Batch> {
        let located: Vec<(usize, usize)> = indices
            .iter()
            .map(|&i| self.locate(i))
            .collect::<Result<_>>()?;
        let mut width = 0usize;
        for &(k, j) in &located {
            width = width.max(self.shards[k].input_len(j));
        }
        let m = multiple_of.max(1);
        let width = width.div_ceil(m) * m;
        let rows = indices.len();
        let mut b = Batch {
            rows,
            width,
            input_ids: vec![self.pad_id as i64; rows * width],
            attention_mask: vec![0; rows * width],
            masked_rows: Vec::new(),
            masked_positions: Vec::new(),
            masked_labels: Vec::new(),
            k: 0,
            teacher_ids: Vec::new(),
            teacher_logp: Vec::new(),
            teacher_tail: Vec::new(),
            teacher_counts: Vec::new(),
        };
        let mut labels = Vec::new();
        for (r, &(k, j)) in located.iter().enumerate() {
            let sh = &self.shards[k];
            let (row, len) = (r * width, sh.input_len(j));
            sh.input_ids_to(j, &mut b.input_ids[row..row + len]);
            b.attention_mask[row..row + len].fill(1);
            labels.clear();
            sh.labels_into(j, &mut labels);
            for (&p, &l) in sh.positions(j).iter().zip(&labels) {
                b.masked_rows.push(r as i64);
                b.masked_positions.push(p as i64);
                b.masked_labels.push(l as i64);
            }
        }
        if !self.caches.is_empty() {
            // Gather per shard (block-local reads), then place rows in batch order.
            let mut by_shard: BTreeMap<usize, Vec<(usize, u64)>> = BTreeMap::new();
            for (r, &(k, j)) in located.iter().enumerate() {
                by_shard.entry(k).or_default().push((r, j as u64));
            }
            // where each row's positions start in the flat masked arrays
            let mut row_pos: Vec<usize> = vec![0; rows + 1];
            let mut per_row = vec![0usize; rows];
            for &r in &b.masked_rows {
                per_row[r as usize] += 1;
            }
            for r in 0..rows {
                row_pos[r + 1] = row_pos[r] + per_row[r];
            }
            let n = b.masked_rows.len();
            let mut parts = Vec::new();
            let mut kmax = 1usize;
            for (k, list) in by_shard {
                let local: Vec<u64> = list.iter().map(|&(_, j)| j).collect();
                let g = self.caches[k].gather(&local)?;
                kmax = kmax.max(g.width);
                parts.push((list, g));
            }
            b.k = kmax;
            b.teacher_ids = vec![0; n * kmax];
            b.teacher_logp = vec![f32::NEG_INFINITY; n * kmax];
            b.teacher_tail = vec![0.0; n];
            b.teacher_counts = vec![0; n];
            for (list, g) in parts {
                let mut src = 0usize;
                for (r, _) in list {
                    for dst in row_pos[r]..row_pos[r + 1] {
                        if src >= g.n {
                            return Err(Error::Invalid(
                                "cache has fewer positions than the examples".into(),
                            ));
                        }
                        let (d0, s0) = (dst * kmax, src * g.width);
                        b.teacher_ids[d0..d0 + g.width].copy_from_slice(&g.ids[s0..s0 + g.width]);
                        b.teacher_logp[d0..d0 + g.width].copy_from_slice(&g.logp[s0..s0 + g.width]);
                        b.teacher_tail[dst] = g.tail[src];
                        b.teacher_counts[dst] = g.counts[src];
                        src += 1;
                    }
                }
                if src != g.n {
                    return Err(Error::Invalid(
                        "cache and examples disagree on masked positions".into(),
                    ));
                }
            }
        }
        Ok(b)
    }
}

/// Assembles a fixed plan of batches in `threads` background threads, handing them out
/// in plan order through a queue of at most `prefetch` ready batches.
pub struct Loader {
    rx: Receiver<(usize, Result<Batch>)>,
    pending: BTreeMap<usize, Result<Batch>>,
    next: usize,
    total: usize,
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl Loader {
    pub fn new(
        data: Arc<Dataset>,
        plan: Vec<Vec<u64>>,
        multiple_of: usize,
        prefetch: usize,
        threads: usize,
    ) -> Self {
        let total = plan.len();
        let plan = Arc::new(plan);
        let (tx, rx) = bounded(prefetch.max(1));
        let stop = Arc::new(AtomicBool::new(false));
        let counter = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for _ in 0..threads.max(1) {
            let (data, plan, tx, stop, counter) = (
                data.clone(),
                plan.clone(),
                tx.clone(),
                stop.clone(),
                counter.clone(),
            );
            handles.push(std::thread::spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let i = counter.fetch_add(1, Ordering::Relaxed);
                if i >= plan.len() {
                    return;
                }
                let r = data.assemble(&plan[i], multiple_of);
                if tx.send((i, r)).is_err() {
                    return;
                }
            }));
        }
        Self {
            rx,
            pending: BTreeMap::new(),
            next: 0,
            total,
            stop,
            handles,
        }
    }

    /// The next batch in plan order, or `None` at the end.
    pub fn next_batch(&mut self) -> Option<Result<Batch>> {
        if self.next >= self.total {
            return None;
        }
        loop {
            if let Some(b) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(b);
            }
            match self.rx.recv() {
                Ok((i, b)) => {
                    self.pending.insert(i, b);
                }
                Err(_) => {
                    return Some(Err(Error::Internal("batch workers stopped".into())));
                }
            }
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.rx.try_recv().is_ok() {}
        for h in self.handles.drain(..) {
            // Unblock a worker waiting on a full queue.
            while !h.is_finished() {
                while self.rx.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::examples::{
        write_manifest, Example, InputFile, Manifest, Report, ShardWriter, VocabInfo,
    };
    use crate::prep::{PrepParams, Settings};

    const PAD: u32 = 9;

    /// Two shards of examples of lengths 5..=14 with 1..=3 masked positions each.
    fn examples_dir() -> (tempfile::TempDir, Vec<Example>) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        let mut shards = Vec::new();
        for k in 0..2 {
            let mut w = ShardWriter::create(dir.path(), k, 2, 1, 2).unwrap();
            for i in 0..7u32 {
                let len = 5 + ((i * 5 + k as u32) % 10) as usize;
                let n_masked = 1 + (i % 3) as usize;
                let mut input_ids: Vec<u32> = (0..len as u32).map(|t| 100 + t * 3 + i).collect();
                (input_ids[0], input_ids[len - 1]) = (1, 2);
                let e = Example {
                    input_ids,
                    positions: (1..=n_masked as u16).collect(),
                    labels: (0..n_masked as u32).map(|m| 200 + m + i).collect(),
                    file: k as u32,
                    line: i as u64,
                    ..Default::default()
                };
                w.push(&e).unwrap();
                all.push(e);
            }
            shards.push(w.finish().unwrap());
        }
        let params = PrepParams {
            vocab_sha256: String::new(),
            do_lower_case: true,
            user_dict_sha256: None,
            settings: Settings::default(),
            masking_version: crate::masking::MASKING_VERSION,
            shard_version: crate::examples::format::IDX_VERSION,
        };
        let vocab = VocabInfo {
            path: "v".into(),
            sha256: String::new(),
            size: 300,
            do_lower_case: true,
            token_bytes: 2,
            cls_id: 2,
            sep_id: 3,
            mask_id: 4,
            pad_id: PAD,
            unk_id: 1,
        };
        let inputs: Vec<InputFile> = Vec::new();
        let m = Manifest::new(params, vocab, inputs, shards, Report::default());
        write_manifest(dir.path(), &m).unwrap();
        (dir, all)
    }

    #[test]
    fn assemble_pads_to_a_multiple_and_matches_the_shards() {
        let (dir, all) = examples_dir();
        let d = Dataset::open(dir.path(), None).unwrap();
        assert_eq!(d.len(), 14);
        assert_eq!(d.pad_id, PAD);
        let indices = [8u64, 0, 13, 5];
        let b = d.assemble(&indices, 8).unwrap();
        let longest = indices
            .iter()
            .map(|&i| all[i as usize].input_ids.len())
            .max()
            .unwrap();
        assert_eq!(b.rows, 4);
        assert_eq!(b.width, longest.div_ceil(8) * 8);
        assert_eq!(b.k, 0);
        let mut flat = 0;
        for (r, &i) in indices.iter().enumerate() {
            let e = &all[i as usize];
            let row = &b.input_ids[r * b.width..(r + 1) * b.width];
            let mask = &b.attention_mask[r * b.width..(r + 1) * b.width];
            let n = e.input_ids.len();
            let want: Vec<i64> = e.input_ids.iter().map(|&t| t as i64).collect();
            assert_eq!(&row[..n], &want[..]);
            assert!(row[n..].iter().all(|&t| t == PAD as i64));
            assert!(mask[..n].iter().all(|&m| m == 1));
            assert!(mask[n..].iter().all(|&m| m == 0));
            for (&p, &l) in e.positions.iter().zip(&e.labels) {
                assert_eq!(b.masked_rows[flat], r as i64);
                assert_eq!(b.masked_positions[flat], p as i64);
                assert_eq!(b.masked_labels[flat], l as i64);
                flat += 1;
            }
        }
        assert_eq!(flat, b.masked_rows.len());
        let one = d.assemble(&[3], 1).unwrap();
        assert_eq!(one.width, all[3].input_ids.len());
        assert!(d.assemble(&[14], 8).is_err());
    }

    #[test]
    fn the_loader_hands_out_the_plan_in_order() {
        let (dir, _) = examples_dir();
        let d = Arc::new(Dataset::open(dir.path(), None).unwrap());
        let plan: Vec<Vec<u64>> = (0..7).map(|i| vec![i * 2, i * 2 + 1]).collect();
        let mut l = Loader::new(d.clone(), plan.clone(), 8, 2, 3);
        for p in &plan {
            let got = l.next_batch().unwrap().unwrap();
            let want = d.assemble(p, 8).unwrap();
            assert_eq!(got.input_ids, want.input_ids);
            assert_eq!(got.masked_labels, want.masked_labels);
        }
        assert!(l.next_batch().is_none());
    }
}
