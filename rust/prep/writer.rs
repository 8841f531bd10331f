//! The writer thread of prep: takes processed documents in input order, sums the report,
//! fills shards (closing each with a progress record) and writes the manifest at the end.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::config::PrepParams;
use super::pipeline::DocOutput;
use super::resume::{Position, ProgressRecord};
use super::{Processed, Progress};
use crate::corpus::{Document, Item, SkipReason};
use crate::error::Result;
use crate::examples::{
    write_manifest, ExampleRef, InputFile, Manifest, Report, ShardInfo, ShardWriter, VocabInfo,
};

fn reason_name(r: SkipReason) -> &'static str {
    match r {
        SkipReason::Empty => "empty",
        SkipReason::TooShort => "too_short",
        SkipReason::MalformedJson => "malformed_json",
        SkipReason::NoTextField => "no_text_field",
    }
}

pub(super) struct Writer {
    pub dir: PathBuf,
    pub token_bytes: usize,
    pub shard_size: usize,
    pub params: PrepParams,
    pub vocab: VocabInfo,
    pub inputs: Vec<InputFile>,
    pub shards: Vec<ShardInfo>,
    pub current: Option<ShardWriter>,
    pub resume: Option<Position>,
    pub report: Report,
    pub prior_elapsed: f64,
    pub t0: Instant,
    pub cls_id: u32,
    pub sep_id: u32,
    /// Where finished document outputs go back to the workers.
    pub recycle: crossbeam_channel::Sender<DocOutput>,
}

impl Writer {
    pub fn consume(&mut self, batch: Vec<Processed>, progress: &Progress) -> Result<()> {
        for p in batch {
            match (p.item, p.output) {
                (
                    Item::Skipped {
                        reason,
                        location,
                        bad_utf8_lines,
                        ..
                    },
                    _,
                ) => {
                    self.report
                        .add_skipped(reason_name(reason), location, bad_utf8_lines as u64);
                }
                (Item::Doc(doc), Some(out)) => self.consume_doc(&doc, out, progress)?,
                (Item::Doc(_), None) => unreachable!("documents are always processed"),
            }
        }
        Ok(())
    }

    fn consume_doc(&mut self, doc: &Document, out: DocOutput, progress: &Progress) -> Result<()> {
        let mut skip = 0usize;
        match self.resume.take() {
            Some(p) if p.is_at(doc.file, doc.line, doc.piece) => {
                skip = p.consumed as usize; // its counts are in the restored report
            }
            _ => {
                let (whole, piece) = ((doc.piece == 0) as u64, (doc.piece != 0) as u64);
                self.report.add(&Report {
                    documents_read: whole,
                    documents_used: whole,
                    long_document_pieces: piece,
                    invalid_utf8_lines: doc.bad_utf8_lines as u64,
                    chars: out.chars,
                    bytes: out.bytes,
                    tokens: out.tokens,
                    unk_tokens: out.unk,
                    windows: out.windows,
                    work_s: out.work_s,
                    ..Report::default()
                });
                progress.documents.fetch_add(1, Ordering::Relaxed);
                progress.chars.fetch_add(out.chars, Ordering::Relaxed);
            }
        }
        let r = self.write_examples(doc, &out, skip, progress);
        if out.ids.capacity() <= super::RECYCLED_MAX_TOKENS {
            let _ = self.recycle.try_send(out); // full: freed
        }
        r
    }

    /// The document's examples from `skip` on. Its tokens go into a shard once, before
    /// the first of its examples there (again in the next shard when its examples span
    /// two); every example refers to its window among them.
    fn write_examples(
        &mut self,
        doc: &Document,
        out: &DocOutput,
        skip: usize,
        progress: &Progress,
    ) -> Result<()> {
        let mut base: Option<u64> = None;
        for k in skip..out.examples.len() {
            if self.current.is_none() {
                self.current = Some(ShardWriter::create(
                    &self.dir,
                    self.shards.len(),
                    self.token_bytes,
                    self.cls_id,
                    self.sep_id,
                )?);
                base = None;
            }
            let w = self.current.as_mut().unwrap();
            let start = match base {
                Some(b) => b,
                None => *base.insert(w.push_tokens(&out.ids)?),
            };
            let spec = &out.examples[k];
            let positions = &out.masks.positions[spec.masks.clone()];
            w.push_example(&ExampleRef {
                start: start + spec.start as u64,
                len: (spec.end - spec.start) as u32,
                positions,
                values: &out.masks.values[spec.masks.clone()],
                file: doc.file,
                piece: doc.piece,
                line: doc.line,
                window: spec.window,
                dupe: spec.dupe,
            })?;
            self.report.examples += 1;
            self.report.masked_positions += positions.len() as u64;
            progress.examples.fetch_add(1, Ordering::Relaxed);
            if w.len() >= self.shard_size {
                let pos = Position {
                    file: doc.file,
                    line: doc.line,
                    piece: doc.piece,
                    consumed: k as u64 + 1,
                };
                self.close_shard(Some(pos))?;
            }
        }
        Ok(())
    }

    fn close_shard(&mut self, position: Option<Position>) -> Result<()> {
        if let Some(w) = self.current.take() {
            self.shards.push(w.finish()?);
        }
        self.report.elapsed_s = self.prior_elapsed + self.t0.elapsed().as_secs_f64();
        ProgressRecord::write(
            &self.dir,
            &self.params,
            &self.inputs,
            &self.shards,
            position,
            &self.report,
        )
    }

    pub fn finish(mut self) -> Result<Manifest> {
        if self.current.as_ref().is_some_and(|w| !w.is_empty()) {
            self.close_shard(None)?;
        }
        self.current = None;
        let elapsed = self.prior_elapsed + self.t0.elapsed().as_secs_f64();
        self.report.finish(elapsed);
        let m = Manifest::new(
            self.params,
            self.vocab,
            self.inputs,
            self.shards,
            self.report,
        );
        write_manifest(&self.dir, &m)?;
        ProgressRecord::remove(&self.dir);
        Ok(m)
    }
}
