//! The engine's side of the SQLite mirror: opening it, rebuilding it from the vector file and
//! the state, and reading through it with the one retry a damaged mirror gets.

use std::collections::HashSet;
use std::path::Path;

use memento_format::page::RecordEntry;

use super::state::State;
use super::{io_err, Engine, MIRROR_FILE};
use crate::error::{Error, Result};
use crate::mirror::{is_damage, Mirror, MirrorOp};
use crate::storage::Storage;
use crate::vecfile::VecFile;

impl Engine {
    /// Runs a read on the mirror. If the mirror is damaged (a page fails its check, SQLite
    /// reports corruption), replaces it with one rebuilt from the vector file and the state
    /// since the checkpoint, and runs the read once more; damage again is an error. The
    /// answer of a read that met damage is never used. `st` is the state the mirror mirrors
    /// (a read or write lock held by the caller).
    pub(super) fn read_mirror<T>(&self, st: &State, read: impl Fn(&Mirror) -> Result<T>) -> Result<T> {
        let mut m = self.mirror.lock();
        match read(&m) {
            Err(e) if is_damage(&e) => {
                self.replace_damaged_mirror(&mut m, st, &e)?;
                read(&m).map_err(|e| match e {
                    Error::Mirror { kind: kind @ crate::error::MirrorErrorKind::Damaged, detail, source } => {
                        Error::Mirror { kind, detail: format!("{detail} (again, in the mirror just rebuilt)"), source }
                    }
                    e => e,
                })
            }
            r => r,
        }
    }

    /// Replaces the damaged mirror `m` by a new file filled from `st` (see [`Engine::read_mirror`]).
    /// If that fails, `m` is left unusable (every read fails), never half filled.
    pub(super) fn replace_damaged_mirror(&self, m: &mut Mirror, st: &State, damage: &Error) -> Result<()> {
        drop(std::mem::replace(m, Mirror::unusable()?));
        let mut fresh = fresh_mirror(self.storage.as_ref(), &self.dir)?;
        rebuild_from_state(&mut fresh, st, self.store_uuid)?;
        *m = fresh;
        self.recovery.lock().push(format!("rebuilt the mirror from the vector file and the WAL because {damage}"));
        Ok(())
    }
}

pub(super) fn open_mirror(storage: &dyn Storage, dir: &Path) -> Result<Mirror> {
    if storage.dir_path().is_none() {
        return Mirror::open_memory();
    }
    let path = dir.join(MIRROR_FILE);
    match Mirror::open_file_checked(&path)? {
        Ok(m) => Ok(m),
        // Derived state: a mirror that is damaged or not a database is replaced and rebuilt.
        Err(_damage) => fresh_mirror(storage, dir),
    }
}

/// A new, empty mirror in place of the old one (whose connection must be closed): its files
/// deleted, a new file created (in memory for a store without a directory).
pub(super) fn fresh_mirror(storage: &dyn Storage, dir: &Path) -> Result<Mirror> {
    if storage.dir_path().is_none() {
        return Mirror::open_memory();
    }
    for suffix in ["", "-wal", "-shm"] {
        storage.remove(&format!("{MIRROR_FILE}{suffix}")).map_err(io_err("removing a damaged mirror"))?;
    }
    Mirror::open_file(&dir.join(MIRROR_FILE))
}

/// Fills an empty mirror with the live records of the state: the vector file's (as
/// [`rebuild_mirror`]), then the ones committed since the checkpoint (the WAL's transactions,
/// as the state holds them), all under the state's last commit LSN.
pub(super) fn rebuild_from_state(m: &mut Mirror, st: &State, uuid: [u8; 16]) -> Result<()> {
    m.reset(uuid)?;
    if st.last_lsn == 0 {
        return Ok(());
    }
    let mut ops: Vec<MirrorOp<'_>> = Vec::new();
    if st.vf.superblock().checkpoint_lsn > 0 {
        st.vf.for_each_record(&mut |e| {
            if !st.dead.contains(e.slot()) {
                ops.push(mirror_op(e));
            }
        })?;
    }
    for r in &st.pending.records {
        let e = r.as_entry();
        if !st.dead.contains(e.slot()) {
            ops.push(mirror_op(e));
        }
    }
    m.apply(st.last_lsn, &ops)?;
    Ok(())
}

/// The mirror's operation for a record-page entry.
fn mirror_op(e: RecordEntry<'_>) -> MirrorOp<'_> {
    match e {
        RecordEntry::Put { slot, id, text, metadata, .. } => MirrorOp::Put { slot, id, text, metadata },
        RecordEntry::Update { slot, text, metadata, .. } => MirrorOp::Update { slot, text, metadata },
    }
}

/// Fills an empty mirror with the live records of the vector file, under its checkpoint LSN.
pub(super) fn rebuild_mirror(m: &mut Mirror, vf: &VecFile, uuid: [u8; 16], checkpoint_lsn: u64) -> Result<()> {
    m.reset(uuid)?;
    if checkpoint_lsn == 0 {
        return Ok(());
    }
    let dead: HashSet<u64> = vf.tombstones()?.into_iter().map(|t| t.0).collect();
    let mut ops: Vec<MirrorOp<'_>> = Vec::new();
    vf.for_each_record(&mut |e| {
        if !dead.contains(&e.slot()) {
            ops.push(mirror_op(e));
        }
    })?;
    m.apply(checkpoint_lsn, &ops)?;
    Ok(())
}
