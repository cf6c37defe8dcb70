//! Collections on the command line (FORMAT.md §8): `--collection NAME`, which makes `--store`
//! (or the default store directory) a collections root and runs a command on one collection,
//! and `memento collections list|create|delete|rename`.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use memento::embed::{model_dir, OnnxOptions, DEFAULT_MODEL};
use memento::{CollectionInfo, Collections, EngineBuilder, Error};
use serde_json::{json, Value};

use super::output::print_json;
use super::store::StoreArg;
use super::InitArgs;

/// The `collections` subcommands (`--store` is the collections directory).
#[derive(Debug, Subcommand)]
pub enum CollectionsCommand {
    /// The collections, with the dimension, metric, model and records of each.
    List,
    /// Create a collection: a text store with an embedding model (the default model unless
    /// --dimension is given), or a raw-vector store of --dimension.
    Create(CreateArgs),
    /// Delete a collection and free its space (refused while a process has it open for writing).
    Delete(NameArg),
    /// Rename a collection (refused while a process has it open for writing).
    Rename(RenameArgs),
}

/// `collections create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The collection's name: 3 to 512 characters of letters, digits, '.', '_' and '-',
    /// starting and ending with a letter or digit.
    pub name: String,
    /// The store's options, as `init` takes them.
    #[command(flatten)]
    pub init: InitArgs,
}

/// `collections delete`.
#[derive(Debug, Args)]
pub struct NameArg {
    /// The collection.
    pub name: String,
}

/// `collections rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The collection.
    pub old: String,
    /// Its new name.
    pub new: String,
}

/// What a command does when its collection is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Create it with the default model (`remember`, `add`).
    CreateDefault,
    /// An error (every other command).
    Error,
}

/// The store of collection `name` in the collections root `root`, for a command that treats a
/// missing collection as `missing` says.
pub fn resolve(root: &StoreArg, name: &str, missing: Missing) -> Result<StoreArg> {
    memento::check_collection_name(name)?;
    let c = match missing {
        Missing::Error => match Collections::open_existing(&root.dir) {
            Ok(c) => c,
            Err(_) if !root.dir.exists() => bail!("{}", not_found(&root.dir, name)),
            Err(e) => return Err(e.into()),
        },
        Missing::CreateDefault => Collections::open(&root.dir)?,
    };
    let dir = c.path(name)?;
    if !dir.is_dir() {
        match missing {
            Missing::Error => bail!("{}", not_found(&root.dir, name)),
            Missing::CreateDefault => memento::Engine::close(c.create(name, EngineBuilder::default_model)?)?,
        }
    }
    Ok(StoreArg { dir, explicit: true })
}

fn not_found(root: &Path, name: &str) -> String {
    format!(
        "there is no collection {name:?} in {}; create one with `memento --store {} collections create {name}` (or `--collection {name} remember ...`, which makes a text collection with the default model)",
        root.display(),
        root.display()
    )
}

/// The builder options of `init` / `collections create`.
fn configure(a: &InitArgs) -> impl Fn(EngineBuilder) -> EngineBuilder + '_ {
    move |mut b| {
        b = b.metric(a.metric.into()).group_access(a.group);
        if let Some(ps) = a.page_size {
            b = b.page_size(ps);
        }
        match a.dimension {
            Some(d) => b.dimension(d),
            None => b.model_dir(model_dir(a.model.as_deref().unwrap_or(DEFAULT_MODEL)), OnnxOptions::default()),
        }
    }
}

/// Creates the collection `name` in `root` with `init`'s options; prints what was made.
pub fn create(root: &Path, name: &str, a: &InitArgs, json: bool, out: &mut dyn Write) -> Result<()> {
    let c = Collections::open(root)?;
    let engine = c.create(name, configure(a)).map_err(|e| match e {
        Error::CollectionExists { .. } => anyhow::anyhow!("{e} (in {})", root.display()),
        other => anyhow::Error::new(other),
    })?;
    let model = engine.model().map(|m| m.id.clone());
    if json {
        let v = json!({"collection": name, "store": engine.path().display().to_string(), "dimension": engine.dimension(), "metric": engine.metric().name(), "model": model});
        print_json(out, &v)?;
    } else {
        let what = match &model {
            Some(m) => format!("a text collection (model {m}, {} dimensions, {})", engine.dimension(), engine.metric().name()),
            None => format!("a raw-vector collection ({} dimensions, {})", engine.dimension(), engine.metric().name()),
        };
        writeln!(out, "created {what} {name:?} in {}", root.display())?;
    }
    engine.close()?;
    Ok(())
}

fn info_value(i: &CollectionInfo) -> Value {
    match &i.store {
        Ok(s) => json!({
            "name": i.name,
            "path": i.path.display().to_string(),
            "dimension": s.dimension,
            "metric": s.metric.name(),
            "model": s.model.as_ref().map(|m| m.id.clone()),
            "count": i.count,
        }),
        Err(e) => json!({"name": i.name, "path": i.path.display().to_string(), "error": e.to_string()}),
    }
}

/// Runs `memento collections ...` on the collections root `root`.
pub fn run(root: &StoreArg, cmd: CollectionsCommand, json: bool, out: &mut dyn Write) -> Result<()> {
    let root = &root.dir;
    match cmd {
        CollectionsCommand::List => {
            let list = if root.exists() { Collections::open_existing(root)?.list()? } else { Vec::new() };
            if json {
                print_json(out, &Value::Array(list.iter().map(info_value).collect()))?;
            } else if list.is_empty() {
                writeln!(out, "no collections in {}", root.display())?;
            } else {
                for i in &list {
                    match &i.store {
                        Ok(s) => {
                            let model = s.model.as_ref().map_or("no model".to_owned(), |m| format!("model {}", m.id));
                            let count = i.count.map_or("?".to_owned(), |n| n.to_string());
                            writeln!(out, "{}\t{count} records\t{} dimensions, {}, {model}", i.name, s.dimension, s.metric.name())?;
                        }
                        Err(e) => writeln!(out, "{}\tcannot be read: {e}", i.name)?,
                    }
                }
            }
        }
        CollectionsCommand::Create(a) => create(root, &a.name, &a.init, json, out)?,
        CollectionsCommand::Delete(a) => {
            Collections::open(root)?.delete(&a.name)?;
            if json {
                print_json(out, &json!({"deleted": a.name}))?;
            } else {
                writeln!(out, "deleted the collection {:?}", a.name)?;
            }
        }
        CollectionsCommand::Rename(a) => {
            Collections::open(root)?.rename(&a.old, &a.new)?;
            if json {
                print_json(out, &json!({"renamed": a.old, "to": a.new}))?;
            } else {
                writeln!(out, "renamed the collection {:?} to {:?}", a.old, a.new)?;
            }
        }
    }
    Ok(())
}
