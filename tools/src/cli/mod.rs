//! The `memento` command line: its arguments (clap) and the commands, all over the
//! `memento::Engine` API.
//!
//! Exit status: 0 success; 1 an error (one line on stderr, `error: ...`; `--verbose` adds the
//! causes); 2 a usage error (a bad option, or a `--where`, `--meta` or vector argument that is
//! not valid JSON or not a valid filter). Output cut short by a closed pipe ends quietly with 0.

mod check;
pub mod collections;
mod commands;
pub mod input;
pub mod model;
pub mod output;
pub mod progress;
mod search;
pub mod store;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::default_store_dir;
use input::Format;
use store::StoreArg;

/// Memento, an embedded vector database: remember texts and recall them by meaning, or store
/// vectors and search them, in a local store.
///
/// Without --store, commands use the default store ($MEMENTO_HOME, else
/// $XDG_DATA_HOME/memento/default, else ~/.local/share/memento/default), created on first use
/// with the default embedding model.
#[derive(Debug, Parser)]
#[command(name = "memento", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// The store directory [default: $MEMENTO_HOME, else $XDG_DATA_HOME/memento/default, else
    /// ~/.local/share/memento/default].
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// Work on the collection NAME of a directory of collections: --store (or the default store
    /// directory) is then that directory. `remember` and `add` create a missing collection with
    /// the default model, `init` with its options; other commands need it to exist.
    #[arg(long, global = true, value_name = "NAME")]
    pub collection: Option<String>,
    /// Print the result as one JSON document instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// On an error, print each of its causes on a line of its own.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a store: a text store with an embedding model (the default model unless
    /// --dimension is given), or a raw-vector store of --dimension.
    Init(InitArgs),
    /// Store texts, each embedded by the store's model, from arguments, files (JSONL, CSV,
    /// one per line) or stdin. A text stored already is not embedded again.
    Remember(IngestArgs),
    /// Store records: texts (embedded, as `remember` does) or records with their own vectors
    /// (--vector, or a "vector" field), as in a raw-vector store.
    Add(AddArgs),
    /// Find the stored texts closest in meaning to a question.
    Recall(RecallArgs),
    /// Find the records nearest to a vector.
    Search(SearchArgs),
    /// Show records by id, or those matching a filter.
    Get(GetArgs),
    /// Delete records by id, or those matching a filter.
    Delete(DeleteArgs),
    /// Change the text and/or the metadata of a record.
    Update(UpdateArgs),
    /// Figures about the store: records, pages, file sizes, the WAL, the model, the graph index.
    Stats(StatsArgs),
    /// Write everything committed since the last checkpoint into the vector file and start a
    /// new, empty WAL (closing a store does this too).
    Checkpoint,
    /// Rewrite the vector file with only its live records: the space of deleted and replaced
    /// records comes back (writes wait while it runs; readers do not).
    Compact,
    /// Write every record (id, text, metadata, vector) as JSON lines, after a header line with
    /// the store's dimension, metric and model. Floats are written exactly.
    Export(ExportArgs),
    /// Read what `export` wrote into a store (creating it, as the header says, if missing).
    /// Records are stored with their vectors, nothing is embedded; existing ids are replaced.
    Import(ImportArgs),
    /// The graph index (HNSW) that searches of large stores walk: build it now.
    #[command(subcommand)]
    Index(IndexCommand),
    /// The embedding model and the ONNX Runtime library: install and inspect them.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Named collections, each a store of its own, in one directory (--store, or the default
    /// store directory): list, create, delete and rename them.
    #[command(subcommand)]
    Collections(collections::CollectionsCommand),
}

/// The `index` subcommands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Bring the graph index up to every stored vector now, with every core, write its file and
    /// measure its recall, then print how long it took. The store otherwise builds it in the
    /// background as records are added, from 20,000 vectors on; this builds one for a smaller
    /// store too.
    Build(IndexBuildArgs),
}

/// `memento index build`.
#[derive(Debug, Args)]
pub struct IndexBuildArgs {
    /// Neighbours per node (HNSW's M; level 0 keeps twice as many), from 2 to 512 [default: 16].
    /// It shapes a new graph only: a store whose graph file exists keeps that graph's M (delete
    /// `memento.graph`, which is derived, to rebuild with another).
    #[arg(long, value_name = "M")]
    pub m: Option<u16>,
    /// Candidates kept while choosing each new node's neighbours [default: 200]: higher builds
    /// slower and reaches a higher recall at the same search ef.
    #[arg(long, value_name = "N", value_parser = positive)]
    pub ef_construction: Option<usize>,
}

/// `memento stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Measure the graph index's recall@10 now: stored vectors taken as queries are searched
    /// through the graph and exactly, and the share of the exact answers it finds is shown.
    #[arg(long)]
    pub recall: bool,
    /// The number of stored vectors --recall takes as queries.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = positive, requires = "recall")]
    pub sample: usize,
    /// The graph walk's candidate count for --recall [default: the engine's, 64].
    #[arg(long, value_name = "N", value_parser = positive, requires = "recall")]
    pub ef: Option<usize>,
}

/// How vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MetricArg {
    /// Cosine distance (vectors are normalised when stored).
    Cosine,
    /// Negative dot product.
    Dot,
    /// Squared Euclidean distance.
    L2,
}

impl From<MetricArg> for memento::Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Cosine => memento::Metric::Cosine,
            MetricArg::Dot => memento::Metric::Dot,
            MetricArg::L2 => memento::Metric::L2,
        }
    }
}

/// `memento init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Make a raw-vector store of this dimension (vectors are given, not embedded).
    #[arg(long, short = 'd', value_name = "N", conflicts_with = "model")]
    pub dimension: Option<usize>,
    /// Make a text store with this embedding model, by id, installed in the cache directory
    /// (`memento model list`) [default: all-minilm-l6-v2].
    #[arg(long, value_name = "ID")]
    pub model: Option<String>,
    /// How vectors are compared.
    #[arg(long, value_enum, default_value_t = MetricArg::Cosine)]
    pub metric: MetricArg,
    /// The page size in bytes, a power of two from 8192 to 16 MiB [default: 65536, which holds
    /// up to 16,352 dimensions; a larger dimension needs a larger page].
    #[arg(long, value_name = "BYTES")]
    pub page_size: Option<u32>,
    /// Share the new store with your group (directory 0770, files 0660) instead of keeping
    /// it private to you (0700, 0600).
    #[arg(long)]
    pub group: bool,
}

/// What `remember` and `add` read.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Texts to store, one record each. With neither texts nor --file, records are read from
    /// stdin.
    #[arg(value_name = "TEXT")]
    pub texts: Vec<String>,
    /// Read records from FILE (`-`: stdin); may be repeated. The format comes from the
    /// extension (.jsonl, .csv, .txt) unless --format says otherwise.
    #[arg(short, long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The format of --file and stdin [default: from the extension; else JSONL if the input
    /// starts with `{`, else one text per line].
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// The id of the one record given on the command line [default: derived from its text, so
    /// that the same text is stored once].
    #[arg(long)]
    pub id: Option<String>,
    /// Metadata for every record read, a JSON object such as '{"lang": "en"}' (merged into a
    /// record's own metadata, whose fields win).
    #[arg(long, value_name = "JSON")]
    pub meta: Option<String>,
    /// Records per commit: an interrupted run keeps every commit it made.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = positive)]
    pub batch: usize,
    /// Whose memories these are.
    #[command(flatten)]
    pub scope: ScopeArgs,
}

/// A memory scope (mem0's): stored as the metadata keys `user_id`, `agent_id` and `run_id`,
/// which are indexed. Storing stamps every record with the scope (a record whose metadata says
/// otherwise is refused); reading, searching and deleting take only the scope's records.
#[derive(Debug, Clone, Default, Args)]
pub struct ScopeArgs {
    /// The user the memories belong to (metadata `user_id`).
    #[arg(long, value_name = "ID")]
    pub user_id: Option<String>,
    /// The agent (metadata `agent_id`).
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,
    /// The session or run (metadata `run_id`).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

impl ScopeArgs {
    /// The engine's scope.
    pub fn scope(&self) -> memento::Scope {
        memento::Scope { user_id: self.user_id.clone(), agent_id: self.agent_id.clone(), run_id: self.run_id.clone() }
    }
}

/// `memento add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// What to read.
    #[command(flatten)]
    pub input: IngestArgs,
    /// The vector of the one record given on the command line, a JSON array such as
    /// '[0.1, 0.2, 0.3]' (needs --id or a TEXT).
    #[arg(long, value_name = "JSON")]
    pub vector: Option<String>,
}

/// `memento recall`.
#[derive(Debug, Args)]
pub struct RecallArgs {
    /// The question (several words are joined with spaces).
    #[arg(required = true, value_name = "QUERY")]
    pub query: Vec<String>,
    /// How many results.
    #[arg(short, long, default_value_t = memento::DEFAULT_K, value_parser = positive)]
    pub k: usize,
    /// Only records matching this filter, in JSON with Chroma's operators: '{"lang": "en"}',
    /// '{"year": {"$gte": 2020}}', '{"$and": [...]}', '{"$contains": "word"}' (on the text).
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
    /// Only this scope's memories.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The true top k: score every vector in float32. Without it, a store of 20,000 vectors
    /// and more is searched through its graph index once the graph's measured recall@10 is 0.9
    /// or more (approximate; `memento stats` says whether), and smaller ones by the int8 scan
    /// with float32 rescoring (the same results as --exact).
    #[arg(long)]
    pub exact: bool,
    /// The number of threads for this search, from 1 up [default: the engine's, one per core].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub threads: Option<usize>,
    /// The candidates a walk of the graph index keeps, from 1 up (at least -k are kept):
    /// larger is slower and closer to exact. Only searches that walk the graph (large stores,
    /// without --exact) use it [default: the engine's, 64].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub ef: Option<usize>,
    /// Match the question by meaning (vector), by its words (keyword: BM25 over the texts,
    /// which finds names, identifiers and rare words; needs no model), or both fused (hybrid)
    /// [default: vector].
    #[arg(long, value_enum, value_name = "MODE")]
    pub mode: Option<ModeArg>,
    /// How a hybrid search fuses its two rankings: reciprocal rank fusion (rrf, by ranks only)
    /// or a weighted sum of each side's normalised scores (weighted).
    #[arg(long, value_enum, default_value = "rrf")]
    pub fusion: FusionArg,
    /// The constant k of reciprocal rank fusion, 1 / (k + rank): larger flattens the ranks.
    #[arg(long, value_name = "K", default_value_t = memento::RRF_K)]
    pub rrf_k: f64,
    /// The vector side's weight in a weighted fusion, from 0 (words only) to 1 (meaning only).
    #[arg(long, value_name = "ALPHA", default_value_t = 0.5)]
    pub alpha: f64,
}

/// `--mode` of `memento recall`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// By meaning.
    Vector,
    /// By words (BM25).
    Keyword,
    /// Both, fused.
    Hybrid,
}

/// `--fusion` of `memento recall --mode hybrid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FusionArg {
    /// Reciprocal rank fusion.
    Rrf,
    /// A weighted sum of min-max normalised scores.
    Weighted,
}

/// `memento search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The query vector, a JSON array such as '[0.1, 0.2, 0.3]' (`-`: read it from stdin).
    /// With --keyword too, a hybrid search (reciprocal rank fusion).
    #[arg(value_name = "VECTOR", required_unless_present = "keyword")]
    pub vector: Option<String>,
    /// Search the texts by these words (BM25; any word may match, stop words are ignored).
    #[arg(long, value_name = "TEXT")]
    pub keyword: Option<String>,
    /// How many results.
    #[arg(short, long, default_value_t = memento::DEFAULT_K, value_parser = positive)]
    pub k: usize,
    /// Only records matching this filter (JSON; see `memento recall --help`).
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
    /// Only this scope's records.
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// The true top k: score every vector in float32. Without it, a store of 20,000 vectors
    /// and more is searched through its graph index once the graph's measured recall@10 is 0.9
    /// or more (approximate; `memento stats` says whether), and smaller ones by the int8 scan
    /// with float32 rescoring (the same results as --exact).
    #[arg(long)]
    pub exact: bool,
    /// The number of threads for this search, from 1 up [default: the engine's, one per core].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub threads: Option<usize>,
    /// The candidates a walk of the graph index keeps, from 1 up (at least -k are kept):
    /// larger is slower and closer to exact. Only searches that walk the graph (large stores,
    /// without --exact) use it [default: the engine's, 64].
    #[arg(long, value_name = "N", value_parser = positive)]
    pub ef: Option<usize>,
}

/// `memento get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// Ids of the records (a missing one is an error).
    #[arg(
        value_name = "ID",
        required_unless_present_any = ["filter", "user_id", "agent_id", "run_id"],
        conflicts_with_all = ["filter", "user_id", "agent_id", "run_id"]
    )]
    pub ids: Vec<String>,
    /// The records matching this filter instead, in insertion order (JSON; see `memento recall
    /// --help`).
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
    /// Only this scope's records (instead of ids; with --where, both).
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// At most N records (with --where).
    #[arg(long, value_name = "N", requires = "filter")]
    pub limit: Option<usize>,
    /// Show the vectors too.
    #[arg(long)]
    pub vector: bool,
}

/// `memento delete`.
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Ids of the records. If one does not exist, nothing is deleted (see --missing-ok).
    #[arg(
        value_name = "ID",
        required_unless_present_any = ["filter", "user_id", "agent_id", "run_id"],
        conflicts_with_all = ["filter", "user_id", "agent_id", "run_id"]
    )]
    pub ids: Vec<String>,
    /// Delete every record matching this filter instead (JSON; '{}' matches all).
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
    /// Delete this scope's records (instead of ids; with --where, both).
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Ids that do not exist are not an error.
    #[arg(long)]
    pub missing_ok: bool,
}

/// `memento update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The record's id.
    pub id: String,
    /// The new text. In a text store the text is embedded again (the vector follows the text);
    /// in a raw-vector store the vector is kept.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// The new metadata, a JSON object (replaces the old, or is merged into it with --merge).
    #[arg(long, value_name = "JSON", required_unless_present_any = ["text", "clear_meta"])]
    pub meta: Option<String>,
    /// Merge --meta into the record's metadata: its fields are set, and a null removes one.
    #[arg(long, requires = "meta")]
    pub merge: bool,
    /// Remove the record's metadata.
    #[arg(long, conflicts_with = "meta")]
    pub clear_meta: bool,
}

/// `memento export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only the records matching this filter (JSON; see `memento recall --help`).
    #[arg(long = "where", value_name = "JSON")]
    pub filter: Option<String>,
}

/// `memento import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file `export` wrote (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Records per commit: an interrupted run keeps every commit it made.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = positive)]
    pub batch: usize,
}

fn positive(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("{s:?} is not a whole number from 1 up")),
    }
}

/// Runs a parsed command line, writing results to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<()> {
    let store = match cli.store {
        Some(dir) => StoreArg { dir, explicit: true },
        None => StoreArg { dir: default_store_dir(), explicit: false },
    };
    let store = match (&cli.collection, &cli.command) {
        (_, Command::Collections(_) | Command::Model(_)) | (None, _) => store,
        (Some(name), Command::Init(a)) => return collections::create(&store.dir, name, a, cli.json, out).and_then(|()| Ok(out.flush()?)),
        (Some(name), Command::Remember(_) | Command::Add(_)) => collections::resolve(&store, name, collections::Missing::CreateDefault)?,
        (Some(name), _) => collections::resolve(&store, name, collections::Missing::Error)?,
    };
    let ctx = commands::Ctx { store, json: cli.json };
    let result = match cli.command {
        Command::Collections(cmd) => collections::run(&ctx.store, cmd, ctx.json, out),
        Command::Init(a) => commands::init(&ctx, a, out),
        Command::Remember(a) => commands::remember(&ctx, a, out),
        Command::Add(a) => commands::add(&ctx, a, out),
        Command::Recall(a) => search::recall(&ctx, a, out),
        Command::Search(a) => search::search(&ctx, a, out),
        Command::Get(a) => commands::get(&ctx, a, out),
        Command::Delete(a) => commands::delete(&ctx, a, out),
        Command::Update(a) => commands::update(&ctx, a, out),
        Command::Stats(a) => commands::stats(&ctx, a, out),
        Command::Checkpoint => commands::checkpoint(&ctx, out),
        Command::Compact => commands::compact(&ctx, out),
        Command::Export(a) => commands::export(&ctx, a, out),
        Command::Import(a) => commands::import(&ctx, a, out),
        Command::Index(IndexCommand::Build(a)) => commands::build_index(&ctx, a, out),
        Command::Model(cmd) => model::run(cmd, out),
    };
    result?;
    out.flush()?;
    Ok(())
}
