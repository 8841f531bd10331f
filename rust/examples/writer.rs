//! Writes one example shard: token ids streamed to the `.bin` temp file, the small
//! per-example arrays kept in memory until `finish` writes the labels, positions and the
//! `.idx` (layout: `format.rs`).

use std::path::{Path, PathBuf};

use super::format::{self, IdxHeader};
use super::manifest::ShardInfo;
use super::Example;
use crate::error::Result;
use crate::io::AtomicFile;

/// Token bytes are written to the `.bin` in pieces of about this size.
const WRITE_BYTES: usize = 1 << 20;

pub struct ShardWriter {
    name: String,
    dir: PathBuf,
    token_bytes: usize,
    bin: AtomicFile,
    token_offsets: Vec<u64>,
    mask_offsets: Vec<u64>,
    labels: Vec<u32>,
    positions: Vec<u16>,
    line: Vec<u64>,
    file: Vec<u32>,
    piece: Vec<u32>,
    window: Vec<u32>,
    dupe: Vec<u32>,
    scratch: Vec<u8>,
}

impl ShardWriter {
    pub fn create(dir: &Path, index: usize, token_bytes: usize) -> Result<Self> {
        let name = format::shard_name(index);
        let bin = AtomicFile::create(&format::bin_path(dir, &name))?;
        Ok(Self {
            name,
            dir: dir.to_path_buf(),
            token_bytes,
            bin,
            token_offsets: vec![0],
            mask_offsets: vec![0],
            labels: Vec::new(),
            positions: Vec::new(),
            line: Vec::new(),
            file: Vec::new(),
            piece: Vec::new(),
            window: Vec::new(),
            dupe: Vec::new(),
            scratch: Vec::with_capacity(WRITE_BYTES + (1 << 16)),
        })
    }

    pub fn len(&self) -> usize {
        self.line.len()
    }

    pub fn is_empty(&self) -> bool {
        self.line.is_empty()
    }

    pub fn push(&mut self, ex: &Example) -> Result<()> {
        // Token bytes gather in `scratch` and go to the file (hashed) a megabyte at a time.
        format::put_ids(&mut self.scratch, &ex.input_ids, self.token_bytes);
        if self.scratch.len() >= WRITE_BYTES {
            self.bin.write(&self.scratch)?;
            self.scratch.clear();
        }
        let t = *self.token_offsets.last().unwrap() + ex.input_ids.len() as u64;
        self.token_offsets.push(t);
        let m = *self.mask_offsets.last().unwrap() + ex.positions.len() as u64;
        self.mask_offsets.push(m);
        self.labels.extend_from_slice(&ex.labels);
        self.positions.extend_from_slice(&ex.positions);
        self.line.push(ex.line);
        self.file.push(ex.file);
        self.piece.push(ex.piece);
        self.window.push(ex.window);
        self.dupe.push(ex.dupe);
        Ok(())
    }

    pub fn finish(mut self) -> Result<ShardInfo> {
        self.bin.write(&self.scratch)?;
        let mut tail = Vec::with_capacity(self.labels.len() * (self.token_bytes + 2));
        format::put_ids(&mut tail, &self.labels, self.token_bytes);
        tail.extend_from_slice(bytemuck::cast_slice(&self.positions));
        self.bin.write(&tail)?;
        let (bin_bytes, bin_sha256) = self.bin.commit()?;

        let header = IdxHeader {
            token_bytes: self.token_bytes,
            n: self.line.len(),
            n_tokens: *self.token_offsets.last().unwrap() as usize,
            n_masked: *self.mask_offsets.last().unwrap() as usize,
            bin_bytes: bin_bytes as usize,
        };
        let mut idx = header.encode();
        idx.reserve(header.idx_bytes().unwrap_or(0));
        // in the order of `format.rs`
        idx.extend_from_slice(bytemuck::cast_slice(&self.token_offsets));
        idx.extend_from_slice(bytemuck::cast_slice(&self.mask_offsets));
        idx.extend_from_slice(bytemuck::cast_slice(&self.line));
        let mut columns: [&[u32]; format::U32_COLUMNS] = [&[]; format::U32_COLUMNS];
        columns[format::FILE] = &self.file;
        columns[format::PIECE] = &self.piece;
        columns[format::WINDOW] = &self.window;
        columns[format::DUPE] = &self.dupe;
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
