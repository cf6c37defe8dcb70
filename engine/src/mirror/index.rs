//! The metadata index: the rows a record's metadata gives, kept by [`Mirror::apply`], and the
//! look-ups filters are answered from ([`SlotIndex`]).

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, ToSql};
use serde_json::{Map, Value};

use super::errors::{inconsistent, internal, slot_from_sql, slot_to_sql, sql_error, Context};
use super::read::{in_width, placeholders};
use super::{Mirror, IN_CHUNK, SQL_FIELD, SQL_FIELD_ID, SQL_FIELD_NEW, SQL_INDEX_DELETE};
use crate::error::Result;
use crate::filter::{index_value, Bound, Filter, IndexValue, RecordFn, SlotIndex};
use crate::slots;

impl Mirror {
    /// The slots of the live records that match `filter`, ascending: look-ups in the metadata
    /// index combined as sets (see [`Filter::select`]), a scan of the texts for `$contains`.
    pub fn filter_slots(&self, filter: &Filter) -> Result<Vec<u64>> {
        filter.select(self)
    }

    /// One more than the largest live slot (0 if there is none): a bound on the number of
    /// live records, found without counting them.
    fn slot_bound(&self) -> Result<u64> {
        let max: Option<i64> =
            self.conn.prepare_cached("SELECT max(slot) FROM records").and_then(|mut st| st.query_row([], |r| r.get(0))).ctx("reading the largest slot")?;
        max.map_or(Ok(0), |m| slot_from_sql(m).map(|m| m + 1))
    }
}

/// The index rows of one record's metadata: each top-level key whose value a filter can match
/// (a string, a number or a boolean), with its [`IndexValue`]. The metadata is parsed as
/// `serde_json` parses it for [`Filter::matches`], so both see the same keys and numbers.
pub(super) fn index_entries(slot: u64, metadata: &str) -> Result<Vec<(String, IndexValue)>> {
    let map: Map<String, Value> = serde_json::from_str(metadata).map_err(|e| inconsistent(format!("the metadata of slot {slot} is not a JSON object: {e}")))?;
    Ok(map.into_iter().filter_map(|(k, v)| index_value(&v).map(|iv| (k, iv))).collect())
}

/// How many rows one index insert statement writes at most.
pub(super) const INSERT_ROWS: usize = 64;

/// Buffers the index rows that [`Mirror::apply`] adds, to write them sorted by the index's
/// key and many per statement: a batch of puts then walks the index in order, and SQLite
/// executes a few statements instead of one per row. Rows are removed at once (a removal
/// first writes the buffered rows of its slot, in case they are the ones to go).
#[derive(Default)]
pub(super) struct IndexWriter {
    /// (field, value, slot).
    rows: Vec<(i64, SqlValue, i64)>,
    /// The slots in `rows`.
    slots: HashSet<i64>,
    /// Field ids by key, then by type, as far as this call has looked them up.
    fields: HashMap<String, [Option<i64>; 3]>,
}

impl IndexWriter {
    /// The id of the field (`key`, `ty`); if there is none, a new one when `create`, else `None`.
    pub(super) fn field(&mut self, conn: &rusqlite::Connection, key: &str, ty: i64, create: bool) -> Result<Option<i64>> {
        let t = usize::try_from(ty).ok().filter(|&t| t < 3).ok_or_else(|| internal(format!("{ty} is not an index type")))?;
        if let Some(id) = self.fields.get(key).and_then(|ids| ids[t]) {
            return Ok(Some(id));
        }
        let params: [&dyn ToSql; 2] = [&key, &ty];
        let found: Option<i64> =
            conn.prepare_cached(SQL_FIELD_ID).and_then(|mut st| st.query_row(params, |r| r.get(0)).optional()).ctx("looking up an index field")?;
        let id = match found {
            Some(id) => id,
            None if create => {
                conn.prepare_cached(SQL_FIELD_NEW).and_then(|mut st| st.execute(params)).ctx("adding an index field")?;
                conn.last_insert_rowid()
            }
            None => return Ok(None),
        };
        self.fields.entry(key.to_owned()).or_default()[t] = Some(id);
        Ok(Some(id))
    }

    /// Buffers the rows of `metadata`, the new metadata of `slot`.
    pub(super) fn add(&mut self, conn: &rusqlite::Connection, slot: u64, s: i64, metadata: Option<&str>) -> Result<()> {
        let Some(metadata) = metadata else {
            return Ok(());
        };
        for (key, v) in index_entries(slot, metadata)? {
            if let Some(field) = self.field(conn, &key, v.ty, true)? {
                self.rows.push((field, v.value, s));
                self.slots.insert(s);
            }
        }
        Ok(())
    }

    /// Deletes the rows of `metadata`, the old metadata of `slot`.
    pub(super) fn remove(&mut self, conn: &rusqlite::Connection, slot: u64, s: i64, metadata: Option<&str>) -> Result<()> {
        let Some(metadata) = metadata else {
            return Ok(());
        };
        if self.slots.contains(&s) {
            self.flush(conn)?;
        }
        for (key, v) in index_entries(slot, metadata)? {
            if let Some(field) = self.field(conn, &key, v.ty, false)? {
                conn.prepare_cached(SQL_INDEX_DELETE)
                    .and_then(|mut st| st.execute([&field as &dyn ToSql, &v.value, &s]))
                    .map_err(|e| sql_error(format_args!("could not unindex the metadata of slot {slot}"), e))?;
            }
        }
        Ok(())
    }

    /// Writes the buffered rows.
    pub(super) fn flush(&mut self, conn: &rusqlite::Connection) -> Result<()> {
        // Sorted roughly as the index is (numbers by their f64 value: only locality matters here).
        let approx = |v: &SqlValue| match v {
            SqlValue::Integer(i) => *i as f64,
            SqlValue::Real(f) => *f,
            _ => 0.0,
        };
        self.rows.sort_unstable_by(|(f1, v1, s1), (f2, v2, s2)| {
            f1.cmp(f2)
                .then_with(|| match (v1, v2) {
                    (SqlValue::Text(a), SqlValue::Text(b)) => a.cmp(b),
                    (a, b) => approx(a).total_cmp(&approx(b)),
                })
                .then(s1.cmp(s2))
        });
        let mut rest = &self.rows[..];
        while !rest.is_empty() {
            // 64 rows per statement, then the remainder in powers of two (few distinct statements).
            let n = if rest.len() >= INSERT_ROWS { INSERT_ROWS } else { 1 << rest.len().ilog2() };
            let (chunk, tail) = rest.split_at(n);
            let mut sql = String::from("INSERT INTO field_values (field, value, slot) VALUES (?, ?, ?)");
            for _ in 1..n {
                sql.push_str(", (?, ?, ?)");
            }
            let mut st = conn.prepare_cached(&sql).ctx("preparing the index insert")?;
            let params: Vec<&dyn ToSql> = chunk.iter().flat_map(|(f, v, s)| [f as &dyn ToSql, v, s]).collect();
            st.execute(params.as_slice()).map_err(|e| sql_error("could not index the metadata", e))?;
            rest = tail;
        }
        self.rows.clear();
        self.slots.clear();
        Ok(())
    }
}

/// Appends the slots a query returns (one column) to `out`.
pub(super) fn read_slots(st: &mut rusqlite::CachedStatement<'_>, params: &[&dyn ToSql], out: &mut Vec<u64>) -> Result<()> {
    let mut rows = st.query(params).ctx("running a filter look-up")?;
    while let Some(r) = rows.next().ctx("running a filter look-up")? {
        out.push(slot_from_sql(r.get(0).ctx("reading a slot")?)?);
    }
    Ok(())
}

/// The `LIMIT` that reads one row more than `limit` (-1: no limit).
pub(super) fn sql_limit(limit: Option<usize>) -> i64 {
    limit.and_then(|l| i64::try_from(l).ok()).map_or(-1, |l| l.saturating_add(1))
}

/// `Some(out)`, or `None` if it holds more than `limit` slots; sorted and deduplicated.
pub(super) fn within(mut out: Vec<u64>, limit: Option<usize>) -> Option<Vec<u64>> {
    if limit.is_some_and(|l| out.len() > l) {
        return None;
    }
    slots::normalize(&mut out);
    Some(out)
}

impl SlotIndex for Mirror {
    fn equal_any(&self, key: &str, ty: i64, values: &[SqlValue], limit: Option<usize>) -> Result<Option<Vec<u64>>> {
        let mut out = Vec::new();
        if let [value] = values {
            let sql = format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value = ?3 LIMIT ?4");
            let mut st = self.conn.prepare_cached(&sql).ctx("preparing a look-up")?;
            read_slots(&mut st, &[&key, &ty, value, &sql_limit(limit)], &mut out)?;
        } else {
            for chunk in values.chunks(IN_CHUNK) {
                let width = in_width(chunk.len());
                let sql = format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value IN ({}) LIMIT ?", placeholders(width));
                let mut st = self.conn.prepare_cached(&sql).ctx("preparing a look-up")?;
                let left = sql_limit(limit.map(|l| l.saturating_sub(out.len())));
                let mut params: Vec<&dyn ToSql> = vec![&key, &ty];
                params.extend(chunk.iter().map(|v| v as &dyn ToSql));
                params.extend(std::iter::repeat_n(&chunk[0] as &dyn ToSql, width - chunk.len()));
                params.push(&left);
                read_slots(&mut st, &params, &mut out)?;
                if limit.is_some_and(|l| out.len() > l) {
                    return Ok(None);
                }
            }
        }
        Ok(within(out, limit))
    }

    fn range(&self, key: &str, ty: i64, lower: Option<&Bound>, upper: Option<&Bound>, limit: Option<usize>) -> Result<Option<Vec<u64>>> {
        let mut sql = format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD}");
        let mut params: Vec<&dyn ToSql> = vec![&key, &ty];
        if let Some(b) = lower {
            sql.push_str(if b.inclusive { " AND value >= ?" } else { " AND value > ?" });
            params.push(&b.value);
        }
        if let Some(b) = upper {
            sql.push_str(if b.inclusive { " AND value <= ?" } else { " AND value < ?" });
            params.push(&b.value);
        }
        sql.push_str(" LIMIT ?");
        let l = sql_limit(limit);
        params.push(&l);
        let mut st = self.conn.prepare_cached(&sql).ctx("preparing a range look-up")?;
        let mut out = Vec::new();
        read_slots(&mut st, &params, &mut out)?;
        Ok(within(out, limit))
    }

    fn containing(&self, needle: &str) -> Result<Vec<u64>> {
        let mut st = self.conn.prepare_cached("SELECT slot FROM records WHERE instr(text, ?1) > 0 ORDER BY slot").ctx("preparing a text search")?;
        let mut out = Vec::new();
        read_slots(&mut st, &[&needle], &mut out)?;
        slots::normalize(&mut out);
        Ok(out)
    }

    fn matching(&self, fts_query: &str) -> Result<Vec<u64>> {
        self.fts_slots(fts_query)
    }

    fn live(&self) -> Result<Vec<u64>> {
        self.all_slots()
    }

    fn size_bound(&self) -> Result<u64> {
        self.slot_bound()
    }

    fn for_each_record(&self, slots: &[u64], f: &mut RecordFn<'_>) -> Result<()> {
        let slots = slots.iter().map(|&s| slot_to_sql(s)).collect::<Result<Vec<i64>>>()?;
        for chunk in slots.chunks(IN_CHUNK) {
            let width = in_width(chunk.len());
            let sql = format!("SELECT slot, text, metadata FROM records WHERE slot IN ({})", placeholders(width));
            let mut st = self.conn.prepare_cached(&sql).ctx("preparing a record look-up")?;
            let padding = std::iter::repeat_n(chunk[0], width - chunk.len());
            let mut rows = st.query(rusqlite::params_from_iter(chunk.iter().copied().chain(padding))).ctx("reading records")?;
            while let Some(r) = rows.next().ctx("reading records")? {
                let slot = slot_from_sql(r.get(0).ctx("reading a slot")?)?;
                let text =
                    r.get_ref(1).ctx("reading a text")?.as_str_or_null().map_err(|e| inconsistent(format!("the text of slot {slot} is not text: {e}")))?;
                let metadata: Option<Map<String, Value>> = match r.get_ref(2).ctx("reading metadata")?.as_str_or_null() {
                    Ok(Some(m)) => Some(serde_json::from_str(m).map_err(|e| inconsistent(format!("the metadata of slot {slot} is not a JSON object: {e}")))?),
                    Ok(None) => None,
                    Err(e) => return Err(inconsistent(format!("the metadata of slot {slot} is not text: {e}"))),
                };
                f(slot, text, metadata.as_ref());
            }
        }
        Ok(())
    }
}
