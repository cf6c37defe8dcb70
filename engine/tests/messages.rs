//! Messages that say what is wrong (issue 13, item 9): a duplicate id within one batch, an
//! invalid vector in a batch (which record), a damaged superblock copy, the missing model.

use memento::{Engine, Error, Metric, Record, WriteBatch};

#[test]
fn an_id_given_twice_in_one_batch_is_not_called_already_existing() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    let mut b = WriteBatch::new();
    b.add(Record::new("x", vec![1.0, 0.0])).add(Record::new("y", vec![0.0, 1.0])).add(Record::new("x", vec![1.0, 1.0]));
    let err = e.write(b).expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::DuplicateId { ref id, in_batch: true } if id == "x"), "{err:?}");
    assert!(msg.contains("twice") && !msg.contains("already exists"), "{msg}");
    assert_eq!(e.count(), 0, "nothing was written");
    // Really stored already: still "already exists".
    e.add(Record::new("x", vec![1.0, 0.0])).expect("add");
    let msg = e.add(Record::new("x", vec![1.0, 0.0])).expect_err("refused").to_string();
    assert!(msg.contains("already exists"), "{msg}");
    // An upsert then an add of the same id in one batch is given twice as well.
    let mut b = WriteBatch::new();
    b.upsert(Record::new("z", vec![1.0, 0.0])).add(Record::new("z", vec![1.0, 0.0]));
    let msg = e.write(b).expect_err("refused").to_string();
    assert!(msg.contains("twice"), "{msg}");
    // A delete then an add in one batch is a replacement, not a duplicate.
    let mut b = WriteBatch::new();
    b.delete("x").add(Record::new("x", vec![0.0, 1.0]));
    e.write(b).expect("delete then add");
}

#[test]
fn an_invalid_vector_in_a_batch_names_its_record() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).metric(Metric::Cosine).open().expect("open");
    let mut b = WriteBatch::new();
    b.add(Record::new("a", vec![1.0, 0.0])).add(Record::new("b", vec![0.5, 0.5])).add(Record::new("c", vec![1.0, f32::NAN]));
    let err = e.write(b).expect_err("refused");
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidVector { .. }), "{err:?}");
    assert!(msg.contains("record 2") && msg.contains("\"c\"") && msg.contains("element 1"), "{msg}");
    let mut b = WriteBatch::new();
    b.add(Record::new("a", vec![1.0, 0.0])).upsert(Record::new("zero", vec![0.0, 0.0]));
    let msg = e.write(b).expect_err("refused").to_string();
    assert!(msg.contains("record 1") && msg.contains("\"zero\"") && msg.contains("zero vector"), "{msg}");
    // One record alone needs no position.
    let msg = e.add(Record::new("a", vec![f32::INFINITY, 0.0])).expect_err("refused").to_string();
    assert!(msg.contains("element 0") && !msg.contains("record 0"), "{msg}");
    // A batch of queries names the query.
    let msg = e.search_batch(&[1.0, 0.0, f32::NAN, 0.0], &memento::SearchOptions::new(1)).expect_err("refused").to_string();
    assert!(msg.contains("query 1"), "{msg}");
}

#[test]
fn a_damaged_superblock_copy_is_reported_as_damage_not_as_a_wal_mismatch() {
    use memento_format::superblock::{Slot, Superblock, LEN};
    let dir = tempfile::tempdir().expect("tmp");
    let e = Engine::builder(dir.path()).dimension(2).open().expect("open");
    for i in 0..3 {
        e.add(Record::new(format!("r{i}"), vec![1.0, i as f32])).expect("add");
        e.checkpoint().expect("checkpoint");
    }
    e.close().expect("close");
    let path = dir.path().join("memento.vec");
    let mut bytes = std::fs::read(&path).expect("read");
    let a = Superblock::decode(&bytes[..LEN]).expect("A");
    let b = Superblock::decode(&bytes[4096..4096 + LEN]).expect("B");
    let current = if a.sequence > b.sequence { Slot::A } else { Slot::B };
    let at = current.offset() as usize + 40;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    let err = Engine::open(dir.path()).expect_err("refused: the newer checkpoint is lost");
    let msg = err.to_string();
    assert!(matches!(&err, Error::Corrupted { file, .. } if file.ends_with("memento.vec")), "{err:?}");
    let name = if current == Slot::A { "copy A" } else { "copy B" };
    assert!(msg.contains("superblock") && msg.contains(name) && msg.contains("damaged"), "{msg}");
}

#[test]
fn the_missing_model_message_names_methods_that_exist() {
    let msg = Error::NoModel.to_string();
    assert!(!msg.contains("EngineBuilder::model)") && !msg.contains("EngineBuilder::model "), "{msg}");
    for m in ["default_model", "model_dir", "embedder"] {
        assert!(msg.contains(m), "{msg} does not name EngineBuilder::{m}");
    }
}
