//! Google's whole-word masking (create_pretraining_data.py) over continuation marks.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskingConfig {
    pub max_predictions: usize,
    pub masked_lm_prob: f64,
}

/// Keys of one random stream: nothing else feeds the generator, so output does not
/// depend on the number of workers or on what other documents hold.
#[derive(Clone, Copy, Debug)]
pub struct StreamKey {
    pub seed: u64,
    pub file: u32,
    pub piece: u32,
    pub line: u64,
    pub window: u32,
    pub dupe: u32,
}

impl StreamKey {
    /// A ChaCha8 generator whose 256-bit key is the stream key itself.
    pub fn rng(&self) -> ChaCha8Rng {
        let mut seed = [0u8; 32];
        seed[0..8].copy_from_slice(&self.seed.to_le_bytes());
        seed[8..12].copy_from_slice(&self.file.to_le_bytes());
        seed[12..16].copy_from_slice(&self.piece.to_le_bytes());
        seed[16..24].copy_from_slice(&self.line.to_le_bytes());
        seed[24..28].copy_from_slice(&self.window.to_le_bytes());
        seed[28..32].copy_from_slice(&self.dupe.to_le_bytes());
        ChaCha8Rng::from_seed(seed)
    }
}

/// Python 3's `round` (half to even) for non-negative values.
pub fn round_half_even(x: f64) -> usize {
    let f = x.floor();
    let diff = x - f;
    let r = if diff > 0.5 || (diff == 0.5 && (f as u64) % 2 == 1) {
        f + 1.0
    } else {
        f
    };
    r as usize
}

/// Number of tokens to predict for a sequence of `len` tokens (specials included).
pub fn num_to_predict(len: usize, cfg: &MaskingConfig) -> usize {
    cfg.max_predictions
        .min(1.max(round_half_even(len as f64 * cfg.masked_lm_prob)))
}

pub struct Masked {
    pub input_ids: Vec<u32>,
    /// Sorted positions in `input_ids`.
    pub positions: Vec<u16>,
    /// Original ids at `positions`.
    pub labels: Vec<u32>,
}

/// The masking of one window, without the sequence itself: appended to flat buffers
/// (several windows of a document share them).
#[derive(Default)]
pub struct MaskBuffers {
    /// Sorted positions in `[CLS] body [SEP]`, per window.
    pub positions: Vec<u16>,
    /// Original ids at `positions`.
    pub labels: Vec<u32>,
    /// The id each position holds in the masked sequence.
    pub values: Vec<u32>,
}

impl MaskBuffers {
    pub fn clear(&mut self) {
        self.positions.clear();
        self.labels.clear();
        self.values.clear();
    }
}

/// Mask one sequence `[CLS] body [SEP]`. `cont[i]` marks body token `i` as a continuation.
#[allow(clippy::too_many_arguments)]
pub fn mask_sequence(
    body: &[u32],
    cont: &[bool],
    cls: u32,
    sep: u32,
    mask: u32,
    replacement_ids: &[u32],
    cfg: &MaskingConfig,
    rng: &mut ChaCha8Rng,
) -> Masked {
    let mut buf = MaskBuffers::default();
    let mut groups = Vec::new();
    mask_window(
        body,
        cont,
        mask,
        replacement_ids,
        cfg,
        rng,
        &mut groups,
        &mut buf,
    );
    let mut input_ids = Vec::with_capacity(body.len() + 2);
    input_ids.push(cls);
    input_ids.extend_from_slice(body);
    input_ids.push(sep);
    for (&p, &v) in buf.positions.iter().zip(&buf.values) {
        input_ids[p as usize] = v;
    }
    Masked {
        input_ids,
        positions: buf.positions,
        labels: buf.labels,
    }
}

/// The masking decisions of [`mask_sequence`] (same random stream, same result), appended
/// to `out` instead of building the masked sequence. `groups` is scratch space.
#[allow(clippy::too_many_arguments)]
pub fn mask_window(
    body: &[u32],
    cont: &[bool],
    mask: u32,
    replacement_ids: &[u32],
    cfg: &MaskingConfig,
    rng: &mut ChaCha8Rng,
    groups: &mut Vec<(u32, u32)>,
    out: &mut MaskBuffers,
) {
    debug_assert_eq!(body.len(), cont.len());
    word_groups(cont, groups);
    mask_groups(body, groups, mask, replacement_ids, cfg, rng, out);
}

/// Candidate groups of a window, in order, as (start, end) in `[CLS] body [SEP]`
/// coordinates ([CLS]/[SEP] never): a token and its continuations.
pub fn word_groups(cont: &[bool], groups: &mut Vec<(u32, u32)>) {
    groups.clear();
    for (i, &c) in cont.iter().enumerate() {
        let p = i as u32 + 1;
        match groups.last_mut() {
            Some(g) if c => g.1 = p + 1,
            _ => groups.push((p, p + 1)),
        }
    }
}

/// The masking of `body` given its [`word_groups`] in order (shuffled here, in place).
pub fn mask_groups(
    body: &[u32],
    groups: &mut [(u32, u32)],
    mask: u32,
    replacement_ids: &[u32],
    cfg: &MaskingConfig,
    rng: &mut ChaCha8Rng,
    out: &mut MaskBuffers,
) {
    groups.shuffle(rng);
    let n = num_to_predict(body.len() + 2, cfg);
    let first = out.positions.len();
    for &(s, e) in groups.iter() {
        let taken = out.positions.len() - first;
        if taken >= n {
            break;
        }
        if taken + (e - s) as usize > n {
            continue;
        }
        out.positions.extend((s..e).map(|p| p as u16));
    }
    out.positions[first..].sort_unstable();
    for &p in &out.positions[first..] {
        let label = body[p as usize - 1];
        out.labels.push(label);
        // 80 % [MASK], 10 % kept, 10 % a random non-special id.
        let value = if rng.random::<f64>() < 0.8 {
            mask
        } else if rng.random::<f64>() < 0.5 {
            label
        } else {
            replacement_ids[rng.random_range(0..replacement_ids.len())]
        };
        out.values.push(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_matches_python() {
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(2.51), 3);
        assert_eq!(round_half_even(76.8), 77);
        let cfg = MaskingConfig {
            max_predictions: 20,
            masked_lm_prob: 0.15,
        };
        assert_eq!(num_to_predict(3, &cfg), 1); // round(0.45)=0 → at least 1
        assert_eq!(num_to_predict(10, &cfg), 2); // round(1.5)=2
        assert_eq!(num_to_predict(30, &cfg), 4); // round(4.5)=4 (half-even)
        assert_eq!(num_to_predict(512, &cfg), 20);
    }

    fn key(dupe: u32) -> StreamKey {
        StreamKey {
            seed: 1,
            file: 0,
            piece: 0,
            line: 1,
            window: 0,
            dupe,
        }
    }

    #[test]
    fn groups_are_all_or_nothing_and_counts_hold() {
        let body: Vec<u32> = (100..300).collect();
        // Words of 1..=4 tokens.
        let cont: Vec<bool> = (0..200).map(|i| i % 4 != 0 && i % 7 != 0).collect();
        let cfg = MaskingConfig {
            max_predictions: 20,
            masked_lm_prob: 0.15,
        };
        let repl: Vec<u32> = (5..1000).collect();
        for d in 0..200 {
            let m = mask_sequence(&body, &cont, 2, 3, 4, &repl, &cfg, &mut key(d).rng());
            assert!(m.positions.len() <= 20);
            assert!(m.positions.len() >= 17, "greedy fill left too much room");
            assert!(m.positions.windows(2).all(|w| w[0] < w[1]));
            assert!(m.positions.iter().all(|&p| p > 0 && (p as usize) < 201));
            for (&p, &l) in m.positions.iter().zip(&m.labels) {
                assert_eq!(l, body[p as usize - 1]);
            }
            let masked: std::collections::HashSet<usize> =
                m.positions.iter().map(|&p| p as usize - 1).collect();
            // A group is a token plus its continuations: all in or all out.
            for (i, &c) in cont.iter().enumerate().skip(1) {
                if c {
                    assert_eq!(masked.contains(&i), masked.contains(&(i - 1)));
                }
            }
            assert_eq!(m.input_ids[0], 2);
            assert_eq!(*m.input_ids.last().unwrap(), 3);
        }
    }

    /// The masking as first written (one sequence built per call): `mask_window` must give
    /// the same result from the same stream.
    #[allow(clippy::too_many_arguments)]
    fn mask_sequence_as_before(
        body: &[u32],
        cont: &[bool],
        cls: u32,
        sep: u32,
        mask: u32,
        replacement_ids: &[u32],
        cfg: &MaskingConfig,
        rng: &mut ChaCha8Rng,
    ) -> Masked {
        let mut input_ids = Vec::with_capacity(body.len() + 2);
        input_ids.push(cls);
        input_ids.extend_from_slice(body);
        input_ids.push(sep);
        let mut groups: Vec<(usize, usize)> = Vec::new();
        for (i, &c) in cont.iter().enumerate() {
            let p = i + 1;
            match groups.last_mut() {
                Some(g) if c => g.1 = p + 1,
                _ => groups.push((p, p + 1)),
            }
        }
        groups.shuffle(rng);
        let n = num_to_predict(input_ids.len(), cfg);
        let mut positions: Vec<u16> = Vec::with_capacity(n);
        for &(s, e) in &groups {
            if positions.len() >= n {
                break;
            }
            if positions.len() + (e - s) > n {
                continue;
            }
            for p in s..e {
                positions.push(p as u16);
            }
        }
        positions.sort_unstable();
        let mut labels = Vec::with_capacity(positions.len());
        for &p in &positions {
            let p = p as usize;
            labels.push(input_ids[p]);
            if rng.random::<f64>() < 0.8 {
                input_ids[p] = mask;
            } else if rng.random::<f64>() < 0.5 {
            } else {
                input_ids[p] = replacement_ids[rng.random_range(0..replacement_ids.len())];
            }
        }
        Masked {
            input_ids,
            positions,
            labels,
        }
    }

    #[test]
    fn mask_window_equals_the_original_masking() {
        let repl: Vec<u32> = (5..1000).collect();
        let mut data = key(99).rng();
        let mut buf = MaskBuffers::default();
        let mut groups = Vec::new();
        for d in 0..2000 {
            let len = data.random_range(1..=510);
            let body: Vec<u32> = (0..len).map(|_| data.random_range(5..1000)).collect();
            let cont: Vec<bool> = (0..len)
                .map(|i| i > 0 && data.random::<f64>() < 0.4)
                .collect();
            let cfg = MaskingConfig {
                max_predictions: data.random_range(1..=80),
                masked_lm_prob: data.random_range(0.01..=1.0),
            };
            let want =
                mask_sequence_as_before(&body, &cont, 2, 3, 4, &repl, &cfg, &mut key(d).rng());
            let got = mask_sequence(&body, &cont, 2, 3, 4, &repl, &cfg, &mut key(d).rng());
            assert_eq!(
                (&got.input_ids, &got.positions, &got.labels),
                (&want.input_ids, &want.positions, &want.labels)
            );
            // Appending to shared buffers gives the same slices.
            let first = buf.positions.len();
            mask_window(
                &body,
                &cont,
                4,
                &repl,
                &cfg,
                &mut key(d).rng(),
                &mut groups,
                &mut buf,
            );
            assert_eq!(&buf.positions[first..], &want.positions[..]);
            assert_eq!(&buf.labels[first..], &want.labels[..]);
            if d % 50 == 49 {
                buf.clear();
            }
        }
    }

    #[test]
    fn streams_differ_by_key_and_repeat_for_same_key() {
        let a: u64 = key(0).rng().random();
        let b: u64 = key(0).rng().random();
        let c: u64 = key(1).rng().random();
        let mut k = key(0);
        k.line = 2;
        let d: u64 = k.rng().random();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
