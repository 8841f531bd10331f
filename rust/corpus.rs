//! Corpus input: file expansion, decompression, documents from text and JSON lines.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocSep {
    /// One document per line.
    Line,
    /// One sentence per line, a blank line between documents (Google's format).
    Blank,
}

impl DocSep {
    pub const fn name(self) -> &'static str {
        match self {
            DocSep::Line => "line",
            DocSep::Blank => "blank",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "line" => Some(DocSep::Line),
            "blank" => Some(DocSep::Blank),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    JsonLines,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Format and compression from a file name: `x.jsonl.gz` → (JsonLines, Gzip).
pub fn classify(path: &Path) -> Option<(Format, Compression)> {
    let name = path.file_name()?.to_str()?.to_ascii_lowercase();
    let (stem, comp) = if let Some(s) = name.strip_suffix(".gz") {
        (s.to_string(), Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".zst") {
        (s.to_string(), Compression::Zstd)
    } else {
        (name, Compression::None)
    };
    let ext = stem.rsplit_once('.').map(|(_, e)| e)?;
    match ext {
        "txt" => Some((Format::Text, comp)),
        "jsonl" | "json" => Some((Format::JsonLines, comp)),
        _ => None,
    }
}

/// Files, directories (searched recursively for known extensions) and glob patterns →
/// a sorted, de-duplicated list of files. A pattern that matches nothing is an error.
pub fn expand_inputs(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for pat in patterns {
        let p = Path::new(pat);
        let before = out.len();
        if p.is_dir() {
            collect_dir(p, &mut out)?;
        } else if p.is_file() {
            if classify(p).is_none() {
                return Err(Error::Invalid(format!(
                    "{pat}: unknown input type (expected .txt, .jsonl or .json, optionally .gz or .zst)"
                )));
            }
            out.push(p.to_path_buf());
        } else if pat.contains(['*', '?', '[']) {
            let paths = glob::glob(pat)
                .map_err(|e| Error::Invalid(format!("{pat}: bad glob pattern ({e})")))?;
            for entry in paths {
                let path = entry.map_err(|e| {
                    let p = e.path().to_owned();
                    Error::io(p, e.into())
                })?;
                if path.is_file() && classify(&path).is_some() {
                    out.push(path);
                }
            }
        } else {
            return Err(Error::io(
                p,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
        if out.len() == before {
            return Err(Error::Invalid(format!("{pat}: no input files found")));
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn collect_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            collect_dir(&path, out)?;
        } else if classify(&path).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Counts the raw (compressed) bytes read and hands a copy of them to the hasher thread
/// of [`read_decoded`]: sha256 took ~40 % of a reader that only cuts lines.
struct Tap<R> {
    inner: R,
    to_hasher: crossbeam_channel::Sender<Vec<u8>>,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            self.to_hasher
                .send(buf[..n].to_vec())
                .map_err(|_| std::io::Error::other("the input's hasher stopped"))?;
        }
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// One unit of input after reading: a document (piece) or a skipped record.
#[derive(Debug, PartialEq)]
pub enum Item {
    Doc(Document),
    Skipped {
        reason: SkipReason,
        /// 1-based line where the record starts.
        line: u64,
        location: String,
        /// Lines of the record that held invalid UTF-8 (replaced).
        bad_utf8_lines: u32,
    },
}

#[derive(Debug, PartialEq)]
pub struct Document {
    /// Global index of the file in the run's sorted input list.
    pub file: u32,
    /// 1-based line where the document starts.
    pub line: u64,
    /// Piece of a document longer than `max_doc_chars` (0 for most).
    pub piece: u32,
    pub text: String,
    pub bad_utf8_lines: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    Empty,
    TooShort,
    MalformedJson,
    NoTextField,
}

pub struct ReaderConfig {
    pub doc_sep: DocSep,
    /// Explicit JSON fields to join; empty = the public Chinese corpora's fields.
    pub text_fields: Vec<String>,
    pub min_chars: usize,
    pub max_doc_chars: usize,
    pub strict: bool,
}

/// Reads one input file into items, calling `emit` for each in order.
/// Returns the sha256 of the raw file bytes.
pub fn read_file(
    path: &Path,
    file_index: u32,
    cfg: &ReaderConfig,
    bytes_read: Arc<AtomicU64>,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<String> {
    read_decoded(path, bytes_read, &mut |format, reader| {
        let mut lines = Lines {
            reader,
            path,
            line_no: 0,
            buf: Vec::new(),
            strict: cfg.strict,
        };
        read_lines(&mut lines, format, file_index, cfg, emit)
    })
}

/// Opens `path`, decompresses it and hands its bytes to `read`; then reads what `read`
/// left so that the returned sha256 covers the whole (raw) file, hashed on a thread of
/// its own while `read` works.
fn read_decoded(
    path: &Path,
    bytes_read: Arc<AtomicU64>,
    read: &mut dyn FnMut(Format, &mut dyn BufRead) -> Result<()>,
) -> Result<String> {
    let (format, comp) = classify(path)
        .ok_or_else(|| Error::Invalid(format!("{}: unknown input type", path.display())))?;
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let (to_hasher, blocks) = crossbeam_channel::bounded::<Vec<u8>>(16);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut h = crate::io::Hasher::new();
            for block in blocks {
                h.update(&block);
            }
            h.finish()
        });
        let mut tap = Tap {
            inner: f,
            to_hasher,
            counter: bytes_read,
        };
        let r = (|| {
            {
                let decoded: Box<dyn Read + '_> = match comp {
                    Compression::None => Box::new(&mut tap),
                    Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut tap)),
                    Compression::Zstd => Box::new(
                        zstd::stream::read::Decoder::new(&mut tap)
                            .map_err(|e| Error::io(path, e))?,
                    ),
                };
                let mut reader = BufReader::with_capacity(1 << 20, decoded);
                read(format, &mut reader)?;
                // Drain what a decoder left unread so the hash covers the whole file.
                std::io::copy(&mut reader.into_inner(), &mut std::io::sink()).ok();
            }
            std::io::copy(&mut tap, &mut std::io::sink()).map_err(|e| Error::io(path, e))?;
            Ok(())
        })();
        drop(tap); // ends the hasher's input
        let sha = hasher
            .join()
            .map_err(|_| Error::Internal(format!("{}: hashing panicked", path.display())))?;
        r.map(|()| sha)
    })
}

fn read_lines<R: BufRead + ?Sized>(
    lines: &mut Lines<R>,
    format: Format,
    file: u32,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    match (format, cfg.doc_sep) {
        (Format::JsonLines, _) => read_json_lines(lines, file, cfg, emit),
        (Format::Text, DocSep::Line) => read_text_lines(lines, file, cfg, emit),
        (Format::Text, DocSep::Blank) => read_text_blank(lines, file, cfg, emit),
    }
}

/// Whole lines of an input file, read but not parsed: [`read_raw`] cuts a file into them
/// so that others than the reader can parse them ([`parse_raw`]).
pub struct RawLines {
    pub path: Arc<Path>,
    pub format: Format,
    pub file: u32,
    /// Lines of the file before these.
    pub lines_before: u64,
    pub bytes: Vec<u8>,
}

/// Whether [`read_raw`] can cut `path` into [`RawLines`]: every record is one line (JSON
/// lines, or text with a document per line; not documents that span lines).
pub fn splits_at_line_ends(path: &Path, cfg: &ReaderConfig) -> bool {
    classify(path).is_some_and(|(format, _)| one_record_per_line(format, cfg.doc_sep))
}

fn one_record_per_line(format: Format, doc_sep: DocSep) -> bool {
    matches!(
        (format, doc_sep),
        (Format::JsonLines, _) | (_, DocSep::Line)
    )
}

/// Reads `path` (decompressing it) as pieces of whole lines of about `piece_bytes` each
/// (at least one line), in order, without parsing them. Returns the sha256 of the raw
/// file. [`parse_raw`] of every piece gives the items [`read_file`] gives.
pub fn read_raw(
    path: &Path,
    file_index: u32,
    bytes_read: Arc<AtomicU64>,
    piece_bytes: usize,
    emit: &mut dyn FnMut(RawLines) -> Result<()>,
) -> Result<String> {
    let shared: Arc<Path> = Arc::from(path);
    read_decoded(path, bytes_read, &mut |format, reader| {
        let mut lines_before = 0u64;
        loop {
            let mut bytes = Vec::with_capacity(piece_bytes.min(1 << 24) + 1024);
            while bytes.len() < piece_bytes {
                let buf = reader.fill_buf().map_err(|e| Error::io(path, e))?;
                if buf.is_empty() {
                    break;
                }
                let n = buf.len().min(piece_bytes - bytes.len());
                bytes.extend_from_slice(&buf[..n]);
                reader.consume(n);
            }
            if bytes.last().is_some_and(|&b| b != b'\n') {
                // the rest of the last line (none at the end of the file)
                reader
                    .read_until(b'\n', &mut bytes)
                    .map_err(|e| Error::io(path, e))?;
            }
            if bytes.is_empty() {
                return Ok(());
            }
            // As `Lines` counts them: a line per `\n`, and a last one without it.
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64
                + u64::from(bytes.last() != Some(&b'\n'));
            emit(RawLines {
                path: shared.clone(),
                format,
                file: file_index,
                lines_before,
                bytes,
            })?;
            lines_before += lines;
        }
    })
}

/// The items of a piece of [`read_raw`], as [`read_file`] reads them from those lines.
pub fn parse_raw(
    raw: &RawLines,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    if !one_record_per_line(raw.format, cfg.doc_sep) {
        return Err(Error::Internal(format!(
            "{}: documents span lines, they cannot be read in pieces",
            raw.path.display()
        )));
    }
    let mut reader: &[u8] = &raw.bytes;
    let mut lines = Lines {
        reader: &mut reader,
        path: &raw.path,
        line_no: raw.lines_before,
        buf: Vec::new(),
        strict: cfg.strict,
    };
    read_lines(&mut lines, raw.format, raw.file, cfg, emit)
}

struct Lines<'a, R: BufRead + ?Sized> {
    reader: &'a mut R,
    path: &'a Path,
    line_no: u64,
    buf: Vec<u8>,
    strict: bool,
}

impl<R: BufRead + ?Sized> Lines<'_, R> {
    /// Next line without its terminator, and whether it held invalid UTF-8 (replaced).
    fn next(&mut self) -> Result<Option<(String, bool)>> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| Error::io(self.path, e))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        if self.line_no == 1 && self.buf.starts_with(b"\xEF\xBB\xBF") {
            self.buf.drain(..3);
        }
        let bytes = std::mem::take(&mut self.buf);
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Some((s, false))),
            Err(e) => {
                if self.strict {
                    return Err(Error::data(self.location(), "invalid UTF-8"));
                }
                Ok(Some((
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                    true,
                )))
            }
        }
    }

    fn location(&self) -> String {
        format!("{}:{}", self.path.display(), self.line_no)
    }
}

fn read_text_lines<R: BufRead + ?Sized>(
    lines: &mut Lines<R>,
    file: u32,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    while let Some((text, bad)) = lines.next()? {
        let loc = lines.location();
        emit_document(text, file, lines.line_no, loc, bad as u32, cfg, emit)?;
    }
    Ok(())
}

fn read_text_blank<R: BufRead + ?Sized>(
    lines: &mut Lines<R>,
    file: u32,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    let mut doc = String::new();
    let mut start = 0u64;
    let mut bad = 0u32;
    loop {
        let next = lines.next()?;
        let blank = next.as_ref().is_none_or(|(l, _)| l.trim().is_empty());
        if blank {
            if start > 0 {
                let loc = format!("{}:{}", lines.path.display(), start);
                emit_document(std::mem::take(&mut doc), file, start, loc, bad, cfg, emit)?;
                start = 0;
                bad = 0;
            }
            if next.is_none() {
                return Ok(());
            }
            continue;
        }
        let (line, b) = next.unwrap();
        if start == 0 {
            start = lines.line_no;
        } else {
            doc.push('\n');
        }
        bad += b as u32;
        doc.push_str(&line);
    }
}

/// The fields of the public Chinese corpora, tried in order.
fn default_fields(obj: &serde_json::Map<String, serde_json::Value>) -> &'static [&'static str] {
    if obj.contains_key("text") {
        &["text"] // wiki_zh
    } else if obj.contains_key("answer") {
        &["title", "desc", "answer"] // baike_qa2019
    } else if obj.contains_key("content") {
        &["title", "content"] // news2016zh, webtext2019zh
    } else {
        &[]
    }
}

fn read_json_lines<R: BufRead + ?Sized>(
    lines: &mut Lines<R>,
    file: u32,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    while let Some((line, bad)) = lines.next()? {
        let loc = lines.location();
        if line.trim().is_empty() {
            emit(Item::Skipped {
                reason: SkipReason::Empty,
                line: lines.line_no,
                location: loc,
                bad_utf8_lines: bad as u32,
            })?;
            continue;
        }
        let value: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                if cfg.strict {
                    return Err(Error::data(loc, format!("malformed JSON ({e})")));
                }
                emit(Item::Skipped {
                    reason: SkipReason::MalformedJson,
                    line: lines.line_no,
                    location: format!("{loc}: {e}"),
                    bad_utf8_lines: bad as u32,
                })?;
                continue;
            }
        };
        let Some(obj) = value.as_object() else {
            if cfg.strict {
                return Err(Error::data(loc, "JSON line is not an object"));
            }
            emit(Item::Skipped {
                reason: SkipReason::MalformedJson,
                line: lines.line_no,
                location: format!("{loc}: not a JSON object"),
                bad_utf8_lines: bad as u32,
            })?;
            continue;
        };
        let explicit: Vec<&str> = cfg.text_fields.iter().map(|s| s.as_str()).collect();
        let fields: &[&str] = if explicit.is_empty() {
            default_fields(obj)
        } else {
            &explicit
        };
        let parts: Vec<&str> = fields
            .iter()
            .filter_map(|f| obj.get(*f).and_then(|v| v.as_str()))
            .filter(|s| !s.trim().is_empty())
            .collect();
        if parts.is_empty() && !fields.iter().any(|f| obj.contains_key(*f)) {
            emit(Item::Skipped {
                reason: SkipReason::NoTextField,
                line: lines.line_no,
                location: loc,
                bad_utf8_lines: bad as u32,
            })?;
            continue;
        }
        let text = parts.join("\n");
        emit_document(text, file, lines.line_no, loc, bad as u32, cfg, emit)?;
    }
    Ok(())
}

fn emit_document(
    text: String,
    file: u32,
    line: u64,
    location: String,
    bad_utf8_lines: u32,
    cfg: &ReaderConfig,
    emit: &mut dyn FnMut(Item) -> Result<()>,
) -> Result<()> {
    let trimmed = text.trim();
    let skip = if trimmed.is_empty() {
        Some(SkipReason::Empty)
    } else if trimmed.chars().take(cfg.min_chars).count() < cfg.min_chars {
        Some(SkipReason::TooShort)
    } else {
        None
    };
    if let Some(reason) = skip {
        return emit(Item::Skipped {
            reason,
            line,
            location,
            bad_utf8_lines,
        });
    }
    if trimmed.len() <= cfg.max_doc_chars {
        // Fewer bytes than the limit means fewer characters too: the common, cheap case.
        return emit(Item::Doc(Document {
            file,
            line,
            piece: 0,
            text,
            bad_utf8_lines,
        }));
    }
    for (piece, chunk) in safe_chunks(&text, cfg.max_doc_chars).enumerate() {
        emit(Item::Doc(Document {
            file,
            line,
            piece: piece as u32,
            text: chunk.to_string(),
            bad_utf8_lines: if piece == 0 { bad_utf8_lines } else { 0 },
        }))?;
    }
    Ok(())
}

/// Sentence ends and whitespace: cutting right after one changes neither WordPiece nor
/// jieba output, since both split there anyway.
fn is_hard_boundary(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '…') || c.is_whitespace()
}

/// Splits `text` into consecutive pieces of at most `max_chars` characters, each cut
/// right after a sentence end or whitespace when one lies in the last half of the piece,
/// else before a CJK character, else anywhere. Linear time.
pub fn safe_chunks(text: &str, max_chars: usize) -> impl Iterator<Item = &str> {
    let max_chars = max_chars.max(2);
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        // The rest fits (most documents): no boundary search. Counting characters is cheap
        // (SIMD); bounded so that a huge text is not counted once per piece.
        if rest.len() <= max_chars
            || (rest.len() <= 4 * max_chars && rest.chars().count() <= max_chars)
        {
            return Some(std::mem::take(&mut rest));
        }
        // Byte index after the first `max_chars` characters, with char boundaries of the
        // last half remembered for a good cut.
        let mut end = rest.len();
        let mut hard = None;
        let mut cjk = None;
        for (n, (i, c)) in rest.char_indices().enumerate() {
            if n == max_chars {
                end = i;
                break;
            }
            if n >= max_chars / 2 {
                if crate::tokenize::is_cjk(c) {
                    cjk = Some(i);
                }
                if is_hard_boundary(c) {
                    hard = Some(i + c.len_utf8());
                }
            }
        }
        let cut = if end == rest.len() {
            end
        } else {
            hard.or(cjk).filter(|&c| c > 0).unwrap_or(end)
        };
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names() {
        assert_eq!(
            classify(Path::new("a/b.jsonl.gz")),
            Some((Format::JsonLines, Compression::Gzip))
        );
        assert_eq!(
            classify(Path::new("wiki_00.TXT.zst")),
            Some((Format::Text, Compression::Zstd))
        );
        assert_eq!(classify(Path::new("x.csv")), None);
        assert_eq!(classify(Path::new("txt")), None);
    }

    #[test]
    fn chunks_cover_text_and_cut_after_sentences() {
        let text = "今天天气很好。我们去公园散步吧！".repeat(50) + &"字".repeat(333);
        let chunks: Vec<&str> = safe_chunks(&text, 40).collect();
        assert_eq!(chunks.concat(), text);
        for c in &chunks {
            assert!(c.chars().count() <= 40);
        }
        assert!(chunks[0].ends_with('。') || chunks[0].ends_with('！'));
        let short: Vec<&str> = safe_chunks("abc", 10).collect();
        assert_eq!(short, ["abc"]);
    }

    fn cfg() -> ReaderConfig {
        ReaderConfig {
            doc_sep: DocSep::Line,
            text_fields: vec![],
            min_chars: 3,
            max_doc_chars: 1000,
            strict: false,
        }
    }

    fn read_all(path: &Path, cfg: &ReaderConfig) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        read_file(path, 0, cfg, Arc::default(), &mut |it| {
            items.push(it);
            Ok(())
        })?;
        Ok(items)
    }

    #[test]
    fn json_lines_fields_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(
            &p,
            "{\"text\": \"维基百科是自由的百科全书\"}\n\
             {\"title\": \"标题\", \"content\": \"新闻的正文内容\"}\n\
             not json\n\
             \n\
             {\"title\": \"问\", \"desc\": \"描述\", \"answer\": \"回答的内容\"}\n\
             {\"other\": 1}\n\
             [1, 2]\n",
        )
        .unwrap();
        let items = read_all(&p, &cfg()).unwrap();
        let docs: Vec<&Document> = items
            .iter()
            .filter_map(|i| match i {
                Item::Doc(d) => Some(d),
                _ => None,
            })
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1].text, "标题\n新闻的正文内容");
        assert_eq!(docs[2].text, "问\n描述\n回答的内容");
        assert_eq!(docs[2].line, 5);
        let skipped: Vec<(SkipReason, &str)> = items
            .iter()
            .filter_map(|i| match i {
                Item::Skipped {
                    reason, location, ..
                } => Some((*reason, location.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(skipped[0].0, SkipReason::MalformedJson);
        assert!(skipped[0].1.contains("a.jsonl:3"));
        assert_eq!(skipped[1].0, SkipReason::Empty);
        assert_eq!(skipped[2].0, SkipReason::NoTextField);
        assert_eq!(skipped[3].0, SkipReason::MalformedJson);
        let strict = ReaderConfig {
            strict: true,
            ..cfg()
        };
        let err = read_all(&p, &strict).unwrap_err().to_string();
        assert!(
            err.contains("a.jsonl:3") && err.contains("malformed JSON"),
            "{err}"
        );
    }

    #[test]
    fn blank_separated_documents_and_bad_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("g.txt");
        let mut bytes = "第一句话。\n第二句话。\n\n\n另一篇文档的句子。\n"
            .as_bytes()
            .to_vec();
        bytes.splice(bytes.len() - 10..bytes.len() - 10, [0xFFu8]);
        std::fs::write(&p, &bytes).unwrap();
        let blank = ReaderConfig {
            doc_sep: DocSep::Blank,
            ..cfg()
        };
        let items = read_all(&p, &blank).unwrap();
        let Item::Doc(d0) = &items[0] else { panic!() };
        assert_eq!(d0.text, "第一句话。\n第二句话。");
        let Item::Doc(d1) = &items[1] else { panic!() };
        assert_eq!(d1.line, 5);
        assert_eq!(d1.bad_utf8_lines, 1);
        assert!(d1.text.contains('\u{FFFD}'));
        let strict = ReaderConfig {
            strict: true,
            ..blank
        };
        let err = read_all(&p, &strict).unwrap_err().to_string();
        assert!(err.contains("g.txt:5") && err.contains("UTF-8"), "{err}");
    }

    /// The items of `path` read in pieces of about `piece_bytes` and parsed apart.
    fn read_in_pieces(path: &Path, cfg: &ReaderConfig, piece_bytes: usize) -> Result<Vec<Item>> {
        let mut pieces = Vec::new();
        read_raw(path, 0, Arc::default(), piece_bytes, &mut |raw| {
            pieces.push(raw);
            Ok(())
        })?;
        let mut items = Vec::new();
        for raw in &pieces {
            parse_raw(raw, cfg, &mut |it| {
                items.push(it);
                Ok(())
            })?;
        }
        Ok(items)
    }

    #[test]
    fn pieces_of_lines_parse_to_the_items_of_the_whole_file() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let long = "很长的文档。".repeat(400); // over max_doc_chars: pieces
        let mut json = b"\xEF\xBB\xBF{\"text\": \"\xE7\xAC\xAC\xE4\xB8\x80\xE7\xAF\x87\xE6\x96\x87\xE6\xA1\xA3\"}\r\n"
            .to_vec();
        json.extend_from_slice(
            b"not json\n\n{\"title\": \"t\", \"content\": \"bad \xFF utf-8 here\"}\n",
        );
        json.extend_from_slice(format!("{{\"text\": \"{long}\"}}\n{{\"other\": 1}}\n").as_bytes());
        json.extend_from_slice("{\"text\": \"没有换行结尾的最后一行\"}".as_bytes());
        let mut text = b"first document line\nshort\n\n".to_vec();
        text.extend_from_slice(format!("{long}\n").as_bytes());
        text.extend_from_slice(b"\xFE broken line here\nlast line without end");
        let files = [
            ("a.jsonl", json.clone()),
            ("b.txt", text.clone()),
            ("c.txt", Vec::new()),
        ];
        let mut paths: Vec<PathBuf> = files
            .iter()
            .map(|(name, bytes)| {
                let p = dir.path().join(name);
                std::fs::write(&p, bytes).unwrap();
                p
            })
            .collect();
        let gz = dir.path().join("d.jsonl.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&json).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        paths.push(gz);
        for p in &paths {
            assert!(splits_at_line_ends(p, &cfg()));
            let whole = read_all(p, &cfg()).unwrap();
            for piece_bytes in [1, 7, 64, 1 << 20] {
                let pieces = read_in_pieces(p, &cfg(), piece_bytes).unwrap();
                assert_eq!(
                    pieces,
                    whole,
                    "{} in pieces of {piece_bytes} bytes",
                    p.display()
                );
            }
            let sha = |f: &mut dyn FnMut() -> Result<String>| f().unwrap();
            assert_eq!(
                sha(&mut || read_file(p, 0, &cfg(), Arc::default(), &mut |_| Ok(()))),
                sha(&mut || read_raw(p, 0, Arc::default(), 5, &mut |_| Ok(()))),
            );
            let strict = ReaderConfig {
                strict: true,
                ..cfg()
            };
            if let Err(e) = read_all(p, &strict) {
                let e2 = read_in_pieces(p, &strict, 7).unwrap_err();
                assert_eq!(e.to_string(), e2.to_string());
            }
        }
        let blank = ReaderConfig {
            doc_sep: DocSep::Blank,
            ..cfg()
        };
        assert!(!splits_at_line_ends(&paths[1], &blank));
        assert!(read_in_pieces(&paths[1], &blank, 64).is_err());
    }

    #[test]
    fn compressed_inputs_read_the_same() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let text = "一篇足够长的中文文档。\n第二篇足够长的文档。\n";
        let gz = dir.path().join("a.txt.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        let zs = dir.path().join("a.txt.zst");
        std::fs::write(&zs, zstd::encode_all(text.as_bytes(), 3).unwrap()).unwrap();
        for p in [gz, zs] {
            let items = read_all(&p, &cfg()).unwrap();
            assert_eq!(items.len(), 2);
        }
    }
}
