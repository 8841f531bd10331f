//! `distill-prep merge`: one manifest over the outputs of several machines
//! (`--num-shards K --shard-index I` runs), shards hard-linked (or copied) and renumbered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::prep::{read_manifest, write_manifest, Manifest, Report};
use crate::shard::{sha256_file, shard_name, ShardInfo};

fn add_reports(total: &mut Report, r: &Report) {
    total.documents_read += r.documents_read;
    total.documents_used += r.documents_used;
    for (k, v) in &r.skipped {
        *total.skipped.entry(k.clone()).or_default() += v;
    }
    for loc in &r.skipped_examples {
        if total.skipped_examples.len() < 20 {
            total.skipped_examples.push(loc.clone());
        }
    }
    total.invalid_utf8_lines += r.invalid_utf8_lines;
    total.long_document_pieces += r.long_document_pieces;
    total.chars += r.chars;
    total.bytes += r.bytes;
    total.tokens += r.tokens;
    total.unk_tokens += r.unk_tokens;
    total.windows += r.windows;
    total.examples += r.examples;
    total.masked_positions += r.masked_positions;
    total.elapsed_s = total.elapsed_s.max(r.elapsed_s);
}

fn link_or_copy(src: &Path, dst: &Path) -> Result<()> {
    let mut tmp = dst.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(src, &tmp).is_err() {
        std::fs::copy(src, &tmp).at(src)?;
    }
    std::fs::rename(&tmp, dst).at(dst)
}

pub fn merge(out: &Path, dirs: &[PathBuf], overwrite: bool) -> Result<Manifest> {
    if dirs.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one input directory".into(),
        ));
    }
    let mut parts: Vec<(PathBuf, Manifest)> = Vec::new();
    for d in dirs {
        parts.push((d.clone(), read_manifest(d)?));
    }
    parts.sort_by_key(|(_, m)| m.params.shard_index);
    let first = parts[0].1.clone();
    let k = first.params.num_shards;
    let mut seen = BTreeMap::new();
    for (d, m) in &parts {
        let mut p = m.params.clone();
        p.shard_index = first.params.shard_index;
        if p != first.params || m.vocab != first.vocab {
            return Err(Error::Invalid(format!(
                "{} was made with other parameters or another vocabulary than {}",
                d.display(),
                parts[0].0.display()
            )));
        }
        if let Some(prev) = seen.insert(m.params.shard_index, d.clone()) {
            return Err(Error::Invalid(format!(
                "{} and {} are both --shard-index {}",
                prev.display(),
                d.display(),
                m.params.shard_index
            )));
        }
    }
    let missing: Vec<String> = (0..k)
        .filter(|i| !seen.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Invalid(format!(
            "--num-shards {k} but no output for --shard-index {}",
            missing.join(", ")
        )));
    }
    std::fs::create_dir_all(out).at(out)?;
    if out.join("manifest.json").exists() && !overwrite {
        return Err(Error::Invalid(format!(
            "{} already holds a manifest; use --overwrite to replace it",
            out.display()
        )));
    }
    let mut shards: Vec<ShardInfo> = Vec::new();
    let mut inputs = Vec::new();
    let mut report = Report::default();
    for (d, m) in &parts {
        for s in &m.shards {
            let name = shard_name(shards.len());
            for (ext, sha) in [("bin", &s.bin_sha256), ("idx", &s.idx_sha256)] {
                let src = d.join(format!("{}.{ext}", s.name));
                if &sha256_file(&src)? != sha {
                    return Err(Error::data(
                        src.display().to_string(),
                        "checksum does not match its manifest (corrupted?)",
                    ));
                }
                link_or_copy(&src, &out.join(format!("{name}.{ext}")))?;
            }
            shards.push(ShardInfo { name, ..s.clone() });
        }
        inputs.extend(m.inputs.iter().cloned());
        add_reports(&mut report, &m.report);
    }
    inputs.sort_by_key(|f| f.index);
    report.unk_rate = if report.tokens > 0 {
        report.unk_tokens as f64 / report.tokens as f64
    } else {
        0.0
    };
    let mut params = first.params.clone();
    params.shard_index = 0;
    params.num_shards = 1;
    let m = Manifest {
        params,
        inputs,
        examples: shards.iter().map(|s| s.examples).sum(),
        tokens: shards.iter().map(|s| s.tokens).sum(),
        masked: shards.iter().map(|s| s.masked).sum(),
        shards,
        report,
        merged_from: dirs.iter().map(|d| d.display().to_string()).collect(),
        ..first
    };
    write_manifest(out, &m)?;
    Ok(m)
}
