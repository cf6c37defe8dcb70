//! The default search (`ScanMode::Auto`, which uses the int8 scan on stores of 4,096 vectors
//! and more) returns exactly what the float32 scan (`ScanMode::Exact`) returns: the same slots
//! in the same order, whatever the data. Issue 13, item 4: with one dominant coordinate the int8
//! scan used to keep the wrong candidates (recall@10 0.08 under l2, 0.008 under dot).

use std::sync::Arc;

use memento::storage::MemStorage;
use memento::{Durability, Engine, Metric, Record, ScanMode, SearchOptions, WriteBatch};

/// A deterministic N(0, 1) stream (Box–Muller over a 64-bit LCG).
struct Gauss(u64);
impl Gauss {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn next(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

fn store(metric: Metric, vectors: &[Vec<f32>]) -> Engine {
    let e = Engine::builder_with_storage(Arc::new(MemStorage::new()))
        .dimension(vectors[0].len())
        .metric(metric)
        .durability(Durability::Buffered)
        .open()
        .expect("create");
    for (c, chunk) in vectors.chunks(1000).enumerate() {
        let mut b = WriteBatch::new();
        for (i, v) in chunk.iter().enumerate() {
            b.add(Record::new(format!("r{}", c * 1000 + i), v.clone()));
        }
        e.write(b).expect("write");
    }
    e
}

fn recall(e: &Engine, queries: &[Vec<f32>], k: usize) -> f64 {
    let mut found = 0usize;
    for q in queries {
        let want: Vec<String> = e.search_with(q, &SearchOptions::new(k).mode(ScanMode::Exact)).expect("exact").into_iter().map(|h| h.id).collect();
        let got: Vec<String> = e.search(q, k, None).expect("default").into_iter().map(|h| h.id).collect();
        assert_eq!(got.len(), want.len());
        found += got.iter().filter(|id| want.contains(id)).count();
        assert_eq!(got, want, "the default search differs from the exact scan");
    }
    found as f64 / (queries.len() * k) as f64
}

/// The case: 5,000 × 16, N(0, 1) with column 0 set to 1000, under each metric.
#[test]
fn a_dominant_coordinate_keeps_recall_at_one() {
    let mut g = Gauss(13);
    let mut gen = || {
        let mut v: Vec<f32> = (0..16).map(|_| g.next()).collect();
        v[0] = 1000.0;
        v
    };
    let vectors: Vec<Vec<f32>> = (0..5000).map(|_| gen()).collect();
    let queries: Vec<Vec<f32>> = (0..20).map(|_| gen()).collect();
    for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
        let e = store(metric, &vectors);
        assert_eq!(recall(&e, &queries, 10), 1.0, "{metric:?}");
    }
}
