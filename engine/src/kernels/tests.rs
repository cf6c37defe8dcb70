//! Every table against the scalar one, the length contracts, and the int8 quantization.
//!
//! # The f32 tolerance
//!
//! Two kernels sum the same `n` terms tᵢ (products aᵢbᵢ, or squares dᵢ² of the identically
//! rounded differences) in different orders. A sum computed by additions along a tree of
//! height `h`, each term first rounded once, is within `(h + 1)·u·Σ|tᵢ|` (to first order) of
//! the exact sum, with `u = 2⁻²⁴`. Heights: scalar ≤ ⌈n/8⌉ + 8 + 7 (eight lane chains, the
//! sum of the lanes, the tail); SIMD ≤ ⌈n/16⌉ + 2 + 4 (NEON's four lanes × four accumulators
//! is the deepest, then the accumulators and the lanes). So two results differ by at most
//! `(3n/16 + 32)·u·Σ|tᵢ|`, and in gradual underflow by at most 2⁻¹⁵⁰ more per rounding (≤ 2n
//! per kernel): [`tolerance`]. At n = 384 that is 6.2·10⁻⁶·Σ|tᵢ|; at n = 1000, 1.3·10⁻⁵. This is a
//! proven bound, not a fitted one; the observed differences are far smaller.

use super::*;
use proptest::prelude::*;

/// Every table to check: each supported instruction set, plus, where AVX-512 is supported, the
/// int8 fallback for CPUs without VNNI.
fn tables() -> Vec<&'static Kernels> {
    #[allow(unused_mut, reason = "extended on x86-64 only")]
    let mut t: Vec<&'static Kernels> = Isa::ALL.into_iter().filter_map(kernels_for).collect();
    #[cfg(target_arch = "x86_64")]
    t.extend(x86::avx512_without_vnni());
    t
}

fn scalar() -> &'static Kernels {
    &scalar::TABLE
}

/// See the module documentation.
fn tolerance(n: usize, abs_sum: f64) -> f64 {
    let u = 2f64.powi(-24);
    (3.0 * n as f64 / 16.0 + 32.0) * u * abs_sum + (n as f64 + 1.0) * 2f64.powi(-148)
}

/// Σ|aᵢbᵢ| and Σ(aᵢ − bᵢ)², exactly enough (f64) for the tolerance.
fn abs_sums(a: &[f32], b: &[f32]) -> (f64, f64) {
    let p = a.iter().zip(b).map(|(x, y)| (f64::from(*x) * f64::from(*y)).abs()).sum();
    let l = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    (p, l)
}

/// SplitMix64 with a few samplers.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Mostly in (−1, 1), sometimes 10⁻²⁰ to 10¹⁵ in magnitude (products down in the
    /// subnormals, up to 10³⁰), sometimes exactly 0.
    fn mixed(&mut self) -> f32 {
        let m = (2.0 * self.unit() - 1.0) as f32;
        match self.next() % 10 {
            0 => 0.0,
            1 | 2 => m * 10f32.powi((self.next() % 36) as i32 - 20),
            _ => m,
        }
    }
    fn mixed_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.mixed()).collect()
    }
    fn gaussian(&mut self) -> f32 {
        let (u1, u2) = (1.0 - self.unit(), self.unit());
        ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
    }
    fn unit_vector(&mut self, n: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..n).map(|_| self.gaussian()).collect();
        assert!(normalize(&mut v));
        v
    }
    fn bytes(&mut self, n: usize) -> (Vec<u8>, Vec<i8>) {
        ((0..n).map(|_| self.next() as u8).collect(), (0..n).map(|_| self.next() as i8).collect())
    }
}

/// The lengths every kernel is checked at.
fn lengths() -> impl Iterator<Item = usize> {
    (0..=130).chain([384, 768, 1000])
}

fn length() -> impl Strategy<Value = usize> {
    prop_oneof![0usize..=130, Just(384), Just(768), Just(1000)]
}

/// A value of mixed magnitude (see [`Rng::mixed`]).
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        7 => -1.0f32..1.0,
        2 => (-1.0f32..1.0, -20i32..=15).prop_map(|(m, e)| m * 10f32.powi(e)),
        1 => Just(0.0f32),
    ]
}

/// `k.dot` and `k.l2sq` against the scalar kernels (within [`tolerance`]) and against the f64
/// sum (within the scalar bound, which is the larger).
fn check_pair_kernels(k: &Kernels, a: &[f32], b: &[f32]) -> std::result::Result<(), TestCaseError> {
    let n = a.len();
    let (p, l) = abs_sums(a, b);
    let exact_dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let (d, s) = (k.dot(a, b), scalar().dot(a, b));
    prop_assert!((f64::from(d) - f64::from(s)).abs() <= tolerance(n, p), "{} dot n={n}: {d} vs scalar {s}", k.isa);
    prop_assert!((f64::from(d) - exact_dot).abs() <= tolerance(n, p), "{} dot n={n}: {d} vs exact {exact_dot}", k.isa);
    let (d, s) = (k.l2sq(a, b), scalar().l2sq(a, b));
    prop_assert!((f64::from(d) - f64::from(s)).abs() <= tolerance(n, l), "{} l2sq n={n}: {d} vs scalar {s}", k.isa);
    prop_assert!((f64::from(d) - l).abs() <= tolerance(n, l), "{} l2sq n={n}: {d} vs exact {l}", k.isa);
    Ok(())
}

/// The block kernels of `k` are bit-identical to its pair kernels, and write every output.
fn check_block_kernels(k: &Kernels, dim: usize, q: &[f32], vs: &[f32], queries: &[f32]) -> std::result::Result<(), TestCaseError> {
    let n = vs.len().checked_div(dim).unwrap_or(3);
    let vec_i = |i: usize| &vs[i * dim..(i + 1) * dim];
    let mut out = vec![f32::NAN; n];
    k.dots(q, vs, &mut out);
    for (i, o) in out.iter().enumerate() {
        prop_assert_eq!(o.to_bits(), k.dot(q, vec_i(i)).to_bits(), "{} dots dim={} i={}", k.isa, dim, i);
    }
    let mut out = vec![f32::NAN; n];
    k.l2sqs(q, vs, &mut out);
    for (i, o) in out.iter().enumerate() {
        prop_assert_eq!(o.to_bits(), k.l2sq(q, vec_i(i)).to_bits(), "{} l2sqs dim={} i={}", k.isa, dim, i);
    }
    if let Some(nq) = queries.len().checked_div(dim) {
        let mut out = vec![f32::NAN; nq * n];
        k.dots_multi(dim, queries, vs, &mut out);
        for (j, qj) in queries.chunks_exact(dim).enumerate() {
            for i in 0..n {
                prop_assert_eq!(out[j * n + i].to_bits(), k.dot(qj, vec_i(i)).to_bits(), "{} dots_multi dim={} q={} i={}", k.isa, dim, j, i);
            }
        }
    }
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let mut out = vec![f32::NAN; n];
        distances(metric, q, vs, &mut out);
        for (i, o) in out.iter().enumerate() {
            prop_assert_eq!(o.to_bits(), distance(metric, q, vec_i(i)).to_bits());
        }
    }
    Ok(())
}

/// The int8 kernels of `k` equal the exact sum, and the block kernel the pair kernel.
fn check_int8(k: &Kernels, q: &[u8], codes: &[i8]) -> std::result::Result<(), TestCaseError> {
    let dim = q.len();
    let n = codes.len().checked_div(dim).unwrap_or(2);
    let mut out = vec![i32::MIN; n];
    k.dots_u8i8(q, codes, &mut out);
    for (i, o) in out.iter().enumerate() {
        let c = &codes[i * dim..(i + 1) * dim];
        let exact: i64 = q.iter().zip(c).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
        prop_assert_eq!(i64::from(k.dot_u8i8(q, c)), exact, "{} ({}) dot_u8i8 dim={}", k.isa, k.int8_impl(), dim);
        prop_assert_eq!(i64::from(*o), exact, "{} ({}) dots_u8i8 dim={} i={}", k.isa, k.int8_impl(), dim, i);
    }
    Ok(())
}

#[test]
fn the_tables_are_those_of_the_supported_sets() {
    let t = tables();
    assert!(t.iter().any(|k| k.isa == Isa::Scalar));
    assert!(t.iter().any(|k| k.isa == Isa::best()));
    assert!(kernels().isa.supported());
    for isa in Isa::ALL {
        assert_eq!(kernels_for(isa).is_some(), isa.supported(), "{isa}");
        if let Some(k) = kernels_for(isa) {
            assert_eq!(k.isa, isa);
        }
        assert_eq!(Isa::from_name(isa.name()), Some(isa));
    }
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
    assert_eq!(Isa::from_name("sse"), None);
    let names: Vec<String> = t.iter().map(|k| format!("{}/{}", k.isa, k.int8_impl())).collect();
    eprintln!("kernel tables tested: {names:?}; kernels() = {}", kernels().isa);
}

#[test]
fn memento_isa_selects_a_supported_set_or_falls_back() {
    assert_eq!(choose(Some("scalar")).isa, Isa::Scalar);
    assert_eq!(choose(Some(" Scalar\n")).isa, Isa::Scalar);
    assert_eq!(choose(None).isa, Isa::best());
    assert_eq!(choose(Some("sse9")).isa, Isa::best());
    assert_eq!(choose(Some("")).isa, Isa::best());
    for isa in Isa::ALL {
        let expect = if isa.supported() { isa } else { Isa::best() };
        assert_eq!(choose(Some(isa.name())).isa, expect);
    }
}

#[test]
fn every_table_matches_scalar_at_every_length() {
    let mut rng = Rng(1);
    for k in tables() {
        for n in lengths() {
            for _ in 0..4 {
                let (a, b) = (rng.mixed_vec(n), rng.mixed_vec(n));
                if let Err(e) = check_pair_kernels(k, &a, &b) {
                    panic!("{e}");
                }
            }
            for n_vec in [0, 1, 2, 3, 4, 5, 9] {
                let q = rng.mixed_vec(n);
                let vs = rng.mixed_vec(n * n_vec);
                let queries = rng.mixed_vec(n * 5);
                if let Err(e) = check_block_kernels(k, n, &q, &vs, &queries) {
                    panic!("{e}");
                }
            }
        }
    }
}

/// Small enough for Miri (`make miri`, where the `unsafe` SIMD code runs under the interpreter
/// with `-C target-feature=+avx2,+fma`): every table at the lengths around each kernel's step
/// and tail, float32 and int8, against the scalar kernels.
#[test]
fn miri_every_table_at_the_edge_lengths() {
    let mut rng = Rng(3);
    for k in tables() {
        for n in [0usize, 1, 7, 8, 9, 15, 16, 17, 33, 64, 65] {
            let (a, b) = (rng.mixed_vec(n), rng.mixed_vec(n));
            if let Err(e) = check_pair_kernels(k, &a, &b) {
                panic!("{e}");
            }
            let vs = rng.mixed_vec(n * 3);
            let queries = rng.mixed_vec(n * 2);
            if let Err(e) = check_block_kernels(k, n, &a, &vs, &queries) {
                panic!("{e}");
            }
            let (q, c) = rng.bytes(n);
            if let Err(e) = check_int8(k, &q, &c) {
                panic!("{e}");
            }
        }
    }
}

#[test]
fn int8_is_exact_at_every_length_and_extreme() {
    let mut rng = Rng(2);
    for k in tables() {
        for n in lengths().chain([4096]) {
            let (q, c) = rng.bytes(n);
            let (_, more) = rng.bytes(5 * n);
            for codes in [c, more] {
                if let Err(e) = check_int8(k, &q, &codes) {
                    panic!("{e}");
                }
            }
            for (x, y) in [(255u8, -128i8), (255, 127), (0, -128), (1, -1)] {
                if let Err(e) = check_int8(k, &vec![x; n], &vec![y; 3 * n]) {
                    panic!("{e}");
                }
            }
        }
    }
}

#[test]
fn int8_wraps_identically_beyond_the_exact_range() {
    // 255 · (−128) · 70,000 < i32::MIN: every table wraps modulo 2³², like the scalar one.
    let (q, c) = (vec![255u8; 70_000], vec![-128i8; 70_000]);
    let exact = -255i64 * 128 * 70_000;
    for k in tables() {
        assert_eq!(k.dot_u8i8(&q, &c), exact as i32, "{}", k.isa);
        let mut out = [0i32; 1];
        k.dots_u8i8(&q, &c, &mut out);
        assert_eq!(out[0], exact as i32, "{}", k.isa);
    }
}

/// Runs `f`, which must panic.
fn panics(f: impl FnOnce()) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err()
}

#[test]
fn mismatched_lengths_panic_before_any_access() {
    let v = vec![1.0f32; 64];
    let b = [1u8; 64];
    let c = [1i8; 64];
    for k in tables() {
        let isa = k.isa;
        let mut out = [0f32; 16];
        let mut iout = [0i32; 16];
        assert!(
            panics(|| {
                k.dot(&v[..3], &v[..40]);
            }),
            "{isa}"
        );
        assert!(
            panics(|| {
                k.l2sq(&v[..40], &v[..3]);
            }),
            "{isa}"
        );
        assert!(
            panics(|| {
                k.dot_u8i8(&b[..17], &c[..64]);
            }),
            "{isa}"
        );
        // Too few vector elements for the outputs, too many, and a dimension of 0.
        assert!(panics(|| k.dots(&v[..8], &v[..63], &mut out[..8])), "{isa}");
        assert!(panics(|| k.dots(&v[..8], &v[..64], &mut out[..7])), "{isa}");
        assert!(panics(|| k.dots(&v[..8], &v[..8], &mut out[..16])), "{isa}");
        assert!(panics(|| k.dots(&[], &v[..1], &mut out[..2])), "{isa}");
        assert!(panics(|| k.l2sqs(&v[..8], &v[..63], &mut out[..8])), "{isa}");
        assert!(panics(|| k.l2sqs(&v[..16], &v[..16], &mut out[..16])), "{isa}");
        assert!(panics(|| k.dots_u8i8(&b[..8], &c[..63], &mut iout[..8])), "{isa}");
        assert!(panics(|| k.dots_u8i8(&b[..16], &c[..16], &mut iout[..16])), "{isa}");
        assert!(panics(|| k.dots_multi(8, &v[..12], &v[..16], &mut out[..2])), "{isa}");
        assert!(panics(|| k.dots_multi(8, &v[..16], &v[..12], &mut out[..2])), "{isa}");
        assert!(panics(|| k.dots_multi(8, &v[..16], &v[..24], &mut out[..7])), "{isa}");
        assert!(panics(|| k.dots_multi(8, &v[..16], &v[..24], &mut out[..5])), "{isa}");
        assert!(panics(|| k.dots_multi(0, &v[..1], &[], &mut out[..5])), "{isa}");
        // The degenerate cases that are allowed.
        let mut z = vec![f32::NAN; 3];
        k.dots(&[], &[], &mut z);
        assert_eq!(z, [0.0; 3]);
        let mut z = vec![f32::NAN; 3];
        k.dots_multi(0, &[], &[], &mut z);
        assert_eq!(z, [0.0; 3]);
        k.dots_multi(8, &v[..16], &[], &mut []);
        k.dots_multi(8, &[], &v[..16], &mut []);
        let mut z = vec![i32::MIN; 2];
        k.dots_u8i8(&[], &[], &mut z);
        assert_eq!(z, [0; 2]);
        assert_eq!(k.dot(&[], &[]), 0.0);
        assert_eq!(k.dot_u8i8(&[], &[]), 0);
    }
    assert!(panics(|| {
        quantize_vector(&v[..3], &mut [0i8; 4]);
    }));
    assert!(panics(|| approx_distances(Metric::Dot, &QuantQuery::default(), &[0; 2], &[QuantParams::default(); 2], &mut [0.0; 3])));
}

proptest! {
    #[test]
    fn kernels_match_the_naive_sum(v in proptest::collection::vec((-100.0f32..100.0, -100.0f32..100.0), 0..70)) {
        let (a, b): (Vec<f32>, Vec<f32>) = v.into_iter().unzip();
        let d: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        let l: f64 = a.iter().zip(&b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum();
        prop_assert!((f64::from(dot(&a, &b)) - d).abs() <= 1e-3 * (1.0 + d.abs()) + 0.05);
        prop_assert!((f64::from(l2sq(&a, &b)) - l).abs() <= 1e-3 * (1.0 + l));
    }

    #[test]
    fn pair_kernels_match_scalar(ab in length().prop_flat_map(|n| (proptest::collection::vec(value(), n), proptest::collection::vec(value(), n)))) {
        for k in tables() {
            check_pair_kernels(k, &ab.0, &ab.1)?;
        }
    }

    #[test]
    fn block_kernels_match_pair_kernels(dim in prop_oneof![0usize..=40, Just(384)], n in 0usize..=9, nq in 0usize..=9, seed: u64) {
        let mut rng = Rng(seed);
        let (q, vs, queries) = (rng.mixed_vec(dim), rng.mixed_vec(n * dim), rng.mixed_vec(nq * dim));
        for k in tables() {
            check_block_kernels(k, dim, &q, &vs, &queries)?;
        }
    }

    #[test]
    fn int8_kernels_are_exact(dim in prop_oneof![0usize..=140, Just(384), Just(1000)], n in 0usize..=9, seed: u64) {
        let mut rng = Rng(seed);
        let (q, _) = rng.bytes(dim);
        let (_, codes) = rng.bytes(n * dim);
        for k in tables() {
            check_int8(k, &q, &codes)?;
        }
    }

    #[test]
    fn quantized_codes_follow_the_formula(v in proptest::collection::vec(value(), 0..50)) {
        let mut codes = vec![0i8; v.len()];
        let p = quantize_vector(&v, &mut codes);
        let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        prop_assert_eq!(p.scale, if m == 0.0 { 0.0 } else { m / 127.0 });
        prop_assert_eq!(p.code_sum, codes.iter().map(|&c| i32::from(c)).sum::<i32>());
        let exact: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        prop_assert!((f64::from(p.sq_norm) - exact).abs() <= 1e-5 * exact + 1e-30 || !exact.is_finite() || exact > f64::from(f32::MAX), "sq_norm {} vs {exact}", p.sq_norm);
        let q = quantize_query(&v);
        prop_assert_eq!((q.scale, q.sq_norm), (p.scale, p.sq_norm));
        for ((&x, &c), &u) in v.iter().zip(&codes).zip(&q.codes) {
            prop_assert!((-127..=127).contains(&c));
            prop_assert_eq!(i16::from(u), i16::from(c) + 128);
            if p.scale > 0.0 {
                prop_assert_eq!(f32::from(c), (x / p.scale).round().clamp(-127.0, 127.0));
            } else {
                prop_assert_eq!(c, 0);
            }
        }
    }
}

#[test]
fn quantization_rounds_half_away_from_zero() {
    let v = [127.0f32, 0.5, -0.5, 1.5, -2.5, 0.0, 126.5, -127.0, 0.49];
    let mut codes = [0i8; 9];
    let p = quantize_vector(&v, &mut codes);
    assert_eq!(p.scale, 1.0);
    assert_eq!(codes, [127, 1, -1, 2, -3, 0, 127, -127, 0]);
    assert_eq!(p.code_sum, 126);
    assert_eq!(p.sq_norm, v.iter().map(|x| x * x).sum::<f32>());
    assert_eq!(quantize_query(&v).codes, [255, 129, 127, 130, 125, 128, 255, 1, 128]);
    let mut codes = [5i8; 4];
    assert_eq!(quantize_vector(&[0.0; 4], &mut codes), QuantParams { scale: 0.0, code_sum: 0, sq_norm: 0.0, reserved: 0 });
    assert_eq!(codes, [0; 4]);
    assert_eq!(quantize_query(&[0.0, -0.0]), QuantQuery { codes: vec![128, 128], scale: 0.0, sq_norm: 0.0 });
}

/// Quantized copies of `n` 384-d unit vectors: (vectors, codes, params).
fn quantized_unit_vectors(rng: &mut Rng, n: usize, dim: usize) -> (Vec<f32>, Vec<i8>, Vec<QuantParams>) {
    let vs: Vec<f32> = (0..n).flat_map(|_| rng.unit_vector(dim)).collect();
    let mut codes = vec![0i8; n * dim];
    let params = vs.chunks_exact(dim).zip(codes.chunks_exact_mut(dim)).map(|(v, c)| quantize_vector(v, c)).collect();
    (vs, codes, params)
}

#[test]
fn the_integer_dot_product_removes_the_offset_exactly() {
    let mut rng = Rng(3);
    let dim = 384;
    let (vs, codes, params) = quantized_unit_vectors(&mut rng, 20, dim);
    let q = quantize_query(&rng.unit_vector(dim));
    for k in tables() {
        for ((c, p), _) in codes.chunks_exact(dim).zip(&params).zip(vs.chunks_exact(dim)) {
            let raw = k.dot_u8i8(&q.codes, c);
            let signed: i64 = q.codes.iter().zip(c).map(|(&u, &d)| (i64::from(u) - 128) * i64::from(d)).sum();
            assert_eq!(i64::from(raw) - 128 * i64::from(p.code_sum), signed);
        }
    }
}

/// The worst error of the approximate dot product over 40,000 pairs of 384-d Gaussian unit
/// vectors (seeded, so reproducible) must stay under this bound. Theory: each code is off by at
/// most half a step, uniformly, so the error is about `sqrt((s_q² + s_v²)/12)` with steps
/// s ≈ max|xᵢ|/127 ≈ 0.15/127: ≈ 5·10⁻⁴. Measured: 5.2·10⁻⁴ rms, 2.2·10⁻³ (4.2σ) at worst.
const APPROX_DOT_BOUND: f32 = 4e-3;

#[test]
fn approximate_distances_are_close() {
    let mut rng = Rng(4);
    let dim = 384;
    let (vs, codes, params) = quantized_unit_vectors(&mut rng, 200, dim);
    let k = kernels();
    let (mut worst, mut sum_sq, mut count) = (0f32, 0f64, 0usize);
    let mut raws = vec![0i32; 200];
    let mut approx = vec![0f32; 200];
    for _ in 0..200 {
        let qf = rng.unit_vector(dim);
        let q = quantize_query(&qf);
        k.dots_u8i8(&q.codes, &codes, &mut raws);
        approx_distances(Metric::Dot, &q, &raws, &params, &mut approx);
        for ((v, (&raw, p)), &a) in vs.chunks_exact(dim).zip(raws.iter().zip(&params)).zip(&approx) {
            let exact = scalar().dot(&qf, v);
            let err = (-a - exact).abs();
            worst = worst.max(err);
            sum_sq += f64::from(err).powi(2);
            count += 1;
            assert_eq!(a, approx_distance(Metric::Dot, &q, raw, p));
            assert_eq!(approx_distance(Metric::Cosine, &q, raw, p), 1.0 - -a);
            let l2 = approx_distance(Metric::L2, &q, raw, p);
            assert!((l2 - scalar().l2sq(&qf, v)).abs() <= 2.0 * APPROX_DOT_BOUND + 1e-5, "{l2}");
        }
    }
    let rms = (sum_sq / count as f64).sqrt();
    eprintln!("approx dot error over {count} pairs of 384-d unit vectors: rms {rms:.2e}, worst {worst:.2e}");
    assert!(worst < APPROX_DOT_BOUND, "worst {worst}");
}

#[test]
fn ranking_by_int8_then_rescoring_recovers_the_exact_top_10() {
    let (dim, n, queries, top, shortlist) = (384, 5_000, 50, 10, 40);
    let mut rng = Rng(5);
    let (vs, codes, params) = quantized_unit_vectors(&mut rng, n, dim);
    let k = kernels();
    let (mut exact_d, mut raws, mut approx_d) = (vec![0f32; n], vec![0i32; n], vec![0f32; n]);
    let mut found = 0;
    for _ in 0..queries {
        let qf = rng.unit_vector(dim);
        distances(Metric::Cosine, &qf, &vs, &mut exact_d);
        let mut exact: Vec<usize> = (0..n).collect();
        exact.sort_by(|&a, &b| exact_d[a].total_cmp(&exact_d[b]).then(a.cmp(&b)));
        let q = quantize_query(&qf);
        k.dots_u8i8(&q.codes, &codes, &mut raws);
        approx_distances(Metric::Cosine, &q, &raws, &params, &mut approx_d);
        let mut cand: Vec<usize> = (0..n).collect();
        cand.sort_by(|&a, &b| approx_d[a].total_cmp(&approx_d[b]).then(a.cmp(&b)));
        cand.truncate(shortlist);
        cand.sort_by(|&a, &b| exact_d[a].total_cmp(&exact_d[b]).then(a.cmp(&b)));
        found += cand[..top].iter().filter(|i| exact[..top].contains(i)).count();
    }
    let recall = found as f64 / (queries * top) as f64;
    eprintln!("int8 shortlist of {shortlist} + f32 rescoring: recall@{top} = {recall}");
    assert!(recall >= 0.999, "recall {recall}");
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

proptest! {
    /// Found by the CLI's export/import test: normalising a vector the engine had normalised
    /// moved the last bits of 12% of a real corpus's vectors, so a cosine store's export did not
    /// import exactly. Normalising is now idempotent bit for bit.
    #[test]
    fn normalizing_a_normalized_vector_changes_no_bit(v in proptest::collection::vec(-1000.0f32..1000.0, 1..700)) {
        let mut once = v.clone();
        prop_assume!(normalize(&mut once));
        let mut twice = once.clone();
        prop_assert!(normalize(&mut twice));
        prop_assert_eq!(once.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), twice.iter().map(|x| x.to_bits()).collect::<Vec<_>>());
    }
}

proptest! {
    /// The quantizer used on writes (AVX2 where the chosen table allows it) gives exactly the
    /// format crate's result, bit for bit: the integrity check recomputes it with the latter.
    #[test]
    fn fast_quantizer_is_bit_identical_to_the_format_crate(
        v in prop_oneof![proptest::collection::vec(value(), 0..140), proptest::collection::vec(-1.0f32..1.0, 384..=384)],
        halves in proptest::collection::vec(-300i32..300, 0..40),
    ) {
        // Also values that land exactly on halves of the scale (ties in the rounding).
        let mut v = v;
        if let Some(m) = v.iter().map(|x| x.abs()).reduce(f32::max).filter(|m| *m > 0.0 && m.is_finite()) {
            let scale = m / 127.0;
            v.extend(halves.iter().map(|h| (*h as f32 * 0.5 * scale).clamp(-m, m)));
        }
        let (mut a, mut b) = (vec![0i8; v.len()], vec![0i8; v.len()]);
        let fast = quantize_vector(&v, &mut a);
        let spec = memento_format::page::quantize(&v, &mut b);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!((fast.scale.to_bits(), fast.code_sum, fast.sq_norm.to_bits()), (spec.scale.to_bits(), spec.code_sum, spec.sq_norm.to_bits()));
        #[cfg(target_arch = "x86_64")]
        {
            let mut c = vec![0i8; v.len()];
            let x = super::x86::quantize(&v, &mut c);
            prop_assert_eq!(&c, &b);
            prop_assert_eq!((x.scale.to_bits(), x.code_sum, x.sq_norm.to_bits()), (spec.scale.to_bits(), spec.code_sum, spec.sq_norm.to_bits()));
        }
    }
}
