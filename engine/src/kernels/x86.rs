//! x86-64 kernels: AVX2 + FMA, and AVX-512 F + BW (with VNNI for int8 when present).
//!
//! Structure of the safety argument:
//! - the `#[target_feature]` functions below are safe functions (Rust ≥ 1.86): inside, each
//!   raw-pointer load is justified by a length `assert!` or a loop bound in the same function;
//! - calling one from code without those features needs `unsafe`, and that happens only in the
//!   plain wrappers at the end of each section. The wrappers are private and stored only in the
//!   `static` tables of this file, which [`table`] hands out only after runtime detection found
//!   the features. So a wrapper runs only on a CPU that has them.
//!
//! Summation order (f32): a vector of `n` elements is cut into lane-wide chunks (16 floats for
//! AVX-512, 8 for AVX2); chunk `c` goes into accumulator `c mod 4` by one FMA, the last chunk
//! zero-padded by a masked load; the four accumulators are added as `(a0 + a1) + (a2 + a3)` and
//! the lanes reduced. The block kernels run the very same sequence per vector (several vectors
//! at once, each with its own four accumulators), hence bit-identical results.

use std::arch::x86_64::*;

use super::{check_block, check_multi, check_pair, split, Isa, Kernels};

/// Vectors scored together by the AVX-512 block kernels (2 × 4 accumulators of 32 registers).
/// Two, not four: criterion (`kernels_dots_384/avx512`) measured 5.6 against 6.2 ms at 100k and
/// 94 against 107 ms at 1M on this Xeon; the int8 kernel did not change.
const N512: usize = 2;
/// Vectors scored together by the AVX2 block kernels (2 × 4 accumulators of 16 registers).
const N256: usize = 2;
/// Code vectors scored together by the AVX2 int8 block kernel (one accumulator each).
const N256_I8: usize = 4;

static AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    int8: "avx2",
    dot: avx2::dot,
    l2sq: avx2::l2sq,
    dots: avx2::dots,
    l2sqs: avx2::l2sqs,
    dots_multi: avx2::dots_multi,
    dot_u8i8: avx2::dot_u8i8,
    dots_u8i8: avx2::dots_u8i8,
};

static AVX512_VNNI: Kernels = Kernels {
    isa: Isa::Avx512,
    int8: "avx512vnni",
    dot: avx512::dot,
    l2sq: avx512::l2sq,
    dots: avx512::dots,
    l2sqs: avx512::l2sqs,
    dots_multi: avx512::dots_multi,
    dot_u8i8: avx512::dot_u8i8_vnni,
    dots_u8i8: avx512::dots_u8i8_vnni,
};

static AVX512_BW: Kernels = Kernels {
    isa: Isa::Avx512,
    int8: "avx512bw",
    dot: avx512::dot,
    l2sq: avx512::l2sq,
    dots: avx512::dots,
    l2sqs: avx512::l2sqs,
    dots_multi: avx512::dots_multi,
    dot_u8i8: avx512::dot_u8i8_bw,
    dots_u8i8: avx512::dots_u8i8_bw,
};

/// The table for `isa` if this CPU supports it (runtime detection). This check is what makes
/// the wrappers in the tables sound to call.
pub(super) fn table(isa: Isa) -> Option<&'static Kernels> {
    match isa {
        Isa::Avx2 if isa.supported() => Some(&AVX2),
        Isa::Avx512 if isa.supported() => Some(if is_x86_feature_detected!("avx512vnni") { &AVX512_VNNI } else { &AVX512_BW }),
        _ => None,
    }
}

/// The AVX-512 table with the int8 fallback for CPUs without VNNI, if AVX-512 is supported:
/// lets the tests check that path on a CPU that has VNNI.
#[cfg(test)]
pub(super) fn avx512_without_vnni() -> Option<&'static Kernels> {
    Isa::Avx512.supported().then_some(&AVX512_BW)
}

/// [`prefetch`] for callers without the `sse` target feature listed (the graph's walks).
#[inline]
pub(super) fn prefetch_any<T>(s: &[T]) {
    // SAFETY: SSE is part of the x86_64 baseline, so every x86_64 CPU has `prefetcht0`; and a
    // prefetch reads nothing and never faults, whatever the address.
    unsafe { prefetch(s) }
}

/// Hints the cache to fetch the lines of `s`. A prefetch never faults, whatever the address.
#[inline]
#[target_feature(enable = "sse")]
fn prefetch<T>(s: &[T]) {
    let p = s.as_ptr().cast::<i8>();
    for off in (0..size_of_val(s)).step_by(64) {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off));
    }
}

mod avx512 {
    use super::*;

    /// Mask of the first `min(rem, 16)` lanes.
    #[inline(always)]
    fn mask16(rem: usize) -> __mmask16 {
        if rem >= 16 {
            u16::MAX
        } else {
            (1u16 << rem) - 1
        }
    }

    /// Mask of the first `min(rem, 64)` bytes.
    #[inline(always)]
    fn mask64(rem: usize) -> __mmask64 {
        if rem >= 64 {
            u64::MAX
        } else {
            (1u64 << rem) - 1
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn step<const L2: bool>(x: __m512, y: __m512, acc: __m512) -> __m512 {
        if L2 {
            let d = _mm512_sub_ps(x, y);
            _mm512_fmadd_ps(d, d, acc)
        } else {
            _mm512_fmadd_ps(x, y, acc)
        }
    }

    /// `q` against `N` vectors: dot products, or squared distances when `L2`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn dot_n<const N: usize, const L2: bool>(q: &[f32], vs: [&[f32]; N]) -> [f32; N] {
        let n = q.len();
        assert!(vs.iter().all(|v| v.len() == n));
        let mut acc = [[_mm512_setzero_ps(); 4]; N];
        let mut i = 0;
        while i + 64 <= n {
            for k in 0..4 {
                // SAFETY: i + 16k + 16 ≤ i + 64 ≤ n = q.len(), so 16 floats are in bounds;
                // loadu has no alignment requirement.
                let x = unsafe { _mm512_loadu_ps(q.as_ptr().add(i + 16 * k)) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm512_loadu_ps(v.as_ptr().add(i + 16 * k)) };
                    a[k] = step::<L2>(x, y, a[k]);
                }
            }
            i += 64;
        }
        // Fewer than 64 left: up to four chunks, the last one partial.
        for k in 0..4 {
            let start = i + 16 * k;
            if start < n {
                let m = mask16(n - start);
                // SAFETY: start < n, so the pointer is in bounds; the mask covers only the
                // n − start elements that remain, and masked-off lanes are not read (no fault).
                let x = unsafe { _mm512_maskz_loadu_ps(m, q.as_ptr().add(start)) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm512_maskz_loadu_ps(m, v.as_ptr().add(start)) };
                    a[k] = step::<L2>(x, y, a[k]);
                }
            }
        }
        acc.map(|[a0, a1, a2, a3]| _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))))
    }

    /// `q` (offset u8 codes) against `N` i8 code vectors with `vpdpbusd`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn dot_u8i8_vnni_n<const N: usize>(q: &[u8], vs: [&[i8]; N]) -> [i32; N] {
        let n = q.len();
        assert!(vs.iter().all(|v| v.len() == n));
        let mut acc = [[_mm512_setzero_si512(); 2]; N];
        let mut i = 0;
        while i + 128 <= n {
            for k in 0..2 {
                // SAFETY: i + 64k + 64 ≤ i + 128 ≤ n, so 64 bytes are in bounds; unaligned is fine.
                let x = unsafe { _mm512_loadu_si512(q.as_ptr().add(i + 64 * k).cast()) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm512_loadu_si512(v.as_ptr().add(i + 64 * k).cast()) };
                    a[k] = _mm512_dpbusd_epi32(a[k], x, y);
                }
            }
            i += 128;
        }
        for k in 0..2 {
            let start = i + 64 * k;
            if start < n {
                let m = mask64(n - start);
                // SAFETY: start < n; the mask covers only the remaining bytes, and masked-off
                // bytes are not read.
                let x = unsafe { _mm512_maskz_loadu_epi8(m, q.as_ptr().add(start).cast()) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm512_maskz_loadu_epi8(m, v.as_ptr().add(start)) };
                    a[k] = _mm512_dpbusd_epi32(a[k], x, y);
                }
            }
        }
        acc.map(|[a0, a1]| _mm512_reduce_add_epi32(_mm512_add_epi32(a0, a1)))
    }

    /// Σ x·y over 32 byte pairs widened to i16: `vpmaddwd` adds pairs of products
    /// (|p| ≤ 255·128, so a pair fits an i32 without saturation).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn madd_bw(acc: __m512i, x: __m512i, y: __m256i) -> __m512i {
        _mm512_add_epi32(acc, _mm512_madd_epi16(x, _mm512_cvtepi8_epi16(y)))
    }

    /// `q` against `N` i8 code vectors without VNNI: widen both to i16 and `vpmaddwd`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn dot_u8i8_bw_n<const N: usize>(q: &[u8], vs: [&[i8]; N]) -> [i32; N] {
        let n = q.len();
        assert!(vs.iter().all(|v| v.len() == n));
        let mut acc = [_mm512_setzero_si512(); N];
        let mut i = 0;
        while i < n {
            let m = mask64(n - i);
            // SAFETY: i < n; the mask covers only the min(64, n − i) bytes in bounds, and
            // masked-off bytes are not read.
            let x = unsafe { _mm512_maskz_loadu_epi8(m, q.as_ptr().add(i).cast()) };
            let xlo = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(x));
            let xhi = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64::<1>(x));
            for (a, v) in acc.iter_mut().zip(vs) {
                // SAFETY: as above, v.len() == n (asserted).
                let y = unsafe { _mm512_maskz_loadu_epi8(m, v.as_ptr().add(i)) };
                *a = madd_bw(madd_bw(*a, xlo, _mm512_castsi512_si256(y)), xhi, _mm512_extracti64x4_epi64::<1>(y));
            }
            i += 64;
        }
        acc.map(|a| _mm512_reduce_add_epi32(a))
    }

    block_driver!("avx512f,avx512bw", dots_tf, f32, f32, f32, N512, dot_n::<N512, false>, dot_n::<1, false>);
    block_driver!("avx512f,avx512bw", l2sqs_tf, f32, f32, f32, N512, dot_n::<N512, true>, dot_n::<1, true>);
    block_driver!("avx512f,avx512bw,avx512vnni", dots_u8i8_vnni_tf, i8, u8, i32, N512, dot_u8i8_vnni_n::<N512>, dot_u8i8_vnni_n::<1>);
    block_driver!("avx512f,avx512bw", dots_u8i8_bw_tf, i8, u8, i32, N512, dot_u8i8_bw_n::<N512>, dot_u8i8_bw_n::<1>);
    multi_driver!("avx512f,avx512bw", dots_multi_tf, N512, dot_n::<N512, false>, dot_n::<1, false>);

    // The table entries. SAFETY (every block below): these functions are stored only in the
    // AVX512_* tables, which `table` returns only when avx512f and avx512bw (and, for the
    // `_vnni` ones, avx512vnni) were detected at run time; lengths are checked first.

    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dot_n::<1, false>(a, [b])[0] }
    }

    pub(super) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dot_n::<1, true>(a, [b])[0] }
    }

    pub(super) fn dots(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        check_block(query.len(), vectors.len(), out.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dots_tf(query, vectors, out) }
    }

    pub(super) fn l2sqs(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        check_block(query.len(), vectors.len(), out.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { l2sqs_tf(query, vectors, out) }
    }

    pub(super) fn dots_multi(dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
        let Some((_, n)) = check_multi(dim, queries.len(), vectors.len(), out.len()) else {
            out.fill(0.0);
            return;
        };
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dots_multi_tf(dim, queries, vectors, out, n) }
    }

    pub(super) fn dot_u8i8_vnni(a: &[u8], b: &[i8]) -> i32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx512f, avx512bw and avx512vnni.
        unsafe { dot_u8i8_vnni_n::<1>(a, [b])[0] }
    }

    pub(super) fn dots_u8i8_vnni(query: &[u8], codes: &[i8], out: &mut [i32]) {
        check_block(query.len(), codes.len(), out.len());
        // SAFETY: see above: the CPU has avx512f, avx512bw and avx512vnni.
        unsafe { dots_u8i8_vnni_tf(query, codes, out) }
    }

    pub(super) fn dot_u8i8_bw(a: &[u8], b: &[i8]) -> i32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dot_u8i8_bw_n::<1>(a, [b])[0] }
    }

    pub(super) fn dots_u8i8_bw(query: &[u8], codes: &[i8], out: &mut [i32]) {
        check_block(query.len(), codes.len(), out.len());
        // SAFETY: see above: the CPU has avx512f and avx512bw.
        unsafe { dots_u8i8_bw_tf(query, codes, out) }
    }
}

/// FORMAT.md §2.8's quantization with AVX2 where the CPU has it, bit-identical to
/// [`memento_format::page::quantize`] (the same operations in the same order per lane: an
/// exact maximum, IEEE division, truncation and the exact remainder, products added without
/// FMA, the eight lane sums added in order); otherwise that scalar function.
pub(super) fn quantize(v: &[f32], codes: &mut [i8]) -> super::QuantParams {
    assert_eq!(v.len(), codes.len(), "quantize: {} elements into {} codes", v.len(), codes.len());
    if is_x86_feature_detected!("avx2") {
        // SAFETY: avx2 was detected just above; the lengths are equal (asserted).
        unsafe { avx2::quantize(v, codes) }
    } else {
        memento_format::page::quantize(v, codes)
    }
}

mod avx2 {
    use super::*;

    /// See [`super::quantize`]. `v.len() == codes.len()`.
    #[target_feature(enable = "avx2")]
    pub(super) fn quantize(v: &[f32], codes: &mut [i8]) -> crate::kernels::QuantParams {
        let n = v.len();
        assert_eq!(n, codes.len());
        let chunks = n / 8;
        let (_, rest) = v.as_chunks::<8>();
        let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        let mut mx = _mm256_setzero_ps();
        let mut sq = _mm256_setzero_ps();
        for c in 0..chunks {
            // SAFETY: 8c + 8 ≤ 8·chunks ≤ n = v.len().
            let x = unsafe { _mm256_loadu_ps(v.as_ptr().add(8 * c)) };
            // max(a, b) returns b when a is not greater, as the scalar `if a > m { a } else { m }`.
            mx = _mm256_max_ps(_mm256_and_ps(x, abs), mx);
            sq = _mm256_add_ps(sq, _mm256_mul_ps(x, x));
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds 8 floats; storeu has no alignment requirement.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), mx) };
        let m = lanes.iter().chain(rest).fold(0f32, |m, &x| if x.abs() > m { x.abs() } else { m });
        // SAFETY: as above.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), sq) };
        let sq_norm = lanes.iter().sum::<f32>() + rest.iter().map(|x| x * x).sum::<f32>();
        let scale = m / 127.0;
        if !(scale > 0.0 && scale.is_finite()) {
            codes.fill(0);
            return crate::kernels::QuantParams { scale: if scale.is_finite() { scale } else { 0.0 }, code_sum: 0, sq_norm, reserved: 0 };
        }
        let sc = _mm256_set1_ps(scale);
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(128.0));
        let (half, neg_half) = (_mm256_set1_ps(0.5), _mm256_set1_ps(-0.5));
        let (cmin, cmax) = (_mm256_set1_epi32(-127), _mm256_set1_epi32(127));
        let mut sum = _mm256_setzero_si256();
        let mut out = [0i32; 8];
        for c in 0..chunks {
            // SAFETY: as in the first loop.
            let x = unsafe { _mm256_loadu_ps(v.as_ptr().add(8 * c)) };
            // The scalar clamp: below −128 gives −128, above 128 gives 128 (no NaN here).
            let y = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(x, sc), lo), hi);
            let t = _mm256_cvttps_epi32(y);
            let f = _mm256_sub_ps(y, _mm256_cvtepi32_ps(t));
            // Comparison masks are −1 where true: t + [f ≥ ½] − [f ≤ −½].
            let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(f, half));
            let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(f, neg_half));
            let r = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(_mm256_sub_epi32(t, up), down), cmin), cmax);
            sum = _mm256_add_epi32(sum, r);
            // SAFETY: `out` holds 8 i32; storeu has no alignment requirement.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), r) };
            for (d, &o) in codes[8 * c..8 * c + 8].iter_mut().zip(&out) {
                *d = o as i8;
            }
        }
        // SAFETY: as above.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), sum) };
        let mut code_sum: i32 = out.iter().sum();
        for (d, &x) in codes[8 * chunks..].iter_mut().zip(rest) {
            let y = (x / scale).clamp(-128.0, 128.0);
            let t = y as i32;
            let f = y - t as f32;
            *d = (t + i32::from(f >= 0.5) - i32::from(f <= -0.5)).clamp(-127, 127) as i8;
            code_sum += i32::from(*d);
        }
        crate::kernels::QuantParams { scale, code_sum, sq_norm, reserved: 0 }
    }

    /// All ones in the first `min(rem, 8)` lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn mask8(rem: usize) -> __m256i {
        _mm256_cmpgt_epi32(_mm256_set1_epi32(rem.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn step<const L2: bool>(x: __m256, y: __m256, acc: __m256) -> __m256 {
        if L2 {
            let d = _mm256_sub_ps(x, y);
            _mm256_fmadd_ps(d, d, acc)
        } else {
            _mm256_fmadd_ps(x, y, acc)
        }
    }

    /// The sum of the eight lanes: ((l0+l4) + (l2+l6)) + ((l1+l5) + (l3+l7)).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }

    /// The sum of the eight i32 lanes (wrapping).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// `q` against `N` vectors: dot products, or squared distances when `L2`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn dot_n<const N: usize, const L2: bool>(q: &[f32], vs: [&[f32]; N]) -> [f32; N] {
        let n = q.len();
        assert!(vs.iter().all(|v| v.len() == n));
        let mut acc = [[_mm256_setzero_ps(); 4]; N];
        let mut i = 0;
        while i + 32 <= n {
            for k in 0..4 {
                // SAFETY: i + 8k + 8 ≤ i + 32 ≤ n = q.len(), so 8 floats are in bounds;
                // loadu has no alignment requirement.
                let x = unsafe { _mm256_loadu_ps(q.as_ptr().add(i + 8 * k)) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm256_loadu_ps(v.as_ptr().add(i + 8 * k)) };
                    a[k] = step::<L2>(x, y, a[k]);
                }
            }
            i += 32;
        }
        for k in 0..4 {
            let start = i + 8 * k;
            if start < n {
                let m = mask8(n - start);
                // SAFETY: start < n, so the pointer is in bounds; the mask selects only the
                // n − start elements that remain, and vmaskmovps does not read (or fault on)
                // masked-off elements.
                let x = unsafe { _mm256_maskload_ps(q.as_ptr().add(start), m) };
                for (a, v) in acc.iter_mut().zip(vs) {
                    // SAFETY: as above, v.len() == n (asserted).
                    let y = unsafe { _mm256_maskload_ps(v.as_ptr().add(start), m) };
                    a[k] = step::<L2>(x, y, a[k]);
                }
            }
        }
        acc.map(|[a0, a1, a2, a3]| hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))))
    }

    /// `q` against `N` i8 code vectors: widen both to i16 and `vpmaddwd` (never `vpmaddubsw`,
    /// which saturates). The tail of fewer than 32 bytes is summed in scalar code.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot_u8i8_n<const N: usize>(q: &[u8], vs: [&[i8]; N]) -> [i32; N] {
        let n = q.len();
        assert!(vs.iter().all(|v| v.len() == n));
        let mut acc = [_mm256_setzero_si256(); N];
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: i + 32 ≤ n = q.len(), so 32 bytes are in bounds; unaligned is fine.
            let x = unsafe { _mm256_loadu_si256(q.as_ptr().add(i).cast()) };
            let xlo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(x));
            let xhi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256::<1>(x));
            for (a, v) in acc.iter_mut().zip(vs) {
                // SAFETY: as above, v.len() == n (asserted).
                let y = unsafe { _mm256_loadu_si256(v.as_ptr().add(i).cast()) };
                let ylo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(y));
                let yhi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(y));
                *a = _mm256_add_epi32(*a, _mm256_add_epi32(_mm256_madd_epi16(xlo, ylo), _mm256_madd_epi16(xhi, yhi)));
            }
            i += 32;
        }
        let mut out = [0i32; N];
        for ((o, a), v) in out.iter_mut().zip(acc).zip(vs) {
            *o = hsum_i32(a).wrapping_add(crate::kernels::scalar::dot_u8i8_impl(&q[i..], &v[i..]));
        }
        out
    }

    block_driver!("avx2,fma", dots_tf, f32, f32, f32, N256, dot_n::<N256, false>, dot_n::<1, false>);
    block_driver!("avx2,fma", l2sqs_tf, f32, f32, f32, N256, dot_n::<N256, true>, dot_n::<1, true>);
    block_driver!("avx2", dots_u8i8_tf, i8, u8, i32, N256_I8, dot_u8i8_n::<N256_I8>, dot_u8i8_n::<1>);
    multi_driver!("avx2,fma", dots_multi_tf, N256, dot_n::<N256, false>, dot_n::<1, false>);

    // The table entries. SAFETY (every block below): these functions are stored only in the
    // AVX2 table, which `table` returns only when avx2 and fma were detected at run time;
    // lengths are checked first.

    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx2 and fma.
        unsafe { dot_n::<1, false>(a, [b])[0] }
    }

    pub(super) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx2 and fma.
        unsafe { dot_n::<1, true>(a, [b])[0] }
    }

    pub(super) fn dots(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        check_block(query.len(), vectors.len(), out.len());
        // SAFETY: see above: the CPU has avx2 and fma.
        unsafe { dots_tf(query, vectors, out) }
    }

    pub(super) fn l2sqs(query: &[f32], vectors: &[f32], out: &mut [f32]) {
        check_block(query.len(), vectors.len(), out.len());
        // SAFETY: see above: the CPU has avx2 and fma.
        unsafe { l2sqs_tf(query, vectors, out) }
    }

    pub(super) fn dots_multi(dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
        let Some((_, n)) = check_multi(dim, queries.len(), vectors.len(), out.len()) else {
            out.fill(0.0);
            return;
        };
        // SAFETY: see above: the CPU has avx2 and fma.
        unsafe { dots_multi_tf(dim, queries, vectors, out, n) }
    }

    pub(super) fn dot_u8i8(a: &[u8], b: &[i8]) -> i32 {
        check_pair(a.len(), b.len());
        // SAFETY: see above: the CPU has avx2.
        unsafe { dot_u8i8_n::<1>(a, [b])[0] }
    }

    pub(super) fn dots_u8i8(query: &[u8], codes: &[i8], out: &mut [i32]) {
        check_block(query.len(), codes.len(), out.len());
        // SAFETY: see above: the CPU has avx2.
        unsafe { dots_u8i8_tf(query, codes, out) }
    }
}
