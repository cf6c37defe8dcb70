//! `memento-search-bench`: the Rust side of the engine comparison (`benches/compare/compare.py`).
//!
//! Five subcommands, each printing one JSON document on stdout (progress goes to stderr):
//!
//! ```text
//! memento-search-bench gen --out FILE --n N --seed data|queries|SEED
//! memento-search-bench bandwidth [--mib 1024] [--all-core-mib MIB] [--reps 7] [--threads N]
//! memento-search-bench search --base FILE --queries FILE [--nq 200] [--warmup 5] [--k 10]
//!     [--modes exact,quantized] [--threads 1,2] [--store-parent DIR] [--filter-mod 100] [--store DIR]
//! memento-search-bench ann --base FILE --queries FILE --store DIR --out FILE [--efs ...] [--phase all]
//! memento-search-bench kernels [--n 1000000] [--reps 15]
//! ```
//!
//! - `ann` measures the graph index as `benches/compare/ann.py` measures its peers (see
//!   `ann.rs`).
//! - `kernels` times every instruction set's scan kernels against the line-read rate of the
//!   buffers they stream, interleaved in one process (see `kernels.rs`).
//!
//! - `gen` writes `N` unit Gaussian vectors of dimension 384 from the crate's seeded generator
//!   as raw little-endian f32 (`N × 384 × 4` bytes), so that every engine reads the same bytes.
//!   `--seed data` and `--seed queries` are the seeds the harness uses.
//! - `bandwidth` measures memory read bandwidth on one core and on all cores (see
//!   `bandwidth.rs`): a buffer of `--mib` MiB for the one core, and one of `--all-core-mib`
//!   (default: the same) for each thread of the all-core run.
//! - `search` builds a Memento store from a `.f32` file, closes and reopens it, and times k-NN
//!   queries from another `.f32` file: one at a time (p50, p99) and as a batch (queries/s), for
//!   each requested scan mode and thread count. The result ids (row numbers) are printed, so
//!   the caller checks recall against its own ground truth. With `--filter-mod M`, record `i`
//!   gets the metadata `{"cat": "c{i % M}"}` and the filter `{"cat": "c7"}` is timed too.

mod ann;
mod bandwidth;
mod kernels;
mod search;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use memento_benches::{Rng, DATA_SEED, DIM, QUERY_SEED};

use memento_benches::args::{Args, BoxResult};

const USAGE: &str = "usage:
  memento-search-bench gen --out FILE --n N --seed data|queries|SEED
  memento-search-bench bandwidth [--mib 1024] [--all-core-mib MIB] [--reps 7] [--threads N]
  memento-search-bench search --base FILE --queries FILE [--nq 200] [--warmup 5] [--k 10]
      [--modes exact,quantized] [--threads 1,2] [--store-parent DIR] [--filter-mod 100] [--store DIR]
  memento-search-bench ann --base FILE --queries FILE --store DIR --out FILE [--dim 384] [--k 10]
      [--m 16] [--ef-construction 200] [--efs 10,16,32,...] [--nq N]
  memento-search-bench kernels [--n 1000000] [--reps 15]";

/// Read a whole `.f32` file (raw little-endian f32) of `dim`-element rows.
pub fn read_f32_file(path: &Path, dim: usize) -> BoxResult<Vec<f32>> {
    let mut bytes = Vec::new();
    File::open(path).map_err(|e| format!("{}: {e}", path.display()))?.read_to_end(&mut bytes)?;
    if !bytes.len().is_multiple_of(dim * 4) {
        return Err(format!("{}: {} bytes is not a whole number of {dim}-float rows", path.display(), bytes.len()).into());
    }
    Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
}

/// Rows of a `.f32` file, `rows` at a time, without holding the whole file.
pub struct F32Chunks {
    file: std::io::BufReader<File>,
    bytes: Vec<u8>,
    dim: usize,
}

impl F32Chunks {
    /// Open `path` for reading `dim`-element rows.
    pub fn open(path: &Path, dim: usize) -> BoxResult<(F32Chunks, usize)> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let len = file.metadata()?.len() as usize;
        if !len.is_multiple_of(dim * 4) {
            return Err(format!("{}: {len} bytes is not a whole number of {dim}-float rows", path.display()).into());
        }
        Ok((F32Chunks { file: std::io::BufReader::with_capacity(1 << 20, file), bytes: Vec::new(), dim }, len / (dim * 4)))
    }

    /// The next `rows` rows (fewer at the end of the file) into `out`, replacing its contents.
    pub fn next_rows(&mut self, rows: usize, out: &mut Vec<f32>) -> BoxResult<usize> {
        self.bytes.clear();
        (&mut self.file).take((rows * self.dim * 4) as u64).read_to_end(&mut self.bytes)?;
        out.clear();
        out.extend(self.bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        Ok(out.len() / self.dim)
    }
}

fn parse_seed(s: &str) -> BoxResult<u64> {
    Ok(match s {
        "data" => DATA_SEED,
        "queries" => QUERY_SEED,
        _ => match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16)?,
            None => s.replace('_', "").parse()?,
        },
    })
}

/// `gen`: write `n` unit vectors to `out` (through a temporary file renamed at the end, so a
/// file with the final name is always complete).
fn gen(args: &Args) -> BoxResult<()> {
    args.check_known(&["out", "n", "seed"])?;
    let out = PathBuf::from(args.required("out")?);
    let n = args.num("n", 0)?;
    let seed = parse_seed(args.required("seed")?)?;
    let tmp = out.with_extension("f32.partial");
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?);
    let mut rng = Rng::new(seed);
    let mut v = Vec::with_capacity(DIM);
    let mut bytes = Vec::with_capacity(DIM * 4);
    for _ in 0..n {
        v.clear();
        rng.push_unit_vector(DIM, &mut v);
        bytes.clear();
        bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        w.write_all(&bytes)?;
    }
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, &out)?;
    println!("{}", serde_json::json!({ "path": out, "n": n, "dim": DIM, "seed": format!("{seed:#018x}") }));
    Ok(())
}

fn bandwidth_cmd(args: &Args) -> BoxResult<()> {
    args.check_known(&["mib", "all-core-mib", "reps", "threads"])?;
    let mib = args.num("mib", 1024)?;
    let all_mib = args.num("all-core-mib", mib)?;
    let reps = args.num("reps", 7)?.max(1);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let threads = args.num("threads", cores)?.max(1);
    println!("{}", bandwidth::measure(mib << 20, all_mib << 20, reps, threads));
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut raw = std::env::args().skip(1);
    let cmd = raw.next().unwrap_or_default();
    let result = Args::parse(raw, USAGE).and_then(|args| match cmd.as_str() {
        "gen" => gen(&args),
        "bandwidth" => bandwidth_cmd(&args),
        "search" => search::run(&args),
        "ann" => ann::run(&args),
        "kernels" => kernels::run(&args),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown subcommand {cmd:?}\n{USAGE}").into()),
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memento-search-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
