//! Checkpoints: everything since the last one written into the vector file, the mirror
//! checkpointed, and a new WAL generation started (FORMAT.md §4.2).

use super::state::Writer;
use super::Engine;
use crate::error::Result;
use crate::mirror::is_damage;
use crate::vecfile::Pending;
use crate::wal::Wal;

impl Engine {
    /// Write everything since the last checkpoint into the vector file and start a new WAL
    /// (FORMAT.md §4.2). Runs by itself past the WAL limit, and at close past
    /// [`crate::EngineBuilder::close_checkpoint_min`]. Compacts afterwards when the
    /// [`crate::EngineBuilder::auto_compact`] policy says it is due.
    pub fn checkpoint(&self) -> Result<()> {
        self.process.check()?;
        let mut w = self.writer()?;
        self.checkpoint_locked(&mut w)?;
        self.compact_if_due(&mut w);
        Ok(())
    }

    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        self.poisoned.check()?;
        let last_lsn = w.next_lsn - 1;
        let (sb, dir, nv) = {
            // Only writers change the state, and we hold the writer lock: a read lock suffices
            // while the pages are written, so searches go on.
            let st = self.state.read();
            if st.pending.is_empty() {
                return Ok(());
            }
            st.vf.write_pages(&st.pending, w.next_slot, st.live_count, last_lsn).map_err(|e| self.poisoned.record(e))?
        };
        {
            let st = self.state.read();
            let mut m = self.mirror.lock();
            if let Err(e) = m.checkpoint() {
                if !is_damage(&e) {
                    return Err(self.poisoned.record(e));
                }
                self.replace_damaged_mirror(&mut m, &st, &e).map_err(|e| self.poisoned.record(e))?;
                m.checkpoint().map_err(|e| self.poisoned.record(e))?;
            }
        }
        {
            let mut st = self.state.write();
            st.vf.commit(sb, dir, nv).map_err(|e| self.poisoned.record(e))?;
            st.pending = Pending::default();
        }
        let gen = w.wal.header.generation + 1;
        w.wal = Wal::create(self.storage.as_ref(), gen, last_lsn + 1, self.store_uuid).map_err(|e| self.poisoned.record(e))?;
        self.group.new_generation(gen, w.wal.end);
        Ok(())
    }
}
