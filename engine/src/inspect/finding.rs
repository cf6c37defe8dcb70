//! Findings: what a check found, its kind, and how bad it is.

use std::collections::{BTreeMap, HashMap};

/// At most this many findings of one kind are listed; the rest are counted in one more.
pub(super) const MAX_PER_KIND: usize = 50;

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

/// The kind of a [`Finding`]: a stable name (`as_str`, such as `page.checksum`) and a fixed
/// severity. The table in the [module documentation](super) lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// `store.leftover` (warning): a `*.new` file left by an interrupted write (removed at open).
    StoreLeftover,
    /// `store.changed` (warning): the store kept changing while it was read (a live store).
    StoreChanged,
    /// `vec.missing` (error): there is no vector file.
    VecMissing,
    /// `vec.truncated` (error): the vector file is shorter than its checkpoint's pages.
    VecTruncated,
    /// `vec.live_count` (error): the superblock's live count is not the pages' live records.
    VecLiveCount,
    /// `vec.next_slot` (error): a page holds a slot at or past the superblock's `next_slot`.
    VecNextSlot,
    /// `vec.missing_vector` (error): a live record has no vector.
    VecMissingVector,
    /// `superblock.checksum` (error): a superblock copy fails its CRC (or is zeroed after its first use).
    SuperblockChecksum,
    /// `superblock.invalid` (error): a superblock copy is missing, has a bad magic or an impossible field.
    SuperblockInvalid,
    /// `superblock.none_valid` (error): neither copy is valid: the store cannot be opened.
    SuperblockNoneValid,
    /// `superblock.version` (error): the store needs a newer reader.
    SuperblockVersion,
    /// `superblock.mismatch` (error): the two valid copies disagree on the store's identity.
    SuperblockMismatch,
    /// `directory.invalid` (error): the directory page does not decode or lists impossible pages.
    DirectoryInvalid,
    /// `page.checksum` (error): a page fails its CRC.
    PageChecksum,
    /// `page.header` (error): a page's header does not decode (magic, type, flags, span).
    PageHeader,
    /// `page.misplaced` (error): a page's number or span is not where the directory puts it.
    PageMisplaced,
    /// `page.body` (error): a page's body does not decode (counts, slot order, entries).
    PageBody,
    /// `page.type` (error): a page is not of the type, or first slot, its directory entry says.
    PageType,
    /// `page.unreferenced` (warning): a page unit inside the checkpoint that no directory lists.
    PageUnreferenced,
    /// `quant.missing` (error): a vector has no int8 copy.
    QuantMissing,
    /// `quant.extra` (error): an int8 copy has no vector.
    QuantExtra,
    /// `quant.mismatch` (error): an int8 copy is not the quantization of its vector.
    QuantMismatch,
    /// `wal.missing` (error): there is no WAL (commits after the checkpoint may be lost).
    WalMissing,
    /// `wal.header` (error): the WAL header does not decode, or is of another store or version.
    WalHeader,
    /// `wal.generation` (error): the WAL is not the generation the checkpoint expects.
    WalGeneration,
    /// `wal.stale_generation` (warning): the WAL precedes the last checkpoint (a crash during it; discarded at open).
    WalStaleGeneration,
    /// `wal.torn_tail` (warning): bytes after the last complete transaction (dropped at open).
    WalTornTail,
    /// `wal.damaged` (error): damage inside the part of the WAL that was fsynced: the engine refuses to open.
    WalDamaged,
    /// `wal.slot` (error): a WAL record puts a slot out of order, or changes a slot that is not live.
    WalSlot,
    /// `mirror.missing` (error): there is no mirror file (rebuilt at open, or by `rebuild-mirror`).
    MirrorMissing,
    /// `mirror.damaged` (error): the mirror is not an SQLite database, or not a mirror, or fails `integrity_check` or a page's trailer check (FORMAT.md §6.1); the engine rebuilds it when it meets the damage.
    MirrorDamaged,
    /// `mirror.unreadable` (error): the mirror could not be read (I/O, a newer schema).
    MirrorUnreadable,
    /// `mirror.store_uuid` (error): the mirror belongs to another store, or has no header.
    MirrorStoreUuid,
    /// `mirror.behind` (warning): the mirror has not applied the last commits of the WAL (replayed at open).
    MirrorBehind,
    /// `mirror.before_checkpoint` (error): the mirror stops before the checkpoint.
    MirrorBeforeCheckpoint,
    /// `mirror.ahead` (error): the mirror claims commits the log does not have.
    MirrorAhead,
    /// `mirror.missing_row` (error): a live record of the log has no mirror row.
    MirrorMissingRow,
    /// `mirror.extra_row` (error): a mirror row has no live record in the log.
    MirrorExtraRow,
    /// `mirror.row_differs` (error): a mirror row's id, text or metadata differs from the log.
    MirrorRowDiffers,
    /// `mirror.not_compared` (warning): the rows could not be compared, because the log could not be read whole.
    MirrorNotCompared,
    /// `graph.stale` (warning): the graph file indexes another generation of the vector file (as after a compaction); the engine does not use it, and the writer rebuilds it.
    GraphStale,
    /// `graph.damaged` (error): the graph file fails a check (header, binding to the vector file, a page or a record); it is derived, so no record is lost: the engine does not use it (searches scan), and the writer rebuilds it.
    GraphDamaged,
    /// `collections.leftover` (warning): in a directory of collections, a collection whose create or delete was interrupted (removed at the next open of the directory).
    CollectionsLeftover,
    /// `collections.not_a_collection` (warning): in a directory of collections, an entry that is neither a collection (its name breaks the naming rules) nor the directory's own files; it is ignored.
    CollectionsNotACollection,
}

impl FindingKind {
    /// Every kind, in the order of the table.
    pub const ALL: &'static [FindingKind] = &[
        FindingKind::StoreLeftover,
        FindingKind::StoreChanged,
        FindingKind::VecMissing,
        FindingKind::VecTruncated,
        FindingKind::VecLiveCount,
        FindingKind::VecNextSlot,
        FindingKind::VecMissingVector,
        FindingKind::SuperblockChecksum,
        FindingKind::SuperblockInvalid,
        FindingKind::SuperblockNoneValid,
        FindingKind::SuperblockVersion,
        FindingKind::SuperblockMismatch,
        FindingKind::DirectoryInvalid,
        FindingKind::PageChecksum,
        FindingKind::PageHeader,
        FindingKind::PageMisplaced,
        FindingKind::PageBody,
        FindingKind::PageType,
        FindingKind::PageUnreferenced,
        FindingKind::QuantMissing,
        FindingKind::QuantExtra,
        FindingKind::QuantMismatch,
        FindingKind::WalMissing,
        FindingKind::WalHeader,
        FindingKind::WalGeneration,
        FindingKind::WalStaleGeneration,
        FindingKind::WalTornTail,
        FindingKind::WalDamaged,
        FindingKind::WalSlot,
        FindingKind::MirrorMissing,
        FindingKind::MirrorDamaged,
        FindingKind::MirrorUnreadable,
        FindingKind::MirrorStoreUuid,
        FindingKind::MirrorBehind,
        FindingKind::MirrorBeforeCheckpoint,
        FindingKind::MirrorAhead,
        FindingKind::MirrorMissingRow,
        FindingKind::MirrorExtraRow,
        FindingKind::MirrorRowDiffers,
        FindingKind::MirrorNotCompared,
        FindingKind::GraphStale,
        FindingKind::GraphDamaged,
        FindingKind::CollectionsLeftover,
        FindingKind::CollectionsNotACollection,
    ];

    /// The stable name, such as `page.checksum`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::StoreLeftover => "store.leftover",
            FindingKind::StoreChanged => "store.changed",
            FindingKind::VecMissing => "vec.missing",
            FindingKind::VecTruncated => "vec.truncated",
            FindingKind::VecLiveCount => "vec.live_count",
            FindingKind::VecNextSlot => "vec.next_slot",
            FindingKind::VecMissingVector => "vec.missing_vector",
            FindingKind::SuperblockChecksum => "superblock.checksum",
            FindingKind::SuperblockInvalid => "superblock.invalid",
            FindingKind::SuperblockNoneValid => "superblock.none_valid",
            FindingKind::SuperblockVersion => "superblock.version",
            FindingKind::SuperblockMismatch => "superblock.mismatch",
            FindingKind::DirectoryInvalid => "directory.invalid",
            FindingKind::PageChecksum => "page.checksum",
            FindingKind::PageHeader => "page.header",
            FindingKind::PageMisplaced => "page.misplaced",
            FindingKind::PageBody => "page.body",
            FindingKind::PageType => "page.type",
            FindingKind::PageUnreferenced => "page.unreferenced",
            FindingKind::QuantMissing => "quant.missing",
            FindingKind::QuantExtra => "quant.extra",
            FindingKind::QuantMismatch => "quant.mismatch",
            FindingKind::WalMissing => "wal.missing",
            FindingKind::WalHeader => "wal.header",
            FindingKind::WalGeneration => "wal.generation",
            FindingKind::WalStaleGeneration => "wal.stale_generation",
            FindingKind::WalTornTail => "wal.torn_tail",
            FindingKind::WalDamaged => "wal.damaged",
            FindingKind::WalSlot => "wal.slot",
            FindingKind::MirrorMissing => "mirror.missing",
            FindingKind::MirrorDamaged => "mirror.damaged",
            FindingKind::MirrorUnreadable => "mirror.unreadable",
            FindingKind::MirrorStoreUuid => "mirror.store_uuid",
            FindingKind::MirrorBehind => "mirror.behind",
            FindingKind::MirrorBeforeCheckpoint => "mirror.before_checkpoint",
            FindingKind::MirrorAhead => "mirror.ahead",
            FindingKind::MirrorMissingRow => "mirror.missing_row",
            FindingKind::MirrorExtraRow => "mirror.extra_row",
            FindingKind::MirrorRowDiffers => "mirror.row_differs",
            FindingKind::MirrorNotCompared => "mirror.not_compared",
            FindingKind::GraphStale => "graph.stale",
            FindingKind::GraphDamaged => "graph.damaged",
            FindingKind::CollectionsLeftover => "collections.leftover",
            FindingKind::CollectionsNotACollection => "collections.not_a_collection",
        }
    }

    /// How bad a finding of this kind is.
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::StoreLeftover
            | FindingKind::StoreChanged
            | FindingKind::PageUnreferenced
            | FindingKind::WalStaleGeneration
            | FindingKind::WalTornTail
            | FindingKind::MirrorBehind
            | FindingKind::MirrorNotCompared
            | FindingKind::GraphStale
            | FindingKind::CollectionsLeftover
            | FindingKind::CollectionsNotACollection => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// Whether a finding of this kind, on a store the engine has open, only says that a copy
    /// it keeps for redundancy is lost: a superblock copy that fails its checksum or does not
    /// decode is never the copy in use (the engine could not have opened the store from it),
    /// and the next checkpoint rewrites it. [`crate::Engine::check_integrity`] does not fail
    /// on these; `verify` reports them as errors, since the store has one copy left.
    pub fn only_redundancy_lost(self) -> bool {
        matches!(self, FindingKind::SuperblockChecksum | FindingKind::SuperblockInvalid)
    }

    /// The file a kind's name starts with: `store`, `vec`, `superblock`, `directory`, `page`,
    /// `quant`, `wal`, `mirror`, `graph` or `collections` (the directory of collections).
    pub fn area(self) -> &'static str {
        self.as_str().split('.').next().unwrap_or("")
    }

    /// Whether a finding of this kind concerns a derived file (the SQLite mirror, the graph
    /// index): everything in it is rebuilt from the vector file and the WAL, so it never means
    /// that a record is lost, however bad its severity.
    pub fn in_derived_file(self) -> bool {
        matches!(self.area(), "mirror" | "graph")
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One problem found in a store. See the [module documentation](self) for the kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What was found: a stable name, such as `page.checksum`, with a fixed severity.
    pub kind: FindingKind,
    /// The file, by its name in the store directory.
    pub file: &'static str,
    /// Byte offset in that file, where known.
    pub offset: Option<u64>,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

/// A finding of `kind` (its severity is the kind's).
pub(super) fn finding(kind: FindingKind, file: &'static str, offset: Option<u64>, message: String) -> Finding {
    Finding { severity: kind.severity(), kind, file, offset, message }
}

/// Keep at most [`MAX_PER_KIND`] findings of each kind, plus one that counts the others.
pub(super) fn cap_findings(all: Vec<Finding>) -> Vec<Finding> {
    let mut seen: HashMap<FindingKind, usize> = HashMap::new();
    let mut out = Vec::with_capacity(all.len().min(1000));
    let mut over: BTreeMap<FindingKind, (usize, Finding)> = BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The module documentation's table and the enum say the same: every kind once, with the
    /// same name and severity, in the same order.
    #[test]
    fn the_table_lists_every_kind_with_its_severity() {
        let doc = include_str!("mod.rs");
        let rows: Vec<(String, String)> = doc
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| {
                let (kind, rest) = l.split_once("` | ")?;
                let (severity, _) = rest.split_once(" | ")?;
                Some((kind.to_string(), severity.to_string()))
            })
            .collect();
        let kinds: Vec<(String, String)> = FindingKind::ALL.iter().map(|k| (k.as_str().to_string(), k.severity().as_str().to_string())).collect();
        assert_eq!(rows, kinds);
        let mut names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FindingKind::ALL.len());
    }
}
