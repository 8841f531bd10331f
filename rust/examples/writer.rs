//! Writes one example shard (format version 2): document tokens streamed to the `.bin`
//! temp file, the small per-example arrays kept in memory until `finish` writes the
//! masked values, positions and the `.idx` (layout: `format.rs`).

use std::path::{Path, PathBuf};

use super::format::{self, IdxHeader};
use super::manifest::ShardInfo;
use super::Example;
use crate::error::{Error, Result};
use crate::io::AtomicFile;

/// Token bytes are written to the `.bin` in pieces of about this size.
const WRITE_BYTES: usize = 1 << 20;

/// One example as the prep writer hands it over: a window of tokens already in the shard
/// (see [`ShardWriter::push_tokens`]), its masking and its provenance.
#[derive(Clone, Copy, Debug)]
pub struct ExampleRef<'a> {
    /// Where the window starts in the shard's tokens, and its length (without `[CLS]` and
    /// `[SEP]`).
    pub start: u64,
    pub len: u32,
    /// Masked positions (indices into `[CLS] window [SEP]`, sorted, 1 ..= len) and the
    /// input id at each.
    pub positions: &'a [u16],
    pub values: &'a [u32],
    pub file: u32,
    pub piece: u32,
    pub line: u64,
    pub window: u32,
    pub dupe: u32,
}

pub struct ShardWriter {
    name: String,
    dir: PathBuf,
    token_bytes: usize,
    cls_id: u32,
    sep_id: u32,
    bin: AtomicFile,
    n_tokens: u64,
    token_starts: Vec<u64>,
    mask_offsets: Vec<u64>,
    values: Vec<u32>,
    positions: Vec<u16>,
    line: Vec<u64>,
    file: Vec<u32>,
    piece: Vec<u32>,
    window: Vec<u32>,
    dupe: Vec<u32>,
    length: Vec<u32>,
    scratch: Vec<u8>,
    /// [`push`](Self::push)'s unmasked window, reused.
    window_ids: Vec<u32>,
}

impl ShardWriter {
    pub fn create(
        dir: &Path,
        index: usize,
        token_bytes: usize,
        cls_id: u32,
        sep_id: u32,
    ) -> Result<Self> {
        let name = format::shard_name(index);
        let bin = AtomicFile::create(&format::bin_path(dir, &name))?;
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            token_bytes,
            cls_id,
            sep_id,
            bin,
            n_tokens: 0,
            token_starts: Vec::new(),
            mask_offsets: vec![0],
            values: Vec::new(),
            positions: Vec::new(),
            line: Vec::new(),
            file: Vec::new(),
            piece: Vec::new(),
            window: Vec::new(),
            dupe: Vec::new(),
            length: Vec::new(),
            scratch: Vec::with_capacity(WRITE_BYTES + (1 << 16)),
            window_ids: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    /// Appends token ids (a document's, unmasked) to the shard; returns where they start.
    pub fn push_tokens(&mut self, ids: &[u32]) -> Result<u64> {
        let start = self.n_tokens;
        // Token bytes gather in `scratch` and go to the file (hashed) a megabyte at a time.
        format::put_ids(&mut self.scratch, ids, self.token_bytes);
        if self.scratch.len() >= WRITE_BYTES {
            self.bin.write(&self.scratch)?;
            self.scratch.clear();
        }
        self.n_tokens += ids.len() as u64;
        Ok(start)
    }

    /// Appends an example whose window is already among the shard's tokens.
    pub fn push_example(&mut self, ex: &ExampleRef<'_>) -> Result<()> {
        let bad = |msg: String| Err(Error::Invalid(format!("{}: {msg}", self.name)));
        if ex.start + ex.len as u64 > self.n_tokens {
            return bad(format!(
                "window {}..{} beyond the {} tokens written",
                ex.start,
                ex.start + ex.len as u64,
                self.n_tokens
            ));
        }
        if ex.positions.len() != ex.values.len()
            || ex.positions.iter().any(|&p| p == 0 || p as u32 > ex.len)
        {
            return bad("masked positions outside the window".into());
        }
        self.token_starts.push(ex.start);
        self.length.push(ex.len);
        let m = *self.mask_offsets.last().unwrap() + ex.positions.len() as u64;
        self.mask_offsets.push(m);
        self.values.extend_from_slice(ex.values);
        self.positions.extend_from_slice(ex.positions);
        self.line.push(ex.line);
        self.file.push(ex.file);
        self.piece.push(ex.piece);
        self.window.push(ex.window);
        self.dupe.push(ex.dupe);
        Ok(())
    }

    /// Appends a whole [`Example`] (`input_ids` = `[CLS] window [SEP]` after masking),
    /// storing its window's tokens for it alone. The prep writer stores a document's
    /// tokens once for all its examples instead ([`push_tokens`](Self::push_tokens) +
    /// [`push_example`](Self::push_example)).
    pub fn push(&mut self, ex: &Example) -> Result<()> {
        let ids = &ex.input_ids;
        if ids.len() < 2 || ids[0] != self.cls_id || ids[ids.len() - 1] != self.sep_id {
            return Err(Error::Invalid(format!(
                "{}: an example's input_ids must be [CLS] … [SEP]",
                self.name
            )));
        }
        let mut window = std::mem::take(&mut self.window_ids);
        window.clear();
        window.extend_from_slice(&ids[1..ids.len() - 1]);
        let mut values = Vec::with_capacity(ex.positions.len());
        for (&p, &label) in ex.positions.iter().zip(&ex.labels) {
            let p = p as usize;
            if p == 0 || p > window.len() {
                self.window_ids = window;
                return Err(Error::Invalid(format!(
                    "{}: masked position {p} outside the window",
                    self.name
                )));
            }
            values.push(window[p - 1]);
            window[p - 1] = label;
        }
        let r = self.push_tokens(&window).and_then(|start| {
            self.push_example(&ExampleRef {
                start,
                len: window.len() as u32,
                positions: &ex.positions,
                values: &values,
                file: ex.file,
                piece: ex.piece,
                line: ex.line,
                window: ex.window,
                dupe: ex.dupe,
            })
        });
        self.window_ids = window;
        r
    }

    pub fn finish(mut self) -> Result<ShardInfo> {
        self.bin.write(&self.scratch)?;
        let mut tail = Vec::with_capacity(self.values.len() * (self.token_bytes + 2));
        format::put_ids(&mut tail, &self.values, self.token_bytes);
        tail.extend_from_slice(bytemuck::cast_slice(&self.positions));
        self.bin.write(&tail)?;
        let (bin_bytes, bin_sha256) = self.bin.commit()?;

        let header = IdxHeader {
            version: format::IDX_VERSION,
            token_bytes: self.token_bytes,
            n: self.line.len(),
            n_tokens: self.n_tokens as usize,
            n_masked: *self.mask_offsets.last().unwrap() as usize,
            bin_bytes: bin_bytes as usize,
            cls_id: self.cls_id,
            sep_id: self.sep_id,
        };
        let mut idx = header.encode();
        idx.reserve(header.idx_bytes().unwrap_or(0));
        // in the order of `format.rs`
        idx.extend_from_slice(bytemuck::cast_slice(&self.token_starts));
        idx.extend_from_slice(bytemuck::cast_slice(&self.mask_offsets));
        idx.extend_from_slice(bytemuck::cast_slice(&self.line));
        let mut columns: [&[u32]; format::LENGTH + 1] = [&[]; format::LENGTH + 1];
        columns[format::FILE] = &self.file;
        columns[format::PIECE] = &self.piece;
        columns[format::WINDOW] = &self.window;
        columns[format::DUPE] = &self.dupe;
        columns[format::LENGTH] = &self.length;
        for a in columns {
            idx.extend_from_slice(bytemuck::cast_slice(a));
        }
        debug_assert_eq!(Some(idx.len()), header.idx_bytes());
        let mut f = AtomicFile::create(&format::idx_path(&self.dir, &self.name))?;
        f.write(&idx)?;
        let (idx_bytes, idx_sha256) = f.commit()?;
        Ok(ShardInfo {
            name: self.name,
            examples: header.n as u64,
            tokens: header.n_tokens as u64,
            masked: header.n_masked as u64,
            bin_bytes,
            idx_bytes,
            bin_sha256,
            idx_sha256,
        })
    }
}
