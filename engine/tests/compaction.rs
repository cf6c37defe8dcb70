//! Compaction (FORMAT.md §4.5): the vector file rewritten with only its live records gives the
//! space of deleted and replaced records back, keeps every live record exactly (vector, int8
//! copy, text, metadata, slot, order), and leaves a store that opens, verifies and goes on.

use memento::inspect::{FindingKind, Inspector};
use memento::{Engine, Error, Filter, Metadata, Metric, Record, WriteBatch};

fn meta(i: u64) -> Metadata {
    let mut m = Metadata::new();
    m.insert("i".into(), i.into());
    m.insert("even".into(), i.is_multiple_of(2).into());
    m
}

/// A vector of its own for each `i` (a multiplicative hash of `i` and the element).
fn vector(i: u64, dim: usize) -> Vec<f32> {
    (0..dim as u64)
        .map(|j| ((i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32)
        .collect()
}

/// A store that compacts only when told to (these tests call [`Engine::compact`] themselves).
fn open(path: &std::path::Path) -> Engine {
    Engine::builder(path).dimension(16).metric(Metric::L2).page_size(8192).auto_compact(None).open().expect("open")
}

/// A record as a comparable tuple: id, vector, text, metadata.
type Row = (String, Vec<f32>, Option<String>, Option<Metadata>);

fn snapshot(e: &Engine) -> Vec<Row> {
    e.iter().map(|r| r.expect("record")).map(|r| (r.id, r.vector, r.text, r.metadata)).collect()
}

#[test]
fn compaction_gives_space_back_and_keeps_every_live_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    for chunk in 0..10u64 {
        let mut b = WriteBatch::new();
        for i in chunk * 200..(chunk + 1) * 200 {
            b.add(Record::new(format!("r{i}"), vector(i, 16)).with_text(format!("text {i}")).with_metadata(meta(i)));
        }
        e.write(b).expect("add");
    }
    // 90% deleted; some of the rest updated and replaced.
    for i in 0..2000u64 {
        if !i.is_multiple_of(10) {
            e.delete(&format!("r{i}")).expect("delete");
        }
    }
    e.update_text("r10", Some("new text".into())).expect("update");
    e.merge_metadata("r20", meta(999)).expect("merge");
    e.upsert(Record::new("r30", vector(3030, 16)).with_metadata(meta(3030))).expect("upsert");
    let before = snapshot(&e);
    let query = vector(500, 16);
    let hits_before: Vec<String> = e.search(&query, 20, None).expect("search").into_iter().map(|h| h.id).collect();
    e.checkpoint().expect("checkpoint");
    let size_before = std::fs::metadata(path.join("memento.vec")).expect("stat").len();

    let info = e.compact().expect("compact");
    assert_eq!(info.live, 200);
    assert!(info.dropped >= 1800, "{info:?}");
    let size_after = std::fs::metadata(path.join("memento.vec")).expect("stat").len();
    assert_eq!(size_after, info.bytes_after);
    assert!(size_after * 4 < size_before, "{size_before} -> {size_after}");
    assert!(!path.join("memento.vec.new").exists());

    // Every live record as it was, in the same order; searches and filters alike.
    assert_eq!(snapshot(&e), before);
    assert_eq!(e.count(), 200);
    let hits_after: Vec<String> = e.search(&query, 20, None).expect("search").into_iter().map(|h| h.id).collect();
    assert_eq!(hits_after, hits_before);
    let f = Filter::from_json_str(r#"{"even": true}"#).expect("filter");
    assert_eq!(
        e.get_where(&f, None).expect("get_where").len(),
        before.iter().filter(|r| r.3.as_ref().and_then(|m| m.get("even")) == Some(&true.into())).count()
    );
    assert_eq!(e.stats().deleted, 0);
    e.check_integrity().expect("integrity after compaction");

    // Writes go on; a second compaction, a close and a reopen keep it all.
    e.add(Record::new("after", vector(7777, 16))).expect("add after");
    e.delete("r40").expect("delete after");
    e.compact().expect("second compaction");
    let now = snapshot(&e);
    e.close().expect("close");
    let e = open(&path);
    assert_eq!(snapshot(&e), now);
    e.check_integrity().expect("integrity after reopen");
    assert_eq!(e.search(&vector(7777, 16), 1, None).expect("search")[0].id, "after");
}

#[test]
fn a_store_upserted_over_and_over_shrinks_to_its_live_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    for round in 0..30u64 {
        let mut b = WriteBatch::new();
        for i in 0..100u64 {
            b.upsert(Record::new(format!("r{i}"), vector(i + round, 16)).with_metadata(meta(round)));
        }
        e.write(b).expect("upsert");
        e.checkpoint().expect("checkpoint");
    }
    let grown = std::fs::metadata(path.join("memento.vec")).expect("stat").len();
    e.compact().expect("compact");
    let compacted = std::fs::metadata(path.join("memento.vec")).expect("stat").len();
    // A fresh store of the same 100 records, for comparison.
    let fresh_path = tmp.path().join("fresh");
    let fresh = open(&fresh_path);
    let mut b = WriteBatch::new();
    for r in e.iter() {
        b.upsert(r.expect("record"));
    }
    fresh.write(b).expect("fresh");
    fresh.checkpoint().expect("checkpoint");
    fresh.close().expect("close");
    let fresh_size = std::fs::metadata(fresh_path.join("memento.vec")).expect("stat").len();
    assert!(compacted < grown / 5, "{grown} -> {compacted}");
    assert!(compacted <= fresh_size * 115 / 100, "compacted {compacted} against a fresh store's {fresh_size}");
}

#[test]
fn a_reader_follows_across_a_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    for i in 0..300u64 {
        e.add(Record::new(format!("r{i}"), vector(i, 16)).with_metadata(meta(i))).expect("add");
    }
    let reader = Engine::open_read_only(&path).expect("reader");
    assert_eq!(reader.count(), 300);
    for i in 0..250u64 {
        e.delete(&format!("r{i}")).expect("delete");
    }
    e.compact().expect("compact");
    assert_eq!(reader.count(), 50);
    assert_eq!(reader.get("r260").expect("get").expect("live").vector, vector(260, 16));
    assert!(reader.get("r10").expect("get").is_none());
    e.add(Record::new("new", vector(9999, 16))).expect("add");
    assert_eq!(reader.search(&vector(9999, 16), 1, None).expect("search")[0].id, "new");
}

#[test]
fn compaction_is_refused_by_a_reader_and_a_leftover_is_removed_at_open() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    e.add(Record::new("a", vector(1, 16))).expect("add");
    let reader = Engine::open_read_only(&path).expect("reader");
    assert!(matches!(reader.compact(), Err(Error::ReadOnly { .. })));
    e.close().expect("close");
    // A crash while the new generation was being written leaves memento.vec.new: it is never
    // the store's, and the next open removes it.
    std::fs::write(path.join("memento.vec.new"), b"half a compaction").expect("write");
    let e = open(&path);
    assert!(!path.join("memento.vec.new").exists());
    assert_eq!(e.get("a").expect("get").expect("a").vector, vector(1, 16));
}

#[test]
fn a_store_compacts_itself_when_enough_of_its_records_are_dead() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    // The default policy: 40% dead and at least 256.
    let e = Engine::builder(&path).dimension(16).metric(Metric::L2).page_size(8192).open().expect("open");
    let mut b = WriteBatch::new();
    for i in 0..3000u64 {
        b.add(Record::new(format!("r{i}"), vector(i, 16)));
    }
    e.write(b).expect("add");
    e.checkpoint().expect("checkpoint");
    let mut b = WriteBatch::new();
    for i in 0..1000u64 {
        b.delete(format!("r{i}"));
    }
    e.write(b).expect("delete");
    e.checkpoint().expect("checkpoint: 1,000 dead of 3,000, under 40%");
    assert_eq!(e.stats().deleted, 1000);
    let mut b = WriteBatch::new();
    for i in 1000..2100u64 {
        b.delete(format!("r{i}"));
    }
    e.write(b).expect("delete: 2,100 dead of 3,000, past both: this commit compacts");
    let s = e.stats();
    assert_eq!((s.deleted, s.count), (0, 900), "{s:?}");
    assert_eq!(e.iter().count(), 900);
    e.check_integrity().expect("integrity");

    // Under the minimum: 200 dead of 250 is 80%, but fewer than 256.
    let small = tmp.path().join("small");
    let e = Engine::builder(&small).dimension(16).metric(Metric::L2).open().expect("open");
    let mut b = WriteBatch::new();
    for i in 0..250u64 {
        b.add(Record::new(format!("r{i}"), vector(i, 16)));
    }
    e.write(b).expect("add");
    for i in 0..200u64 {
        e.delete(&format!("r{i}")).expect("delete");
    }
    e.checkpoint().expect("checkpoint");
    assert_eq!(e.stats().deleted, 200);
    e.close().expect("close");
    assert_eq!(Engine::open(&small).expect("reopen").stats().deleted, 200, "and not at close either");

    // Off: nothing compacts.
    let path2 = tmp.path().join("off");
    let e = Engine::builder(&path2).dimension(16).metric(Metric::L2).auto_compact(None).open().expect("open");
    let mut b = WriteBatch::new();
    for i in 0..3000u64 {
        b.add(Record::new(format!("r{i}"), vector(i, 16)));
    }
    e.write(b).expect("add");
    for i in 0..2500u64 {
        e.delete(&format!("r{i}")).expect("delete");
    }
    e.checkpoint().expect("checkpoint");
    assert_eq!(e.stats().deleted, 2500);
}

#[test]
fn a_small_write_costs_about_what_it_holds() {
    // 100 opens, each adding one vector and closing: the store stays the size of a fresh store
    // of the same 100 records (a small WAL is left at close and replayed at the next open).
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    for i in 0..100u64 {
        let e = Engine::builder(&path).dimension(4).metric(Metric::L2).open().expect("open");
        e.add(Record::new(format!("r{i}"), vector(i, 4))).expect("add");
        e.close().expect("close");
    }
    let fresh = tmp.path().join("fresh");
    let e = Engine::builder(&fresh).dimension(4).metric(Metric::L2).open().expect("open");
    let mut b = WriteBatch::new();
    for i in 0..100u64 {
        b.add(Record::new(format!("r{i}"), vector(i, 4)));
    }
    e.write(b).expect("add");
    e.close().expect("close");
    let size = |p: &std::path::Path| -> u64 { std::fs::read_dir(p).expect("dir").map(|f| f.expect("entry").metadata().expect("meta").len()).sum() };
    let (many, one) = (size(&path), size(&fresh));
    assert!(many <= 2 * one, "100 small writes made {many} bytes, a fresh store of the same records {one}");
    let e = Engine::open(&path).expect("reopen");
    assert_eq!(e.count(), 100);
    e.check_integrity().expect("integrity");
}

#[test]
fn memento_inspect_understands_every_state_a_compaction_can_leave() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    for i in 0..400u64 {
        e.add(Record::new(format!("r{i}"), vector(i, 16)).with_metadata(meta(i))).expect("add");
    }
    for i in 0..300u64 {
        e.delete(&format!("r{i}")).expect("delete");
    }
    e.checkpoint().expect("checkpoint");
    // The WAL a compaction replaces (after the checkpoint, so it holds only its header).
    let old_wal = std::fs::read(path.join("memento.wal")).expect("read the WAL");
    e.compact().expect("compact");
    e.close().expect("close");
    let kinds = |p: &std::path::Path| -> Vec<(FindingKind, String)> {
        let r = Inspector::open(p).expect("inspector").verify().expect("verify");
        r.findings.into_iter().map(|f| (f.kind, f.message)).collect()
    };
    // Done: nothing to report (both superblock copies are valid ones of the new generation).
    assert_eq!(kinds(&path), vec![], "a compacted store");

    // A crash after the rename and before the new WAL: the new file with the old WAL, a
    // warning (it is discarded at open), no error.
    std::fs::write(path.join("memento.wal"), &old_wal).expect("write the old WAL");
    let found = kinds(&path);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, FindingKind::WalStaleGeneration, "{found:?}");
    assert!(found[0].1.contains("compaction"), "{found:?}");
    // A crash while the new file was being written: a leftover, no error.
    std::fs::write(path.join("memento.vec.new"), b"half a compaction").expect("write");
    let found = kinds(&path);
    assert!(found.iter().any(|(k, m)| *k == FindingKind::StoreLeftover && m.contains("compaction")), "{found:?}");
    let r = Inspector::open(&path).expect("inspector").verify().expect("verify");
    assert!(r.is_ok(), "{:?}", r.findings);
    // And the engine opens both states to the same records.
    let e = open(&path);
    assert_eq!(e.count(), 100);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
    assert!(!path.join("memento.vec.new").exists());
}

#[test]
fn a_compaction_gives_the_mirrors_free_pages_back_too() {
    // 20,000 records with text and metadata, 90% deleted: the mirror keeps its high-water size
    // until the compaction vacuums it.
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("s");
    let e = open(&path);
    let mut b = WriteBatch::new();
    for i in 0..20_000u64 {
        b.add(Record::new(format!("r{i}"), vector(i, 16)).with_text(format!("the text of record {i}, long enough to take room")).with_metadata(meta(i)));
    }
    e.write(b).expect("add");
    let mut b = WriteBatch::new();
    for i in 0..20_000u64 {
        if !i.is_multiple_of(10) {
            b.delete(format!("r{i}"));
        }
    }
    e.write(b).expect("delete");
    e.checkpoint().expect("checkpoint");
    let mirror = || std::fs::metadata(path.join(memento::files::MIRROR)).expect("stat").len();
    let before = mirror();
    let want = snapshot(&e);
    e.compact().expect("compact");
    let after = mirror();
    assert!(after * 3 < before, "the mirror {before} -> {after} bytes");
    assert_eq!(snapshot(&e), want);
    e.check_integrity().expect("integrity");
    e.close().expect("close");
    let e = open(&path);
    assert_eq!(snapshot(&e), want);
    assert!(Engine::open_read_only(&path).is_ok());
}
