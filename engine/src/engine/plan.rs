//! Planning a batch: every id checked and looked up, then each operation turned into the WAL
//! operations it commits (slots given out, replaced records deleted, per-record checks).

use std::collections::{HashMap, HashSet};

use super::check::{self, at_position, truncate};
use super::read::parse_meta;
use super::state::Writer;
use super::types::BatchOp;
use super::{merge_metadata, CommitInfo, Engine, WriteBatch};
use crate::error::{Error, Result};
use crate::wal::Op;

impl Engine {
    pub(super) fn plan(&self, w: &Writer, batch: WriteBatch) -> Result<(Vec<Op>, u64, CommitInfo)> {
        let ids: Vec<&str> = {
            let mut seen = HashSet::new();
            batch
                .ops
                .iter()
                .map(|o| match o {
                    BatchOp::Add(r) | BatchOp::Upsert(r) => r.id.as_str(),
                    BatchOp::Delete(id) | BatchOp::Update { id, .. } | BatchOp::Retext { id, .. } | BatchOp::MergeMetadata { id, .. } => id.as_str(),
                })
                .filter(|id| seen.insert(*id))
                .collect()
        };
        for id in &ids {
            check::check_id(id)?;
        }
        let found = {
            let st = self.state.read();
            self.read_mirror(&st, |m| m.slots_of(&ids))?
        };
        let mut view: HashMap<String, Option<u64>> = ids.iter().map(|s| s.to_string()).zip(found).collect();
        let mut next_slot = w.next_slot;
        let several = batch.ops.len() > 1;
        // Ids whose current record was put by this batch: an add of one is a duplicate within
        // the batch, not of a stored record.
        let mut put_here: HashSet<String> = HashSet::new();
        // A vector's error names its record when the batch has several.
        let vector_of = |i: usize, id: &str, v: Vec<f32>| {
            self.check_vector(v).map_err(|e| if several { at_position(e, &format!("record {i} of the batch (id {:?})", truncate(id))) } else { e })
        };
        let mut ops = Vec::with_capacity(batch.ops.len());
        let mut info = CommitInfo { lsn: None, written: 0, deleted: 0 };
        for (i, op) in batch.ops.into_iter().enumerate() {
            match op {
                BatchOp::Add(mut r) => {
                    if view.get(&r.id).copied().flatten().is_some() {
                        let in_batch = put_here.contains(&r.id);
                        return Err(Error::DuplicateId { id: r.id, in_batch });
                    }
                    // The per-record checks, shared with `check_record` (check.rs).
                    let v = vector_of(i, &r.id, std::mem::take(&mut r.vector))?;
                    let metadata = self.check_put(&r.id, r.text.as_deref(), r.metadata.as_ref(), &v)?;
                    put_here.insert(r.id.clone());
                    view.insert(r.id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id: r.id, text: r.text, metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
                BatchOp::Upsert(mut r) => {
                    // The per-record checks, shared with `check_record` (check.rs).
                    let v = vector_of(i, &r.id, std::mem::take(&mut r.vector))?;
                    let metadata = self.check_put(&r.id, r.text.as_deref(), r.metadata.as_ref(), &v)?;
                    if let Some(old) = view.get(&r.id).copied().flatten() {
                        ops.push(Op::Delete { slot: old, id: r.id.clone() });
                        info.deleted += 1;
                    }
                    put_here.insert(r.id.clone());
                    view.insert(r.id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id: r.id, text: r.text, metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
                BatchOp::Delete(id) => {
                    put_here.remove(&id);
                    if let Some(old) = view.get(&id).copied().flatten() {
                        view.insert(id.clone(), None);
                        ops.push(Op::Delete { slot: old, id });
                        info.deleted += 1;
                    }
                }
                BatchOp::Update { id, text, metadata } => {
                    // The arguments first (an id no record can have, bad metadata): a bad
                    // argument, whether or not the record exists.
                    check::check_id(&id)?;
                    let metadata = match metadata {
                        None => None,
                        Some(None) => Some(None),
                        Some(Some(m)) => Some(Some(check::metadata_json(&m)?)),
                    };
                    if let Some(Some(t)) = &text {
                        check::check_text(t)?;
                    }
                    let Some(slot) = view.get(&id).copied().flatten() else {
                        return Err(Error::NotFound { id });
                    };
                    ops.push(Op::Update { slot, text, metadata });
                }
                BatchOp::Retext { id, text, vector } => {
                    check::check_id(&id)?;
                    check::check_text(&text)?;
                    let Some(old) = view.get(&id).copied().flatten() else {
                        return Err(Error::NotFound { id });
                    };
                    let v = vector_of(i, &id, vector)?;
                    let metadata = self.metadata_as_of(&ops, old, &id)?;
                    ops.push(Op::Delete { slot: old, id: id.clone() });
                    info.deleted += 1;
                    put_here.insert(id.clone());
                    view.insert(id.clone(), Some(next_slot));
                    ops.push(Op::Put { slot: next_slot, id, text: Some(text), metadata, vector: v });
                    next_slot += 1;
                    info.written += 1;
                }
                BatchOp::MergeMetadata { id, patch } => {
                    // The arguments first, as for an update: a patch no record could hold is a
                    // bad argument whether or not the record exists.
                    check::check_id(&id)?;
                    check::metadata_json(&patch)?;
                    let Some(slot) = view.get(&id).copied().flatten() else {
                        return Err(Error::NotFound { id });
                    };
                    let old = parse_meta(self.metadata_as_of(&ops, slot, &id)?)?;
                    let merged = check::metadata_json(&merge_metadata(old.as_ref(), &patch))?;
                    ops.push(Op::Update { slot, text: None, metadata: Some(Some(merged)) });
                }
            }
        }
        // Puts were checked one by one (`check_put`); updates grow a record too.
        for o in &ops {
            check::check_len(o.encoded_len())?;
        }
        Ok((ops, next_slot, info))
    }

    /// The metadata (as stored, JSON text) of the live record `id` in `slot` as of the end of
    /// `ops`, the operations planned so far of a batch: as set by the last of them that put the
    /// record or updated its metadata, else as stored (then `slot` is the stored record's).
    /// Called under the writer lock, so the stored one cannot change before the commit.
    fn metadata_as_of(&self, ops: &[Op], slot: u64, id: &str) -> Result<Option<String>> {
        let earlier = ops.iter().rev().find_map(|o| match o {
            Op::Put { slot: s, metadata, .. } if *s == slot => Some(metadata.clone()),
            Op::Update { slot: s, metadata: Some(m), .. } if *s == slot => Some(m.clone()),
            _ => None,
        });
        match earlier {
            Some(m) => Ok(m),
            None => {
                let st = self.state.read();
                Ok(self.read_mirror(&st, |m| m.row_by_id(id))?.and_then(|row| row.metadata))
            }
        }
    }
}
