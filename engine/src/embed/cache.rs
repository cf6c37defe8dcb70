//! The embedding cache: a bounded LRU map from (model, text) to vector, so that embedding the
//! same text again with the same model costs no inference. The engine keeps one in memory and
//! persists entries in the store (the mirror's `embedding_cache` table).

use std::collections::HashMap;
use std::sync::Arc;

use sha2::Digest;

use super::ModelIdentity;

/// The cache key: SHA-256 of the model's hash followed by the text's UTF-8 bytes.
pub type TextKey = [u8; 32];

/// The key of `text` under `model`.
pub fn text_key(model: &ModelIdentity, text: &str) -> TextKey {
    let mut h = sha2::Sha256::new();
    h.update(model.hash);
    h.update(text.as_bytes());
    h.finalize().into()
}

const NIL: usize = usize::MAX;

struct Node {
    key: TextKey,
    vector: Arc<[f32]>,
    prev: usize,
    next: usize,
}

/// A least-recently-used map from [`TextKey`] to vector with a fixed number of entries.
/// Not synchronised: the engine holds it behind a mutex.
pub struct EmbeddingCache {
    map: HashMap<TextKey, usize>,
    nodes: Vec<Node>,
    /// Most recently used.
    head: usize,
    /// Least recently used.
    tail: usize,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl std::fmt::Debug for EmbeddingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingCache").field("len", &self.len()).field("capacity", &self.capacity).finish()
    }
}

impl EmbeddingCache {
    /// A cache of at most `capacity` entries (0: caches nothing).
    pub fn new(capacity: usize) -> Self {
        EmbeddingCache { map: HashMap::new(), nodes: Vec::new(), head: NIL, tail: NIL, capacity, hits: 0, misses: 0 }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// (hits, misses) of [`Self::get`] so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.nodes[i].prev, self.nodes[i].next);
        if p == NIL {
            self.head = n
        } else {
            self.nodes[p].next = n
        }
        if n == NIL {
            self.tail = p
        } else {
            self.nodes[n].prev = p
        }
    }

    fn push_front(&mut self, i: usize) {
        self.nodes[i].prev = NIL;
        self.nodes[i].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    /// The vector of `key`, marking it most recently used.
    pub fn get(&mut self, key: &TextKey) -> Option<Arc<[f32]>> {
        match self.map.get(key).copied() {
            Some(i) => {
                self.hits += 1;
                if self.head != i {
                    self.unlink(i);
                    self.push_front(i);
                }
                Some(Arc::clone(&self.nodes[i].vector))
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    /// Inserts or refreshes `key`, evicting the least recently used entry when full.
    pub fn put(&mut self, key: TextKey, vector: Arc<[f32]>) {
        if self.capacity == 0 {
            return;
        }
        if let Some(&i) = self.map.get(&key) {
            self.nodes[i].vector = vector;
            if self.head != i {
                self.unlink(i);
                self.push_front(i);
            }
            return;
        }
        let i = if self.map.len() >= self.capacity {
            let i = self.tail;
            self.unlink(i);
            let old = self.nodes[i].key;
            self.map.remove(&old);
            self.nodes[i].key = key;
            self.nodes[i].vector = vector;
            i
        } else {
            self.nodes.push(Node { key, vector, prev: NIL, next: NIL });
            self.nodes.len() - 1
        };
        self.map.insert(key, i);
        self.push_front(i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn k(n: u8) -> TextKey {
        [n; 32]
    }

    #[test]
    fn evicts_least_recently_used() {
        let mut c = EmbeddingCache::new(2);
        c.put(k(1), Arc::from(vec![1.0]));
        c.put(k(2), Arc::from(vec![2.0]));
        assert_eq!(c.get(&k(1)).as_deref(), Some(&[1.0][..]));
        c.put(k(3), Arc::from(vec![3.0])); // evicts 2, the least recently used
        assert!(c.get(&k(2)).is_none());
        assert!(c.get(&k(1)).is_some() && c.get(&k(3)).is_some());
        assert_eq!(c.len(), 2);
        assert_eq!(c.stats(), (3, 1));
        let mut z = EmbeddingCache::new(0);
        z.put(k(1), Arc::from(vec![1.0]));
        assert!(z.is_empty());
    }

    #[test]
    fn keys_differ_by_model_and_text() {
        let a = ModelIdentity { id: "a".into(), dim: 3, hash: [1; 32] };
        let b = ModelIdentity { id: "a".into(), dim: 3, hash: [2; 32] };
        assert_ne!(text_key(&a, "x"), text_key(&b, "x"));
        assert_ne!(text_key(&a, "x"), text_key(&a, "y"));
        assert_eq!(text_key(&a, "x"), text_key(&a, "x"));
    }

    proptest! {
        /// Against a reference LRU (a Vec ordered by recency).
        #[test]
        fn matches_a_reference_lru(cap in 0usize..5, ops in proptest::collection::vec((any::<bool>(), 0u8..8), 0..200)) {
            let mut c = EmbeddingCache::new(cap);
            let mut model: Vec<(u8, f32)> = Vec::new(); // most recent last
            for (n, (is_put, key)) in ops.into_iter().enumerate() {
                if is_put {
                    let v = n as f32;
                    c.put(k(key), Arc::from(vec![v]));
                    if cap > 0 {
                        model.retain(|(kk, _)| *kk != key);
                        model.push((key, v));
                        if model.len() > cap { model.remove(0); }
                    }
                } else {
                    let got = c.get(&k(key)).map(|v| v[0]);
                    let want = model.iter().position(|(kk, _)| *kk == key).map(|p| { let e = model.remove(p); model.push(e); e.1 });
                    prop_assert_eq!(got, want);
                }
                prop_assert_eq!(c.len(), model.len());
            }
        }
    }
}
