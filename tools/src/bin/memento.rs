//! The `memento` command: a local vector database from the shell. `memento --help` lists the
//! commands; the code is in `memento_tools::cli`.
//!
//! Exit status: 0 success, 1 error (one line on stderr, `error: ...`; `--verbose` prints its
//! causes), 2 usage error. Output cut short by a closed pipe (`memento export | head`) ends
//! quietly with 0.

use std::io::BufWriter;
use std::process::ExitCode;

use clap::Parser;
use memento_tools::cli::{self, Cli};
use memento_tools::finish;

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's convention), --help and --version with 0.
    let cli = Cli::parse();
    let verbose = cli.verbose;
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    finish(cli::run(cli, &mut out), verbose)
}
