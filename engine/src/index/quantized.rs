//! The int8 scan with proven bounds: which vectors may be among the float32 top k.
//!
//! For a stored vector x (float32, with int8 copy x̂ = s_x·c_x, FORMAT.md §2.8) and a query q
//! (copy q̂ = s_q·c_q), the integer dot product I = Σ c_q,i·c_x,i gives A = s_q·s_x·I = x̂·q̂,
//! computed here in f64 (s_q·s_x is exact there, and I is an exact integer), and
//!
//! ```text
//! x·q − x̂·q̂ = x·(q − q̂) + (x − x̂)·q̂,   so   |x·q − A| ≤ ‖x‖·‖q − q̂‖₂ + ε_x·‖q̂‖₁
//! ```
//!
//! where ε_x bounds every |x_i − s_x·c_x,i|: each code is the rounded x_i/s_x (and the clamp
//! at ±127 never bites, since |x_i/s_x| ≤ 127·(1 + 2⁻²³)), so ε_x = s_x·(½ + 2⁻¹⁶) when s_x
//! is a normal f32; when it is subnormal or zero (a vector whose largest element is below
//! about 1.5·10⁻³⁶) the rounding of s_x itself is coarse and ε_x = 254·s_x + 2⁻¹⁴². ‖q − q̂‖₂
//! and ‖q̂‖₁ are computed once per query, ‖x‖ is bounded from the stored Σx_i² (itself a
//! float32 sum: relative error γ, plus underflow) and from √D·max|x_i| ≤ √D·127·s_x.
//!
//! That bounds the real distance; the float32 kernels then round it: by at most
//! γ·Σ|x_i·q_i| ≤ γ·‖x‖·‖q‖ for a dot product (any summation order, with or without FMA, with
//! γ = (D+8)·2⁻²⁴/(1 − (D+8)·2⁻²⁴)), γ·‖x − q‖² for l2, plus 2⁻²⁴·|1 − dot| for cosine's
//! subtraction, plus (2D+8)·2⁻¹⁴⁹ for underflow. A vector for which a float32 intermediate
//! could overflow, or whose stored parameters disagree with each other, gets the interval
//! (−∞, +∞): it is always rescored. So every vector gets an interval [lo, hi] that holds its
//! float32 distance — the one [`crate::kernels::distance`] returns, bit-identical to the
//! block kernels of the float32 scan.
//!
//! The scan keeps T, the k-th smallest `hi` of the admitted vectors seen so far, and the
//! vectors with `lo ≤ T`. Any other vector x has k vectors y with f(y) ≤ hi(y) ≤ T < lo(x) ≤
//! f(x): strictly worse than k others, it cannot be in the top k, whatever the ties rule. So
//! rescoring the kept vectors in float32 gives exactly the float32 scan's answer. Where the
//! intervals are wide (one coordinate much larger than the rest spends the int8 range) too
//! many vectors are kept; a query whose candidates exceed 1/[`FALLBACK_FRACTION`] of what was
//! scanned is answered by the float32 scan instead.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use memento_format::page::QuantEntry;
use memento_format::superblock::Metric;

use crate::kernels;

/// A query is answered by the float32 scan when its candidates exceed 1/this of the vectors
/// scanned (rescoring that many, at random, costs about as much as scanning all of them).
pub const FALLBACK_FRACTION: usize = 8;
/// The fallback is not decided before this many vectors were scanned by a thread (until then
/// T, the k-th best bound, is still loose).
pub const FALLBACK_MIN_SCANNED: usize = 2048;

const U32: f64 = 1.0 / 16_777_216.0; // 2⁻²⁴, the unit roundoff of f32
/// Relative slack for this module's own f64 arithmetic (a few dozen operations at 2⁻⁵³ each).
const SLACK64: f64 = 1.0 / (1u64 << 40) as f64;

/// What the bounds need of a query, computed once per query.
#[derive(Debug, Clone)]
pub struct BoundQuery {
    /// The int8 copy (offset codes for the u8 × i8 kernel).
    pub quant: kernels::QuantQuery,
    scale: f64,
    /// Upper bound of ‖q − q̂‖₂.
    err: f64,
    /// Upper bound of ‖q̂‖₁.
    l1: f64,
    /// Upper bound of ‖q‖₂.
    norm: f64,
    /// Lower and upper bounds of ‖q‖².
    sq_lo: f64,
    sq_hi: f64,
    /// γ for this dimension (float32 rounding of a sum of D products).
    gamma: f64,
    /// The absolute underflow allowance, (2D + 8)·2⁻¹⁴⁹.
    tiny: f64,
    dim: f64,
}

impl BoundQuery {
    /// Quantize `q` (already normalised under cosine) and measure its own quantization error.
    pub fn new(q: &[f32]) -> BoundQuery {
        let quant = kernels::quantize_query(q);
        let scale = f64::from(quant.scale);
        let (mut err2, mut l1, mut sq) = (0f64, 0f64, 0f64);
        for (&x, &c) in q.iter().zip(&quant.codes) {
            let c = f64::from(i16::from(c) - 128);
            let x = f64::from(x);
            let e = x - scale * c;
            err2 += e * e;
            l1 += (scale * c).abs();
            sq += x * x;
        }
        let d = q.len() as f64;
        let rel = 1.0 + SLACK64;
        let n = d + 8.0;
        BoundQuery {
            quant,
            scale,
            err: err2.sqrt() * rel,
            l1: l1 * rel,
            norm: sq.sqrt() * rel,
            sq_lo: sq / rel,
            sq_hi: sq * rel,
            gamma: n * U32 / (1.0 - n * U32),
            tiny: (2.0 * d + 8.0) * f64::from(f32::from_bits(1)),
            dim: d,
        }
    }

    /// The interval `(lo, hi)` that holds the float32 distance under `metric` of the vector
    /// with parameters `p`, given `raw = dot_u8i8(&self.quant.codes, codes)`.
    #[inline]
    pub fn interval(&self, metric: Metric, raw: i32, p: &QuantEntry) -> (f64, f64) {
        const OPEN: (f64, f64) = (f64::NEG_INFINITY, f64::INFINITY);
        let s = f64::from(p.scale);
        let approx = self.scale * s * (i64::from(raw) - 128 * i64::from(p.code_sum)) as f64;
        // Every |x_i − s·c_i| ≤ eps; max|x_i| ≤ m_hi.
        let eps = if p.scale >= f32::MIN_POSITIVE { s * (0.5 + 1.0 / 65536.0) } else { 254.0 * s + 2f64.powi(-142) };
        let m_hi = 127.0 * s * (1.0 + 4.0 * U32) + 2f64.powi(-142);
        let sq = f64::from(p.sq_norm);
        let by_max = self.dim * m_hi * m_hi;
        let (xx_lo, xx_hi) = if sq.is_finite() {
            ((sq * (1.0 - self.gamma) - self.tiny).max(0.0), (sq * (1.0 + self.gamma) + self.tiny).min(by_max))
        } else {
            return OPEN;
        };
        if xx_lo > xx_hi || !approx.is_finite() {
            return OPEN; // parameters that contradict each other: trust none of them
        }
        let xn = xx_hi.sqrt() * (1.0 + SLACK64);
        let span = xn + self.norm;
        if span * span >= 2f64.powi(126) {
            return OPEN; // a float32 intermediate could overflow
        }
        // |x·q − approx| ≤ b.
        let b = xn * self.err + eps * self.l1;
        let xq = xn * self.norm;
        match metric {
            Metric::Dot => {
                let m = self.gamma * xq + self.tiny + SLACK64 * (approx.abs() + b + xq);
                (-approx - b - m, -approx + b + m)
            }
            Metric::Cosine => {
                let m = self.gamma * xq + self.tiny + U32 * (1.0 + 2.0 * xq) + SLACK64 * (1.0 + approx.abs() + b + xq);
                (1.0 - approx - b - m, 1.0 - approx + b + m)
            }
            Metric::L2 => {
                let lo = (self.sq_lo + xx_lo - 2.0 * (approx + b)).max(0.0);
                let hi = self.sq_hi + xx_hi - 2.0 * (approx - b);
                let slack = SLACK64 * (self.sq_hi + xx_hi + 2.0 * (approx.abs() + b));
                (lo - self.gamma * hi - self.tiny - slack, hi * (1.0 + self.gamma) + self.tiny + slack)
            }
        }
    }
}

/// An f64 ordered by `total_cmp`, for the heap of upper bounds.
#[derive(Clone, Copy, PartialEq)]
struct Bound(f64);
impl Eq for Bound {}
impl PartialOrd for Bound {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Bound {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// What one thread keeps for one query: the k smallest upper bounds and the candidates.
#[derive(Default)]
pub struct Candidates {
    k: usize,
    uppers: BinaryHeap<Bound>,
    /// Slots and lower bounds of the vectors that may be in the top k.
    pub cands: Vec<(u64, f64)>,
    limit: usize,
    /// Vectors scanned (in admitted blocks).
    pub scanned: usize,
    /// Too many candidates: answer this query with the float32 scan.
    pub overflow: bool,
}

impl Candidates {
    /// For `k` results.
    pub fn new(k: usize) -> Self {
        Candidates { k, uppers: BinaryHeap::with_capacity(k.min(4096) + 1), cands: Vec::new(), limit: prune_floor(k), scanned: 0, overflow: false }
    }

    /// T: the k-th smallest upper bound so far (+∞ before k).
    #[inline]
    pub fn threshold(&self) -> f64 {
        if self.uppers.len() < self.k {
            f64::INFINITY
        } else {
            self.uppers.peek().map_or(f64::INFINITY, |b| b.0)
        }
    }

    /// An admitted vector with distance in `[lo, hi]`.
    #[inline]
    pub fn offer(&mut self, slot: u64, lo: f64, hi: f64) {
        if self.overflow {
            return;
        }
        self.push_upper(Bound(hi));
        if lo <= self.threshold() {
            self.cands.push((slot, lo));
            if self.cands.len() >= self.limit {
                self.prune();
            }
        }
    }

    #[inline]
    fn push_upper(&mut self, b: Bound) {
        if self.uppers.len() < self.k {
            self.uppers.push(b);
        } else if b.0 < self.threshold() {
            if let Some(mut top) = self.uppers.peek_mut() {
                *top = b;
            }
        }
    }

    /// Drop the candidates that T now excludes, and decide the fallback.
    pub fn prune(&mut self) {
        let t = self.threshold();
        self.cands.retain(|&(_, lo)| lo <= t);
        self.limit = (2 * self.cands.len()).max(prune_floor(self.k));
        self.check_fallback();
    }

    fn check_fallback(&mut self) {
        if self.scanned >= FALLBACK_MIN_SCANNED && self.cands.len().saturating_mul(FALLBACK_FRACTION) > self.scanned {
            self.overflow = true;
            self.cands = Vec::new();
        }
    }

    /// Fold another thread's state into this one (same query).
    pub fn merge(&mut self, other: Candidates) {
        for b in other.uppers {
            self.push_upper(b);
        }
        self.overflow |= other.overflow;
        self.scanned += other.scanned;
        if self.overflow {
            self.cands = Vec::new();
            return;
        }
        self.cands.extend(other.cands);
        let t = self.threshold();
        self.cands.retain(|&(_, lo)| lo <= t);
    }
}

fn prune_floor(k: usize) -> usize {
    k.saturating_mul(4).max(1024)
}

/// Per-query flags shared by the scan threads: set once a query falls back, so that the other
/// threads stop scanning it.
pub struct Gave(pub Vec<AtomicBool>);

impl Gave {
    /// None set, for `n` queries.
    pub fn new(n: usize) -> Self {
        Gave((0..n).map(|_| AtomicBool::new(false)).collect())
    }
    /// Whether query `i` fell back.
    #[inline]
    pub fn up(&self, i: usize) -> bool {
        self.0[i].load(AtomicOrdering::Relaxed)
    }
    /// Query `i` fell back.
    pub fn give_up(&self, i: usize) {
        self.0[i].store(true, AtomicOrdering::Relaxed);
    }
}
