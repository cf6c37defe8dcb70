//! I/O fault countdown: the Nth write, fsync, set_len or rename fails (EIO, ENOSPC, or a short
//! write), either once (every later call works again) or forever (every one after it fails too),
//! for every N until the workload completes. The error reaches
//! the caller typed, the engine refuses further writes (poisoned), and reopening shows the last
//! acknowledged commit (or the failed one, if its bytes happened to reach the file whole).

use std::collections::BTreeMap;
use std::sync::Arc;

use memento::storage::{FaultKind, FaultPlan, FaultStorage, MemStorage, Storage};
use memento::{Durability, Engine, Error, Metric, Record, WriteBatch};

type Model = BTreeMap<String, Vec<f32>>;

/// A workload of 30 batches with adds, upserts and deletes; the WAL limit is small so that
/// checkpoints (page writes, superblock, WAL rotation) happen several times.
fn batches() -> Vec<Vec<(String, Option<Vec<f32>>)>> {
    (0..30)
        .map(|b| {
            (0..5)
                .map(|i| {
                    let id = format!("r{}", (b * 3 + i) % 40);
                    if (b + i) % 4 == 3 {
                        (id, None)
                    } else {
                        (id, Some(vec![b as f32, i as f32, 1.0, (b * i) as f32]))
                    }
                })
                .collect()
        })
        .collect()
}

fn apply(m: &mut Model, batch: &[(String, Option<Vec<f32>>)]) {
    for (id, v) in batch {
        match v {
            Some(v) => m.insert(id.clone(), v.clone()),
            None => m.remove(id),
        };
    }
}

fn contents(e: &Engine) -> Model {
    e.iter().map(|r| r.expect("iterates")).map(|r| (r.id, r.vector)).collect()
}

fn run_with_fault(n: u64, kind: FaultKind, once: bool) -> (bool, u64) {
    let mem = MemStorage::new();
    let open = |s: Arc<dyn Storage>| {
        // The graph builder runs too (from 8 records on): a fault in its inserts or its writes
        // of the graph file is noted, never fails a commit, and leaves no damaged graph.
        let graph = memento::graph::GraphParams { m: 4, ef_construction: 16, ef_search: 16, min_vectors: 8 };
        Engine::builder_with_storage(s).dimension(4).metric(Metric::L2).page_size(8192).wal_limit(2048).durability(Durability::Sync).graph(Some(graph)).open()
    };
    open(Arc::new(mem.clone())).expect("create").close().expect("close");
    let faults = FaultPlan::new(n, kind, once);
    let mut acked = Model::new();
    let mut failed_batch = None;
    let mut failed_compaction = false;
    match open(Arc::new(FaultStorage::new(Arc::new(mem.clone()), Arc::clone(&faults)))) {
        Err(e) => assert!(matches!(e, Error::Io { .. }), "open under fault {n}: {e}"),
        Ok(engine) => {
            for (i, batch) in batches().into_iter().enumerate() {
                // Every third batch is preceded by a compaction (FORMAT.md §4.5): a fault
                // inside it leaves the acknowledged state, before or after its switch.
                if i % 3 == 2 {
                    if let Err(e) = engine.compact() {
                        assert!(matches!(e, Error::Io { .. }), "fault {n} ({kind:?}): a compaction's failure must be an I/O error, got {e}");
                        failed_compaction = true;
                        break;
                    }
                }
                let mut wb = WriteBatch::new();
                for (id, v) in &batch {
                    match v {
                        Some(v) => wb.upsert(Record::new(id.clone(), v.clone())),
                        None => wb.delete(id.clone()),
                    };
                }
                match engine.write(wb) {
                    Ok(_) => apply(&mut acked, &batch),
                    Err(e) => {
                        assert!(matches!(e, Error::Io { .. }), "fault {n} ({kind:?}): the first failure must be an I/O error, got {e}");
                        failed_batch = Some(batch);
                        break;
                    }
                }
            }
            if failed_batch.is_some() {
                // Sticky: nothing more is written, with a typed error, even once I/O works.
                faults.disarm();
                let again = engine.add(Record::new("late", vec![1.0, 2.0, 3.0, 4.0]));
                assert!(matches!(again, Err(Error::Poisoned { .. })), "fault {n}: after a failure, writes must be refused: {again:?}");
                assert!(matches!(engine.checkpoint(), Err(Error::Poisoned { .. })));
                // Reads still work and show at least everything acknowledged.
                assert!(engine.count() >= acked.len() as u64 || failed_batch.is_some());
            }
            engine.abandon();
        }
    }
    let injected = faults.injected();
    // Reopen without faults: the last acknowledged state, or that plus the failed batch.
    let engine = open(Arc::new(mem)).unwrap_or_else(|e| panic!("fault {n} ({kind:?}): reopening failed: {e}"));
    engine.check_integrity().unwrap_or_else(|e| panic!("fault {n} ({kind:?}): integrity: {e}"));
    let graph = engine.graph_info().unwrap_or_else(|e| panic!("fault {n} ({kind:?}): graph info: {e}"));
    assert!(graph.problem.is_none(), "fault {n} ({kind:?}): the graph file after a fault: {:?}", graph.problem);
    let got = contents(&engine);
    let mut with_failed = acked.clone();
    if let Some(b) = &failed_batch {
        apply(&mut with_failed, b);
    }
    assert!(got == acked || got == with_failed, "fault {n} ({kind:?}): reopened state is neither the acknowledged one nor that plus the failed batch");
    engine.close().expect("close");
    (failed_batch.is_none() && !failed_compaction && injected == 0, injected)
}

#[test]
fn every_fault_position_of_the_workload() {
    for (kind, once) in [FaultKind::Eio, FaultKind::Enospc, FaultKind::ShortWrite].into_iter().flat_map(|k| [(k, false), (k, true)]) {
        let mut n = 1;
        let mut positions = 0;
        loop {
            let (clean, _) = run_with_fault(n, kind, once);
            if clean {
                break;
            }
            positions += 1;
            n += 1;
            assert!(n < 10_000, "the workload never completes");
        }
        assert!(positions > 100, "{kind:?}: only {positions} fault positions; the workload does too little I/O");
        let mode = if once { "once" } else { "forever" };
        eprintln!("{kind:?} {mode}: {positions} fault positions, each recovered");
    }
}
