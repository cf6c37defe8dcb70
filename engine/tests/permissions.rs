//! A store holds private text, so a store Memento creates is private to its owner: the
//! directory 0700 and every file 0600, whatever the umask (FORMAT.md §4.4, "Permissions");
//! `group_access(true)` makes it 0770 / 0660; files take their mode from their directory, so an
//! existing store keeps its modes.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use memento::{Engine, Metadata, Record};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("permissions test").permissions().mode() & 0o777
}

/// Writes (so that every file exists, the mirror's -wal and -shm included) and checkpoints,
/// keeping the engine open.
fn fill(engine: &Engine) {
    let mut m = Metadata::new();
    m.insert("k".into(), "v".into());
    engine.add(Record::new("a", vec![1.0, 0.0]).with_text("private words").with_metadata(m)).expect("permissions test");
    engine.checkpoint().expect("permissions test");
    engine.add(Record::new("b", vec![0.0, 1.0])).expect("permissions test");
}

fn files_with_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(dir)
        .expect("permissions test")
        .map(|e| e.expect("permissions test").path())
        .map(|p| (p.file_name().expect("permissions test").to_string_lossy().into_owned(), mode(&p)))
        .collect();
    out.sort();
    out
}

#[test]
fn a_new_store_is_private_and_a_group_store_is_the_groups() {
    // The modes are exact whatever the umask the tests run under (typically 022, which would
    // leave SQLite's files world-readable and strip the group's write bit).
    let tmp = tempfile::tempdir().expect("permissions test");
    for (name, group, dir_mode, file_mode) in [("private/nested/store", false, 0o700, 0o600), ("shared", true, 0o770, 0o660)] {
        let dir = tmp.path().join(name);
        let engine = Engine::builder(&dir).dimension(2).group_access(group).open().expect("permissions test");
        fill(&engine);
        assert_eq!(mode(&dir), dir_mode, "{name}");
        if name.starts_with("private") {
            // The parents it created too: they hold the store's name.
            assert_eq!(mode(&tmp.path().join("private")), 0o700);
        }
        let files = files_with_modes(&dir);
        for f in ["LOCK", "memento.vec", "memento.wal", "memento.mirror.sqlite", "memento.mirror.sqlite-wal", "memento.mirror.sqlite-shm"] {
            assert!(files.iter().any(|(n, _)| n == f), "{f} missing in {files:?}");
        }
        for (f, m) in &files {
            assert_eq!(*m, file_mode, "{name}/{f}: {m:o}");
        }
        engine.close().expect("permissions test");
        // After a close (checkpoint: a new WAL renamed into place) the modes hold.
        for (f, m) in files_with_modes(&dir) {
            assert_eq!(m, file_mode, "{name}/{f} after close: {m:o}");
        }
    }
}

#[test]
fn an_existing_store_keeps_its_modes() {
    let tmp = tempfile::tempdir().expect("permissions test");
    let dir = tmp.path().join("old");
    std::fs::create_dir(&dir).expect("permissions test");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("permissions test");
    let engine = Engine::builder(&dir).dimension(2).open().expect("permissions test");
    fill(&engine);
    engine.close().expect("permissions test");
    assert_eq!(mode(&dir), 0o755);
    for (f, m) in files_with_modes(&dir) {
        assert_eq!(m, 0o644, "{f}: {m:o}");
    }
}
