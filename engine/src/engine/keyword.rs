//! Keyword search (BM25 over the mirror's full-text index) and hybrid search: the keyword and
//! the vector rankings of one query fused into one.
//!
//! Both sides see the same filter, and a hybrid search reads both from one pinned state, so a
//! write landing in between cannot make the two sides disagree about which records exist.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::read::parse_meta;
use super::state::{Source, State};
use super::{Engine, Fusion, RecallMode, SearchHit, SearchOptions};
use crate::error::{Error, Result};
use crate::index::VectorSource;
use crate::mirror::{fts_query, KeywordMatch};
use crate::{kernels, vecfile};

/// How many candidates each side of a hybrid search brings to the fusion, at least (more when
/// `k` is larger: `max(k, HYBRID_CANDIDATES)`).
pub const HYBRID_CANDIDATES: usize = 50;

/// One keyword match with its record.
struct Scored {
    slot: u64,
    id: String,
    score: f64,
    text: Option<String>,
    metadata: Option<String>,
}

impl Engine {
    /// The `k` records whose text best matches the words of `query`, by BM25 (FTS5, see
    /// [`crate::mirror::fts_query`] for how a text becomes a query: any word may match, stop
    /// words are ignored, no input is a syntax error). A hit's `score` is its BM25 score
    /// (larger is better) and its `distance` the negated score. Ties are ordered by id. With a
    /// filter, only matching records. Needs no model: any store with texts answers.
    pub fn keyword_search(&self, query: &str, opts: &SearchOptions<'_>) -> Result<Vec<SearchHit>> {
        Ok(self.keyword_search_batch(&[query], opts)?.pop().unwrap_or_default())
    }

    /// [`Engine::keyword_search`] for several queries, over one snapshot.
    pub fn keyword_search_batch(&self, queries: &[&str], opts: &SearchOptions<'_>) -> Result<Vec<Vec<SearchHit>>> {
        self.process.check()?;
        let _pin = self.pin()?;
        let st = self.state.read();
        let admitted = self.admitted(&st, opts)?;
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            let found = self.keyword_scored(&st, q, opts.k, admitted.as_deref(), opts.ids_only)?;
            out.push(found.into_iter().map(|s| keyword_hit(s, opts.ids_only)).collect::<Result<Vec<_>>>()?);
        }
        Ok(out)
    }

    /// Hybrid search of a text store: each query is embedded, searched by meaning and by its
    /// words, and the two rankings are fused ([`Fusion`]). A hit's `score` is its fused score
    /// and its `distance` the vector distance from the query (computed for hits only the
    /// keyword side found).
    pub fn recall_hybrid(&self, query: &str, opts: &SearchOptions<'_>, fusion: Fusion) -> Result<Vec<SearchHit>> {
        Ok(self.recall_hybrid_batch(&[query], opts, fusion)?.pop().unwrap_or_default())
    }

    /// [`Engine::recall_hybrid`] for several queries, embedded as one batch.
    pub fn recall_hybrid_batch(&self, queries: &[&str], opts: &SearchOptions<'_>, fusion: Fusion) -> Result<Vec<Vec<SearchHit>>> {
        fusion.check()?;
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let flat = self.embed_queries(queries)?;
        self.hybrid_batch(&flat, queries, opts, fusion)
    }

    /// Text queries matched by `mode`: [`Engine::recall_vector_batch`],
    /// [`Engine::keyword_search_batch`] or [`Engine::recall_hybrid_batch`].
    pub fn recall_by(&self, queries: &[&str], opts: &SearchOptions<'_>, mode: RecallMode) -> Result<Vec<Vec<SearchHit>>> {
        match mode {
            RecallMode::Vector => self.recall_vector_batch(queries, opts),
            RecallMode::Keyword => self.keyword_search_batch(queries, opts),
            RecallMode::Hybrid(fusion) => self.recall_hybrid_batch(queries, opts, fusion),
        }
    }

    /// Hybrid search with a query vector and a query text (a store of vectors with texts, or
    /// a caller that embeds): [`Engine::recall_hybrid`] without the embedding.
    pub fn search_hybrid(&self, vector: &[f32], text: &str, opts: &SearchOptions<'_>, fusion: Fusion) -> Result<Vec<SearchHit>> {
        fusion.check()?;
        if vector.len() != self.dim {
            return Err(Error::DimensionMismatch { expected: self.dim, got: vector.len() });
        }
        Ok(self.hybrid_batch(vector, &[text], opts, fusion)?.pop().unwrap_or_default())
    }

    /// Hybrid search of `texts.len()` queries whose vectors are `vectors`, one after another.
    fn hybrid_batch(&self, vectors: &[f32], texts: &[&str], opts: &SearchOptions<'_>, fusion: Fusion) -> Result<Vec<Vec<SearchHit>>> {
        self.process.check()?;
        let mut qs = Vec::with_capacity(vectors.len());
        for q in vectors.chunks_exact(self.dim) {
            qs.extend_from_slice(&self.check_vector(q.to_vec())?);
        }
        let n = opts.k.max(HYBRID_CANDIDATES);
        let _pin = self.pin()?;
        let st = self.state.read();
        // Both sides without texts and metadata: only the k fused hits' are read, at the end.
        let mut vopts = *opts;
        vopts.k = n;
        vopts.ids_only = true;
        let admitted = self.admitted(&st, opts)?;
        let by_vector = self.search_among(&st, &qs, &vopts, admitted.as_deref())?;
        let src = Source { st: &st, dim: self.dim };
        let mut out = Vec::with_capacity(texts.len());
        for ((text, vhits), q) in texts.iter().zip(by_vector).zip(qs.chunks_exact(self.dim)) {
            let khits = self.keyword_scored(&st, text, n, admitted.as_deref(), true)?;
            let mut fused = fuse(&vhits, &khits, fusion);
            fused.truncate(opts.k);
            let mut res = Vec::with_capacity(fused.len());
            for f in fused {
                let mut hit = match f.from {
                    Side::Vector(i) => vhits[i].clone(),
                    Side::Keyword(i) => {
                        let s = &khits[i];
                        let v = src
                            .vector(s.slot)?
                            .ok_or_else(|| Error::corrupted(self.file_path(vecfile::VEC_FILE), 0, format!("no vector for slot {} of id {:?}", s.slot, s.id)))?;
                        let mut distance = kernels::distance(self.metric, q, &v);
                        if self.metric == memento_format::superblock::Metric::Cosine {
                            distance = distance.max(0.0);
                        }
                        SearchHit { id: s.id.clone(), distance, score: 0.0, text: None, metadata: None }
                    }
                };
                hit.score = f.score as f32;
                res.push(hit);
            }
            if !opts.ids_only {
                self.fill_records(&st, &mut res)?;
            }
            out.push(res);
        }
        Ok(out)
    }

    /// Reads each hit's text and metadata from the mirror.
    fn fill_records(&self, st: &State, hits: &mut [SearchHit]) -> Result<()> {
        let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
        let rows = self.read_mirror(st, |m| {
            let slots = m.slots_of(&ids)?;
            let slots: Vec<u64> = slots.into_iter().flatten().collect();
            m.rows_by_slots(&slots)
        })?;
        let mut by_id: HashMap<String, (Option<String>, Option<String>)> = rows.into_iter().flatten().map(|r| (r.id, (r.text, r.metadata))).collect();
        for h in hits {
            let (text, metadata) =
                by_id.remove(&h.id).ok_or_else(|| Error::corrupted(self.file_path(super::MIRROR_FILE), 0, format!("the mirror has no record {:?}", h.id)))?;
            h.text = text;
            h.metadata = parse_meta(metadata)?;
        }
        Ok(())
    }

    /// The best `k` keyword matches of `query` among `admitted` slots (all when `None`), with
    /// their records, by score and then id.
    fn keyword_scored(&self, st: &State, query: &str, k: usize, admitted: Option<&[u64]>, ids_only: bool) -> Result<Vec<Scored>> {
        let Some(q) = fts_query(query) else {
            return Ok(Vec::new());
        };
        let admit = |slot: u64| admitted.is_none_or(|a| a.binary_search(&slot).is_ok());
        let matches: Vec<KeywordMatch> = self.read_mirror(st, |m| m.keyword_matches(&q, k, &admit))?;
        let slots: Vec<u64> = matches.iter().map(|m| m.slot).collect();
        let mut found = Vec::with_capacity(matches.len());
        if ids_only {
            let ids = self.read_mirror(st, |m| m.ids_by_slots(&slots))?;
            for (m, id) in matches.iter().zip(ids) {
                let id = id.ok_or_else(|| self.mirror_disagrees(m.slot))?;
                found.push(Scored { slot: m.slot, id, score: m.score, text: None, metadata: None });
            }
        } else {
            let rows = self.read_mirror(st, |m| m.rows_by_slots(&slots))?;
            for (m, row) in matches.iter().zip(rows) {
                let row = row.ok_or_else(|| self.mirror_disagrees(m.slot))?;
                found.push(Scored { slot: m.slot, id: row.id, score: m.score, text: row.text, metadata: row.metadata });
            }
        }
        found.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal).then_with(|| a.id.cmp(&b.id)));
        found.truncate(k);
        Ok(found)
    }
}

/// A keyword match as a search hit.
fn keyword_hit(s: Scored, ids_only: bool) -> Result<SearchHit> {
    let metadata = if ids_only { None } else { parse_meta(s.metadata)? };
    Ok(SearchHit { id: s.id, distance: -(s.score as f32), score: s.score as f32, text: s.text, metadata })
}

/// Which side a fused hit came from (the vector side when both found it), by position.
#[derive(Clone, Copy, Debug)]
enum Side {
    Vector(usize),
    Keyword(usize),
}

/// One fused hit.
#[derive(Debug)]
struct Fused {
    from: Side,
    score: f64,
}

/// The two rankings fused, best first, ties by id.
fn fuse(vector: &[SearchHit], keyword: &[Scored], fusion: Fusion) -> Vec<Fused> {
    let v_scores: Vec<f64> = vector.iter().map(|h| f64::from(h.score)).collect();
    let k_scores: Vec<f64> = keyword.iter().map(|s| s.score).collect();
    let (v_part, k_part) = match fusion {
        Fusion::Rrf { k } => (rrf(vector.len(), k), rrf(keyword.len(), k)),
        Fusion::Weighted { alpha } => (min_max(&v_scores, alpha), min_max(&k_scores, 1.0 - alpha)),
    };
    let mut by_id: HashMap<&str, Fused> = HashMap::with_capacity(vector.len() + keyword.len());
    for (i, h) in vector.iter().enumerate() {
        by_id.insert(h.id.as_str(), Fused { from: Side::Vector(i), score: v_part[i] });
    }
    for (i, s) in keyword.iter().enumerate() {
        by_id.entry(s.id.as_str()).and_modify(|f| f.score += k_part[i]).or_insert(Fused { from: Side::Keyword(i), score: k_part[i] });
    }
    let id_of = |f: &Fused| match f.from {
        Side::Vector(i) => vector[i].id.as_str(),
        Side::Keyword(i) => keyword[i].id.as_str(),
    };
    let mut fused: Vec<Fused> = by_id.into_values().collect();
    fused.sort_by(|a, b| b.score.partial_cmp(&a.score).unwrap_or(Ordering::Equal).then_with(|| id_of(a).cmp(id_of(b))));
    fused
}

/// Reciprocal rank fusion's share of each rank (1-based): `1 / (k + rank)`.
fn rrf(n: usize, k: f64) -> Vec<f64> {
    (1..=n).map(|rank| 1.0 / (k + rank as f64)).collect()
}

/// Scores min-max normalised over their list (all 1 when they are equal), times `weight`.
fn min_max(scores: &[f64], weight: f64) -> Vec<f64> {
    let lo = scores.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    scores.iter().map(|&s| weight * if hi > lo { (s - lo) / (hi - lo) } else { 1.0 }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vhit(id: &str, score: f32) -> SearchHit {
        SearchHit { id: id.into(), distance: 1.0 - score, score, text: None, metadata: None }
    }
    fn khit(id: &str, score: f64) -> Scored {
        Scored { slot: 0, id: id.into(), score, text: None, metadata: None }
    }
    fn ids(f: &[Fused], v: &[SearchHit], k: &[Scored]) -> Vec<String> {
        f.iter()
            .map(|f| match f.from {
                Side::Vector(i) => v[i].id.clone(),
                Side::Keyword(i) => k[i].id.clone(),
            })
            .collect()
    }

    #[test]
    fn rrf_adds_reciprocal_ranks_and_breaks_ties_by_id() {
        let v = [vhit("a", 0.9), vhit("b", 0.8), vhit("c", 0.7)];
        let k = [khit("c", 5.0), khit("d", 4.0), khit("a", 3.0)];
        let f = fuse(&v, &k, Fusion::Rrf { k: 60.0 });
        // a: 1/61 + 1/63, c: 1/63 + 1/61 (a tie, by id), b: 1/62, d: 1/62 (a tie, by id).
        assert_eq!(ids(&f, &v, &k), ["a", "c", "b", "d"]);
        assert!((f[0].score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-15);
    }

    #[test]
    fn weighted_normalises_each_side() {
        let v = [vhit("a", 0.9), vhit("b", 0.5)];
        let k = [khit("b", 10.0), khit("c", 2.0)];
        // a: 0.3 × 1, b: 0.3 × 0 + 0.7 × 1, c: 0.7 × 0.
        let f = fuse(&v, &k, Fusion::Weighted { alpha: 0.3 });
        assert_eq!(ids(&f, &v, &k), ["b", "a", "c"]);
        assert!((f[0].score - 0.7).abs() < 1e-12 && (f[1].score - 0.3).abs() < 1e-6 && f[2].score == 0.0);
        // One candidate: its normalised score is 1.
        assert_eq!(min_max(&[4.0], 0.5), [0.5]);
    }
}
