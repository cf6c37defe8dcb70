//! Writes: applying a committed transaction (idempotent by LSN), resetting for a rebuild, and
//! the checkpoint that makes the mirror durable before the log drops what it holds.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::errors::{inconsistent, internal, slot_to_sql, sql_error, Context};
use super::index::IndexWriter;
use super::keyword::{SQL_FTS_CLEAR, SQL_FTS_OPTIMIZE};
use super::{Mirror, MirrorOp, SQL_APPLIED_LSN, SQL_DELETE, SQL_OLD_OF, SQL_PUT, SQL_SET_APPLIED_LSN, SQL_UPDATE};
use crate::error::Result;

/// How long the writer's `BEGIN IMMEDIATE` may wait on a lock. Readers in other processes never
/// hold the write lock, but they briefly take other locks of the WAL index (a read mark, or
/// its recovery after a checkpoint), and a begin that meets one fails at once with the zero
/// busy timeout the connection otherwise keeps: a commit already in the WAL would then poison
/// the writer (found by `engine/tests/stress.rs`). SQLite retries the begin within this time;
/// the wait is microseconds in practice.
const BEGIN_WAIT: Duration = Duration::from_secs(2);

/// Begins a write transaction, waiting up to [`BEGIN_WAIT`] for a lock a reader holds for a
/// moment. The zero timeout is restored at once, so that nothing else (the checkpoint's
/// `wal_checkpoint(TRUNCATE)` above all, which would wait for readers to finish) waits.
/// (`&mut` for the compile-time guarantee of [`Transaction::new`] that transactions do not
/// nest; the shared borrow inside lets the timeout be restored whether the begin worked or not.)
pub(super) fn begin_write<'c>(conn: &'c mut Connection, what: &str) -> Result<Transaction<'c>> {
    let conn: &'c Connection = conn;
    conn.busy_timeout(BEGIN_WAIT).ctx("setting the busy timeout")?;
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate);
    conn.busy_timeout(Duration::ZERO).ctx("setting the busy timeout")?;
    tx.ctx(what)
}

impl Mirror {
    /// Drops every record and sets the header to `store_uuid` and
    /// `applied_lsn = 0`, in one transaction (done before a rebuild).
    pub fn reset(&mut self, store_uuid: [u8; 16]) -> Result<()> {
        let tx = begin_write(&mut self.conn, "starting the reset transaction")?;
        tx.execute(SQL_FTS_CLEAR, []).ctx("clearing the full-text index")?;
        tx.execute_batch("DELETE FROM records; DELETE FROM meta; DELETE FROM field_values; DELETE FROM fields;").ctx("deleting all rows")?;
        tx.execute("INSERT INTO meta (one, store_uuid, applied_lsn) VALUES (0, ?1, 0)", [&store_uuid[..]]).ctx("writing the header")?;
        tx.commit().ctx("committing the reset")
    }

    /// Applies `ops` in order and records `applied_lsn = lsn`, all in one
    /// transaction. Returns `false` and changes nothing if `lsn` is not newer
    /// than the applied LSN (replay is idempotent). An op that does not fit
    /// the mirror's state (a `Put` of an id or slot that is taken, an
    /// `Update` or `Delete` of an empty slot, metadata that is not a JSON
    /// object) is an [`Error::Mirror`] and nothing of the call is kept. The
    /// mirror must have a header (see [`reset`](Mirror::reset)).
    pub fn apply(&mut self, lsn: u64, ops: &[MirrorOp<'_>]) -> Result<bool> {
        let lsn_sql = i64::try_from(lsn).map_err(|_| internal(format!("the LSN {lsn} is larger than the mirror stores")))?;
        let tx = begin_write(&mut self.conn, "starting a transaction")?;
        let applied: Option<i64> =
            tx.prepare_cached(SQL_APPLIED_LSN).and_then(|mut st| st.query_row([], |r| r.get(0)).optional()).ctx("reading the applied LSN")?;
        let Some(applied) = applied else {
            return Err(internal("the mirror has no header; it must be reset before changes are applied"));
        };
        if lsn_sql <= applied {
            return Ok(false); // dropping `tx` rolls back; nothing was written
        }
        {
            let mut put = tx.prepare_cached(SQL_PUT).ctx("preparing the insert")?;
            let mut update = tx.prepare_cached(SQL_UPDATE).ctx("preparing the update")?;
            let mut delete = tx.prepare_cached(SQL_DELETE).ctx("preparing the delete")?;
            let mut old_of = tx.prepare_cached(SQL_OLD_OF).ctx("preparing a record lookup")?;
            let mut index = IndexWriter::default();
            for op in ops {
                match *op {
                    MirrorOp::Put { slot, id, text, metadata } => {
                        let s = slot_to_sql(slot)?;
                        put.execute(rusqlite::params![s, id, text, metadata])
                            .map_err(|e| sql_error(format_args!("could not insert the record {id:?} in slot {slot}"), e))?;
                        index.add(&tx, slot, s, metadata)?;
                        Mirror::fts_add(&tx, s, text)?;
                    }
                    MirrorOp::Update { slot, text, metadata } => {
                        let s = slot_to_sql(slot)?;
                        // The old metadata (for the index) and text (for the full-text index).
                        let old: Option<(Option<String>, Option<String>)> = if metadata.is_some() || text.is_some() {
                            Some(
                                old_of
                                    .query_row([s], |r| Ok((r.get(0)?, r.get(1)?)))
                                    .optional()
                                    .map_err(|e| sql_error(format_args!("could not read the record in slot {slot}"), e))?
                                    .ok_or_else(|| inconsistent(format!("no record is in slot {slot} to update")))?,
                            )
                        } else {
                            None
                        };
                        let n = update
                            .execute(rusqlite::params![s, text.is_some(), text.flatten(), metadata.is_some(), metadata.flatten()])
                            .map_err(|e| sql_error(format_args!("could not update the record in slot {slot}"), e))?;
                        if n != 1 {
                            return Err(inconsistent(format!("no record is in slot {slot} to update")));
                        }
                        if let Some((old_metadata, old_text)) = old {
                            if let Some(new) = metadata {
                                index.remove(&tx, slot, s, old_metadata.as_deref())?;
                                index.add(&tx, slot, s, new)?;
                            }
                            if let Some(new) = text {
                                Mirror::fts_remove(&tx, s, old_text.as_deref())?;
                                Mirror::fts_add(&tx, s, new)?;
                            }
                        }
                    }
                    MirrorOp::Delete { slot } => {
                        let s = slot_to_sql(slot)?;
                        let old: Option<(Option<String>, Option<String>)> = delete
                            .query_row([s], |r| Ok((r.get(0)?, r.get(1)?)))
                            .optional()
                            .map_err(|e| sql_error(format_args!("could not delete the record in slot {slot}"), e))?;
                        let Some((old_metadata, old_text)) = old else {
                            return Err(inconsistent(format!("no record is in slot {slot} to delete")));
                        };
                        index.remove(&tx, slot, s, old_metadata.as_deref())?;
                        Mirror::fts_remove(&tx, s, old_text.as_deref())?;
                    }
                }
            }
            index.flush(&tx)?;
            tx.prepare_cached(SQL_SET_APPLIED_LSN).and_then(|mut st| st.execute([lsn_sql])).ctx("recording the applied LSN")?;
        }
        tx.commit().ctx("committing")?;
        Ok(true)
    }

    /// Makes everything applied so far durable: `PRAGMA wal_checkpoint(TRUNCATE)`, which
    /// copies SQLite's WAL into the file, syncs it and empties the WAL. A reader in another
    /// process (FORMAT.md §4.4) holding a read transaction stops that from finishing; the
    /// writer does not wait for it, but makes the WAL itself durable with one synced commit
    /// (`synchronous = FULL` for one write of the header row) and leaves the copying to the
    /// next checkpoint. A no-op for an in-memory mirror.
    pub fn checkpoint(&mut self) -> Result<()> {
        let (busy, log, done): (i64, i64, i64) =
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).ctx("checkpointing")?;
        if busy == 0 && log == done {
            return Ok(());
        }
        self.conn.execute_batch("PRAGMA synchronous = FULL").ctx("setting synchronous = FULL")?;
        let synced = self.conn.execute("UPDATE meta SET applied_lsn = applied_lsn WHERE one = 0", []).ctx("syncing the write-ahead log");
        self.conn.execute_batch("PRAGMA synchronous = NORMAL").ctx("setting synchronous = NORMAL")?;
        synced.map(drop)
    }

    /// Rewrites the mirror without its free pages (SQLite's `VACUUM`) when they are at least a
    /// quarter of the file and at least 1 MiB: a store whose records were mostly deleted keeps
    /// the high-water size of its mirror otherwise (SQLite reuses free pages, but never gives
    /// them back). Done by a compaction (FORMAT.md §4.5). Readers in other processes keep
    /// reading their snapshot meanwhile (the mirror is in WAL mode), and the next checkpoint
    /// folds the rewrite into the file. Returns whether it vacuumed.
    ///
    /// The full-text index is merged into one segment first (FTS5's `optimize`): FTS5 records
    /// a deletion as a marker in a new segment and drops the deleted entries only when segments
    /// merge, so without it the index of a mostly deleted store keeps its size.
    pub fn vacuum_if_sparse(&mut self) -> Result<bool> {
        {
            let tx = begin_write(&mut self.conn, "starting the full-text index merge")?;
            tx.execute(SQL_FTS_OPTIMIZE, []).ctx("merging the full-text index")?;
            tx.commit().ctx("committing the full-text index merge")?;
        }
        let pages: i64 = self.conn.query_row("PRAGMA page_count", [], |r| r.get(0)).ctx("reading the page count")?;
        let free: i64 = self.conn.query_row("PRAGMA freelist_count", [], |r| r.get(0)).ctx("reading the free page count")?;
        let page_size: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0)).ctx("reading the page size")?;
        if free * 4 < pages || free * page_size < 1 << 20 {
            return Ok(false);
        }
        self.conn.busy_timeout(BEGIN_WAIT).ctx("setting the busy timeout")?;
        let done = self.conn.execute_batch("VACUUM").ctx("vacuuming");
        self.conn.busy_timeout(Duration::ZERO).ctx("setting the busy timeout")?;
        done?;
        self.checkpoint()?;
        Ok(true)
    }
}
