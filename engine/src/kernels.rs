//! Scalar distance kernels. Written so the compiler vectorises them (eight independent
//! accumulators); explicit SIMD with runtime dispatch comes with the search issue.

use memento_format::superblock::Metric;

/// Dot product.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
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

/// Squared Euclidean distance.
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
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

/// The distance of a stored vector from a query under `metric`; smaller is closer.
/// Under cosine both are unit vectors (normalised on write and at query time).
#[inline]
pub fn distance(metric: Metric, query: &[f32], v: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - dot(query, v),
        Metric::Dot => -dot(query, v),
        Metric::L2 => l2sq(query, v),
    }
}

/// `out[i]` = the distance of vector `i` of `vectors` from `query`.
pub fn distances(metric: Metric, query: &[f32], vectors: &[f32], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(vectors.chunks_exact(query.len())) {
        *o = distance(metric, query, v);
    }
}

/// `out[q * n + i]` = the distance of vector `i` from query `q` (`n` vectors of `dim`).
pub fn distances_multi(metric: Metric, dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
    let n = vectors.len() / dim;
    for (qi, q) in queries.chunks_exact(dim).enumerate() {
        distances(metric, q, vectors, &mut out[qi * n..(qi + 1) * n]);
    }
}

/// A query quantized as FORMAT.md §2.8 says, its codes shifted into unsigned bytes.
#[derive(Debug, Clone)]
pub struct QuantQuery {
    /// `code + 128`.
    pub codes: Vec<u8>,
    /// The query's scale.
    pub scale: f32,
    /// Σ q_i².
    pub sq_norm: f32,
}

/// Quantize a query.
pub fn quantize_query(q: &[f32]) -> QuantQuery {
    let mut c = vec![0i8; q.len()];
    let e = memento_format::page::quantize(q, &mut c);
    QuantQuery { codes: c.iter().map(|&x| (i16::from(x) + 128) as u8).collect(), scale: e.scale, sq_norm: e.sq_norm }
}

/// `out[i]` = Σ query[j] × codes[i·dim + j].
pub fn dots_u8i8(query: &[u8], codes: &[i8], out: &mut [i32]) {
    for (o, c) in out.iter_mut().zip(codes.chunks_exact(query.len())) {
        *o = query.iter().zip(c).map(|(&a, &b)| i32::from(a) * i32::from(b)).sum();
    }
}

/// The approximate distance from an int8 dot product.
#[inline]
pub fn approx_distance(metric: Metric, q: &QuantQuery, raw: i32, p: &memento_format::page::QuantEntry) -> f32 {
    let dot = q.scale * p.scale * (i64::from(raw) - 128 * i64::from(p.code_sum)) as f32;
    match metric {
        Metric::Cosine => 1.0 - dot,
        Metric::Dot => -dot,
        Metric::L2 => q.sq_norm + p.sq_norm - 2.0 * dot,
    }
}

/// Scale `v` to unit length. Returns false (and leaves `v` alone) when its norm is zero or not
/// finite.
pub fn normalize(v: &mut [f32]) -> bool {
    // In f64, so that neither very large nor very small (even subnormal) f32 components
    // overflow or vanish when squared.
    let mut acc = [0f64; 8];
    let (chunks, rest) = v.as_chunks::<8>();
    for c in chunks {
        for i in 0..8 {
            acc[i] += f64::from(c[i]) * f64::from(c[i]);
        }
    }
    let n = (acc.iter().sum::<f64>() + rest.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()).sqrt();
    if !(n.is_finite() && n > 0.0) {
        return false;
    }
    let inv = 1.0 / n;
    if inv < f64::from(f32::MAX) && inv > f64::from(f32::MIN_POSITIVE) {
        // The common case: the scale factor is a normal f32.
        let inv = inv as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    } else {
        v.iter_mut().for_each(|x| *x = (f64::from(*x) * inv) as f32);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn kernels_match_the_naive_sum(v in proptest::collection::vec((-100.0f32..100.0, -100.0f32..100.0), 0..70)) {
            let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
            let d: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let l: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
            prop_assert!((f64::from(dot(&a, &b)) - d).abs() <= 1e-3 * (1.0 + d.abs()) + 0.05);
            prop_assert!((f64::from(l2sq(&a, &b)) - l).abs() <= 1e-3 * (1.0 + l));
        }
    }

    #[test]
    fn normalize_refuses_zero() {
        let mut z = [0.0f32; 5];
        assert!(!normalize(&mut z));
        for mut v in [[3e19f32, 4e19], [3e-30, 4e-30], [f32::MAX, f32::MAX], [3e-45, 4e-45]] {
            assert!(normalize(&mut v), "{v:?}");
            assert!((v[0] * v[0] + v[1] * v[1] - 1.0).abs() < 1e-3, "{v:?}");
        }
        let mut v = [3.0f32, 4.0];
        assert!(normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    }
}
