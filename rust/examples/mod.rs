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
pub use writer::ShardWriter;

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

    fn ex(k: u32, len: usize) -> Example {
        Example {
            input_ids: (0..len as u32).map(|i| i * 7 + k).collect(),
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
            let mut w = ShardWriter::create(dir.path(), 3, width).unwrap();
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
            for (i, e) in exs.iter().enumerate() {
                assert_eq!(&s.example(i), e);
            }
        }
    }

    #[test]
    fn truncated_or_corrupt_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create(dir.path(), 0, 2).unwrap();
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
        let last = d.len() - 1;
        d[last] ^= 1; // a `dupe` value: the file still opens, only the checksum sees it
        std::fs::write(&idx, &d).unwrap();
        let e = Shard::open(dir.path(), "examples-00000")
            .and_then(|s| s.verify(dir.path(), &info))
            .err()
            .unwrap();
        assert!(e.to_string().contains("checksum"), "{e}");
    }
}
