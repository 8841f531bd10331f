//! Training batches: example shards + teacher cache → padded arrays, assembled in
//! background threads with a bounded prefetch queue.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver};

use crate::cache::CacheReader;
use crate::error::{Error, Result};
use crate::prep::read_manifest;
use crate::shard::Shard;

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
            for (k, sh) in shards.iter().enumerate() {
                let path: PathBuf = dir.join(format!("teacher-{k:05}.tkc"));
                let r = CacheReader::open(&path, 16)?;
                if r.n_examples != sh.n as u64 {
                    return Err(Error::data(
                        path.display().to_string(),
                        format!(
                            "holds {} examples, examples-{k:05} has {}: cache and examples do not match",
                            r.n_examples, sh.n
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
            let o = self.shards[k].token_offsets();
            width = width.max((o[j + 1] - o[j]) as usize);
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
        for (r, &(k, j)) in located.iter().enumerate() {
            let sh = &self.shards[k];
            let (to, mo) = (sh.token_offsets(), sh.mask_offsets());
            let (t0, t1) = (to[j] as usize, to[j + 1] as usize);
            let toks = sh.all_tokens();
            for (c, t) in (t0..t1).enumerate() {
                b.input_ids[r * width + c] = toks.get(t) as i64;
                b.attention_mask[r * width + c] = 1;
            }
            let labels = sh.all_labels();
            for m in mo[j] as usize..mo[j + 1] as usize {
                b.masked_rows.push(r as i64);
                b.masked_positions.push(sh.all_positions()[m] as i64);
                b.masked_labels.push(labels.get(m) as i64);
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
                    return Some(Err(Error::Invalid("batch workers stopped".into())));
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
