//! Opening the store a command works on, and engine errors worded for someone at a shell.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use memento::embed::{model_dir, OnnxOptions, DEFAULT_MODEL};
use memento::{Engine, Error};

/// Which store a command works on.
#[derive(Debug, Clone)]
pub struct StoreArg {
    /// Its directory.
    pub dir: PathBuf,
    /// False for the embedded default store (created on first use by any command).
    pub explicit: bool,
}

/// What a command needs of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Records and vectors only: the embedding model is not loaded.
    Vectors,
    /// Text to embed: the store's embedding model is loaded.
    Text,
}

/// Whether a store exists in `dir`.
pub fn exists(dir: &Path) -> bool {
    dir.join(memento::files::VECTORS).is_file()
}

/// Opens the store. A missing store is created with the default model when `create` is true
/// or it is the default store; otherwise it is an error that says how to make one.
pub fn open(store: &StoreArg, need: Need, create: bool) -> Result<Engine> {
    let dir = &store.dir;
    if !exists(dir) {
        if !create && store.explicit {
            bail!(
                "there is no store at {}; create one with `memento --store {} init` (or `memento --store {} remember ...`, which makes a text store with the default model)",
                dir.display(),
                dir.display(),
                dir.display()
            );
        }
        return Engine::builder(dir).default_model().open().map_err(|e| explain(e, dir));
    }
    match need {
        Need::Vectors => Engine::builder(dir).create(false).open().map_err(|e| explain(e, dir)),
        Need::Text => open_with_model(dir, DEFAULT_MODEL, true),
    }
}

/// Opens an existing store with the embedding model `id`; if the store names another model,
/// opens it with that one instead (`retry`).
fn open_with_model(dir: &Path, id: &str, retry: bool) -> Result<Engine> {
    match Engine::builder(dir).create(false).model_dir(model_dir(id), OnnxOptions::default()).open() {
        Ok(e) => Ok(e),
        Err(Error::ModelMismatch { store, .. }) if store.starts_with("none") => Err(raw_store(dir)),
        Err(Error::ModelMismatch { store, given }) => {
            // "all-minilm-l6-v2 (384-d, sha256 …)": the store's model id comes first.
            let store_id = store.split(" (").next().unwrap_or_default().to_owned();
            if retry && !store_id.is_empty() && store_id != id {
                return open_with_model(dir, &store_id, false);
            }
            Err(explain(Error::ModelMismatch { store, given }, dir))
        }
        Err(e) => Err(explain(e, dir)),
    }
}

/// The error for text given to a raw-vector store.
pub fn raw_store(dir: &Path) -> anyhow::Error {
    anyhow!(
        "{} is a raw-vector store (it has no embedding model), so it cannot embed text: give vectors (`memento add` with a \"vector\" field, `memento search VECTOR`), or pick a text store (--store DIR; MEMENTO_HOME moves the default store)",
        dir.display()
    )
}

/// An engine error in words for the command line.
pub fn explain(e: Error, dir: &Path) -> anyhow::Error {
    match &e {
        Error::Locked { .. } => anyhow!("{e} Only one process can use a store at a time: wait for it to finish (or stop it), then try again."),
        Error::NoModel => raw_store(dir),
        Error::Corrupted { .. } => anyhow!("{e} The store was left as it is; `memento-inspect` can examine it."),
        _ => anyhow::Error::new(e),
    }
}

/// Closes the engine (which checkpoints), reporting a failure.
pub fn close(engine: Engine) -> Result<()> {
    let dir = engine.path().to_path_buf();
    engine.close().map_err(|e| explain(e, &dir))
}
