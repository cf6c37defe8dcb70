//! A real full disk: the store lives on a 1 MiB tmpfs, mounted in a private user and mount
//! namespace (`unshare --user --map-root-user --mount`, so neither root nor a leftover mount is
//! needed). Commits run until the filesystem is full. The one that hits ENOSPC must fail with a
//! typed error and poison the engine; opening while the disk is still full must not panic; once
//! space is freed, the store reopens with every acknowledged commit (and possibly the failed
//! one, whole), and passes the integrity check.
//!
//! The test re-runs its own binary inside the namespace: [`enospc_child`] is the workload, which
//! does nothing unless `MEMENTO_ENOSPC_DIR` is set.

use std::path::Path;
use std::process::Command;

use memento::{Durability, Engine, Error, Metadata, Metric, Record, WriteBatch};

const DIR_ENV: &str = "MEMENTO_ENOSPC_DIR";
const BATCH: usize = 16;
const DIM: usize = 64;

fn open(dir: &Path) -> memento::Result<Engine> {
    Engine::builder(dir).dimension(DIM).metric(Metric::L2).page_size(8192).wal_limit(64 << 10).durability(Durability::Sync).open()
}

fn batch(b: usize) -> WriteBatch {
    let mut wb = WriteBatch::new();
    for i in 0..BATCH {
        let n = b * BATCH + i;
        let mut m = Metadata::new();
        m.insert("batch".into(), b.into());
        let v: Vec<f32> = (0..DIM).map(|d| ((n * 31 + d) % 97) as f32 - 48.0).collect();
        wb.add(Record::new(format!("r{n}"), v).with_text(format!("record {n}: {}", "x".repeat(150))).with_metadata(m));
    }
    wb
}

fn is_enospc(e: &Error) -> bool {
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.raw_os_error() == Some(28) {
                return true;
            }
        }
        src = s.source();
    }
    // The SQLite mirror reports a full disk as SQLITE_FULL, in its message.
    e.to_string().contains("full")
}

/// The workload, inside the namespace (see the module docs).
#[test]
fn enospc_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    // Several ballast sizes, so that the disk fills at different points of the write path (a WAL
    // append, a checkpoint's pages, the mirror).
    for kib in [96, 224, 352, 480, 608, 736] {
        fill_fail_recover(Path::new(&dir), kib);
    }
}

fn fill_fail_recover(root: &Path, ballast_kib: usize) {
    let store = root.join("store");
    if store.exists() {
        std::fs::remove_dir_all(&store).expect("removing the last run's store");
    }
    // Ballast: freed after the failure, as a user would make room.
    std::fs::write(root.join("ballast"), vec![7u8; ballast_kib << 10]).expect("writing the ballast");
    let e = open(&store).expect("creating the store");
    let mut acked = 0usize;
    let mut failed = None;
    for b in 0..10_000 {
        match e.write(batch(b)) {
            Ok(_) => acked += BATCH,
            Err(err) => {
                failed = Some(err);
                break;
            }
        }
    }
    let err = failed.expect("the 1 MiB filesystem never filled up");
    println!("ERR ballast {ballast_kib} KiB, after {acked} acknowledged records: {err}");
    assert!(matches!(err, Error::Io { .. } | Error::Mirror { .. }), "a full disk must be an I/O error: {err:?}");
    assert!(is_enospc(&err), "the error must say the disk is full: {err}");
    let again = e.write(batch(99_999));
    assert!(matches!(again, Err(Error::Poisoned { .. })), "after a failed commit the engine must refuse writes: {again:?}");
    // The failure may come after the commit reached the WAL (from the checkpoint it triggered):
    // then the batch is whole and visible, as it will be after a reopen.
    let seen = e.count() as usize;
    assert!(seen == acked || seen == acked + BATCH, "reads see {seen} records; {acked} were acknowledged");
    e.abandon();

    // Still full: opening may fail (recovery writes), but with a typed error, never a panic.
    match open(&store) {
        Ok(e) => {
            println!("REOPEN-FULL ok, {} records", e.count());
            e.abandon();
        }
        Err(err) => println!("REOPEN-FULL refused: {err}"),
    }

    std::fs::remove_file(root.join("ballast")).expect("freeing space");
    let e = open(&store).unwrap_or_else(|err| panic!("the store must reopen once there is space: {err}"));
    e.check_integrity().unwrap_or_else(|err| panic!("integrity after a full disk: {err}"));
    let n = e.count() as usize;
    assert!(n == acked || n == acked + BATCH, "reopened with {n} records; {acked} were acknowledged (batches of {BATCH})");
    for i in 0..acked {
        assert!(e.get(&format!("r{i}")).expect("get").is_some(), "acknowledged record r{i} is lost");
    }
    // It takes writes again, or, if the space freed is still too little for them, refuses them
    // with the same typed error.
    let mut one = WriteBatch::new();
    one.add(Record::new("after", vec![1.0; DIM]));
    match e.write(one) {
        Ok(_) => e.close().expect("close"),
        Err(err) => {
            assert!(is_enospc(&err), "a write after space was freed failed otherwise: {err:?}");
            println!("STILL-FULL {err}");
            e.abandon();
        }
    }
    println!("RECOVERED {n} records ({acked} acknowledged)");
    std::fs::remove_dir_all(&store).expect("removing the store");
}

#[test]
fn real_enospc_on_a_small_filesystem() {
    let mount = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=1m memento-enospc "$0" && exec "$1" --exact enospc_child --nocapture --test-threads=1"#)
        .arg(mount.path())
        .arg(&exe)
        .env(DIR_ENV, mount.path())
        .output()
        .expect("running unshare (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the full-disk workload failed:\n{stdout}\n{stderr}");
    let recovered = stdout.matches("RECOVERED").count();
    assert_eq!(recovered, 6, "the workload did not fill, fail and recover six times in the namespace:\n{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| l.contains("ERR ballast") || l.contains("REOPEN") || l.contains("RECOVERED")) {
        eprintln!("{line}");
    }
}
