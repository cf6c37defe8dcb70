//! The mirror's unit tests.

#![allow(clippy::unwrap_used)]
use super::*;
use crate::filter::Filter;
use rusqlite::types::Value as SqlValue;
use serde_json::{json, Map, Value};
use std::time::Instant;

const UUID: [u8; 16] = *b"0123456789abcdef";

fn fresh() -> Mirror {
    let mut m = Mirror::open_memory().unwrap();
    m.reset(UUID).unwrap();
    m
}

fn put<'a>(slot: u64, id: &'a str, text: Option<&'a str>, metadata: Option<&'a str>) -> MirrorOp<'a> {
    MirrorOp::Put { slot, id, text, metadata }
}

/// The kind and the message of a mirror error.
fn mirror_reason(e: Error) -> (MirrorErrorKind, String) {
    match e {
        Error::Mirror { kind, .. } => (kind, e.to_string()),
        other => panic!("expected a mirror error, got {other:?}"),
    }
}

#[test]
fn put_update_delete() {
    let mut m = fresh();
    assert!(m.apply(1, &[put(0, "a", Some("hello"), Some(r#"{"k":1}"#)), put(1, "b", None, None), put(7, "c", Some("x"), None)]).unwrap());
    assert_eq!(m.count().unwrap(), 3);
    assert_eq!(m.slot_of("a").unwrap(), Some(0));
    assert_eq!(m.slot_of("zz").unwrap(), None);
    assert_eq!(m.row_by_id("a").unwrap(), Some(MirrorRow { slot: 0, id: "a".into(), text: Some("hello".into()), metadata: Some(r#"{"k":1}"#.into()) }));

    // Update: leave, set, clear.
    m.apply(2, &[MirrorOp::Update { slot: 0, text: None, metadata: Some(Some(r#"{"k":2}"#)) }]).unwrap();
    let r = m.row_by_id("a").unwrap().unwrap();
    assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (Some("hello"), Some(r#"{"k":2}"#)));
    m.apply(3, &[MirrorOp::Update { slot: 0, text: Some(None), metadata: None }]).unwrap();
    let r = m.row_by_id("a").unwrap().unwrap();
    assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (None, Some(r#"{"k":2}"#)));
    m.apply(4, &[MirrorOp::Update { slot: 0, text: Some(Some("t")), metadata: Some(None) }]).unwrap();
    let r = m.row_by_id("a").unwrap().unwrap();
    assert_eq!((r.text.as_deref(), r.metadata.as_deref()), (Some("t"), None));

    // Upsert: delete the old slot, put in a new one, in one LSN.
    m.apply(5, &[MirrorOp::Delete { slot: 1 }, put(9, "b", Some("new"), None)]).unwrap();
    assert_eq!(m.slot_of("b").unwrap(), Some(9));
    assert_eq!(m.all_slots().unwrap(), vec![0, 7, 9]);
    assert_eq!(m.slots_of(&["c", "nope", "a"]).unwrap(), vec![Some(7), None, Some(0)]);
    let rows = m.rows_by_slots(&[9, 1, 0, 9]).unwrap();
    assert_eq!(rows.iter().map(|r| r.as_ref().map(|r| r.id.as_str())).collect::<Vec<_>>(), vec![Some("b"), None, Some("a"), Some("b")]);
    assert_eq!(m.rows_by_slots(&[7]).unwrap()[0].as_ref().map(|r| r.id.as_str()), Some("c"));

    // Iteration in slot order.
    let first = m.rows_after(None, 2).unwrap();
    assert_eq!(first.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![0, 7]);
    let rest = m.rows_after(Some(7), 10).unwrap();
    assert_eq!(rest.iter().map(|r| r.slot).collect::<Vec<_>>(), vec![9]);
    assert!(m.rows_after(Some(9), 10).unwrap().is_empty());
    assert!(m.rows_after(Some(u64::MAX), 10).unwrap().is_empty());
    assert!(m.rows_after(None, 0).unwrap().is_empty());

    m.apply(6, &[MirrorOp::Delete { slot: 0 }]).unwrap();
    assert_eq!(m.slot_of("a").unwrap(), None);
    assert_eq!(m.count().unwrap(), 2);
}

#[test]
fn bad_ops_roll_back_the_whole_call() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", None, None)]).unwrap();
    let cases: Vec<Vec<MirrorOp<'_>>> = vec![
        vec![put(1, "b", None, None), put(2, "a", None, None)], // id taken
        vec![put(1, "b", None, None), put(0, "c", None, None)], // slot taken
        vec![put(1, "b", None, None), MirrorOp::Delete { slot: 5 }],
        vec![put(1, "b", None, None), MirrorOp::Update { slot: 5, text: None, metadata: None }],
        vec![put(1, "b", None, Some("[1, 2]"))],
        vec![put(1, "b", None, Some("{not json"))],
        vec![put(1, "b", None, None), put(u64::MAX, "c", None, None)],
    ];
    for ops in cases {
        let err = m.apply(2, &ops).unwrap_err();
        let (kind, reason) = mirror_reason(err);
        assert_ne!(kind, MirrorErrorKind::Damaged, "{reason}");
        assert_eq!(m.header().unwrap().unwrap().applied_lsn, 1, "{ops:?}");
        assert_eq!(m.all_slots().unwrap(), vec![0], "{ops:?}");
    }
    let (kind, reason) = mirror_reason(m.apply(2, &[put(1u64 << 63, "c", None, None)]).unwrap_err());
    assert!(reason.contains("larger than"), "{reason}");
    assert_eq!(kind, MirrorErrorKind::Internal, "{reason}");
    assert!(m.rows_by_slots(&[u64::MAX]).is_err());
    assert!(m.apply(u64::MAX, &[]).is_err());
    // The mirror is still usable.
    assert!(m.apply(2, &[put(1, "b", None, None)]).unwrap());
}

/// An SQLite failure that is not damage is of the kind `Sqlite`, with SQLite's error as its
/// source (and its text in the message, as before).
#[test]
fn an_sqlite_failure_keeps_its_source() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", None, None)]).unwrap();
    let err = m.apply(2, &[put(1, "a", None, None)]).unwrap_err();
    assert!(matches!(err, Error::Mirror { kind: MirrorErrorKind::Sqlite, .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("the SQLite error is the source");
    assert!(source.downcast_ref::<rusqlite::Error>().is_some(), "{source:?}");
    assert!(err.to_string().contains(&source.to_string()), "{err}");
}

#[test]
fn apply_is_idempotent_by_lsn() {
    let mut m = fresh();
    assert!(m.apply(5, &[put(0, "a", None, None)]).unwrap());
    // Replaying the same or an older LSN does nothing, even with ops that would fail.
    assert!(!m.apply(5, &[put(0, "a", None, None)]).unwrap());
    assert!(!m.apply(3, &[MirrorOp::Delete { slot: 42 }]).unwrap());
    assert_eq!(m.header().unwrap().unwrap().applied_lsn, 5);
    assert_eq!(m.count().unwrap(), 1);
    // An empty batch still advances the LSN.
    assert!(m.apply(6, &[]).unwrap());
    assert_eq!(m.header().unwrap().unwrap().applied_lsn, 6);
}

#[test]
fn header_and_reset() {
    let mut m = Mirror::open_memory().unwrap();
    assert_eq!(m.header().unwrap(), None);
    let (_, reason) = mirror_reason(m.apply(1, &[]).unwrap_err());
    assert!(reason.contains("reset"), "{reason}");
    m.reset(UUID).unwrap();
    assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: UUID, applied_lsn: 0 }));
    m.apply(3, &[put(0, "a", None, None), put(1, "b", None, None)]).unwrap();
    assert_eq!(m.header().unwrap().unwrap().applied_lsn, 3);
    let other = [7u8; 16];
    m.reset(other).unwrap();
    assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: other, applied_lsn: 0 }));
    assert_eq!(m.count().unwrap(), 0);
    assert_eq!(m.slot_of("a").unwrap(), None);
    // The same ids and slots can be put again after a reset.
    assert!(m.apply(1, &[put(0, "a", None, None)]).unwrap());
}

#[test]
fn file_persists_across_reopen_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    {
        let mut m = Mirror::open_file(&path).unwrap();
        assert_eq!(m.header().unwrap(), None);
        m.reset(UUID).unwrap();
        m.apply(1, &[put(0, "a", Some("doc"), Some(r#"{"x":"y"}"#))]).unwrap();
        m.apply(2, &[put(1, "b", None, None)]).unwrap();
        let mode: String = m.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = m.conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        assert_eq!(sync, 1); // NORMAL
        let wal = dir.path().join("mirror.sqlite-wal");
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);
        m.checkpoint().unwrap();
        assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
        m.integrity_check().unwrap();
        m.apply(3, &[MirrorOp::Delete { slot: 1 }]).unwrap();
    }
    let m = Mirror::open_file(&path).unwrap();
    assert_eq!(m.header().unwrap(), Some(MirrorHeader { store_uuid: UUID, applied_lsn: 3 }));
    assert_eq!(m.all_slots().unwrap(), vec![0]);
    assert_eq!(m.row_by_id("a").unwrap().unwrap().metadata.as_deref(), Some(r#"{"x":"y"}"#));
    let v: i64 = m.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    m.integrity_check().unwrap();
    assert!(matches!(Mirror::open_file_checked(&path), Ok(Ok(_))));
}

/// A file mirror reserves 8 bytes per page for the trailer, and a page whose bytes changed
/// fails its check: damage, never an answer.
#[test]
fn pages_carry_trailers_and_a_flip_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    {
        let mut m = Mirror::open_file(&path).unwrap();
        m.reset(UUID).unwrap();
        let metas: Vec<String> = (0..300).map(|i| json!({ "i": i }).to_string()).collect();
        let ids: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
        let ops: Vec<MirrorOp<'_>> = (0..300).map(|i| put(i as u64, &ids[i], None, Some(&metas[i]))).collect();
        m.apply(1, &ops).unwrap();
        m.checkpoint().unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[20], 8, "reserved bytes per page");
    let page = (usize::from(bytes[16]) << 8) | usize::from(bytes[17]); // big-endian in SQLite's header
    for (i, p) in bytes.chunks(page).enumerate() {
        memento_format::mirror::check(p, i as u32 + 1).unwrap();
    }
    let at = bytes.len() * 3 / 4;
    bytes[at] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let m = Mirror::open_file(&path).unwrap();
    let f = Filter::parse(&json!({"i": {"$lt": 100}})).unwrap();
    let results = [m.filter_slots(&f).map(drop), m.integrity_check(), m.all_slots().map(drop)];
    assert!(results.iter().any(Result::is_err), "a flipped page was read without an error");
    for r in results {
        if let Err(e) = r {
            assert!(is_damage(&e), "{e}");
        }
    }
}

/// A VACUUM keeps the reserved bytes and the trailers. One that changes the page size is not
/// supported (SQLite's copy writes the new file in chunks of the old page size, which the
/// shim seals as pages of that size): it leaves pages that fail their check, which is damage
/// (rebuilt by the engine), never a mirror that answers. The engine never changes it.
#[test]
fn vacuum_keeps_the_trailers_and_a_page_size_change_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    let slots_below_50 = |m: &Mirror| m.filter_slots(&Filter::parse(&json!({"i": {"$lt": 50}})).unwrap()).unwrap().len();
    {
        let mut m = Mirror::open_file(&path).unwrap();
        m.reset(UUID).unwrap();
        let metas: Vec<String> = (0..200).map(|i| json!({ "i": i }).to_string()).collect();
        let ids: Vec<String> = (0..200).map(|i| format!("r{i}")).collect();
        let ops: Vec<MirrorOp<'_>> = (0..200).map(|i| put(i as u64, &ids[i], Some("some text"), Some(&metas[i]))).collect();
        m.apply(1, &ops).unwrap();
        m.conn.execute_batch("VACUUM").unwrap();
        m.checkpoint().unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!((bytes[16], bytes[17], bytes[20]), (0x10, 0x00, 8), "page size 4096, 8 reserved bytes");
    for (i, p) in bytes.chunks(4096).enumerate() {
        memento_format::mirror::check(p, i as u32 + 1).unwrap();
    }
    {
        let m = Mirror::open_file(&path).unwrap();
        m.integrity_check().unwrap();
        assert_eq!(slots_below_50(&m), 50);
        let _ = m.conn.execute_batch("PRAGMA journal_mode = DELETE; PRAGMA page_size = 8192; VACUUM; PRAGMA journal_mode = WAL;");
    }
    match Mirror::open_file_checked(&path) {
        Ok(Err(e)) => assert!(is_damage(&e), "{e}"),
        Ok(Ok(m)) => {
            let e = m.integrity_check().unwrap_err();
            assert!(is_damage(&e), "{e}");
        }
        Err(e) => panic!("{e}"),
    }
}

/// A mirror of schema version 2 (no trailers) is damage at open, so the engine rebuilds it.
#[test]
fn a_mirror_without_trailers_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&SCHEMA.replace("user_version = 3", "user_version = 2")).unwrap();
    }
    match Mirror::open_file_checked(&path) {
        Ok(Err(e)) => assert!(is_damage(&e), "{e}"),
        other => panic!("expected damage, got {other:?}"),
    }
}

#[test]
fn in_memory_checkpoint_is_a_no_op() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", None, None)]).unwrap();
    m.checkpoint().unwrap();
    m.integrity_check().unwrap();
}

#[test]
fn garbage_file_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    std::fs::write(&path, vec![0xABu8; 4096]).unwrap();
    match Mirror::open_file_checked(&path) {
        Ok(Err(e)) => {
            assert!(is_damage(&e), "{e}");
            println!("garbage file: {e}");
        }
        Ok(Ok(_)) => panic!("a garbage file opened as a mirror"),
        Err(e) => panic!("damage reported as another error: {e}"),
    }
    let err = Mirror::open_file(&path).unwrap_err();
    assert!(is_damage(&err), "{err}");
    assert!(err.to_string().starts_with("The SQLite mirror failed: the mirror database is damaged"), "{err}");
}

#[test]
fn foreign_sqlite_file_is_damage_and_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("foreign.sqlite");
    {
        let c = rusqlite::Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);").unwrap();
    }
    assert!(matches!(Mirror::open_file_checked(&foreign), Ok(Err(_))));

    let newer = dir.path().join("newer.sqlite");
    // Written through the mirror's VFS, as a newer version would (with page trailers).
    Mirror::open_file(&newer).unwrap().conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
    let err = Mirror::open_file(&newer).unwrap_err();
    assert!(!is_damage(&err), "{err}");
    assert!(matches!(err, Error::Mirror { kind: MirrorErrorKind::NewerSchema, source: None, .. }), "{err:?}");
    assert!(err.to_string().contains("newer version"), "{err}");
    assert!(Mirror::open_file_checked(&newer).is_err());
}

/// A mirror of schema version 1 (no metadata index) is reported for a rebuild, like damage.
#[test]
fn version_1_mirror_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.sqlite");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "CREATE TABLE records (slot INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT, \
                 metadata TEXT CHECK (metadata IS NULL OR json_type(metadata) = 'object'));
             CREATE TABLE meta (one INTEGER PRIMARY KEY CHECK (one = 0), store_uuid BLOB NOT NULL, applied_lsn INTEGER NOT NULL);
             INSERT INTO meta VALUES (0, x'30313233343536373839616263646566', 3);
             INSERT INTO records VALUES (0, 'a', NULL, '{\"k\":1}');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    match Mirror::open_file_checked(&path) {
        Ok(Err(e)) => {
            // Written without page trailers, it fails the first page check.
            assert!(is_damage(&e), "{e}");
            assert!(e.to_string().contains("checksum"), "{e}");
        }
        Ok(Ok(_)) => panic!("a version 1 mirror opened as current"),
        Err(e) => panic!("a version 1 mirror should be rebuilt, not refused: {e}"),
    }
}

/// A current mirror whose metadata index is missing is damage.
#[test]
fn missing_index_table_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.sqlite");
    drop(Mirror::open_file(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().execute_batch("DROP TABLE field_values").unwrap();
    assert!(matches!(Mirror::open_file_checked(&path), Ok(Err(_))));
}

#[test]
fn corrupted_pages_are_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirror.sqlite");
    {
        let mut m = Mirror::open_file(&path).unwrap();
        m.reset(UUID).unwrap();
        let ids: Vec<String> = (0..3000).map(|i| format!("id-{i}")).collect();
        let ops: Vec<MirrorOp<'_>> = ids.iter().enumerate().map(|(i, id)| put(i as u64, id, Some("some text"), None)).collect();
        m.apply(1, &ops).unwrap();
        m.checkpoint().unwrap();
    }
    // Overwrite a page in the middle of the file (keeping the header intact).
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    assert!(bytes.len() > 8 * page);
    for b in &mut bytes[3 * page..5 * page] {
        *b = 0x5A;
    }
    std::fs::write(&path, &bytes).unwrap();
    let outcome = Mirror::open_file(&path).and_then(|m| {
        m.integrity_check()?;
        m.all_slots().map(|_| ())
    });
    let err = outcome.unwrap_err();
    assert!(is_damage(&err), "{err}");
}

#[test]
fn slots_of_in_chunks() {
    let mut m = fresh();
    let ids: Vec<String> = (0..70_000).map(|i| format!("record-{i}")).collect();
    let ops: Vec<MirrorOp<'_>> = ids.iter().enumerate().filter(|(i, _)| i % 3 != 0).map(|(i, id)| put(i as u64 * 2, id, None, None)).collect();
    m.apply(1, &ops).unwrap();
    let mut query: Vec<&str> = ids.iter().map(String::as_str).collect();
    query.push("record-1"); // a repeat
    query.push("absent");
    let t = Instant::now();
    let slots = m.slots_of(&query).unwrap();
    println!("slots_of with {} ids: {:?}", query.len(), t.elapsed());
    assert_eq!(slots.len(), query.len());
    for (i, slot) in slots.iter().take(70_000).enumerate() {
        let expected = if i % 3 != 0 { Some(i as u64 * 2) } else { None };
        assert_eq!(*slot, expected, "{i}");
    }
    assert_eq!(slots[70_000], Some(2));
    assert_eq!(slots[70_001], None);

    let wanted: Vec<u64> = (0..140_002).step_by(2).collect();
    let rows = m.rows_by_slots(&wanted).unwrap();
    assert_eq!(rows.len(), wanted.len());
    assert_eq!(rows.iter().filter(|r| r.is_some()).count(), ops.len());
    for (i, row) in rows.iter().enumerate().take(70_000) {
        assert_eq!(row.as_ref().map(|r| r.id.as_str()), if i % 3 != 0 { Some(ids[i].as_str()) } else { None });
    }
    for n in [0usize, 1, 2, 3, 7, 8, 9, 511, 512, 513, 1025] {
        let q: Vec<&str> = ids.iter().take(n).map(String::as_str).collect();
        let got = m.slots_of(&q).unwrap();
        let one_by_one: Vec<Option<u64>> = q.iter().map(|id| m.slot_of(id).unwrap()).collect();
        assert_eq!(got, one_by_one, "{n}");
    }
}

#[test]
fn thousand_puts_timing() {
    let ids: Vec<String> = (0..1000).map(|i| format!("doc-{i:06}")).collect();
    let texts: Vec<String> = (0..1000).map(|i| format!("the quick brown fox {i}")).collect();
    let metas: Vec<String> = (0..1000).map(|i| format!(r#"{{"n":{i},"tag":"t{}","ok":true}}"#, i % 7)).collect();
    let ops: Vec<MirrorOp<'_>> = (0..1000).map(|i| put(i as u64, &ids[i], Some(&texts[i]), Some(&metas[i]))).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut on_disk = Mirror::open_file(&dir.path().join("m.sqlite")).unwrap();
    on_disk.reset(UUID).unwrap();
    for (label, mut m) in [("memory", fresh()), ("file", on_disk)] {
        // Warm up the statement cache with one batch, then time a fresh batch.
        m.apply(1, &ops[..1]).unwrap();
        m.apply(2, &[MirrorOp::Delete { slot: 0 }]).unwrap();
        let t = Instant::now();
        m.apply(3, &ops).unwrap();
        println!("apply with 1,000 puts ({label}): {:?}", t.elapsed());
        assert_eq!(m.count().unwrap(), 1000);
        let t = Instant::now();
        let f = Filter::parse(&json!({"tag": "t3", "n": {"$gte": 500}})).unwrap();
        let hits = m.filter_slots(&f).unwrap();
        println!("filter over 1,000 rows ({label}): {:?}, {} hits", t.elapsed(), hits.len());
        assert_eq!(hits.len(), (500..1000).filter(|i| i % 7 == 3).count());
    }
}

#[test]
fn filter_slots_on_rows_with_awkward_keys() {
    let mut m = fresh();
    let metas = [
        json!({"a.b": 1, "a\"b": "q", "a\\b": true, "a b": 2.5, "ключ": "v", "😀": 0, "": "empty"}),
        json!({"a": {"b": 1}, "x": null, "l": [1, 2]}),
        json!({"a.b": "1", "ключ": "w"}),
    ];
    let texts: Vec<String> = metas.iter().map(Value::to_string).collect();
    let ids = ["r0", "r1", "r2"];
    let ops: Vec<MirrorOp<'_>> = (0..3).map(|i| put(i as u64, ids[i], Some("text"), Some(&texts[i]))).collect();
    m.apply(1, &ops).unwrap();
    let cases: Vec<(Value, Vec<u64>)> = vec![
        (json!({"a.b": 1}), vec![0]),
        (json!({"a.b": "1"}), vec![2]),
        (json!({"a\"b": "q"}), vec![0]),
        (json!({"a\\b": true}), vec![0]),
        (json!({"a b": {"$gt": 2}}), vec![0]),
        (json!({"ключ": {"$in": ["v", "w"]}}), vec![0, 2]),
        (json!({"😀": 0}), vec![0]),
        (json!({"": "empty"}), vec![0]),
        (json!({"a": 1}), vec![]),
        (json!({"x": {"$ne": 1}}), vec![0, 1, 2]),
        (json!({"l": {"$nin": [1]}}), vec![0, 1, 2]),
    ];
    for (filter, expected) in cases {
        let f = Filter::parse(&filter).unwrap();
        assert_eq!(m.filter_slots(&f).unwrap(), expected, "{filter}");
        let by_matches: Vec<u64> = (0..3u64).filter(|&i| f.matches(Some("text"), metas[i as usize].as_object())).collect();
        assert_eq!(by_matches, expected, "{filter}");
    }
}

/// Whether `filter_slots` selects the one record of a mirror holding `text` and `meta`,
/// checked against `matches`.
fn agrees_on_one(f: &Filter, text: Option<&str>, meta: Option<&Map<String, Value>>, what: &str) {
    let mut m = fresh();
    let md = meta.map(|m| Value::Object(m.clone()).to_string());
    m.apply(1, &[put(0, "only", text, md.as_deref())]).unwrap();
    let selected = m.filter_slots(f).unwrap() == vec![0];
    assert_eq!(selected, f.matches(text, meta), "{what}: {f:?} on {md:?}");
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

#[test]
fn index_agrees_on_awkward_keys_and_values() {
    let keys = ["a.b", "a\"b", "a\\b", "a b", "é", "😀", "", "$x", "a\nb", "\\\"", "k\u{1f}"];
    for key in keys {
        let meta = obj(json!({ key: "v", "other": 1 }));
        for filter in
            [json!({ key: "v" }), json!({ key: {"$ne": "v"} }), json!({ key: {"$in": ["w", "v"]} }), json!({ key: {"$nin": ["v"]} }), json!({ key: 1 })]
        {
            // Keys starting with '$' cannot be filtered on; skip those.
            let Ok(f) = Filter::parse(&filter) else {
                continue;
            };
            agrees_on_one(&f, None, Some(&meta), key);
            agrees_on_one(&f, None, None, key);
        }
    }
    // Strings with NUL and non-ASCII, in values and documents.
    let meta = obj(json!({"s": "x\u{0}y", "t": "ü"}));
    for filter in [
        json!({"s": "x\u{0}y"}),
        json!({"s": "x"}),
        json!({"s": {"$lt": "x\u{0}z"}}),
        json!({"s": {"$gt": "x"}}),
        json!({"t": {"$gt": "z"}}),
        json!({"$contains": "\u{0}c"}),
        json!({"$contains": "\u{0}x"}),
        json!({"$not_contains": "b\u{0}"}),
    ] {
        agrees_on_one(&Filter::parse(&filter).unwrap(), Some("ab\u{0}cd"), Some(&meta), "NUL");
    }
    // Numbers at the edges.
    let numbers = [
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(9_007_199_254_740_993_i64),
        json!(9_007_199_254_740_992.0),
        json!(9.223372036854776e18),
        json!(0),
        json!(0.1),
        json!(-0.0),
        json!(1e300),
    ];
    for value in &numbers {
        let meta = obj(json!({ "n": value }));
        for op in ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"] {
            for operand in &numbers {
                // An integer operand beyond i64 is refused (crate::limits); as a stored
                // value (written before that rule) it is still compared.
                let Ok(f) = Filter::parse(&json!({"n": { op: operand }})) else {
                    assert!(operand.is_u64() && !operand.is_i64(), "{operand}");
                    continue;
                };
                agrees_on_one(&f, None, Some(&meta), "numbers");
            }
        }
    }
    // Number spellings: 1 == 1.0 == 1e0, and a big integer written as a float.
    for text in [r#"{"n":1}"#, r#"{"n":1.0}"#, r#"{"n":1e0}"#, r#"{"n":10e-1}"#, r#"{"n":18446744073709551615}"#, r#"{"n":-9223372036854775809}"#] {
        let meta: Map<String, Value> = serde_json::from_str(text).unwrap();
        for filter in
            [json!({"n": 1}), json!({"n": 1.0}), json!({"n": {"$gte": 1, "$lte": 1}}), json!({"n": 1.8446744073709552e19}), json!({"n": {"$lt": i64::MIN}})]
        {
            let f = Filter::parse(&filter).unwrap();
            let mut m = fresh();
            m.apply(1, &[put(0, "only", None, Some(text))]).unwrap();
            assert_eq!(m.filter_slots(&f).unwrap() == vec![0], f.matches(None, Some(&meta)), "{filter} on {text}");
        }
    }
    // Non-scalar metadata values are never matched, and are "not equal" to everything.
    for value in [json!(null), json!([1]), json!({"x": 1}), json!(true), json!(false), json!([]), json!({})] {
        let meta = obj(json!({ "k": value }));
        for filter in [
            json!({"k": 1}),
            json!({"k": {"$ne": 1}}),
            json!({"k": {"$in": [1, "1", true]}}),
            json!({"k": {"$nin": [false]}}),
            json!({"k": true}),
            json!({"k": {"$ne": false}}),
            json!({"k": {"$gte": 0}}),
            json!({"k": {"$lt": "z"}}),
        ] {
            agrees_on_one(&Filter::parse(&filter).unwrap(), None, Some(&meta), "non-scalar");
        }
    }
}

/// Unlike SQLite's JSON path lookup, the index keeps a key holding U+0000 whole: the key
/// "a\u0000" is not found under "a".
#[test]
fn a_key_with_nul_is_not_found_under_its_prefix() {
    let meta = obj(json!({"a\u{0}": 1, "b\u{0}c": 2}));
    for filter in [json!({"a": 1}), json!({"a": {"$ne": 1}}), json!({"b": 2}), json!({"b\u{1}c": 2})] {
        agrees_on_one(&Filter::parse(&filter).unwrap(), None, Some(&meta), "NUL key");
    }
}

#[test]
fn wide_filters() {
    let mut m = fresh();
    m.apply(1, &[put(0, "a", None, Some(r#"{"k2999":2999,"k":7}"#)), put(1, "b", None, Some(r#"{"k":3000}"#))]).unwrap();
    let many: Vec<Value> = (0..3000).map(|i| json!({ format!("k{i}"): i })).collect();
    assert_eq!(m.filter_slots(&Filter::parse(&json!({"$or": many})).unwrap()).unwrap(), vec![0]);
    let and: Vec<Value> = (0..3000).map(|i| json!({ "k": {"$ne": i} })).collect();
    assert_eq!(m.filter_slots(&Filter::parse(&json!({"$and": and})).unwrap()).unwrap(), vec![1]);
    let values: Vec<Value> = (0..4000).map(|i| if i % 3 == 2 { json!(format!("{i}")) } else { json!(i) }).collect();
    assert_eq!(m.filter_slots(&Filter::parse(&json!({"k": {"$in": values}})).unwrap()).unwrap(), vec![0, 1]);
}

/// The index follows puts, updates (of text only, of metadata, to and from none),
/// deletes and upserts, and stays equal to what the records' metadata gives.
#[test]
fn index_follows_updates_and_deletes() {
    let mut m = fresh();
    let slots = |m: &Mirror, f: Value| m.filter_slots(&Filter::parse(&f).unwrap()).unwrap();
    m.apply(1, &[put(0, "a", Some("t"), Some(r#"{"k":1,"s":"x"}"#)), put(1, "b", None, Some(r#"{"k":2}"#)), put(2, "c", None, None)]).unwrap();
    assert_eq!(slots(&m, json!({"k": {"$gte": 1}})), vec![0, 1]);
    m.apply(2, &[MirrorOp::Update { slot: 0, text: Some(None), metadata: None }]).unwrap();
    assert_eq!(slots(&m, json!({"k": 1})), vec![0]);
    m.apply(3, &[MirrorOp::Update { slot: 0, text: None, metadata: Some(Some(r#"{"k":3}"#)) }]).unwrap();
    assert_eq!(slots(&m, json!({"k": 1})), Vec::<u64>::new());
    assert_eq!(slots(&m, json!({"s": "x"})), Vec::<u64>::new());
    assert_eq!(slots(&m, json!({"k": 3})), vec![0]);
    m.apply(4, &[MirrorOp::Update { slot: 1, text: None, metadata: Some(None) }, MirrorOp::Update { slot: 2, text: None, metadata: Some(Some(r#"{"k":2}"#)) }])
        .unwrap();
    assert_eq!(slots(&m, json!({"k": 2})), vec![2]);
    assert_eq!(slots(&m, json!({"k": {"$ne": 2}})), vec![0, 1]);
    m.integrity_check().unwrap();
    // An upsert: the old slot's rows go, the new slot's come.
    m.apply(5, &[MirrorOp::Delete { slot: 2 }, put(3, "c", None, Some(r#"{"k":2,"z":true}"#))]).unwrap();
    assert_eq!(slots(&m, json!({"k": 2})), vec![3]);
    m.apply(6, &[MirrorOp::Delete { slot: 0 }]).unwrap();
    assert_eq!(slots(&m, json!({"k": {"$gt": 0}})), vec![3]);
    m.integrity_check().unwrap();
    let rows: i64 = m.conn.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 2);
    // A failed call leaves the index as it was.
    assert!(m.apply(7, &[MirrorOp::Delete { slot: 3 }, MirrorOp::Delete { slot: 3 }]).is_err());
    assert_eq!(slots(&m, json!({"k": 2})), vec![3]);
    m.integrity_check().unwrap();
    m.reset(UUID).unwrap();
    let rows: i64 = m.conn.query_row("SELECT count(*) FROM field_values", [], |r| r.get(0)).unwrap();
    assert_eq!(rows, 0);
    let fields: i64 = m.conn.query_row("SELECT count(*) FROM fields", [], |r| r.get(0)).unwrap();
    assert_eq!(fields, 0);
}

#[test]
fn integrity_check_notices_an_index_that_disagrees() {
    for tamper in [
        "DELETE FROM field_values WHERE slot = 1",
        "INSERT INTO field_values VALUES ((SELECT id FROM fields WHERE key = 'k'), 5, 9)",
        "UPDATE field_values SET value = 3 WHERE slot = 0 AND value = 1",
        "UPDATE records SET metadata = '{\"k\":1,\"new\":1}' WHERE slot = 0",
        "UPDATE fields SET key = 'j' WHERE key = 'k'",
    ] {
        let mut m = fresh();
        m.apply(1, &[put(0, "a", None, Some(r#"{"k":1,"s":"x"}"#)), put(1, "b", None, Some(r#"{"k":2}"#))]).unwrap();
        m.integrity_check().unwrap();
        m.conn.execute_batch(tamper).unwrap();
        let err = m.integrity_check().unwrap_err();
        assert!(is_damage(&err), "{tamper}: {err}");
    }
}

/// Every look-up is a search of the index's key, never a scan.
#[test]
fn look_ups_search_the_index() {
    let m = fresh();
    for sql in [
        format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value = ?3"),
        format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value IN (?, ?, ?, ?, ?, ?, ?, ?)"),
        format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value > ? AND value <= ?"),
        format!("SELECT slot FROM field_values WHERE field = {SQL_FIELD} AND value >= ?"),
        format!("SELECT 1 FROM field_values WHERE field = {SQL_FIELD} AND value = ?3 AND slot = ?4"),
        SQL_INDEX_DELETE.to_owned(),
    ] {
        let mut st = m.conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![SqlValue::Null; st.parameter_count()];
        let plan: Vec<String> = st.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3)).unwrap().map(|r| r.unwrap()).collect();
        let plan = plan.join("; ");
        assert!(plan.contains("SEARCH field_values USING PRIMARY KEY (field=? AND value"), "{sql}: {plan}");
        assert!(!plan.contains("SCAN"), "{sql}: {plan}");
    }
}

/// An AND whose later conditions are tested on the candidates' records still removes what
/// an earlier negation excluded, and merges bounds that tie.
#[test]
fn and_paths() {
    let mut m = fresh();
    let metas: Vec<String> = (0..40).map(|i| json!({"g": i % 4, "n": i, "s": format!("s{}", i % 3)}).to_string()).collect();
    let ids: Vec<String> = (0..40).map(|i| format!("r{i}")).collect();
    let texts: Vec<&str> = (0..40).map(|i| if i % 2 == 0 { "even" } else { "odd" }).collect();
    let ops: Vec<MirrorOp<'_>> = (0..40).map(|i| put(i as u64, &ids[i], Some(texts[i]), Some(&metas[i]))).collect();
    m.apply(1, &ops).unwrap();
    let records: Vec<Map<String, Value>> = metas.iter().map(|t| serde_json::from_str(t).unwrap()).collect();
    for filter in [
        json!({"g": 0, "n": {"$ne": 8}, "$or": [{"s": "s0"}, {"s": "s1"}]}),
        json!({"g": 0, "n": {"$nin": [8, 12]}, "$contains": "ev"}),
        json!({"g": 0, "n": {"$ne": 8}, "$not_contains": "odd"}),
        json!({"n": {"$gt": 10, "$gte": 10, "$lt": 20, "$lte": 20.0}}),
        json!({"n": {"$gte": 10, "$gt": 10.0, "$lte": 20, "$lt": 20}}),
        json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$gt": 9.5}}, {"n": {"$lt": 12}}, {"n": {"$lte": 12}}]}),
        json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$lt": 10}}]}),
        // Ties between an inclusive bound and a later exclusive one (in one object, the
        // keys come sorted, so "$gt" before "$gte").
        json!({"$and": [{"n": {"$gte": 10}}, {"n": {"$gt": 10.0}}, {"n": {"$lte": 20}}, {"n": {"$lt": 20}}]}),
        json!({"$and": [{"n": {"$gte": 10}}, {"s": {"$gte": "s1"}}, {"s": {"$lt": "s2"}}]}),
    ] {
        let f = Filter::parse(&filter).unwrap();
        let expected: Vec<u64> = (0..40u64).filter(|&i| f.matches(Some(texts[i as usize]), Some(&records[i as usize]))).collect();
        assert_eq!(select_all_ways(&m, &f), expected, "{filter}");
    }
}

/// `filter_slots`, after checking that every way of evaluating the filter agrees: the
/// usual one, testing every condition it can on the records (ratio 0), and never doing so.
fn select_all_ways(m: &Mirror, f: &Filter) -> Vec<u64> {
    let got = m.filter_slots(f).unwrap();
    for ratio in [0, 1, u64::MAX] {
        assert_eq!(f.select_with_ratio(m, ratio).unwrap(), got, "ratio {ratio}: {f:?}");
    }
    got
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &["a", "b", "c.d", "q\"k", "é"];
    const STRINGS: &[&str] = &["", "a", "b", "ab", "B", "é", "a\u{0}", "10", "true", "q\"", "a\\b", "😀", "ü"];
    const TEXTS: &[&str] = &["hello world", "Hello", "a\u{0}b", "", "wörld"];
    const NEEDLES: &[&str] = &["hello", "Hello", "o", "\u{0}", "ö", "xyz"];

    fn number() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-3i64..4).prop_map(Value::from),
            prop::sample::select(vec![-1.5, -0.0, 0.0, 0.5, 1.0, 2.0, 2.5, 1e300, 9_007_199_254_740_992.0, 9.223372036854776e18, -9.223372036854776e18])
                .prop_map(Value::from),
            prop::sample::select(vec![i64::MAX, i64::MIN, 9_007_199_254_740_993]).prop_map(Value::from),
            Just(Value::from(u64::MAX)),
        ]
    }

    fn string() -> impl Strategy<Value = Value> {
        prop::sample::select(STRINGS).prop_map(Value::from)
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![string(), number(), any::<bool>().prop_map(Value::from)]
    }

    fn metadata() -> impl Strategy<Value = Option<Map<String, Value>>> {
        let value = prop_oneof![
            8 => scalar(),
            1 => Just(Value::Null),
            1 => prop_oneof![Just(json!([1])), Just(json!([])), Just(json!({"a": 1})), Just(json!({}))],
        ];
        prop::option::weighted(
            0.85,
            prop::collection::btree_map(prop::sample::select(KEYS), value, 0..4)
                .prop_map(|m| m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>()),
        )
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![9 => prop::sample::select(KEYS).prop_map(str::to_owned), 1 => Just("zz".to_owned())]
    }

    fn leaf() -> impl Strategy<Value = Value> {
        let ordered = prop_oneof![number(), string()];
        prop_oneof![
            (key(), scalar()).prop_map(|(k, v)| json!({ k: v })),
            (key(), prop::sample::select(vec!["$eq", "$ne"]), scalar()).prop_map(|(k, op, v)| json!({ k: { op: v } })),
            (key(), prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]), ordered.clone()).prop_map(|(k, op, v)| json!({ k: { op: v } })),
            // Two bounds on one key, as a range.
            (key(), prop::sample::select(vec!["$gt", "$gte"]), ordered.clone(), prop::sample::select(vec!["$lt", "$lte"]), ordered)
                .prop_map(|(k, lo, a, hi, b)| json!({ k: { lo: a, hi: b } })),
            // Several bounds on one key from a few values, so that bounds often tie (1 == 1.0).
            (
                key(),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]),
                        prop::sample::select(vec![json!(1), json!(1.0), json!(2), json!("a"), json!("b")])
                    ),
                    1..4
                )
            )
                .prop_map(|(k, bounds)| json!({ k: Value::Object(bounds.into_iter().map(|(op, v)| (op.to_owned(), v)).collect()) })),
            (key(), prop::sample::select(vec!["$in", "$nin"]), prop::collection::vec(scalar(), 1..4)).prop_map(|(k, op, v)| json!({ k: { op: v } })),
            (prop::sample::select(vec!["$contains", "$not_contains"]), prop::sample::select(NEEDLES)).prop_map(|(op, n)| json!({ op: n })),
            Just(json!({})),
        ]
    }

    fn filter() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({ "$and": v })),
                prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({ "$or": v })),
                // Implicit AND: merge the entries of several filters into one object.
                prop::collection::vec(inner, 1..3).prop_map(|v| {
                    let mut merged = Map::new();
                    for f in v {
                        if let Value::Object(m) = f {
                            merged.extend(m);
                        }
                    }
                    Value::Object(merged)
                }),
            ]
        })
    }

    type Record = (Option<&'static str>, Option<Map<String, Value>>);

    fn records() -> impl Strategy<Value = Vec<Record>> {
        prop::collection::vec((prop::option::of(prop::sample::select(TEXTS)), metadata()), 0..12)
    }

    /// A change to the record at some position among the live ones.
    #[derive(Clone, Debug)]
    enum Change {
        Delete,
        Text(Option<&'static str>),
        Metadata(Option<Map<String, Value>>),
        Upsert(Record),
    }

    fn changes() -> impl Strategy<Value = Vec<(usize, Change)>> {
        let change = prop_oneof![
            Just(Change::Delete),
            prop::option::of(prop::sample::select(TEXTS)).prop_map(Change::Text),
            metadata().prop_map(Change::Metadata),
            (prop::option::of(prop::sample::select(TEXTS)), metadata()).prop_map(Change::Upsert),
        ];
        prop::collection::vec((any::<usize>(), change), 0..6)
    }

    /// A [`MirrorOp`] that owns its strings.
    enum Owned {
        Put(u64, String, Option<&'static str>, Option<String>),
        Update(u64, Option<Option<&'static str>>, Option<Option<String>>),
        Delete(u64),
    }

    impl Owned {
        fn op(&self) -> MirrorOp<'_> {
            match self {
                Owned::Put(slot, id, text, md) => put(*slot, id, *text, md.as_deref()),
                Owned::Update(slot, text, md) => MirrorOp::Update { slot: *slot, text: *text, metadata: md.as_ref().map(|m| m.as_deref()) },
                Owned::Delete(slot) => MirrorOp::Delete { slot: *slot },
            }
        }
    }

    /// A live record of the model: slot, id, text, metadata.
    type Live = (u64, String, Option<&'static str>, Option<Map<String, Value>>);

    fn json_text(md: &Option<Map<String, Value>>) -> Option<String> {
        md.as_ref().map(|md| Value::Object(md.clone()).to_string())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        /// Any key (without NUL, not starting with '$') is found by itself and only by it.
        #[test]
        fn keys_find_exactly_themselves(key in "[^\u{0}$][^\u{0}]{0,6}|", other in "[^\u{0}]{0,6}", value in any::<i64>()) {
            let mut m = fresh();
            let metas = [json!({ key.clone(): value }), json!({ other.clone(): value }), json!({ other.clone(): value, key.clone(): value })];
            let texts: Vec<String> = metas.iter().map(Value::to_string).collect();
            let ops: Vec<MirrorOp<'_>> = (0..3).map(|i| put(i as u64, ["a", "b", "c"][i], None, Some(&texts[i]))).collect();
            m.apply(1, &ops).unwrap();
            let f = Filter::parse(&json!({ key.clone(): value })).unwrap();
            let expected: Vec<u64> = (0..3u64).filter(|&i| f.matches(None, metas[i as usize].as_object())).collect();
            prop_assert!(expected.contains(&0));
            prop_assert_eq!(select_all_ways(&m, &f), expected);
        }

        /// The index-based evaluation selects exactly the records `Filter::matches` selects,
        /// after puts, updates, deletes and upserts, applied in one call or one per LSN.
        #[test]
        fn index_agrees_with_matches(
            recs in records(),
            changes in changes(),
            one_call in any::<bool>(),
            filters in prop::collection::vec(filter(), 1..4),
        ) {
            let mut m = fresh();
            // The model: (slot, id, text, metadata) of the live records.
            let mut live: Vec<Live> = Vec::new();
            let mut ops: Vec<Owned> = Vec::new();
            for (i, (text, md)) in recs.into_iter().enumerate() {
                let slot = i as u64 * 3;
                ops.push(Owned::Put(slot, format!("id{i}"), text, json_text(&md)));
                live.push((slot, format!("id{i}"), text, md));
            }
            let mut next_slot = live.len() as u64 * 3;
            for (pos, change) in changes {
                if live.is_empty() {
                    break;
                }
                let at = pos % live.len();
                let slot = live[at].0;
                match change {
                    Change::Delete => {
                        ops.push(Owned::Delete(slot));
                        live.remove(at);
                    }
                    Change::Text(t) => {
                        ops.push(Owned::Update(slot, Some(t), None));
                        live[at].2 = t;
                    }
                    Change::Metadata(md) => {
                        ops.push(Owned::Update(slot, None, Some(json_text(&md))));
                        live[at].3 = md;
                    }
                    Change::Upsert((t, md)) => {
                        let id = live[at].1.clone();
                        ops.push(Owned::Delete(slot));
                        ops.push(Owned::Put(next_slot, id.clone(), t, json_text(&md)));
                        live[at] = (next_slot, id, t, md);
                        next_slot += 1;
                    }
                }
            }
            if one_call {
                let batch: Vec<MirrorOp<'_>> = ops.iter().map(Owned::op).collect();
                m.apply(1, &batch).unwrap();
            } else {
                for (lsn, op) in ops.iter().enumerate() {
                    m.apply(lsn as u64 + 1, &[op.op()]).unwrap();
                }
            }
            m.integrity_check().unwrap();
            for fv in filters {
                // Operands beyond i64 are refused (crate::limits); stored ones are kept.
                let f = match Filter::parse(&fv) {
                    Ok(f) => f,
                    Err(e) if e.to_string().contains("64-bit") => continue,
                    Err(e) => panic!("{fv}: {e}"),
                };
                let mut expected: Vec<u64> = live.iter().filter(|(_, _, text, md)| f.matches(*text, md.as_ref())).map(|r| r.0).collect();
                expected.sort_unstable();
                let got = select_all_ways(&m, &f);
                prop_assert_eq!(got, expected, "filter {}", fv);
            }
        }
    }
}
