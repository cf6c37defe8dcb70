//! `memento::inspect` against the engine's own verdicts, on the golden v2 fixture damaged in
//! many ways (every byte of both superblocks and of the WAL flipped, the WAL cut at every third byte,
//! the vector file cut, a sample of page bytes flipped): the inspector never panics; when the
//! engine refuses to open a copy, `verify` has an error about the vector file or the WAL; when
//! `verify` finds no such error, the engine opens the copy and its integrity check passes.

use std::path::{Path, PathBuf};

use memento::inspect::{FindingKind, Inspector, Severity, VerifyReport};
use memento::Engine;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../format-spec/fixtures/v2/cosine-d4")
}

/// The fixture with a mirror (opened once by the engine, then dropped without a checkpoint, so
/// the vector file and the WAL are as shipped).
fn base() -> (tempfile::TempDir, Vec<u8>, Vec<u8>) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let vec = std::fs::read(fixture_dir().join("memento.vec")).expect("fixture vec");
    let wal = std::fs::read(fixture_dir().join("memento.wal")).expect("fixture wal");
    std::fs::write(tmp.path().join("memento.vec"), &vec).expect("write");
    std::fs::write(tmp.path().join("memento.wal"), &wal).expect("write");
    Engine::open(tmp.path()).expect("the fixture opens").abandon();
    (tmp, vec, wal)
}

/// A copy of `base` with the given vector file and WAL bytes.
fn damaged(base: &Path, vec: &[u8], wal: &[u8]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for name in ["memento.mirror.sqlite", "memento.mirror.sqlite-wal"] {
        if base.join(name).exists() {
            std::fs::copy(base.join(name), tmp.path().join(name)).expect("copy the mirror");
        }
    }
    std::fs::write(tmp.path().join("memento.vec"), vec).expect("write");
    std::fs::write(tmp.path().join("memento.wal"), wal).expect("write");
    tmp
}

fn log_errors(r: &VerifyReport) -> Vec<String> {
    r.findings.iter().filter(|f| f.severity == Severity::Error && f.kind.area() != "mirror").map(|f| format!("{}: {}", f.kind, f.message)).collect()
}

/// Inspect a damaged copy with every command, then compare `verify` with the engine.
fn judge(dir: &Path, what: &str) {
    let insp = Inspector::open(dir).expect("open the inspector");
    insp.superblocks().expect("superblocks");
    insp.pages().expect("pages");
    insp.wal().expect("wal");
    let _ = insp.dump("a");
    let report = insp.verify().expect("verify");
    let errors = log_errors(&report);
    match Engine::open(dir) {
        Ok(e) => {
            if errors.is_empty() {
                if let Err(x) = e.check_integrity() {
                    panic!("{what}: verify found nothing wrong with the log, but check_integrity says {x}");
                }
            }
            e.abandon();
        }
        Err(x) => assert!(!errors.is_empty(), "{what}: the engine refuses to open ({x}) but verify finds no error in the log: {:?}", report.findings),
    }
}

#[test]
fn the_fixture_verifies_clean() {
    let (b, _, _) = base();
    let r = Inspector::open(b.path()).expect("open").verify().expect("verify");
    assert!(r.findings.is_empty(), "{:?}", r.findings);
    assert_eq!(r.live_records, 18);
}

#[test]
fn every_superblock_byte_flipped() {
    let (b, vec, wal) = base();
    for at in (0..512).chain(4096..4096 + 512) {
        let mut v = vec.clone();
        v[at] ^= 0x10;
        let d = damaged(b.path(), &v, &wal);
        judge(d.path(), &format!("superblock byte {at} flipped"));
        let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
        assert!(r.findings.iter().any(|f| f.kind.area() == "superblock"), "superblock byte {at} flipped unnoticed: {:?}", r.findings);
    }
}

#[test]
fn every_wal_byte_flipped_and_every_cut() {
    let (b, vec, wal) = base();
    for at in 0..wal.len() {
        let mut w = wal.clone();
        w[at] ^= 0x01;
        let d = damaged(b.path(), &vec, &w);
        judge(d.path(), &format!("WAL byte {at} flipped"));
    }
    for cut in (0..wal.len()).step_by(3) {
        let d = damaged(b.path(), &vec, &wal[..cut]);
        judge(d.path(), &format!("WAL cut at {cut}"));
        if cut >= 64 {
            // A cut WAL is a torn tail at worst; the mirror is then ahead of the log.
            let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
            assert!(log_errors(&r).is_empty(), "WAL cut at {cut}: {:?}", r.findings);
        }
    }
}

#[test]
fn vector_file_cut_and_page_bytes_flipped() {
    let (b, vec, wal) = base();
    for cut in (0..vec.len()).step_by(509) {
        let d = damaged(b.path(), &vec[..cut], &wal);
        judge(d.path(), &format!("vector file cut at {cut}"));
    }
    for at in (8192..vec.len()).step_by(97) {
        let mut v = vec.clone();
        v[at] ^= 0x04;
        let d = damaged(b.path(), &v, &wal);
        judge(d.path(), &format!("vector file byte {at} flipped"));
    }
}

#[test]
fn garbage_files_are_findings() {
    let (b, vec, wal) = base();
    let noise: Vec<u8> = (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (v, w, what) in [(&noise[..], &wal[..], "garbage vector file"), (&vec[..], &noise[..], "garbage WAL"), (&[][..], &[][..], "empty files")] {
        let d = damaged(b.path(), v, w);
        judge(d.path(), what);
        let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
        assert!(!r.is_ok(), "{what}");
    }
    let d = damaged(b.path(), &vec, &wal);
    std::fs::write(d.path().join("memento.mirror.sqlite"), &noise).expect("write");
    let r = Inspector::open(d.path()).expect("open").verify().expect("verify");
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::MirrorDamaged), "{:?}", r.findings);
}

/// `Engine::check_integrity` runs the inspector's checks, so on a store the engine has open,
/// `verify` (from outside, through the files) and `check_integrity` (inside, through the
/// engine's storage and mirror connection) find the same damage: the integrity check fails
/// exactly when `verify` has an error that concerns what the engine serves, and names the kind
/// of the first such error.
fn same_verdict(dir: &Path, what: &str) -> bool {
    let Ok(e) = Engine::open(dir) else { return false };
    let inside = e.check_integrity();
    let outside = Inspector::open(dir).expect("open the inspector").verify().expect("verify");
    let first = outside.findings.iter().find(|f| f.severity == Severity::Error && !f.kind.only_redundancy_lost());
    match (&inside, first) {
        (Ok(()), None) => {}
        (Err(memento::Error::Corrupted { reason, .. }), Some(f)) => {
            assert!(reason.ends_with(&format!("({})", f.kind)), "{what}: check_integrity says {reason}, verify's first error is {f:?}")
        }
        (Err(memento::Error::Mirror { .. }), Some(f)) => {
            assert!(matches!(f.kind, FindingKind::MirrorDamaged | FindingKind::MirrorUnreadable), "{what}: {inside:?} against {f:?}")
        }
        _ => panic!("{what}: check_integrity gave {inside:?}, verify's findings are {:?}", outside.findings),
    }
    e.abandon();
    inside.is_err()
}

#[test]
fn check_integrity_and_verify_find_the_same_damage() {
    let (b, vec, wal) = base();
    let mut found = 0;
    for at in (8192..vec.len()).step_by(61) {
        let mut v = vec.clone();
        v[at] ^= 0x10;
        let d = damaged(b.path(), &v, &wal);
        found += usize::from(same_verdict(d.path(), &format!("vector file byte {at} flipped")));
    }
    // Mirror damage that opening does not repair: a row swapped for another (the count still
    // agrees), and a metadata index row removed.
    for (sql, what) in [
        ("UPDATE records SET text = 'not what the log says' WHERE slot = (SELECT MIN(slot) FROM records)", "a mirror row's text changed"),
        ("DELETE FROM field_values WHERE slot = (SELECT MIN(slot) FROM field_values)", "a metadata index row removed"),
    ] {
        let d = damaged(b.path(), &vec, &wal);
        let c = rusqlite::Connection::open(d.path().join("memento.mirror.sqlite")).expect("open the mirror");
        c.execute(sql, []).expect(what);
        drop(c);
        found += usize::from(same_verdict(d.path(), what));
    }
    assert!(found >= 10, "only {found} damaged copies failed the integrity check: the test damages too little");
}

#[test]
fn the_inspector_reads_through_any_storage() {
    use memento::storage::MemStorage;
    use std::sync::Arc;
    let mem = MemStorage::new();
    let e = Engine::builder_with_storage(Arc::new(mem.clone())).dimension(4).open().expect("create");
    e.add(memento::Record::new("a", vec![1.0, 2.0, 3.0, 4.0])).expect("add");
    e.check_integrity().expect("a sound store");
    let r = Inspector::over(Arc::new(mem.clone())).verify().expect("verify");
    assert!(r.is_ok() && r.live_records == 1, "{:?}", r.findings);
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::MirrorNotCompared), "{:?}", r.findings);
    e.abandon();
}
