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
//! Schema (version 4, kept in `PRAGMA user_version`; version 3 had no full-text index,
//! version 2 no page trailers, see [`vfs`] and FORMAT.md §6.1; version 1 had no `fields` and
//! `field_values`):
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
//! -- The full-text index of the texts (FTS5, external content: it holds no copy of the text).
//! CREATE VIRTUAL TABLE records_fts USING fts5(text, content = 'records', content_rowid = 'slot',
//!                                             tokenize = 'porter unicode61 remove_diacritics 2');
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
//! The full-text index (see [`keyword`]) is written by [`Mirror::apply`] in the same transaction:
//! a put adds the record's text, a delete removes it, a text update does both (FTS5 removes an
//! entry given the text it was made from, which `apply` reads from `records` first). A record
//! without text has no entry. [`Mirror::integrity_check`] runs FTS5's own check of the index
//! against the texts. [`Mirror::keyword_matches`] answers keyword searches, by BM25.
//!
//! Slots are `u64` in the engine and `INTEGER` (i64) in SQLite: a slot above
//! `i64::MAX` is refused with an [`Error::Mirror`] ([`MirrorErrorKind::Internal`]).
//! The same holds for LSNs.

use std::path::Path;
use std::time::Duration;

use rusqlite::OptionalExtension;

use crate::error::{Error, MirrorErrorKind, Result};

#[allow(unsafe_code, reason = "an SQLite VFS shim: C callbacks over raw pointers, each unsafe block justified by a SAFETY comment")]
pub mod vfs;

mod errors;
mod index;
mod integrity;
mod keyword;
#[cfg(test)]
mod keyword_tests;
mod read;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use errors::inconsistent;
pub use errors::is_damage;
use errors::{damaged, setup, sql_error, Context};
pub(crate) use keyword::text_matches;
pub use keyword::{fts_all_query, fts_query, KeywordMatch, STOP_WORDS};

/// The schema version this code writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 4;

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
PRAGMA user_version = 4;
";

/// The tables of a current mirror.
const TABLES: [&str; 5] = ["records", "meta", "fields", "field_values", "records_fts"];

const SQL_PUT: &str = "INSERT INTO records (slot, id, text, metadata) VALUES (?1, ?2, ?3, ?4)";
const SQL_UPDATE: &str = "UPDATE records SET \
     text = CASE WHEN ?2 THEN ?3 ELSE text END, \
     metadata = CASE WHEN ?4 THEN ?5 ELSE metadata END \
     WHERE slot = ?1";
const SQL_DELETE: &str = "DELETE FROM records WHERE slot = ?1 RETURNING metadata, text";
const SQL_OLD_OF: &str = "SELECT metadata, text FROM records WHERE slot = ?1";
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

impl Mirror {
    /// Opens the mirror file at `path`, creating the file and the schema if
    /// they are missing. Damage (see [`is_damage`]) is an error like any
    /// other; use [`Mirror::open_file_checked`] to get it as a value. A file
    /// written by a newer schema version is an [`Error::Mirror`] that is not
    /// damage.
    pub fn open_file(path: &Path) -> Result<Mirror> {
        vfs::register().map_err(setup)?;
        // Created with the store's file mode (FORMAT.md §4.4), not SQLite's world-readable
        // default; SQLite gives its `-wal` and `-shm` the database file's mode.
        crate::storage::prepare_file(path).map_err(|e| Error::io(format!("creating the mirror file {}", path.display()), e))?;
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
                let tx = write::begin_write(conn, "starting the schema transaction")?;
                let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0)).ctx("reading the schema")?;
                if objects != 0 {
                    return Err(damaged("the file is an SQLite database but not a Memento mirror"));
                }
                tx.execute_batch(SCHEMA).ctx("creating the schema")?;
                tx.execute_batch(&keyword::fts_schema()).ctx("creating the full-text index")?;
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
