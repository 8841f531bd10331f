//! Example shards: `examples-NNNNN.bin` (token data) + `examples-NNNNN.idx` (offsets and
//! provenance), plain little-endian arrays that `numpy` reads as they are, listed by the
//! directory's `manifest.json`. Byte layout: `format.rs`, docs/FORMATS.md.

pub mod format;
pub mod manifest;
mod reader;
mod writer;

pub use format::shard_name;
pub use manifest::{
    read_manifest, write_manifest, InputFile, Manifest, Report, ShardInfo, VocabInfo,
};
pub use reader::{Ids, Shard};
pub use writer::{ExampleRef, ShardWriter};

/// One masked example, as produced by the pipeline.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Example {
    pub input_ids: Vec<u32>,
    pub positions: Vec<u16>,
    pub labels: Vec<u32>,
    pub file: u32,
    pub piece: u32,
    pub line: u64,
    pub window: u32,
    pub dupe: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::sha256_file;
    use std::path::Path;

    const CLS: u32 = 101;
    const SEP: u32 = 102;

    /// `[CLS]`, `len - 2` ids, `[SEP]`; positions 1 and 3 masked.
    fn ex(k: u32, len: usize) -> Example {
        let mut input_ids: Vec<u32> = (0..len as u32).map(|i| i * 7 + k + 200).collect();
        input_ids[0] = CLS;
        input_ids[len - 1] = SEP;
        input_ids[1] = 103;
        Example {
            input_ids,
            positions: vec![1, 3],
            labels: vec![k, k + 1],
            file: k,
            piece: 0,
            line: 10 + k as u64,
            window: k * 2,
            dupe: k % 5,
        }
    }

    #[test]
    fn round_trip_both_widths() {
        for width in [2usize, 4] {
            let dir = tempfile::tempdir().unwrap();
            let mut w = ShardWriter::create(dir.path(), 3, width, CLS, SEP).unwrap();
            let exs: Vec<Example> = (0..50).map(|k| ex(k, 5 + k as usize)).collect();
            for e in &exs {
                w.push(e).unwrap();
            }
            let info = w.finish().unwrap();
            assert_eq!(info.name, "examples-00003");
            assert_eq!(info.examples, 50);
            assert_eq!(
                sha256_file(&dir.path().join("examples-00003.bin")).unwrap(),
                info.bin_sha256
            );
            let s = Shard::open(dir.path(), &info.name).unwrap();
            s.verify(dir.path(), &info).unwrap();
            assert_eq!(s.version(), 2);
            for (i, e) in exs.iter().enumerate() {
                assert_eq!(&s.example(i), e);
                assert_eq!(s.input_len(i), e.input_ids.len());
            }
        }
    }

    #[test]
    fn examples_share_their_document_tokens() {
        // One document's tokens stored once, two windows and two maskings over them.
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), 0, 2, CLS, SEP).unwrap();
        let doc: Vec<u32> = (500..520).collect();
        let start = w.push_tokens(&doc).unwrap();
        let masks: [(u64, u32, &[u16], &[u32]); 3] = [
            (0, 12, &[2, 5], &[103, 501 + 3]),
            (0, 12, &[12], &[7]),
            (8, 12, &[1], &[103]),
        ];
        for (k, &(s, len, positions, values)) in masks.iter().enumerate() {
            w.push_example(&ExampleRef {
                start: start + s,
                len,
                positions,
                values,
                file: 0,
                piece: 0,
                line: 1,
                window: (s / 8) as u32,
                dupe: k as u32,
            })
            .unwrap();
        }
        let bad = ExampleRef {
            start: 10,
            len: 11,
            positions: &[],
            values: &[],
            file: 0,
            piece: 0,
            line: 1,
            window: 0,
            dupe: 0,
        };
        assert!(
            w.push_example(&bad).is_err(),
            "a window beyond the tokens written"
        );
        assert!(w
            .push_example(&ExampleRef {
                start: 0,
                len: 4,
                positions: &[5],
                values: &[1],
                ..bad
            })
            .is_err());
        let info = w.finish().unwrap();
        assert_eq!(info.tokens, 20);
        let s = Shard::open(dir.path(), &info.name).unwrap();
        let e = s.example(0);
        let mut want: Vec<u32> = [CLS].into_iter().chain(500..512).chain([SEP]).collect();
        want[2] = 103;
        want[5] = 504;
        assert_eq!(e.input_ids, want);
        assert_eq!(e.labels, vec![501, 504]);
        let e = s.example(1);
        assert_eq!((e.input_ids[12], e.labels.clone()), (7, vec![511]));
        let e = s.example(2);
        assert_eq!(&e.input_ids[..3], &[CLS, 103, 509]);
        assert_eq!((e.input_ids.len(), e.labels.clone()), (14, vec![508]));
    }

    /// A version-1 shard, written byte by byte as docs/FORMATS.md describes it.
    fn write_v1(dir: &Path, name: &str, exs: &[Example], width: usize) {
        use format::{put_ids, IdxHeader};
        let (mut tokens, mut labels, mut positions) = (Vec::new(), Vec::new(), Vec::new());
        let (mut to, mut mo) = (vec![0u64], vec![0u64]);
        for e in exs {
            tokens.extend_from_slice(&e.input_ids);
            labels.extend_from_slice(&e.labels);
            positions.extend_from_slice(&e.positions);
            to.push(tokens.len() as u64);
            mo.push(labels.len() as u64);
        }
        let mut bin = Vec::new();
        put_ids(&mut bin, &tokens, width);
        put_ids(&mut bin, &labels, width);
        bin.extend_from_slice(bytemuck::cast_slice(&positions));
        let h = IdxHeader {
            version: 1,
            token_bytes: width,
            n: exs.len(),
            n_tokens: tokens.len(),
            n_masked: labels.len(),
            bin_bytes: bin.len(),
            cls_id: 0,
            sep_id: 0,
        };
        let mut idx = h.encode();
        idx.extend_from_slice(bytemuck::cast_slice(&to));
        idx.extend_from_slice(bytemuck::cast_slice(&mo));
        idx.extend(exs.iter().flat_map(|e| e.line.to_le_bytes()));
        for col in [
            |e: &Example| e.file,
            |e: &Example| e.piece,
            |e: &Example| e.window,
            |e: &Example| e.dupe,
        ] {
            idx.extend(exs.iter().flat_map(|e| col(e).to_le_bytes()));
        }
        std::fs::write(format::bin_path(dir, name), bin).unwrap();
        std::fs::write(format::idx_path(dir, name), idx).unwrap();
    }

    #[test]
    fn version_1_shards_stay_readable() {
        for width in [2usize, 4] {
            let dir = tempfile::tempdir().unwrap();
            let exs: Vec<Example> = (0..30).map(|k| ex(k, 6 + k as usize)).collect();
            write_v1(dir.path(), "examples-00000", &exs, width);
            let s = Shard::open(dir.path(), "examples-00000").unwrap();
            assert_eq!((s.version(), s.n, s.lengths()), (1, 30, None));
            for (i, e) in exs.iter().enumerate() {
                assert_eq!(&s.example(i), e);
            }
            // a masked position on [SEP] is refused at open
            let mut bad = exs.clone();
            bad[3].positions[1] = 8;
            write_v1(dir.path(), "examples-00001", &bad, width);
            let e = Shard::open(dir.path(), "examples-00001").err().unwrap();
            assert!(e.to_string().contains("example 3"), "{e}");
        }
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), 0, 2, CLS, SEP).unwrap();
        for k in 0..10 {
            w.push(&ex(k, 20)).unwrap();
        }
        let info = w.finish().unwrap();
        let bin = dir.path().join("examples-00000.bin");
        let data = std::fs::read(&bin).unwrap();
        std::fs::write(&bin, &data[..data.len() - 3]).unwrap();
        let e = Shard::open(dir.path(), "examples-00000").err().unwrap();
        assert!(e.to_string().contains("examples-00000.bin"), "{e}");
        std::fs::write(&bin, &data).unwrap();
        let idx = dir.path().join("examples-00000.idx");
        let mut d = std::fs::read(&idx).unwrap();
        d[0] = b'X';
        std::fs::write(&idx, &d).unwrap();
        assert!(Shard::open(dir.path(), "examples-00000").is_err());
        d[0] = b'W';
        let dupe = format::IdxHeader::decode(&d)
            .unwrap()
            .u32_column(format::DUPE);
        d[dupe.end - 1] ^= 1; // a `dupe` value: the file still opens, only the checksum sees it
        std::fs::write(&idx, &d).unwrap();
        let e = Shard::open(dir.path(), "examples-00000")
            .and_then(|s| s.verify(dir.path(), &info))
            .err()
            .unwrap();
        assert!(e.to_string().contains("checksum"), "{e}");

        // Version 2's references are checked at open: a window past the tokens, a masked
        // position on [CLS] or past the window. Errors, never a panic on reading.
        let h = format::IdxHeader::decode(&d).unwrap();
        let good = d.clone();
        let length = h.u32_column(format::LENGTH).start;
        d[length..length + 4].copy_from_slice(&(h.n_tokens as u32 + 1).to_le_bytes());
        std::fs::write(&idx, &d).unwrap();
        let e = Shard::open(dir.path(), "examples-00000").err().unwrap();
        assert!(e.to_string().contains("out of range"), "{e}");
        let pos = h.positions().start;
        for bad in [0u16, 19] {
            let mut b = data.clone();
            b[pos..pos + 2].copy_from_slice(&bad.to_le_bytes());
            std::fs::write(&bin, &b).unwrap();
            std::fs::write(&idx, &good).unwrap();
            let e = Shard::open(dir.path(), "examples-00000").err().unwrap();
            assert!(e.to_string().contains("example 0"), "{e}");
        }
    }
}
