//! The int8 copies against their vectors.

use std::collections::{HashMap, HashSet};

use memento_format::page::{self, PageType};
use memento_format::superblock;

use super::finding::{finding, FindingKind};
use super::log::Loaded;
use crate::error::{Error, Result};
use crate::vecfile::VEC_FILE;

impl Loaded {
    /// Every int8 copy against its vector (FORMAT.md §2.8). Returns how many were compared.
    pub(super) fn check_quantized(&mut self) -> Result<u64> {
        let (Some(vf), Some(sb), Some((layout, qlayout))) = (&self.vf, self.sb().cloned(), self.layouts) else { return Ok(0) };
        if sb.flags & superblock::FLAG_QUANTIZED == 0 {
            return Ok(0); // a version-1 file: the copies are derived at open
        }
        let ps = u64::from(sb.page_size);
        let dim = layout.dim;
        let bad_pages = self.pages.iter().any(|p| matches!(p.page_type, Some(PageType::Vector | PageType::Quantized)) && p.problem.is_some());
        let mut where_q: HashMap<u64, (usize, usize)> = HashMap::new();
        for (pi, p) in self.quant_pages.iter().enumerate() {
            for (i, s) in p.slots.iter().enumerate() {
                where_q.insert(*s, (pi, i));
            }
        }
        let mut seen: HashSet<u64> = HashSet::new();
        let mut findings = Vec::new();
        let mut compared = 0u64;
        let mut codes = vec![0i8; dim];
        let mut qcache: Option<(usize, Vec<u8>)> = None;
        for vp in &self.vector_pages {
            let Some(bytes) = vf.read(vp.page_no * ps, ps).map_err(|e| Error::io("reading a vector page", e))? else { continue };
            let n = vp.slots.len();
            let vbytes = layout.vector_bytes(&bytes, n);
            for (i, slot) in vp.slots.iter().enumerate() {
                let Some(&(qp, qi)) = where_q.get(slot) else {
                    if !bad_pages {
                        findings.push(finding(
                            FindingKind::QuantMissing,
                            VEC_FILE,
                            Some(vp.page_no * ps),
                            format!("slot {slot} (vector page {}) has no int8 copy", vp.page_no),
                        ));
                    }
                    continue;
                };
                seen.insert(*slot);
                if qcache.as_ref().is_none_or(|c| c.0 != qp) {
                    let Some(qb) = vf.read(self.quant_pages[qp].page_no * ps, ps).map_err(|e| Error::io("reading a quantized page", e))? else { continue };
                    qcache = Some((qp, qb));
                }
                let Some((_, qb)) = &qcache else { continue };
                let v: Vec<f32> = vbytes[i * dim * 4..(i + 1) * dim * 4].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                let want = page::quantize(&v, &mut codes);
                let qn = self.quant_pages[qp].slots.len();
                let params = qlayout.params_owned(qb, qn);
                let stored = qlayout.codes(qb, qn);
                if params.get(qi) != Some(&want) || stored.get(qi * dim..(qi + 1) * dim) != Some(&codes[..]) {
                    let qpage = self.quant_pages[qp].page_no;
                    findings.push(finding(
                        FindingKind::QuantMismatch,
                        VEC_FILE,
                        Some(qpage * ps),
                        format!("the int8 copy of slot {slot} (quantized page {qpage}) is not the quantization of its vector (vector page {})", vp.page_no),
                    ));
                }
                compared += 1;
            }
        }
        if !bad_pages {
            for p in &self.quant_pages {
                for s in p.slots.iter().filter(|s| !seen.contains(s)) {
                    findings.push(finding(
                        FindingKind::QuantExtra,
                        VEC_FILE,
                        Some(p.page_no * ps),
                        format!("quantized page {} holds slot {s}, which no vector page holds", p.page_no),
                    ));
                }
            }
        }
        self.findings.extend(findings);
        Ok(compared)
    }
}
