//! The WAL, judged by the engine's own recovery scan.

use std::collections::{HashMap, HashSet};

use memento_format::wal::{Payload, WalHeader};

use super::files::RoFile;
use super::finding::{finding, FindingKind, Severity};
use super::log::{Loaded, WalLoaded};
use super::report::{WalRecordInfo, WalRecordKind, WalTail, WalTxnInfo};
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::wal as walmod;
use crate::wal::{Op, WAL_FILE};

impl Loaded {
    /// The WAL: header checks as at open, then the engine's recovery scan.
    pub(super) fn read_wal(&mut self, storage: &dyn Storage) -> Result<()> {
        let Some(sb) = self.sb().cloned() else { return Ok(()) };
        self.last_lsn = sb.checkpoint_lsn;
        let Some(f) = RoFile::open(storage, WAL_FILE)? else {
            self.findings.push(finding(
                FindingKind::WalMissing,
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
                self.findings.push(finding(
                    FindingKind::WalHeader,
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
            Some(finding(FindingKind::WalHeader, WAL_FILE, Some(wh::store_uuid.offset as u64), "the WAL belongs to another store".into()))
        } else if header.format_version > memento_format::FORMAT_VERSION {
            Some(finding(
                FindingKind::WalHeader,
                WAL_FILE,
                Some(wh::format_version.offset as u64),
                format!("the WAL was written by format version {}", header.format_version),
            ))
        } else if header.generation + 1 == sb.wal_generation {
            Some(finding(
                FindingKind::WalStaleGeneration,
                WAL_FILE,
                Some(wh::generation.offset as u64),
                format!("the WAL is generation {}, before the checkpoint's {} (a crash during a checkpoint or a compaction, after its new vector file and before its new WAL): everything in it is in the pages already; the engine replaces it at open", header.generation, sb.wal_generation),
            ))
        } else if header.generation != sb.wal_generation {
            Some(finding(
                FindingKind::WalGeneration,
                WAL_FILE,
                Some(wh::generation.offset as u64),
                format!("the WAL is generation {} but the checkpoint expects {}", header.generation, sb.wal_generation),
            ))
        } else if header.start_lsn != start_lsn {
            Some(finding(
                FindingKind::WalGeneration,
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
            Some(f) if f.kind == FindingKind::WalStaleGeneration => {
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
                    Some(q) => self.findings.push(finding(
                        FindingKind::WalDamaged,
                        WAL_FILE,
                        Some(t.offset),
                        format!("{}, inside the part of the log that was already fsynced (the commit record at offset {q} vouches for it): the engine refuses to open the store", t.reason),
                    )),
                    None => self.findings.push(finding(
                        FindingKind::WalTornTail,
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
                                self.findings.push(finding(
                                    FindingKind::WalSlot,
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
                                    self.findings.push(finding(
                                        FindingKind::WalSlot,
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
}

pub(super) fn op_kind(op: &Op) -> WalRecordKind {
    match op {
        Op::Put { .. } => WalRecordKind::Put,
        Op::Delete { .. } => WalRecordKind::Delete,
        Op::Update { .. } => WalRecordKind::Update,
    }
}

pub(super) fn record_info(r: &walmod::ScannedRecord<'_>) -> WalRecordInfo {
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
