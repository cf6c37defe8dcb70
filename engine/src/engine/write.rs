//! The write path: a batch is planned (`plan.rs`), appended to the WAL as one transaction,
//! made durable (at once, or by the group commit), then applied to the state and the mirror.

use super::group::DurableWait;
use super::state::{apply_to_state, mirror_ops, Writer};
use super::{CommitInfo, Durability, Engine, Metadata, Record, WriteBatch};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::mirror::is_damage;

impl Engine {
    /// Add a record; fails with [`Error::DuplicateId`] if its id exists.
    pub fn add(&self, r: Record) -> Result<CommitInfo> {
        let mut b = WriteBatch::new();
        b.add(r);
        self.write(b)
    }

    /// Insert or replace a record.
    pub fn upsert(&self, r: Record) -> Result<CommitInfo> {
        let mut b = WriteBatch::new();
        b.upsert(r);
        self.write(b)
    }

    /// Delete a record; returns whether it existed.
    pub fn delete(&self, id: &str) -> Result<bool> {
        let mut b = WriteBatch::new();
        b.delete(id);
        Ok(self.write(b)?.deleted > 0)
    }

    /// Delete every record matching `filter`; returns how many.
    pub fn delete_where(&self, filter: &Filter) -> Result<usize> {
        self.process.check()?;
        let mut w = self.writer()?;
        // Planned only from a mirror that answered without damage (read_mirror).
        let rows = {
            let st = self.state.read();
            self.read_mirror(&st, |m| m.rows_by_slots(&m.filter_slots(filter)?))?
        };
        let mut b = WriteBatch::new();
        for r in rows.into_iter().flatten() {
            b.delete(r.id);
        }
        let (info, wait) = self.write_locked(&mut w, b)?;
        drop(w);
        self.finish_commit(wait)?;
        Ok(info.deleted)
    }

    /// Replace a record's metadata without touching its vector.
    pub fn update_metadata(&self, id: &str, metadata: Option<Metadata>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.update_metadata(id, metadata);
        self.write(b).map(|_| ())
    }

    /// Merge `patch` into a record's metadata without touching its vector or text: each key
    /// of the patch is set, and a JSON `null` removes the key (see [`WriteBatch::merge_metadata`]
    /// and [`merge_metadata`](crate::merge_metadata)). Atomic: the merge is made under the writer
    /// lock, so no write of another thread is lost between its read and its write.
    /// [`Error::NotFound`] if there is no such record.
    pub fn merge_metadata(&self, id: &str, patch: Metadata) -> Result<()> {
        let mut b = WriteBatch::new();
        b.merge_metadata(id, patch);
        self.write(b).map(|_| ())
    }

    /// Replace a record's text; in a text store, embed it and replace the vector too (see
    /// [`WriteBatch::update_text`]).
    pub fn update_text(&self, id: &str, text: Option<String>) -> Result<()> {
        let mut b = WriteBatch::new();
        b.update_text(id, text);
        self.write(b).map(|_| ())
    }

    /// Commit a batch: validated as a whole, written as one WAL transaction with one fsync,
    /// applied all or nothing.
    pub fn write(&self, batch: WriteBatch) -> Result<CommitInfo> {
        self.process.check()?;
        // Text changes in a text store are embedded here, before the writer lock.
        let batch = self.embed_texts(batch)?;
        let mut w = self.writer()?;
        let (info, wait) = self.write_locked(&mut w, batch)?;
        // Under group commit the writer lock is released before waiting for the fsync, so
        // that other threads can append their commits and share it.
        drop(w);
        self.finish_commit(wait)?;
        Ok(info)
    }

    pub(super) fn finish_commit(&self, wait: Option<DurableWait>) -> Result<()> {
        match wait {
            Some(wait) => self.group.wait(wait, &self.poisoned),
            None => Ok(()),
        }
    }

    /// Commit under the writer lock. Under group commit, returns what the caller must wait for
    /// (after releasing the lock) before acknowledging.
    pub(super) fn write_locked(&self, w: &mut Writer, batch: WriteBatch) -> Result<(CommitInfo, Option<DurableWait>)> {
        self.poisoned.check()?;
        let (ops, next_slot, mut info) = self.plan(w, batch)?;
        if ops.is_empty() {
            return Ok((info, None));
        }
        let synced_through = match self.durability {
            Durability::GroupCommit => self.group.synced_through(w.wal.header.generation).unwrap_or(memento_format::wal::HEADER_LEN as u64),
            _ => w.wal.synced,
        };
        let first = w.next_lsn;
        let (bytes, commit_lsn) = w.wal.encode_txn(first, &ops, synced_through);
        w.wal.append(&bytes).map_err(|e| self.poisoned.record(Error::io("appending to the WAL", e)))?;
        if self.durability == Durability::Sync {
            w.wal.file.sync_data().map_err(|e| self.poisoned.record(Error::io("syncing the WAL", e)))?;
            w.wal.synced = w.wal.end;
        }
        w.next_lsn = commit_lsn + 1;
        w.next_slot = next_slot;
        {
            let mut st = self.state.write();
            let mut m = self.mirror.lock();
            match m.apply(commit_lsn, &mirror_ops(&ops)) {
                Ok(_) => apply_to_state(&mut st, ops, first, self.dim),
                // The commit is in the WAL: a damaged mirror is rebuilt with it, not poisoned.
                Err(e) if is_damage(&e) => {
                    apply_to_state(&mut st, ops, first, self.dim);
                    self.replace_damaged_mirror(&mut m, &st, &e).map_err(|e| self.poisoned.record(e))?;
                }
                Err(e) => return Err(self.poisoned.record(e)),
            }
        }
        info.lsn = Some(commit_lsn);
        self.graph.wake();
        let wait = (self.durability == Durability::GroupCommit).then(|| self.group.appended(w.wal.end, &w.wal.file));
        if w.wal.end > self.wal_limit {
            // A checkpoint makes everything before it durable, the waiters' commits included.
            self.checkpoint_locked(w)?;
        }
        // Dead slots cost space and scan time from the commit that made them, checkpointed or
        // not: the policy is checked after every commit (two counters), and a compaction
        // checkpoints first, which makes the waiters' commits durable as above.
        self.compact_if_due(w);
        Ok((info, wait))
    }

    /// Make every acknowledged commit durable now (useful under [`Durability::Buffered`]).
    pub fn sync(&self) -> Result<()> {
        self.process.check()?;
        let mut w = self.writer()?;
        self.poisoned.check()?;
        w.wal.file.sync_data().map_err(|e| self.poisoned.record(Error::io("syncing the WAL", e)))?;
        w.wal.synced = w.wal.end;
        self.group.synced(w.wal.header.generation, w.wal.end);
        Ok(())
    }
}
