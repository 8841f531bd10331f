//! `distill-prep merge`: one manifest over the outputs of several machines
//! (`--num-shards K --shard-index I` runs), shards hard-linked (or copied) and renumbered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::examples::format::{bin_path, idx_path};
use crate::examples::manifest::MANIFEST_FILE;
use crate::examples::{read_manifest, shard_name, write_manifest, Manifest, Report, ShardInfo};
use crate::io::sha256_file;

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
    parts.sort_by_key(|(_, m)| m.params.settings.shard_index);
    let first = parts[0].1.clone();
    let k = first.params.settings.num_shards;
    let mut seen = BTreeMap::new();
    for (d, m) in &parts {
        let mut p = m.params.clone();
        p.settings.shard_index = first.params.settings.shard_index;
        if p != first.params || m.vocab != first.vocab {
            return Err(Error::Invalid(format!(
                "{} was made with other parameters or another vocabulary than {}",
                d.display(),
                parts[0].0.display()
            )));
        }
        if let Some(prev) = seen.insert(m.params.settings.shard_index, d.clone()) {
            return Err(Error::Invalid(format!(
                "{} and {} are both --shard-index {}",
                prev.display(),
                d.display(),
                m.params.settings.shard_index
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
    if out.join(MANIFEST_FILE).exists() && !overwrite {
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
            for (src, dst, sha) in [
                (bin_path(d, &s.name), bin_path(out, &name), &s.bin_sha256),
                (idx_path(d, &s.name), idx_path(out, &name), &s.idx_sha256),
            ] {
                if &sha256_file(&src)? != sha {
                    return Err(Error::data(
                        src.display().to_string(),
                        "checksum does not match its manifest (corrupted?)",
                    ));
                }
                link_or_copy(&src, &dst)?;
            }
            shards.push(ShardInfo { name, ..s.clone() });
        }
        inputs.extend(m.inputs.iter().cloned());
        report.add(&m.report);
    }
    inputs.sort_by_key(|f| f.index);
    report.set_unk_rate();
    let mut params = first.params.clone();
    params.settings.shard_index = 0;
    params.settings.num_shards = 1;
    let m = Manifest {
        tool: first.tool,
        merged_from: dirs.iter().map(|d| d.display().to_string()).collect(),
        ..Manifest::new(params, first.vocab, inputs, shards, report)
    };
    write_manifest(out, &m)?;
    Ok(m)
}
