//! Read-only inspection of a store, without trusting it: what `memento-inspect` shows.
//!
//! An [`Inspector`] opens a store directory without taking its lock, without running recovery
//! and without writing anything (files are opened read-only and read with positioned reads,
//! never mapped, so a truncated file is a finding rather than a `SIGBUS`). Every structure is
//! decoded by the same codecs the engine uses (`memento-format`), and the WAL is judged by the
//! engine's own recovery scan, so a verdict here is the engine's verdict at its next open.
//!
//! - [`Inspector::superblocks`]: both superblock copies, field by field, which one is current.
//! - [`Inspector::pages`]: every page unit of the vector file's checkpoint.
//! - [`Inspector::wal`]: the WAL's header, records, transactions and its tail.
//! - [`Inspector::verify`]: every checksum and cross-check, as a list of [`Finding`]s.
//! - [`Inspector::dump`]: one record, from the log (the mirror is only compared).
//! - [`rebuild_mirror`]: the one repair. It takes the store's lock and rebuilds the SQLite
//!   mirror through [`crate::Engine`], then verifies.
//!
//! It works while another process has the store open: reads see a moment of a changing store
//! (a checkpoint that lands in the middle of a read is detected and the read retried), and the
//! mirror is read through SQLite's own locking, in one read transaction.
//!
//! # Findings
//!
//! A [`Finding`] has a [`Severity`]: `error` (the store is damaged: the engine refuses to open
//! it, would return wrong or missing data, or has lost redundancy) or `warning` (a normal
//! artefact of a crash or of a live store, which the engine repairs by itself at its next
//! open). Its `kind` is one of these stable strings:
//!
//! | kind | severity | what |
//! |---|---|---|
//! | `store.leftover` | warning | a `*.new` file left by an interrupted write (removed at open) |
//! | `store.changed` | warning | the store kept changing while it was read (a live store) |
//! | `vec.missing` | error | there is no vector file |
//! | `vec.truncated` | error | the vector file is shorter than its checkpoint's pages |
//! | `vec.live_count` | error | the superblock's live count is not the pages' live records |
//! | `vec.next_slot` | error | a page holds a slot at or past the superblock's `next_slot` |
//! | `vec.missing_vector` | error | a live record has no vector |
//! | `superblock.checksum` | error | a superblock copy fails its CRC (or is zeroed after its first use) |
//! | `superblock.invalid` | error | a superblock copy is missing, has a bad magic or an impossible field |
//! | `superblock.none_valid` | error | neither copy is valid: the store cannot be opened |
//! | `superblock.version` | error | the store needs a newer reader |
//! | `superblock.mismatch` | error | the two valid copies disagree on the store's identity |
//! | `directory.invalid` | error | the directory page does not decode or lists impossible pages |
//! | `page.checksum` | error | a page fails its CRC |
//! | `page.header` | error | a page's header does not decode (magic, type, flags, span) |
//! | `page.misplaced` | error | a page's number or span is not where the directory puts it |
//! | `page.body` | error | a page's body does not decode (counts, slot order, entries) |
//! | `page.type` | error | a page is not of the type, or first slot, its directory entry says |
//! | `page.unreferenced` | warning | a page unit inside the checkpoint that no directory lists |
//! | `quant.missing` | error | a vector has no int8 copy |
//! | `quant.extra` | error | an int8 copy has no vector |
//! | `quant.mismatch` | error | an int8 copy is not the quantization of its vector |
//! | `wal.missing` | error | there is no WAL (commits after the checkpoint may be lost) |
//! | `wal.header` | error | the WAL header does not decode, or is of another store or version |
//! | `wal.generation` | error | the WAL is not the generation the checkpoint expects |
//! | `wal.stale_generation` | warning | the WAL precedes the last checkpoint (a crash during it; discarded at open) |
//! | `wal.torn_tail` | warning | bytes after the last complete transaction (dropped at open) |
//! | `wal.damaged` | error | damage inside the part of the WAL that was fsynced: the engine refuses to open |
//! | `wal.slot` | error | a WAL record puts a slot out of order, or changes a slot that is not live |
//! | `mirror.missing` | error | there is no mirror file (rebuilt at open, or by `rebuild-mirror`) |
//! | `mirror.damaged` | error | the mirror is not an SQLite database, or not a mirror, or fails `integrity_check` or a page's trailer check (FORMAT.md §6.1); the engine rebuilds it when it meets the damage |
//! | `mirror.unreadable` | error | the mirror could not be read (I/O, a newer schema) |
//! | `mirror.store_uuid` | error | the mirror belongs to another store, or has no header |
//! | `mirror.behind` | warning | the mirror has not applied the last commits of the WAL (replayed at open) |
//! | `mirror.before_checkpoint` | error | the mirror stops before the checkpoint |
//! | `mirror.ahead` | error | the mirror claims commits the log does not have |
//! | `mirror.missing_row` | error | a live record of the log has no mirror row |
//! | `mirror.extra_row` | error | a mirror row has no live record in the log |
//! | `mirror.row_differs` | error | a mirror row's id, text or metadata differs from the log |
//! | `mirror.not_compared` | warning | the rows could not be compared, because the log could not be read whole |

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memento_format::page::{self, DirEntry, PageHeader, PageType, QuantLayout, RecordEntry, VectorLayout};
use memento_format::superblock::{self, Slot, Superblock};
use memento_format::wal::{Payload, WalHeader};
use memento_format::DecodeError;

use crate::engine::MIRROR_FILE;
use crate::error::{Error, Result};
use crate::mirror::{self, Mirror, MirrorRow};
use crate::storage::{FsStorage, LockError, Storage, StorageFile, StoreLock};
use crate::vecfile::{self, VEC_FILE};
use crate::wal::{self as walmod, Op, Txn, WAL_FILE};

/// At most this many findings of one kind are listed; the rest are counted in one more.
const MAX_PER_KIND: usize = 50;

/// How bad a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// A normal artefact of a crash or of a live store; the engine repairs it at open.
    Warning,
    /// Damage: `verify` fails.
    Error,
}

impl Severity {
    /// `"warning"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem found in a store. See the [module documentation](self) for the kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// A stable name, such as `page.checksum`.
    pub kind: &'static str,
    /// The file, by its name in the store directory.
    pub file: &'static str,
    /// Byte offset in that file, where known.
    pub offset: Option<u64>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

/// Whether another process has the store open (holds its lock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// Nobody holds the lock: the files do not change while they are read.
    Free,
    /// A process holds the lock (its pid, when known): the store is live.
    Held {
        /// The holder's process id, if it could be read.
        pid: Option<u32>,
    },
    /// The lock could not be probed (the reason).
    Unknown(String),
}

impl LockState {
    /// True when another process may be writing the store.
    pub fn is_live(&self) -> bool {
        !matches!(self, LockState::Free)
    }
}

/// Where a piece of a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// In a sealed page of the vector file.
    Page {
        /// The page number.
        page_no: u64,
        /// Byte offset of the page in the vector file.
        offset: u64,
    },
    /// In a WAL record (committed since the last checkpoint).
    Wal {
        /// The record's LSN.
        lsn: u64,
        /// Byte offset of the record in the WAL.
        offset: u64,
    },
}

/// A field value of a superblock copy, as read from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An unsigned little-endian integer.
    UInt(u64),
    /// Text (the magic, the model id), lossily decoded, zero padding removed.
    Text(String),
    /// Bytes as lowercase hex (UUID, hash, non-zero reserved bytes).
    Hex(String),
}

/// One field of a superblock copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperblockField {
    /// Its name in FORMAT.md.
    pub name: &'static str,
    /// Its offset in the copy.
    pub offset: usize,
    /// Its value as stored.
    pub value: FieldValue,
    /// What the value means, where it is a code (metric, flags, element type).
    pub note: Option<String>,
}

/// The state of one superblock copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyStatus {
    /// Magic, checksum and fields are good.
    Valid,
    /// All zeros: never written (slot B before the first checkpoint).
    Empty,
    /// Not valid, and why (with the offset of the bad field within the copy).
    Invalid {
        /// Offset within the copy.
        offset: usize,
        /// Why.
        reason: String,
    },
    /// The file is too short to hold it.
    Missing,
}

/// One of the two superblock copies.
#[derive(Debug, Clone)]
pub struct SuperblockCopy {
    /// `A` or `B`.
    pub slot: char,
    /// Byte offset in the vector file.
    pub offset: u64,
    /// Valid, empty, invalid or missing.
    pub status: CopyStatus,
    /// Whether this copy is the current one.
    pub current: bool,
    /// The stored CRC and the CRC of the bytes, when the copy could be read.
    pub crc: Option<(u32, u32)>,
    /// Every field as stored (even in an invalid copy: then not to be trusted).
    pub fields: Vec<SuperblockField>,
    /// The decoded copy, when valid.
    pub decoded: Option<Superblock>,
}

/// What [`Inspector::superblocks`] returns.
#[derive(Debug, Clone)]
pub struct SuperblockReport {
    /// Bytes in the vector file, if it exists.
    pub file_len: Option<u64>,
    /// Copy A then copy B.
    pub copies: Vec<SuperblockCopy>,
    /// The current superblock, if a copy is valid.
    pub current: Option<Superblock>,
    /// Bytes past the checkpoint's pages (left by an interrupted checkpoint; ignored).
    pub trailing_bytes: u64,
    /// Problems with the superblocks and the vector file's length.
    pub findings: Vec<Finding>,
}

/// Whether a checksum was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// It matches.
    Ok,
    /// It does not.
    Mismatch,
    /// Not checked (the header did not decode, or the bytes could not be read).
    NotChecked,
}

impl Checksum {
    /// `"ok"`, `"mismatch"` or `"not checked"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Checksum::Ok => "ok",
            Checksum::Mismatch => "mismatch",
            Checksum::NotChecked => "not checked",
        }
    }
}

/// How a page is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageRole {
    /// Listed in the current directory.
    Listed,
    /// The current directory.
    Directory,
    /// A directory of an earlier checkpoint (garbage, harmless).
    OldDirectory,
    /// Inside the checkpoint's pages but listed by no directory.
    Unreferenced,
}

impl PageRole {
    /// A short name.
    pub fn as_str(self) -> &'static str {
        match self {
            PageRole::Listed => "listed",
            PageRole::Directory => "directory",
            PageRole::OldDirectory => "old directory",
            PageRole::Unreferenced => "unreferenced",
        }
    }
}

/// One page of the vector file.
#[derive(Debug, Clone)]
pub struct PageInfo {
    /// Its first page unit.
    pub page_no: u64,
    /// Page units it spans.
    pub span: u32,
    /// Byte offset in the vector file.
    pub offset: u64,
    /// Its type: from its header, else from its directory entry.
    pub page_type: Option<PageType>,
    /// How it is reached.
    pub role: PageRole,
    /// Its decoded header, if it decodes.
    pub header: Option<PageHeader>,
    /// The CRC.
    pub checksum: Checksum,
    /// Entries whose slot is live / deleted (vector, quantized and record pages).
    pub live: Option<u64>,
    /// See `live`.
    pub dead: Option<u64>,
    /// What is wrong with it, if anything.
    pub problem: Option<String>,
}

/// What [`Inspector::pages`] returns.
#[derive(Debug, Clone)]
pub struct PagesReport {
    /// Bytes per page unit (0 without a valid superblock).
    pub page_size: u32,
    /// Page units in the checkpoint, header page included.
    pub page_count: u64,
    /// Every page, by page number.
    pub pages: Vec<PageInfo>,
    /// Problems with the pages.
    pub findings: Vec<Finding>,
}

/// The kind of a WAL record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalRecordKind {
    /// A new record with its vector.
    Put,
    /// A slot dies.
    Delete,
    /// Text and/or metadata change.
    Update,
    /// The end of a transaction.
    Commit,
}

impl WalRecordKind {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            WalRecordKind::Put => "put",
            WalRecordKind::Delete => "delete",
            WalRecordKind::Update => "update",
            WalRecordKind::Commit => "commit",
        }
    }
}

/// One good WAL record (its framing, CRC and payload verified).
#[derive(Debug, Clone)]
pub struct WalRecordInfo {
    /// Byte offset in the WAL.
    pub offset: u64,
    /// Its `len` field (header and payload, padding excluded).
    pub len: u32,
    /// Its LSN.
    pub lsn: u64,
    /// Its type.
    pub kind: WalRecordKind,
    /// The slot it concerns (none for a commit).
    pub slot: Option<u64>,
    /// The id (put, delete).
    pub id: Option<String>,
    /// A short description of the rest.
    pub detail: String,
    /// Whether a commit record closes its transaction (records after the last commit are
    /// dropped at open).
    pub committed: bool,
}

/// One complete transaction of the WAL.
#[derive(Debug, Clone)]
pub struct WalTxnInfo {
    /// LSN of its first record.
    pub first_lsn: u64,
    /// LSN of its commit record.
    pub commit_lsn: u64,
    /// Byte offset of its first record.
    pub offset: u64,
    /// Bytes from its first record to the end of its commit record, padding included.
    pub bytes: u64,
    /// Puts, deletes and updates in it.
    pub puts: u32,
    /// See `puts`.
    pub deletes: u32,
    /// See `puts`.
    pub updates: u32,
}

/// The end of a WAL's good part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalTail {
    /// Offset of the first byte that is not a good record.
    pub offset: u64,
    /// Where the last complete transaction ends: recovery truncates the file here.
    pub good_end: u64,
    /// Bytes recovery drops (from `good_end` to the end of the file).
    pub bytes: u64,
    /// Why the record at `offset` is not good.
    pub reason: String,
    /// A later commit record vouches that `offset` had been fsynced: real damage.
    pub vouched_by: Option<u64>,
}

/// What [`Inspector::wal`] returns.
#[derive(Debug, Clone)]
pub struct WalReport {
    /// Bytes in the WAL file, if it exists.
    pub file_len: Option<u64>,
    /// The decoded header.
    pub header: Option<WalHeader>,
    /// The generation and first LSN the current superblock expects.
    pub expected: Option<(u64, u64)>,
    /// Every good record, in order.
    pub records: Vec<WalRecordInfo>,
    /// The complete transactions.
    pub txns: Vec<WalTxnInfo>,
    /// Bytes after the last complete transaction, if any.
    pub tail: Option<WalTail>,
    /// The last committed LSN (the checkpoint's when the WAL holds no transaction).
    pub last_lsn: u64,
    /// Problems with the WAL.
    pub findings: Vec<Finding>,
}

/// What [`Inspector::verify`] checked, and what it found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Whether the store was open in another process.
    pub lock: LockState,
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
    /// Pages read and checked.
    pub pages: u64,
    /// Good WAL records.
    pub wal_records: u64,
    /// Complete WAL transactions.
    pub wal_txns: u64,
    /// Live records in the log (pages and WAL).
    pub live_records: u64,
    /// The checkpoint's LSN and the last committed LSN.
    pub checkpoint_lsn: u64,
    /// See `checkpoint_lsn`.
    pub last_lsn: u64,
    /// Rows in the mirror and its applied LSN, if it could be read.
    pub mirror: Option<(u64, u64)>,
    /// Int8 copies compared with their vectors.
    pub quantized_checked: u64,
}

impl VerifyReport {
    /// Errors found.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Error).count()
    }
    /// Warnings found.
    pub fn warnings(&self) -> usize {
        self.findings.iter().filter(|f| f.severity == Severity::Warning).count()
    }
    /// True when nothing is an error.
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
}

/// How the mirror's row for a record compares with the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorView {
    /// The row holds the same id, text and metadata.
    Agrees,
    /// The row differs (the row as stored).
    Differs(MirrorRow),
    /// No row holds the slot.
    Missing,
    /// The mirror could not be read (why).
    Unavailable(String),
}

/// An int8 copy of a vector: its quantized page, its scale and its codes.
pub type QuantCopy = (u64, f32, Vec<i8>);

/// One record, as the log holds it: what [`Inspector::dump`] returns.
#[derive(Debug, Clone)]
pub struct DumpReport {
    /// The id.
    pub id: String,
    /// Its slot.
    pub slot: u64,
    /// Its text.
    pub text: Option<String>,
    /// Its metadata, JSON object text.
    pub metadata: Option<String>,
    /// Its vector as stored (normalised under cosine).
    pub vector: Vec<f32>,
    /// Where the vector lives.
    pub vector_at: Location,
    /// Its int8 copy: page, scale and codes (sealed vectors only).
    pub quantized: Option<QuantCopy>,
    /// Where its put and each update live, oldest first.
    pub record_at: Vec<(Location, &'static str)>,
    /// The mirror's row, compared.
    pub mirror: MirrorView,
}

/// What [`rebuild_mirror`] did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    /// The files moved aside (new names), which held the old mirror.
    pub moved_aside: Vec<String>,
    /// What the engine's recovery reported while it rebuilt.
    pub recovery: Vec<String>,
    /// The verification that followed.
    pub verify: VerifyReport,
}

/// A read-only view of a store directory. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Inspector {
    dir: PathBuf,
    lock: LockState,
}

impl Inspector {
    /// Look at the store in `dir`: no lock is taken, nothing is read yet. An error if `dir`
    /// holds none of a store's files.
    pub fn open(dir: impl AsRef<Path>) -> Result<Inspector> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::invalid(format!("there is no store at {}: no such directory", dir.display())));
        }
        if ![VEC_FILE, WAL_FILE, MIRROR_FILE].iter().any(|f| dir.join(f).exists()) {
            return Err(Error::invalid(format!("there is no store at {}: it holds no {VEC_FILE}, {WAL_FILE} or {MIRROR_FILE}", dir.display())));
        }
        let lock = lock_state(&dir);
        Ok(Inspector { dir, lock })
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether another process held the store when the inspector was opened.
    pub fn lock_state(&self) -> &LockState {
        &self.lock
    }

    /// Both superblock copies.
    pub fn superblocks(&self) -> Result<SuperblockReport> {
        let vf = RoFile::open(&self.dir.join(VEC_FILE))?;
        let mut findings = Vec::new();
        let sbs = read_superblocks(vf.as_ref(), &mut findings)?;
        Ok(SuperblockReport {
            file_len: vf.as_ref().map(|f| f.len),
            trailing_bytes: sbs.trailing_bytes(vf.as_ref()),
            copies: sbs.copies,
            current: sbs.current.map(|c| c.0),
            findings,
        })
    }

    /// Every page of the vector file's checkpoint.
    pub fn pages(&self) -> Result<PagesReport> {
        let l = self.load()?;
        let (page_size, page_count) = l.sb().map_or((0, 0), |sb| (sb.page_size, sb.page_count));
        let findings = l.findings.iter().filter(|f| f.file == VEC_FILE).cloned().collect();
        Ok(PagesReport { page_size, page_count, pages: l.pages, findings })
    }

    /// The WAL: header, records, transactions and tail.
    pub fn wal(&self) -> Result<WalReport> {
        let l = self.load()?;
        let findings = l.findings.iter().filter(|f| f.file == WAL_FILE).cloned().collect();
        let sb = l.sb().cloned();
        let w = l.wal;
        let last_lsn = l.last_lsn;
        Ok(match w {
            Some(w) => WalReport {
                file_len: Some(w.file_len),
                header: w.header,
                expected: sb.map(|sb| (sb.wal_generation, sb.checkpoint_lsn + 1)),
                records: w.records,
                txns: w.txn_infos,
                tail: w.tail,
                last_lsn,
                findings,
            },
            None => WalReport {
                file_len: None,
                header: None,
                expected: sb.map(|sb| (sb.wal_generation, sb.checkpoint_lsn + 1)),
                records: Vec::new(),
                txns: Vec::new(),
                tail: None,
                last_lsn,
                findings,
            },
        })
    }

    /// Check everything: every checksum, every page's structure, the WAL, the int8 copies, and
    /// the mirror against the log both ways. A store is sound when no finding is an error.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut l = self.load()?;
        let quantized_checked = l.check_quantized()?;
        let mirror = l.check_mirror(&self.lock)?;
        let mut findings = cap_findings(std::mem::take(&mut l.findings));
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        Ok(VerifyReport {
            lock: self.lock.clone(),
            findings,
            pages: l.pages.len() as u64,
            wal_records: l.wal.as_ref().map_or(0, |w| w.records.len() as u64),
            wal_txns: l.wal.as_ref().map_or(0, |w| w.txns.len() as u64),
            live_records: l.final_rows().map_or(0, |r| r.len() as u64),
            checkpoint_lsn: l.sb().map_or(0, |sb| sb.checkpoint_lsn),
            last_lsn: l.last_lsn,
            mirror,
            quantized_checked,
        })
    }

    /// The live record with this id, read from the log. [`Error::NotFound`] if no live record
    /// has it; [`Error::Corrupted`] if the log cannot be read far enough to tell.
    pub fn dump(&self, id: &str) -> Result<DumpReport> {
        let l = self.load()?;
        let rows = l.final_rows().ok_or_else(|| {
            let first = l.findings.iter().find(|f| f.severity == Severity::Error);
            let (file, offset, why) = first.map_or((VEC_FILE, 0, "it could not be read".to_string()), |f| (f.file, f.offset.unwrap_or(0), f.message.clone()));
            Error::corrupted(self.dir.join(file), offset, format!("the log cannot be read whole, so records cannot be looked up: {why}"))
        })?;
        let (slot, row) = rows.iter().find(|(_, r)| r.id == id).map(|(s, r)| (*s, r.clone())).ok_or_else(|| Error::NotFound { id: id.to_string() })?;
        let (vector, vector_at, quantized) = l.vector_of(slot)?;
        let mirror = match self.open_mirror() {
            Ok(MirrorOpen::Missing) => MirrorView::Unavailable("there is no mirror file".into()),
            Ok(MirrorOpen::Open(m, _tmp)) => match m.row_by_id(id) {
                Ok(Some(r)) if r.slot == slot && r.text == row.text && r.metadata == row.metadata => MirrorView::Agrees,
                Ok(Some(r)) => MirrorView::Differs(r),
                Ok(None) => MirrorView::Missing,
                Err(e) => MirrorView::Unavailable(e.to_string()),
            },
            Err(e) => MirrorView::Unavailable(e.to_string()),
        };
        let mut record_at = vec![(row.put, "put")];
        record_at.extend(row.updates.iter().map(|&u| (u, "update")));
        Ok(DumpReport { id: row.id, slot, text: row.text, metadata: row.metadata, vector, vector_at, quantized, record_at, mirror })
    }

    /// Read everything but the mirror. For a live store, retried when a checkpoint changed the
    /// superblocks during the read.
    fn load(&self) -> Result<Loaded> {
        let mut attempt = 0;
        loop {
            let l = Loaded::read(&self.dir)?;
            if !self.lock.is_live() {
                return Ok(l);
            }
            let vf = RoFile::open(&self.dir.join(VEC_FILE))?;
            let now = read_superblocks(vf.as_ref(), &mut Vec::new())?;
            if now.raw == l.sb_raw {
                return Ok(l);
            }
            attempt += 1;
            if attempt == 3 {
                let mut l = Loaded::read(&self.dir)?;
                l.findings.push(warning(
                    "store.changed",
                    VEC_FILE,
                    Some(0),
                    "the store kept checkpointing while it was read; what is shown may mix two checkpoints".into(),
                ));
                return Ok(l);
            }
        }
    }

    /// Open the mirror read-only, the safest way for the store's state (see [`Mirror::open_read_only`]).
    fn open_mirror(&self) -> Result<MirrorOpen> {
        open_mirror_ro(&self.dir, &self.lock)
    }
}

enum MirrorOpen {
    Missing,
    /// The mirror, and the temporary copy it was opened from, if any (removed on drop).
    Open(Mirror, Option<TempCopy>),
}

/// A directory removed when dropped.
struct TempCopy(PathBuf);

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_mirror_ro(dir: &Path, lock: &LockState) -> Result<MirrorOpen> {
    let path = dir.join(MIRROR_FILE);
    if !path.exists() {
        return Ok(MirrorOpen::Missing);
    }
    let wal_path = dir.join(format!("{MIRROR_FILE}-wal"));
    let wal_len = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
    if lock.is_live() {
        // The engine has it open: its `-wal` and `-shm` exist, and SQLite's locks keep the
        // read consistent.
        return Ok(MirrorOpen::Open(Mirror::open_read_only(&path, false)?, None));
    }
    if wal_len == 0 {
        // Nobody has it open and it has no write-ahead log: all of it is in the main file.
        return Ok(MirrorOpen::Open(Mirror::open_read_only(&path, true)?, None));
    }
    // Nobody has it open but its write-ahead log holds commits: read a copy, so that SQLite
    // creates nothing in the store directory.
    let tmp = std::env::temp_dir().join(format!("memento-inspect-{}-{}", std::process::id(), walmod::random_u64()));
    std::fs::create_dir(&tmp).map_err(|e| Error::io("creating a temporary directory for a copy of the mirror", e))?;
    let guard = TempCopy(tmp.clone());
    let copy = tmp.join(MIRROR_FILE);
    std::fs::copy(&path, &copy).map_err(|e| Error::io("copying the mirror", e))?;
    std::fs::copy(&wal_path, tmp.join(format!("{MIRROR_FILE}-wal"))).map_err(|e| Error::io("copying the mirror's write-ahead log", e))?;
    Ok(MirrorOpen::Open(Mirror::open_read_only(&copy, false)?, Some(guard)))
}

/// Rebuild the store's SQLite mirror from its vector file and WAL: the one repair. Takes the
/// store's lock (so [`Error::Locked`] if another process has it open), refuses if the vector
/// file or the WAL has errors (a mirror rebuilt from them would not make the store sound),
/// moves the current mirror files aside (`memento.mirror.sqlite.old`, `-wal`, `-shm`), opens
/// the store with [`crate::Engine`] (which rebuilds a missing mirror and replays the WAL),
/// closes it, and verifies the result.
pub fn rebuild_mirror(dir: impl AsRef<Path>) -> Result<RebuildReport> {
    let dir = dir.as_ref();
    if !dir.join(VEC_FILE).is_file() {
        return Err(Error::invalid(format!("there is no store at {}", dir.display())));
    }
    let storage = FsStorage::new(dir).map_err(|e| Error::io("opening the store directory", e))?;
    let lock = storage.lock().map_err(|e| match e {
        LockError::Held { pid } => Error::Locked { path: dir.to_path_buf(), pid },
        LockError::Io(e) => Error::io("taking the store's lock", e),
    })?;
    // We hold the lock: nobody else changes the files while we look.
    let before = Inspector { dir: dir.to_path_buf(), lock: LockState::Free };
    let l = before.load()?;
    if let Some(f) = l.findings.iter().find(|f| f.severity == Severity::Error) {
        return Err(Error::corrupted(
            dir.join(f.file),
            f.offset.unwrap_or(0),
            format!("{} ({}); the mirror is rebuilt from the vector file and the WAL, so rebuilding it cannot repair this", f.message, f.kind),
        ));
    }
    drop(l);
    let mut moved_aside = Vec::new();
    fn io(what: &'static str) -> impl Fn(io::Error) -> Error {
        move |e| Error::io(format!("{what} the old mirror"), e)
    }
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{MIRROR_FILE}{suffix}");
        let to = format!("{MIRROR_FILE}.old{suffix}");
        storage.remove(&to).map_err(io("removing an earlier copy of"))?;
        if storage.exists(&from).map_err(io("looking for"))? {
            storage.rename(&from, &to).map_err(io("moving aside"))?;
            moved_aside.push(to);
        }
    }
    storage.sync_dir().map_err(io("syncing the directory after moving aside"))?;
    let held = Arc::new(HeldLock { inner: storage, lock: Mutex::new(Some(lock)) });
    let engine = crate::Engine::builder_with_storage(held).create(false).open()?;
    let recovery = engine.stats().recovery;
    engine.close()?;
    let verify = Inspector::open(dir)?.verify()?;
    Ok(RebuildReport { moved_aside, recovery, verify })
}

/// An [`FsStorage`] whose lock was taken before the engine opened it: the engine's own
/// `lock()` receives it, so that no other process can open the store in between.
struct HeldLock {
    inner: FsStorage,
    lock: Mutex<Option<Box<dyn StoreLock>>>,
}

impl Storage for HeldLock {
    fn open(&self, name: &str, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        self.inner.open(name, create)
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        self.inner.exists(name)
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        self.inner.remove(name)
    }
    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn sync_dir(&self) -> io::Result<()> {
        self.inner.sync_dir()
    }
    fn lock(&self) -> std::result::Result<Box<dyn StoreLock>, LockError> {
        let taken = self.lock.lock().map_or(None, |mut g| g.take());
        taken.ok_or(LockError::Held { pid: std::process::id() })
    }
    fn dir_path(&self) -> Option<&Path> {
        self.inner.dir_path()
    }
}

// ---------------------------------------------------------------------------------------------
// Reading files without trusting them.

/// A file opened read-only, read with bounds-checked positioned reads.
struct RoFile {
    file: File,
    len: u64,
}

impl RoFile {
    /// `None` if the file does not exist.
    fn open(path: &Path) -> Result<Option<RoFile>> {
        match File::open(path) {
            Ok(file) => {
                let len = file.metadata().map_err(|e| Error::io(format!("reading the length of {}", path.display()), e))?.len();
                Ok(Some(RoFile { file, len }))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(format!("opening {} read-only", path.display()), e)),
        }
    }

    /// `len` bytes at `offset`, or `None` if the file does not hold them all.
    fn read(&self, offset: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => {}
            _ => return Ok(None),
        }
        let n = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "read larger than memory"))?;
        let mut buf = vec![0u8; n];
        let mut f = &self.file;
        f.seek(SeekFrom::Start(offset))?;
        match f.read_exact(&mut buf) {
            Ok(()) => Ok(Some(buf)),
            // The file shrank since its length was read.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn finding(severity: Severity, kind: &'static str, file: &'static str, offset: Option<u64>, message: String) -> Finding {
    Finding { severity, kind, file, offset, message }
}

fn error(kind: &'static str, file: &'static str, offset: Option<u64>, message: String) -> Finding {
    finding(Severity::Error, kind, file, offset, message)
}

fn warning(kind: &'static str, file: &'static str, offset: Option<u64>, message: String) -> Finding {
    finding(Severity::Warning, kind, file, offset, message)
}

/// Keep at most [`MAX_PER_KIND`] findings of each kind, plus one that counts the others.
fn cap_findings(all: Vec<Finding>) -> Vec<Finding> {
    let mut seen: HashMap<&'static str, usize> = HashMap::new();
    let mut out = Vec::with_capacity(all.len().min(1000));
    let mut over: BTreeMap<&'static str, (usize, Finding)> = BTreeMap::new();
    for f in all {
        let n = seen.entry(f.kind).or_default();
        *n += 1;
        if *n <= MAX_PER_KIND {
            out.push(f);
        } else {
            over.entry(f.kind).or_insert_with(|| (0, f.clone())).0 += 1;
        }
    }
    for (_, (n, f)) in over {
        out.push(Finding { offset: None, message: format!("{n} more findings of this kind are not listed"), ..f });
    }
    out
}

/// Probe the store's lock without taking it where possible: on Linux `/proc/locks` tells
/// whether a `flock` is held on `LOCK`; elsewhere a shared lock is tried and released at once.
fn lock_state(dir: &Path) -> LockState {
    let path = dir.join(crate::files::LOCK);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return LockState::Free,
        Err(e) => return LockState::Unknown(format!("cannot open {}: {e}", path.display())),
    };
    let mut text = String::new();
    let recorded = (&file).read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok());
    #[cfg(target_os = "linux")]
    if let Some(held) = proc_locks_holder(&file) {
        return match held {
            Some(pid) => LockState::Held { pid: Some(pid) },
            None => LockState::Free,
        };
    }
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            LockState::Free
        }
        Err(std::fs::TryLockError::WouldBlock) => LockState::Held { pid: recorded },
        Err(std::fs::TryLockError::Error(e)) => LockState::Unknown(format!("cannot probe the lock: {e}")),
    }
}

/// From `/proc/locks`: `Some(Some(pid))` if a `flock` is held on this file's inode,
/// `Some(None)` if none is, `None` if `/proc/locks` cannot be read.
#[cfg(target_os = "linux")]
fn proc_locks_holder(file: &File) -> Option<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    let ino = file.metadata().ok()?.ino();
    let table = std::fs::read_to_string("/proc/locks").ok()?;
    for line in table.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; waiters have "->" after the number.
        let words: Vec<&str> = line.split_whitespace().filter(|w| *w != "->").collect();
        if words.get(1) != Some(&"FLOCK") {
            continue;
        }
        let Some(dev_ino) = words.get(5) else { continue };
        if dev_ino.rsplit(':').next().and_then(|i| i.parse::<u64>().ok()) == Some(ino) {
            return Some(words.get(4).and_then(|p| p.parse().ok()).or(Some(0)));
        }
    }
    Some(None)
}

// ---------------------------------------------------------------------------------------------
// Superblocks.

struct Superblocks {
    copies: Vec<SuperblockCopy>,
    current: Option<(Superblock, Slot)>,
    /// Raw bytes of both copies, to notice a checkpoint during a read.
    raw: Vec<Option<Vec<u8>>>,
}

impl Superblocks {
    fn trailing_bytes(&self, vf: Option<&RoFile>) -> u64 {
        match (&self.current, vf) {
            (Some((sb, _)), Some(f)) => f.len.saturating_sub(sb.page_count.saturating_mul(u64::from(sb.page_size))),
            _ => 0,
        }
    }
}

fn read_superblocks(vf: Option<&RoFile>, findings: &mut Vec<Finding>) -> Result<Superblocks> {
    let Some(vf) = vf else {
        findings.push(error("vec.missing", VEC_FILE, None, "there is no vector file: the store cannot be opened".into()));
        return Ok(Superblocks { copies: Vec::new(), current: None, raw: Vec::new() });
    };
    let mut copies = Vec::new();
    let mut decoded = Vec::new();
    let mut raw = Vec::new();
    for (slot, name) in [(Slot::A, 'A'), (Slot::B, 'B')] {
        let bytes = vf.read(slot.offset(), superblock::LEN as u64).map_err(|e| Error::io("reading a superblock", e))?;
        let mut copy =
            SuperblockCopy { slot: name, offset: slot.offset(), status: CopyStatus::Missing, current: false, crc: None, fields: Vec::new(), decoded: None };
        let result = match &bytes {
            None => Err(DecodeError::new(0, "the file is too short to hold it")),
            Some(b) => {
                copy.fields = superblock_fields(b);
                let c = superblock::fields::crc;
                let stored = u32::from_le_bytes([b[c.offset], b[c.offset + 1], b[c.offset + 2], b[c.offset + 3]]);
                copy.crc = Some((stored, memento_format::crc32(0, &[&b[..c.offset]])));
                Superblock::decode(b)
            }
        };
        match (&result, &bytes) {
            (Ok(sb), _) => {
                copy.status = CopyStatus::Valid;
                copy.decoded = Some(sb.clone());
            }
            (Err(_), Some(b)) if b.iter().all(|&x| x == 0) => copy.status = CopyStatus::Empty,
            (Err(e), Some(_)) => copy.status = CopyStatus::Invalid { offset: e.offset, reason: e.reason.clone() },
            (Err(_), None) => copy.status = CopyStatus::Missing,
        }
        raw.push(bytes);
        decoded.push(result);
        copies.push(copy);
    }
    let b = decoded.pop().unwrap_or_else(|| Err(DecodeError::new(0, "missing")));
    let a = decoded.pop().unwrap_or_else(|| Err(DecodeError::new(0, "missing")));
    let current = superblock::pick_current(a, b);
    if let Some((sb, slot)) = &current {
        let i = usize::from(*slot == Slot::B);
        copies[i].current = true;
        let other = &copies[1 - i];
        match &other.status {
            CopyStatus::Valid => {
                if let Some(o) = &other.decoded {
                    if o.store_uuid != sb.store_uuid || o.file_salt != sb.file_salt || o.dimension != sb.dimension || o.metric != sb.metric || o.page_size != sb.page_size {
                        findings.push(error(
                            "superblock.mismatch",
                            VEC_FILE,
                            Some(other.offset),
                            format!("copy {} is valid but describes another store (identity, salt, dimension, metric or page size differ from copy {})", other.slot, copies[i].slot),
                        ));
                    }
                }
            }
            CopyStatus::Empty if sb.sequence <= 1 => {} // never written yet: normal before the first checkpoint
            CopyStatus::Empty => findings.push(error(
                "superblock.checksum",
                VEC_FILE,
                Some(other.offset),
                format!("copy {} is all zeros although the store has checkpointed (sequence {}); the store opens from copy {}, and its next checkpoint rewrites copy {}", other.slot, sb.sequence, copies[i].slot, other.slot),
            )),
            CopyStatus::Invalid { offset, reason } => findings.push(error(
                if reason.contains("checksum") { "superblock.checksum" } else { "superblock.invalid" },
                VEC_FILE,
                Some(other.offset + *offset as u64),
                format!("copy {}: {reason}; the store still opens from copy {} (sequence {}), and its next checkpoint rewrites copy {}", other.slot, copies[i].slot, sb.sequence, other.slot),
            )),
            CopyStatus::Missing => findings.push(error("superblock.invalid", VEC_FILE, Some(other.offset), format!("copy {}: the file is too short to hold it", other.slot))),
        }
        if sb.min_reader_version > memento_format::FORMAT_VERSION {
            findings.push(error(
                "superblock.version",
                VEC_FILE,
                Some(copies[i].offset + superblock::fields::min_reader_version.offset as u64),
                format!("the store needs a reader of format version {}; this is version {}", sb.min_reader_version, memento_format::FORMAT_VERSION),
            ));
        }
    } else {
        for c in &copies {
            let (kind, off, why) = match &c.status {
                CopyStatus::Invalid { offset, reason } => {
                    (if reason.contains("checksum") { "superblock.checksum" } else { "superblock.invalid" }, *offset as u64, reason.clone())
                }
                CopyStatus::Empty => ("superblock.invalid", 0, "all zeros".to_string()),
                _ => ("superblock.invalid", 0, "the file is too short to hold it".to_string()),
            };
            findings.push(error(kind, VEC_FILE, Some(c.offset + off), format!("copy {}: {why}", c.slot)));
        }
        findings.push(error("superblock.none_valid", VEC_FILE, Some(0), "neither superblock copy is valid: the store cannot be opened".into()));
    }
    Ok(Superblocks { copies, current, raw })
}

/// Every field of a superblock copy as stored, read through the codec's field table.
fn superblock_fields(b: &[u8]) -> Vec<SuperblockField> {
    let mut out = Vec::new();
    for f in superblock::fields::FIELDS {
        let Some(bytes) = b.get(f.range()) else { continue };
        let reserved = f.name.contains("reserved");
        if reserved && bytes.iter().all(|&x| x == 0) {
            continue;
        }
        let value = match (f.name, f.size) {
            ("magic", _) => FieldValue::Text(String::from_utf8_lossy(bytes).into_owned()),
            ("model_id", _) => {
                let end = bytes.iter().position(|&x| x == 0).unwrap_or(bytes.len());
                FieldValue::Text(String::from_utf8_lossy(&bytes[..end]).into_owned())
            }
            (_, 1 | 2 | 4 | 8) if !reserved => {
                let mut a = [0u8; 8];
                a[..f.size].copy_from_slice(bytes);
                FieldValue::UInt(u64::from_le_bytes(a))
            }
            _ => FieldValue::Hex(hex(bytes)),
        };
        let note = match (f.name, &value) {
            ("metric", FieldValue::UInt(c)) => {
                Some(u8::try_from(*c).ok().and_then(superblock::Metric::from_code).map_or("unknown metric".to_string(), |m| m.name().to_string()))
            }
            ("element_type", FieldValue::UInt(1)) => Some("float32".into()),
            ("element_type", _) => Some("unknown element type".into()),
            ("flags", FieldValue::UInt(v)) => {
                let mut names = Vec::new();
                if v & u64::from(superblock::FLAG_NORMALIZED) != 0 {
                    names.push("normalized");
                }
                if v & u64::from(superblock::FLAG_QUANTIZED) != 0 {
                    names.push("quantized");
                }
                Some(if names.is_empty() { "none".into() } else { names.join(", ") })
            }
            _ => None,
        };
        out.push(SuperblockField { name: f.name, offset: f.offset, value, note });
    }
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// The whole log: pages and WAL.

/// A live record as the log gives it.
#[derive(Debug, Clone)]
struct RowState {
    id: String,
    text: Option<String>,
    metadata: Option<String>,
    put: Location,
    updates: Vec<Location>,
}

/// A vector or quantized page that verified, with its slots.
struct SlotPage {
    page_no: u64,
    slots: Vec<u64>,
}

struct WalLoaded {
    file_len: u64,
    header: Option<WalHeader>,
    records: Vec<WalRecordInfo>,
    txns: Vec<Txn>,
    txn_infos: Vec<WalTxnInfo>,
    tail: Option<WalTail>,
    /// The WAL's records can be replayed (header good, right generation, no damage).
    usable: bool,
}

struct Loaded {
    dir: PathBuf,
    findings: Vec<Finding>,
    sb: Option<(Superblock, Slot)>,
    sb_raw: Vec<Option<Vec<u8>>>,
    vf: Option<RoFile>,
    layouts: Option<(VectorLayout, QuantLayout)>,
    pages: Vec<PageInfo>,
    vector_pages: Vec<SlotPage>,
    quant_pages: Vec<SlotPage>,
    /// Live rows as of the checkpoint, if every record and tombstone page could be read.
    sealed: Option<BTreeMap<u64, RowState>>,
    wal: Option<WalLoaded>,
    last_lsn: u64,
}

impl Loaded {
    fn sb(&self) -> Option<&Superblock> {
        self.sb.as_ref().map(|s| &s.0)
    }

    fn read(dir: &Path) -> Result<Loaded> {
        let mut findings = Vec::new();
        for leftover in [format!("{VEC_FILE}.new"), format!("{WAL_FILE}.new")] {
            if dir.join(&leftover).exists() {
                let file = if leftover.starts_with(VEC_FILE) { VEC_FILE } else { WAL_FILE };
                findings.push(warning("store.leftover", file, None, format!("{leftover} was left by an interrupted write; the engine removes it at open")));
            }
        }
        let vf = RoFile::open(&dir.join(VEC_FILE))?;
        let sbs = read_superblocks(vf.as_ref(), &mut findings)?;
        let mut l = Loaded {
            dir: dir.to_path_buf(),
            findings,
            sb: sbs.current.clone(),
            sb_raw: sbs.raw,
            vf,
            layouts: None,
            pages: Vec::new(),
            vector_pages: Vec::new(),
            quant_pages: Vec::new(),
            sealed: None,
            wal: None,
            last_lsn: 0,
        };
        let readable = l.sb().is_some_and(|sb| sb.min_reader_version <= memento_format::FORMAT_VERSION);
        if readable {
            l.read_pages()?;
            l.read_wal(dir)?;
            l.cross_check();
        }
        Ok(l)
    }

    /// The directory and every page of the checkpoint.
    fn read_pages(&mut self) -> Result<()> {
        let (Some(sb), Some(vf)) = (self.sb().cloned(), self.vf.take()) else { return Ok(()) };
        let ps = u64::from(sb.page_size);
        let sealed = sb.page_count.saturating_mul(ps);
        if vf.len < sealed {
            self.findings.push(error(
                "vec.truncated",
                VEC_FILE,
                Some(vf.len),
                format!("the file holds {} bytes but its checkpoint covers {sealed} (pages 0..{}): the store cannot be opened", vf.len, sb.page_count),
            ));
        }
        let (Some(layout), Some(qlayout)) =
            (VectorLayout::new(sb.dimension as usize, sb.page_size as usize), QuantLayout::new(sb.dimension as usize, sb.page_size as usize))
        else {
            self.findings.push(error(
                "superblock.invalid",
                VEC_FILE,
                Some(44),
                format!("a {}-dimensional vector does not fit a {}-byte page", sb.dimension, sb.page_size),
            ));
            self.vf = Some(vf);
            return Ok(());
        };
        self.layouts = Some((layout, qlayout));
        let mut findings = Vec::new();
        let mut pages: BTreeMap<u64, PageInfo> = BTreeMap::new();
        let mut sealed_rows: Option<BTreeMap<u64, RowState>> = Some(BTreeMap::new());
        let mut tombstones: Vec<u64> = Vec::new();
        // The directory.
        let mut dir: Option<(Vec<DirEntry>, usize)> = if sb.dir_page == 0 { Some((Vec::new(), 0)) } else { None };
        if sb.dir_page != 0 {
            let e = DirEntry { page_no: sb.dir_page, first_slot: 0, span: sb.dir_span, page_type: PageType::Directory };
            let (info, bytes) = read_page(&vf, &sb, &layout, &qlayout, &e, PageRole::Directory, &mut findings)?;
            if let (Some(bytes), Some(h)) = (bytes, info.header) {
                match page::directory(&bytes, &h, sb.page_count) {
                    Ok(entries) => dir = Some((entries, h.aux as usize)),
                    Err(d) => findings.push(error(
                        "directory.invalid",
                        VEC_FILE,
                        Some(info.offset + d.offset as u64),
                        format!("the directory (page {}) does not decode: {}; no other page can be found", sb.dir_page, d.reason),
                    )),
                }
            }
            pages.insert(sb.dir_page, info);
        }
        if dir.is_none() {
            sealed_rows = None;
        }
        let entries = dir.as_ref().map(|d| d.0.clone()).unwrap_or_default();
        for e in &entries {
            let (mut info, bytes) = read_page(&vf, &sb, &layout, &qlayout, e, PageRole::Listed, &mut findings)?;
            let Some(bytes) = bytes else {
                if matches!(e.page_type, PageType::Record | PageType::Tombstone) {
                    sealed_rows = None;
                }
                pages.insert(e.page_no, info);
                continue;
            };
            let Some(h) = info.header else { continue };
            let loc = Location::Page { page_no: e.page_no, offset: info.offset };
            match h.page_type {
                PageType::Vector | PageType::Quantized => {
                    let n = (h.count as usize).min(bytes.len().saturating_sub(page::HEADER_LEN) / 8);
                    let slots: Vec<u64> = (0..n).map(|i| layout.slot(&bytes, i)).collect();
                    if slots.first() != Some(&e.first_slot) {
                        let msg = format!("page {} is listed with first slot {} but holds slot {:?} first", e.page_no, e.first_slot, slots.first());
                        findings.push(error("page.type", VEC_FILE, Some(info.offset), msg.clone()));
                        info.problem = Some(msg);
                    } else if let Some(&last) = slots.last() {
                        if last >= sb.next_slot {
                            findings.push(error(
                                "vec.next_slot",
                                VEC_FILE,
                                Some(info.offset),
                                format!("page {} holds slot {last} but the superblock's next slot is {}", e.page_no, sb.next_slot),
                            ));
                        }
                        let sp = SlotPage { page_no: e.page_no, slots };
                        if h.page_type == PageType::Vector {
                            self.vector_pages.push(sp);
                        } else {
                            self.quant_pages.push(sp);
                        }
                    }
                }
                PageType::Record => match page::record_entries(&bytes, &h) {
                    Ok(list) => {
                        if let Some(rows) = sealed_rows.as_mut() {
                            for r in list {
                                apply_entry(rows, &r, loc);
                            }
                        }
                    }
                    Err(d) => {
                        let msg = format!("record page {}: {}", e.page_no, d.reason);
                        findings.push(error("page.body", VEC_FILE, Some(info.offset + d.offset as u64), msg.clone()));
                        info.problem = Some(msg);
                        sealed_rows = None;
                    }
                },
                PageType::Tombstone => match page::tombstones(&bytes, &h) {
                    Ok(list) => tombstones.extend(list.into_iter().map(|t| t.0)),
                    Err(d) => {
                        let msg = format!("tombstone page {}: {}", e.page_no, d.reason);
                        findings.push(error("page.body", VEC_FILE, Some(info.offset + d.offset as u64), msg.clone()));
                        info.problem = Some(msg);
                        sealed_rows = None;
                    }
                },
                PageType::Directory => {}
            }
            pages.insert(e.page_no, info);
        }
        if let Some(rows) = sealed_rows.as_mut() {
            for s in &tombstones {
                rows.remove(s);
            }
        }
        // Page units no directory lists: earlier directories, or garbage.
        let covered: Vec<(u64, u64)> = pages.values().map(|p| (p.page_no, p.page_no + u64::from(p.span.max(1)))).collect();
        let is_covered = |u: u64| covered.iter().any(|&(a, b)| (a..b).contains(&u));
        let last_unit = sb.page_count.min(vf.len / ps);
        let mut u = 1;
        let mut garbage_from: Option<u64> = None;
        while u < last_unit {
            if is_covered(u) {
                u += 1;
                continue;
            }
            let head = vf.read(u * ps, page::HEADER_LEN as u64).map_err(|e| Error::io("reading a page header", e))?;
            let h = head.as_deref().map(PageHeader::decode);
            match h {
                Some(Ok(h)) if h.page_no == u && u64::from(h.span) <= last_unit - u && !(u..u + u64::from(h.span)).any(is_covered) => {
                    if let Some(g) = garbage_from.take() {
                        unreferenced_units(&mut findings, g, u, ps);
                    }
                    let role = if h.page_type == PageType::Directory { PageRole::OldDirectory } else { PageRole::Unreferenced };
                    let e = DirEntry { page_no: u, first_slot: 0, span: h.span, page_type: h.page_type };
                    let mut sink = Vec::new();
                    let (info, _) = read_page(&vf, &sb, &layout, &qlayout, &e, role, &mut sink)?;
                    if role == PageRole::Unreferenced {
                        findings.push(warning(
                            "page.unreferenced",
                            VEC_FILE,
                            Some(u * ps),
                            format!("page {u} ({}) is listed by no directory; the engine never reads it", h.page_type.name()),
                        ));
                    }
                    u += u64::from(h.span);
                    pages.insert(info.page_no, info);
                }
                _ => {
                    garbage_from.get_or_insert(u);
                    u += 1;
                }
            }
        }
        if let Some(g) = garbage_from {
            unreferenced_units(&mut findings, g, u, ps);
        }
        self.findings.extend(findings);
        self.pages = pages.into_values().collect();
        self.sealed = sealed_rows;
        if let (Some(rows), Some(_)) = (&self.sealed, &dir) {
            if rows.len() as u64 != sb.live_count {
                self.findings.push(error(
                    "vec.live_count",
                    VEC_FILE,
                    Some(superblock::fields::live_count.offset as u64),
                    format!("the superblock counts {} live records but the pages hold {}", sb.live_count, rows.len()),
                ));
            }
            let mut vector_slots = self.vector_pages.iter().flat_map(|p| p.slots.iter().copied());
            let mut next = vector_slots.next();
            let mut missing = Vec::new();
            for &slot in rows.keys() {
                while next.is_some_and(|s| s < slot) {
                    next = vector_slots.next();
                }
                if next != Some(slot) {
                    missing.push(slot);
                }
            }
            let bad_vector_pages = self.pages.iter().any(|p| p.page_type == Some(PageType::Vector) && p.problem.is_some());
            if !bad_vector_pages {
                for slot in missing {
                    self.findings.push(error(
                        "vec.missing_vector",
                        VEC_FILE,
                        None,
                        format!("the live record in slot {slot} has no vector in the vector pages"),
                    ));
                }
            }
        }
        self.vf = Some(vf);
        Ok(())
    }

    /// The WAL: header checks as at open, then the engine's recovery scan.
    fn read_wal(&mut self, dir: &Path) -> Result<()> {
        let Some(sb) = self.sb().cloned() else { return Ok(()) };
        self.last_lsn = sb.checkpoint_lsn;
        let Some(f) = RoFile::open(&dir.join(WAL_FILE))? else {
            self.findings.push(error(
                "wal.missing",
                WAL_FILE,
                None,
                format!("there is no WAL; the engine creates an empty one at open, and any commit after the checkpoint (LSN {}) is lost", sb.checkpoint_lsn),
            ));
            return Ok(());
        };
        let bytes = f.read(0, f.len).map_err(|e| Error::io("reading the WAL", e))?.unwrap_or_default();
        let mut w = WalLoaded { file_len: f.len, header: None, records: Vec::new(), txns: Vec::new(), txn_infos: Vec::new(), tail: None, usable: false };
        let header = match WalHeader::decode(&bytes) {
            Ok(h) => h,
            Err(d) => {
                self.findings.push(error(
                    "wal.header",
                    WAL_FILE,
                    Some(d.offset as u64),
                    format!("the WAL header does not decode: {}; the engine refuses to open the store", d.reason),
                ));
                self.wal = Some(w);
                return Ok(());
            }
        };
        w.header = Some(header.clone());
        let start_lsn = sb.checkpoint_lsn + 1;
        use memento_format::wal::header as wh;
        let problem = if header.store_uuid != sb.store_uuid {
            Some(error("wal.header", WAL_FILE, Some(wh::store_uuid.offset as u64), "the WAL belongs to another store".into()))
        } else if header.format_version > memento_format::FORMAT_VERSION {
            Some(error(
                "wal.header",
                WAL_FILE,
                Some(wh::format_version.offset as u64),
                format!("the WAL was written by format version {}", header.format_version),
            ))
        } else if header.generation + 1 == sb.wal_generation {
            Some(warning(
                "wal.stale_generation",
                WAL_FILE,
                Some(wh::generation.offset as u64),
                format!("the WAL is generation {}, before the checkpoint's {} (a crash during a checkpoint): everything in it is in the pages already; the engine replaces it at open", header.generation, sb.wal_generation),
            ))
        } else if header.generation != sb.wal_generation {
            Some(error(
                "wal.generation",
                WAL_FILE,
                Some(wh::generation.offset as u64),
                format!("the WAL is generation {} but the checkpoint expects {}", header.generation, sb.wal_generation),
            ))
        } else if header.start_lsn != start_lsn {
            Some(error(
                "wal.generation",
                WAL_FILE,
                Some(wh::start_lsn.offset as u64),
                format!("the WAL starts at LSN {} but the checkpoint ends at {}", header.start_lsn, sb.checkpoint_lsn),
            ))
        } else {
            None
        };
        // The records are listed even when the header does not fit the checkpoint.
        let dim = sb.dimension as usize;
        let mut records = Vec::new();
        let scan = walmod::scan(&bytes, header.salt, header.start_lsn, dim, &mut |r| records.push(record_info(&r)));
        let last_commit = scan.txns.last().map_or(0, |t| t.commit_lsn);
        for r in &mut records {
            r.committed = r.lsn <= last_commit;
        }
        let mut lsn_at: HashMap<u64, u64> = HashMap::new();
        for r in &records {
            lsn_at.insert(r.lsn, r.offset);
        }
        for t in &scan.txns {
            let start = lsn_at.get(&t.first_lsn).copied().unwrap_or(0);
            let end = records.iter().find(|r| r.lsn == t.commit_lsn).map_or(start, |r| r.offset + memento_format::align_up(r.len as usize, 8) as u64);
            let count = |k: WalRecordKind| t.ops.iter().filter(|o| op_kind(o) == k).count() as u32;
            w.txn_infos.push(WalTxnInfo {
                first_lsn: t.first_lsn,
                commit_lsn: t.commit_lsn,
                offset: start,
                bytes: end - start,
                puts: count(WalRecordKind::Put),
                deletes: count(WalRecordKind::Delete),
                updates: count(WalRecordKind::Update),
            });
        }
        w.tail = scan.tail.map(|t| WalTail { offset: t.offset, good_end: t.good_end, bytes: t.bytes, reason: t.reason, vouched_by: t.vouched_by });
        w.records = records;
        let usable = match &problem {
            None => true,
            Some(f) if f.kind == "wal.stale_generation" => {
                // Everything in it is in the pages: the log is the checkpoint alone.
                self.findings.push(f.clone());
                w.txns = Vec::new();
                w.usable = true;
                self.wal = Some(w);
                return Ok(());
            }
            Some(f) => {
                self.findings.push(f.clone());
                false
            }
        };
        if usable {
            if let Some(t) = &w.tail {
                match t.vouched_by {
                    Some(q) => self.findings.push(error(
                        "wal.damaged",
                        WAL_FILE,
                        Some(t.offset),
                        format!("{}, inside the part of the log that was already fsynced (the commit record at offset {q} vouches for it): the engine refuses to open the store", t.reason),
                    )),
                    None => self.findings.push(warning(
                        "wal.torn_tail",
                        WAL_FILE,
                        Some(t.good_end),
                        format!("torn tail of {} bytes from offset {} ({} at offset {}) (recoverable: the engine drops it at open)", t.bytes, t.good_end, t.reason, t.offset),
                    )),
                }
            }
            // Slots as the engine checks them at open, and changes to slots that are not live.
            let mut next_slot = sb.next_slot;
            let mut live: Option<HashSet<u64>> = self.sealed.as_ref().map(|r| r.keys().copied().collect());
            'txns: for t in &scan.txns {
                for (i, op) in t.ops.iter().enumerate() {
                    let lsn = t.first_lsn + i as u64;
                    let at = lsn_at.get(&lsn).copied();
                    match op {
                        Op::Put { slot, .. } => {
                            if *slot != next_slot {
                                self.findings.push(error(
                                    "wal.slot",
                                    WAL_FILE,
                                    at,
                                    format!("the put of LSN {lsn} uses slot {slot} where {next_slot} was next: the engine refuses to open the store"),
                                ));
                                break 'txns;
                            }
                            next_slot += 1;
                            if let Some(l) = live.as_mut() {
                                l.insert(*slot);
                            }
                        }
                        Op::Delete { slot, .. } | Op::Update { slot, .. } => {
                            if let Some(l) = live.as_mut() {
                                let was = if matches!(op, Op::Delete { .. }) { l.remove(slot) } else { l.contains(slot) };
                                if !was {
                                    self.findings.push(error(
                                        "wal.slot",
                                        WAL_FILE,
                                        at,
                                        format!("the record of LSN {lsn} changes slot {slot}, which holds no live record"),
                                    ));
                                }
                            }
                        }
                    }
                }
            }
            w.usable = !self.findings.iter().any(|f| f.file == WAL_FILE && f.severity == Severity::Error);
            if w.usable {
                self.last_lsn = last_commit.max(sb.checkpoint_lsn);
            }
        }
        w.txns = scan.txns;
        self.wal = Some(w);
        Ok(())
    }

    /// Live and dead counts of each page, from every deletion in the log.
    fn cross_check(&mut self) {
        let mut dead: HashSet<u64> = HashSet::new();
        let live_now = self.final_rows();
        if let Some(rows) = &live_now {
            // Every slot ever given out that is not live now is dead.
            let known: HashSet<u64> = rows.keys().copied().collect();
            for p in self.vector_pages.iter().chain(&self.quant_pages) {
                dead.extend(p.slots.iter().filter(|s| !known.contains(s)));
            }
        } else {
            return;
        }
        let (Some(vf), Some(sb)) = (&self.vf, self.sb()) else { return };
        let ps = u64::from(sb.page_size);
        for info in &mut self.pages {
            let Some(h) = info.header else { continue };
            if info.checksum != Checksum::Ok || info.role == PageRole::OldDirectory {
                continue;
            }
            match h.page_type {
                PageType::Vector | PageType::Quantized => {
                    let slots = self.vector_pages.iter().chain(&self.quant_pages).find(|p| p.page_no == info.page_no).map(|p| &p.slots);
                    if let Some(slots) = slots {
                        let d = slots.iter().filter(|s| dead.contains(s)).count() as u64;
                        info.dead = Some(d);
                        info.live = Some(slots.len() as u64 - d);
                    }
                }
                PageType::Record => {
                    let bytes = vf.read(info.page_no * ps, u64::from(info.span) * ps).ok().flatten();
                    if let Some(Ok(list)) = bytes.as_deref().map(|b| page::record_entries(b, &h)) {
                        let d = list.iter().filter(|e| dead.contains(&e.slot())).count() as u64;
                        info.dead = Some(d);
                        info.live = Some(list.len() as u64 - d);
                    }
                }
                _ => {}
            }
        }
    }

    /// The live rows as of `lsn` (a commit LSN at or after the checkpoint), if the log can be
    /// read that far.
    fn rows_at(&self, lsn: u64) -> Option<BTreeMap<u64, RowState>> {
        let mut rows = self.sealed.clone()?;
        let Some(w) = &self.wal else { return Some(rows) };
        if !w.usable {
            return if lsn == self.sb()?.checkpoint_lsn { Some(rows) } else { None };
        }
        let offsets: HashMap<u64, u64> = w.records.iter().map(|r| (r.lsn, r.offset)).collect();
        for t in w.txns.iter().take_while(|t| t.commit_lsn <= lsn) {
            for (i, op) in t.ops.iter().enumerate() {
                let l = t.first_lsn + i as u64;
                let loc = Location::Wal { lsn: l, offset: offsets.get(&l).copied().unwrap_or(0) };
                match op {
                    Op::Put { slot, id, text, metadata, .. } => {
                        rows.insert(*slot, RowState { id: id.clone(), text: text.clone(), metadata: metadata.clone(), put: loc, updates: Vec::new() });
                    }
                    Op::Delete { slot, .. } => {
                        rows.remove(slot);
                    }
                    Op::Update { slot, text, metadata } => {
                        if let Some(r) = rows.get_mut(slot) {
                            if let Some(t) = text {
                                r.text.clone_from(t);
                            }
                            if let Some(m) = metadata {
                                r.metadata.clone_from(m);
                            }
                            r.updates.push(loc);
                        }
                    }
                }
            }
        }
        Some(rows)
    }

    /// The live rows after every committed transaction.
    fn final_rows(&self) -> Option<BTreeMap<u64, RowState>> {
        let wal_ok = self.wal.as_ref().is_none_or(|w| w.usable);
        if !wal_ok {
            return None;
        }
        self.rows_at(self.last_lsn)
    }

    /// Every int8 copy against its vector (FORMAT.md §2.8). Returns how many were compared.
    fn check_quantized(&mut self) -> Result<u64> {
        let (Some(vf), Some(sb), Some((layout, qlayout))) = (&self.vf, self.sb().cloned(), self.layouts) else { return Ok(0) };
        if sb.flags & superblock::FLAG_QUANTIZED == 0 {
            return Ok(0); // a version-1 file: the copies are derived at open
        }
        let ps = u64::from(sb.page_size);
        let dim = layout.dim;
        let bad_pages = self.pages.iter().any(|p| matches!(p.page_type, Some(PageType::Vector | PageType::Quantized)) && p.problem.is_some());
        let mut where_q: HashMap<u64, (usize, usize)> = HashMap::new();
        for (pi, p) in self.quant_pages.iter().enumerate() {
            for (i, s) in p.slots.iter().enumerate() {
                where_q.insert(*s, (pi, i));
            }
        }
        let mut seen: HashSet<u64> = HashSet::new();
        let mut findings = Vec::new();
        let mut compared = 0u64;
        let mut codes = vec![0i8; dim];
        let mut qcache: Option<(usize, Vec<u8>)> = None;
        for vp in &self.vector_pages {
            let Some(bytes) = vf.read(vp.page_no * ps, ps).map_err(|e| Error::io("reading a vector page", e))? else { continue };
            let n = vp.slots.len();
            let vbytes = layout.vector_bytes(&bytes, n);
            for (i, slot) in vp.slots.iter().enumerate() {
                let Some(&(qp, qi)) = where_q.get(slot) else {
                    if !bad_pages {
                        findings.push(error(
                            "quant.missing",
                            VEC_FILE,
                            Some(vp.page_no * ps),
                            format!("slot {slot} (vector page {}) has no int8 copy", vp.page_no),
                        ));
                    }
                    continue;
                };
                seen.insert(*slot);
                if qcache.as_ref().is_none_or(|c| c.0 != qp) {
                    let Some(qb) = vf.read(self.quant_pages[qp].page_no * ps, ps).map_err(|e| Error::io("reading a quantized page", e))? else { continue };
                    qcache = Some((qp, qb));
                }
                let Some((_, qb)) = &qcache else { continue };
                let v: Vec<f32> = vbytes[i * dim * 4..(i + 1) * dim * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let want = page::quantize(&v, &mut codes);
                let qn = self.quant_pages[qp].slots.len();
                let params = qlayout.params_owned(qb, qn);
                let stored = qlayout.codes(qb, qn);
                if params.get(qi) != Some(&want) || stored.get(qi * dim..(qi + 1) * dim) != Some(&codes[..]) {
                    let qpage = self.quant_pages[qp].page_no;
                    findings.push(error(
                        "quant.mismatch",
                        VEC_FILE,
                        Some(qpage * ps),
                        format!("the int8 copy of slot {slot} (quantized page {qpage}) is not the quantization of its vector (vector page {})", vp.page_no),
                    ));
                }
                compared += 1;
            }
        }
        if !bad_pages {
            for p in &self.quant_pages {
                for s in p.slots.iter().filter(|s| !seen.contains(s)) {
                    findings.push(error(
                        "quant.extra",
                        VEC_FILE,
                        Some(p.page_no * ps),
                        format!("quantized page {} holds slot {s}, which no vector page holds", p.page_no),
                    ));
                }
            }
        }
        self.findings.extend(findings);
        Ok(compared)
    }

    /// The mirror against the log. Returns its row count and applied LSN, if it was read.
    fn check_mirror(&mut self, lock: &LockState) -> Result<Option<(u64, u64)>> {
        let Some(sb) = self.sb().cloned() else { return Ok(None) };
        let m = match open_mirror_ro(&self.dir, lock) {
            Ok(MirrorOpen::Missing) => {
                self.findings.push(error(
                    "mirror.missing",
                    MIRROR_FILE,
                    None,
                    "there is no mirror file; the engine rebuilds it from the log at open, or run rebuild-mirror".into(),
                ));
                return Ok(None);
            }
            Ok(MirrorOpen::Open(m, tmp)) => (m, tmp),
            Err(e) => {
                self.findings.push(mirror_error(&e, "opening it"));
                return Ok(None);
            }
        };
        let (m, _tmp) = m;
        let mut rows: Vec<MirrorRow> = Vec::new();
        let header = match m.snapshot(&mut |r| rows.push(r)) {
            Ok(h) => h,
            Err(e) => {
                self.findings.push(mirror_error(&e, "reading it"));
                return Ok(None);
            }
        };
        if let Err(e) = m.integrity_check() {
            self.findings.push(mirror_error(&e, "checking its integrity"));
        }
        let Some(header) = header else {
            self.findings.push(error(
                "mirror.store_uuid",
                MIRROR_FILE,
                None,
                "the mirror has no header (no store identity, no applied LSN); the engine rebuilds it at open".into(),
            ));
            return Ok(None);
        };
        let summary = Some((rows.len() as u64, header.applied_lsn));
        if header.store_uuid != sb.store_uuid {
            self.findings.push(error(
                "mirror.store_uuid",
                MIRROR_FILE,
                None,
                format!("the mirror belongs to the store {}, not {}; the engine rebuilds it at open", hex(&header.store_uuid), hex(&sb.store_uuid)),
            ));
            return Ok(summary);
        }
        let applied = header.applied_lsn;
        let wal_ok = self.wal.as_ref().is_some_and(|w| w.usable);
        if applied < sb.checkpoint_lsn {
            self.findings.push(error(
                "mirror.before_checkpoint",
                MIRROR_FILE,
                None,
                format!("the mirror stops at LSN {applied}, before the checkpoint at LSN {}; the engine rebuilds it at open", sb.checkpoint_lsn),
            ));
            return Ok(summary);
        }
        if wal_ok && applied > self.last_lsn {
            self.findings.push(error(
                "mirror.ahead",
                MIRROR_FILE,
                None,
                format!("the mirror has applied LSN {applied} but the log ends at LSN {}; the engine rebuilds it at open", self.last_lsn),
            ));
            return Ok(summary);
        }
        if wal_ok && applied < self.last_lsn {
            self.findings.push(warning(
                "mirror.behind",
                MIRROR_FILE,
                None,
                format!("the mirror has applied LSN {applied} and the log ends at LSN {} (recoverable: the engine replays the rest at open)", self.last_lsn),
            ));
        }
        let Some(want) = self.rows_at(applied) else {
            self.findings.push(warning(
                "mirror.not_compared",
                MIRROR_FILE,
                None,
                format!("the mirror's rows were not compared with the log, which cannot be read up to its applied LSN {applied} (see the other findings)"),
            ));
            return Ok(summary);
        };
        let mut findings = Vec::new();
        let mut got = rows.into_iter().peekable();
        let mut want = want.into_iter().peekable();
        loop {
            match (want.peek(), got.peek()) {
                (None, None) => break,
                (Some((ws, _)), Some(g)) if *ws == g.slot => {
                    let (slot, w) = want.next().unwrap_or_else(|| unreachable!());
                    let g = got.next().unwrap_or_else(|| unreachable!());
                    let mut diff = Vec::new();
                    if g.id != w.id {
                        diff.push(format!("id {:?} where the log has {:?}", g.id, w.id));
                    }
                    if g.text != w.text {
                        diff.push("another text".to_string());
                    }
                    if g.metadata != w.metadata {
                        diff.push(format!(
                            "metadata {} where the log has {}",
                            g.metadata.as_deref().unwrap_or("null"),
                            w.metadata.as_deref().unwrap_or("null")
                        ));
                    }
                    if !diff.is_empty() {
                        findings.push(error("mirror.row_differs", MIRROR_FILE, None, format!("the row of slot {slot} ({:?}) has {}", w.id, diff.join(", "))));
                    }
                }
                (Some((ws, _)), g) if g.is_none_or(|g| *ws < g.slot) => {
                    let (slot, w) = want.next().unwrap_or_else(|| unreachable!());
                    findings.push(error("mirror.missing_row", MIRROR_FILE, None, format!("the live record {:?} (slot {slot}) has no row in the mirror", w.id)));
                }
                _ => {
                    let Some(g) = got.next() else { break };
                    findings.push(error(
                        "mirror.extra_row",
                        MIRROR_FILE,
                        None,
                        format!("the row {:?} (slot {}) is not a live record of the log", g.id, g.slot),
                    ));
                }
            }
        }
        self.findings.extend(findings);
        Ok(summary)
    }

    /// The stored vector of a live slot, where it is, and its int8 copy if sealed.
    fn vector_of(&self, slot: u64) -> Result<(Vec<f32>, Location, Option<QuantCopy>)> {
        let floats = |b: &[u8]| b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>();
        if let (Some(vf), Some(sb), Some((layout, qlayout))) = (&self.vf, self.sb(), self.layouts) {
            let ps = u64::from(sb.page_size);
            let dim = layout.dim;
            for vp in &self.vector_pages {
                let Ok(i) = vp.slots.binary_search(&slot) else { continue };
                let bytes = vf.read(vp.page_no * ps, ps).map_err(|e| Error::io("reading a vector page", e))?;
                let bytes = bytes.ok_or_else(|| Error::corrupted(self.dir.join(VEC_FILE), vp.page_no * ps, "the page lies past the end of the file"))?;
                let v = floats(&layout.vector_bytes(&bytes, vp.slots.len())[i * dim * 4..(i + 1) * dim * 4]);
                let mut quant = None;
                for qp in &self.quant_pages {
                    let Ok(j) = qp.slots.binary_search(&slot) else { continue };
                    if let Some(qb) = vf.read(qp.page_no * ps, ps).map_err(|e| Error::io("reading a quantized page", e))? {
                        let n = qp.slots.len();
                        let scale = qlayout.params_owned(&qb, n).get(j).map_or(0.0, |p| p.scale);
                        quant = qlayout.codes(&qb, n).get(j * dim..(j + 1) * dim).map(|c| (qp.page_no, scale, c.to_vec()));
                    }
                }
                return Ok((v, Location::Page { page_no: vp.page_no, offset: vp.page_no * ps }, quant));
            }
        }
        if let Some(w) = &self.wal {
            for t in &w.txns {
                for (i, op) in t.ops.iter().enumerate() {
                    if let Op::Put { slot: s, vector, .. } = op {
                        if *s == slot {
                            let lsn = t.first_lsn + i as u64;
                            let offset = w.records.iter().find(|r| r.lsn == lsn).map_or(0, |r| r.offset);
                            return Ok((vector.clone(), Location::Wal { lsn, offset }, None));
                        }
                    }
                }
            }
        }
        Err(Error::corrupted(self.dir.join(VEC_FILE), 0, format!("the live slot {slot} has no vector")))
    }
}

/// A mirror failure as a finding: damage, or another failure to read it.
fn mirror_error(e: &Error, doing: &str) -> Finding {
    if mirror::is_damage(e) {
        error("mirror.damaged", MIRROR_FILE, None, format!(
                "{e} (while {doing}); the engine replaces it with one rebuilt from the vector file and the WAL when it meets the damage (at open, or at the first read of a damaged page, which then answers from the rebuilt mirror), or run rebuild-mirror"
            ))
    } else {
        error("mirror.unreadable", MIRROR_FILE, None, format!("{e} (while {doing})"))
    }
}

fn unreferenced_units(findings: &mut Vec<Finding>, from: u64, to: u64, ps: u64) {
    let what = if to - from == 1 { format!("page unit {from} holds") } else { format!("page units {from}..{to} hold") };
    findings.push(warning("page.unreferenced", VEC_FILE, Some(from * ps), format!("{what} no page that a directory lists; the engine never reads them")));
}

/// Apply one record-page entry to the live rows.
fn apply_entry(rows: &mut BTreeMap<u64, RowState>, e: &RecordEntry<'_>, loc: Location) {
    match *e {
        RecordEntry::Put { slot, id, text, metadata, .. } => {
            rows.insert(
                slot,
                RowState { id: id.to_string(), text: text.map(str::to_string), metadata: metadata.map(str::to_string), put: loc, updates: Vec::new() },
            );
        }
        RecordEntry::Update { slot, text, metadata, .. } => {
            if let Some(r) = rows.get_mut(&slot) {
                if let Some(t) = text {
                    r.text = t.map(str::to_string);
                }
                if let Some(m) = metadata {
                    r.metadata = m.map(str::to_string);
                }
                r.updates.push(loc);
            }
        }
    }
}

fn op_kind(op: &Op) -> WalRecordKind {
    match op {
        Op::Put { .. } => WalRecordKind::Put,
        Op::Delete { .. } => WalRecordKind::Delete,
        Op::Update { .. } => WalRecordKind::Update,
    }
}

fn record_info(r: &walmod::ScannedRecord<'_>) -> WalRecordInfo {
    let (kind, slot, id, detail) = match r.payload {
        Payload::Put { slot, id, text, metadata, vector } => (
            WalRecordKind::Put,
            Some(*slot),
            Some(id.to_string()),
            format!("text {} B, metadata {} B, vector {} B", text.map_or(0, str::len), metadata.map_or(0, str::len), vector.len()),
        ),
        Payload::Delete { slot, id } => (WalRecordKind::Delete, Some(*slot), Some(id.to_string()), String::new()),
        Payload::Update { slot, text, metadata } => {
            let what = |name: &str, v: &Option<Option<&str>>| match v {
                None => None,
                Some(None) => Some(format!("{name} set to null")),
                Some(Some(t)) => Some(format!("{name} set ({} B)", t.len())),
            };
            let parts: Vec<String> = [what("text", text), what("metadata", metadata)].into_iter().flatten().collect();
            (WalRecordKind::Update, Some(*slot), None, parts.join(", "))
        }
        Payload::Commit { first_lsn, n_records, synced_through } => (
            WalRecordKind::Commit,
            None,
            None,
            format!("LSNs {first_lsn}..{} ({n_records} records), fsynced through byte {synced_through}", first_lsn + u64::from(*n_records)),
        ),
    };
    WalRecordInfo { offset: r.offset, len: r.len, lsn: r.lsn, kind, slot, id, detail, committed: false }
}

/// Read and verify one page (the whole span its entry gives): header, page number, span, CRC,
/// type, body. Adds findings for what is wrong; returns the page's bytes only if all is well.
fn read_page(
    vf: &RoFile,
    sb: &Superblock,
    layout: &VectorLayout,
    qlayout: &QuantLayout,
    e: &DirEntry,
    role: PageRole,
    findings: &mut Vec<Finding>,
) -> Result<(PageInfo, Option<Vec<u8>>)> {
    let ps = u64::from(sb.page_size);
    let offset = e.page_no.saturating_mul(ps);
    let mut info = PageInfo {
        page_no: e.page_no,
        span: e.span,
        offset,
        page_type: Some(e.page_type),
        role,
        header: None,
        checksum: Checksum::NotChecked,
        live: None,
        dead: None,
        problem: None,
    };
    let what = if role == PageRole::Directory { "the directory".to_string() } else { format!("{} page {}", e.page_type.name(), e.page_no) };
    let mut bad = |kind: &'static str, at: u64, msg: String, info: &mut PageInfo| {
        findings.push(error(kind, VEC_FILE, Some(at), msg.clone()));
        info.problem = Some(msg);
    };
    let len = u64::from(e.span).saturating_mul(ps);
    let Some(bytes) = vf.read(offset, len).map_err(|x| Error::io("reading a page", x))? else {
        bad("vec.truncated", offset, format!("{what} lies past the end of the file ({} bytes)", vf.len), &mut info);
        return Ok((info, None));
    };
    let h = match PageHeader::decode(&bytes) {
        Ok(h) => h,
        Err(d) => {
            // The CRC still says whether the bytes changed since they were written.
            let c = page::header::crc;
            let stored = u32::from_le_bytes([bytes[c.offset], bytes[c.offset + 1], bytes[c.offset + 2], bytes[c.offset + 3]]);
            let actual = memento_format::crc32(sb.file_salt, &[&bytes[..c.offset], &bytes[page::HEADER_LEN..]]);
            info.checksum = if stored == actual { Checksum::Ok } else { Checksum::Mismatch };
            bad("page.header", offset + d.offset as u64, format!("{what}: {} (checksum {})", d.reason, info.checksum.as_str()), &mut info);
            return Ok((info, None));
        }
    };
    info.header = Some(h);
    info.page_type = Some(h.page_type);
    match page::verify(&bytes, sb.file_salt, e.page_no, ps as usize) {
        Ok(_) => info.checksum = Checksum::Ok,
        Err(d) => {
            let kind = if d.offset == page::header::crc.offset {
                info.checksum = Checksum::Mismatch;
                "page.checksum"
            } else if d.offset == page::header::page_no.offset || d.offset == page::header::span.offset {
                "page.misplaced"
            } else {
                "page.body"
            };
            bad(kind, offset + d.offset as u64, format!("{what}: {}", d.reason), &mut info);
            return Ok((info, None));
        }
    }
    if role == PageRole::Listed && h.page_type != e.page_type {
        bad("page.type", offset, format!("page {} is listed as a {} page but is a {} page", e.page_no, e.page_type.name(), h.page_type.name()), &mut info);
        return Ok((info, None));
    }
    if role == PageRole::Directory && h.page_type != PageType::Directory {
        bad("directory.invalid", offset, format!("the superblock's directory page {} is a {} page", e.page_no, h.page_type.name()), &mut info);
        return Ok((info, None));
    }
    if let Err(d) = vecfile::check_body(layout, qlayout, &bytes, &h) {
        bad("page.body", offset + d.offset as u64, format!("{what}: {}", d.reason), &mut info);
        return Ok((info, None));
    }
    Ok((info, Some(bytes)))
}
