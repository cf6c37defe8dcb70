//! The mirror, opened read-only, against the log.

use std::path::{Path, PathBuf};

use super::finding::{finding, Finding, FindingKind};
use super::log::Loaded;
use super::report::LockState;
use super::superblocks::hex;
use crate::engine::MIRROR_FILE;
use crate::error::{Error, Result};
use crate::mirror::{self, Mirror, MirrorRow};
use crate::wal as walmod;

pub(super) enum MirrorOpen {
    Missing,
    /// The mirror, and the temporary copy it was opened from, if any (removed on drop).
    Open(Mirror, Option<TempCopy>),
}

/// A directory removed when dropped.
pub(super) struct TempCopy(PathBuf);

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn open_mirror_ro(dir: &Path, lock: &LockState) -> Result<MirrorOpen> {
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

impl Loaded {
    /// The mirror against the log. Returns its row count and applied LSN, if it was read.
    pub(super) fn check_mirror(&mut self, lock: &LockState) -> Result<Option<(u64, u64)>> {
        if self.sb().is_none() {
            return Ok(None);
        }
        let m = match open_mirror_ro(&self.dir, lock) {
            Ok(MirrorOpen::Missing) => {
                self.findings.push(finding(
                    FindingKind::MirrorMissing,
                    MIRROR_FILE,
                    None,
                    "there is no mirror file; the engine rebuilds it from the log at open, or run rebuild-mirror".into(),
                ));
                return Ok(None);
            }
            Ok(MirrorOpen::Open(m, tmp)) => (m, tmp),
            Err(e) => {
                self.mirror_failed(e, "opening it");
                return Ok(None);
            }
        };
        let (m, _tmp) = m;
        self.compare_mirror(&m)
    }

    /// The mirror `m` against the log: its header, its own integrity, and every row both ways.
    /// Returns its row count and applied LSN, if it was read.
    pub(super) fn compare_mirror(&mut self, m: &Mirror) -> Result<Option<(u64, u64)>> {
        let Some(sb) = self.sb().cloned() else { return Ok(None) };
        let mut rows: Vec<MirrorRow> = Vec::new();
        let header = match m.snapshot(&mut |r| rows.push(r)) {
            Ok(h) => h,
            Err(e) => {
                self.mirror_failed(e, "reading it");
                return Ok(None);
            }
        };
        if let Err(e) = m.integrity_check() {
            self.mirror_failed(e, "checking its integrity");
        }
        let Some(header) = header else {
            self.findings.push(finding(
                FindingKind::MirrorStoreUuid,
                MIRROR_FILE,
                None,
                "the mirror has no header (no store identity, no applied LSN); the engine rebuilds it at open".into(),
            ));
            return Ok(None);
        };
        let summary = Some((rows.len() as u64, header.applied_lsn));
        if header.store_uuid != sb.store_uuid {
            self.findings.push(finding(
                FindingKind::MirrorStoreUuid,
                MIRROR_FILE,
                None,
                format!("the mirror belongs to the store {}, not {}; the engine rebuilds it at open", hex(&header.store_uuid), hex(&sb.store_uuid)),
            ));
            return Ok(summary);
        }
        let applied = header.applied_lsn;
        let wal_ok = self.wal.as_ref().is_some_and(|w| w.usable);
        if applied < sb.checkpoint_lsn {
            self.findings.push(finding(
                FindingKind::MirrorBeforeCheckpoint,
                MIRROR_FILE,
                None,
                format!("the mirror stops at LSN {applied}, before the checkpoint at LSN {}; the engine rebuilds it at open", sb.checkpoint_lsn),
            ));
            return Ok(summary);
        }
        if wal_ok && applied > self.last_lsn {
            self.findings.push(finding(
                FindingKind::MirrorAhead,
                MIRROR_FILE,
                None,
                format!("the mirror has applied LSN {applied} but the log ends at LSN {}; the engine rebuilds it at open", self.last_lsn),
            ));
            return Ok(summary);
        }
        if wal_ok && applied < self.last_lsn {
            self.findings.push(finding(
                FindingKind::MirrorBehind,
                MIRROR_FILE,
                None,
                format!("the mirror has applied LSN {applied} and the log ends at LSN {} (recoverable: the engine replays the rest at open)", self.last_lsn),
            ));
        }
        let Some(want) = self.rows_at(applied) else {
            self.findings.push(finding(
                FindingKind::MirrorNotCompared,
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
                        findings.push(finding(
                            FindingKind::MirrorRowDiffers,
                            MIRROR_FILE,
                            None,
                            format!("the row of slot {slot} ({:?}) has {}", w.id, diff.join(", ")),
                        ));
                    }
                }
                (Some((ws, _)), g) if g.is_none_or(|g| *ws < g.slot) => {
                    let (slot, w) = want.next().unwrap_or_else(|| unreachable!());
                    findings.push(finding(
                        FindingKind::MirrorMissingRow,
                        MIRROR_FILE,
                        None,
                        format!("the live record {:?} (slot {slot}) has no row in the mirror", w.id),
                    ));
                }
                _ => {
                    let Some(g) = got.next() else { break };
                    findings.push(finding(
                        FindingKind::MirrorExtraRow,
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
}

/// A mirror failure as a finding: damage, or another failure to read it.
impl Loaded {
    /// A mirror failure as a finding (damage, or another failure to read it); the first one is
    /// also kept as the error it was, for [`crate::Engine::check_integrity`].
    fn mirror_failed(&mut self, e: Error, doing: &str) {
        self.findings.push(mirror_error(&e, doing));
        self.mirror_failure.get_or_insert(e);
    }
}

fn mirror_error(e: &Error, doing: &str) -> Finding {
    if mirror::is_damage(e) {
        finding(FindingKind::MirrorDamaged, MIRROR_FILE, None, format!(
                "{e} (while {doing}); the engine replaces it with one rebuilt from the vector file and the WAL when it meets the damage (at open, or at the first read of a damaged page, which then answers from the rebuilt mirror), or run rebuild-mirror"
            ))
    } else {
        finding(FindingKind::MirrorUnreadable, MIRROR_FILE, None, format!("{e} (while {doing})"))
    }
}
