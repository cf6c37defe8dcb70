//! [`Collections`]: named stores side by side in one directory (FORMAT.md §8).
//!
//! A collections root holds the marker `memento.collections`, the catalog lock `CATALOG.lock`
//! and one ordinary store per collection, `<root>/<name>/`, opened by the ordinary
//! [`Engine`] / [`EngineBuilder`]. Create, delete and rename run under the catalog lock and
//! are crash-safe: a new store is built under a temporary name and renamed into place; a
//! deleted one is renamed away before it is removed; the leftovers of a crash are removed at
//! the next open or operation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::engine::{Engine, EngineBuilder};
use crate::error::{Error, Result};
use crate::peek::{peek, StoreInfo};
use crate::storage::{FsStorage, LockError, Storage};

/// The marker file that makes a directory a collections root.
pub const MARKER_FILE: &str = "memento.collections";
/// The marker's content: the layout version.
pub const MARKER_TEXT: &str = "memento collections 1\n";
/// The catalog lock, held around create, delete, rename and the removal of leftovers.
pub const CATALOG_LOCK_FILE: &str = "CATALOG.lock";

/// The files whose presence makes a directory a store (FORMAT.md §1).
const STORE_FILES: [&str; 4] = [crate::vecfile::VEC_FILE, crate::wal::WAL_FILE, crate::files::LOCK, "memento.python.sqlite"];

/// One collection, as [`Collections::list`] finds it.
#[derive(Debug)]
pub struct CollectionInfo {
    /// Its name.
    pub name: String,
    /// Its store directory.
    pub path: PathBuf,
    /// What [`crate::peek`] says of its store (dimension, metric, model, the live count as of
    /// its last checkpoint), or why it could not be read.
    pub store: Result<StoreInfo>,
    /// Its live records now, as a reader opened on it counts them (FORMAT.md §4.4; works while
    /// a process writes it); `None` if it could not be opened.
    pub count: Option<u64>,
}

/// A directory of collections (FORMAT.md §8). Holds no lock or file between calls: any number
/// of processes may use the same root.
#[derive(Debug, Clone)]
pub struct Collections {
    root: PathBuf,
}

/// Whether `name` is a valid collection name (FORMAT.md §8, Chroma's rules): 3 to 512
/// characters of `[A-Za-z0-9._-]`, starting and ending with a letter or digit, without `..`,
/// and not an IPv4 address. [`Error::InvalidArgument`] says which rule it breaks.
pub fn check_collection_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::invalid(format!("the collection name {name:?} {why}")));
    let n = name.chars().count();
    if !(3..=512).contains(&n) {
        return bad("must be 3 to 512 characters long");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return bad("may hold only letters, digits, '.', '_' and '-'");
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return bad("must start and end with a letter or a digit");
    }
    if name.contains("..") {
        return bad("must not contain \"..\"");
    }
    let parts: Vec<&str> = name.split('.').collect();
    if parts.len() == 4 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
        return bad("must not be an IPv4 address");
    }
    Ok(())
}

/// Whether `dir` holds a store's files.
pub(crate) fn is_store_dir(dir: &Path) -> bool {
    STORE_FILES.iter().any(|f| dir.join(f).exists())
}

/// [`Error::InvalidArgument`] if `dir` is a collections root: the engine refuses to open or
/// create a store there.
pub(crate) fn refuse_root(dir: &Path) -> Result<()> {
    if dir.join(MARKER_FILE).exists() {
        return Err(Error::invalid(format!(
            "{} is a directory of collections, not a store; open one of its collections (memento::Collections, memento.Client, the CLI's --collection)",
            dir.display()
        )));
    }
    Ok(())
}

/// Whether an entry of the root is a leftover of an interrupted create or delete.
pub(crate) fn is_leftover(entry: &str) -> bool {
    entry.starts_with(".deleted-") || (entry.starts_with('.') && entry.contains(".new-"))
}

fn io_at(what: &str, path: &Path) -> impl Fn(io::Error) -> Error {
    let context = format!("{what} {}", path.display());
    move |e| Error::io(context.clone(), e)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_at("syncing the directory", dir))
}

/// The held catalog lock (released when dropped: the file is closed).
struct CatalogLock(#[allow(dead_code, reason = "held for its flock")] File);

impl Collections {
    /// Opens the collections root `root`, making it one if it is not (creating the directory,
    /// private to its owner, and writing the marker), and removes the leftovers of interrupted
    /// creates and deletes. A store directory is refused ([`Error::InvalidArgument`]).
    pub fn open(root: impl AsRef<Path>) -> Result<Collections> {
        let root = root.as_ref().to_path_buf();
        let c = Collections { root };
        if !c.root.join(MARKER_FILE).exists() {
            if c.root.is_dir() && is_store_dir(&c.root) {
                return Err(Error::invalid(format!(
                    "{} is a store, not a directory of collections; give an empty or new directory for collections",
                    c.root.display()
                )));
            }
            FsStorage::new(&c.root).map_err(io_at("creating the collections directory", &c.root))?;
            let _cat = c.catalog()?;
            if !c.root.join(MARKER_FILE).exists() {
                c.write_marker()?;
            }
        }
        c.check_marker()?;
        let _cat = c.catalog()?;
        c.remove_leftovers()?;
        Ok(c)
    }

    /// Opens the existing collections root `root`, creating and removing nothing (for reading:
    /// the inspector, the CLI's read commands). [`Error::InvalidArgument`] if it is not one.
    pub fn open_existing(root: impl AsRef<Path>) -> Result<Collections> {
        let c = Collections { root: root.as_ref().to_path_buf() };
        if !c.root.join(MARKER_FILE).exists() {
            let what = if is_store_dir(&c.root) {
                "is a store, not a directory of collections"
            } else if c.root.is_dir() {
                "is not a directory of collections (it has no memento.collections marker)"
            } else {
                "does not exist"
            };
            return Err(Error::invalid(format!("{} {what}", c.root.display())));
        }
        c.check_marker()?;
        Ok(c)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The store directory of the collection `name` (checked, not required to exist).
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        check_collection_name(name)?;
        Ok(self.root.join(name))
    }

    /// Whether the collection `name` exists.
    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.path(name)?.is_dir())
    }

    /// Creates the collection `name` with the options `configure` sets on its builder
    /// (dimension, metric, model, ...; `configure` is called twice: for the new store, built
    /// under a temporary name and closed, then for the store opened in place) and returns it
    /// open. [`Error::CollectionExists`] if it exists.
    pub fn create(&self, name: &str, configure: impl Fn(EngineBuilder) -> EngineBuilder) -> Result<Engine> {
        let path = self.path(name)?;
        let _cat = self.catalog()?;
        self.remove_leftovers()?;
        if path.exists() {
            return Err(Error::CollectionExists { name: name.to_owned() });
        }
        let tmp = self.root.join(format!(".{name}.new-{}", std::process::id()));
        let built = configure(Engine::builder(&tmp)).create(true).open().and_then(Engine::close);
        if let Err(e) = built {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        std::fs::rename(&tmp, &path).map_err(io_at("renaming the new collection into place at", &path))?;
        sync_dir(&self.root)?;
        configure(Engine::builder(&path)).create(false).open()
    }

    /// Opens the collection `name` ([`Engine::open`]). [`Error::CollectionNotFound`] if it
    /// does not exist.
    pub fn get(&self, name: &str) -> Result<Engine> {
        self.get_with(name, |b| b)
    }

    /// Opens the collection `name` with the options `configure` sets (a model, read-only, ...).
    /// [`Error::CollectionNotFound`] if it does not exist.
    pub fn get_with(&self, name: &str, configure: impl FnOnce(EngineBuilder) -> EngineBuilder) -> Result<Engine> {
        let path = self.path(name)?;
        if !path.is_dir() {
            return Err(Error::CollectionNotFound { name: name.to_owned() });
        }
        configure(Engine::builder(&path)).create(false).open()
    }

    /// Opens the collection `name`, creating it first if it does not exist ([`Self::create`]).
    pub fn get_or_create(&self, name: &str, configure: impl Fn(EngineBuilder) -> EngineBuilder) -> Result<Engine> {
        if self.exists(name)? {
            return self.get_with(name, &configure);
        }
        match self.create(name, &configure) {
            Err(Error::CollectionExists { .. }) => self.get_with(name, &configure),
            other => other,
        }
    }

    /// The collections, by name, each with what its store's superblock says. A directory of
    /// the root that is not a valid name (a leftover, anything else) is not a collection.
    pub fn list(&self) -> Result<Vec<CollectionInfo>> {
        let mut names = self.names()?;
        names.sort();
        Ok(names
            .into_iter()
            .map(|name| {
                let path = self.root.join(&name);
                let store = peek(&path);
                let count = store.as_ref().ok().and_then(|_| Engine::open_read_only(&path).ok()).map(|e| {
                    let n = e.count();
                    let _ = e.close();
                    n
                });
                CollectionInfo { name, path, store, count }
            })
            .collect())
    }

    /// The names of the collections, unsorted.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_at("listing", &self.root))? {
            let entry = entry.map_err(io_at("listing", &self.root))?;
            let Ok(name) = entry.file_name().into_string() else { continue };
            if check_collection_name(&name).is_ok() && entry.path().is_dir() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Deletes the collection `name` and frees its space. [`Error::CollectionNotFound`] if it
    /// does not exist; [`Error::CollectionInUse`] if a process has it open for writing. A
    /// process reading it (FORMAT.md §4.4) takes no lock and is not seen: it keeps the files
    /// it has open until it closes.
    pub fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        let _cat = self.catalog()?;
        self.remove_leftovers()?;
        if !path.is_dir() {
            return Err(Error::CollectionNotFound { name: name.to_owned() });
        }
        let _lock = self.lock_store(name, &path)?;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let gone = self.root.join(format!(".deleted-{name}-{}-{nanos}", std::process::id()));
        std::fs::rename(&path, &gone).map_err(io_at("renaming away the deleted collection", &path))?;
        sync_dir(&self.root)?;
        // The collection is gone once the rename is durable; a failed removal leaves a leftover
        // that the next operation removes.
        let _ = std::fs::remove_dir_all(&gone);
        Ok(())
    }

    /// Renames the collection `old` to `new`. [`Error::CollectionNotFound`] if `old` does not
    /// exist, [`Error::CollectionExists`] if `new` does, [`Error::CollectionInUse`] if a process
    /// has `old` open for writing (readers are not seen, as for [`Self::delete`]).
    pub fn rename(&self, old: &str, new: &str) -> Result<()> {
        let from = self.path(old)?;
        let to = self.path(new)?;
        let _cat = self.catalog()?;
        self.remove_leftovers()?;
        if !from.is_dir() {
            return Err(Error::CollectionNotFound { name: old.to_owned() });
        }
        if to.exists() {
            return Err(Error::CollectionExists { name: new.to_owned() });
        }
        let _lock = self.lock_store(old, &from)?;
        std::fs::rename(&from, &to).map_err(io_at("renaming the collection", &from))?;
        sync_dir(&self.root)
    }

    /// The leftovers of interrupted creates and deletes in the root (FORMAT.md §8), by name.
    pub fn leftovers(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(io_at("listing", &self.root))? {
            let entry = entry.map_err(io_at("listing", &self.root))?;
            if let Ok(name) = entry.file_name().into_string() {
                if is_leftover(&name) {
                    found.push(name);
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// Removes the leftovers; the caller holds the catalog lock.
    fn remove_leftovers(&self) -> Result<()> {
        let found = self.leftovers()?;
        for name in &found {
            let path = self.root.join(name);
            let removed = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(Error::io(format!("removing the leftover {}", path.display()), e)),
                _ => {}
            }
        }
        if !found.is_empty() {
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// The store's own lock, taken as its writer would ([`Error::CollectionInUse`] if a writer
    /// holds it), so that no process opens the store while it is renamed or deleted.
    fn lock_store(&self, name: &str, path: &Path) -> Result<Box<dyn crate::storage::StoreLock>> {
        let storage = FsStorage::existing(path).map_err(io_at("opening the collection", path))?;
        storage.lock().map_err(|e| match e {
            LockError::Held { pid } => Error::CollectionInUse { name: name.to_owned(), pid },
            LockError::Io(e) => Error::io(format!("taking the lock of {}", path.display()), e),
        })
    }

    fn catalog(&self) -> Result<CatalogLock> {
        let path = self.root.join(CATALOG_LOCK_FILE);
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path).map_err(io_at("opening", &path))?;
        file.lock().map_err(io_at("locking", &path))?;
        Ok(CatalogLock(file))
    }

    fn write_marker(&self) -> Result<()> {
        let tmp = self.root.join(format!(".{MARKER_FILE}.new-{}", std::process::id()));
        let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp).map_err(io_at("creating", &tmp))?;
        f.write_all(MARKER_TEXT.as_bytes()).and_then(|()| f.sync_all()).map_err(io_at("writing", &tmp))?;
        let marker = self.root.join(MARKER_FILE);
        std::fs::rename(&tmp, &marker).map_err(io_at("renaming into place", &marker))?;
        sync_dir(&self.root)
    }

    fn check_marker(&self) -> Result<()> {
        let path = self.root.join(MARKER_FILE);
        let text = std::fs::read_to_string(&path).map_err(io_at("reading", &path))?;
        match text.trim_end().strip_prefix("memento collections ") {
            Some("1") => Ok(()),
            Some(v) => Err(Error::Incompatible {
                reason: format!("{} is a directory of collections of layout version {v}, which this version of Memento does not read", self.root.display()),
            }),
            None => Err(Error::invalid(format!("{} is not a collections marker", path.display()))),
        }
    }
}
