//! A memory-mapped example shard, format version 1 or 2. Opening checks the header
//! (layout: `format.rs`), the file sizes, that every offset lies inside the file and every
//! masked position inside its example; `verify` also checks the sha256 against the
//! manifest. Readers use [`Shard::input_ids_into`], [`Shard::positions`] and
//! [`Shard::labels_into`], which hide the version.

use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::format::{self, IdxHeader};
use super::manifest::ShardInfo;
use super::Example;
use crate::error::{Error, Result};
use crate::io::{map_file, sha256_file};

/// Token ids of either width, borrowed from a memory map.
#[derive(Clone, Copy, Debug)]
pub enum Ids<'a> {
    U16(&'a [u16]),
    U32(&'a [u32]),
}

impl Ids<'_> {
    pub fn len(&self) -> usize {
        match self {
            Ids::U16(s) => s.len(),
            Ids::U32(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn get(&self, i: usize) -> u32 {
        match self {
            Ids::U16(s) => s[i] as u32,
            Ids::U32(s) => s[i],
        }
    }
    pub fn to_vec(&self) -> Vec<u32> {
        (0..self.len()).map(|i| self.get(i)).collect()
    }
}

pub struct Shard {
    pub path: PathBuf,
    pub name: String,
    bin: Mmap,
    idx: Mmap,
    header: IdxHeader,
    pub token_bytes: usize,
    pub n: usize,
}

impl Shard {
    pub fn open(dir: &Path, name: &str) -> Result<Self> {
        let bin_path = format::bin_path(dir, name);
        let idx_path = format::idx_path(dir, name);
        let bad = |msg: &str| Error::data(idx_path.display().to_string(), msg.to_string());
        let bin = map_file(&bin_path)?;
        let idx = map_file(&idx_path)?;
        let header = IdxHeader::decode(&idx).map_err(|m| bad(&m))?;
        if header.idx_bytes() != Some(idx.len()) {
            return Err(bad("truncated or oversized index"));
        }
        if header.expected_bin_bytes() != Some(bin.len()) || header.bin_bytes != bin.len() {
            return Err(Error::data(
                bin_path.display().to_string(),
                "size does not match its index (truncated?)",
            ));
        }
        let s = Self {
            path: bin_path,
            name: name.to_string(),
            bin,
            idx,
            header,
            token_bytes: header.token_bytes,
            n: header.n,
        };
        let mo = s.mask_offsets();
        let monotone = |o: &[u64], end: usize| {
            o[0] == 0 && o[o.len() - 1] as usize == end && o.windows(2).all(|w| w[0] <= w[1])
        };
        let windows_fit = match s.lengths() {
            None => monotone(s.token_index(), header.n_tokens),
            Some(len) => s.token_index().iter().zip(len).all(|(&t, &l)| {
                t.checked_add(l as u64)
                    .is_some_and(|e| e <= header.n_tokens as u64)
            }),
        };
        if !windows_fit || !monotone(mo, header.n_masked) {
            return Err(bad("offsets out of order or out of range"));
        }
        // Every masked position lies inside its example, after [CLS] and before [SEP].
        let pos = s.all_positions();
        for i in 0..s.n {
            let len = s.input_len(i);
            if pos[mo[i] as usize..mo[i + 1] as usize]
                .iter()
                .any(|&p| p == 0 || p as usize + 1 >= len)
            {
                return Err(bad(&format!("example {i}: a masked position outside it")));
            }
        }
        Ok(s)
    }

    pub fn header(&self) -> &IdxHeader {
        &self.header
    }

    /// The format version of this shard (1 or 2, see `format.rs`).
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// Checks both files against the sha256 recorded in the manifest.
    pub fn verify(&self, dir: &Path, info: &ShardInfo) -> Result<()> {
        for (path, want) in [
            (format::bin_path(dir, &info.name), &info.bin_sha256),
            (format::idx_path(dir, &info.name), &info.idx_sha256),
        ] {
            if &sha256_file(&path)? != want {
                return Err(Error::data(
                    path.display().to_string(),
                    "checksum does not match the manifest",
                ));
            }
        }
        Ok(())
    }

    fn idx_u64(&self, r: std::ops::Range<usize>) -> &[u64] {
        bytemuck::cast_slice(&self.idx[r])
    }

    fn idx_u32(&self, k: usize) -> &[u32] {
        bytemuck::cast_slice(&self.idx[self.header.u32_column(k)])
    }

    /// `token_starts` (version 2, `n`) or `token_offsets` (version 1, `n + 1`).
    pub fn token_index(&self) -> &[u64] {
        self.idx_u64(self.header.token_index())
    }
    pub fn mask_offsets(&self) -> &[u64] {
        self.idx_u64(self.header.mask_offsets())
    }
    pub fn lines(&self) -> &[u64] {
        self.idx_u64(self.header.lines())
    }
    pub fn files(&self) -> &[u32] {
        self.idx_u32(format::FILE)
    }
    pub fn pieces(&self) -> &[u32] {
        self.idx_u32(format::PIECE)
    }
    pub fn windows(&self) -> &[u32] {
        self.idx_u32(format::WINDOW)
    }
    pub fn dupes(&self) -> &[u32] {
        self.idx_u32(format::DUPE)
    }
    /// Window lengths without `[CLS]`/`[SEP]` (version 2; `None` in version 1).
    pub fn lengths(&self) -> Option<&[u32]> {
        (self.header.version >= 2).then(|| self.idx_u32(format::LENGTH))
    }

    fn ids(&self, r: std::ops::Range<usize>) -> Ids<'_> {
        let bytes = &self.bin[r];
        if self.token_bytes == 2 {
            Ids::U16(bytemuck::cast_slice(bytes))
        } else {
            Ids::U32(bytemuck::cast_slice(bytes))
        }
    }

    /// The `.bin`'s token section: documents' unmasked tokens (version 2) or every
    /// example's masked `input_ids` (version 1).
    pub fn all_tokens(&self) -> Ids<'_> {
        self.ids(self.header.tokens())
    }
    /// One id per masked position: the input id there (version 2) or the label (version 1).
    pub fn all_masked_ids(&self) -> Ids<'_> {
        self.ids(self.header.masked_ids())
    }
    pub fn all_positions(&self) -> &[u16] {
        bytemuck::cast_slice(&self.bin[self.header.positions()])
    }

    /// Length of example `i`'s `input_ids` (with `[CLS]` and `[SEP]`).
    pub fn input_len(&self, i: usize) -> usize {
        let t = self.token_index();
        match self.lengths() {
            Some(len) => len[i] as usize + 2,
            None => (t[i + 1] - t[i]) as usize,
        }
    }

    /// Example `i`'s masked positions (indices into its `input_ids`, ascending).
    pub fn positions(&self, i: usize) -> &[u16] {
        let mo = self.mask_offsets();
        &self.all_positions()[mo[i] as usize..mo[i + 1] as usize]
    }

    /// Appends example `i`'s `input_ids` (`[CLS] window [SEP]`, masked) to `out`.
    pub fn input_ids_into(&self, i: usize, out: &mut Vec<u32>) {
        let start = out.len();
        out.resize(start + self.input_len(i), 0);
        self.input_ids_to(i, &mut out[start..]);
    }

    /// Writes example `i`'s `input_ids` into `out[..input_len(i)]` (e.g. a batch row).
    pub fn input_ids_to<T: From<u32> + Copy>(&self, i: usize, out: &mut [T]) {
        let t0 = self.token_index()[i] as usize;
        // Version 1 stores the whole masked sequence; version 2 the window between
        // [CLS] and [SEP], unmasked.
        let v2 = self.lengths().is_some();
        let (first, n) = if v2 {
            (1, self.input_len(i) - 2)
        } else {
            (0, self.input_len(i))
        };
        let body = &mut out[first..first + n];
        match self.all_tokens() {
            Ids::U16(a) => {
                for (o, &x) in body.iter_mut().zip(&a[t0..t0 + n]) {
                    *o = T::from(x as u32);
                }
            }
            Ids::U32(a) => {
                for (o, &x) in body.iter_mut().zip(&a[t0..t0 + n]) {
                    *o = T::from(x);
                }
            }
        }
        if v2 {
            out[0] = T::from(self.header.cls_id);
            out[n + 1] = T::from(self.header.sep_id);
            let (m0, values) = (self.mask_offsets()[i] as usize, self.all_masked_ids());
            for (m, &p) in (m0..).zip(self.positions(i)) {
                out[p as usize] = T::from(values.get(m));
            }
        }
    }

    /// Appends example `i`'s labels (the original ids at its masked positions) to `out`.
    pub fn labels_into(&self, i: usize, out: &mut Vec<u32>) {
        if self.lengths().is_none() {
            let (mo, labels) = (self.mask_offsets(), self.all_masked_ids());
            out.extend((mo[i] as usize..mo[i + 1] as usize).map(|m| labels.get(m)));
        } else {
            let (t0, tokens) = (self.token_index()[i] as usize, self.all_tokens());
            out.extend(
                self.positions(i)
                    .iter()
                    .map(|&p| tokens.get(t0 + p as usize - 1)),
            );
        }
    }

    /// Example `i` decoded into owned vectors.
    pub fn example(&self, i: usize) -> Example {
        let mut input_ids = Vec::with_capacity(self.input_len(i));
        self.input_ids_into(i, &mut input_ids);
        let mut labels = Vec::new();
        self.labels_into(i, &mut labels);
        Example {
            input_ids,
            positions: self.positions(i).to_vec(),
            labels,
            file: self.files()[i],
            piece: self.pieces()[i],
            line: self.lines()[i],
            window: self.windows()[i],
            dupe: self.dupes()[i],
        }
    }
}
