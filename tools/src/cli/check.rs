//! Checking an input whole before its first commit: every record by the engine's own rules
//! ([`Engine::check_record`], [`Engine::check_memory`]; no second copy of them here), and no id
//! given twice. A bad record is named by its place (`FILE:LINE`) and nothing is written, however
//! many commits the input would have taken.
//!
//! The input is not held: a first pass ([`scan`]) parses it and checks every id, a second
//! ([`records`]) checks every record and keeps, for each id, a hash of its record's content and
//! what writing it will do; the pass that writes ([`Checked::state`]) reads the input a third
//! time. Memory grows with the number of ids, not with the size of the input.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use memento::{check_id, Engine, Memory, Metadata, Record};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::input::{InputRecord, Place, Source};
use super::store;

/// What writing a record does to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A new id.
    New,
    /// An id stored with something else.
    Updated,
    /// Stored as it is already (or the same record earlier in the input).
    Unchanged,
}

/// What the first pass found.
pub struct Scan {
    /// The number of records.
    pub records: usize,
    /// Where the first record with a vector is.
    pub first_vector: Option<String>,
    /// Whether a record has no vector (a text to embed).
    pub any_text: bool,
    /// The first id that no record can have.
    id_error: Option<anyhow::Error>,
}

impl Scan {
    /// The first record whose id the engine refuses: every id is checked before any record, as
    /// the engine checks a batch.
    pub fn ids(&mut self) -> Result<()> {
        self.id_error.take().map_or(Ok(()), Err)
    }
}

/// The first pass over an input: parses every record (an input that cannot be parsed is refused
/// here), and checks each one's id, which [`Scan::ids`] reports.
pub fn scan(src: &mut Source) -> Result<Scan> {
    let mut s = Scan { records: 0, first_vector: None, any_text: false, id_error: None };
    src.first_pass(|_, r| {
        s.records += 1;
        match &r.vector {
            Some(_) if s.first_vector.is_none() => s.first_vector = Some(r.origin.clone()),
            Some(_) => {}
            None => s.any_text = true,
        }
        if s.id_error.is_none() {
            s.id_error = checked_id(&r).err();
        }
        Ok(())
    })?;
    Ok(s)
}

/// An id of the input, as the second pass found it.
struct Seen {
    /// The hash of its record's content.
    hash: [u8; 16],
    /// Where the record first is.
    place: Place,
    /// What writing it does.
    state: State,
    /// Whether the pass that writes has reached it.
    reached: bool,
}

/// An input that passed [`records`]: for each id, what writing its record does.
pub struct Checked {
    seen: HashMap<String, Seen>,
    records: usize,
    changed: usize,
}

impl Checked {
    /// The number of records of the input.
    pub fn records(&self) -> usize {
        self.records
    }

    /// The number of records to write (not unchanged, not a repeat).
    pub fn changed(&self) -> usize {
        self.changed
    }

    /// The id of the record at `place` in the pass that writes, and what writing it does (a
    /// repeat of an earlier record is unchanged). `None` if it is not the record checked there:
    /// the input has changed since.
    pub fn state(&mut self, place: Place, r: &InputRecord) -> Option<(String, State)> {
        let id = id_of(r).ok()?;
        let seen = self.seen.get_mut(&id)?;
        if seen.hash != content_hash(r) {
            return None;
        }
        if seen.place == place {
            seen.reached = true;
            return Some((id, seen.state));
        }
        // The very same record a second time in the input: stored once.
        seen.reached.then_some((id, State::Unchanged))
    }
}

/// The second pass: checks every record of an input as the writes of `checker`'s store will
/// (`checker` is the store's engine, or an in-memory one like the store to be created), and that
/// an id appears once in the input. The very same record given twice (a line repeated, the same
/// text twice under its derived id) is one record; the same id with anything different is
/// refused, naming both places. `dir` names the store in messages. `classify` tells what writing
/// each record would do; its error is reported once every record has passed.
pub fn records(checker: &Engine, dir: &Path, src: &Source, mut classify: impl FnMut(&str, &InputRecord) -> Result<State>) -> Result<Checked> {
    let mut out = Checked { seen: HashMap::new(), records: 0, changed: 0 };
    let mut lookup_error = None;
    src.each(|place, r| {
        let id = checked_id(&r)?;
        check_one(checker, dir, &id, &r)?;
        out.records += 1;
        let hash = content_hash(&r);
        if let Some(first) = out.seen.get(&id) {
            if first.hash != hash {
                bail!(
                    "{}: the id {id:?} is given a second time (first at {}), with something different; give each record its own id (nothing was stored)",
                    r.origin,
                    src.origin(first.place)
                );
            }
            return Ok(());
        }
        let state = match lookup_error {
            Some(_) => State::New,
            None => classify(&id, &r).unwrap_or_else(|e| {
                lookup_error = Some(e);
                State::New
            }),
        };
        if state != State::Unchanged {
            out.changed += 1;
        }
        out.seen.insert(id, Seen { hash, place, state, reached: false });
        Ok(())
    })?;
    match lookup_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
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

/// A hash of what makes two records of an input the same record: the id as given, the text,
/// the metadata (as `Value`'s equality compares it) and the vector (bit for bit). 128 bits of
/// SHA-256: two different records of one id do not collide.
fn content_hash(r: &InputRecord) -> [u8; 16] {
    let mut h = Sha256::new();
    hash_text(&mut h, r.id.as_deref());
    hash_text(&mut h, r.text.as_deref());
    match &r.metadata {
        None => h.update([0]),
        Some(m) => {
            h.update([1]);
            hash_map(&mut h, m);
        }
    }
    match &r.vector {
        None => h.update([0]),
        Some(v) => {
            h.update([1]);
            h.update((v.len() as u64).to_le_bytes());
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect();
            h.update(&bytes);
        }
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn hash_text(h: &mut Sha256, s: Option<&str>) {
    match s {
        None => h.update([0]),
        Some(s) => {
            h.update([1]);
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
    }
}

fn hash_map(h: &mut Sha256, m: &Metadata) {
    // In key order (serde_json's map is sorted), as the map's equality compares it.
    h.update((m.len() as u64).to_le_bytes());
    for (k, v) in m {
        hash_text(h, Some(k));
        hash_value(h, v);
    }
}

fn hash_value(h: &mut Sha256, v: &Value) {
    match v {
        Value::Null => h.update([0]),
        Value::Bool(b) => h.update([1, u8::from(*b)]),
        // A number as serde_json compares it: an unsigned, a negative or a float integer are
        // three different numbers; a float by value (0.0 equals -0.0).
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                h.update([2]);
                h.update(u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                h.update([3]);
                h.update(i.to_le_bytes());
            } else {
                let f = n.as_f64().unwrap_or_default();
                h.update([4]);
                h.update((if f == 0.0 { 0.0f64 } else { f }).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            h.update([5]);
            hash_text(h, Some(s));
        }
        Value::Array(a) => {
            h.update([6]);
            h.update((a.len() as u64).to_le_bytes());
            for x in a {
                hash_value(h, x);
            }
        }
        Value::Object(m) => {
            h.update([7]);
            hash_map(h, m);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn record(id: &str, metadata: Value, vector: Vec<f32>) -> InputRecord {
        let Value::Object(m) = metadata else { panic!("an object") };
        InputRecord { id: Some(id.into()), text: None, metadata: Some(m), metadata_error: None, vector: Some(vector), origin: "t:1".into() }
    }

    /// How the repeated-id check compared two records when it held them all.
    fn same_record(a: &InputRecord, b: &InputRecord) -> bool {
        let same_vector = match (&a.vector, &b.vector) {
            (Some(x), Some(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()),
            (None, None) => true,
            _ => false,
        };
        a.id == b.id && a.text == b.text && a.metadata == b.metadata && same_vector
    }

    /// The hash is equal exactly when the records are the same record, as the repeated-id check
    /// compared them before it kept hashes.
    #[test]
    fn the_content_hash_follows_record_equality() {
        let pairs = [
            (record("a", serde_json::json!({"x": 0.0}), vec![1.0]), record("a", serde_json::json!({"x": -0.0}), vec![1.0])),
            (record("a", serde_json::json!({"b": 1, "a": [1, "s"]}), vec![1.0]), record("a", serde_json::json!({"a": [1, "s"], "b": 1}), vec![1.0])),
            (record("a", serde_json::json!({"n": -5}), vec![0.5, 2.0]), record("a", serde_json::json!({"n": -5}), vec![0.5, 2.0])),
        ];
        for (a, b) in &pairs {
            assert!(same_record(a, b));
            assert_eq!(content_hash(a), content_hash(b), "{a:?}");
        }
        let different = [
            (record("a", serde_json::json!({"x": 1}), vec![1.0]), record("a", serde_json::json!({"x": 1.0}), vec![1.0])),
            (record("a", serde_json::json!({"x": "1"}), vec![1.0]), record("a", serde_json::json!({"x": 1}), vec![1.0])),
            (record("a", serde_json::json!({}), vec![0.0]), record("a", serde_json::json!({}), vec![-0.0])),
            (record("a", serde_json::json!({"ab": "c"}), vec![1.0]), record("a", serde_json::json!({"a": "bc"}), vec![1.0])),
            (record("a", serde_json::json!({"x": [[1], []]}), vec![1.0]), record("a", serde_json::json!({"x": [[], [1]]}), vec![1.0])),
        ];
        for (a, b) in &different {
            assert!(!same_record(a, b));
            assert_ne!(content_hash(a), content_hash(b), "{a:?}");
        }
        let mut given = record("a", serde_json::json!({}), vec![1.0]);
        let mut derived = given.clone();
        derived.id = None;
        derived.text = Some("a".into());
        given.text = Some("a".into());
        assert_ne!(content_hash(&given), content_hash(&derived), "an id given is not one derived");
    }

    /// The pass that writes takes a record for the one checked only if it is: at the same place,
    /// with the same content (a repeat only after its first).
    #[test]
    fn a_record_changed_after_the_check_is_not_taken_for_the_one_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        let line = |id: &str, v: &str| format!("{{\"id\": \"{id}\", \"vector\": {v}}}\n");
        std::fs::write(&path, line("a", "[1, 0]") + &line("a", "[1, 0]") + &line("b", "[0, 1]")).unwrap();
        let mut src = Source::new(Vec::new(), std::slice::from_ref(&path), None, None, memento::Scope::default());
        scan(&mut src).unwrap().ids().unwrap();
        let engine = Engine::builder_with_storage(std::sync::Arc::new(memento::storage::MemStorage::new())).dimension(2).open().unwrap();
        let mut checked = records(&engine, dir.path(), &src, |_, _| Ok(State::New)).unwrap();
        assert_eq!((checked.records(), checked.changed()), (3, 2));
        let mut states = Vec::new();
        src.each(|place, r| {
            states.push(checked.state(place, &r));
            Ok(())
        })
        .unwrap();
        let want = |id: &str, s| Some((id.to_owned(), s));
        assert_eq!(states, [want("a", State::New), want("a", State::Unchanged), want("b", State::New)]);
        // b edited, then the repeat of a first: neither is the record checked there.
        for edited in [line("a", "[1, 0]") + &line("a", "[1, 0]") + &line("b", "[0, 2]"), line("a", "[1, 0]") + &line("b", "[0, 1]") + &line("a", "[1, 0]")] {
            std::fs::write(&path, edited).unwrap();
            let mut checked = records(&engine, dir.path(), &src, |_, _| Ok(State::New)).unwrap();
            std::fs::write(&path, line("a", "[1, 0]") + &line("a", "[1, 0]") + &line("b", "[0, 1]")).unwrap();
            let mut states = Vec::new();
            src.each(|place, r| {
                states.push(checked.state(place, &r).map(|(_, s)| s));
                Ok(())
            })
            .unwrap();
            assert!(states.contains(&None), "{states:?}");
        }
    }
}
