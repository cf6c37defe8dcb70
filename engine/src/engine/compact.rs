//! Compaction (FORMAT.md §4.5): the vector file rewritten with only its live records, so that
//! deleted and replaced records stop taking space and scan time.

use std::time::{Duration, Instant};

use super::state::Writer;
use super::Engine;
use crate::error::Result;
use crate::slots::SlotBitmap;
use crate::vecfile::{self, VecFile, COMPACT_FILE};
use crate::wal::{self, Wal};

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
        }
        Ok(CompactInfo { live: done.vectors, dropped, bytes_before, bytes_after: done.bytes, duration: started.elapsed() })
    }
}
