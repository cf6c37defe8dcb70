//! The whole log (pages and WAL) read into [`Loaded`], and the live rows it gives.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use memento_format::page::{self, PageType, QuantLayout, RecordEntry, VectorLayout};
use memento_format::superblock::{Slot, Superblock};
use memento_format::wal::WalHeader;

use super::files::RoFile;
use super::finding::{finding, Finding, FindingKind};
use super::report::{Checksum, Location, PageInfo, PageRole, QuantCopy, WalRecordInfo, WalTail, WalTxnInfo};
use super::superblocks::read_superblocks;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::vecfile::VEC_FILE;
use crate::wal::{Op, Txn, WAL_FILE};

/// A live record as the log gives it.
#[derive(Debug, Clone)]
pub(super) struct RowState {
    pub(super) id: String,
    pub(super) text: Option<String>,
    pub(super) metadata: Option<String>,
    pub(super) put: Location,
    pub(super) updates: Vec<Location>,
}

/// A vector or quantized page that verified, with its slots.
pub(super) struct SlotPage {
    pub(super) page_no: u64,
    pub(super) slots: Vec<u64>,
}

pub(super) struct WalLoaded {
    pub(super) file_len: u64,
    pub(super) header: Option<WalHeader>,
    pub(super) records: Vec<WalRecordInfo>,
    pub(super) txns: Vec<Txn>,
    pub(super) txn_infos: Vec<WalTxnInfo>,
    pub(super) tail: Option<WalTail>,
    /// The WAL's records can be replayed (header good, right generation, no damage).
    pub(super) usable: bool,
}

pub(super) struct Loaded {
    pub(super) dir: PathBuf,
    pub(super) findings: Vec<Finding>,
    pub(super) sb: Option<(Superblock, Slot)>,
    pub(super) sb_raw: Vec<Option<Vec<u8>>>,
    pub(super) vf: Option<RoFile>,
    pub(super) layouts: Option<(VectorLayout, QuantLayout)>,
    pub(super) pages: Vec<PageInfo>,
    pub(super) vector_pages: Vec<SlotPage>,
    pub(super) quant_pages: Vec<SlotPage>,
    /// Live rows as of the checkpoint, if every record and tombstone page could be read.
    pub(super) sealed: Option<BTreeMap<u64, RowState>>,
    pub(super) wal: Option<WalLoaded>,
    pub(super) last_lsn: u64,
    /// The first error the mirror gave, as it gave it (see `mirror_check.rs`).
    pub(super) mirror_failure: Option<Error>,
}

impl Loaded {
    pub(super) fn sb(&self) -> Option<&Superblock> {
        self.sb.as_ref().map(|s| &s.0)
    }

    pub(super) fn read(storage: &dyn Storage, dir: &Path) -> Result<Loaded> {
        let mut findings = Vec::new();
        for leftover in [format!("{VEC_FILE}.new"), format!("{WAL_FILE}.new")] {
            if storage.exists(&leftover).map_err(|e| Error::io("looking for leftover files", e))? {
                let file = if leftover.starts_with(VEC_FILE) { VEC_FILE } else { WAL_FILE };
                findings.push(finding(
                    FindingKind::StoreLeftover,
                    file,
                    None,
                    format!(
                        "{leftover} was left by an interrupted {}; it was never part of the store, and the engine removes it at open",
                        if file == VEC_FILE { "compaction" } else { "checkpoint" }
                    ),
                ));
            }
        }
        let vf = RoFile::open(storage, VEC_FILE)?;
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
            mirror_failure: None,
        };
        let readable = l.sb().is_some_and(|sb| sb.min_reader_version <= memento_format::FORMAT_VERSION);
        if readable {
            l.read_pages()?;
            l.read_wal(storage)?;
            l.cross_check();
        }
        Ok(l)
    }
}

impl Loaded {
    /// Live and dead counts of each page, from every deletion in the log.
    pub(super) fn cross_check(&mut self) {
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
    pub(super) fn rows_at(&self, lsn: u64) -> Option<BTreeMap<u64, RowState>> {
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
    pub(super) fn final_rows(&self) -> Option<BTreeMap<u64, RowState>> {
        let wal_ok = self.wal.as_ref().is_none_or(|w| w.usable);
        if !wal_ok {
            return None;
        }
        self.rows_at(self.last_lsn)
    }

    /// The stored vector of a live slot, where it is, and its int8 copy if sealed.
    pub(super) fn vector_of(&self, slot: u64) -> Result<(Vec<f32>, Location, Option<QuantCopy>)> {
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

/// Apply one record-page entry to the live rows.
pub(super) fn apply_entry(rows: &mut BTreeMap<u64, RowState>, e: &RecordEntry<'_>, loc: Location) {
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
