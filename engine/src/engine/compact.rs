//! Compaction (FORMAT.md §4.5): the vector file rewritten with only its live records, so that
//! deleted and replaced records stop taking space and scan time.

use std::time::{Duration, Instant};

use super::state::Writer;
use super::Engine;
use crate::error::Result;
use crate::slots::SlotBitmap;
use crate::vecfile::{self, VecFile, COMPACT_FILE};
use crate::wal::{self, Wal};

/// When a store compacts itself (see [`crate::EngineBuilder::auto_compact`]): after a commit
/// or a checkpoint, and at close, when the deleted and replaced records (checkpointed or not)
/// are at least `dead_fraction` of its vectors and at least `min_dead` of them. The default is
/// 40% and 256. The fraction keeps a store within 1.7× of its live records' size and scan time
/// and makes a compaction rewrite at most 1.5 live vectors per vector it drops (Qdrant vacuums
/// at 20%, Lance materialises deletions at 10%; a rewrite of the whole file, as here, is worth
/// waiting for more). The minimum bounds a compaction's fixed cost (about four fsyncs, as a
/// checkpoint) to one per 256 deletes or replacements, so a tiny store that churns does not
/// compact at every commit; it is low enough that a store of a thousand records rewritten
/// batch by batch stays within 2× of a fresh one (`make bench-small-writes`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactPolicy {
    /// The share of dead vectors, 0 to 1.
    pub dead_fraction: f64,
    /// The number of dead vectors.
    pub min_dead: u64,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy { dead_fraction: 0.4, min_dead: 256 }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactInfo {
    /// Live records kept.
    pub live: u64,
    /// Deleted or replaced records whose vectors, int8 copies and record entries were dropped.
    pub dropped: u64,
    /// The vector file's size before and after, in bytes.
    pub bytes_before: u64,
    /// See `bytes_before`.
    pub bytes_after: u64,
    /// How long writes waited: the whole compaction runs under the writer lock (searches and
    /// reads go on, in this process and in readers).
    pub duration: Duration,
}

impl Engine {
    /// Rewrites the vector file with only its live records (FORMAT.md §4.5): a checkpoint,
    /// then a new generation written beside the old one in memory bounded by a few pages, then
    /// one atomic switch (a rename, then the directory's fsync). Until the switch is durable
    /// nothing of the old generation is removed, and a crash at any point leaves the old
    /// generation or the new one, never a mix. Slots keep their numbers, so the mirror and
    /// the embedding cache stay as they are. Writes wait while it runs (`duration`); searches
    /// and reads do not, and readers in other processes move to the new generation at their
    /// next read.
    pub fn compact(&self) -> Result<CompactInfo> {
        self.process.check()?;
        let mut w = self.writer()?;
        self.compact_locked(&mut w)
    }

    /// Compacts when the policy says it is due (after every commit and checkpoint, and at
    /// close, under the writer lock).
    /// Whatever happens, the commits before it stand, so a failure is not the caller's: it is
    /// noted in [`crate::Stats::recovery`] and tried again once `min_dead` more slots have died
    /// (a failure that poisoned the engine fails the next write, as any poisoning does).
    pub(super) fn compact_if_due(&self, w: &mut Writer) {
        let Some(p) = self.auto_compact else {
            return;
        };
        let (dead, live) = {
            let st = self.state.read();
            (st.dead.len(), st.live_count)
        };
        let due = dead >= p.min_dead.max(w.compact_retry_at) && dead as f64 >= p.dead_fraction * (dead + live) as f64;
        if !due {
            return;
        }
        if let Err(e) = self.compact_locked(w) {
            w.compact_retry_at = dead + p.min_dead.max(1);
            self.recovery.lock().push(format!("an automatic compaction failed and left the store as it was: {e}"));
        }
    }

    pub(super) fn compact_locked(&self, w: &mut Writer) -> Result<CompactInfo> {
        self.poisoned.check()?;
        let started = Instant::now();
        // 1. Everything committed is in the pages (and the mirror durable at the same LSN).
        self.checkpoint_locked(w)?;
        // 2. The new generation, beside the old one; a failure here leaves the store as it was.
        let (sb, done, bytes_before, dropped) = {
            let st = self.state.read();
            let written = st.vf.write_compacted(self.storage.as_ref(), &st.dead, wal::random_u64() as u32);
            match written {
                Ok((sb, done)) => (sb, done, st.vf.sealed_len(), st.dead.len()),
                Err(e) => {
                    let _ = self.storage.remove(COMPACT_FILE);
                    return Err(e);
                }
            }
        };
        // 3. The switch: the rename is the commit point; the directory's fsync makes it durable.
        if let Err(e) = self.storage.rename(COMPACT_FILE, vecfile::VEC_FILE) {
            let _ = self.storage.remove(COMPACT_FILE);
            return Err(crate::error::Error::io("renaming the compacted vector file into place", e));
        }
        self.storage.sync_dir().map_err(|e| self.poisoned.record(crate::error::Error::io("syncing the directory after a compaction", e)))?;
        // 4. The WAL continues the new generation (as a checkpoint's step 4); a crash before
        //    this point leaves the previous WAL generation, which recovery discards.
        w.wal = Wal::create(self.storage.as_ref(), sb.wal_generation, sb.checkpoint_lsn + 1, self.store_uuid).map_err(|e| self.poisoned.record(e))?;
        self.group.new_generation(sb.wal_generation, w.wal.end);
        // 5. The new generation mapped; dead slots have no pages any more.
        let vf = VecFile::open(self.storage.as_ref(), self.dir.join(vecfile::VEC_FILE)).map_err(|e| self.poisoned.record(e))?;
        {
            let mut st = self.state.write();
            st.vf = vf;
            st.dead = SlotBitmap::default();
            // The nodes are numbered anew (FORMAT.md §7.5): marked under the state's lock, so
            // that no search or builder pairs an old graph with the new file.
            self.graph.renumbered();
        }
        self.graph.drop_stale();
        self.graph.wake();
        // 6. The mirror without the free pages its deleted rows left, when they are many. It is
        //    derived and already durable at `L`: a failure here (a full disk) costs only the
        //    space, and is noted.
        if let Err(e) = self.mirror.lock().vacuum_if_sparse() {
            self.recovery.lock().push(format!("the compaction could not vacuum the mirror (it keeps its free pages): {e}"));
        }
        Ok(CompactInfo { live: done.vectors, dropped, bytes_before, bytes_after: done.bytes, duration: started.elapsed() })
    }
}
