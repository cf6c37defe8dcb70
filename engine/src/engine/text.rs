//! The text API: [`Engine::remember`], [`Engine::recall`] and their batch forms, on top of an
//! [`Embedder`] and the embedding cache (in memory, and persisted in the store directory).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use sha2::Digest;

use super::types::BatchOp;
use super::{Engine, Metadata, Record, SearchHit, SearchOptions, WriteBatch};
use crate::embed::{hex, text_key, Embedder, ModelIdentity, Progress, TextKey};
use crate::error::{Error, Result};
use crate::filter::Filter;

/// File name of the persisted embedding cache inside a store directory. A cache: it may be
/// deleted at any time, and a damaged one is replaced by an empty one.
pub const EMBEDDING_CACHE_FILE: &str = "memento.embeddings.sqlite";

/// Something to remember: a text, its metadata, and an id (derived from the text when `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Memory {
    /// The id; `None`: [`Engine::content_id`] of the text, so the same text is stored once.
    pub id: Option<String>,
    /// The text.
    pub text: String,
    /// Its metadata.
    pub metadata: Option<Metadata>,
}

impl Memory {
    /// A memory with a content-derived id and no metadata.
    pub fn new(text: impl Into<String>) -> Self {
        Memory { id: None, text: text.into(), metadata: None }
    }
    /// With an explicit id (remembering it again replaces it).
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// With metadata.
    #[must_use]
    pub fn with_metadata(mut self, m: Metadata) -> Self {
        self.metadata = Some(m);
        self
    }
}

/// A vector together with the model that made it; [`Engine::search_embedding`] refuses one
/// from another model than the store's.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding {
    /// The model.
    pub model: ModelIdentity,
    /// The vector (L2-normalised for the default model).
    pub vector: Vec<f32>,
}

/// Figures about the embedding cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Entries in memory.
    pub memory_entries: usize,
    /// Texts found in memory.
    pub memory_hits: u64,
    /// Texts found in the persisted cache.
    pub disk_hits: u64,
    /// Texts that needed inference.
    pub inferred: u64,
}

/// The embedder given to the builder: ready, or loading on another thread.
pub(super) enum ModelLoad {
    Ready(Arc<dyn Embedder>),
    Loading(JoinHandle<Result<Arc<dyn Embedder>>>),
}

impl ModelLoad {
    pub(super) fn wait(self) -> Result<Arc<dyn Embedder>> {
        match self {
            ModelLoad::Ready(e) => Ok(e),
            ModelLoad::Loading(h) => h.join().unwrap_or_else(|_| Err(Error::Model { reason: "loading the model panicked".into() })),
        }
    }
}

/// Refuses an embedder whose model is not the store's.
pub(super) fn check_model(store: &ModelIdentity, given: &ModelIdentity) -> Result<()> {
    if store == given {
        Ok(())
    } else {
        Err(Error::ModelMismatch { store: Box::new(store.clone()), given: Box::new(given.clone()) })
    }
}

/// The persisted cache, opened on first use.
pub(super) struct DiskCacheSlot {
    capacity: usize,
    state: Option<std::result::Result<DiskCache, ()>>,
    hits: u64,
    inferred: u64,
}

impl DiskCacheSlot {
    pub(super) fn new(capacity: usize) -> Self {
        DiskCacheSlot { capacity, state: None, hits: 0, inferred: 0 }
    }

    fn get(&mut self, dir: Option<&Path>) -> Option<&mut DiskCache> {
        if self.state.is_none() {
            self.state = Some(match dir {
                Some(d) if self.capacity > 0 => DiskCache::open(&d.join(EMBEDDING_CACHE_FILE), self.capacity).map_err(|_| ()),
                _ => Err(()),
            });
        }
        self.state.as_mut().and_then(|s| s.as_mut().ok())
    }
}

/// A SQLite table of (key, vector), bounded by evicting the oldest entries. Failures are never
/// the caller's problem: a cache that cannot be read or written is skipped.
struct DiskCache {
    conn: rusqlite::Connection,
    capacity: usize,
}

impl DiskCache {
    fn open(path: &Path, capacity: usize) -> rusqlite::Result<DiskCache> {
        let attempt = || -> rusqlite::Result<DiskCache> {
            // Created with the store's file mode, not SQLite's world-readable default.
            crate::storage::prepare_file(path).map_err(|e| {
                rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN), Some(format!("creating {}: {e}", path.display())))
            })?;
            let conn = rusqlite::Connection::open(path)?;
            conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != 1 {
                // Another layout (or none yet): a cache can simply start again.
                conn.execute_batch(
                    "DROP TABLE IF EXISTS embeddings;
                     CREATE TABLE embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL, crc INTEGER NOT NULL);
                     PRAGMA user_version = 1;",
                )?;
            }
            Ok(DiskCache { conn, capacity })
        };
        attempt().or_else(|_| {
            // Damaged or unreadable: start again with an empty cache.
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            attempt()
        })
    }

    /// CRC32 of key and vector bytes: a damaged entry is a miss, never a wrong vector.
    fn crc(key: &TextKey, bytes: &[u8]) -> i64 {
        let mut h = crc32fast::Hasher::new();
        h.update(key);
        h.update(bytes);
        i64::from(h.finalize())
    }

    fn get(&self, key: &TextKey, dim: usize) -> Option<Vec<f32>> {
        let mut st = self.conn.prepare_cached("SELECT vector, crc FROM embeddings WHERE key = ?1").ok()?;
        let (blob, crc): (Vec<u8>, i64) = st.query_row([&key[..]], |r| Ok((r.get(0)?, r.get(1)?))).ok()?;
        (blob.len() == dim * 4 && crc == Self::crc(key, &blob)).then(|| blob.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn put(&mut self, entries: &[(TextKey, Arc<[f32]>)]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("INSERT OR REPLACE INTO embeddings (key, vector, crc) VALUES (?1, ?2, ?3)")?;
            for (k, v) in entries {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                st.execute(rusqlite::params![&k[..], &bytes, Self::crc(k, &bytes)])?;
            }
            let n: i64 = tx.query_row("SELECT count(*) FROM embeddings", [], |r| r.get(0))?;
            let excess = n - self.capacity as i64;
            if excess > 0 {
                // Oldest first, and a tenth more, so eviction runs rarely.
                let drop = excess + self.capacity as i64 / 10;
                tx.execute("DELETE FROM embeddings WHERE rowid IN (SELECT rowid FROM embeddings ORDER BY rowid LIMIT ?1)", [drop])?;
            }
        }
        tx.commit()
    }
}

impl Engine {
    /// The embedding model the store was created with; `None` for a raw-vector store.
    pub fn model(&self) -> Option<&ModelIdentity> {
        (!self.model.id.is_empty()).then_some(&self.model)
    }

    /// The embedder the engine was opened with, if any.
    pub fn embedder(&self) -> Option<&Arc<dyn Embedder>> {
        self.embedder.as_ref()
    }

    /// The id [`Engine::remember`] gives a text: `m-` and 32 hex digits of its SHA-256.
    pub fn content_id(text: &str) -> String {
        let h = sha2::Sha256::digest(text.as_bytes());
        format!("m-{}", hex(&h[..16]))
    }

    fn require_embedder(&self) -> Result<&Arc<dyn Embedder>> {
        self.process.check()?;
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.embedder.as_ref().ok_or(Error::NoModel)
    }

    /// Vectors of `texts`: from the memory cache, else the persisted cache, else the model (one
    /// batch for all the misses, each distinct text once). `persist`: write new vectors to the
    /// persisted cache (queries; remembered texts are in the store already).
    fn embed_cached(&self, texts: &[&str], persist: bool, mut progress: Option<Progress<'_>>) -> Result<Vec<Arc<[f32]>>> {
        let embedder = self.require_embedder()?;
        let model = embedder.identity();
        let dim = embedder.dimension();
        let keys: Vec<TextKey> = texts.iter().map(|t| text_key(model, t)).collect();
        let mut out: Vec<Option<Arc<[f32]>>> = {
            let mut c = self.emb_cache.lock();
            keys.iter().map(|k| c.get(k)).collect()
        };
        if out.iter().all(Option::is_some) {
            return Ok(out.into_iter().flatten().collect());
        }
        let on_disk = self.storage.dir_path().map(Path::to_path_buf);
        let mut disk_found = Vec::new();
        {
            let mut slot = self.disk_cache.lock();
            if let Some(dc) = slot.get(on_disk.as_deref()) {
                for (i, k) in keys.iter().enumerate() {
                    if out[i].is_none() {
                        if let Some(v) = dc.get(k, dim) {
                            let v: Arc<[f32]> = Arc::from(v);
                            disk_found.push((*k, Arc::clone(&v)));
                            out[i] = Some(v);
                        }
                    }
                }
            }
            slot.hits += disk_found.len() as u64;
        }
        // Each distinct missing text once.
        let mut first_of: HashMap<TextKey, usize> = HashMap::new();
        let mut todo: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            if out[i].is_none() && !first_of.contains_key(k) {
                first_of.insert(*k, i);
                todo.push(i);
            }
        }
        let cached = texts.len() - todo.len();
        let mut fresh = Vec::with_capacity(todo.len());
        if !todo.is_empty() {
            let batch: Vec<&str> = todo.iter().map(|&i| texts[i]).collect();
            let mut report = |done: usize, _all: usize| {
                if let Some(p) = progress.as_mut() {
                    p(cached + done, texts.len());
                }
            };
            let vectors = embedder.embed_batch(&batch, Some(&mut report))?;
            if vectors.len() != batch.len() || vectors.iter().any(|v| v.len() != dim) {
                return Err(Error::Model {
                    reason: format!("the embedder returned {} vectors for {} texts, or of a dimension other than {dim}", vectors.len(), batch.len()),
                });
            }
            for (&i, v) in todo.iter().zip(vectors) {
                let v: Arc<[f32]> = Arc::from(v);
                fresh.push((keys[i], Arc::clone(&v)));
                out[i] = Some(v);
            }
            for i in 0..texts.len() {
                if out[i].is_none() {
                    out[i] = out[first_of[&keys[i]]].clone();
                }
            }
        } else if let Some(p) = progress.as_mut() {
            p(texts.len(), texts.len());
        }
        {
            let mut c = self.emb_cache.lock();
            for (k, v) in disk_found.iter().chain(&fresh) {
                c.put(*k, Arc::clone(v));
            }
        }
        if !fresh.is_empty() {
            let mut slot = self.disk_cache.lock();
            slot.inferred += fresh.len() as u64;
            if persist {
                if let Some(dc) = slot.get(on_disk.as_deref()) {
                    let _ = dc.put(&fresh);
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The vector of `text` under the engine's model (cached).
    pub fn embed(&self, text: &str) -> Result<Embedding> {
        self.embed_batch(&[text])?.pop().ok_or(Error::NoModel)
    }

    /// The vectors of `texts`, in order: cached ones from the caches, the others embedded as
    /// one batch (each distinct text once) and cached like [`Engine::embed`]'s.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Embedding>> {
        let vectors = self.embed_cached(texts, true, None)?;
        let model = self.require_embedder()?.identity();
        Ok(vectors.into_iter().map(|v| Embedding { model: model.clone(), vector: v.to_vec() }).collect())
    }

    /// In a text store, the texts a batch asks to embed, embedded as one batch (outside the
    /// writer lock, through the caches): a put of a record given without a vector
    /// ([`Record::from_text`]) gets the vector of its text, and a text update becomes a
    /// replacement of the record by one with the new text and its vector
    /// ([`WriteBatch::update_text`]; removing a text is refused there). A raw-vector store's
    /// batch is returned as it is (a put without a vector then fails its dimension check), but
    /// a put that asks for an embedding there is [`Error::NoModel`].
    pub(super) fn embed_texts(&self, batch: WriteBatch) -> Result<WriteBatch> {
        let wants_embedding = |o: &BatchOp| match o {
            BatchOp::Add(r) | BatchOp::Upsert(r) => r.vector.is_empty() && r.text.is_some(),
            _ => false,
        };
        let puts = batch.ops.iter().any(wants_embedding);
        if puts {
            self.require_embedder()?;
        }
        let updates = !self.model.id.is_empty() && batch.ops.iter().any(|o| matches!(o, BatchOp::Update { text: Some(_), .. }));
        if !puts && !updates {
            return Ok(batch);
        }
        let mut texts: Vec<&str> = Vec::new();
        for op in &batch.ops {
            match op {
                BatchOp::Add(r) | BatchOp::Upsert(r) if wants_embedding(op) => texts.extend(r.text.as_deref()),
                BatchOp::Update { id, text: Some(None), .. } if updates => {
                    return Err(Error::invalid(format!(
                        "the text of {id:?} cannot be removed: in a text store a record's vector is the embedding of its text (give it a new text, or delete the record)"
                    )));
                }
                BatchOp::Update { text: Some(Some(t)), .. } if updates => texts.push(t),
                _ => {}
            }
        }
        let vectors = self.embed_cached(&texts, false, None)?;
        let mut vectors = vectors.into_iter();
        let mut next = || vectors.next().map(|v| v.to_vec()).ok_or_else(|| Error::Model { reason: "fewer vectors than texts".into() });
        let mut ops = Vec::with_capacity(batch.ops.len());
        for op in batch.ops {
            let asks = wants_embedding(&op);
            match op {
                BatchOp::Add(mut r) if asks => {
                    r.vector = next()?;
                    ops.push(BatchOp::Add(r));
                }
                BatchOp::Upsert(mut r) if asks => {
                    r.vector = next()?;
                    ops.push(BatchOp::Upsert(r));
                }
                BatchOp::Update { id, text: Some(Some(text)), metadata } if updates => {
                    ops.push(BatchOp::Retext { id: id.clone(), text, vector: next()? });
                    if metadata.is_some() {
                        ops.push(BatchOp::Update { id, text: None, metadata });
                    }
                }
                other => ops.push(other),
            }
        }
        Ok(WriteBatch { ops })
    }

    /// Stores `text` with its metadata under [`Engine::content_id`] and returns that id. A
    /// text already stored is not stored again (and costs no inference); given metadata then
    /// replaces the stored metadata.
    pub fn remember(&self, text: &str, metadata: Option<Metadata>) -> Result<String> {
        let mut ids = self.remember_batch(vec![Memory { id: None, text: text.to_owned(), metadata }], None)?;
        ids.pop().ok_or(Error::NoModel)
    }

    /// Stores many memories in one commit and returns their ids, in order. Texts are embedded
    /// in batches sorted by length, using every core; `progress` sees (texts embedded, texts in
    /// all). Memories without an id that are already stored only have their metadata replaced
    /// (when given); memories with an id replace that record (when its text is unchanged, only
    /// its metadata is written: no inference). Every path that changes a stored text embeds the
    /// new one ([`WriteBatch::update_text`]), so an unchanged text has the right vector; a store
    /// written before that (when `update_text` kept the old vector) is repaired record by record
    /// with [`Engine::update_text`], which always embeds.
    pub fn remember_batch(&self, memories: Vec<Memory>, progress: Option<Progress<'_>>) -> Result<Vec<String>> {
        self.require_embedder()?;
        // Every memory is checked before anything is embedded: a bad one wastes no inference.
        for m in &memories {
            self.check_memory(m)?;
        }
        let ids: Vec<String> = memories.iter().map(|m| m.id.clone().unwrap_or_else(|| Engine::content_id(&m.text))).collect();
        // Which content-derived ids are stored already, and which explicit ids hold the same
        // text already (they keep their vector); read through the damage check.
        let derived: Vec<&str> = memories.iter().zip(&ids).filter(|(m, _)| m.id.is_none()).map(|(_, id)| id.as_str()).collect();
        let (present, same_text) = {
            let st = self.state.read();
            self.read_mirror(&st, |mirror| {
                let slots = mirror.slots_of(&derived)?;
                let present: std::collections::HashSet<String> =
                    derived.iter().zip(slots).filter(|(_, s)| s.is_some()).map(|(id, _)| (*id).to_owned()).collect();
                let mut same_text = std::collections::HashSet::new();
                for (i, m) in memories.iter().enumerate() {
                    if m.id.is_some() && mirror.row_by_id(&ids[i])?.is_some_and(|row| row.text.as_deref() == Some(m.text.as_str())) {
                        same_text.insert(i);
                    }
                }
                Ok((present, same_text))
            })?
        };
        let mut need: Vec<usize> = Vec::new();
        for (i, m) in memories.iter().enumerate() {
            if (m.id.is_some() && !same_text.contains(&i)) || (m.id.is_none() && !present.contains(&ids[i])) {
                need.push(i);
            }
        }
        let texts: Vec<&str> = need.iter().map(|&i| memories[i].text.as_str()).collect();
        let vectors = self.embed_cached(&texts, false, progress)?;
        let mut batch = WriteBatch::new();
        let mut vec_of: HashMap<usize, Arc<[f32]>> = need.into_iter().zip(vectors).collect();
        for (i, m) in memories.into_iter().enumerate() {
            match vec_of.remove(&i) {
                Some(v) => {
                    let mut r = Record::new(ids[i].clone(), v.to_vec()).with_text(m.text);
                    r.metadata = m.metadata;
                    batch.upsert(r);
                }
                // The same text under its explicit id: the metadata is replaced.
                None if same_text.contains(&i) => {
                    batch.update_metadata(ids[i].clone(), m.metadata);
                }
                None => {
                    if let Some(md) = m.metadata {
                        batch.update_metadata(ids[i].clone(), Some(md));
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.write(batch)?;
        }
        Ok(ids)
    }

    /// The `k` stored texts that best answer `query`, best first, matched by the default mode
    /// ([`crate::DEFAULT_RECALL_MODE`]: hybrid, meaning and words fused by reciprocal rank,
    /// chosen from the retrieval-quality measurements in BENCHMARKS.md). A hit's `distance` is
    /// its vector distance from the query (see [`Engine::search`]) and its `score` the fused
    /// score; [`Engine::recall_by`] takes another mode ([`RecallMode::Vector`](crate::RecallMode):
    /// by meaning only, score `1 − distance` under cosine).
    pub fn recall(&self, query: &str, k: usize, filter: Option<&Filter>) -> Result<Vec<SearchHit>> {
        let mut o = SearchOptions::new(k);
        o.filter = filter;
        self.recall_with(query, &o)
    }

    /// [`Engine::recall`] with search options.
    pub fn recall_with(&self, query: &str, opts: &SearchOptions<'_>) -> Result<Vec<SearchHit>> {
        Ok(self.recall_batch(&[query], opts)?.pop().unwrap_or_default())
    }

    /// Several queries, by the default mode: embedded as one batch, searched as one batch.
    pub fn recall_batch(&self, queries: &[&str], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        self.recall_by(queries, opts, crate::DEFAULT_RECALL_MODE)
    }

    /// Several queries by meaning only ([`RecallMode::Vector`](crate::RecallMode)): embedded as
    /// one batch, searched as one batch.
    pub fn recall_vector_batch(&self, queries: &[&str], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let flat = self.embed_queries(queries)?;
        self.search_batch(&flat, opts)
    }

    /// The queries' embeddings (through the caches), one after another in one buffer.
    pub(super) fn embed_queries(&self, queries: &[&str]) -> Result<Vec<f32>> {
        let vectors = self.embed_cached(queries, true, None)?;
        let mut flat = Vec::with_capacity(vectors.len() * self.dim);
        for v in &vectors {
            flat.extend_from_slice(v);
        }
        Ok(flat)
    }

    /// Searches with an [`Embedding`], refusing one made by another model than the store's
    /// ([`Error::ModelMismatch`]).
    pub fn search_embedding(&self, e: &Embedding, opts: &SearchOptions<'_>) -> Result<Vec<SearchHit>> {
        check_model(&self.model, &e.model)?;
        self.search_with(&e.vector, opts)
    }

    /// Figures about the embedding cache.
    ///
    /// # Panics
    /// In a forked child, like [`Engine::count`].
    pub fn cache_stats(&self) -> CacheStats {
        self.assert_opener();
        let (memory_hits, memory_entries) = {
            let c = self.emb_cache.lock();
            (c.stats().0, c.len())
        };
        let d = self.disk_cache.lock();
        CacheStats { memory_entries, memory_hits, disk_hits: d.hits, inferred: d.inferred }
    }
}
