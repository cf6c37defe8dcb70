//! [`Engine::check_integrity`].

use std::collections::HashSet;

use memento_format::page::RecordEntry;

use super::state::Source;
use super::{Engine, MIRROR_FILE};
use crate::error::{Error, Result};
use crate::index::VectorSource;
use crate::vecfile::{self, PendingRecord};

impl Engine {
    /// Check everything: every page's checksum and structure, the mirror's own integrity, and
    /// that the mirror and the vector file agree both ways (the same live slots, a vector for
    /// each, the live count). Returns [`Error::Corrupted`] naming the first disagreement.
    pub fn check_integrity(&self) -> Result<()> {
        self.process.check()?;
        let st = self.state.read();
        st.vf.verify_all()?;
        let mut live: HashSet<u64> = HashSet::new();
        st.vf.for_each_record(&mut |e| {
            if let RecordEntry::Put { slot, .. } = e {
                live.insert(slot);
            }
        })?;
        for r in &st.pending.records {
            if let PendingRecord::Put { slot, .. } = r {
                live.insert(*slot);
            }
        }
        live.retain(|s| !st.dead.contains(*s));
        let mirror_path = self.file_path(MIRROR_FILE);
        let m = self.mirror.lock();
        m.integrity_check()?;
        let in_mirror = m.all_slots()?;
        drop(m);
        if in_mirror.len() != live.len() || in_mirror.iter().any(|s| !live.contains(s)) {
            let extra = in_mirror.iter().filter(|s| !live.contains(s)).count();
            let missing = live.len() + extra - in_mirror.len();
            return Err(Error::corrupted(
                mirror_path,
                0,
                format!("the mirror disagrees with the log: {extra} slots only in the mirror, {missing} only in the vector file and WAL"),
            ));
        }
        if live.len() as u64 != st.live_count {
            return Err(Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("{} live records but the count says {}", live.len(), st.live_count)));
        }
        let src = Source { st: &st, dim: self.dim };
        for &s in &in_mirror {
            if src.vector(s)?.is_none() {
                return Err(Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("live slot {s} has no vector")));
            }
        }
        self.check_quantized(&src)
    }

    /// The int8 copies hold exactly the slots of the vectors, in order, each the quantization
    /// of its vector (FORMAT.md §2.8: derived state, so it can be recomputed and compared).
    fn check_quantized(&self, src: &Source<'_>) -> Result<()> {
        let bad = |why: String| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, why);
        let (mut qb, mut qi) = (0usize, 0usize);
        let mut cur = if src.quant_blocks() > 0 { Some(src.quant_block(0)?) } else { None };
        let mut codes = vec![0i8; self.dim];
        for b in 0..src.blocks() {
            let (slots, vecs) = src.block(b)?;
            for (slot, v) in slots.iter().zip(vecs.chunks_exact(self.dim)) {
                while cur.as_ref().is_some_and(|q| qi == q.slots.len()) {
                    qb += 1;
                    qi = 0;
                    cur = if qb < src.quant_blocks() { Some(src.quant_block(qb)?) } else { None };
                }
                let q = cur.as_ref().ok_or_else(|| bad(format!("slot {slot} has no int8 copy")))?;
                if q.slots[qi] != *slot {
                    return Err(bad(format!("the int8 copies hold slot {} where the vectors hold slot {slot}", q.slots[qi])));
                }
                let p = memento_format::page::quantize(v, &mut codes);
                if p != q.params[qi] || codes[..] != q.codes[qi * self.dim..(qi + 1) * self.dim] {
                    return Err(bad(format!("the int8 copy of slot {slot} is not the quantization of its vector")));
                }
                qi += 1;
            }
        }
        if cur.as_ref().is_some_and(|q| qi < q.slots.len()) || qb + 1 < src.quant_blocks() {
            return Err(bad("the int8 copies hold slots that no vector page holds".into()));
        }
        Ok(())
    }
}
