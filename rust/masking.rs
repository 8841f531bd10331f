//! Google's whole-word masking (create_pretraining_data.py) over continuation marks.

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
/// (several windows of a document share them). The labels are not kept: position `p`'s
/// is `body[p - 1]`.
#[derive(Default)]
pub struct MaskBuffers {
    /// Sorted positions in `[CLS] body [SEP]`, per window.
    pub positions: Vec<u16>,
    /// The id each position holds in the masked sequence.
    pub values: Vec<u32>,
}

impl MaskBuffers {
    pub fn clear(&mut self) {
        self.positions.clear();
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
    let labels = buf
        .positions
        .iter()
        .map(|&p| body[p as usize - 1])
        .collect();
    Masked {
        input_ids,
        positions: buf.positions,
        labels,
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

/// Version of the masking procedure below, recorded in the manifest: a resumed run must
/// not mix examples masked by two procedures. 1: the whole candidate list shuffled up
/// front (`SliceRandom::shuffle`); 2: the same uniformly random order drawn lazily, only
/// as far as the masking reads it.
pub const MASKING_VERSION: u32 = 2;

/// The masking of `body` given its [`word_groups`] in order (reordered here, in place).
///
/// Google's rule: the groups in a uniformly random order, taken one after the other,
/// skipping a group that would exceed `n` tokens, until `n` are taken. The order is drawn
/// lazily (Fisher–Yates from the front: step `t` swaps a uniform pick of `t..len` into
/// `t`), so a window of ~350 groups costs ~15 draws instead of a full shuffle; the
/// groups read follow the same distribution as with the whole list shuffled first.
pub fn mask_groups(
    body: &[u32],
    groups: &mut [(u32, u32)],
    mask: u32,
    replacement_ids: &[u32],
    cfg: &MaskingConfig,
    rng: &mut ChaCha8Rng,
    out: &mut MaskBuffers,
) {
    let n = num_to_predict(body.len() + 2, cfg);
    let first = out.positions.len();
    let len = groups.len();
    let mut taken = 0usize;
    for t in 0..len {
        if taken >= n {
            break;
        }
        let j = rng.random_range(t..len);
        groups.swap(t, j);
        let (s, e) = groups[t];
        if taken + (e - s) as usize > n {
            continue;
        }
        out.positions.extend((s..e).map(|p| p as u16));
        taken += (e - s) as usize;
    }
    sort_positions(&mut out.positions[first..], body.len() + 2);
    for &p in &out.positions[first..] {
        let label = body[p as usize - 1];
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

/// Sequences up to this many tokens sort their masked positions through a bitset.
const BITSET_POSITIONS: usize = 1024;

/// Sorts distinct positions below `len`: through a bitset on the stack (set, then read
/// back in order: no data-dependent branches per comparison, unlike a comparison sort of
/// ~20 random values) when `len` allows, else `sort_unstable`.
fn sort_positions(positions: &mut [u16], len: usize) {
    if len > BITSET_POSITIONS {
        positions.sort_unstable();
        return;
    }
    let mut bits = [0u64; BITSET_POSITIONS / 64];
    for &p in positions.iter() {
        bits[p as usize >> 6] |= 1 << (p & 63);
    }
    let mut k = 0;
    for (w, &word) in bits[..len.div_ceil(64)].iter().enumerate() {
        let mut x = word;
        while x != 0 {
            positions[k] = (w * 64 + x.trailing_zeros() as usize) as u16;
            k += 1;
            x &= x - 1;
        }
    }
    debug_assert_eq!(k, positions.len(), "positions repeat");
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
        let n = num_to_predict(input_ids.len(), cfg);
        let mut positions: Vec<u16> = Vec::with_capacity(n);
        for t in 0..groups.len() {
            if positions.len() >= n {
                break;
            }
            let j = rng.random_range(t..groups.len());
            groups.swap(t, j);
            let (s, e) = groups[t];
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
            let want_values: Vec<u32> = want
                .positions
                .iter()
                .map(|&p| want.input_ids[p as usize])
                .collect();
            assert_eq!(&buf.values[first..], &want_values[..]);
            if d % 50 == 49 {
                buf.clear();
            }
        }
    }

    /// The chosen groups of Google's rule with the whole list shuffled up front
    /// (`MASKING_VERSION` 1).
    fn chosen_with_full_shuffle(groups: &[(u32, u32)], n: usize, rng: &mut ChaCha8Rng) -> Vec<u16> {
        use rand::seq::SliceRandom;
        let mut g = groups.to_vec();
        g.shuffle(rng);
        let mut positions = Vec::new();
        for (s, e) in g {
            if positions.len() >= n {
                break;
            }
            if positions.len() + (e - s) as usize <= n {
                positions.extend((s..e).map(|p| p as u16));
            }
        }
        positions
    }

    #[test]
    fn lazy_order_masks_each_token_as_often_as_a_full_shuffle() {
        // Groups of 1, 2 and 3 tokens: the skip rule makes the chance of each depend on
        // the order's distribution as a whole, not only on its first element.
        let cont: Vec<bool> = (0..24)
            .map(|i| i % 6 == 1 || i % 6 == 4 || i % 6 == 5)
            .collect();
        let body: Vec<u32> = (0..24).collect();
        let cfg = MaskingConfig {
            max_predictions: 5,
            masked_lm_prob: 1.0,
        };
        let mut groups = Vec::new();
        word_groups(&cont, &mut groups);
        let n = num_to_predict(body.len() + 2, &cfg);
        let trials = 40_000u32;
        let (mut lazy, mut full) = (vec![0u32; 26], vec![0u32; 26]);
        let mut buf = MaskBuffers::default();
        let mut g = Vec::new();
        for d in 0..trials {
            buf.clear();
            g.clear();
            g.extend_from_slice(&groups);
            mask_groups(&body, &mut g, 4, &[9], &cfg, &mut key(d).rng(), &mut buf);
            for &p in &buf.positions {
                lazy[p as usize] += 1;
            }
            let mut rng = key(d).rng();
            rng.set_stream(1); // another stream than the lazy draws'
            for p in chosen_with_full_shuffle(&groups, n, &mut rng) {
                full[p as usize] += 1;
            }
        }
        for p in 1..=24 {
            let (a, b) = (lazy[p] as f64, full[p] as f64);
            // Two binomial counts of the same probability differ by less than 5 standard
            // deviations of their difference (p(1-p)·2·trials ≤ trials / 2).
            let sd = (trials as f64 / 2.0).sqrt();
            assert!(
                (a - b).abs() < 5.0 * sd,
                "token {p}: lazy {a}, full shuffle {b}"
            );
            assert!(a > 0.0, "token {p} never masked");
        }
    }

    #[test]
    fn positions_sort_through_the_bitset_and_beyond_it() {
        let mut rng = key(3).rng();
        for len in [1usize, 2, 63, 64, 65, 512, 1024, 1025, 5000] {
            for _ in 0..50 {
                let mut all: Vec<u16> = (0..len as u16).collect();
                let k = rng.random_range(0..=len.min(40));
                for t in 0..k {
                    let j = rng.random_range(t..len);
                    all.swap(t, j);
                }
                let mut got = all[..k].to_vec();
                let mut want = got.clone();
                want.sort_unstable();
                sort_positions(&mut got, len);
                assert_eq!(got, want, "len {len}");
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
