//! A reference model of a store's contents for the crash tests (`kill_loop.rs`,
//! `power_loss.rs`): records by id, the operations a commit can hold, and how the engine applies
//! them (an `add` of a stored id or an update of a missing one refuses the whole batch; a delete
//! of a missing id does nothing).

use std::collections::BTreeMap;

use memento::{Engine, Metadata, Record, WriteBatch};

/// One record as the model keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rec {
    pub vector: Vec<f32>,
    pub text: Option<String>,
    pub metadata: Option<Metadata>,
}

/// The store's contents by id.
pub type Model = BTreeMap<String, Rec>;

/// One operation of a commit.
#[derive(Debug, Clone)]
pub enum Op {
    Add(String, Rec),
    Upsert(String, Rec),
    Delete(String),
    Meta(String, Option<Metadata>),
    Text(String, Option<String>),
}

/// Applies one operation as the engine does; `Err` when the engine refuses it (the whole batch
/// then changes nothing).
pub fn apply(m: &mut Model, op: &Op) -> Result<(), ()> {
    match op {
        Op::Add(id, r) => {
            if m.contains_key(id) {
                return Err(());
            }
            m.insert(id.clone(), r.clone());
        }
        Op::Upsert(id, r) => {
            m.insert(id.clone(), r.clone());
        }
        Op::Delete(id) => {
            m.remove(id);
        }
        Op::Meta(id, meta) => m.get_mut(id).ok_or(())?.metadata = meta.clone(),
        Op::Text(id, text) => m.get_mut(id).ok_or(())?.text = text.clone(),
    }
    Ok(())
}

/// The engine's record for a model record.
pub fn record(id: &str, r: &Rec) -> Record {
    Record { id: id.to_owned(), vector: r.vector.clone(), text: r.text.clone(), metadata: r.metadata.clone() }
}

/// What the store holds, as a model; an error if a record cannot be read or `count` disagrees
/// with what iterating finds.
pub fn contents(e: &Engine) -> Result<Model, String> {
    let mut m = Model::new();
    for r in e.iter() {
        let r = r.map_err(|e| format!("iterating: {e}"))?;
        m.insert(r.id, Rec { vector: r.vector, text: r.text, metadata: r.metadata });
    }
    if m.len() as u64 != e.count() {
        return Err(format!("iter gives {} records, count says {}", m.len(), e.count()));
    }
    Ok(m)
}

/// Sends `ops` to the engine: as the single call for the op when there is one and `single`,
/// else as one batch.
pub fn issue(e: &Engine, ops: &[Op], single: bool) -> memento::Result<()> {
    if let ([op], true) = (ops, single) {
        return match op {
            Op::Add(id, r) => e.add(record(id, r)).map(drop),
            Op::Upsert(id, r) => e.upsert(record(id, r)).map(drop),
            Op::Delete(id) => e.delete(id).map(drop),
            Op::Meta(id, m) => e.update_metadata(id, m.clone()),
            Op::Text(id, t) => e.update_text(id, t.clone()),
        };
    }
    e.write(batch(ops)).map(drop)
}

/// `ops` as one batch.
pub fn batch(ops: &[Op]) -> WriteBatch {
    let mut b = WriteBatch::new();
    for op in ops {
        match op {
            Op::Add(id, r) => b.add(record(id, r)),
            Op::Upsert(id, r) => b.upsert(record(id, r)),
            Op::Delete(id) => b.delete(id.clone()),
            Op::Meta(id, m) => b.update_metadata(id.clone(), m.clone()),
            Op::Text(id, t) => b.update_text(id.clone(), t.clone()),
        };
    }
    b
}

/// The full-text index agrees with `m` (the store's contents): a keyword search for each of the
/// first 8 texts (every word of it, any may match) finds its record among all matches, and
/// every hit of every search is a live record with a text.
pub fn check_keywords(e: &Engine, m: &Model) -> Result<(), String> {
    let k = usize::try_from(e.count()).unwrap_or(usize::MAX).max(1);
    for (id, r) in m.iter().filter(|(_, r)| r.text.is_some()).take(8) {
        let text = r.text.as_deref().unwrap_or_default();
        let hits = e.keyword_search(text, &memento::SearchOptions::new(k).ids_only()).map_err(|err| format!("keyword search: {err}"))?;
        if memento::fts_query(text).is_some() && !hits.iter().any(|h| &h.id == id) {
            return Err(format!("a keyword search for the text of {id:?} ({text:?}) does not find it"));
        }
        if let Some(h) = hits.iter().find(|h| m.get(&h.id).is_none_or(|r| r.text.is_none())) {
            return Err(format!("a keyword search found {:?}, which is not a live record with a text", h.id));
        }
    }
    Ok(())
}
