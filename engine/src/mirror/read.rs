//! Reads: ids to slots, rows by id, by slot and in slot order, the count, a whole snapshot.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row};

use super::errors::{slot_from_sql, slot_to_sql, Context};
use super::{Mirror, MirrorHeader, MirrorRow, IN_CHUNK, SQL_ROW_BY_ID, SQL_ROW_BY_SLOT, SQL_SLOT_OF};
use crate::error::Result;

pub(super) fn read_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, Option<String>, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn to_row((slot, id, text, metadata): (i64, String, Option<String>, Option<String>)) -> Result<MirrorRow> {
    Ok(MirrorRow { slot: slot_from_sql(slot)?, id, text, metadata })
}

/// `?, ?, ..., ?` with `n` placeholders.
pub(super) fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s
}

/// The width of the `IN` list used for a chunk of `n` values: a power of two
/// from 8 to [`IN_CHUNK`], so that few distinct statements are cached. The
/// list is padded by repeating a value.
pub(super) fn in_width(n: usize) -> usize {
    n.next_power_of_two().clamp(8, IN_CHUNK)
}

impl Mirror {
    /// Reads the header and every row (in slot order) as of one moment, in one read
    /// transaction, so that a live engine's commits do not show halfway.
    pub fn snapshot(&self, row: &mut dyn FnMut(MirrorRow)) -> Result<Option<MirrorHeader>> {
        let tx = self.conn.unchecked_transaction().ctx("starting a read transaction")?;
        let header = self.header()?;
        {
            let mut st = tx.prepare("SELECT slot, id, text, metadata FROM records ORDER BY slot").ctx("reading the records")?;
            let mut rows = st.query([]).ctx("reading the records")?;
            while let Some(r) = rows.next().ctx("reading the records")? {
                row(to_row(read_row(r).ctx("reading a record")?)?);
            }
        }
        tx.finish().ctx("ending the read transaction")?;
        Ok(header)
    }

    /// Begins a read transaction and returns the header as of its start (FORMAT.md §4.4: a
    /// reader pins the mirror at one `applied_lsn` for the length of one call). Every read
    /// until [`Mirror::end_read`] sees that same moment, whatever the writer commits meanwhile.
    pub fn begin_read(&self) -> Result<Option<MirrorHeader>> {
        self.conn.execute_batch("BEGIN DEFERRED").ctx("starting a read transaction")?;
        // SQLite takes the snapshot at the first read, which this is.
        match self.header() {
            Ok(h) => Ok(h),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Ends the read transaction [`Mirror::begin_read`] began (nothing to do if none is open).
    pub fn end_read(&self) -> Result<()> {
        if !self.conn.is_autocommit() {
            self.conn.execute_batch("ROLLBACK").ctx("ending a read transaction")?;
        }
        Ok(())
    }

    /// The slot of the record with this id, if it is live.
    pub fn slot_of(&self, id: &str) -> Result<Option<u64>> {
        let slot: Option<i64> = self.conn.prepare_cached(SQL_SLOT_OF).and_then(|mut st| st.query_row([id], |r| r.get(0)).optional()).ctx("looking up an id")?;
        slot.map(slot_from_sql).transpose()
    }

    /// The slots of several ids, in the order of `ids` (`None` for an id that
    /// is not live). Any number of ids: they are looked up in chunks.
    pub fn slots_of(&self, ids: &[&str]) -> Result<Vec<Option<u64>>> {
        if ids.len() <= 2 {
            return ids.iter().map(|id| self.slot_of(id)).collect();
        }
        let mut found: HashMap<String, u64> = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let width = in_width(chunk.len());
            let sql = format!("SELECT id, slot FROM records WHERE id IN ({})", placeholders(width));
            let mut st = self.conn.prepare_cached(&sql).ctx("preparing an id lookup")?;
            let padding = std::iter::repeat_n(chunk[0], width - chunk.len());
            let mut rows = st.query(rusqlite::params_from_iter(chunk.iter().copied().chain(padding))).ctx("looking up ids")?;
            while let Some(r) = rows.next().ctx("looking up ids")? {
                let id: String = r.get(0).ctx("reading an id")?;
                let slot: i64 = r.get(1).ctx("reading a slot")?;
                found.insert(id, slot_from_sql(slot)?);
            }
        }
        Ok(ids.iter().map(|id| found.get(*id).copied()).collect())
    }

    /// The row of the record with this id, if it is live.
    pub fn row_by_id(&self, id: &str) -> Result<Option<MirrorRow>> {
        let row = self.conn.prepare_cached(SQL_ROW_BY_ID).and_then(|mut st| st.query_row([id], read_row).optional()).ctx("reading a record by id")?;
        row.map(to_row).transpose()
    }

    /// The rows in several slots, in the order of `slots` (`None` for an
    /// empty slot). Any number of slots: they are read in chunks.
    pub fn rows_by_slots(&self, slots: &[u64]) -> Result<Vec<Option<MirrorRow>>> {
        let sql_slots = slots.iter().map(|&s| slot_to_sql(s)).collect::<Result<Vec<i64>>>()?;
        if sql_slots.len() <= 2 {
            let mut st = self.conn.prepare_cached(SQL_ROW_BY_SLOT).ctx("preparing a slot lookup")?;
            return sql_slots.iter().map(|&s| st.query_row([s], read_row).optional().ctx("reading a record by slot")?.map(to_row).transpose()).collect();
        }
        let mut found: HashMap<i64, MirrorRow> = HashMap::with_capacity(slots.len());
        for chunk in sql_slots.chunks(IN_CHUNK) {
            let width = in_width(chunk.len());
            let sql = format!("SELECT slot, id, text, metadata FROM records WHERE slot IN ({})", placeholders(width));
            let mut st = self.conn.prepare_cached(&sql).ctx("preparing a slot lookup")?;
            let padding = std::iter::repeat_n(chunk[0], width - chunk.len());
            let mut rows = st.query(rusqlite::params_from_iter(chunk.iter().copied().chain(padding))).ctx("reading records")?;
            while let Some(r) = rows.next().ctx("reading records")? {
                let row = to_row(read_row(r).ctx("reading a record")?)?;
                found.insert(row.slot as i64, row);
            }
        }
        Ok(sql_slots.iter().map(|s| found.get(s).cloned()).collect())
    }

    /// The ids of `slots` (`None` for a slot with no live record): [`Mirror::rows_by_slots`]
    /// without text and metadata, for a search that returns ids and distances only.
    pub fn ids_by_slots(&self, slots: &[u64]) -> Result<Vec<Option<String>>> {
        let sql_slots = slots.iter().map(|&s| slot_to_sql(s)).collect::<Result<Vec<i64>>>()?;
        let mut found: HashMap<i64, String> = HashMap::with_capacity(slots.len());
        for chunk in sql_slots.chunks(IN_CHUNK) {
            let width = in_width(chunk.len());
            let sql = format!("SELECT slot, id FROM records WHERE slot IN ({})", placeholders(width));
            let mut st = self.conn.prepare_cached(&sql).ctx("preparing a slot lookup")?;
            let padding = std::iter::repeat_n(chunk[0], width - chunk.len());
            let mut rows = st.query(rusqlite::params_from_iter(chunk.iter().copied().chain(padding))).ctx("reading record ids")?;
            while let Some(r) = rows.next().ctx("reading record ids")? {
                let slot: i64 = r.get(0).ctx("reading a slot")?;
                let id: String = r.get(1).ctx("reading an id")?;
                found.insert(slot, id);
            }
        }
        Ok(sql_slots.iter().map(|s| found.get(s).cloned()).collect())
    }

    /// The number of live records.
    #[cfg_attr(not(test), allow(dead_code, reason = "for the inspector's verify; tests use it now"))]
    pub fn count(&self) -> Result<u64> {
        let n: i64 = self.conn.prepare_cached("SELECT count(*) FROM records").and_then(|mut st| st.query_row([], |r| r.get(0))).ctx("counting records")?;
        Ok(n.max(0) as u64)
    }

    /// Up to `limit` rows with slots above `after_slot` (all slots if `None`),
    /// in slot order: iterate by passing the last slot returned.
    pub fn rows_after(&self, after_slot: Option<u64>, limit: usize) -> Result<Vec<MirrorRow>> {
        let after = match after_slot {
            None => -1,
            Some(s) => match i64::try_from(s) {
                Ok(s) => s,
                Err(_) => return Ok(Vec::new()), // no slot can be stored beyond it
            },
        };
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .conn
            .prepare_cached("SELECT slot, id, text, metadata FROM records WHERE slot > ?1 ORDER BY slot LIMIT ?2")
            .and_then(|mut st| st.query_map([after, limit], read_row)?.collect::<rusqlite::Result<Vec<_>>>())
            .ctx("reading records in slot order")?;
        rows.into_iter().map(to_row).collect()
    }

    /// The slots of all live records, ascending.
    pub fn all_slots(&self) -> Result<Vec<u64>> {
        let slots = self
            .conn
            .prepare_cached("SELECT slot FROM records ORDER BY slot")
            .and_then(|mut st| st.query_map([], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<Vec<i64>>>())
            .ctx("reading all slots")?;
        slots.into_iter().map(slot_from_sql).collect()
    }
}
