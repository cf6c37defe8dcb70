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
//! - [`Inspector::graph`]: the graph file `memento.graph` (FORMAT.md §7), if there is one: its
//!   header, levels and what the engine makes of it (used, stale or damaged).
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
//! open). A finding in a derived file ([`FindingKind::in_derived_file`]: the SQLite mirror, the
//! graph index) never means that a record is lost: the engine rebuilds the file from the vector
//! file and the WAL. Its `kind` is one of these stable strings:
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
//! | `graph.stale` | warning | the graph file indexes another generation of the vector file (as after a compaction, FORMAT.md §7.5); the engine does not use it, and the writer rebuilds it |
//! | `graph.damaged` | error | the graph file fails a check of FORMAT.md §7.2 (header, binding to the vector file, a page's CRC, type, level or count, a record's numbers); it is derived, so no record is lost: the engine does not use it (searches scan), and the writer rebuilds it |
//! | `collections.leftover` | warning | in a directory of collections (FORMAT.md §8), a collection whose create or delete was interrupted (removed at the next open of the directory) |
//! | `collections.not_a_collection` | warning | in a directory of collections, an entry that is neither a collection (its name breaks the naming rules) nor the directory's own files; it is ignored |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::MIRROR_FILE;
use crate::error::{Error, Result};
use crate::mirror::Mirror;
use crate::storage::{FsStorage, Storage};
use crate::vecfile::VEC_FILE;
use crate::wal::WAL_FILE;

mod collections;
mod files;
mod finding;
mod graph;
mod log;
mod mirror_check;
mod pages;
mod quant;
mod rebuild;
mod report;
mod superblocks;
mod wal;

pub use collections::{verify_collections, CollectionsVerifyReport};
use files::{lock_state, RoFile};
use finding::{cap_findings, finding};
pub use finding::{Finding, FindingKind, Severity};
use log::Loaded;
use mirror_check::{open_mirror_ro, MirrorOpen};
pub use rebuild::rebuild_mirror;
pub use report::*;
pub use superblocks::hex;
use superblocks::read_superblocks;

/// A read-only view of a store. See the [module documentation](self).
#[derive(Clone)]
pub struct Inspector {
    /// Read through [`Storage::open_read`] only.
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    lock: LockState,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").field("dir", &self.dir).field("lock", &self.lock).finish_non_exhaustive()
    }
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
        let storage = FsStorage::existing(&dir).map_err(|e| Error::io(format!("opening the store directory {}", dir.display()), e))?;
        Ok(Inspector { storage: Arc::new(storage), dir, lock })
    }

    /// Look at the store on any [`Storage`] (the in-memory and simulated ones too), read
    /// through [`Storage::open_read`]. Nobody else is taken to change it while it is read (the
    /// engine's own check holds its writer lock). A storage without a directory has its
    /// mirror in the engine's memory only: pass that to [`Inspector::verify_with`].
    pub fn over(storage: Arc<dyn Storage>) -> Inspector {
        let dir = storage.dir_path().map_or_else(|| PathBuf::from("<memory>"), Path::to_path_buf);
        Inspector { storage, dir, lock: LockState::Free }
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
        let vf = RoFile::open(self.storage.as_ref(), VEC_FILE)?;
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

    /// The graph file, if there is one: its header, every level page and record checked, and
    /// its binding to the current vector file (FORMAT.md §7.2).
    pub fn graph(&self) -> Result<GraphReport> {
        let mut l = self.load()?;
        let before = l.findings.len();
        let graph = l.check_graph(self.storage.as_ref(), &self.lock)?;
        let findings = l.findings.split_off(before);
        Ok(GraphReport { graph, vector_file: l.graph_capacity(), findings: cap_findings(findings) })
    }

    /// Check everything: every checksum, every page's structure, the WAL, the int8 copies, the
    /// graph file (when there is one), and the mirror against the log both ways. A store is
    /// sound when no finding is an error.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.verify_with(None).map(|(r, _)| r)
    }

    /// [`Inspector::verify`], comparing the log with `mirror` when given (an engine's open
    /// mirror), else with the mirror file opened read-only. Also returns the first error the
    /// mirror itself gave, as the mirror gave it (the findings keep only its message).
    pub(crate) fn verify_with(&self, mirror: Option<&Mirror>) -> Result<(VerifyReport, Option<Error>)> {
        let mut l = self.load()?;
        let quantized_checked = l.check_quantized()?;
        let graph = l.check_graph(self.storage.as_ref(), &self.lock)?;
        let mirror = match mirror {
            Some(m) => l.compare_mirror(m)?,
            None if self.storage.dir_path().is_none() => {
                let why = "a store without a directory keeps its mirror in its engine's memory; only the engine's check_integrity compares it";
                l.findings.push(finding(FindingKind::MirrorNotCompared, MIRROR_FILE, None, why.into()));
                None
            }
            None => l.check_mirror(&self.lock)?,
        };
        let mut findings = cap_findings(std::mem::take(&mut l.findings));
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let report = VerifyReport {
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
            graph,
        };
        Ok((report, l.mirror_failure.take()))
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
            let l = Loaded::read(self.storage.as_ref(), &self.dir)?;
            if !self.lock.is_live() {
                return Ok(l);
            }
            let vf = RoFile::open(self.storage.as_ref(), VEC_FILE)?;
            let now = read_superblocks(vf.as_ref(), &mut Vec::new())?;
            if now.raw == l.sb_raw {
                return Ok(l);
            }
            attempt += 1;
            if attempt == 3 {
                let mut l = Loaded::read(self.storage.as_ref(), &self.dir)?;
                l.findings.push(finding(
                    FindingKind::StoreChanged,
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
