//! The entropy coder of `.tkc` format 3: static rANS (range asymmetric numeral systems)
//! with one frequency table per context, 10-bit probabilities, a 32-bit state and 16-bit
//! words, plus a stream of raw bits. Small and fully specified here (docs/FORMATS.md
//! repeats it byte by byte) so that the file format does not depend on any crate's
//! internal bit stream.
//!
//! Symbols are bytes (0..=255). A value is coded as a *token* (a symbol) and extra raw
//! bits: `token_of` (writing), `TOKEN_INFO` (reading).

/// Probabilities are multiples of 2^-PREC. 10 bits keep every context's decoding table
/// at 4 KiB, so that the ones in use stay in a core's L1 cache (decoding is table
/// lookups); more precision saves well under 1 % of the bytes.
pub const PREC: u32 = 10;
const TOTAL: u32 = 1 << PREC;
/// The state stays in [L, 2^32) between symbols.
const L: u32 = 1 << 16;

/// Values below `DIRECT` are their own token; larger ones are
/// `DIRECT + (e − log2 DIRECT) · 2^MANT + m` with `e = ⌊log2 v⌋`, `m` the `MANT` bits below
/// the leading one, and the `e − MANT` lower bits raw.
pub const DIRECT: u32 = 32;
pub const MANT: u32 = 2;
const DIRECT_LOG: u32 = DIRECT.trailing_zeros();
/// Largest token (of v = u32::MAX) + 1.
pub const TOKENS: usize = (DIRECT + (32 - DIRECT_LOG) * (1 << MANT)) as usize;

/// (token, number of extra bits, the extra bits).
#[inline(always)]
pub fn token_of(v: u32) -> (u8, u32, u32) {
    if v < DIRECT {
        return (v as u8, 0, 0);
    }
    let e = 31 - v.leading_zeros();
    let nb = e - MANT;
    let m = (v >> nb) & ((1 << MANT) - 1);
    let tok = DIRECT + ((e - DIRECT_LOG) << MANT) + m;
    (tok as u8, nb, v & ((1u32 << nb) - 1))
}

/// Number of extra bits of `tok` and the value without them (`None`: not a token); the
/// decoder uses the same as a table, `TOKEN_INFO`.
#[cfg(test)]
#[inline(always)]
pub fn token_base(tok: u8) -> Option<(u32, u32)> {
    let t = tok as u32;
    if t < DIRECT {
        return Some((0, t));
    }
    if t as usize >= TOKENS {
        return None;
    }
    let e = DIRECT_LOG + ((t - DIRECT) >> MANT);
    let m = (t - DIRECT) & ((1 << MANT) - 1);
    let nb = e - MANT;
    Some((nb, ((1 << MANT) | m) << nb))
}

/// `token_base` of every token, as a table indexed by any byte: `value without the extra
/// bits | number of extra bits << 32`. A byte that is not a token (`BAD`, or any other:
/// never decoded, as `Tables::new` refuses longer tables) asks for `OVERRUN` extra bits:
/// more than any stream holds (`MAX_BITS_BYTES`), so that its lane fails
/// `BitReader::exhausted` at the end of the block without a check per symbol.
static TOKEN_INFO: [u64; 256] = {
    let mut t = [OVERRUN << 32; 256];
    let mut tok = 0;
    while tok < TOKENS {
        let v = tok as u32;
        t[tok] = if v < DIRECT {
            v as u64
        } else {
            let e = DIRECT_LOG + ((v - DIRECT) >> MANT);
            let m = (v - DIRECT) & ((1 << MANT) - 1);
            (((1 << MANT) | m) << (e - MANT)) as u64 | ((e - MANT) as u64) << 32
        };
        tok += 1;
    }
    t
};

/// Extra bits of a non-token: 2^31, a multiple of 64 (so that the bits it reads are none)
/// and more than a stream of at most `MAX_BITS_BYTES` holds.
const OVERRUN: u64 = 1 << 31;
/// The longest raw-bits part of a lane the reader accepts (and the writer writes).
pub const MAX_BITS_BYTES: usize = 1 << 27;
const _: () = assert!(8 * (MAX_BITS_BYTES as u64) < OVERRUN);

/// What a context without a table decodes to: not a token (`TOKENS` ≤ 255).
const BAD: u32 = 0xff;
const _: () = assert!(TOKENS <= BAD as usize);

/// Frequencies summing to 2^PREC from symbol counts (every counted symbol keeps at least
/// 1); all zero if nothing was counted.
pub fn normalise(counts: &[u32]) -> Vec<u32> {
    let n: u64 = counts.iter().map(|&c| c as u64).sum();
    let mut f: Vec<u32> = counts
        .iter()
        .map(|&c| {
            if c == 0 {
                0
            } else {
                ((c as u64 * TOTAL as u64 / n.max(1)) as u32).max(1)
            }
        })
        .collect();
    if n == 0 {
        return f;
    }
    let mut sum: i64 = f.iter().map(|&x| x as i64).sum();
    // hand the difference to (or take it from) the most frequent symbols, which the
    // change costs least
    let mut order: Vec<usize> = (0..f.len()).filter(|&s| f[s] > 0).collect();
    order.sort_by_key(|&s| (std::cmp::Reverse(counts[s]), s));
    while sum != TOTAL as i64 {
        let mut changed = false;
        for &s in &order {
            if sum < TOTAL as i64 {
                f[s] += 1;
                sum += 1;
                changed = true;
            } else if sum > TOTAL as i64 && f[s] > 1 {
                f[s] -= 1;
                sum -= 1;
                changed = true;
            }
            if sum == TOTAL as i64 {
                break;
            }
        }
        assert!(changed, "more symbols than probability slots");
    }
    f
}

/// Collects symbols (with their contexts) and raw bits in decoding order, in `lanes`
/// independent streams that share the tables (a decoder can work on several streams at
/// once); `finish` codes them.
pub struct Encoder {
    syms: Vec<Vec<(u8, u8)>>,
    counts: Vec<[u32; 256]>,
    bits: Vec<BitWriter>,
}

/// One coded stream.
pub struct Lane {
    /// The rANS words: the final state (u32), then 16-bit words, all little-endian.
    pub rans: Vec<u8>,
    /// The raw bits, least significant first, zero-padded to whole bytes.
    pub bits: Vec<u8>,
}

/// The coded streams of one `Encoder`.
pub struct Coded {
    /// Per context: the frequencies of symbols 0..n (n = 1 + the largest symbol coded in
    /// that context; empty if none).
    pub tables: Vec<Vec<u32>>,
    pub lanes: Vec<Lane>,
}

impl Encoder {
    pub fn new(contexts: usize, lanes: usize) -> Self {
        Self {
            syms: (0..lanes).map(|_| Vec::new()).collect(),
            counts: vec![[0; 256]; contexts],
            bits: (0..lanes).map(|_| BitWriter::default()).collect(),
        }
    }

    pub fn reserve(&mut self, n: usize) {
        let per = n / self.syms.len() + 1;
        for s in &mut self.syms {
            s.reserve(per);
        }
    }

    /// `v` in context `ctx` of stream `lane`: its token, then its extra bits.
    #[inline(always)]
    pub fn value(&mut self, lane: usize, ctx: usize, v: u32) {
        let (tok, nb, extra) = token_of(v);
        self.syms[lane].push((ctx as u8, tok));
        self.counts[ctx][tok as usize] += 1;
        self.bits[lane].put(extra, nb);
    }

    pub fn finish(self) -> Coded {
        let tables: Vec<Vec<u32>> = self
            .counts
            .iter()
            .map(|c| {
                let n = c.iter().rposition(|&x| x > 0).map_or(0, |s| s + 1);
                normalise(&c[..n])
            })
            .collect();
        let cum: Vec<Vec<u32>> = tables
            .iter()
            .map(|t| {
                t.iter()
                    .scan(0, |acc, &f| {
                        let c = *acc;
                        *acc += f;
                        Some(c)
                    })
                    .collect()
            })
            .collect();
        let lanes = self
            .syms
            .iter()
            .zip(self.bits)
            .map(|(syms, bits)| {
                // rANS codes in reverse: the decoder reads the words forwards
                let mut words: Vec<u16> = Vec::with_capacity(syms.len() / 2);
                let mut x: u32 = L;
                for &(ctx, s) in syms.iter().rev() {
                    let (ctx, s) = (ctx as usize, s as usize);
                    let f = tables[ctx][s];
                    let x_max = ((L >> PREC) as u64) << 16;
                    if x as u64 >= x_max * f as u64 {
                        words.push(x as u16);
                        x >>= 16;
                    }
                    x = ((x / f) << PREC) + (x % f) + cum[ctx][s];
                }
                let mut rans = Vec::with_capacity(4 + 2 * words.len());
                rans.extend_from_slice(&x.to_le_bytes());
                for &w in words.iter().rev() {
                    rans.extend_from_slice(&w.to_le_bytes());
                }
                Lane {
                    rans,
                    bits: bits.finish(),
                }
            })
            .collect();
        Coded { tables, lanes }
    }
}

/// Decoding tables of `N` contexts (a power of two): per probability slot, `sym | freq <<
/// 8 | (slot − cumulative frequency) << 20` (freq ≤ 2^PREC needs 12 bits, the difference
/// PREC). A context without a table decodes every slot to `BAD` with probability 1 (the
/// state stays as it is). Fixed-size arrays, so that a lookup needs no bounds check.
pub struct Tables<const N: usize> {
    slots: Box<[[u32; TOTAL as usize]; N]>,
}

impl<const N: usize> Tables<N> {
    /// From per-context frequencies (at most `N` contexts); `Err` unless each non-empty
    /// table sums to 2^PREC.
    pub fn new(tables: &[Vec<u32>]) -> Result<Self, &'static str> {
        const { assert!(N.is_power_of_two()) };
        if tables.len() > N {
            return Err("too many entropy tables");
        }
        let mut empty = [0u32; TOTAL as usize];
        for (i, e) in empty.iter_mut().enumerate() {
            *e = BAD | TOTAL << 8 | (i as u32) << 20;
        }
        let mut slots = Box::new([empty; N]);
        for (t, out) in tables.iter().zip(slots.iter_mut()) {
            if t.is_empty() {
                continue;
            }
            if t.len() > TOKENS {
                return Err("entropy table too long");
            }
            let sum: u64 = t.iter().map(|&f| f as u64).sum();
            if sum != TOTAL as u64 {
                return Err("entropy table does not sum to 2^10");
            }
            let mut at = 0usize;
            for (s, &f) in t.iter().enumerate() {
                for (i, e) in out[at..at + f as usize].iter_mut().enumerate() {
                    *e = s as u32 | f << 8 | (i as u32) << 20;
                }
                at += f as usize;
            }
        }
        Ok(Self { slots })
    }

    #[inline(always)]
    fn entry(&self, ctx: usize, x: u32) -> u32 {
        self.slots[ctx % N][(x & (TOTAL - 1)) as usize]
    }
}

/// Reads symbols back from a `Coded` stream. Built for speed: no branch per symbol on the
/// data (a corrupt or truncated stream decodes garbage, and `finished` then fails).
pub struct Decoder<'a> {
    x: u32,
    /// The 16-bit words after the initial state.
    words: &'a [[u8; 2]],
    /// Next word to read (passes the end on a truncated stream).
    at: usize,
    /// The words part had an odd number of bytes (corrupt).
    odd: bool,
    pub bits: BitReader<'a>,
}

/// One rANS step: (the symbol of state `x` in context `ctx`, the next state), reading the
/// next word at `*at` when the state runs low. Arithmetic only, so that the compiler
/// cannot turn the renormalisation (either way about half the time) into a branch.
#[inline(always)]
fn step<const N: usize>(
    x: u32,
    words: &[[u8; 2]],
    at: &mut usize,
    t: &Tables<N>,
    ctx: usize,
) -> (u8, u32) {
    let e = t.entry(ctx, x);
    let x = ((e >> 8) & 0xfff) * (x >> PREC) + (e >> 20);
    let low = (x < L) as u32;
    // past the end: zeros, and `finished` then fails
    let w = words.get(*at).map_or(0, |&w| u16::from_le_bytes(w) as u32);
    *at += low as usize;
    (
        e as u8,
        std::hint::select_unpredictable(low != 0, (x << 16) | w, x),
    )
}

impl<'a> Decoder<'a> {
    pub fn new(rans: &'a [u8], bits: &'a [u8]) -> Option<Self> {
        let (x, words) = rans.split_first_chunk::<4>()?;
        let (words, odd) = words.as_chunks::<2>();
        Some(Self {
            x: u32::from_le_bytes(*x),
            words,
            at: 0,
            odd: !odd.is_empty(),
            bits: BitReader::new(bits),
        })
    }

    /// The next value in context `ctx` (its token, then its extra bits); garbage after a
    /// symbol of a context without a table, which `finished` reports.
    #[inline(always)]
    pub fn value<const N: usize>(&mut self, t: &Tables<N>, ctx: usize) -> u32 {
        let (tok, x) = step(self.x, self.words, &mut self.at, t, ctx);
        self.x = x;
        self.bits.extra(tok)
    }

    /// True when no symbol came from a context without a table, every word and bit was
    /// used and the state is back at its start.
    pub fn finished(&self) -> bool {
        !self.odd && self.x == L && self.at == self.words.len() && self.bits.exhausted()
    }
}

/// Fills `out` with values, entry `j` from lane `j mod 2` in context `ctx[j]` (`ctx` as
/// long as `out`): two independent chains, the states held in locals so that they stay in
/// registers.
// not inlined: on its own, the function gets the registers for its two lanes' states
#[inline(never)]
pub fn values2<const N: usize>(d: &mut [Decoder; 2], t: &Tables<N>, out: &mut [u32], ctx: &[u8]) {
    let [d0, d1] = d;
    let (mut x0, mut x1) = (d0.x, d1.x);
    let (mut at0, mut at1) = (d0.at, d1.at);
    let (w0, w1) = (d0.words, d1.words);
    let (b0, b1) = (d0.bits.buf, d1.bits.buf);
    let (mut p0, mut p1) = (d0.bits.pos, d1.bits.pos);
    let mut pairs = out.chunks_exact_mut(2);
    let mut ctx_pairs = ctx.chunks_exact(2);
    for (pair, c) in pairs.by_ref().zip(ctx_pairs.by_ref()) {
        let (t0, y0) = step(x0, w0, &mut at0, t, c[0] as usize);
        let (t1, y1) = step(x1, w1, &mut at1, t, c[1] as usize);
        (x0, x1) = (y0, y1);
        pair[0] = extra(b0, &mut p0, t0);
        pair[1] = extra(b1, &mut p1, t1);
    }
    (d0.x, d0.at, d1.x, d1.at) = (x0, at0, x1, at1);
    (d0.bits.pos, d1.bits.pos) = (p0, p1);
    if let ([last], [c]) = (pairs.into_remainder(), ctx_pairs.remainder()) {
        *last = d0.value(t, *c as usize);
    }
}

/// Bits appended least significant first.
#[derive(Default)]
pub struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    /// The `nb` (≤ 32) low bits of `v`.
    #[inline(always)]
    pub fn put(&mut self, v: u32, nb: u32) {
        self.acc |= (v as u64) << self.n;
        self.n += nb;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    pub fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// Reads bits back: a bit position only, and an unaligned 8-byte load per read (no refill
/// branch); past the end of the buffer it reads zeros, and `exhausted` then fails.
pub struct BitReader<'a> {
    buf: &'a [u8],
    /// Bits read so far (may pass the end).
    pos: u64,
}

/// `MASK[n]`: the `n` low bits.
static MASK: [u32; 64] = {
    let mut m = [0u32; 64];
    let mut n = 1;
    while n <= 32 {
        m[n] = u32::MAX >> (32 - n);
        n += 1;
    }
    m
};

impl<'a> BitReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The value of token `tok`: its base and its extra bits.
    #[inline(always)]
    pub fn extra(&mut self, tok: u8) -> u32 {
        extra(self.buf, &mut self.pos, tok)
    }

    /// No bit was asked for beyond the buffer, and what is left of its last byte is zero
    /// padding (< 8 bits).
    pub fn exhausted(&self) -> bool {
        let total = 8 * self.buf.len() as u64;
        self.pos <= total
            && total - self.pos < 8
            && (self.pos == total || self.buf[self.buf.len() - 1] >> (self.pos & 7) == 0)
    }
}

/// The value of token `tok`, its extra bits read from `buf` at bit `*pos` (a function of
/// plain values, so that a caller can keep the position in a register).
#[inline(always)]
fn extra(buf: &[u8], pos: &mut u64, tok: u8) -> u32 {
    let info = TOKEN_INFO[tok as usize];
    let nb = info >> 32;
    let byte = (*pos >> 3) as usize;
    let w = match buf.get(byte..byte + 8) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
        None => tail_word(buf, byte),
    };
    // at most 7 bits are skipped: 57 ≥ 32 bits are left of the word
    let v = (w >> (*pos & 7)) as u32 & MASK[(nb & 63) as usize];
    *pos += nb;
    info as u32 | v
}

/// The 8 bytes of `buf` from `byte` on, zeros beyond the end.
#[cold]
fn tail_word(buf: &[u8], byte: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(rest) = buf.get(byte..) {
        b[..rest.len()].copy_from_slice(rest);
    }
    u64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn tokens_round_trip() {
        for v in (0..5000u32).chain([u32::MAX, u32::MAX - 1, 1 << 31, 65535, 65536, 1 << 22]) {
            let (t, nb, extra) = token_of(v);
            assert!((t as usize) < TOKENS);
            let (nb2, base) = token_base(t).unwrap();
            assert_eq!(nb, nb2);
            assert_eq!(TOKEN_INFO[t as usize], base as u64 | (nb as u64) << 32);
            assert_eq!(base | extra, v, "{v}");
        }
        assert!(token_base(TOKENS as u8).is_none());
    }

    #[test]
    fn normalise_sums_and_keeps_every_symbol() {
        for counts in [
            vec![1u32, 0, 1_000_000],
            vec![5; 256],
            vec![0, 0, 7],
            vec![1; 300],
        ] {
            if counts.len() > 256 {
                continue;
            }
            let f = normalise(&counts);
            assert_eq!(f.iter().sum::<u32>(), TOTAL);
            for (c, x) in counts.iter().zip(&f) {
                assert_eq!(*c > 0, *x > 0);
            }
        }
        assert!(normalise(&[0, 0]).iter().all(|&x| x == 0));
    }

    #[test]
    fn values_round_trip_in_contexts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let n = 20_000;
        let vals: Vec<(usize, u32)> = (0..n)
            .map(|i| {
                let ctx = i % 3;
                let v = match ctx {
                    0 => rng.random_range(0..4),
                    1 => (rng.random::<f64>().powi(6) * 30000.0) as u32,
                    _ => rng.random(),
                };
                (ctx, v)
            })
            .collect();
        let mut e = Encoder::new(4, 2); // context 3 stays empty
        for (i, &(c, v)) in vals.iter().enumerate() {
            e.value(i % 2, c, v);
        }
        let coded = e.finish();
        assert!(coded.tables[3].is_empty());
        let t = Tables::<4>::new(&coded.tables).unwrap();
        let mut d: Vec<Decoder> = coded
            .lanes
            .iter()
            .map(|l| Decoder::new(&l.rans, &l.bits).unwrap())
            .collect();
        for (i, &(c, v)) in vals.iter().enumerate() {
            assert_eq!(d[i % 2].value(&t, c), v);
        }
        assert!(d.iter().all(|d| d.finished()));
        d[0].value(&t, 3);
        assert!(
            !d[0].finished(),
            "a symbol of a context without a table is an error"
        );
    }

    #[test]
    fn bit_reader_reads_back_and_knows_its_end() {
        let mut w = BitWriter::default();
        let vals: Vec<(u32, u32)> = (0..200u32).map(|i| (i * 2654435761 % 1000, 10)).collect();
        for &(v, nb) in &vals {
            w.put(v, nb);
        }
        w.put(5, 3);
        let buf = w.finish(); // 2003 bits: 5 bits of zero padding
        let tok_of = |nb: u32| (DIRECT + ((nb + MANT - DIRECT_LOG) << MANT)) as u8;
        let mut r = BitReader::new(&buf);
        for &(v, nb) in &vals {
            // a token with nb extra bits and base b: its value is b | the bits
            let t = tok_of(nb);
            let base = (TOKEN_INFO[t as usize] & 0xffff_ffff) as u32;
            assert_eq!(r.extra(t) ^ base, v);
        }
        assert!(!r.exhausted(), "3 bits left");
        r.pos += 3;
        assert!(r.exhausted());
        r.pos = 8 * buf.len() as u64 + 1;
        assert!(!r.exhausted(), "read past the end");
        let mut dirty = buf.clone();
        *dirty.last_mut().unwrap() |= 0x80; // a one in the padding
        let mut r = BitReader::new(&dirty);
        r.pos = 2003;
        assert!(!r.exhausted());
        // past the end: zeros, and a non-token's bits overrun any stream
        let mut r = BitReader::new(&buf);
        r.pos = 8 * buf.len() as u64 - 2;
        assert_eq!(r.extra(tok_of(20)) & 0xfffff, 0);
        let mut r = BitReader::new(&buf);
        assert_eq!(r.extra(BAD as u8), 0);
        assert!(r.pos > 8 * MAX_BITS_BYTES as u64 && !r.exhausted());
    }

    #[test]
    fn a_single_symbol_context_costs_nothing() {
        let mut e = Encoder::new(1, 1);
        for _ in 0..1000 {
            e.value(0, 0, 7);
        }
        let coded = e.finish();
        let lane = &coded.lanes[0];
        assert_eq!(lane.rans.len(), 4);
        let t = Tables::<4>::new(&coded.tables).unwrap();
        let mut d = Decoder::new(&lane.rans, &lane.bits).unwrap();
        for _ in 0..1000 {
            assert_eq!(d.value(&t, 0), 7);
        }
        assert!(d.finished());
    }
}
