//! Distance kernels with runtime CPU dispatch.
//!
//! A [`Kernels`] table holds one implementation of every kernel for one instruction set
//! ([`Isa`]): f32 dot products and squared Euclidean distances, one pair at a time or a query
//! against a block of contiguous vectors (the hot loop of exact search), a block of queries
//! against a block of vectors, and the `u8 × i8` integer dot product of the int8 quantized path.
//! [`kernels()`] returns the best table for this CPU, chosen once; [`kernels_for`] any supported
//! one. The free functions ([`dot`], [`l2sq`], [`distance`], [`distances`]) go through
//! [`kernels()`].
//!
//! # Safety of the dispatch
//!
//! The SIMD kernels are `#[target_feature]` functions, which are only sound to call on a CPU
//! that has those features. Each is wrapped in a safe function that (1) checks the slice lengths
//! with `assert!` before entering any unsafe code, so mismatched lengths panic, in release too,
//! instead of reading out of bounds, and (2) is private to its module and reachable only
//! through that module's `Kernels` tables, which are handed out (by [`kernels_for`]) only after
//! runtime detection found the features. A `Kernels` cannot be built outside this module.
//!
//! # Results
//!
//! - f32: each instruction set sums in its own order, so results differ between sets by
//!   rounding only: at most `(3n/16 + 32)·2⁻²⁴·Σ|aᵢbᵢ|` plus underflow (see the tests). Within
//!   one table the block kernels are bit-identical to the pair kernels: `dots(q, V)[i] ==
//!   dot(q, Vᵢ)` and `dots_multi` likewise, so a vector's distance never depends on which path
//!   scored it.
//! - int8: exact integer sums, equal bit for bit on every set. Exact while the true sum fits an
//!   i32, which any input of up to 65,793 elements guarantees (255·128·65,793 < 2³¹); beyond,
//!   every set wraps modulo 2³² identically.
//!
//! # Quantization
//!
//! [`quantize_vector`] stores a vector as i8 codes with one symmetric scale
//! (`scale = max|vᵢ| / 127`, `codeᵢ = round(vᵢ / scale)`), [`quantize_query`] the query as codes
//! offset by 128 into u8 (what the `u8 × i8` instructions want), and [`approx_distance`] turns
//! the raw integer dot product back into a distance. Each code is off by at most half a step
//! (step = scale), so for 384-d Gaussian unit vectors (max|xᵢ| ≈ 0.15, step ≈ 1.2·10⁻³) the
//! approximate dot product is off by about `sqrt((s_q² + s_v²)/12)` ≈ 5·10⁻⁴: measured
//! 5.2·10⁻⁴ rms and 2.2·10⁻³ at worst over 40,000 pairs (the tests assert < 4·10⁻³). Enough to
//! rank candidates, then rescore the best few in f32: a shortlist of 4k by int8 distance,
//! rescored in f32, recovered the exact top 10 for every one of 50 queries over 5,000 vectors.

use std::sync::LazyLock;

use memento_format::superblock::Metric;

mod scalar;

// Shared by the SIMD modules below (macros must come before them).

/// Splits `block` (`N · dim` elements) into its `N` vectors.
#[cfg(any(target_arch = "x86_64", all(target_arch = "aarch64", target_endian = "little")))]
#[inline(always)]
fn split<T, const N: usize>(block: &[T], dim: usize) -> [&[T]; N] {
    std::array::from_fn(|j| &block[j * dim..(j + 1) * dim])
}

/// How far ahead (in bytes) the block kernels ask the cache for the vectors they will score.
/// Measured on 100k × 384 f32 blocks (L3-resident on the bench machine): dots 21.5 → 24.7 GiB/s
/// and dots_multi with 8 queries 7.3 → 17 GiB/s against no prefetch; 24 KiB and more was
/// worse for dots. From DRAM (1M × 384) dots is unchanged, dots_multi 7.4 → 10.6 GiB/s.
#[cfg(any(target_arch = "x86_64", all(target_arch = "aarch64", target_endian = "little")))]
const PREFETCH_BYTES: usize = 12 * 1024;

/// The driver of the block kernels, the same for every instruction set: `out[i] = f(query,
/// vector i)`, `N` vectors per call of `f_n`, the rest one by one with `f_1`.
#[cfg(any(target_arch = "x86_64", all(target_arch = "aarch64", target_endian = "little")))]
macro_rules! block_driver {
    ($features:literal, $name:ident, $t:ty, $q:ty, $o:ty, $n:expr, $f_n:expr, $f_1:expr) => {
        #[target_feature(enable = $features)]
        fn $name(query: &[$q], vectors: &[$t], out: &mut [$o]) {
            let dim = query.len();
            if dim == 0 {
                out.fill(<$o>::default());
                return;
            }
            let mut outs = out.chunks_exact_mut($n);
            let mut blocks = vectors.chunks_exact($n * dim);
            // Whole blocks ahead, so that each iteration asks for one block not yet asked for.
            let ahead = ($crate::kernels::PREFETCH_BYTES / size_of::<$t>()).next_multiple_of($n * dim);
            for (j, (o, b)) in (&mut outs).zip(&mut blocks).enumerate() {
                let next = (j * $n * dim) + ahead;
                prefetch(vectors.get(next..next + $n * dim).unwrap_or(&[]));
                o.copy_from_slice(&$f_n(query, split(b, dim)));
            }
            for (o, v) in outs.into_remainder().iter_mut().zip(blocks.remainder().chunks_exact(dim)) {
                *o = $f_1(query, [v])[0];
            }
        }
    };
}

/// The driver of `dots_multi`: each vector against every query (`N` queries per call of
/// `f_n`), while the vector is in cache. `fma(v, q, acc) == fma(q, v, acc)`, so swapping the
/// operands keeps the results bit-identical to `dot(query, vector)`.
#[cfg(any(target_arch = "x86_64", all(target_arch = "aarch64", target_endian = "little")))]
macro_rules! multi_driver {
    ($features:literal, $name:ident, $n:expr, $f_n:expr, $f_1:expr) => {
        #[target_feature(enable = $features)]
        fn $name(dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32], n: usize) {
            let ahead = ($crate::kernels::PREFETCH_BYTES / size_of::<f32>()).next_multiple_of(dim);
            // Split once (the split divides); each vector walks a copy.
            let all_groups = queries.chunks_exact($n * dim);
            for (i, v) in vectors.chunks_exact(dim).enumerate() {
                let next = i * dim + ahead;
                prefetch(vectors.get(next..next + dim).unwrap_or(&[]));
                let mut groups = all_groups.clone();
                let mut row = 0;
                for g in &mut groups {
                    for (k, x) in $f_n(v, split(g, dim)).into_iter().enumerate() {
                        out[(row + k) * n + i] = x;
                    }
                    row += $n;
                }
                for q in groups.remainder().chunks_exact(dim) {
                    out[row * n + i] = $f_1(v, [q])[0];
                    row += 1;
                }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, reason = "SIMD kernels: #[target_feature] functions and raw-pointer loads, each unsafe block justified by a SAFETY comment")]
#[warn(clippy::undocumented_unsafe_blocks)]
mod x86;

#[cfg(all(target_arch = "aarch64", target_endian = "little"))]
#[allow(unsafe_code, reason = "SIMD kernels: #[target_feature] functions and raw-pointer loads, each unsafe block justified by a SAFETY comment")]
#[warn(clippy::undocumented_unsafe_blocks)]
mod neon;

#[cfg(test)]
mod tests;

/// An instruction set the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust (auto-vectorised for the baseline target). Always supported.
    Scalar,
    /// x86-64 AVX2 and FMA.
    Avx2,
    /// x86-64 AVX-512 F and BW. The int8 kernels use AVX-512 VNNI (`vpdpbusd`) when the CPU has
    /// it, else they widen to i16 with AVX-512 BW (see [`Kernels::int8_impl`]).
    Avx512,
    /// AArch64 Advanced SIMD (little-endian).
    Neon,
}

impl Isa {
    /// Every instruction set, best first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// The lowercase name, as accepted by [`Isa::from_name`] and `MEMENTO_ISA`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// The instruction set called `name` (as returned by [`Isa::name`]; ASCII case ignored).
    pub fn from_name(name: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(name))
    }

    /// Whether this CPU (and OS) supports the instruction set: detected at run time.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw"),
            #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns, reason = "which arms exist depends on the target")]
            _ => false,
        }
    }

    /// The best supported instruction set (the first supported one of [`Isa::ALL`]).
    pub fn best() -> Isa {
        Isa::ALL.into_iter().find(|i| i.supported()).unwrap_or(Isa::Scalar)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One implementation of every kernel, for one instruction set.
///
/// Obtained from [`kernels()`] or [`kernels_for`], only for a supported [`Isa`]. Every method
/// checks its slice lengths and panics when they do not match the documented contract.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// The instruction set of this table.
    pub isa: Isa,
    int8: &'static str,
    dot: fn(&[f32], &[f32]) -> f32,
    l2sq: fn(&[f32], &[f32]) -> f32,
    dots: fn(&[f32], &[f32], &mut [f32]),
    l2sqs: fn(&[f32], &[f32], &mut [f32]),
    dots_multi: fn(usize, &[f32], &[f32], &mut [f32]),
    dot_u8i8: fn(&[u8], &[i8]) -> i32,
    dots_u8i8: fn(&[u8], &[i8], &mut [i32]),
}

impl Kernels {
    /// Which int8 implementation this table uses: `"scalar"`, `"avx2"`, `"avx512vnni"`,
    /// `"avx512bw"` or `"neon"`.
    pub fn int8_impl(&self) -> &'static str {
        self.int8
    }

    /// Σ aᵢ·bᵢ. Panics unless `a.len() == b.len()`.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.dot)(a, b)
    }

    /// Σ (aᵢ − bᵢ)². Panics unless `a.len() == b.len()`.
    #[inline]
    pub fn l2sq(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.l2sq)(a, b)
    }

    /// `out[i] = dot(query, vectors[i·dim..(i+1)·dim])` with `dim = query.len()`.
    /// Panics unless `vectors.len() == out.len() · dim`. Bit-identical to [`Kernels::dot`].
    #[inline]
    pub fn dots(&self, query: &[f32], vectors: &[f32], out: &mut [f32]) {
        (self.dots)(query, vectors, out);
    }

    /// `out[i] = l2sq(query, vectors[i·dim..(i+1)·dim])` with `dim = query.len()`.
    /// Panics unless `vectors.len() == out.len() · dim`. Bit-identical to [`Kernels::l2sq`].
    #[inline]
    pub fn l2sqs(&self, query: &[f32], vectors: &[f32], out: &mut [f32]) {
        (self.l2sqs)(query, vectors, out);
    }

    /// Every query against every vector: with `nq = queries.len() / dim` queries and
    /// `n = vectors.len() / dim` vectors, `out[q·n + i] = dot(query q, vector i)`. Each vector is
    /// scored against all queries while it is in cache, so a batch of queries streams the
    /// vectors once. Bit-identical to [`Kernels::dot`].
    ///
    /// Panics unless `queries.len()` and `vectors.len()` are multiples of `dim` and
    /// `out.len() == nq · n`. With `dim == 0`, both slices must be empty and `out` (of any
    /// length) is filled with zeros.
    #[inline]
    pub fn dots_multi(&self, dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
        (self.dots_multi)(dim, queries, vectors, out);
    }

    /// Σ aᵢ·bᵢ over `u8 × i8`, exact in i32 (wrapping, identically on every set, only beyond
    /// 65,793 elements). Panics unless `a.len() == b.len()`.
    #[inline]
    pub fn dot_u8i8(&self, a: &[u8], b: &[i8]) -> i32 {
        (self.dot_u8i8)(a, b)
    }

    /// `out[i] = dot_u8i8(query, codes[i·dim..(i+1)·dim])` with `dim = query.len()`.
    /// Panics unless `codes.len() == out.len() · dim`.
    #[inline]
    pub fn dots_u8i8(&self, query: &[u8], codes: &[i8], out: &mut [i32]) {
        (self.dots_u8i8)(query, codes, out);
    }
}

/// The contract of the pair kernels.
#[inline]
fn check_pair(a: usize, b: usize) {
    assert!(a == b, "kernel operands of different lengths ({a} and {b})");
}

/// The contract of the block kernels: `vectors == out · dim`.
#[inline]
fn check_block(dim: usize, vectors: usize, out: usize) {
    assert!(out.checked_mul(dim) == Some(vectors), "block kernel: {vectors} elements are not {out} vectors of {dim}");
}

/// The contract of `dots_multi`. Returns `(nq, n)`, or `None` when there is nothing to compute
/// (`out` is then empty, or `dim` is 0 and `out` is to be zero-filled).
#[inline]
fn check_multi(dim: usize, queries: usize, vectors: usize, out: usize) -> Option<(usize, usize)> {
    if dim == 0 {
        assert!(queries == 0 && vectors == 0, "dots_multi: dimension 0 with non-empty operands");
        return None;
    }
    assert!(queries.is_multiple_of(dim) && vectors.is_multiple_of(dim), "dots_multi: {queries} and {vectors} elements are not whole vectors of {dim}");
    let (nq, n) = (queries / dim, vectors / dim);
    assert!(nq.checked_mul(n) == Some(out), "dots_multi: output of {out} for {nq} queries × {n} vectors");
    (nq > 0 && n > 0).then_some((nq, n))
}

/// The table for `isa`, or `None` when this CPU does not support it.
pub fn kernels_for(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Scalar => Some(&scalar::TABLE),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 => x86::table(isa),
        #[cfg(all(target_arch = "aarch64", target_endian = "little"))]
        Isa::Neon => neon::table(),
        #[allow(unreachable_patterns, reason = "which arms exist depends on the target")]
        _ => None,
    }
}

/// The table named by `wanted` (the value of `MEMENTO_ISA`) if it is known and supported, else
/// the best one.
fn choose(wanted: Option<&str>) -> &'static Kernels {
    wanted.and_then(|s| Isa::from_name(s.trim())).and_then(kernels_for).or_else(|| kernels_for(Isa::best())).unwrap_or(&scalar::TABLE)
}

static CHOSEN: LazyLock<&'static Kernels> = LazyLock::new(|| choose(std::env::var("MEMENTO_ISA").ok().as_deref()));

/// The kernels used by the engine: those of [`Isa::best`], chosen on first use. The environment
/// variable `MEMENTO_ISA` (`scalar`, `avx2`, `avx512` or `neon`), read once, selects another set;
/// an unknown or unsupported value is ignored (look at `kernels().isa` to see what was chosen).
#[inline]
pub fn kernels() -> &'static Kernels {
    *CHOSEN
}

/// Dot product. Panics unless the lengths are equal.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    kernels().dot(a, b)
}

/// Squared Euclidean distance. Panics unless the lengths are equal.
#[inline]
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    kernels().l2sq(a, b)
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

/// [`distance`] from `query` to each of the contiguous `vectors` (`query.len()` elements each):
/// `out[i]` is the distance of vector `i`, bit-identical to [`distance`]. Panics unless
/// `vectors.len() == out.len() · query.len()`.
pub fn distances(metric: Metric, query: &[f32], vectors: &[f32], out: &mut [f32]) {
    let k = kernels();
    match metric {
        Metric::Cosine => {
            k.dots(query, vectors, out);
            out.iter_mut().for_each(|d| *d = 1.0 - *d);
        }
        Metric::Dot => {
            k.dots(query, vectors, out);
            out.iter_mut().for_each(|d| *d = -*d);
        }
        Metric::L2 => k.l2sqs(query, vectors, out),
    }
}

/// Norms this close to 1 count as unit already (2^-20: an f32 vector scaled to unit length is
/// off by a few 1e-8), so that [`normalize`] leaves a normalised vector's bits alone: a vector
/// read back from a cosine store and written again (export, then import) is stored exactly.
pub const UNIT_NORM_TOLERANCE: f64 = 1.0 / 1_048_576.0;

/// Scale `v` to unit length. Returns false (and leaves `v` alone) when its norm is zero or not
/// finite. A vector whose norm is within [`UNIT_NORM_TOLERANCE`] of 1 is left as it is, so
/// normalising is idempotent bit for bit.
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
    if (n - 1.0).abs() <= UNIT_NORM_TOLERANCE {
        return true;
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

/// What is kept beside the i8 codes of a quantized vector: the on-disk entry of FORMAT.md §2.8
/// (`scale`, `code_sum`, `sq_norm`).
pub use memento_format::page::QuantEntry as QuantParams;

/// A query quantized for the int8 kernels (see [`quantize_query`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuantQuery {
    /// The signed codes cᵢ ∈ [−127, 127] of the query, stored as `cᵢ + 128` ∈ [1, 255].
    pub codes: Vec<u8>,
    /// `max|qᵢ| / 127`; 0 for the zero query.
    pub scale: f32,
    /// Σ qᵢ² (f32, scalar kernel).
    pub sq_norm: f32,
}

/// Quantize `v` into `codes` (same length; panics otherwise) as FORMAT.md §2.8 defines it, by
/// the format crate's [`memento_format::page::quantize`] (one definition, so that what the
/// integrity check recomputes is bit-identical to what was written): `scale = m / 127` where
/// `m = max|vᵢ|` (0 when m is 0); `codesᵢ = round(vᵢ / scale)`, rounding half away from zero,
/// clamped to [−127, 127] (all 0 when the scale is 0); `code_sum = Σ codesᵢ`; `sq_norm = Σ vᵢ²`.
///
/// Runs for every vector written, so where the chosen table is AVX2 or AVX-512 it uses an AVX2
/// version that gives bit-identical results (tested against the format crate's).
pub fn quantize_vector(v: &[f32], codes: &mut [i8]) -> QuantParams {
    #[cfg(target_arch = "x86_64")]
    if matches!(kernels().isa, Isa::Avx2 | Isa::Avx512) {
        return x86::quantize(v, codes);
    }
    memento_format::page::quantize(v, codes)
}

/// Quantize a query exactly as [`quantize_vector`] does, storing each signed code cᵢ as the
/// byte `cᵢ + 128` ∈ [1, 255], the unsigned operand of [`Kernels::dot_u8i8`].
pub fn quantize_query(q: &[f32]) -> QuantQuery {
    let mut c = vec![0i8; q.len()];
    let p = quantize_vector(q, &mut c);
    QuantQuery { codes: c.iter().map(|&x| (i16::from(x) + 128) as u8).collect(), scale: p.scale, sq_norm: p.sq_norm }
}

/// For each query of `queries` (`dim` floats each), the distances of the contiguous `vectors`:
/// `out[q · n + i]` is the distance of vector `i` from query `q` (`n = vectors.len() / dim`),
/// bit-identical to [`distance`]. Each vector is scored against every query while in cache.
pub fn distances_multi(metric: Metric, dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
    let k = kernels();
    match metric {
        Metric::Cosine => {
            k.dots_multi(dim, queries, vectors, out);
            out.iter_mut().for_each(|d| *d = 1.0 - *d);
        }
        Metric::Dot => {
            k.dots_multi(dim, queries, vectors, out);
            out.iter_mut().for_each(|d| *d = -*d);
        }
        Metric::L2 => {
            let n = vectors.len() / dim.max(1);
            assert!(out.len() == n * (queries.len() / dim.max(1)), "distances_multi: output length");
            for (qi, q) in queries.chunks_exact(dim).enumerate() {
                k.l2sqs(q, vectors, &mut out[qi * n..(qi + 1) * n]);
            }
        }
    }
}

/// Hint the cache to fetch the bytes of `s` (a graph walk asks for its next nodes' int8
/// copies before it scores them). Never faults; a no-op where there is no prefetch
/// instruction to use.
#[inline]
pub fn prefetch<T>(s: &[T]) {
    #[cfg(target_arch = "x86_64")]
    x86::prefetch_any(s);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = s;
}

/// Block form of [`Kernels::dot_u8i8`] through the chosen table.
#[inline]
pub fn dots_u8i8(query: &[u8], codes: &[i8], out: &mut [i32]) {
    kernels().dots_u8i8(query, codes, out);
}

/// `q·v ≈ q.scale · p.scale · (raw − 128·code_sum)`: the integer difference is exact in i64
/// (the query's codes are offset by 128) and converted to f32 once.
#[inline]
fn approx_dot(q: &QuantQuery, raw: i32, p: &QuantParams) -> f32 {
    q.scale * p.scale * (i64::from(raw) - 128 * i64::from(p.code_sum)) as f32
}

/// The approximate distance (smaller is closer) of a quantized vector `p` from a quantized
/// query, given `raw = dot_u8i8(&q.codes, codes)`.
///
/// Σ cᵢ·dᵢ = raw − 128·code_sum exactly (the offset codes are cᵢ + 128), so
/// `approx_dot = q.scale · p.scale · (raw − 128·code_sum)`, the integer difference taken in
/// i64 and converted once to f32. Cosine → `1 − approx_dot`; Dot → `−approx_dot`;
/// L2 → `q.sq_norm + p.sq_norm − 2·approx_dot`.
#[inline]
pub fn approx_distance(metric: Metric, q: &QuantQuery, raw: i32, p: &QuantParams) -> f32 {
    let approx_dot = approx_dot(q, raw, p);
    match metric {
        Metric::Cosine => 1.0 - approx_dot,
        Metric::Dot => -approx_dot,
        Metric::L2 => q.sq_norm + p.sq_norm - 2.0 * approx_dot,
    }
}

/// [`approx_distance`] over a block: `out[i] = approx_distance(metric, q, raws[i], &params[i])`.
/// Panics unless the three slices have the same length.
pub fn approx_distances(metric: Metric, q: &QuantQuery, raws: &[i32], params: &[QuantParams], out: &mut [f32]) {
    assert!(raws.len() == params.len() && raws.len() == out.len(), "approx_distances: {} raws, {} params, {} outputs", raws.len(), params.len(), out.len());
    // One loop per metric (the same arithmetic as `approx_distance`), so each can vectorise.
    let dots = out.iter_mut().zip(raws).zip(params);
    match metric {
        Metric::Cosine => dots.for_each(|((o, &raw), p)| *o = 1.0 - approx_dot(q, raw, p)),
        Metric::Dot => dots.for_each(|((o, &raw), p)| *o = -approx_dot(q, raw, p)),
        Metric::L2 => dots.for_each(|((o, &raw), p)| *o = q.sq_norm + p.sq_norm - 2.0 * approx_dot(q, raw, p)),
    }
}
