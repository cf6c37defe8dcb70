//! `memento-inspect`: open a store without trusting it, show every structure, prove it is
//! consistent, and repair what can be repaired (the SQLite mirror). The reading is
//! `memento::inspect`; this binary parses arguments and prints.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use memento::inspect::{self as engine_inspect, Inspector};
use memento_tools::inspect as render;
use memento_tools::{default_store_dir, finish};

const SEVERITIES: &str = "\
Findings have a severity:
  error    the store is damaged: the engine refuses to open it, would return wrong or missing
           data, or has lost redundancy. `verify` exits with status 1. Damage to a derived
           file (mirror.*, graph.*) loses no record: the engine rebuilds it from the log.
  warning  a normal artefact of a crash or of a live store (a torn WAL tail, a mirror behind
           the log), which the engine repairs by itself at its next open. `verify` exits 0.
Each finding has a stable kind (page.checksum, wal.torn_tail, mirror.missing_row, ...): the
list is in the documentation of memento::inspect and in the README.";

/// Inspect a Memento store without trusting it: show every structure, verify every checksum and
/// cross-check, and rebuild the SQLite mirror if asked. Read-only unless the command is
/// rebuild-mirror; works while another process has the store open.
///
/// Exit status: 0 success, 1 error or damage found by verify, 2 usage error.
#[derive(Debug, Parser)]
#[command(name = "memento-inspect", version, after_long_help = SEVERITIES)]
struct Cli {
    /// The store directory [default: $MEMENTO_HOME, else $XDG_DATA_HOME/memento/default, else
    /// ~/.local/share/memento/default].
    #[arg(long, global = true, value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// More detail (every WAL record; the cause chain of an error).
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Both superblock copies of the vector file: every field, the checksum, which copy is current.
    Superblock,
    /// Every page of the vector file's checkpoint: type, page number, checkpoint sequence, LSN
    /// range, live and dead entries, checksum; then a summary.
    Pages,
    /// The write-ahead log: header, each transaction (LSNs, operations, size), each record with
    /// --verbose, and a torn tail with its offset and size.
    Wal,
    /// The graph index memento.graph, if there is one: its header (nodes covered, m/m0,
    /// ef_construction, the measured recall), its levels (pages, records, record size), whether
    /// it is bound to the current vector file, and every page and record checked.
    Graph,
    /// Check everything: every checksum, the directory, the int8 copies against their vectors,
    /// the WAL as recovery reads it, the graph file when there is one, and the SQLite mirror
    /// against the vector file and WAL both ways (same ids, texts and metadata, no extra rows;
    /// applied LSN; PRAGMA integrity_check). Exits 1 if any finding is an error.
    #[command(after_long_help = SEVERITIES)]
    Verify,
    /// The only repair: take the store's lock, move the mirror aside (memento.mirror.sqlite.old),
    /// rebuild it from the vector file and the WAL through the engine, then verify. Refused while
    /// another process has the store open, or when the vector file or WAL is damaged.
    RebuildMirror,
    /// One record, read from the log: its slot, vector (the first 8 elements; --full for all),
    /// text, metadata, where each part lives (page or WAL LSN), and whether the mirror agrees.
    /// Exits 1 if no live record has the id.
    Dump {
        /// The record's id.
        id: String,
        /// Print the whole vector (and int8 codes).
        #[arg(long)]
        full: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose;
    finish(run(cli), verbose)
}

fn run(cli: Cli) -> Result<()> {
    let dir = cli.store.clone().unwrap_or_else(default_store_dir);
    if dir.join(memento::files::COLLECTIONS_MARKER).exists() {
        return collections(&dir, &cli);
    }
    memento_tools::cli::store::refuse_non_directory(&dir)?;
    let mut out = std::io::stdout().lock();
    let json = cli.json;
    let emit = |out: &mut dyn Write, v: serde_json::Value| -> Result<()> {
        serde_json::to_writer_pretty(&mut *out, &v).context("writing JSON")?;
        writeln!(out).context("writing JSON")?;
        Ok(())
    };
    if let Command::RebuildMirror = cli.command {
        let r = engine_inspect::rebuild_mirror(&dir).with_context(|| format!("rebuilding the mirror of {}", dir.display()))?;
        if json {
            emit(&mut out, render::rebuild_json(&r))?;
        } else {
            render::rebuild_text(&mut out, &r).context("writing the report")?;
        }
        out.flush().context("writing the report")?;
        return verdict(&r.verify);
    }
    let insp = Inspector::open(&dir).with_context(|| format!("inspecting {}", dir.display()))?;
    let lock = insp.lock_state().clone();
    match cli.command {
        Command::Superblock => {
            let r = insp.superblocks()?;
            if json {
                emit(&mut out, render::superblock_json(&r, &lock))?;
            } else {
                render::superblock_text(&mut out, &r, &lock).context("writing the report")?;
            }
        }
        Command::Pages => {
            let r = insp.pages()?;
            if json {
                emit(&mut out, render::pages_json(&r, &lock))?;
            } else {
                render::pages_text(&mut out, &r, &lock).context("writing the report")?;
            }
        }
        Command::Wal => {
            let r = insp.wal()?;
            if json {
                emit(&mut out, render::wal_json(&r, &lock))?;
            } else {
                render::wal_text(&mut out, &r, &lock, cli.verbose).context("writing the report")?;
            }
        }
        Command::Graph => {
            let r = insp.graph()?;
            if json {
                emit(&mut out, render::graph_json(&r, &lock))?;
            } else {
                render::graph_text(&mut out, &r, &lock).context("writing the report")?;
            }
        }
        Command::Verify => {
            let r = insp.verify()?;
            if json {
                emit(&mut out, render::verify_json(&r))?;
            } else {
                render::verify_text(&mut out, &r).context("writing the report")?;
            }
            out.flush().context("writing the report")?;
            return verdict(&r);
        }
        Command::Dump { id, full } => {
            let r = insp.dump(&id)?;
            if json {
                emit(&mut out, render::dump_json(&r, full, &lock))?;
            } else {
                render::dump_text(&mut out, &r, full, &lock).context("writing the report")?;
            }
        }
        Command::RebuildMirror => unreachable!("handled above"),
    }
    out.flush().context("writing the report")?;
    Ok(())
}

/// A directory of collections (FORMAT.md §8): `verify` checks every collection and the
/// directory's entries; the other commands read one store, named by its directory.
fn collections(dir: &std::path::Path, cli: &Cli) -> Result<()> {
    if !matches!(cli.command, Command::Verify) {
        return Err(anyhow!(
            "{} is a directory of collections: give one collection's directory (--store {}/NAME), or run verify, which checks them all",
            dir.display(),
            dir.display()
        ));
    }
    let r = engine_inspect::verify_collections(dir).with_context(|| format!("inspecting {}", dir.display()))?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut out, &render::collections_verify_json(&r)).context("writing JSON")?;
        writeln!(out).context("writing JSON")?;
    } else {
        render::collections_verify_text(&mut out, &r).context("writing the report")?;
    }
    out.flush().context("writing the report")?;
    let bad: Vec<&str> = r.collections.iter().filter(|(_, v)| !v.as_ref().is_ok_and(engine_inspect::VerifyReport::is_ok)).map(|(n, _)| n.as_str()).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{} collection(s) damaged or unreadable: {}", bad.len(), bad.join(", ")))
    }
}

/// Status 1, with one line on stderr, when a verification found errors.
fn verdict(r: &engine_inspect::VerifyReport) -> Result<()> {
    if r.is_ok() {
        return Ok(());
    }
    let kinds: std::collections::BTreeSet<&str> =
        r.findings.iter().filter(|f| f.severity == engine_inspect::Severity::Error).map(|f| f.kind.as_str()).collect();
    let derived = r.findings.iter().filter(|f| f.severity == engine_inspect::Severity::Error).all(|f| f.kind.in_derived_file());
    let note = if derived { "; only derived files, which the engine rebuilds: no record is lost" } else { "" };
    Err(anyhow!("the store is damaged: {} error finding(s) ({}){note}", r.errors(), kinds.into_iter().collect::<Vec<_>>().join(", ")))
}
