//! What each command of the inspector returns.

use memento_format::graph::GraphHeader;
use memento_format::page::{PageHeader, PageType};
use memento_format::superblock::Superblock;
use memento_format::wal::WalHeader;

use super::finding::{Finding, Severity};
use crate::mirror::MirrorRow;

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
    /// The graph file, if there is one.
    pub graph: Option<GraphCheck>,
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

/// What the engine makes of the graph file (FORMAT.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphStatus {
    /// It is bound to the current vector file and passed every check: the engine uses it.
    Usable,
    /// It indexes another generation of the vector file (why): the engine does not use it, and
    /// the writer rebuilds it.
    Stale(String),
    /// It failed a check (see the findings): the engine does not use it, and the writer
    /// rebuilds it.
    Damaged,
    /// There is no valid superblock to compare it with; its own structure was checked.
    NotCompared,
}

impl GraphStatus {
    /// `"usable"`, `"stale"`, `"damaged"` or `"not compared"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            GraphStatus::Usable => "usable",
            GraphStatus::Stale(_) => "stale",
            GraphStatus::Damaged => "damaged",
            GraphStatus::NotCompared => "not compared",
        }
    }
}

/// The graph file `memento.graph` as read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphCheck {
    /// Bytes in the file.
    pub file_len: u64,
    /// Its header, if it decodes (`levels[l]` gives level `l`'s first page, pages and records;
    /// `node_bound` is the nodes it covers).
    pub header: Option<GraphHeader>,
    /// Whether the engine uses it.
    pub status: GraphStatus,
    /// Level pages read whose CRC, type, level and record count verified.
    pub pages_checked: u64,
    /// Records whose numbers were checked (neighbour counts, node, lower record and neighbours
    /// in range).
    pub records_checked: u64,
}

/// What [`Inspector::graph`] returns.
#[derive(Debug, Clone)]
pub struct GraphReport {
    /// The graph file, `None` when there is none (a store without a graph is complete: the
    /// graph is derived and optional).
    pub graph: Option<GraphCheck>,
    /// The quantized page capacity of the vector file (the `qcap` a graph must number its
    /// nodes with) and the nodes of its sealed quantized pages, when known.
    pub vector_file: Option<(u32, u64)>,
    /// Problems with the graph file.
    pub findings: Vec<Finding>,
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
