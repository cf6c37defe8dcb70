//! The in-memory state below every other part: the writer's counters, the checkpoint's vector
//! file with what was committed since ([`State`]), applying a committed transaction to it and
//! naming its mirror operations, and the state seen as a [`VectorSource`] for search.

use std::borrow::Cow;

use crate::error::Result;
use crate::index::{QuantBlock, VectorSource};
use crate::mirror::MirrorOp;
use crate::slots::SlotBitmap;
use crate::vecfile::{Pending, PendingRecord, VecFile};
use crate::wal::{Op, Wal};

pub(super) struct Writer {
    pub(super) wal: Wal,
    pub(super) next_lsn: u64,
    pub(super) next_slot: u64,
    /// After an automatic compaction failed (a full disk, say): the number of dead slots at
    /// which to try again, so that a store that cannot compact does not retry at every
    /// checkpoint.
    pub(super) compact_retry_at: u64,
}

pub(super) struct State {
    pub(super) vf: VecFile,
    pub(super) pending: Pending,
    /// Deleted slots.
    pub(super) dead: SlotBitmap,
    pub(super) live_count: u64,
    /// The commit LSN of the last transaction applied (the checkpoint's LSN if none since).
    pub(super) last_lsn: u64,
}

pub(super) fn mirror_ops(ops: &[Op]) -> Vec<MirrorOp<'_>> {
    ops.iter()
        .map(|op| match op {
            Op::Put { slot, id, text, metadata, .. } => MirrorOp::Put { slot: *slot, id, text: text.as_deref(), metadata: metadata.as_deref() },
            Op::Delete { slot, .. } => MirrorOp::Delete { slot: *slot },
            Op::Update { slot, text, metadata } => {
                MirrorOp::Update { slot: *slot, text: text.as_ref().map(|t| t.as_deref()), metadata: metadata.as_ref().map(|m| m.as_deref()) }
            }
        })
        .collect()
}

pub(super) fn apply_to_state(st: &mut State, ops: Vec<Op>, first_lsn: u64, dim: usize) {
    // The commit record follows the ops (wal.rs `encode_txn`).
    st.last_lsn = first_lsn + ops.len() as u64;
    let (capacity, qcapacity) = st.vf.capacities();
    for (i, op) in ops.into_iter().enumerate() {
        let lsn = first_lsn + i as u64;
        match op {
            Op::Put { slot, id, text, metadata, vector } => {
                debug_assert_eq!(vector.len(), dim);
                st.pending.push_vector(slot, lsn, &vector, capacity, qcapacity);
                st.pending.records.push(PendingRecord::Put { slot, lsn, id, text, metadata });
                st.live_count += 1;
            }
            Op::Delete { slot, .. } => {
                st.pending.tombstones.push((slot, lsn));
                st.dead.insert(slot);
                st.live_count = st.live_count.saturating_sub(1);
            }
            Op::Update { slot, text, metadata } => st.pending.records.push(PendingRecord::Update { slot, lsn, text, metadata }),
        }
    }
}

pub(super) struct Source<'a> {
    pub(super) st: &'a State,
    pub(super) dim: usize,
}

impl Source<'_> {
    /// Quantized pages in the vector file. A version-1 file has none: its sealed vectors'
    /// int8 copies are among the pending ones.
    pub(super) fn sealed_quant_blocks(&self) -> usize {
        self.st.vf.quant_pages()
    }
}

impl VectorSource for Source<'_> {
    fn dim(&self) -> usize {
        self.dim
    }
    fn len(&self) -> usize {
        // Every put gives a new slot a vector, which is live or dead until a compaction drops
        // it (and empties `dead`); slot numbers keep counting across compactions, so
        // `next_slot` would count the dropped ones too, and plan a scan of a small compacted
        // store as a large one (threads, the quantized scan).
        (self.st.live_count + self.st.dead.len()) as usize
    }
    fn blocks(&self) -> usize {
        self.st.vf.vector_pages() + self.st.pending.pages.len()
    }
    fn block(&self, i: usize) -> Result<crate::index::Block<'_>> {
        let n = self.st.vf.vector_pages();
        if i < n {
            return self.st.vf.vector_page(i);
        }
        let p = &self.st.pending.pages[i - n];
        Ok((Cow::Borrowed(&p.slots), Cow::Borrowed(&p.vectors)))
    }
    fn quant_blocks(&self) -> usize {
        self.sealed_quant_blocks() + self.st.pending.quant.len()
    }
    fn quant_block(&self, i: usize) -> Result<QuantBlock<'_>> {
        let n = self.sealed_quant_blocks();
        if i < n {
            let (slots, params, codes) = self.st.vf.quant_page(i)?;
            return Ok(QuantBlock { slots, params, codes: Cow::Borrowed(codes) });
        }
        let p = &self.st.pending.quant[i - n];
        Ok(QuantBlock { slots: Cow::Borrowed(&p.slots), params: Cow::Borrowed(&p.params), codes: Cow::Borrowed(&p.codes) })
    }
    fn vector(&self, slot: u64) -> Result<Option<Cow<'_, [f32]>>> {
        if let Some(v) = self.st.pending.vector(slot, self.dim) {
            return Ok(Some(Cow::Borrowed(v)));
        }
        self.st.vf.vector(slot)
    }
    fn is_dead(&self, slot: u64) -> bool {
        self.st.dead.contains(slot)
    }
}

impl crate::graph::Nodes for Source<'_> {
    fn qcap(&self) -> usize {
        self.st.vf.capacities().1
    }
    fn node_bound(&self) -> u64 {
        let qcap = self.qcap() as u64;
        let sealed = self.sealed_quant_blocks() as u64;
        match self.st.pending.quant.last() {
            Some(last) => (sealed + self.st.pending.quant.len() as u64 - 1) * qcap + last.slots.len() as u64,
            None => self.st.vf.sealed_nodes(),
        }
    }
    fn prefetch(&self, n: u32) {
        let qcap = self.qcap();
        let (i, j) = (n as usize / qcap, n as usize % qcap);
        if i < self.sealed_quant_blocks() {
            self.st.vf.prefetch_node(i, j);
        } else if let Some(p) = self.st.pending.quant.get(i - self.sealed_quant_blocks()) {
            if let Some(c) = p.codes.get(j * self.dim..(j + 1) * self.dim) {
                crate::kernels::prefetch(c);
            }
        }
    }
    fn codes(&self, n: u32) -> Result<Option<(&[i8], crate::kernels::QuantParams)>> {
        let qcap = self.qcap();
        let (i, j) = (n as usize / qcap, n as usize % qcap);
        let sealed = self.sealed_quant_blocks();
        if i < sealed {
            return self.st.vf.quant_codes(i, j);
        }
        Ok(self.st.pending.quant.get(i - sealed).and_then(|p| p.params.get(j).map(|&params| (&p.codes[j * self.dim..(j + 1) * self.dim], params))))
    }
    fn node(&self, n: u32) -> Result<Option<crate::graph::NodeRef<'_>>> {
        let qcap = self.qcap();
        let (i, j) = (n as usize / qcap, n as usize % qcap);
        let sealed = self.sealed_quant_blocks();
        if i < sealed {
            return Ok(self.st.vf.quant_node(i, j)?.map(|(codes, params, slot)| crate::graph::NodeRef { codes, params, slot }));
        }
        Ok(self
            .st
            .pending
            .quant
            .get(i - sealed)
            .and_then(|p| p.slots.get(j).map(|&slot| crate::graph::NodeRef { codes: &p.codes[j * self.dim..(j + 1) * self.dim], params: p.params[j], slot })))
    }
}
