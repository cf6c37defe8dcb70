//! Opening the store a command works on, and engine errors worded for someone at a shell.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use memento::embed::{model_dir, Embedder, OnnxEmbedder, OnnxOptions, DEFAULT_MODEL};
use memento::storage::MemStorage;
use memento::{Engine, Error, Metric};

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

/// Refuses a store path that is a regular file (or anything but a directory): no store can be
/// opened or made there, and `init` would only fail on it.
pub fn refuse_non_directory(dir: &Path) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("{} is a file, not a store directory", dir.display());
    }
    if dir.join(memento::files::COLLECTIONS_MARKER).exists() {
        bail!(
            "{} is a directory of collections, not a store: name one with --collection NAME (`memento --store {} collections list` lists them)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// Opens the store. A missing store is created with the default model when `create` is true
/// or it is the default store; otherwise it is an error that says how to make one.
pub fn open(store: &StoreArg, need: Need, create: bool) -> Result<Engine> {
    target(store, need, create)?.into_engine()
}

/// Opens an existing store with these graph parameters (`memento index build`).
pub fn open_with_graph(store: &StoreArg, params: memento::graph::GraphParams) -> Result<Engine> {
    let dir = &store.dir;
    refuse_non_directory(dir)?;
    if !exists(dir) {
        bail!("there is no store at {} to index; create one with `memento --store {} init`", dir.display(), dir.display());
    }
    Engine::builder(dir).create(false).graph(Some(params)).open().map_err(|e| explain(e, dir))
}

/// Opens the store for a command that only reads (`recall`, `search`, `get`, `stats`,
/// `export`): read-only (FORMAT.md §4.4), so that it neither waits for nor blocks a process
/// that writes the store. A store that a reader cannot follow (its mirror damaged, say) is
/// opened as its writer instead, which repairs it, when no other process holds it. A missing
/// store is handled as [`open`] does.
pub fn open_to_read(store: &StoreArg, need: Need) -> Result<Engine> {
    let dir = &store.dir;
    refuse_non_directory(dir)?;
    if !exists(dir) {
        return open(store, need, false);
    }
    match builder_for(dir, need)?.read_only().open() {
        Ok(engine) => Ok(engine),
        Err(e @ (Error::Incompatible { .. } | Error::ModelMismatch { .. } | Error::Model { .. })) => Err(explain(e, dir)),
        Err(_) => builder_for(dir, need)?.open().map_err(|e| explain(e, dir)),
    }
}

/// The builder of an existing store: with its own embedding model when text is needed.
fn builder_for(dir: &Path, need: Need) -> Result<memento::EngineBuilder> {
    let b = Engine::builder(dir).create(false);
    Ok(match need {
        Need::Vectors => b,
        Need::Text => {
            let info = memento::peek(dir).map_err(|e| explain(e, dir))?;
            let Some(model) = info.model else {
                return Err(raw_store(dir));
            };
            b.model_dir(model_dir(&model.id), OnnxOptions::default())
        }
    })
}

/// The store a write goes to: open already, or to be created (see [`Target::checker`]).
pub fn target(store: &StoreArg, need: Need, create: bool) -> Result<Target> {
    let dir = &store.dir;
    refuse_non_directory(dir)?;
    if !exists(dir) {
        if !create && store.explicit {
            bail!(
                "there is no store at {}; create one with `memento --store {} init` (or `memento --store {} remember ...`, which makes a text store with the default model)",
                dir.display(),
                dir.display(),
                dir.display()
            );
        }
        return Ok(Target::New(NewStore::plan(dir, None, Metric::Cosine, None, Some(&model_dir(DEFAULT_MODEL)))?));
    }
    let engine = match need {
        Need::Vectors => Engine::builder(dir).create(false).open().map_err(|e| explain(e, dir))?,
        Need::Text => open_with_its_model(dir)?,
    };
    Ok(Target::Open(engine))
}

/// Where a command writes: a store that is open, or one that is made only once its input has
/// been checked.
pub enum Target {
    /// An existing store, open.
    Open(Engine),
    /// A store to create.
    New(NewStore),
}

impl Target {
    /// The engine to check the input with (the store's own, or the new store's stand-in).
    pub fn checker(&self) -> &Engine {
        match self {
            Target::Open(e) => e,
            Target::New(n) => n.checker(),
        }
    }
    /// The store's directory.
    pub fn dir(&self) -> &Path {
        match self {
            Target::Open(e) => e.path(),
            Target::New(n) => &n.dir,
        }
    }
    /// The open store, created now if it is new.
    pub fn into_engine(self) -> Result<Engine> {
        match self {
            Target::Open(e) => Ok(e),
            Target::New(n) => n.create(),
        }
    }
}

/// A store to create, made first in memory with the same options: every check the engine makes
/// of the options (a dimension of 0, a model that does not load) and, through
/// [`NewStore::checker`], of the records to write, runs before anything exists on disk. A
/// failed creation used to leave a directory holding `LOCK` behind.
pub struct NewStore {
    dir: PathBuf,
    dimension: Option<usize>,
    metric: Metric,
    page_size: Option<u32>,
    embedder: Option<Arc<dyn Embedder>>,
    scratch: Engine,
    group: bool,
}

impl NewStore {
    /// Plans a store in `dir`: of `dimension` (or the model's), compared by `metric`, with the
    /// embedding model in `model` (none: a raw-vector store), with pages of `page_size` bytes
    /// (none: the engine's default). Loads the model.
    pub fn plan(dir: &Path, dimension: Option<usize>, metric: Metric, page_size: Option<u32>, model: Option<&Path>) -> Result<NewStore> {
        refuse_non_directory(dir)?;
        let embedder = match model {
            Some(m) => Some(Arc::new(OnnxEmbedder::load(m, &OnnxOptions::default()).map_err(|e| explain(e, dir))?) as Arc<dyn Embedder>),
            None => None,
        };
        let scratch = Self::builder(Engine::builder_with_storage(Arc::new(MemStorage::new())), dimension, metric, page_size, embedder.as_ref())
            .open()
            .map_err(|e| explain(e, dir))?;
        Ok(NewStore { dir: dir.to_path_buf(), dimension, metric, page_size, embedder, scratch, group: false })
    }

    /// The store is to be shared with the owner's group (`init --group`) rather than private.
    pub fn group_access(mut self, yes: bool) -> Self {
        self.group = yes;
        self
    }

    fn builder(
        mut b: memento::EngineBuilder,
        dimension: Option<usize>,
        metric: Metric,
        page_size: Option<u32>,
        embedder: Option<&Arc<dyn Embedder>>,
    ) -> memento::EngineBuilder {
        b = b.metric(metric);
        if let Some(ps) = page_size {
            b = b.page_size(ps);
        }
        if let Some(d) = dimension {
            b = b.dimension(d);
        }
        if let Some(e) = embedder {
            b = b.embedder(Arc::clone(e));
        }
        b
    }

    /// An empty in-memory store of the same dimension, metric and model, to check records with.
    pub fn checker(&self) -> &Engine {
        &self.scratch
    }

    /// Creates the store on disk.
    pub fn create(self) -> Result<Engine> {
        let NewStore { dir, dimension, metric, page_size, embedder, scratch, group } = self;
        drop(scratch);
        Self::builder(Engine::builder(&dir).group_access(group), dimension, metric, page_size, embedder.as_ref()).open().map_err(|e| explain(e, &dir))
    }
}

/// Opens an existing store with the embedding model its superblock names ([`memento::peek`]);
/// a raw-vector store cannot embed text.
fn open_with_its_model(dir: &Path) -> Result<Engine> {
    builder_for(dir, Need::Text)?.open().map_err(|e| explain(e, dir))
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
        Error::Locked { .. } => anyhow!(
            "{e} One process writes a store at a time: wait for it to finish (or stop it), then try again. Reading commands (recall, search, get, stats, export) work meanwhile."
        ),
        Error::NoModel => raw_store(dir),
        Error::Corrupted { .. } => anyhow!("{e} The store was left as it is; `memento-inspect` can examine it."),
        _ => anyhow::Error::new(e),
    }
}

/// Closes the engine (which syncs, and checkpoints a large WAL), reporting a failure.
pub fn close(engine: Engine) -> Result<()> {
    let dir = engine.path().to_path_buf();
    engine.close().map_err(|e| explain(e, &dir))
}
