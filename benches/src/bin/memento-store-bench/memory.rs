//! The process's memory while a compaction runs, from `/proc/self/status`. `RssAnon` is the
//! anonymous memory (heap, the buffers a compaction allocates): what the < 64 MiB target is
//! about. `RssFile` is the store's mapped file pages the process has touched: page cache the
//! kernel can drop at any time and that other processes mapping the file share, so it is
//! reported but not held to the target. `VmRSS` is their sum (plus shared memory).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Resident memory in KiB, as `/proc/self/status` gives it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    /// `VmRSS`: everything resident.
    pub vm_rss: u64,
    /// `RssAnon`: heap and other anonymous memory, what the process itself allocated.
    pub anon: u64,
    /// `RssFile`: file pages mapped and touched (the store's vector file).
    pub file: u64,
}

impl Rss {
    /// The current figures (zeros where `/proc` does not give them).
    pub fn now() -> Rss {
        let mut r = Rss::default();
        let Ok(text) = std::fs::read_to_string("/proc/self/status") else {
            return r;
        };
        for line in text.lines() {
            let field = match line.split(':').next() {
                Some("VmRSS") => &mut r.vm_rss,
                Some("RssAnon") => &mut r.anon,
                Some("RssFile") => &mut r.file,
                _ => continue,
            };
            *field = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        r
    }

    fn max(self, o: Rss) -> Rss {
        Rss { vm_rss: self.vm_rss.max(o.vm_rss), anon: self.anon.max(o.anon), file: self.file.max(o.file) }
    }
}

/// A thread reading [`Rss::now`] about every millisecond, keeping each field's peak.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Rss, usize)>,
}

impl Sampler {
    /// Starts sampling.
    pub fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = Rss::now();
            let mut samples = 1;
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
                peak = peak.max(Rss::now());
                samples += 1;
            }
            (peak.max(Rss::now()), samples + 1)
        });
        Sampler { stop, thread }
    }

    /// Stops sampling: each field's peak and the number of samples.
    pub fn finish(self) -> (Rss, usize) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_default()
    }
}
