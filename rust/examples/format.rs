//! The byte layout of an example shard, written down once: the writer and the reader both
//! take every offset from here. Human-readable description: docs/FORMATS.md.
//!
//! `examples-NNNNN.idx`: a 64-byte header, then `token_offsets` u64 `[n+1]`,
//! `mask_offsets` u64 `[n+1]`, `line` u64 `[n]`, and `file`, `piece`, `window`, `dupe`
//! u32 `[n]` each. `examples-NNNNN.bin`: every example's token ids, then the labels, in
//! the header's token width (2 or 4 bytes), then the masked positions as u16.

use std::ops::Range;
use std::path::{Path, PathBuf};

pub const IDX_MAGIC: &[u8; 8] = b"WWMEXIDX";
pub const IDX_VERSION: u32 = 1;
pub const IDX_HEADER_BYTES: usize = 64;
/// Bytes per example in the index after the header: two offsets, line and four u32s.
pub const IDX_BYTES_PER_EXAMPLE: usize = 8 + 8 + 8 + 4 * 4;

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
/// the `.bin` size as u64, zero-padded to 64 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdxHeader {
    pub token_bytes: usize,
    pub n: usize,
    pub n_tokens: usize,
    pub n_masked: usize,
    pub bin_bytes: usize,
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
        h.extend_from_slice(&IDX_VERSION.to_le_bytes());
        h.extend_from_slice(&(self.token_bytes as u32).to_le_bytes());
        for v in [self.n, self.n_tokens, self.n_masked, self.bin_bytes] {
            h.extend_from_slice(&(v as u64).to_le_bytes());
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
        if version != IDX_VERSION {
            return Err(format!(
                "format version {version}, this build reads {IDX_VERSION}"
            ));
        }
        let token_bytes = u32_at(idx, 12) as usize;
        if token_bytes != 2 && token_bytes != 4 {
            return Err("bad token width".into());
        }
        Ok(Self {
            token_bytes,
            n: u64_at(idx, 16) as usize,
            n_tokens: u64_at(idx, 24) as usize,
            n_masked: u64_at(idx, 32) as usize,
            bin_bytes: u64_at(idx, 40) as usize,
        })
    }

    /// Size of the `.idx` file this header describes (`None` on overflow).
    pub fn idx_bytes(&self) -> Option<usize> {
        self.n
            .checked_mul(IDX_BYTES_PER_EXAMPLE)
            .and_then(|x| x.checked_add(IDX_HEADER_BYTES + 16))
    }

    /// Size of the `.bin` file implied by the counts (`None` on overflow).
    pub fn expected_bin_bytes(&self) -> Option<usize> {
        self.n_tokens
            .checked_add(self.n_masked)
            .and_then(|x| x.checked_mul(self.token_bytes))
            .and_then(|x| x.checked_add(self.n_masked.checked_mul(2)?))
    }

    /// Byte ranges of the `.idx` arrays.
    pub fn token_offsets(&self) -> Range<usize> {
        let s = IDX_HEADER_BYTES;
        s..s + (self.n + 1) * 8
    }
    pub fn mask_offsets(&self) -> Range<usize> {
        let s = self.token_offsets().end;
        s..s + (self.n + 1) * 8
    }
    pub fn lines(&self) -> Range<usize> {
        let s = self.mask_offsets().end;
        s..s + self.n * 8
    }
    /// The u32 column `k` of the index: [`FILE`], [`PIECE`], [`WINDOW`] or [`DUPE`].
    pub fn u32_column(&self, k: usize) -> Range<usize> {
        let s = self.lines().end + k * self.n * 4;
        s..s + self.n * 4
    }

    /// Byte ranges of the `.bin` sections.
    pub fn tokens(&self) -> Range<usize> {
        0..self.n_tokens * self.token_bytes
    }
    pub fn labels(&self) -> Range<usize> {
        let s = self.tokens().end;
        s..s + self.n_masked * self.token_bytes
    }
    pub fn positions(&self) -> Range<usize> {
        let s = self.labels().end;
        s..s + self.n_masked * 2
    }
}

/// The u32 columns of the index, in file order.
pub const FILE: usize = 0;
pub const PIECE: usize = 1;
pub const WINDOW: usize = 2;
pub const DUPE: usize = 3;
pub const U32_COLUMNS: usize = 4;

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
        let h = IdxHeader {
            token_bytes: 2,
            n: 3,
            n_tokens: 30,
            n_masked: 4,
            bin_bytes: 76,
        };
        let b = h.encode();
        assert_eq!(b.len(), IDX_HEADER_BYTES);
        assert_eq!(IdxHeader::decode(&b).unwrap(), h);
        assert_eq!(h.expected_bin_bytes(), Some(76));
        assert_eq!(h.positions().end, 76);
        assert_eq!(h.u32_column(U32_COLUMNS - 1).end, h.idx_bytes().unwrap());
        assert_eq!(h.idx_bytes(), Some(64 + 16 + 40 * 3));
        let mut bad = b.clone();
        bad[0] = b'X';
        assert!(IdxHeader::decode(&bad).is_err());
        assert!(is_shard_file(&format!("{}.idx", shard_name(7))));
        assert!(!is_shard_file("manifest.json"));
    }
}
