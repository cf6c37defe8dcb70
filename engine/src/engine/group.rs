//! Group commit ([`super::Durability::GroupCommit`]): commits append to the WAL under the
//! writer lock, then wait here, after releasing it, for an `fdatasync` that covers them. The
//! first waiter becomes the leader and syncs for everyone written so far; the others wait for
//! it. A checkpoint starts a new WAL generation, which makes every earlier commit durable.

use parking_lot::{Condvar, Mutex};

use super::poison::Poison;
use crate::error::{Error, Result};
use crate::storage::StorageFile;
use std::sync::Arc;

/// A group commit's wait: WAL generation, end offset of the commit, and the WAL file.
pub(super) type DurableWait = (u64, u64, Arc<dyn StorageFile>);

struct GroupState {
    generation: u64,
    written: u64,
    synced: u64,
    leader: bool,
}

/// Where the WAL of the current generation is written and synced to.
pub(super) struct GroupCommit {
    state: Mutex<GroupState>,
    cv: Condvar,
}

impl GroupCommit {
    /// For a WAL of generation `generation`, written and synced up to `end`.
    pub(super) fn new(generation: u64, end: u64) -> Self {
        GroupCommit { state: Mutex::new(GroupState { generation, written: end, synced: end, leader: false }), cv: Condvar::new() }
    }

    /// How far the WAL of generation `generation` is known to be synced (`None` for another
    /// generation).
    pub(super) fn synced_through(&self, generation: u64) -> Option<u64> {
        let g = self.state.lock();
        (g.generation == generation).then_some(g.synced)
    }

    /// A commit was appended up to `end`: what its writer waits for.
    pub(super) fn appended(&self, end: u64, file: &Arc<dyn StorageFile>) -> DurableWait {
        let mut g = self.state.lock();
        g.written = end;
        (g.generation, end, Arc::clone(file))
    }

    /// The WAL of generation `generation` was synced up to `end` by someone else (a `sync`).
    pub(super) fn synced(&self, generation: u64, end: u64) {
        let mut g = self.state.lock();
        if g.generation == generation {
            g.synced = g.synced.max(end);
        }
        self.cv.notify_all();
    }

    /// A checkpoint started WAL generation `generation`, `end` bytes long: every waiter is done.
    pub(super) fn new_generation(&self, generation: u64, end: u64) {
        let mut g = self.state.lock();
        g.generation = generation;
        g.written = end;
        g.synced = end;
        self.cv.notify_all();
    }

    /// Returns once the commit ending at `end` of WAL generation `gen` is durable: synced by a
    /// leader (this thread, if none is syncing), or made so by a checkpoint.
    pub(super) fn wait(&self, (gen, end, file): DurableWait, poison: &Poison) -> Result<()> {
        let mut g = self.state.lock();
        loop {
            if g.generation != gen || g.synced >= end {
                return Ok(());
            }
            poison.check()?;
            if g.leader {
                self.cv.wait(&mut g);
                continue;
            }
            g.leader = true;
            let target = g.written;
            drop(g);
            let r = file.sync_data();
            g = self.state.lock();
            g.leader = false;
            self.cv.notify_all();
            match r {
                Ok(()) if g.generation == gen => g.synced = g.synced.max(target),
                Ok(()) => {}
                Err(e) => return Err(poison.record(Error::io("syncing the WAL", e))),
            }
        }
    }
}
