//! The nodes' int8 copies packed node by node for a large build: each node's codes and then its
//! parameters in one run of whole cache lines, found by a multiplication.
//!
//! A walk through the store's quantized pages ([`super::Nodes`] over the vector file) finds a
//! node by dividing its number into a page and an entry, checks that the page was verified,
//! and reads the codes and the parameters from two places in the page (FORMAT.md §2.8): at
//! least one cache line more per node than the codes need, and instructions a build repeats
//! some 3,000 times per insertion. Packed, a node is `stride` bytes at `n × stride` of one
//! 64-byte-aligned buffer (seven lines at 384 dimensions). The copy costs 448 bytes of memory
//! per node at 384 dimensions while it lives, so the builder keeps it only while it has a large
//! backlog to insert ([`super::mem::MemGraph::pack`]) and drops it once caught up.

use super::{NodeRef, Nodes};
use crate::error::Result;
use crate::kernels::QuantParams;

/// Bytes of a node's parameters in the table: scale, code sum, squared norm.
const PARAMS_LEN: usize = 12;
const LINE: usize = 64;

/// Codes and parameters of nodes `0..len()`, `stride` bytes each (see the module documentation).
pub(crate) struct Packed {
    dim: usize,
    stride: usize,
    /// The buffer; node 0 starts at `start`, the first 64-byte boundary in it.
    buf: Vec<u8>,
    start: usize,
}

impl Packed {
    pub(crate) fn new(dim: usize) -> Packed {
        Packed { dim, stride: (dim + PARAMS_LEN).div_ceil(LINE) * LINE, buf: Vec::new(), start: 0 }
    }

    /// Nodes held.
    pub(crate) fn len(&self) -> usize {
        (self.buf.len() - self.start) / self.stride
    }

    /// Make room for `nodes` nodes in all. The buffer grows only here, into a new allocation
    /// whose first 64-byte boundary is found again, so that it never moves behind our back.
    pub(crate) fn reserve(&mut self, nodes: usize) {
        let need = nodes * self.stride;
        if self.buf.capacity() >= self.start + need {
            return;
        }
        let mut buf: Vec<u8> = Vec::with_capacity(need.max(2 * (self.buf.len() - self.start)) + LINE);
        let start = buf.as_ptr().align_offset(LINE).min(LINE - 1);
        buf.resize(start, 0);
        buf.extend_from_slice(&self.buf[self.start..]);
        (self.buf, self.start) = (buf, start);
    }

    /// Append the next node's copy; `None` (a number that holds no vector) appends zeros.
    pub(crate) fn push(&mut self, copy: Option<(&[i8], QuantParams)>) {
        self.reserve(self.len() + 1);
        let at = self.buf.len();
        self.buf.resize(at + self.stride, 0);
        if let Some((codes, p)) = copy {
            let e = &mut self.buf[at..at + self.stride];
            for (b, &c) in e[..self.dim].iter_mut().zip(codes) {
                *b = c as u8;
            }
            let ps = &mut e[self.dim..self.dim + PARAMS_LEN];
            ps[0..4].copy_from_slice(&p.scale.to_le_bytes());
            ps[4..8].copy_from_slice(&p.code_sum.to_le_bytes());
            ps[8..12].copy_from_slice(&p.sq_norm.to_le_bytes());
        }
    }

    #[inline]
    fn entry(&self, n: u32) -> Option<&[u8]> {
        let at = self.start + n as usize * self.stride;
        self.buf.get(at..at + self.stride)
    }

    /// Node `n`'s codes and parameters.
    #[inline]
    pub(crate) fn get(&self, n: u32) -> Option<(&[i8], QuantParams)> {
        let (codes, rest) = self.entry(n)?.split_at(self.dim);
        let p: &[u8; PARAMS_LEN] = rest.get(..PARAMS_LEN)?.try_into().ok()?;
        let [s0, s1, s2, s3, c0, c1, c2, c3, n0, n1, n2, n3] = *p;
        let params = QuantParams {
            scale: f32::from_le_bytes([s0, s1, s2, s3]),
            code_sum: i32::from_le_bytes([c0, c1, c2, c3]),
            sq_norm: f32::from_le_bytes([n0, n1, n2, n3]),
            reserved: 0,
        };
        Some((bytemuck::cast_slice(codes), params))
    }

    /// Ask the cache for node `n`'s lines.
    #[inline]
    pub(crate) fn prefetch(&self, n: u32) {
        if let Some(e) = self.entry(n) {
            crate::kernels::prefetch(&e[..self.dim + PARAMS_LEN]);
        }
    }
}

/// [`Nodes`] with codes and prefetches from a [`Packed`] table, the rest from the store.
pub(crate) struct PackedNodes<'a> {
    pub packed: &'a Packed,
    pub inner: &'a dyn Nodes,
}

impl Nodes for PackedNodes<'_> {
    fn qcap(&self) -> usize {
        self.inner.qcap()
    }
    fn node_bound(&self) -> u64 {
        self.inner.node_bound()
    }
    fn node(&self, n: u32) -> Result<Option<NodeRef<'_>>> {
        self.inner.node(n)
    }
    #[inline]
    fn prefetch(&self, n: u32) {
        self.packed.prefetch(n);
    }
    #[inline]
    fn codes(&self, n: u32) -> Result<Option<(&[i8], QuantParams)>> {
        match self.packed.get(n) {
            Some(c) => Ok(Some(c)),
            None => self.inner.codes(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(i: usize) -> QuantParams {
        QuantParams { scale: i as f32 * 0.5, code_sum: -(i as i32), sq_norm: 1.0 + i as f32, reserved: 0 }
    }

    #[test]
    fn nodes_read_back_as_pushed_across_growth_and_stay_aligned() {
        for dim in [1, 52, 384, 1000] {
            let mut p = Packed::new(dim);
            assert_eq!(p.stride % LINE, 0);
            assert!(p.stride >= dim + PARAMS_LEN);
            let codes: Vec<Vec<i8>> = (0..300).map(|i| (0..dim).map(|j| ((i * 31 + j * 7) % 255) as u8 as i8).collect()).collect();
            for (i, c) in codes.iter().enumerate() {
                // Absent numbers read as zeros.
                p.push(if i % 7 == 3 { None } else { Some((c, params(i))) });
                assert_eq!((p.buf.as_ptr() as usize + p.start) % LINE, 0, "node 0 on a line boundary");
            }
            assert_eq!(p.len(), 300);
            for (i, c) in codes.iter().enumerate() {
                let (got, gp) = p.get(i as u32).expect("held");
                if i % 7 == 3 {
                    assert!(got.iter().all(|&x| x == 0));
                    assert_eq!(gp.scale, 0.0);
                } else {
                    assert_eq!(got, &c[..]);
                    assert_eq!((gp.scale, gp.code_sum, gp.sq_norm), (params(i).scale, params(i).code_sum, params(i).sq_norm));
                }
            }
            assert!(p.get(300).is_none());
        }
    }
}
