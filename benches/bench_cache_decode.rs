//! Decode speed of teacher-cache shards in Rust alone (no Python): every example of each
//! `.tkc` file gathered in requests of 256 examples from a freshly opened reader (the file
//! in the page cache), the files taken in turn `REPEATS` times so that they share the
//! machine's ups and downs; best time per file, and its ratio to the first file (the
//! baseline: e.g. the same outputs in format 2, written by `benches/bench_cache.py
//! --from-caches` or `_core.CacheWriter(..., format_version=2)`).
//!
//!     cargo run --release --example bench_cache_decode -- REPEATS BASELINE.tkc OTHER.tkc...
//!
//! Instruction counts, steadier than times on a shared machine:
//! `valgrind --tool=cachegrind --cache-sim=no target/release/examples/bench_cache_decode 1 F`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use wwm_distill::cache::CacheReader;

fn decode_all(path: &Path) -> Result<(usize, f64), String> {
    let r = CacheReader::open(path, 1).map_err(|e| e.to_string())?;
    let examples: Vec<u64> = (0..r.n_examples).collect();
    let t = Instant::now();
    let mut entries = 0usize;
    for request in examples.chunks(256) {
        let g = r.gather(request).map_err(|e| e.to_string())?;
        entries += g.counts.iter().map(|&k| k as usize).sum::<usize>();
    }
    Ok((entries, t.elapsed().as_secs_f64()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_cache_decode REPEATS BASELINE.tkc [OTHER.tkc ...]";
    let Some(repeats) = args.first().and_then(|a| a.parse::<usize>().ok()) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let files = &args[1..];
    if files.is_empty() || repeats == 0 {
        eprintln!("{usage}");
        return ExitCode::from(2);
    }
    let mut best = vec![f64::INFINITY; files.len()];
    let mut entries = vec![0usize; files.len()];
    for _ in 0..repeats {
        for (i, f) in files.iter().enumerate() {
            match decode_all(Path::new(f)) {
                Ok((n, secs)) => {
                    entries[i] = n;
                    best[i] = best[i].min(secs);
                }
                Err(e) => {
                    eprintln!("bench_cache_decode: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    println!("| file | entries | best s | M entries/s | / baseline |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let rate = |i: usize| entries[i] as f64 / best[i] / 1e6;
    for (i, f) in files.iter().enumerate() {
        println!(
            "| {f} | {} | {:.3} | {:.1} | {:.2} |",
            entries[i],
            best[i],
            rate(i),
            rate(i) / rate(0)
        );
    }
    ExitCode::SUCCESS
}
