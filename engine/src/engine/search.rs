//! Search: queries checked, candidates from a filter, the index's scan over the state, and
//! the hits' records from the mirror.

use std::collections::HashMap;

use memento_format::superblock::Metric;

use super::check::at_position;
use super::read::parse_meta;
use super::state::{Source, State};
use super::{Engine, SearchHit, SearchOptions, MIRROR_FILE};
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::{SearchPlan, VectorIndex};

impl Engine {
    /// The `k` records nearest to `query`, closest first (ties by insertion order). With a
    /// filter, only matching records are considered, so `k` results come back whenever at
    /// least `k` records match. The same as [`Engine::search_with`] with default options.
    pub fn search(&self, query: &[f32], k: usize, filter: Option<&Filter>) -> Result<Vec<SearchHit>> {
        let mut o = SearchOptions::new(k);
        o.filter = filter;
        self.search_with(query, &o)
    }

    /// Search with options: the scan, the thread count, the oversampling of the quantized scan.
    pub fn search_with(&self, query: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<SearchHit>> {
        Ok(self.search_batch(query, opts)?.pop().unwrap_or_default())
    }

    /// Several queries in one call (`queries` holds `n × dimension` floats, one query after
    /// another): each page is scored against every query while it is in cache. Returns one
    /// result list per query, in order.
    pub fn search_batch(&self, queries: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        self.process.check()?;
        if !queries.len().is_multiple_of(self.dim) || queries.is_empty() {
            if queries.len() < 2 * self.dim {
                return Err(Error::DimensionMismatch { expected: self.dim, got: queries.len() });
            }
            return Err(Error::invalid(format!("a batch of queries holds a multiple of {} floats, not {}", self.dim, queries.len())));
        }
        let mut qs = Vec::with_capacity(queries.len());
        let several = queries.len() > self.dim;
        for (i, q) in queries.chunks_exact(self.dim).enumerate() {
            let q = self.check_vector(q.to_vec()).map_err(|e| if several { at_position(e, &format!("query {i}")) } else { e })?;
            qs.extend_from_slice(&q);
        }
        let _pin = self.pin()?;
        let st = self.state.read();
        self.search_checked(&st, &qs, opts)
    }

    /// [`Engine::search_batch`] of checked (normalised) queries, over a pinned state.
    fn search_checked(&self, st: &State, qs: &[f32], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        let candidates = self.admitted(st, opts)?;
        self.search_among(st, qs, opts, candidates.as_deref())
    }

    /// The slots a search's filter admits (ascending), or `None` when it admits every record.
    pub(super) fn admitted(&self, st: &State, opts: &SearchOptions<'_>) -> Result<Option<Vec<u64>>> {
        opts.filter.filter(|f| !f.is_match_all()).map(|f| self.read_mirror(st, |m| m.filter_slots(f))).transpose()
    }

    /// [`Engine::search_checked`] among the slots a filter admitted ([`Engine::admitted`]).
    pub(super) fn search_among(&self, st: &State, qs: &[f32], opts: &SearchOptions<'_>, candidates: Option<&[u64]>) -> Result<Vec<Vec<SearchHit>>> {
        let plan = SearchPlan {
            metric: self.metric,
            k: opts.k,
            mode: opts.mode,
            threads: opts.threads.filter(|&t| t > 0).unwrap_or(self.search_threads),
            oversample: opts.oversample,
            parallel_min_bytes: crate::index::PARALLEL_MIN_BYTES,
        };
        let src = Source { st, dim: self.dim };
        let hits = match self.search_graph(&src, &plan, qs, candidates, opts.ef)? {
            Some(h) => h,
            None => self.index.search(&src, &plan, qs, candidates)?,
        };
        let mut slots: Vec<u64> = hits.iter().flatten().map(|h| h.slot).collect();
        slots.sort_unstable();
        slots.dedup();
        if opts.ids_only {
            let ids = self.read_mirror(st, |m| m.ids_by_slots(&slots))?;
            let mut by_slot = HashMap::with_capacity(slots.len());
            for (slot, id) in slots.iter().zip(ids) {
                by_slot.insert(*slot, id.ok_or_else(|| self.mirror_disagrees(*slot))?);
            }
            return Ok(hits.into_iter().map(|list| list.into_iter().map(|h| self.hit(h, by_slot[&h.slot].clone(), None, None)).collect()).collect());
        }
        let rows = self.read_mirror(st, |m| m.rows_by_slots(&slots))?;
        let mut by_slot = HashMap::with_capacity(slots.len());
        for (slot, row) in slots.iter().zip(rows) {
            let row = row.ok_or_else(|| self.mirror_disagrees(*slot))?;
            by_slot.insert(*slot, row);
        }
        let mut out = Vec::with_capacity(hits.len());
        for list in hits {
            let mut res = Vec::with_capacity(list.len());
            for h in list {
                let row = &by_slot[&h.slot];
                res.push(self.hit(h, row.id.clone(), row.text.clone(), parse_meta(row.metadata.clone())?));
            }
            out.push(res);
        }
        Ok(out)
    }

    /// A hit from its slot's distance and record.
    pub(super) fn hit(&self, h: crate::index::SlotHit, id: String, text: Option<String>, metadata: Option<crate::Metadata>) -> SearchHit {
        // 1 − cos of two unit vectors can round a hair below 0; report it as 0.
        let distance = if self.metric == Metric::Cosine { h.distance.max(0.0) } else { h.distance };
        SearchHit { id, distance, score: score_of(self.metric, distance), text, metadata }
    }

    pub(super) fn mirror_disagrees(&self, slot: u64) -> Error {
        Error::corrupted(self.file_path(MIRROR_FILE), 0, format!("the mirror has no record for live slot {slot}"))
    }
}

/// A hit's score from its distance, larger is closer ([`SearchHit::score`]).
pub(super) fn score_of(metric: Metric, distance: f32) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance,
        Metric::Dot | Metric::L2 => -distance,
    }
}
