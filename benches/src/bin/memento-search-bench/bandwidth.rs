//! Memory read bandwidth, single core and all cores.
//!
//! Two ways of reading the same buffer, so that each checks the other:
//! - **sum**: a wrapping `u64` sum of every word. Integer addition is associative, so the
//!   compiler vectorises and unrolls it freely; the core has far more load and add throughput
//!   than memory can feed, so the loop waits on memory alone.
//! - **lines**: one `u64` per 64-byte cache line. The core still has to fetch every line, but does
//!   almost no work per line, so this is the fetch rate of the memory system with nothing else
//!   in the way.
//!
//! The sum is also compiled for AVX2 and for AVX-512 (the same safe Rust in a function with
//! `#[target_feature]`, so its loads are 32 or 64 bytes wide), and run where the CPU has them:
//! on one core, wider loads keep more cache lines in flight, and that is what a SIMD scan
//! kernel does.
//!
//! The figure reported is the largest of the medians: the best a single reader reaches is the
//! limit a scan is measured against.
//!
//! All cores: one thread per core, each with its own buffer (allocated and first written by that
//! thread), started together behind a barrier; a pass lasts from the first thread's start to the
//! last thread's end, as the threads themselves time it.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const WORDS_PER_LINE: usize = 64 / std::mem::size_of::<u64>();

/// A buffer of `bytes` bytes (rounded down to whole words), every page written.
fn buffer(bytes: usize) -> Vec<u64> {
    let words = bytes / std::mem::size_of::<u64>();
    // Non-zero contents, written here, so every page is faulted in before any timing.
    (0..words as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect()
}

fn read_sum(buf: &[u64]) -> u64 {
    buf.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

/// [`read_sum`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn read_sum_avx2(buf: &[u64]) -> u64 {
    buf.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

/// [`read_sum`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn read_sum_avx512(buf: &[u64]) -> u64 {
    buf.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

fn read_lines(buf: &[u64]) -> u64 {
    buf.iter().step_by(WORDS_PER_LINE).fold(0u64, |a, &x| a.wrapping_add(x))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Sum,
    SumAvx2,
    SumAvx512,
    Lines,
}

impl Method {
    /// The methods this CPU can run.
    fn available() -> Vec<Method> {
        let mut m = vec![Method::Sum];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                m.push(Method::SumAvx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                m.push(Method::SumAvx512);
            }
        }
        m.push(Method::Lines);
        m
    }

    fn name(self) -> &'static str {
        match self {
            Method::Sum => "sum",
            Method::SumAvx2 => "sum_avx2",
            Method::SumAvx512 => "sum_avx512",
            Method::Lines => "lines",
        }
    }

    /// Run the method. Only call with a method from [`Method::available`].
    #[allow(unsafe_code, reason = "calling a #[target_feature] function after runtime detection")]
    fn run(self, buf: &[u64]) -> u64 {
        match self {
            Method::Sum => read_sum(black_box(buf)),
            // SAFETY: `Method::available` offers this method only when runtime detection found
            // AVX2, and no other code builds a `Method`; the function itself is safe Rust.
            #[cfg(target_arch = "x86_64")]
            Method::SumAvx2 => unsafe { read_sum_avx2(black_box(buf)) },
            // SAFETY: as above, with AVX-512 F detected.
            #[cfg(target_arch = "x86_64")]
            Method::SumAvx512 => unsafe { read_sum_avx512(black_box(buf)) },
            #[cfg(not(target_arch = "x86_64"))]
            Method::SumAvx2 | Method::SumAvx512 => unreachable!("only offered on x86-64"),
            Method::Lines => read_lines(black_box(buf)),
        }
    }
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e9 / d.as_secs_f64()
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Single core: `reps` timed passes of each method (after one untimed pass), interleaved.
fn single_core(bytes: usize, reps: usize) -> Value {
    let buf = buffer(bytes);
    let bytes = std::mem::size_of_val(buf.as_slice());
    let methods = Method::available();
    let mut rates = vec![Vec::new(); methods.len()];
    for &m in &methods {
        black_box(m.run(&buf));
    }
    for _ in 0..reps {
        for (i, m) in methods.iter().enumerate() {
            let t = Instant::now();
            black_box(m.run(&buf));
            rates[i].push(gbps(bytes, t.elapsed()));
        }
    }
    report(bytes, 1, &methods, &rates)
}

/// All cores: `threads` threads, each reading its own `bytes`-byte buffer.
///
/// The workers take their own timestamps: a pass lasts from the earliest start to the latest
/// end among them. (Timing from a coordinating thread would need a core of its own: with every
/// core busy reading, it may run late after the start barrier and see too short a pass.)
fn all_core(bytes: usize, reps: usize, threads: usize) -> Value {
    let methods = Method::available();
    let barrier = Barrier::new(threads);
    let epoch = Instant::now();
    // Per worker: its buffer's size, and (start, end) since `epoch` of each timed pass, in order.
    let per_worker: Vec<(usize, Vec<(Duration, Duration)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, methods) = (&barrier, &methods);
                s.spawn(move || {
                    let buf = buffer(bytes);
                    for &m in methods {
                        black_box(m.run(&buf));
                    }
                    let mut times = Vec::with_capacity(reps * methods.len());
                    for _ in 0..reps {
                        for &m in methods {
                            barrier.wait();
                            let start = epoch.elapsed();
                            black_box(m.run(&buf));
                            times.push((start, epoch.elapsed()));
                        }
                    }
                    (std::mem::size_of_val(buf.as_slice()), times)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a bandwidth thread panicked")).collect()
    });
    let total: usize = per_worker.iter().map(|(b, _)| b).sum();
    let mut rates = vec![Vec::new(); methods.len()];
    for pass in 0..reps * methods.len() {
        let start = per_worker.iter().map(|(_, t)| t[pass].0).min().unwrap_or_default();
        let end = per_worker.iter().map(|(_, t)| t[pass].1).max().unwrap_or_default();
        rates[pass % methods.len()].push(gbps(total, end.saturating_sub(start)));
    }
    report(total, threads, &methods, &rates)
}

fn report(bytes: usize, threads: usize, methods: &[Method], rates: &[Vec<f64>]) -> Value {
    let mut by_method = serde_json::Map::new();
    let mut best: f64 = 0.0;
    for (m, r) in methods.iter().zip(rates) {
        let med = median(r);
        best = best.max(med);
        by_method.insert(m.name().into(), json!({ "median_gbps": med, "reps_gbps": r }));
    }
    json!({ "threads": threads, "bytes": bytes, "gbps": best, "methods": by_method })
}

/// Measure both (`bytes` for the single core, `all_bytes` per thread for all cores), print
/// progress on stderr, return the JSON report.
pub fn measure(bytes: usize, all_bytes: usize, reps: usize, threads: usize) -> Value {
    let gib = |b: usize| b as f64 / (1u64 << 30) as f64;
    eprintln!("bandwidth: single core, {:.2} GiB buffer, {reps} reps per method", gib(bytes));
    let single = single_core(bytes, reps);
    eprintln!("bandwidth: {threads} threads, {:.2} GiB buffer each", gib(all_bytes));
    let all = all_core(all_bytes, reps, threads);
    json!({ "single_core": single, "all_core": all })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_reads_what_it_should() {
        let buf: Vec<u64> = (0..1000).collect();
        let sum = (0..1000).sum::<u64>();
        for m in Method::available() {
            let want = if m == Method::Lines { (0..1000).step_by(8).sum::<u64>() } else { sum };
            assert_eq!(m.run(&buf), want, "{}", m.name());
        }
        let buf: Vec<u64> = (0..64).collect();
        assert_eq!(read_sum(&buf), (0..64).sum::<u64>());
        assert_eq!(read_lines(&buf), (0..64).step_by(8).sum::<u64>());
    }

    #[test]
    fn median_takes_the_middle() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
