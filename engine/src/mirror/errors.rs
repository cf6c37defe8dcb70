//! The mirror's errors: every SQLite failure becomes an [`Error::Mirror`] of a kind, damage
//! told apart from the rest; and slots and LSNs, `u64` in the engine, `i64` in SQLite.

use std::fmt::Display;

use rusqlite::ErrorCode;

use crate::error::{Error, MirrorErrorKind, Result};

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
pub(super) fn damaged(what: impl Display) -> Error {
    Error::mirror(MirrorErrorKind::Damaged, what.to_string())
}

/// [`MirrorErrorKind::Inconsistent`].
pub(crate) fn inconsistent(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Inconsistent, what)
}

/// [`MirrorErrorKind::Internal`].
pub(super) fn internal(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Internal, what)
}

/// [`MirrorErrorKind::Setup`].
pub(super) fn setup(what: impl Into<String>) -> Error {
    Error::mirror(MirrorErrorKind::Setup, what)
}

/// Maps an SQLite error to [`Error::Mirror`], saying what was being done: damage if SQLite
/// reports corruption (see [`is_corruption`]), else [`MirrorErrorKind::Sqlite`]; the SQLite
/// error is the source either way.
pub(super) fn sql_error(context: impl Display, err: rusqlite::Error) -> Error {
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
pub(super) trait Context<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| sql_error(context, e))
    }
}

pub(super) fn slot_to_sql(slot: u64) -> Result<i64> {
    i64::try_from(slot).map_err(|_| internal(format!("the slot {slot} is larger than the largest slot the mirror stores ({})", i64::MAX)))
}

pub(super) fn slot_from_sql(slot: i64) -> Result<u64> {
    u64::try_from(slot).map_err(|_| damaged(format_args!("it holds the negative slot {slot}")))
}
