//! What the writer's background graph builder and the searches share: the graphs (the one in
//! memory, the mapped file) and the builder's controls. The builder's loop is the engine's
//! (`engine/graph.rs`), which knows the store's state.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex, RwLock};

use super::file::MappedGraph;
use super::mem::MemGraph;
use super::GraphParams;

/// A measured recall@10 of the graph (FORMAT.md §7.6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The fraction of the exact top 10 the graph's answers held.
    pub recall: f32,
    /// Queries measured.
    pub sample: u32,
    /// The `ef` of the measurement.
    pub ef: u32,
}

/// The graphs of one open store.
pub(crate) struct GraphIndex {
    pub(crate) params: GraphParams,
    /// The writer's graph, once its builder has started (never in a reader).
    pub(crate) mem: RwLock<Option<MemGraph>>,
    /// The graph file, when it is usable.
    pub(crate) mapped: RwLock<Option<Arc<MappedGraph>>>,
    /// Why the graph file is not used, when it is damaged; the last failure of the builder.
    pub(crate) problem: Mutex<Option<String>>,
    /// How good the graph is, as last measured (FORMAT.md §7.6).
    pub(crate) estimate: Mutex<Option<Estimate>>,
    ctl: Mutex<Ctl>,
    cv: Condvar,
}

#[derive(Default)]
struct Ctl {
    stop: bool,
    /// Work may be waiting (a commit, a request).
    wake: bool,
    /// The builder found nothing to do since the last wake.
    idle: bool,
    /// Incremented by each pass of the builder that ended idle.
    passes: u64,
    /// Write the file at the next pass even below the usual growth.
    persist: bool,
    /// Bumped by a compaction: numbers of the graph in memory are stale.
    generation: u64,
    /// Someone waits for the builder ([`GraphIndex::wait_idle`]): use every core.
    hurry: bool,
}

impl GraphIndex {
    pub(crate) fn new(params: GraphParams) -> GraphIndex {
        GraphIndex {
            params,
            mem: RwLock::new(None),
            mapped: RwLock::new(None),
            problem: Mutex::new(None),
            estimate: Mutex::new(None),
            ctl: Mutex::new(Ctl::default()),
            cv: Condvar::new(),
        }
    }

    /// Use a graph file just opened (or none), with the recall its header records.
    pub(crate) fn set_mapped(&self, g: Option<Arc<MappedGraph>>) {
        *self.estimate.lock() = g.as_ref().and_then(|g| g.estimate());
        *self.mapped.write() = g;
    }

    /// Tell the builder that there may be work.
    pub(crate) fn wake(&self) {
        let mut c = self.ctl.lock();
        c.wake = true;
        c.idle = false;
        self.cv.notify_all();
    }

    /// Ask for the file to be written at the next pass, and wake the builder.
    pub(crate) fn request_persist(&self) {
        self.ctl.lock().persist = true;
        self.wake();
    }

    /// Stop the builder (it finishes the batch it is inserting).
    pub(crate) fn stop(&self) {
        self.ctl.lock().stop = true;
        self.cv.notify_all();
    }

    pub(crate) fn stopped(&self) -> bool {
        self.ctl.lock().stop
    }

    /// The numbering changed (a compaction): called under the state's write lock, so that
    /// whoever holds the state sees the graphs as stale from then on.
    pub(crate) fn renumbered(&self) {
        self.ctl.lock().generation += 1;
        *self.estimate.lock() = None;
    }

    /// Drop the graphs of an older numbering (after [`GraphIndex::renumbered`], without the
    /// state's lock: a builder may hold the graph while it waits for the state).
    pub(crate) fn drop_stale(&self) {
        let g = self.generation();
        let mut mem = self.mem.write();
        if mem.as_ref().is_some_and(|m| m.generation != g) {
            *mem = None;
        }
        drop(mem);
        *self.mapped.write() = None;
    }

    pub(crate) fn generation(&self) -> u64 {
        self.ctl.lock().generation
    }

    /// Threads for the next batch: every core while someone waits for the graph, else half
    /// of them (at least one), leaving the rest to the application.
    pub(crate) fn threads(&self, cores: usize) -> usize {
        if self.ctl.lock().hurry {
            cores.max(1)
        } else {
            (cores / 2).max(1)
        }
    }

    /// The builder waits for work; returns `None` when it must stop, else whether the file
    /// must be written.
    pub(crate) fn wait_for_work(&self) -> Option<bool> {
        let mut c = self.ctl.lock();
        loop {
            if c.stop {
                return None;
            }
            if c.wake {
                c.wake = false;
                return Some(std::mem::take(&mut c.persist));
            }
            c.idle = true;
            c.passes += 1;
            self.cv.notify_all();
            self.cv.wait(&mut c);
        }
    }

    /// Wait until the builder has finished a pass that began after this call (or stopped).
    pub(crate) fn wait_idle(&self) {
        let mut c = self.ctl.lock();
        c.wake = true;
        c.idle = false;
        c.hurry = true;
        let start = c.passes;
        self.cv.notify_all();
        while !(c.stop || (c.idle && c.passes > start)) {
            self.cv.wait(&mut c);
        }
        c.hurry = false;
    }
}
