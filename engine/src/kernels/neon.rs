//! AArch64 Advanced SIMD (NEON) kernels, little-endian only.
//!
//! Only stable intrinsics (no `dotprod`): f32 with `vfmaq_f32`, int8 by widening both operands
//! to i16 (`vmovl_*`) and multiply-accumulating into i32 lanes (`vmlal_s16`,
//! `vmlal_high_s16`), which is exact. NOTE: this file was written on an x86-64 machine without
//! an aarch64 target; check it with `cargo build --target aarch64-unknown-linux-gnu` and run
//! the kernel tests on an aarch64 machine before relying on it.
//!
//! The safety argument is that of the x86 module: the `#[target_feature]` functions are safe
//! functions whose loads are justified by length asserts and loop bounds; the plain wrappers at
//! the end call them in `unsafe` blocks, and are stored only in [`NEON`], which [`table`] hands
//! out only after runtime detection found NEON.
//!
//! Summation order (f32): chunk `c` of four floats goes into accumulator `c mod 4`, the last
//! chunk zero-padded; then `(a0 + a1) + (a2 + a3)` and `vaddvq_f32`. The block kernels run the
//! same sequence per vector, hence results bit-identical to the pair kernels.

use std::arch::aarch64::*;

use super::{check_block, check_multi, check_pair, split, Isa, Kernels};

/// Vectors scored together by the block kernels (4 × 4 accumulators of 32 registers).
const NB: usize = 4;

static NEON: Kernels = Kernels { isa: Isa::Neon, int8: "neon", dot, l2sq, dots, l2sqs, dots_multi, dot_u8i8, dots_u8i8 };

/// The NEON table if this CPU supports NEON (runtime detection). This check is what makes the
/// wrappers in the table sound to call.
pub(super) fn table() -> Option<&'static Kernels> {
    Isa::Neon.supported().then_some(&NEON)
}

/// No software prefetch on AArch64 (its prefetch intrinsic is not stable); the hardware
/// prefetchers see the sequential streams.
#[inline(always)]
fn prefetch<T>(_: &[T]) {}

#[inline]
#[target_feature(enable = "neon")]
fn step<const L2: bool>(x: float32x4_t, y: float32x4_t, acc: float32x4_t) -> float32x4_t {
    if L2 {
        let d = vsubq_f32(x, y);
        vfmaq_f32(acc, d, d)
    } else {
        vfmaq_f32(acc, x, y)
    }
}

/// The (at most four) floats of `s`, zero-padded to four lanes.
#[inline]
#[target_feature(enable = "neon")]
fn load_padded(s: &[f32]) -> float32x4_t {
    let mut b = [0f32; 4];
    b[..s.len()].copy_from_slice(s);
    // SAFETY: `b` holds four floats; vld1q_f32 needs only element alignment.
    unsafe { vld1q_f32(b.as_ptr()) }
}

/// `q` against `N` vectors: dot products, or squared distances when `L2`.
#[inline]
#[target_feature(enable = "neon")]
fn dot_n<const N: usize, const L2: bool>(q: &[f32], vs: [&[f32]; N]) -> [f32; N] {
    let n = q.len();
    assert!(vs.iter().all(|v| v.len() == n));
    let mut acc = [[vdupq_n_f32(0.0); 4]; N];
    let mut i = 0;
    while i + 16 <= n {
        for k in 0..4 {
            // SAFETY: i + 4k + 4 ≤ i + 16 ≤ n = q.len(), so four floats are in bounds.
            let x = unsafe { vld1q_f32(q.as_ptr().add(i + 4 * k)) };
            for (a, v) in acc.iter_mut().zip(vs) {
                // SAFETY: as above, v.len() == n (asserted).
                let y = unsafe { vld1q_f32(v.as_ptr().add(i + 4 * k)) };
                a[k] = step::<L2>(x, y, a[k]);
            }
        }
        i += 16;
    }
    // Fewer than 16 left: up to four chunks, the last one partial (bounds-checked slices).
    for k in 0..4 {
        let start = i + 4 * k;
        if start < n {
            let end = n.min(start + 4);
            let x = load_padded(&q[start..end]);
            for (a, v) in acc.iter_mut().zip(vs) {
                a[k] = step::<L2>(x, load_padded(&v[start..end]), a[k]);
            }
        }
    }
    acc.map(|[a0, a1, a2, a3]| vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3))))
}

/// `q` (offset u8 codes) against `N` i8 code vectors: both widened to i16, products
/// (|p| ≤ 255·128) accumulated in i32 lanes. The tail of fewer than 16 bytes is summed in
/// scalar code; every sum wraps modulo 2³² like the scalar kernel.
#[inline]
#[target_feature(enable = "neon")]
fn dot_u8i8_n<const N: usize>(q: &[u8], vs: [&[i8]; N]) -> [i32; N] {
    let n = q.len();
    assert!(vs.iter().all(|v| v.len() == n));
    let mut acc = [[vdupq_n_s32(0); 2]; N];
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 ≤ n = q.len(), so 16 bytes are in bounds.
        let x = unsafe { vld1q_u8(q.as_ptr().add(i)) };
        // Values 0..=255 are the same as u16 and as i16.
        let xlo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(x)));
        let xhi = vreinterpretq_s16_u16(vmovl_high_u8(x));
        for (a, v) in acc.iter_mut().zip(vs) {
            // SAFETY: as above, v.len() == n (asserted).
            let y = unsafe { vld1q_s8(v.as_ptr().add(i)) };
            let ylo = vmovl_s8(vget_low_s8(y));
            let yhi = vmovl_high_s8(y);
            a[0] = vmlal_s16(a[0], vget_low_s16(xlo), vget_low_s16(ylo));
            a[1] = vmlal_high_s16(a[1], xlo, ylo);
            a[0] = vmlal_s16(a[0], vget_low_s16(xhi), vget_low_s16(yhi));
            a[1] = vmlal_high_s16(a[1], xhi, yhi);
        }
        i += 16;
    }
    let mut out = [0i32; N];
    for ((o, [a0, a1]), v) in out.iter_mut().zip(acc).zip(vs) {
        *o = vaddvq_s32(vaddq_s32(a0, a1)).wrapping_add(super::scalar::dot_u8i8_impl(&q[i..], &v[i..]));
    }
    out
}

block_driver!("neon", dots_tf, f32, f32, f32, NB, dot_n::<NB, false>, dot_n::<1, false>);
block_driver!("neon", l2sqs_tf, f32, f32, f32, NB, dot_n::<NB, true>, dot_n::<1, true>);
block_driver!("neon", dots_u8i8_tf, i8, u8, i32, NB, dot_u8i8_n::<NB>, dot_u8i8_n::<1>);
multi_driver!("neon", dots_multi_tf, NB, dot_n::<NB, false>, dot_n::<1, false>);

// The table entries. SAFETY (every block below): these functions are stored only in the NEON
// table, which `table` returns only when NEON was detected at run time; lengths are checked
// first.

fn dot(a: &[f32], b: &[f32]) -> f32 {
    check_pair(a.len(), b.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { dot_n::<1, false>(a, [b])[0] }
}

fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    check_pair(a.len(), b.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { dot_n::<1, true>(a, [b])[0] }
}

fn dots(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    check_block(query.len(), vectors.len(), out.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { dots_tf(query, vectors, out) }
}

fn l2sqs(query: &[f32], vectors: &[f32], out: &mut [f32]) {
    check_block(query.len(), vectors.len(), out.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { l2sqs_tf(query, vectors, out) }
}

fn dots_multi(dim: usize, queries: &[f32], vectors: &[f32], out: &mut [f32]) {
    let Some((_, n)) = check_multi(dim, queries.len(), vectors.len(), out.len()) else {
        out.fill(0.0);
        return;
    };
    // SAFETY: see above: the CPU has NEON.
    unsafe { dots_multi_tf(dim, queries, vectors, out, n) }
}

fn dot_u8i8(a: &[u8], b: &[i8]) -> i32 {
    check_pair(a.len(), b.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { dot_u8i8_n::<1>(a, [b])[0] }
}

fn dots_u8i8(query: &[u8], codes: &[i8], out: &mut [i32]) {
    check_block(query.len(), codes.len(), out.len());
    // SAFETY: see above: the CPU has NEON.
    unsafe { dots_u8i8_tf(query, codes, out) }
}
