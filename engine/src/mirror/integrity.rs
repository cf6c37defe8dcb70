//! The mirror's own integrity: SQLite's `integrity_check`, then the metadata index against the
//! records' metadata.

use rusqlite::ToSql;

use super::errors::{damaged, slot_from_sql, Context};
use super::index::index_entries;
use super::{Mirror, SQL_FIELD};
use crate::error::Result;

impl Mirror {
    /// Runs `PRAGMA integrity_check`, then checks that the metadata index holds exactly the
    /// rows the records' metadata gives and (FTS5's own check) that the full-text index holds
    /// exactly the texts' tokens; anything else is damage.
    pub fn integrity_check(&self) -> Result<()> {
        let problems = self
            .conn
            .prepare("PRAGMA integrity_check(20)")
            .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<String>>>())
            .ctx("checking integrity")?;
        if problems.len() != 1 || problems[0] != "ok" {
            return Err(damaged(format_args!("integrity_check reports: {}", problems.join("; "))));
        }
        self.check_index()?;
        self.check_fts()
    }

    /// Every index row the records' metadata gives is present, and there are no others (a row
    /// is unique, so equal counts leave no room for another). Fields no row uses are allowed.
    fn check_index(&self) -> Result<()> {
        let mut records = self.conn.prepare("SELECT slot, metadata FROM records WHERE metadata IS NOT NULL").ctx("checking the metadata index")?;
        let mut probe = self
            .conn
            .prepare(&format!("SELECT 1 FROM field_values WHERE field = {SQL_FIELD} AND value = ?3 AND slot = ?4"))
            .ctx("checking the metadata index")?;
        let mut rows = records.query([]).ctx("checking the metadata index")?;
        let mut expected: u64 = 0;
        while let Some(r) = rows.next().ctx("checking the metadata index")? {
            let s: i64 = r.get(0).ctx("reading a slot")?;
            let metadata: String = r.get(1).ctx("reading metadata")?;
            let slot = slot_from_sql(s)?;
            let entries = index_entries(slot, &metadata).map_err(|e| damaged(format_args!("slot {slot}: {e}")))?;
            for (key, v) in entries {
                let found = probe.exists([&key as &dyn ToSql, &v.ty, &v.value, &s]).ctx("checking the metadata index")?;
                if !found {
                    return Err(damaged(format_args!("the metadata index lacks the key {key:?} of slot {slot}")));
                }
                expected += 1;
            }
        }
        let rows: i64 = self.conn.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).ctx("counting the metadata index")?;
        if u64::try_from(rows).ok() != Some(expected) {
            return Err(damaged(format_args!("the metadata index holds {rows} rows where the records' metadata gives {expected}")));
        }
        Ok(())
    }
}
