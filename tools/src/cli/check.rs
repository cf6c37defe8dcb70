//! Checking an input whole before its first commit: every record by the engine's own rules
//! ([`Engine::check_record`], [`Engine::check_memory`]; no second copy of them here), and no id
//! given twice. A bad record is named by its place (`FILE:LINE`) and nothing is written, however
//! many commits the input would have taken.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use memento::{check_id, Engine, Memory, Record};

use super::input::InputRecord;
use super::store;

/// Records that passed [`records`]: ready to be written, each with its id.
pub struct Checked {
    /// The records in input order, with their ids (given, or derived from the text).
    pub records: Vec<(String, InputRecord)>,
    /// For each record, whether it repeats an earlier one of the input exactly (it is stored
    /// once).
    pub repeats: Vec<bool>,
}

/// Checks every record of an input as the writes of `checker`'s store will (`checker` is the
/// store's engine, or an in-memory one like the store to be created), and that an id appears
/// once in the input. The very same record given twice (a line repeated, the same text twice
/// under its derived id) is one record; the same id with anything different is refused, naming
/// both places. `dir` names the store in messages.
pub fn records(checker: &Engine, dir: &Path, recs: Vec<InputRecord>) -> Result<Checked> {
    let mut first: HashMap<String, usize> = HashMap::with_capacity(recs.len());
    let mut out = Checked { records: Vec::with_capacity(recs.len()), repeats: Vec::with_capacity(recs.len()) };
    // Every id first, then each record in turn: the order the engine checks a batch in, so that
    // an input with several faults is refused for the one the engine would name.
    let ids = recs.iter().map(checked_id).collect::<Result<Vec<_>>>()?;
    for (id, r) in ids.into_iter().zip(recs) {
        check_one(checker, dir, &id, &r)?;
        let repeat = match first.get(&id) {
            None => {
                first.insert(id.clone(), out.records.len());
                false
            }
            Some(&i) => {
                let earlier = &out.records[i].1;
                if !same_record(earlier, &r) {
                    bail!(
                        "{}: the id {id:?} is given a second time (first at {}), with something different; give each record its own id (nothing was stored)",
                        r.origin,
                        earlier.origin
                    );
                }
                true
            }
        };
        out.records.push((id, r));
        out.repeats.push(repeat);
    }
    Ok(out)
}

/// The id a record is stored under: its own, or the one derived from its text.
fn id_of(r: &InputRecord) -> Result<String> {
    match (&r.id, &r.text) {
        (Some(id), _) => Ok(id.clone()),
        (None, Some(t)) => Ok(Engine::content_id(t)),
        (None, None) => bail!("{}: a record with only a vector needs an id", r.origin),
    }
}

/// The id a record is stored under, checked as the engine checks an id.
fn checked_id(r: &InputRecord) -> Result<String> {
    let id = id_of(r)?;
    check_id(&id).map_err(|e| anyhow!("{}: {e} Nothing was stored.", r.origin))?;
    Ok(id)
}

/// One record, by the engine's checks of the write that stores it.
fn check_one(checker: &Engine, dir: &Path, id: &str, r: &InputRecord) -> Result<()> {
    if let Some(bad) = &r.metadata_error {
        // The engine checks a record's vector before its metadata.
        if let Some(v) = &r.vector {
            checker.check_record(&Record::new(id.to_owned(), v.clone())).map_err(|e| anyhow!("{}: {e} Nothing was stored.", r.origin))?;
        }
        bail!("{}: {bad}", r.origin);
    }
    let checked = match &r.vector {
        Some(v) => {
            let mut rec = Record::new(id.to_owned(), v.clone());
            rec.text = r.text.clone();
            rec.metadata = r.metadata.clone();
            checker.check_record(&rec)
        }
        None if checker.embedder().is_none() => return Err(anyhow!("{}: {}", r.origin, store::raw_store(dir))),
        None => checker.check_memory(&Memory { id: r.id.clone(), text: r.text.clone().unwrap_or_default(), metadata: r.metadata.clone() }),
    };
    checked.map_err(|e| anyhow!("{}: {e} Nothing was stored.", r.origin))
}

/// Whether two records of an input are the same record (vectors compared bit for bit).
fn same_record(a: &InputRecord, b: &InputRecord) -> bool {
    let same_vector = match (&a.vector, &b.vector) {
        (Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
        (None, None) => true,
        _ => false,
    };
    a.id == b.id && a.text == b.text && a.metadata == b.metadata && same_vector
}
