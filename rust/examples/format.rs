//! The byte layout of an example shard, written down once: the writer and the reader both
//! take every offset from here. Human-readable description: docs/FORMATS.md.
//!
//! Version 2 (written): `examples-NNNNN.idx` is a 64-byte header, then `token_starts`
//! u64 `[n]`, `mask_offsets` u64 `[n+1]`, `line` u64 `[n]`, and `file`, `piece`,
//! `window`, `dupe`, `length` u32 `[n]` each. `examples-NNNNN.bin` holds the token ids of
//! the documents (each stored once per shard, unmasked), then the masked values (the
//! input id at each masked position), in the header's token width (2 or 4 bytes), then
//! the masked positions as u16. Example `i` is `[CLS] tokens[token_starts[i] ..
//! token_starts[i] + length[i]] [SEP]` with the values put at its positions; its labels
//! are the tokens the values replaced.
//!
//! Version 1 (still read): `token_offsets` u64 `[n+1]` instead of `token_starts`, no
//! `length` column; the `.bin` holds every example's masked `input_ids` (with `[CLS]` and
//! `[SEP]`), then the labels, then the positions.

use std::ops::Range;
use std::path::{Path, PathBuf};

pub const IDX_MAGIC: &[u8; 8] = b"WWMEXIDX";
/// The version this build writes; it reads 1 and 2.
pub const IDX_VERSION: u32 = 2;
pub const IDX_HEADER_BYTES: usize = 64;

const SHARD_PREFIX: &str = "examples-";

/// The name (without extension) of shard `index`: `examples-NNNNN`.
pub fn shard_name(index: usize) -> String {
    format!("{SHARD_PREFIX}{index:05}")
}

/// `dir/NAME.bin`: token data.
pub fn bin_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.bin"))
}

/// `dir/NAME.idx`: offsets and provenance.
pub fn idx_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.idx"))
}

/// Whether a file name is one of a shard's two files.
pub fn is_shard_file(file_name: &str) -> bool {
    file_name.starts_with(SHARD_PREFIX)
        && (file_name.ends_with(".bin") || file_name.ends_with(".idx"))
}

/// The `.idx` header: magic, version u32, token width u32, then n, tokens, masked and
/// the `.bin` size as u64, then (version 2) the `[CLS]` and `[SEP]` ids as u32,
/// zero-padded to 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    pub version: u32,
    pub token_bytes: usize,
    pub n: usize,
    pub n_tokens: usize,
    pub n_masked: usize,
    pub bin_bytes: usize,
    /// `[CLS]` and `[SEP]` ids (version 2; 0 in version 1, whose tokens include them).
    pub cls_id: u32,
    pub sep_id: u32,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

impl IdxHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(IDX_HEADER_BYTES);
        h.extend_from_slice(IDX_MAGIC);
        h.extend_from_slice(&self.version.to_le_bytes());
        h.extend_from_slice(&(self.token_bytes as u32).to_le_bytes());
        for v in [self.n, self.n_tokens, self.n_masked, self.bin_bytes] {
            h.extend_from_slice(&(v as u64).to_le_bytes());
        }
        if self.version >= 2 {
            h.extend_from_slice(&self.cls_id.to_le_bytes());
            h.extend_from_slice(&self.sep_id.to_le_bytes());
        }
        h.resize(IDX_HEADER_BYTES, 0);
        h
    }

    /// Reads the header at the start of `idx`; the message says what is wrong.
    pub fn decode(idx: &[u8]) -> Result<Self, String> {
        if idx.len() < IDX_HEADER_BYTES || &idx[..8] != IDX_MAGIC {
            return Err("not an examples index (bad magic)".into());
        }
        let version = u32_at(idx, 8);
        if !(1..=IDX_VERSION).contains(&version) {
            return Err(format!(
                "format version {version}, this build reads 1 to {IDX_VERSION}"
            ));
        }
        let token_bytes = u32_at(idx, 12) as usize;
        if token_bytes != 2 && token_bytes != 4 {
            return Err("bad token width".into());
        }
        let (cls_id, sep_id) = if version >= 2 {
            (u32_at(idx, 48), u32_at(idx, 52))
        } else {
            (0, 0)
        };
        Ok(Self {
            version,
            token_bytes,
            n: u64_at(idx, 16) as usize,
            n_tokens: u64_at(idx, 24) as usize,
            n_masked: u64_at(idx, 32) as usize,
            bin_bytes: u64_at(idx, 40) as usize,
            cls_id,
            sep_id,
        })
    }

    /// Number of u32 columns: `file`, `piece`, `window`, `dupe` and (version 2) `length`.
    pub fn u32_columns(&self) -> usize {
        if self.version >= 2 {
            LENGTH + 1
        } else {
            DUPE + 1
        }
    }

    /// Size of the `.idx` file this header describes (`None` on overflow): version 2 has
    /// `n` token starts, version 1 `n + 1` token offsets.
    pub fn idx_bytes(&self) -> Option<usize> {
        let fixed = IDX_HEADER_BYTES + if self.version >= 2 { 8 } else { 16 };
        self.n
            .checked_mul(8 + 8 + 8 + 4 * self.u32_columns())
            .and_then(|x| x.checked_add(fixed))
    }

    /// Size of the `.bin` file implied by the counts (`None` on overflow).
    pub fn expected_bin_bytes(&self) -> Option<usize> {
        self.n_tokens
            .checked_add(self.n_masked)
            .and_then(|x| x.checked_mul(self.token_bytes))
            .and_then(|x| x.checked_add(self.n_masked.checked_mul(2)?))
    }

    /// Byte ranges of the `.idx` arrays. The first is `token_starts` (`n`, version 2) or
    /// `token_offsets` (`n + 1`, version 1).
    pub fn token_index(&self) -> Range<usize> {
        let s = IDX_HEADER_BYTES;
        s..s + (self.n + (self.version < 2) as usize) * 8
    }
    pub fn mask_offsets(&self) -> Range<usize> {
        let s = self.token_index().end;
        s..s + (self.n + 1) * 8
    }
    pub fn lines(&self) -> Range<usize> {
        let s = self.mask_offsets().end;
        s..s + self.n * 8
    }
    /// The u32 column `k` of the index: [`FILE`], [`PIECE`], [`WINDOW`], [`DUPE`] or
    /// (version 2) [`LENGTH`].
    pub fn u32_column(&self, k: usize) -> Range<usize> {
        let s = self.lines().end + k * self.n * 4;
        s..s + self.n * 4
    }

    /// Byte ranges of the `.bin` sections.
    pub fn tokens(&self) -> Range<usize> {
        0..self.n_tokens * self.token_bytes
    }
    /// Labels (version 1) or values (version 2): one id per masked position.
    pub fn masked_ids(&self) -> Range<usize> {
        let s = self.tokens().end;
        s..s + self.n_masked * self.token_bytes
    }
    pub fn positions(&self) -> Range<usize> {
        let s = self.masked_ids().end;
        s..s + self.n_masked * 2
    }
}

/// The u32 columns of the index, in file order.
pub const FILE: usize = 0;
pub const PIECE: usize = 1;
pub const WINDOW: usize = 2;
pub const DUPE: usize = 3;
/// Version 2: tokens of the example's window, without `[CLS]` and `[SEP]`.
pub const LENGTH: usize = 4;

/// Token ids at the given width, little-endian.
pub fn put_ids(out: &mut Vec<u8>, ids: &[u32], token_bytes: usize) {
    let start = out.len();
    out.resize(start + ids.len() * token_bytes, 0);
    let dst = &mut out[start..];
    // Fixed-size chunks: the compiler vectorises these loops.
    if token_bytes == 2 {
        for (d, &i) in dst.chunks_exact_mut(2).zip(ids) {
            d.copy_from_slice(&(i as u16).to_le_bytes());
        }
    } else {
        for (d, &i) in dst.chunks_exact_mut(4).zip(ids) {
            d.copy_from_slice(&i.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_layout_is_contiguous() {
        for version in [1, 2] {
            let h = IdxHeader {
                version,
                token_bytes: 2,
                n: 3,
                n_tokens: 30,
                n_masked: 4,
                bin_bytes: 76,
                cls_id: if version == 2 { 101 } else { 0 },
                sep_id: if version == 2 { 102 } else { 0 },
            };
            let b = h.encode();
            assert_eq!(b.len(), IDX_HEADER_BYTES);
            assert_eq!(IdxHeader::decode(&b).unwrap(), h);
            assert_eq!(h.expected_bin_bytes(), Some(76));
            assert_eq!(h.positions().end, 76);
            let last = h.u32_column(h.u32_columns() - 1).end;
            assert_eq!(last, h.idx_bytes().unwrap());
            let want = if version == 2 {
                64 + 8 + 44 * 3
            } else {
                64 + 16 + 40 * 3
            };
            assert_eq!(h.idx_bytes(), Some(want));
            let mut bad = b.clone();
            bad[0] = b'X';
            assert!(IdxHeader::decode(&bad).is_err());
            bad[0] = b'W';
            bad[8] = 3;
            let e = IdxHeader::decode(&bad).unwrap_err();
            assert!(e.contains("format version 3"), "{e}");
        }
        assert!(is_shard_file(&format!("{}.idx", shard_name(7))));
        assert!(!is_shard_file("manifest.json"));
    }
}
