//! Portable kernels: the reference every SIMD set is tested against, and the fallback on CPUs
//! without one. Written so the compiler vectorises them with the baseline features (eight
//! independent accumulators).

use super::{check_block, check_multi, check_pair, Isa, Kernels};

/// The scalar table: always available.
pub(super) static TABLE: Kernels = Kernels { isa: Isa::Scalar, int8: "scalar", dot, l2sq, dots, l2sqs, dots_multi, dot_u8i8, dots_u8i8 };

/// Dot product; the caller has checked that the lengths are equal.
pub(super) fn dot_impl(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Squared Euclidean distance; the caller has checked that the lengths are equal.
fn l2sq_impl(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, ra) = a.as_chunks::<8>();
    let (cb, rb) = b.as_chunks::<8>();
    for (x, y) in ca.iter().zip(cb) {
        for i in 0..8 {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    check_pair(a.len(), b.len());
    dot_impl(a, b)
}

fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    check_pair(a.len(), b.len());
    l2sq_impl(a, b)
}

fn dots(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    check_block(query.len(), vectors.len(), out.len());
    if query.is_empty() {
        out.fill(0.0);
        return;
    }
    for (o, v) in out.iter_mut().zip(vectors.chunks_exact(query.len())) {
        *o = dot_impl(query, v);
    }
}

fn l2sqs(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    check_block(query.len(), vectors.len(), out.len());
    if query.is_empty() {
        out.fill(0.0);
        return;
    }
    for (o, v) in out.iter_mut().zip(vectors.chunks_exact(query.len())) {
        *o = l2sq_impl(query, v);
    }
}

fn dots_multi(dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
    let Some((_, n)) = check_multi(dim, queries.len(), vectors.len(), out.len()) else {
        out.fill(0.0);
        return;
    };
    for (i, v) in vectors.chunks_exact(dim).enumerate() {
        for (q, row) in queries.chunks_exact(dim).zip(out.chunks_exact_mut(n)) {
            row[i] = dot_impl(q, v);
        }
    }
}

/// Σ a[i]·b[i], wrapping modulo 2³² like every SIMD version (exact up to 65,793 elements).
pub(super) fn dot_u8i8_impl(a: &[u8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0i32, |s, (&x, &y)| s.wrapping_add(i32::from(x) * i32::from(y)))
}

fn dot_u8i8(a: &[u8], b: &[i8]) -> i32 {
    check_pair(a.len(), b.len());
    dot_u8i8_impl(a, b)
}

fn dots_u8i8(query: &[u8], codes: &[i8], out: &mut [i32]) {
    check_block(query.len(), codes.len(), out.len());
    if query.is_empty() {
        out.fill(0);
        return;
    }
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(query.len())) {
        *o = dot_u8i8_impl(query, c);
    }
}
