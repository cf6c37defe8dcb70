//! Reads by id and by filter, the record iterator, the count and the figures.

use std::collections::VecDeque;

use super::state::Source;
use super::{Engine, Metadata, Record, Stats};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::VectorSource;
use crate::vecfile;

impl Engine {
    /// The record with this id, if any.
    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        self.process.check()?;
        let _pin = self.pin()?;
        let st = self.state.read();
        let Some(row) = self.read_mirror(&st, |m| m.row_by_id(id))? else {
            return Ok(None);
        };
        let src = Source { st: &st, dim: self.dim };
        let v = src
            .vector(row.slot)?
            .ok_or_else(|| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("no vector for slot {} of id {id:?}", row.slot)))?;
        Ok(Some(Record { id: row.id, vector: v.into_owned(), text: row.text, metadata: parse_meta(row.metadata)? }))
    }

    /// The records matching `filter`, in insertion order, at most `limit` of them.
    pub fn get_where(&self, filter: &Filter, limit: Option<usize>) -> Result<Vec<Record>> {
        self.process.check()?;
        let _pin = self.pin()?;
        let st = self.state.read();
        let rows = self.read_mirror(&st, |m| {
            let mut slots = m.filter_slots(filter)?;
            slots.sort_unstable();
            if let Some(n) = limit {
                slots.truncate(n);
            }
            m.rows_by_slots(&slots)
        })?;
        let src = Source { st: &st, dim: self.dim };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.into_iter().flatten() {
            let v = src
                .vector(row.slot)?
                .ok_or_else(|| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("no vector for slot {} of id {:?}", row.slot, row.id)))?;
            out.push(Record { id: row.id, vector: v.into_owned(), text: row.text, metadata: parse_meta(row.metadata)? });
        }
        Ok(out)
    }

    /// Whether a record has this id.
    pub fn contains(&self, id: &str) -> Result<bool> {
        self.process.check()?;
        let _pin = self.pin()?;
        let st = self.state.read();
        Ok(self.read_mirror(&st, |m| m.slot_of(id))?.is_some())
    }

    /// Number of live records.
    ///
    /// # Panics
    /// In a forked child (see [`Error::ForkedProcess`]), before taking any lock: the count has
    /// no error to return, and an inherited engine must not be used.
    pub fn count(&self) -> u64 {
        self.assert_opener();
        // A reader counts at the latest commit (a refresh that fails leaves its snapshot's).
        let _pin = self.pin().ok();
        self.state.read().live_count
    }

    /// Panics with [`Error::ForkedProcess`]'s message in a forked child (for the operations
    /// that return no `Result`).
    pub(super) fn assert_opener(&self) {
        if let Err(e) = self.process.check() {
            panic!("{e}");
        }
    }

    /// All records in insertion order, read in pages; records written or deleted while
    /// iterating may or may not be seen.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter { engine: self, after: None, buf: VecDeque::new(), done: false }
    }

    /// Figures about the store.
    ///
    /// # Panics
    /// In a forked child, like [`Engine::count`].
    pub fn stats(&self) -> Stats {
        self.assert_opener();
        // A reader's figures are those of the latest commit (a refresh that fails leaves the
        // snapshot it has).
        let _pin = self.pin().ok();
        let w = self.writer.as_ref().map(|w| w.lock());
        let st = self.state.read();
        let sb = st.vf.superblock();
        let (slots, wal_bytes, last_lsn) = match &w {
            Some(w) => (w.next_slot, w.wal.end, w.next_lsn - 1),
            None => (sb.next_slot + st.pending.n_vectors as u64, self.followed_wal_bytes(), st.last_lsn),
        };
        Stats {
            count: st.live_count,
            slots,
            deleted: st.dead.len(),
            dimension: self.dim,
            metric: self.metric,
            pages: sb.page_count,
            vector_file_bytes: st.vf.sealed_len(),
            wal_bytes,
            checkpoint_lsn: sb.checkpoint_lsn,
            last_lsn,
            pending_vectors: st.pending.n_vectors as u64,
            recovery: self.recovery.lock().clone(),
            model: (!self.model.id.is_empty()).then(|| self.model.clone()),
            read_only: w.is_none(),
        }
    }
}

pub(super) fn parse_meta(m: Option<String>) -> Result<Option<Metadata>> {
    m.map(|s| serde_json::from_str::<Metadata>(&s).map_err(|e| crate::mirror::inconsistent(format!("stored metadata is not a JSON object: {e}")))).transpose()
}

/// Iterator over all records; see [`Engine::iter`].
pub struct RecordIter<'a> {
    engine: &'a Engine,
    after: Option<u64>,
    buf: VecDeque<Record>,
    done: bool,
}

impl Iterator for RecordIter<'_> {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            let e = self.engine;
            if let Err(x) = e.process.check() {
                self.done = true;
                return Some(Err(x));
            }
            let _pin = match e.pin() {
                Ok(p) => p,
                Err(x) => {
                    self.done = true;
                    return Some(Err(x));
                }
            };
            let st = e.state.read();
            let after = self.after;
            let rows = match e.read_mirror(&st, |m| m.rows_after(after, 256)) {
                Ok(r) => r,
                Err(x) => {
                    self.done = true;
                    return Some(Err(x));
                }
            };
            if rows.len() < 256 {
                self.done = true;
            }
            let src = Source { st: &st, dim: e.dim };
            for row in rows {
                self.after = Some(row.slot);
                let item = src
                    .vector(row.slot)
                    .and_then(|v| v.ok_or_else(|| e.mirror_disagrees(row.slot)))
                    .and_then(|v| Ok(Record { vector: v.into_owned(), id: row.id, text: row.text, metadata: parse_meta(row.metadata)? }));
                match item {
                    Ok(r) => self.buf.push_back(r),
                    Err(x) => {
                        self.done = true;
                        return Some(Err(x));
                    }
                }
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
