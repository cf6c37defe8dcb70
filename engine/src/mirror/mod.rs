//! The SQLite mirror: id <-> slot, document text and metadata of the live records.
//!
//! The mirror is *derived* state. The log and the vector file are the truth;
//! the mirror is rebuilt from them whenever it is missing, damaged, or belongs
//! to another store (its header holds the store's UUID). Every change reaches
//! the mirror through [`Mirror::apply`], one SQLite transaction per log
//! sequence number (LSN), which also records that LSN as `applied_lsn`; applying
//! an LSN that is not newer than `applied_lsn` does nothing, so replaying the
//! log into the mirror is idempotent.
//!
//! Durability: the file runs in WAL mode with `synchronous=NORMAL`, so a commit
//! is not fsynced. After a power loss the mirror is consistent but may have
//! lost its last commits, which its `applied_lsn` then shows; the engine replays
//! them from the log. Before the engine drops log entries that the mirror
//! holds, it calls [`Mirror::checkpoint`], which copies the WAL into the main
//! file and syncs it.
//!
//! Damage: [`is_damage`] tells whether an [`Error`] means that the file is
//! damaged or is not a mirror at all (SQLite's `SQLITE_CORRUPT` or
//! `SQLITE_NOTADB`, `SQLITE_IOERR_DATA` from a page that fails its trailer check
//! (see [`vfs`]: every page of a mirror file carries a page number and a CRC-32),
//! a failed `integrity_check`, an SQLite file with foreign content), in which
//! case the engine deletes it and rebuilds, at open or at the read that met the
//! damage, and retries that read once; such errors are of the kind
//! [`MirrorErrorKind::Damaged`]. A mirror of an older schema version is
//! reported the same way: it is derived state, so it is rebuilt rather than
//! migrated. [`Mirror::open_file_checked`] returns damage at open as a value
//! instead. A mirror of a newer schema version is refused with an
//! [`Error::Mirror`] of the kind [`MirrorErrorKind::NewerSchema`]; every other
//! SQLite failure is of the kind [`MirrorErrorKind::Sqlite`], with SQLite's
//! error as its source.
//!
//! Schema (version 3, kept in `PRAGMA user_version`; version 2 had no page trailers, see
//! [`vfs`] and FORMAT.md §6.1; version 1 had no `fields` and `field_values`):
//!
//! ```sql
//! CREATE TABLE records (slot INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
//!                       text TEXT, metadata TEXT /* a JSON object */);
//! CREATE TABLE meta (one INTEGER PRIMARY KEY CHECK (one = 0), store_uuid BLOB, applied_lsn INTEGER);
//! -- The metadata index. A field is a top-level metadata key with a value type:
//! -- 0 boolean, 1 number, 2 string.
//! CREATE TABLE fields (id INTEGER PRIMARY KEY, key TEXT NOT NULL, type INTEGER NOT NULL,
//!                      UNIQUE (key, type));
//! -- One row per top-level string, number or boolean of a record's metadata
//! -- (null, lists and objects are not indexed: no operator matches them).
//! CREATE TABLE field_values (field INTEGER NOT NULL, value NOT NULL, slot INTEGER NOT NULL,
//!                            PRIMARY KEY (field, value, slot)) WITHOUT ROWID;
//! ```
//!
//! `field_values.value` has no declared type, so SQLite keeps what is bound: a
//! boolean is INTEGER 0 or 1, a number is INTEGER if it is an `i64` and REAL
//! otherwise (SQLite compares INTEGER with REAL exactly), a string is TEXT,
//! compared with the column's BINARY collation, byte by byte. Its primary key
//! serves equality, `IN` and range look-ups on one field, each returning slots.
//! [`Mirror::apply`] keeps the index in the same transaction as `records`: a put
//! adds the rows of the new metadata, a delete or a metadata update first
//! removes the rows of the old metadata (read from `records`). The metadata is
//! parsed by `serde_json`, as [`Filter::matches`] sees it, so both agree on keys
//! (even duplicated ones, or ones holding U+0000) and on numbers. Fields are
//! never removed except by [`Mirror::reset`]; a field no row uses is harmless.
//! [`Mirror::integrity_check`] checks that the index holds exactly the rows the
//! records' metadata gives.
//!
//! [`Mirror::filter_slots`] evaluates a filter with these look-ups (see
//! [`Filter::select`]); `$contains` scans `records.text`.
//!
//! Slots are `u64` in the engine and `INTEGER` (i64) in SQLite: a slot above
//! `i64::MAX` is refused with an [`Error::Mirror`] ([`MirrorErrorKind::Internal`]).
//! The same holds for LSNs.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::path::Path;
use std::time::Duration;

use rusqlite::types::Value as SqlValue;
use rusqlite::{ErrorCode, OptionalExtension, Row, ToSql, TransactionBehavior};
use serde_json::{Map, Value};

use crate::error::{Error, MirrorErrorKind, Result};
use crate::filter::{index_value, Bound, Filter, IndexValue, RecordFn, SlotIndex};
use crate::slots;

#[allow(unsafe_code, reason = "an SQLite VFS shim: C callbacks over raw pointers, each unsafe block justified by a SAFETY comment")]
pub mod vfs;

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

/// How many values one `IN (...)` list binds at most. SQLite's limit on
/// parameters is 32,766 since 3.32 but may be built as low as 999.
const IN_CHUNK: usize = 512;

const SCHEMA: &str = "
CREATE TABLE records (
    slot INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    text TEXT,
    metadata TEXT CHECK (metadata IS NULL OR json_type(metadata) = 'object')
);
CREATE TABLE meta (
    one INTEGER PRIMARY KEY CHECK (one = 0),
    store_uuid BLOB NOT NULL CHECK (typeof(store_uuid) = 'blob' AND length(store_uuid) = 16),
    applied_lsn INTEGER NOT NULL CHECK (typeof(applied_lsn) = 'integer' AND applied_lsn >= 0)
);
CREATE TABLE fields (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    type INTEGER NOT NULL CHECK (type IN (0, 1, 2)),
    UNIQUE (key, type)
);
CREATE TABLE field_values (
    field INTEGER NOT NULL,
    value NOT NULL,
    slot INTEGER NOT NULL,
    PRIMARY KEY (field, value, slot)
) WITHOUT ROWID;
PRAGMA user_version = 3;
";

/// The tables of a current mirror.
const TABLES: [&str; 4] = ["records", "meta", "fields", "field_values"];

const SQL_PUT: &str = "INSERT INTO records (slot, id, text, metadata) VALUES (?1, ?2, ?3, ?4)";
const SQL_UPDATE: &str = "UPDATE records SET \
     text = CASE WHEN ?2 THEN ?3 ELSE text END, \
     metadata = CASE WHEN ?4 THEN ?5 ELSE metadata END \
     WHERE slot = ?1";
const SQL_DELETE: &str = "DELETE FROM records WHERE slot = ?1 RETURNING metadata";
const SQL_METADATA_OF: &str = "SELECT metadata FROM records WHERE slot = ?1";
const SQL_FIELD_ID: &str = "SELECT id FROM fields WHERE key = ?1 AND type = ?2";
const SQL_FIELD_NEW: &str = "INSERT INTO fields (key, type) VALUES (?1, ?2)";
const SQL_INDEX_DELETE: &str = "DELETE FROM field_values WHERE field = ?1 AND value = ?2 AND slot = ?3";
/// The field id of a key and a type, in a look-up (NULL, which matches nothing, if the field
/// was never written).
const SQL_FIELD: &str = "(SELECT id FROM fields WHERE key = ?1 AND type = ?2)";
const SQL_APPLIED_LSN: &str = "SELECT applied_lsn FROM meta WHERE one = 0";
const SQL_SET_APPLIED_LSN: &str = "UPDATE meta SET applied_lsn = ?1 WHERE one = 0";
const SQL_SLOT_OF: &str = "SELECT slot FROM records WHERE id = ?1";
const SQL_ROW_BY_ID: &str = "SELECT slot, id, text, metadata FROM records WHERE id = ?1";
const SQL_ROW_BY_SLOT: &str = "SELECT slot, id, text, metadata FROM records WHERE slot = ?1";

/// True if an SQLite error means the database file is damaged or is not a
/// database (`SQLITE_CORRUPT`, `SQLITE_NOTADB`, or `SQLITE_IOERR_DATA`: a page failed its
/// trailer check, see [`vfs`]).
pub fn is_corruption(err: &rusqlite::Error) -> bool {
    matches!(err.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase))
        || matches!(err, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == rusqlite::ffi::SQLITE_IOERR_DATA)
}

/// True if `err` is an [`Error::Mirror`] that says the mirror file is damaged
/// or not a mirror ([`MirrorErrorKind::Damaged`]), so it should be deleted and
/// rebuilt from the log.
pub fn is_damage(err: &Error) -> bool {
    matches!(err, Error::Mirror { kind: MirrorErrorKind::Damaged, .. })
}

/// [`MirrorErrorKind::Damaged`]: `what` says what is damaged.
fn damaged(what: impl Display) -> Error {
    Error::mirror(MirrorErrorKind::Damaged, what.to_string())
}

/// [`MirrorErrorKind::Inconsistent`].
pub(crate) fn inconsistent(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Inconsistent, what)
}

/// [`MirrorErrorKind::Internal`].
fn internal(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Internal, what)
}

/// [`MirrorErrorKind::Setup`].
fn setup(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Setup, what)
}

/// Maps an SQLite error to [`Error::Mirror`], saying what was being done: damage if SQLite
/// reports corruption (see [`is_corruption`]), else [`MirrorErrorKind::Sqlite`]; the SQLite
/// error is the source either way.
fn sql_error(context: impl Display, err: rusqlite::Error) -> Error {
    let page_check = matches!(&err, rusqlite::Error::SqliteFailure(e, _) if e.extended_code == rusqlite::ffi::SQLITE_IOERR_DATA);
    let (kind, detail) = if page_check {
        (MirrorErrorKind::Damaged, format!("{context}: a page failed its checksum (SQLite error {err})"))
    } else if is_corruption(&err) {
        (MirrorErrorKind::Damaged, format!("{context}: {err}"))
    } else {
        (MirrorErrorKind::Sqlite, format!("{context}: {err}"))
    };
    Error::Mirror { kind, detail, source: Some(Box::new(err)) }
}

/// `.ctx("reading ...")` on rusqlite results.
trait Context<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| sql_error(context, e))
    }
}

fn slot_to_sql(slot: u64) -> Result<i64> {
    i64::try_from(slot).map_err(|_| internal(format!("the slot {slot} is larger than the largest slot the mirror stores ({})", i64::MAX)))
}

fn slot_from_sql(slot: i64) -> Result<u64> {
    u64::try_from(slot).map_err(|_| damaged(format_args!("it holds the negative slot {slot}")))
}

/// One live record as the mirror holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorRow {
    /// The record's slot in the vector file.
    pub slot: u64,
    /// The record's id.
    pub id: String,
    /// The document text, if any.
    pub text: Option<String>,
    /// The metadata as JSON object text, if any.
    pub metadata: Option<String>,
}

/// The mirror's one-row header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MirrorHeader {
    /// The UUID of the store this mirror belongs to.
    pub store_uuid: [u8; 16],
    /// The last log sequence number applied to the mirror (0: none).
    pub applied_lsn: u64,
}

/// One change applied by [`Mirror::apply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorOp<'a> {
    /// Inserts a live record. No row may hold the slot or the id: an upsert
    /// is a `Delete` of the old slot followed by a `Put` in the new one.
    Put {
        /// The record's slot.
        slot: u64,
        /// The record's id.
        id: &'a str,
        /// The document text.
        text: Option<&'a str>,
        /// The metadata, JSON object text (checked by SQLite).
        metadata: Option<&'a str>,
    },
    /// Changes the text and/or metadata of the record in `slot`, which must exist.
    Update {
        /// The record's slot.
        slot: u64,
        /// `None`: leave as is; `Some(None)`: set to NULL; `Some(Some(t))`: set to `t`.
        text: Option<Option<&'a str>>,
        /// `None`: leave as is; `Some(None)`: set to NULL; `Some(Some(m))`: set to `m`.
        metadata: Option<Option<&'a str>>,
    },
    /// Removes the record in `slot`, which must exist.
    Delete {
        /// The record's slot.
        slot: u64,
    },
}

/// The SQLite mirror of one store. See the module documentation.
pub struct Mirror {
    conn: rusqlite::Connection,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("path", &self.conn.path()).finish()
    }
}

fn read_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, Option<String>, Option<String>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_row((slot, id, text, metadata): (i64, String, Option<String>, Option<String>)) -> Result<MirrorRow> {
    Ok(MirrorRow { slot: slot_from_sql(slot)?, id, text, metadata })
}

/// `?, ?, ..., ?` with `n` placeholders.
fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s
}

/// The width of the `IN` list used for a chunk of `n` values: a power of two
/// from 8 to [`IN_CHUNK`], so that few distinct statements are cached. The
/// list is padded by repeating a value.
fn in_width(n: usize) -> usize {
    n.next_power_of_two().clamp(8, IN_CHUNK)
}

impl Mirror {
    /// Opens the mirror file at `path`, creating the file and the schema if
    /// they are missing. Damage (see [`is_damage`]) is an error like any
    /// other; use [`Mirror::open_file_checked`] to get it as a value. A file
    /// written by a newer schema version is an [`Error::Mirror`] that is not
    /// damage.
    pub fn open_file(path: &Path) -> Result<Mirror> {
        vfs::register().map_err(setup)?;
        let mut conn = rusqlite::Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs::VFS_NAME)
            .map_err(|e| sql_error(format_args!("opening the mirror file {}", path.display()), e))?;
        conn.busy_timeout(Duration::ZERO).ctx("setting the busy timeout")?;
        // Before the first write of a new file; a file that has pages keeps its layout (one
        // without trailers fails its first page check, which is damage: it is rebuilt).
        vfs::reserve_trailer(&conn).ctx("reserving the page trailers")?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)).ctx("switching the mirror to WAL mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::mirror(
                MirrorErrorKind::Sqlite,
                format!("the mirror file {} could not be switched to WAL mode (its journal mode stays {mode})", path.display()),
            ));
        }
        Self::init(&mut conn)?;
        Ok(Mirror { conn })
    }

    /// Like [`Mirror::open_file`], but returns `Ok(Err(damage))` (an error [`is_damage`] recognises) when
    /// the file is damaged, is not an SQLite database, or is an SQLite
    /// database that is not a mirror; the caller then deletes the file (and
    /// its `-wal` and `-shm` companions) and rebuilds. Other failures are
    /// `Err`.
    pub fn open_file_checked(path: &Path) -> Result<Result<Mirror, Error>> {
        match Self::open_file(path) {
            Ok(m) => Ok(Ok(m)),
            Err(e) if is_damage(&e) => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// Opens an existing mirror file for reading only, for the inspector: nothing is created,
    /// migrated or written, and the schema is checked as [`Mirror::open_file`] checks it
    /// (damage is an [`Error::Mirror`] that [`is_damage`] recognises). With `immutable`, SQLite
    /// takes no locks and creates no `-wal` or `-shm` file: only for a file that no process
    /// has open and whose `-wal` is absent or empty. Without it, a read-only connection may
    /// create those companions if they are missing.
    pub fn open_read_only(path: &Path, immutable: bool) -> Result<Mirror> {
        use rusqlite::OpenFlags;
        let ctx = |e| sql_error(format_args!("opening the mirror file {} read-only", path.display()), e);
        let uri = file_uri(path, immutable).ok_or_else(|| setup(format!("the path {} cannot be given to SQLite", path.display())))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        vfs::register().map_err(setup)?;
        let conn = rusqlite::Connection::open_with_flags_and_vfs(uri, flags, vfs::VFS_NAME).map_err(ctx)?;
        // A live engine's commits are short; a reader in WAL mode is not blocked by them.
        conn.busy_timeout(Duration::from_secs(2)).ctx("setting the busy timeout")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx("reading the schema version")?;
        match version {
            SCHEMA_VERSION => {
                let names = TABLES.map(|t| format!("'{t}'")).join(", ");
                let tables: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ({names})"), [], |r| r.get(0))
                    .ctx("reading the schema")?;
                if tables != TABLES.len() as i64 {
                    return Err(damaged("its tables are missing"));
                }
            }
            0 => return Err(damaged("the file is not a Memento mirror (it has no schema version)")),
            v if v > SCHEMA_VERSION => {
                return Err(Error::mirror(
                    MirrorErrorKind::NewerSchema,
                    format!("the mirror has schema version {v}, written by a newer version of Memento (this version reads version {SCHEMA_VERSION})"),
                ))
            }
            v => return Err(damaged(format_args!("its schema version is {v}, not {SCHEMA_VERSION}, so it must be rebuilt"))),
        }
        conn.set_prepared_statement_cache_capacity(16);
        Ok(Mirror { conn })
    }

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

    /// A mirror that answers nothing: an in-memory connection without the schema, so every
    /// read and write fails (with an error that is not damage). Held in place while a damaged
    /// mirror is replaced, so that a failed replacement cannot answer.
    pub fn unusable() -> Result<Mirror> {
        let conn = rusqlite::Connection::open_in_memory().ctx("opening an in-memory connection")?;
        Ok(Mirror { conn })
    }

    /// Opens a new mirror in memory (for tests and for stores without a directory).
    pub fn open_memory() -> Result<Mirror> {
        let mut conn = rusqlite::Connection::open_in_memory().ctx("opening an in-memory mirror")?;
        Self::init(&mut conn)?;
        Ok(Mirror { conn })
    }

    /// Settings and schema common to files and memory.
    fn init(conn: &mut rusqlite::Connection) -> Result<()> {
        // Look-ups bind lists of a few widths, and the index writes rows in several widths too.
        conn.set_prepared_statement_cache_capacity(128);
        conn.execute_batch("PRAGMA synchronous = NORMAL").ctx("setting synchronous = NORMAL")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).ctx("reading the schema version")?;
        match version {
            0 => {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting the schema transaction")?;
                let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).ctx("reading the schema")?;
                if objects != 0 {
                    return Err(damaged("the file is an SQLite database but not a Memento mirror"));
                }
                tx.execute_batch(SCHEMA).ctx("creating the schema")?;
                tx.commit().ctx("committing the schema")?;
            }
            SCHEMA_VERSION => {
                let names = TABLES.map(|t| format!("'{t}'")).join(", ");
                let tables: i64 = conn
                    .query_row(&format!("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ({names})"), [], |r| r.get(0))
                    .ctx("reading the schema")?;
                if tables != TABLES.len() as i64 {
                    return Err(damaged("its tables are missing"));
                }
            }
            v if v > SCHEMA_VERSION => {
                return Err(Error::mirror(
                    MirrorErrorKind::NewerSchema,
                    format!(
                        "the mirror has schema version {v}, written by a newer version of Memento \
                     (this version reads version {SCHEMA_VERSION})"
                    ),
                ))
            }
            // Derived state written by an older version (or nonsense): rebuilt, like damage.
            v => return Err(damaged(format_args!("its schema version is {v}, not {SCHEMA_VERSION}, so it must be rebuilt"))),
        }
        Ok(())
    }

    /// The header, or `None` for a mirror that was never [`reset`](Mirror::reset).
    pub fn header(&self) -> Result<Option<MirrorHeader>> {
        let row: Option<(Vec<u8>, i64)> = self
            .conn
            .prepare_cached("SELECT store_uuid, applied_lsn FROM meta WHERE one = 0")
            .and_then(|mut st| st.query_row([], |r| Ok((r.get(0)?, r.get(1)?))).optional())
            .ctx("reading the header")?;
        let Some((uuid, lsn)) = row else {
            return Ok(None);
        };
        let store_uuid: [u8; 16] = uuid.as_slice().try_into().map_err(|_| damaged("the store UUID in its header is not 16 bytes"))?;
        let applied_lsn = u64::try_from(lsn).map_err(|_| damaged("the applied LSN in its header is negative"))?;
        Ok(Some(MirrorHeader { store_uuid, applied_lsn }))
    }

    /// Drops every record and sets the header to `store_uuid` and
    /// `applied_lsn = 0`, in one transaction (done before a rebuild).
    pub fn reset(&mut self, store_uuid: [u8; 16]) -> Result<()> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting the reset transaction")?;
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
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).ctx("starting a transaction")?;
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
            let mut metadata_of = tx.prepare_cached(SQL_METADATA_OF).ctx("preparing a metadata lookup")?;
            let mut index = IndexWriter::default();
            for op in ops {
                match *op {
                    MirrorOp::Put { slot, id, text, metadata } => {
                        let s = slot_to_sql(slot)?;
                        put.execute(rusqlite::params![s, id, text, metadata])
                            .map_err(|e| sql_error(format_args!("could not insert the record {id:?} in slot {slot}"), e))?;
                        index.add(&tx, slot, s, metadata)?;
                    }
                    MirrorOp::Update { slot, text, metadata } => {
                        let s = slot_to_sql(slot)?;
                        let old: Option<Option<String>> = match metadata {
                            Some(_) => Some(
                                metadata_of
                                    .query_row([s], |r| r.get(0))
                                    .optional()
                                    .map_err(|e| sql_error(format_args!("could not read the metadata of slot {slot}"), e))?
                                    .ok_or_else(|| inconsistent(format!("no record is in slot {slot} to update")))?,
                            ),
                            None => None,
                        };
                        let n = update
                            .execute(rusqlite::params![s, text.is_some(), text.flatten(), metadata.is_some(), metadata.flatten()])
                            .map_err(|e| sql_error(format_args!("could not update the record in slot {slot}"), e))?;
                        if n != 1 {
                            return Err(inconsistent(format!("no record is in slot {slot} to update")));
                        }
                        if let (Some(old), Some(new)) = (old, metadata) {
                            index.remove(&tx, slot, s, old.as_deref())?;
                            index.add(&tx, slot, s, new)?;
                        }
                    }
                    MirrorOp::Delete { slot } => {
                        let s = slot_to_sql(slot)?;
                        let old: Option<Option<String>> = delete
                            .query_row([s], |r| r.get(0))
                            .optional()
                            .map_err(|e| sql_error(format_args!("could not delete the record in slot {slot}"), e))?;
                        let Some(old) = old else {
                            return Err(inconsistent(format!("no record is in slot {slot} to delete")));
                        };
                        index.remove(&tx, slot, s, old.as_deref())?;
                    }
                }
            }
            index.flush(&tx)?;
            tx.prepare_cached(SQL_SET_APPLIED_LSN).and_then(|mut st| st.execute([lsn_sql])).ctx("recording the applied LSN")?;
        }
        tx.commit().ctx("committing")?;
        Ok(true)
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

    /// Makes everything applied so far durable in the main SQLite file:
    /// `PRAGMA wal_checkpoint(TRUNCATE)`, which copies the WAL into the file,
    /// syncs it and empties the WAL. An error if SQLite reports the checkpoint
    /// as blocked (busy). A no-op for an in-memory mirror.
    pub fn checkpoint(&mut self) -> Result<()> {
        let (busy, log, done): (i64, i64, i64) =
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).ctx("checkpointing")?;
        if busy != 0 {
            return Err(Error::mirror(MirrorErrorKind::Sqlite, "the checkpoint could not finish because the database is busy"));
        }
        if log != done {
            return Err(Error::mirror(MirrorErrorKind::Sqlite, format!("the checkpoint copied {done} of the {log} frames of the write-ahead log")));
        }
        Ok(())
    }

    /// Runs `PRAGMA integrity_check`, then checks that the metadata index holds exactly the
    /// rows the records' metadata gives; anything else is damage.
    pub fn integrity_check(&self) -> Result<()> {
        let problems = self
            .conn
            .prepare("PRAGMA integrity_check(20)")
            .and_then(|mut st| st.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<String>>>())
            .ctx("checking integrity")?;
        if problems.len() != 1 || problems[0] != "ok" {
            return Err(damaged(format_args!("integrity_check reports: {}", problems.join("; "))));
        }
        self.check_index()
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

/// A `file:` URI for `path` (RFC 3986 percent-encoding of everything but unreserved bytes and
/// `/`), read-only, optionally immutable. `None` for a path that is not valid UTF-8 on
/// platforms where paths are not bytes.
fn file_uri(path: &Path, immutable: bool) -> Option<String> {
    let abs = std::path::absolute(path).ok()?;
    let bytes: Vec<u8> = {
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            abs.as_os_str().as_bytes().to_vec()
        }
        #[cfg(not(unix))]
        {
            abs.to_str()?.replace('\\', "/").into_bytes()
        }
    };
    let mut uri = String::from("file:");
    if !bytes.starts_with(b"/") {
        uri.push('/'); // a Windows drive letter: file:/C:/...
    }
    for b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?mode=ro");
    if immutable {
        uri.push_str("&immutable=1");
    }
    Some(uri)
}

/// The index rows of one record's metadata: each top-level key whose value a filter can match
/// (a string, a number or a boolean), with its [`IndexValue`]. The metadata is parsed as
/// `serde_json` parses it for [`Filter::matches`], so both see the same keys and numbers.
fn index_entries(slot: u64, metadata: &str) -> Result<Vec<(String, IndexValue)>> {
    let map: Map<String, Value> = serde_json::from_str(metadata).map_err(|e| inconsistent(format!("the metadata of slot {slot} is not a JSON object: {e}")))?;
    Ok(map.into_iter().filter_map(|(k, v)| index_value(&v).map(|iv| (k, iv))).collect())
}

/// How many rows one index insert statement writes at most.
const INSERT_ROWS: usize = 64;

/// Buffers the index rows that [`Mirror::apply`] adds, to write them sorted by the index's
/// key and many per statement: a batch of puts then walks the index in order, and SQLite
/// executes a few statements instead of one per row. Rows are removed at once (a removal
/// first writes the buffered rows of its slot, in case they are the ones to go).
#[derive(Default)]
struct IndexWriter {
    /// (field, value, slot).
    rows: Vec<(i64, SqlValue, i64)>,
    /// The slots in `rows`.
    slots: HashSet<i64>,
    /// Field ids by key, then by type, as far as this call has looked them up.
    fields: HashMap<String, [Option<i64>; 3]>,
}

impl IndexWriter {
    /// The id of the field (`key`, `ty`); if there is none, a new one when `create`, else `None`.
    fn field(&mut self, conn: &rusqlite::Connection, key: &str, ty: i64, create: bool) -> Result<Option<i64>> {
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
    fn add(&mut self, conn: &rusqlite::Connection, slot: u64, s: i64, metadata: Option<&str>) -> Result<()> {
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
    fn remove(&mut self, conn: &rusqlite::Connection, slot: u64, s: i64, metadata: Option<&str>) -> Result<()> {
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
    fn flush(&mut self, conn: &rusqlite::Connection) -> Result<()> {
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
fn read_slots(st: &mut rusqlite::CachedStatement<'_>, params: &[&dyn ToSql], out: &mut Vec<u64>) -> Result<()> {
    let mut rows = st.query(params).ctx("running a filter look-up")?;
    while let Some(r) = rows.next().ctx("running a filter look-up")? {
        out.push(slot_from_sql(r.get(0).ctx("reading a slot")?)?);
    }
    Ok(())
}

/// The `LIMIT` that reads one row more than `limit` (-1: no limit).
fn sql_limit(limit: Option<usize>) -> i64 {
    limit.and_then(|l| i64::try_from(l).ok()).map_or(-1, |l| l.saturating_add(1))
}

/// `Some(out)`, or `None` if it holds more than `limit` slots; sorted and deduplicated.
fn within(mut out: Vec<u64>, limit: Option<usize>) -> Option<Vec<u64>> {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::{json, Map, Value};
    use std::time::Instant;

    const UUID: [u8; 16] = *b"0123456789abcdef";

    fn fresh() -> Mirror {
        let mut m = Mirror::open_memory().unwrap();
        m.reset(UUID).unwrap();
        m
    }

    fn put<'a>(slot: u64, id: &'a str, text: Option<&'a str>, metadata: Option<&'a str>) -> MirrorOp<'a> {
        MirrorOp::Put { slot, id, text, metadata }
    }

    /// The kind and the message of a mirror error.
    fn mirror_reason(e: Error) -> (MirrorErrorKind, String) {
        match e {
            Error::Mirror { kind, .. } => (kind, e.to_string()),
            other => panic!("expected a mirror error, got {other:?}"),
        }
    }

    #[test]
    fn put_update_delete() {
        let mut m = fresh();
        assert!(m.apply(1, &[put(0, "a", Some("hello"), Some(r#"{"k":1}"#)), put(1, "b", None, None), put(7, "c", Some("x"), None)]).unwrap());
        assert_eq!(m.count().unwrap(), 3);
        assert_eq!(m.slot_of("a").unwrap(), Some(0));
        assert_eq!(m.slot_of("zz").unwrap(), None);
        assert_eq!(m.row_by_id("a").unwrap(), Some(MirrorRow { slot: 0, id: "a".into(), text: Some("hello".into()), metadata: Some(r#"{"k":1}"#.into()) }));

        // Update: leave, set, clear.
        m.apply(2, &[MirrorOp::Update { slot: 0, text: None, metadata: Some(Some(r#"{"k":2}"#)) }]).unwrap();
        let r = m.row_by_id("a").unwrap().unwrap();
        assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (Some("hello"), Some(r#"{"k":2}"#)));
        m.apply(3, &[MirrorOp::Update { slot: 0, text: Some(None), metadata: None }]).unwrap();
        let r = m.row_by_id("a").unwrap().unwrap();
        assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (None, Some(r#"{"k":2}"#)));
        m.apply(4, &[MirrorOp::Update { slot: 0, text: Some(Some("t")), metadata: Some(None) }]).unwrap();
        let r = m.row_by_id("a").unwrap().unwrap();
        assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (Some("t"), None));

        // Upsert: delete the old slot, put in a new one, in one LSN.
        m.apply(5, &[MirrorOp::Delete { slot: 1 }, put(9, "b", Some("new"), None)]).unwrap();
        assert_eq!(m.slot_of("b").unwrap(), Some(9));
        assert_eq!(m.all_slots().unwrap(), vec![0, 7, 9]);
        assert_eq!(m.slots_of(&["c", "nope", "a"]).unwrap(), vec![Some(7), None, Some(0)]);
        let rows = m.rows_by_slots(&[9, 1, 0, 9]).unwrap();
        assert_eq!(rows.iter().map(|r| r.as_ref().map(|r| r.id.as_str())).collect::<Vec<_>>(), vec![Some("b"), None, Some("a"), Some("b")]);
        assert_eq!(m.rows_by_slots(&[7]).unwrap()[0].as_ref().map(|r| r.id.as_str()), Some("c"));

        // Iteration in slot order.
        let first = m.rows_after(None, 2).unwrap();
        assert_eq!(first.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![0, 7]);
        let rest = m.rows_after(Some(7), 10).unwrap();
        assert_eq!(rest.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![9]);
        assert!(m.rows_after(Some(9), 10).unwrap().is_empty());
        assert!(m.rows_after(Some(u64::MAX), 10).unwrap().is_empty());
        assert!(m.rows_after(None, 0).unwrap().is_empty());

        m.apply(6, &[MirrorOp::Delete { slot: 0 }]).unwrap();
        assert_eq!(m.slot_of("a").unwrap(), None);
        assert_eq!(m.count().unwrap(), 2);
    }

    #[test]
    fn bad_ops_roll_back_the_whole_call() {
        let mut m = fresh();
        m.apply(1, &[put(0, "a", None, None)]).unwrap();
        let cases: Vec<Vec<MirrorOp<'_>>> = vec![
            vec![put(1, "b", None, None), put(2, "a", None, None)], // id taken
            vec![put(1, "b", None, None), put(0, "c", None, None)], // slot taken
            vec![put(1, "b", None, None), MirrorOp::Delete { slot: 5 }],
            vec![put(1, "b", None, None), MirrorOp::Update { slot: 5, text: None, metadata: None }],
            vec![put(1, "b", None, Some("[1, 2]"))],
            vec![put(1, "b", None, Some("{not json"))],
            vec![put(1, "b", None, None), put(u64::MAX, "c", None, None)],
        ];
        for ops in cases {
            let err = m.apply(2, &ops).unwrap_err();
            let (kind, reason) = mirror_reason(err);
            assert_ne!(kind, MirrorErrorKind::Damaged, "{reason}");
            assert_eq!(m.header().unwrap().unwrap().applied_lsn, 1, "{ops:?}");
            assert_eq!(m.all_slots().unwrap(), vec![0], "{ops:?}");
        }
        let (kind, reason) = mirror_reason(m.apply(2, &[put(1u64 << 63, "c", None, None)]).unwrap_err());
        assert!(reason.contains("larger than"), "{reason}");
        assert_eq!(kind, MirrorErrorKind::Internal, "{reason}");
        assert!(m.rows_by_slots(&[u64::MAX]).is_err());
        assert!(m.apply(u64::MAX, &[]).is_err());
        // The mirror is still usable.
        assert!(m.apply(2, &[put(1, "b", None, None)]).unwrap());
    }

    /// An SQLite failure that is not damage is of the kind `Sqlite`, with SQLite's error as its
    /// source (and its text in the message, as before).
    #[test]
    fn an_sqlite_failure_keeps_its_source() {
        let mut m = fresh();
        m.apply(1, &[put(0, "a", None, None)]).unwrap();
        let err = m.apply(2, &[put(1, "a", None, None)]).unwrap_err();
        assert!(matches!(err, Error::Mirror { kind: MirrorErrorKind::Sqlite, .. }), "{err:?}");
        let source = std::error::Error::source(&err).expect("the SQLite error is the source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
        assert!(err.to_string().contains(&source.to_string()), "{err}");
    }

    #[test]
    fn apply_is_idempotent_by_lsn() {
        let mut m = fresh();
        assert!(m.apply(5, &[put(0, "a", None, None)]).unwrap());
        // Replaying the same or an older LSN does nothing, even with ops that would fail.
        assert!(!m.apply(5, &[put(0, "a", None, None)]).unwrap());
        assert!(!m.apply(3, &[MirrorOp::Delete { slot: 42 }]).unwrap());
        assert_eq!(m.header().unwrap().unwrap().applied_lsn, 5);
        assert_eq!(m.count().unwrap(), 1);
        // An empty batch still advances the LSN.
        assert!(m.apply(6, &[]).unwrap());
        assert_eq!(m.header().unwrap().unwrap().applied_lsn, 6);
    }

    #[test]
    fn header_and_reset() {
        let mut m = Mirror::open_memory().unwrap();
        assert_eq!(m.header().unwrap(), None);
        let (_, reason) = mirror_reason(m.apply(1, &[]).unwrap_err());
        assert!(reason.contains("reset"), "{reason}");
        m.reset(UUID).unwrap();
        assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: UUID, applied_lsn: 0 }));
        m.apply(3, &[put(0, "a", None, None), put(1, "b", None, None)]).unwrap();
        assert_eq!(m.header().unwrap().unwrap().applied_lsn, 3);
        let other = [7u8; 16];
        m.reset(other).unwrap();
        assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: other, applied_lsn: 0 }));
        assert_eq!(m.count().unwrap(), 0);
        assert_eq!(m.slot_of("a").unwrap(), None);
        // The same ids and slots can be put again after a reset.
        assert!(m.apply(1, &[put(0, "a", None, None)]).unwrap());
    }

    #[test]
    fn file_persists_across_reopen_and_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        {
            let mut m = Mirror::open_file(&path).unwrap();
            assert_eq!(m.header().unwrap(), None);
            m.reset(UUID).unwrap();
            m.apply(1, &[put(0, "a", Some("doc"), Some(r#"{"x":"y"}"#))]).unwrap();
            m.apply(2, &[put(1, "b", None, None)]).unwrap();
            let mode: String = m.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = m.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
            assert_eq!(sync, 1); // NORMAL
            let wal = dir.path().join("mirror.sqlite-wal");
            assert!(std::fs::metadata(&wal).unwrap().len() > 0);
            m.checkpoint().unwrap();
            assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
            m.integrity_check().unwrap();
            m.apply(3, &[MirrorOp::Delete { slot: 1 }]).unwrap();
        }
        let m = Mirror::open_file(&path).unwrap();
        assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: UUID, applied_lsn: 3 }));
        assert_eq!(m.all_slots().unwrap(), vec![0]);
        assert_eq!(m.row_by_id("a").unwrap().unwrap().metadata.as_deref(), Some(r#"{"x":"y"}"#));
        let v: i64 = m.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        m.integrity_check().unwrap();
        assert!(matches!(Mirror::open_file_checked(&path), Ok(Ok(_))));
    }

    /// A file mirror reserves 8 bytes per page for the trailer, and a page whose bytes changed
    /// fails its check: damage, never an answer.
    #[test]
    fn pages_carry_trailers_and_a_flip_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        {
            let mut m = Mirror::open_file(&path).unwrap();
            m.reset(UUID).unwrap();
            let metas: Vec<String> = (0..300).map(|i| json!({ "i": i }).to_string()).collect();
            let ids: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
            let ops: Vec<MirrorOp<'_>> = (0..300).map(|i| put(i as u64, &ids[i], None, Some(&metas[i]))).collect();
            m.apply(1, &ops).unwrap();
            m.checkpoint().unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[20], 8, "reserved bytes per page");
        let page = (usize::from(bytes[16]) << 8) | usize::from(bytes[17]); // big-endian in SQLite's header
        for (i, p) in bytes.chunks(page).enumerate() {
            memento_format::mirror::check(p, i as u32 + 1).unwrap();
        }
        let at = bytes.len() * 3 / 4;
        bytes[at] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let m = Mirror::open_file(&path).unwrap();
        let f = Filter::parse(&json!({"i": {"$lt": 100}})).unwrap();
        let results = [m.filter_slots(&f).map(drop), m.integrity_check(), m.all_slots().map(drop)];
        assert!(results.iter().any(Result::is_err), "a flipped page was read without an error");
        for r in results {
            if let Err(e) = r {
                assert!(is_damage(&e), "{e}");
            }
        }
    }

    /// A VACUUM keeps the reserved bytes and the trailers. One that changes the page size is not
    /// supported (SQLite's copy writes the new file in chunks of the old page size, which the
    /// shim seals as pages of that size): it leaves pages that fail their check, which is damage
    /// (rebuilt by the engine), never a mirror that answers. The engine never changes it.
    #[test]
    fn vacuum_keeps_the_trailers_and_a_page_size_change_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        let slots_below_50 = |m: &Mirror| m.filter_slots(&Filter::parse(&json!({"i": {"$lt": 50}})).unwrap()).unwrap().len();
        {
            let mut m = Mirror::open_file(&path).unwrap();
            m.reset(UUID).unwrap();
            let metas: Vec<String> = (0..200).map(|i| json!({ "i": i }).to_string()).collect();
            let ids: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
            let ops: Vec<MirrorOp<'_>> = (0..200).map(|i| put(i as u64, &ids[i], Some("some text"), Some(&metas[i]))).collect();
            m.apply(1, &ops).unwrap();
            m.conn.execute_batch("VACUUM").unwrap();
            m.checkpoint().unwrap();
        }
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes[16], bytes[17], bytes[20]), (0x10, 0x00, 8), "page size 4096, 8 reserved bytes");
        for (i, p) in bytes.chunks(4096).enumerate() {
            memento_format::mirror::check(p, i as u32 + 1).unwrap();
        }
        {
            let m = Mirror::open_file(&path).unwrap();
            m.integrity_check().unwrap();
            assert_eq!(slots_below_50(&m), 50);
            let _ = m.conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 8192; VACUUM; PRAGMA journal_mode = WAL;");
        }
        match Mirror::open_file_checked(&path) {
            Ok(Err(e)) => assert!(is_damage(&e), "{e}"),
            Ok(Ok(m)) => {
                let e = m.integrity_check().unwrap_err();
                assert!(is_damage(&e), "{e}");
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// A mirror of schema version 2 (no trailers) is damage at open, so the engine rebuilds it.
    #[test]
    fn a_mirror_without_trailers_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(&SCHEMA.replace("user_version = 3", "user_version = 2")).unwrap();
        }
        match Mirror::open_file_checked(&path) {
            Ok(Err(e)) => assert!(is_damage(&e), "{e}"),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn in_memory_checkpoint_is_a_no_op() {
        let mut m = fresh();
        m.apply(1, &[put(0, "a", None, None)]).unwrap();
        m.checkpoint().unwrap();
        m.integrity_check().unwrap();
    }

    #[test]
    fn garbage_file_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        std::fs::write(&path, vec![0xABu8; 4096]).unwrap();
        match Mirror::open_file_checked(&path) {
            Ok(Err(e)) => {
                assert!(is_damage(&e), "{e}");
                println!("garbage file: {e}");
            }
            Ok(Ok(_)) => panic!("a garbage file opened as a mirror"),
            Err(e) => panic!("damage reported as another error: {e}"),
        }
        let err = Mirror::open_file(&path).unwrap_err();
        assert!(is_damage(&err), "{err}");
        assert!(err.to_string().starts_with("The SQLite mirror failed: the mirror database is damaged"), "{err}");
    }

    #[test]
    fn foreign_sqlite_file_is_damage_and_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("foreign.sqlite");
        {
            let c = rusqlite::Connection::open(&foreign).unwrap();
            c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
        }
        assert!(matches!(Mirror::open_file_checked(&foreign), Ok(Err(_))));

        let newer = dir.path().join("newer.sqlite");
        // Written through the mirror's VFS, as a newer version would (with page trailers).
        Mirror::open_file(&newer).unwrap().conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
        let err = Mirror::open_file(&newer).unwrap_err();
        assert!(!is_damage(&err), "{err}");
        assert!(matches!(err, Error::Mirror { kind: MirrorErrorKind::NewerSchema, source: None, .. }), "{err:?}");
        assert!(err.to_string().contains("newer version"), "{err}");
        assert!(Mirror::open_file_checked(&newer).is_err());
    }

    /// A mirror of schema version 1 (no metadata index) is reported for a rebuild, like damage.
    #[test]
    fn version_1_mirror_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE records (slot INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT, \
                     metadata TEXT CHECK (metadata IS NULL OR json_type(metadata) = 'object'));
                 CREATE TABLE meta (one INTEGER PRIMARY KEY CHECK (one = 0), store_uuid BLOB NOT NULL, applied_lsn INTEGER NOT NULL);
                 INSERT INTO meta VALUES (0, x'30313233343536373839616263646566', 3);
                 INSERT INTO records VALUES (0, 'a', NULL, '{\"k\":1}');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        match Mirror::open_file_checked(&path) {
            Ok(Err(e)) => {
                // Written without page trailers, it fails the first page check.
                assert!(is_damage(&e), "{e}");
                assert!(e.to_string().contains("checksum"), "{e}");
            }
            Ok(Ok(_)) => panic!("a version 1 mirror opened as current"),
            Err(e) => panic!("a version 1 mirror should be rebuilt, not refused: {e}"),
        }
    }

    /// A current mirror whose metadata index is missing is damage.
    #[test]
    fn missing_index_table_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        drop(Mirror::open_file(&path).unwrap());
        rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE field_values").unwrap();
        assert!(matches!(Mirror::open_file_checked(&path), Ok(Err(_))));
    }

    #[test]
    fn corrupted_pages_are_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mirror.sqlite");
        {
            let mut m = Mirror::open_file(&path).unwrap();
            m.reset(UUID).unwrap();
            let ids: Vec<String> = (0..3000).map(|i| format!("id-{i}")).collect();
            let ops: Vec<MirrorOp<'_>> = ids.iter().enumerate().map(|(i, id)| put(i as u64, id, Some("some text"), None)).collect();
            m.apply(1, &ops).unwrap();
            m.checkpoint().unwrap();
        }
        // Overwrite a page in the middle of the file (keeping the header intact).
        let mut bytes = std::fs::read(&path).unwrap();
        let page = 4096;
        assert!(bytes.len() > 8 * page);
        for b in &mut bytes[3 * page..5 * page] {
            *b = 0x5A;
        }
        std::fs::write(&path, &bytes).unwrap();
        let outcome = Mirror::open_file(&path).and_then(|m| {
            m.integrity_check()?;
            m.all_slots().map(|_| ())
        });
        let err = outcome.unwrap_err();
        assert!(is_damage(&err), "{err}");
    }

    #[test]
    fn slots_of_in_chunks() {
        let mut m = fresh();
        let ids: Vec<String> = (0..70_000).map(|i| format!("record-{i}")).collect();
        let ops: Vec<MirrorOp<'_>> = ids.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(i, id)| put(i as u64 * 2, id, None, None)).collect();
        m.apply(1, &ops).unwrap();
        let mut query: Vec<&str> = ids.iter().map(String::as_str).collect();
        query.push("record-1"); // a repeat
        query.push("absent");
        let t = Instant::now();
        let slots = m.slots_of(&query).unwrap();
        println!("slots_of with {} ids: {:?}", query.len(), t.elapsed());
        assert_eq!(slots.len(), query.len());
        for (i, slot) in slots.iter().take(70_000).enumerate() {
            let expected = if i % 3 != 0 { Some(i as u64 * 2) } else { None };
            assert_eq!(*slot, expected, "{i}");
        }
        assert_eq!(slots[70_000], Some(2));
        assert_eq!(slots[70_001], None);

        let wanted: Vec<u64> = (0..140_002).step_by(2).collect();
        let rows = m.rows_by_slots(&wanted).unwrap();
        assert_eq!(rows.len(), wanted.len());
        assert_eq!(rows.iter().filter(|r| r.is_some()).count(), ops.len());
        for (i, row) in rows.iter().enumerate().take(70_000) {
            assert_eq!(row.as_ref().map(|r| r.id.as_str()), if i % 3 != 0 { Some(ids[i].as_str()) } else { None });
        }
        for n in [0usize, 1, 2, 3, 7, 8, 9, 511, 512, 513, 1025] {
            let q: Vec<&str> = ids.iter().take(n).map(String::as_str).collect();
            let got = m.slots_of(&q).unwrap();
            let one_by_one: Vec<Option<u64>> = q.iter().map(|id| m.slot_of(id).unwrap()).collect();
            assert_eq!(got, one_by_one, "{n}");
        }
    }

    #[test]
    fn thousand_puts_timing() {
        let ids: Vec<String> = (0..1000).map(|i| format!("doc-{i:06}")).collect();
        let texts: Vec<String> = (0..1000).map(|i| format!("the quick brown fox {i}")).collect();
        let metas: Vec<String> = (0..1000).map(|i| format!(r#"{{"n":{i},"tag":"t{}","ok":true}}"#, i % 7)).collect();
        let ops: Vec<MirrorOp<'_>> = (0..1000).map(|i| put(i as u64, &ids[i], Some(&texts[i]), Some(&metas[i]))).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut on_disk = Mirror::open_file(&dir.path().join("m.sqlite")).unwrap();
        on_disk.reset(UUID).unwrap();
        for (label, mut m) in [("memory", fresh()), ("file", on_disk)] {
            // Warm up the statement cache with one batch, then time a fresh batch.
            m.apply(1, &ops[..1]).unwrap();
            m.apply(2, &[MirrorOp::Delete { slot: 0 }]).unwrap();
            let t = Instant::now();
            m.apply(3, &ops).unwrap();
            println!("apply with 1,000 puts ({label}): {:?}", t.elapsed());
            assert_eq!(m.count().unwrap(), 1000);
            let t = Instant::now();
            let f = Filter::parse(&json!({"tag": "t3", "n": {"$gte": 500}})).unwrap();
            let hits = m.filter_slots(&f).unwrap();
            println!("filter over 1,000 rows ({label}): {:?}, {} hits", t.elapsed(), hits.len());
            assert_eq!(hits.len(), (500..1000).filter(|i| i % 7 == 3).count());
        }
    }

    #[test]
    fn filter_slots_on_rows_with_awkward_keys() {
        let mut m = fresh();
        let metas = [
            json!({"a.b": 1, "a\"b": "q", "a\\b": true, "a b": 2.5, "ключ": "v", "😀": 0, "": "empty"}),
            json!({"a": {"b": 1}, "x": null, "l": [1, 2]}),
            json!({"a.b": "1", "ключ": "w"}),
        ];
        let texts: Vec<String> = metas.iter().map(Value::to_string).collect();
        let ids = ["r0", "r1", "r2"];
        let ops: Vec<MirrorOp<'_>> = (0..3).map(|i| put(i as u64, ids[i], Some("text"), Some(&texts[i]))).collect();
        m.apply(1, &ops).unwrap();
        let cases: Vec<(Value, Vec<u64>)> = vec![
            (json!({"a.b": 1}), vec![0]),
            (json!({"a.b": "1"}), vec![2]),
            (json!({"a\"b": "q"}), vec![0]),
            (json!({"a\\b": true}), vec![0]),
            (json!({"a b": {"$gt": 2}}), vec![0]),
            (json!({"ключ": {"$in": ["v", "w"]}}), vec![0, 2]),
            (json!({"😀": 0}), vec![0]),
            (json!({"": "empty"}), vec![0]),
            (json!({"a": 1}), vec![]),
            (json!({"x": {"$ne": 1}}), vec![0, 1, 2]),
            (json!({"l": {"$nin": [1]}}), vec![0, 1, 2]),
        ];
        for (filter, expected) in cases {
            let f = Filter::parse(&filter).unwrap();
            assert_eq!(m.filter_slots(&f).unwrap(), expected, "{filter}");
            let by_matches: Vec<u64> = (0..3u64).filter(|&i| f.matches(Some("text"), metas[i as usize].as_object())).collect();
            assert_eq!(by_matches, expected, "{filter}");
        }
    }

    /// Whether `filter_slots` selects the one record of a mirror holding `text` and `meta`,
    /// checked against `matches`.
    fn agrees_on_one(f: &Filter, text: Option<&str>, meta: Option<&Map<String, Value>>, what: &str) {
        let mut m = fresh();
        let md = meta.map(|m| Value::Object(m.clone()).to_string());
        m.apply(1, &[put(0, "only", text, md.as_deref())]).unwrap();
        let selected = m.filter_slots(f).unwrap() == vec![0];
        assert_eq!(selected, f.matches(text, meta), "{what}: {f:?} on {md:?}");
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn index_agrees_on_awkward_keys_and_values() {
        let keys = ["a.b", "a\"b", "a\\b", "a b", "é", "😀", "", "$x", "a\nb", "\\\"", "k\u{1f}"];
        for key in keys {
            let meta = obj(json!({ key: "v", "other": 1 }));
            for filter in
                [json!({ key: "v" }), json!({ key: {"$ne": "v"} }), json!({ key: {"$in": ["w", "v"]} }), json!({ key: {"$nin": ["v"]} }), json!({ key: 1 })]
            {
                // Keys starting with '$' cannot be filtered on; skip those.
                let Ok(f) = Filter::parse(&filter) else {
                    continue;
                };
                agrees_on_one(&f, None, Some(&meta), key);
                agrees_on_one(&f, None, None, key);
            }
        }
        // Strings with NUL and non-ASCII, in values and documents.
        let meta = obj(json!({"s": "x\u{0}y", "t": "ü"}));
        for filter in [
            json!({"s": "x\u{0}y"}),
            json!({"s": "x"}),
            json!({"s": {"$lt": "x\u{0}z"}}),
            json!({"s": {"$gt": "x"}}),
            json!({"t": {"$gt": "z"}}),
            json!({"$contains": "\u{0}c"}),
            json!({"$contains": "\u{0}x"}),
            json!({"$not_contains": "b\u{0}"}),
        ] {
            agrees_on_one(&Filter::parse(&filter).unwrap(), Some("ab\u{0}cd"), Some(&meta), "NUL");
        }
        // Numbers at the edges.
        let numbers = [
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(9_007_199_254_740_993_i64),
            json!(9_007_199_254_740_992.0),
            json!(9.223372036854776e18),
            json!(0),
            json!(0.1),
            json!(-0.0),
            json!(1e300),
        ];
        for value in &numbers {
            let meta = obj(json!({ "n": value }));
            for op in ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"] {
                for operand in &numbers {
                    // An integer operand beyond i64 is refused (crate::limits); as a stored
                    // value (written before that rule) it is still compared.
                    let Ok(f) = Filter::parse(&json!({"n": { op: operand }})) else {
                        assert!(operand.is_u64() && !operand.is_i64(), "{operand}");
                        continue;
                    };
                    agrees_on_one(&f, None, Some(&meta), "numbers");
                }
            }
        }
        // Number spellings: 1 == 1.0 == 1e0, and a big integer written as a float.
        for text in [r#"{"n":1}"#, r#"{"n":1.0}"#, r#"{"n":1e0}"#, r#"{"n":10e-1}"#, r#"{"n":18446744073709551615}"#, r#"{"n":-9223372036854775809}"#] {
            let meta: Map<String, Value> = serde_json::from_str(text).unwrap();
            for filter in
                [json!({"n": 1}), json!({"n": 1.0}), json!({"n": {"$gte": 1, "$lte": 1}}), json!({"n": 1.8446744073709552e19}), json!({"n": {"$lt": i64::MIN}})]
            {
                let f = Filter::parse(&filter).unwrap();
                let mut m = fresh();
                m.apply(1, &[put(0, "only", None, Some(text))]).unwrap();
                assert_eq!(m.filter_slots(&f).unwrap() == vec![0], f.matches(None, Some(&meta)), "{filter} on {text}");
            }
        }
        // Non-scalar metadata values are never matched, and are "not equal" to everything.
        for value in [json!(null), json!([1]), json!({"x": 1}), json!(true), json!(false), json!([]), json!({})] {
            let meta = obj(json!({ "k": value }));
            for filter in [
                json!({"k": 1}),
                json!({"k": {"$ne": 1}}),
                json!({"k": {"$in": [1, "1", true]}}),
                json!({"k": {"$nin": [false]}}),
                json!({"k": true}),
                json!({"k": {"$ne": false}}),
                json!({"k": {"$gte": 0}}),
                json!({"k": {"$lt": "z"}}),
            ] {
                agrees_on_one(&Filter::parse(&filter).unwrap(), None, Some(&meta), "non-scalar");
            }
        }
    }

    /// Unlike SQLite's JSON path lookup, the index keeps a key holding U+0000 whole: the key
    /// "a\u0000" is not found under "a".
    #[test]
    fn a_key_with_nul_is_not_found_under_its_prefix() {
        let meta = obj(json!({"a\u{0}": 1, "b\u{0}c": 2}));
        for filter in [json!({"a": 1}), json!({"a": {"$ne": 1}}), json!({"b": 2}), json!({"b\u{1}c": 2})] {
            agrees_on_one(&Filter::parse(&filter).unwrap(), None, Some(&meta), "NUL key");
        }
    }

    #[test]
    fn wide_filters() {
        let mut m = fresh();
        m.apply(1, &[put(0, "a", None, Some(r#"{"k2999":2999,"k":7}"#)), put(1, "b", None, Some(r#"{"k":3000}"#))]).unwrap();
        let many: Vec<Value> = (0..3000).map(|i| json!({ format!("k{i}"): i })).collect();
        assert_eq!(m.filter_slots(&Filter::parse(&json!({"$or": many})).unwrap()).unwrap(), vec![0]);
        let and: Vec<Value> = (0..3000).map(|i| json!({ "k": {"$ne": i} })).collect();
        assert_eq!(m.filter_slots(&Filter::parse(&json!({"$and": and})).unwrap()).unwrap(), vec![1]);
        let values: Vec<Value> = (0..4000).map(|i| if i % 3 == 2 { json!(format!("{i}")) } else { json!(i) }).collect();
        assert_eq!(m.filter_slots(&Filter::parse(&json!({"k": {"$in": values}})).unwrap()).unwrap(), vec![0, 1]);
    }

    /// The index follows puts, updates (of text only, of metadata, to and from none),
    /// deletes and upserts, and stays equal to what the records' metadata gives.
    #[test]
    fn index_follows_updates_and_deletes() {
        let mut m = fresh();
        let slots = |m: &Mirror, f: Value| m.filter_slots(&Filter::parse(&f).unwrap()).unwrap();
        m.apply(1, &[put(0, "a", Some("t"), Some(r#"{"k":1,"s":"x"}"#)), put(1, "b", None, Some(r#"{"k":2}"#)), put(2, "c", None, None)]).unwrap();
        assert_eq!(slots(&m, json!({"k": {"$gte": 1}})), vec![0, 1]);
        m.apply(2, &[MirrorOp::Update { slot: 0, text: Some(None), metadata: None }]).unwrap();
        assert_eq!(slots(&m, json!({"k": 1})), vec![0]);
        m.apply(3, &[MirrorOp::Update { slot: 0, text: None, metadata: Some(Some(r#"{"k":3}"#)) }]).unwrap();
        assert_eq!(slots(&m, json!({"k": 1})), Vec::<u64>::new());
        assert_eq!(slots(&m, json!({"s": "x"})), Vec::<u64>::new());
        assert_eq!(slots(&m, json!({"k": 3})), vec![0]);
        m.apply(
            4,
            &[MirrorOp::Update { slot: 1, text: None, metadata: Some(None) }, MirrorOp::Update { slot: 2, text: None, metadata: Some(Some(r#"{"k":2}"#)) }],
        )
        .unwrap();
        assert_eq!(slots(&m, json!({"k": 2})), vec![2]);
        assert_eq!(slots(&m, json!({"k": {"$ne": 2}})), vec![0, 1]);
        m.integrity_check().unwrap();
        // An upsert: the old slot's rows go, the new slot's come.
        m.apply(5, &[MirrorOp::Delete { slot: 2 }, put(3, "c", None, Some(r#"{"k":2,"z":true}"#))]).unwrap();
        assert_eq!(slots(&m, json!({"k": 2})), vec![3]);
        m.apply(6, &[MirrorOp::Delete { slot: 0 }]).unwrap();
        assert_eq!(slots(&m, json!({"k": {"$gt": 0}})), vec![3]);
        m.integrity_check().unwrap();
        let rows: i64 = m.conn.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 2);
        // A failed call leaves the index as it was.
        assert!(m.apply(7, &[MirrorOp::Delete { slot: 3 }, MirrorOp::Delete { slot: 3 }]).is_err());
        assert_eq!(slots(&m, json!({"k": 2})), vec![3]);
        m.integrity_check().unwrap();
        m.reset(UUID).unwrap();
        let rows: i64 = m.conn.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 0);
        let fields: i64 = m.conn.query_row("SELECT count(*) FROM fields", [], |r| r.get(0)).unwrap();
        assert_eq!(fields, 0);
    }

    #[test]
    fn integrity_check_notices_an_index_that_disagrees() {
        for tamper in [
            "DELETE FROM field_values WHERE slot = 1",
            "INSERT INTO field_values VALUES ((SELECT id FROM fields WHERE key = 'k'), 5, 9)",
            "UPDATE field_values SET value = 3 WHERE slot = 0 AND value = 1",
            "UPDATE records SET metadata = '{\"k\":1,\"new\":1}' WHERE slot = 0",
            "UPDATE fields SET key = 'j' WHERE key = 'k'",
        ] {
            let mut m = fresh();
            m.apply(1, &[put(0, "a", None, Some(r#"{"k":1,"s":"x"}"#)), put(1, "b", None, Some(r#"{"k":2}"#))]).unwrap();
            m.integrity_check().unwrap();
            m.conn.execute_batch(tamper).unwrap();
            let err = m.integrity_check().unwrap_err();
            assert!(is_damage(&err), "{tamper}: {err}");
        }
    }

    /// Every look-up is a search of the index's key, never a scan.
    #[test]
    fn look_ups_search_the_index() {
        let m = fresh();
        for sql in [
            format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value = ?3"),
            format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value IN (?, ?, ?, ?, ?, ?, ?, ?)"),
            format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value > ? AND value <= ?"),
            format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value >= ?"),
            format!("SELECT 1 FROM field_values WHERE field = {SQL_FIELD} AND value = ?3 AND slot = ?4"),
            SQL_INDEX_DELETE.to_owned(),
        ] {
            let mut st = m.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![SqlValue::Null; st.parameter_count()];
            let plan: Vec<String> = st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
            let plan = plan.join("; ");
            assert!(plan.contains("SEARCH field_values USING PRIMARY KEY (field=? AND value"), "{sql}: {plan}");
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
        }
    }

    /// An AND whose later conditions are tested on the candidates' records still removes what
    /// an earlier negation excluded, and merges bounds that tie.
    #[test]
    fn and_paths() {
        let mut m = fresh();
        let metas: Vec<String> = (0..40).map(|i| json!({"g": i % 4, "n": i, "s": format!("s{}", i % 3)}).to_string()).collect();
        let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
        let texts: Vec<&str> = (0..40).map(|i| if i % 2 == 0 { "even" } else { "odd" }).collect();
        let ops: Vec<MirrorOp<'_>> = (0..40).map(|i| put(i as u64, &ids[i], Some(texts[i]), Some(&metas[i]))).collect();
        m.apply(1, &ops).unwrap();
        let records: Vec<Map<String, Value>> = metas.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
        for filter in [
            json!({"g": 0, "n": {"$ne": 8}, "$or": [{"s": "s0"}, {"s": "s1"}]}),
            json!({"g": 0, "n": {"$nin": [8, 12]}, "$contains": "ev"}),
            json!({"g": 0, "n": {"$ne": 8}, "$not_contains": "odd"}),
            json!({"n": {"$gt": 10, "$gte": 10, "$lt": 20, "$lte": 20.0}}),
            json!({"n": {"$gte": 10, "$gt": 10.0, "$lte": 20, "$lt": 20}}),
            json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$gt": 9.5}}, {"n": {"$lt": 12}}, {"n": {"$lte": 12}}]}),
            json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$lt": 10}}]}),
            // Ties between an inclusive bound and a later exclusive one (in one object, the
            // keys come sorted, so "$gt" before "$gte").
            json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$gt": 10.0}}, {"n": {"$lte": 20}}, {"n": {"$lt": 20}}]}),
            json!({"$and": [{"n": {"$gte": 10}}, {"s": {"$gte": "s1"}}, {"s": {"$lt": "s2"}}]}),
        ] {
            let f = Filter::parse(&filter).unwrap();
            let expected: Vec<u64> = (0..40u64).filter(|&i| f.matches(Some(texts[i as usize]), Some(&records[i as usize]))).collect();
            assert_eq!(select_all_ways(&m, &f), expected, "{filter}");
        }
    }

    /// `filter_slots`, after checking that every way of evaluating the filter agrees: the
    /// usual one, testing every condition it can on the records (ratio 0), and never doing so.
    fn select_all_ways(m: &Mirror, f: &Filter) -> Vec<u64> {
        let got = m.filter_slots(f).unwrap();
        for ratio in [0, 1, u64::MAX] {
            assert_eq!(f.select_with_ratio(m, ratio).unwrap(), got, "ratio {ratio}: {f:?}");
        }
        got
    }

    mod proptests {
        use super::*;
        use proptest::prelude::*;

        const KEYS: &[&str] = &["a", "b", "c.d", "q\"k", "é"];
        const STRINGS: &[&str] = &["", "a", "b", "ab", "B", "é", "a\u{0}", "10", "true", "q\"", "a\\b", "😀", "ü"];
        const TEXTS: &[&str] = &["hello world", "Hello", "a\u{0}b", "", "wörld"];
        const NEEDLES: &[&str] = &["hello", "Hello", "o", "\u{0}", "ö", "xyz"];

        fn number() -> impl Strategy<Value = Value> {
            prop_oneof![
                (-3i64..4).prop_map(Value::from),
                prop::sample::select(vec![-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 1e300, 9_007_199_254_740_992.0, 9.223372036854776e18, -9.223372036854776e18])
                    .prop_map(Value::from),
                prop::sample::select(vec![i64::MAX, i64::MIN, 9_007_199_254_740_993]).prop_map(Value::from),
                Just(Value::from(u64::MAX)),
            ]
        }

        fn string() -> impl Strategy<Value = Value> {
            prop::sample::select(STRINGS).prop_map(Value::from)
        }

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![string(), number(), any::<bool>().prop_map(Value::from)]
        }

        fn metadata() -> impl Strategy<Value = Option<Map<String, Value>>> {
            let value = prop_oneof![
                8 => scalar(),
                1 => Just(Value::Null),
                1 => prop_oneof![Just(json!([1])), Just(json!([])), Just(json!({"a": 1})), Just(json!({}))],
            ];
            prop::option::weighted(
                0.85,
                prop::collection::btree_map(prop::sample::select(KEYS), value, 0..4)
                    .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()),
            )
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![9 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => Just("zz".to_owned())]
        }

        fn leaf() -> impl Strategy<Value = Value> {
            let ordered = prop_oneof![number(), string()];
            prop_oneof![
                (key(), scalar()).prop_map(|(k, v)| json!({ k: v })),
                (key(), prop::sample::select(vec!["$eq", "$ne"]), scalar()).prop_map(|(k, op, v)| json!({ k: { op: v } })),
                (key(), prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]), ordered.clone()).prop_map(|(k, op, v)| json!({ k: { op: v } })),
                // Two bounds on one key, as a range.
                (key(), prop::sample::select(vec!["$gt", "$gte"]), ordered.clone(), prop::sample::select(vec!["$lt", "$lte"]), ordered)
                    .prop_map(|(k, lo, a, hi, b)| json!({ k: { lo: a, hi: b } })),
                // Several bounds on one key from a few values, so that bounds often tie (1 == 1.0).
                (
                    key(),
                    prop::collection::vec(
                        (
                            prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]),
                            prop::sample::select(vec![json!(1), json!(1.0), json!(2), json!("a"), json!("b")])
                        ),
                        1..4
                    )
                )
                    .prop_map(|(k, bounds)| json!({ k: Value::Object(bounds.into_iter().map(|(op, v)| (op.to_owned(), v)).collect()) })),
                (key(), prop::sample::select(vec!["$in", "$nin"]), prop::collection::vec(scalar(), 1..4)).prop_map(|(k, op, v)| json!({ k: { op: v } })),
                (prop::sample::select(vec!["$contains", "$not_contains"]), prop::sample::select(NEEDLES)).prop_map(|(op, n)| json!({ op: n })),
                Just(json!({})),
            ]
        }

        fn filter() -> impl Strategy<Value = Value> {
            leaf().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({ "$and": v })),
                    prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({ "$or": v })),
                    // Implicit AND: merge the entries of several filters into one object.
                    prop::collection::vec(inner, 1..3).prop_map(|v| {
                        let mut merged = Map::new();
                        for f in v {
                            if let Value::Object(m) = f {
                                merged.extend(m);
                            }
                        }
                        Value::Object(merged)
                    }),
                ]
            })
        }

        type Record = (Option<&'static str>, Option<Map<String, Value>>);

        fn records() -> impl Strategy<Value = Vec<Record>> {
            prop::collection::vec((prop::option::of(prop::sample::select(TEXTS)), metadata()), 0..12)
        }

        /// A change to the record at some position among the live ones.
        #[derive(Clone, Debug)]
        enum Change {
            Delete,
            Text(Option<&'static str>),
            Metadata(Option<Map<String, Value>>),
            Upsert(Record),
        }

        fn changes() -> impl Strategy<Value = Vec<(usize, Change)>> {
            let change = prop_oneof![
                Just(Change::Delete),
                prop::option::of(prop::sample::select(TEXTS)).prop_map(Change::Text),
                metadata().prop_map(Change::Metadata),
                (prop::option::of(prop::sample::select(TEXTS)), metadata()).prop_map(Change::Upsert),
            ];
            prop::collection::vec((any::<usize>(), change), 0..6)
        }

        /// A [`MirrorOp`] that owns its strings.
        enum Owned {
            Put(u64, String, Option<&'static str>, Option<String>),
            Update(u64, Option<Option<&'static str>>, Option<Option<String>>),
            Delete(u64),
        }

        impl Owned {
            fn op(&self) -> MirrorOp<'_> {
                match self {
                    Owned::Put(slot, id, text, md) => put(*slot, id, *text, md.as_deref()),
                    Owned::Update(slot, text, md) => MirrorOp::Update { slot: *slot, text: *text, metadata: md.as_ref().map(|m| m.as_deref()) },
                    Owned::Delete(slot) => MirrorOp::Delete { slot: *slot },
                }
            }
        }

        /// A live record of the model: slot, id, text, metadata.
        type Live = (u64, String, Option<&'static str>, Option<Map<String, Value>>);

        fn json_text(md: &Option<Map<String, Value>>) -> Option<String> {
            md.as_ref().map(|md| Value::Object(md.clone()).to_string())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

            /// Any key (without NUL, not starting with '$') is found by itself and only by it.
            #[test]
            fn keys_find_exactly_themselves(key in "[^\u{0}$][^\u{0}]{0,6}|", other in "[^\u{0}]{0,6}", value in any::<i64>()) {
                let mut m = fresh();
                let metas = [json!({ key.clone(): value }), json!({ other.clone(): value }), json!({ other.clone(): value, key.clone(): value })];
                let texts: Vec<String> = metas.iter().map(Value::to_string).collect();
                let ops: Vec<MirrorOp<'_>> = (0..3).map(|i| put(i as u64, ["a", "b", "c"][i], None, Some(&texts[i]))).collect();
                m.apply(1, &ops).unwrap();
                let f = Filter::parse(&json!({ key.clone(): value })).unwrap();
                let expected: Vec<u64> = (0..3u64).filter(|&i| f.matches(None, metas[i as usize].as_object())).collect();
                prop_assert!(expected.contains(&0));
                prop_assert_eq!(select_all_ways(&m, &f), expected);
            }

            /// The index-based evaluation selects exactly the records `Filter::matches` selects,
            /// after puts, updates, deletes and upserts, applied in one call or one per LSN.
            #[test]
            fn index_agrees_with_matches(
                recs in records(),
                changes in changes(),
                one_call in any::<bool>(),
                filters in prop::collection::vec(filter(), 1..4),
            ) {
                let mut m = fresh();
                // The model: (slot, id, text, metadata) of the live records.
                let mut live: Vec<Live> = Vec::new();
                let mut ops: Vec<Owned> = Vec::new();
                for (i, (text, md)) in recs.into_iter().enumerate() {
                    let slot = i as u64 * 3;
                    ops.push(Owned::Put(slot, format!("id{i}"), text, json_text(&md)));
                    live.push((slot, format!("id{i}"), text, md));
                }
                let mut next_slot = live.len() as u64 * 3;
                for (pos, change) in changes {
                    if live.is_empty() {
                        break;
                    }
                    let at = pos % live.len();
                    let slot = live[at].0;
                    match change {
                        Change::Delete => {
                            ops.push(Owned::Delete(slot));
                            live.remove(at);
                        }
                        Change::Text(t) => {
                            ops.push(Owned::Update(slot, Some(t), None));
                            live[at].2 = t;
                        }
                        Change::Metadata(md) => {
                            ops.push(Owned::Update(slot, None, Some(json_text(&md))));
                            live[at].3 = md;
                        }
                        Change::Upsert((t, md)) => {
                            let id = live[at].1.clone();
                            ops.push(Owned::Delete(slot));
                            ops.push(Owned::Put(next_slot, id.clone(), t, json_text(&md)));
                            live[at] = (next_slot, id, t, md);
                            next_slot += 1;
                        }
                    }
                }
                if one_call {
                    let batch: Vec<MirrorOp<'_>> = ops.iter().map(Owned::op).collect();
                    m.apply(1, &batch).unwrap();
                } else {
                    for (lsn, op) in ops.iter().enumerate() {
                        m.apply(lsn as u64 + 1, &[op.op()]).unwrap();
                    }
                }
                m.integrity_check().unwrap();
                for fv in filters {
                    // Operands beyond i64 are refused (crate::limits); stored ones are kept.
                    let f = match Filter::parse(&fv) {
                        Ok(f) => f,
                        Err(e) if e.to_string().contains("64-bit") => continue,
                        Err(e) => panic!("{fv}: {e}"),
                    };
                    let mut expected: Vec<u64> = live.iter().filter(|(_, _, text, md)| f.matches(*text, md.as_ref())).map(|r| r.0).collect();
                    expected.sort_unstable();
                    let got = select_all_ways(&m, &f);
                    prop_assert_eq!(got, expected, "filter {}", fv);
                }
            }
        }
    }
}
