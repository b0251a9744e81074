//! A hierarchical navigable small-world graph (Malkov & Yashunin, 2016) over unit vectors, so a vector
//! query visits a few thousand chunks instead of scanning all of them. Written here rather than taken
//! from crates.io because it must do what the knowledge base needs and nothing more: keys are chunk keys,
//! similarity is the dot product of unit vectors, inserts are incremental, deletes are tombstones (a
//! deleted node still routes searches but is never returned, and [`Hnsw::compacted`] rebuilds without
//! them), queries take a filter, level draws come from a seeded generator (same inserts, same graph), and
//! the graph is saved to and loaded from one file with every length checked.
//!
//! Layout: node `i` owns `vectors[i*dim..]`; layer 0 keeps `2*m` neighbour slots per node in one flat
//! array (the layer every query spends its time in), upper layers keep `m` slots per level per node.

use std::{
    cmp::{Ordering, Reverse},
    collections::{BinaryHeap, HashMap},
    path::Path,
};

use serde::{Deserialize, Serialize};

use crate::{KnowledgeError, Result, embed::dot, eval::SplitMix};

/// Graph parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HnswParams {
    /// Neighbours per node on the upper layers (twice as many on layer 0).
    pub m: usize,
    /// Candidates kept while inserting (larger: better graph, slower inserts).
    pub ef_construction: usize,
    /// Candidates kept while searching (larger: better recall, slower queries); at least `k` is used.
    pub ef_search: usize,
    /// Seed of the level draws.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams { m: 16, ef_construction: 100, ef_search: 96, seed: 0x5eed }
    }
}

/// The highest layer a node can be drawn into.
const MAX_LEVEL: usize = 16;
const MAGIC: &[u8; 8] = b"FLHNSW01";

/// A distance (1 - dot, smaller is closer) with a node, ordered by distance then node.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}

impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Which nodes a search has seen: one bit per node.
struct Visited(Vec<u64>);

impl Visited {
    fn new(n: usize) -> Self {
        Visited(vec![0; n.div_ceil(64)])
    }

    /// Marks `node`; true when it was not marked before.
    fn insert(&mut self, node: u32) -> bool {
        let (word, bit) = (node as usize / 64, 1u64 << (node % 64));
        let fresh = self.0[word] & bit == 0;
        self.0[word] |= bit;
        fresh
    }
}

/// The graph.
#[derive(Debug, Clone)]
pub struct Hnsw {
    params: HnswParams,
    dim: usize,
    rng: SplitMix,
    keys: Vec<u64>,
    vectors: Vec<f32>,
    levels: Vec<u8>,
    deleted: Vec<bool>,
    /// Layer 0: per node, a count then `2*m` slots.
    layer0: Vec<u32>,
    /// Layers 1..=level: per node, per level, a count then `m` slots.
    upper: Vec<Vec<u32>>,
    by_key: HashMap<u64, u32>,
    entry: Option<u32>,
    top: usize,
}

impl Hnsw {
    /// An empty graph for vectors of `dim` dimensions.
    pub fn new(dim: usize, params: HnswParams) -> Self {
        let params = HnswParams {
            m: params.m.clamp(2, 255),
            ef_construction: params.ef_construction.max(1),
            ef_search: params.ef_search.max(1),
            seed: params.seed,
        };
        Hnsw {
            params,
            dim,
            rng: SplitMix(params.seed),
            keys: Vec::new(),
            vectors: Vec::new(),
            levels: Vec::new(),
            deleted: Vec::new(),
            layer0: Vec::new(),
            upper: Vec::new(),
            by_key: HashMap::new(),
            entry: None,
            top: 0,
        }
    }

    /// The parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Changes how many candidates a search keeps (no rebuild needed).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.params.ef_search = ef.max(1);
    }

    /// The vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Live (not deleted) vectors.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no vector is live.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Nodes in the graph, deleted ones included.
    pub fn nodes(&self) -> usize {
        self.keys.len()
    }

    /// Whether `key` is live.
    pub fn contains(&self, key: u64) -> bool {
        self.by_key.contains_key(&key)
    }

    /// The live keys, in node order.
    pub fn live_keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.iter().zip(&self.deleted).filter(|(_, d)| !**d).map(|(k, _)| *k)
    }

    fn vector(&self, node: u32) -> &[f32] {
        let start = node as usize * self.dim;
        &self.vectors[start..start + self.dim]
    }

    fn distance(&self, query: &[f32], node: u32) -> f32 {
        1.0 - dot(query, self.vector(node))
    }

    fn slots(&self, level: usize) -> usize {
        if level == 0 { 2 * self.params.m } else { self.params.m }
    }

    fn neighbors(&self, node: u32, level: usize) -> &[u32] {
        let (list, base) = if level == 0 {
            (&self.layer0[..], node as usize * (2 * self.params.m + 1))
        } else {
            (&self.upper[node as usize][..], (level - 1) * (self.params.m + 1))
        };
        let count = list[base] as usize;
        &list[base + 1..base + 1 + count]
    }

    fn set_neighbors(&mut self, node: u32, level: usize, items: &[u32]) {
        let slots = self.slots(level);
        let (list, base) = if level == 0 {
            (&mut self.layer0[..], node as usize * (slots + 1))
        } else {
            (&mut self.upper[node as usize][..], (level - 1) * (slots + 1))
        };
        let count = items.len().min(slots);
        list[base] = count as u32;
        list[base + 1..base + 1 + count].copy_from_slice(&items[..count]);
    }

    fn draw_level(&mut self) -> usize {
        // Uniform in (0, 1]; level = floor(-ln(u) / ln(m)).
        let u = ((self.rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let level = (-u.ln() / (self.params.m as f64).ln()).floor();
        (level as usize).min(MAX_LEVEL)
    }

    /// Inserts (or replaces) the vector of `key`.
    pub fn insert(&mut self, key: u64, vector: &[f32]) -> Result<()> {
        if vector.len() != self.dim {
            return Err(KnowledgeError::BadInput(format!(
                "vector of dimension {} for an index of dimension {}",
                vector.len(),
                self.dim
            )));
        }
        self.delete(key);
        let node = u32::try_from(self.keys.len())
            .map_err(|_| KnowledgeError::BadInput("too many vectors for one index".into()))?;
        let level = self.draw_level();
        self.keys.push(key);
        self.vectors.extend_from_slice(vector);
        self.levels.push(level as u8);
        self.deleted.push(false);
        self.layer0.resize(self.layer0.len() + 2 * self.params.m + 1, 0);
        self.upper.push(vec![0; level * (self.params.m + 1)]);
        self.by_key.insert(key, node);
        let Some(mut entry) = self.entry else {
            self.entry = Some(node);
            self.top = level;
            return Ok(());
        };
        let mut entry_dist = self.distance(vector, entry);
        for layer in (level + 1..=self.top).rev() {
            (entry, entry_dist) = self.greedy(vector, entry, entry_dist, layer);
        }
        let mut visited = Visited::new(self.keys.len());
        let mut entries = vec![Near(entry_dist, entry)];
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(
                vector,
                &entries,
                self.params.ef_construction,
                layer,
                &mut visited,
                &|_| true,
            );
            let chosen = self.select(&found, self.params.m);
            self.set_neighbors(node, layer, &chosen);
            for &other in &chosen {
                self.link(other, node, layer);
            }
            entries = found;
            visited = Visited::new(self.keys.len());
        }
        if level > self.top {
            self.entry = Some(node);
            self.top = level;
        }
        Ok(())
    }

    /// Adds `node` to `other`'s neighbours on `layer`, pruning them with the heuristic when full.
    fn link(&mut self, other: u32, node: u32, layer: usize) {
        let current = self.neighbors(other, layer);
        if current.len() < self.slots(layer) {
            let mut list = current.to_vec();
            list.push(node);
            self.set_neighbors(other, layer, &list);
            return;
        }
        let base = self.vector(other).to_vec();
        let mut candidates: Vec<Near> = current
            .iter()
            .chain(std::iter::once(&node))
            .map(|&n| Near(self.distance(&base, n), n))
            .collect();
        candidates.sort();
        let chosen = self.select(&candidates, self.slots(layer));
        self.set_neighbors(other, layer, &chosen);
    }

    /// The neighbour-selection heuristic: walk candidates nearest first and keep one unless it is closer
    /// to an already kept neighbour than to the base (it would add a redundant edge); top up with the
    /// skipped ones when fewer than `m` survive, so sparse regions stay connected.
    fn select(&self, sorted: &[Near], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        let mut skipped = Vec::new();
        for near in sorted {
            if kept.len() >= m {
                break;
            }
            let candidate = self.vector(near.1);
            if kept.iter().all(|&k| 1.0 - dot(candidate, self.vector(k)) > near.0) {
                kept.push(near.1);
            } else {
                skipped.push(near.1);
            }
        }
        for node in skipped {
            if kept.len() >= m {
                break;
            }
            kept.push(node);
        }
        kept
    }

    /// Moves greedily to the nearest node on `layer`.
    fn greedy(&self, query: &[f32], mut node: u32, mut dist: f32, layer: usize) -> (u32, f32) {
        loop {
            let mut moved = false;
            for &next in self.neighbors(node, layer) {
                let d = self.distance(query, next);
                if d < dist {
                    (node, dist, moved) = (next, d, true);
                }
            }
            if !moved {
                return (node, dist);
            }
        }
    }

    /// Best-first search of one layer from `entries`, keeping the `ef` nearest nodes that `accept`
    /// allows (others are walked through, not kept), nearest first.
    fn search_layer(
        &self,
        query: &[f32],
        entries: &[Near],
        ef: usize,
        layer: usize,
        visited: &mut Visited,
        accept: &dyn Fn(u32) -> bool,
    ) -> Vec<Near> {
        let mut candidates: BinaryHeap<Reverse<Near>> = BinaryHeap::new();
        let mut kept: BinaryHeap<Near> = BinaryHeap::new();
        for &near in entries {
            if visited.insert(near.1) {
                candidates.push(Reverse(near));
                if accept(near.1) {
                    kept.push(near);
                }
            }
        }
        while kept.len() > ef {
            kept.pop();
        }
        while let Some(Reverse(current)) = candidates.pop() {
            if kept.len() >= ef && kept.peek().is_some_and(|worst| current.0 > worst.0) {
                break;
            }
            for &next in self.neighbors(current.1, layer) {
                if !visited.insert(next) {
                    continue;
                }
                let d = self.distance(query, next);
                if kept.len() < ef || kept.peek().is_some_and(|worst| d < worst.0) {
                    candidates.push(Reverse(Near(d, next)));
                    if accept(next) {
                        kept.push(Near(d, next));
                        if kept.len() > ef {
                            kept.pop();
                        }
                    }
                }
            }
        }
        kept.into_sorted_vec()
    }

    /// Up to `k` live keys nearest to `query` (largest dot product first) among those `accept` allows.
    pub fn search(&self, query: &[f32], k: usize, accept: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        let Some(mut entry) = self.entry else { return Vec::new() };
        if query.len() != self.dim || k == 0 || self.is_empty() {
            return Vec::new();
        }
        let mut dist = self.distance(query, entry);
        for layer in (1..=self.top).rev() {
            (entry, dist) = self.greedy(query, entry, dist, layer);
        }
        let mut visited = Visited::new(self.keys.len());
        let allowed = |node: u32| !self.deleted[node as usize] && accept(self.keys[node as usize]);
        let found = self.search_layer(
            query,
            &[Near(dist, entry)],
            self.params.ef_search.max(k),
            0,
            &mut visited,
            &allowed,
        );
        found.into_iter().take(k).map(|n| (self.keys[n.1 as usize], 1.0 - n.0)).collect()
    }

    /// The exact answer to [`Hnsw::search`]: every live vector scored.
    pub fn exact(&self, query: &[f32], k: usize, accept: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        if query.len() != self.dim || k == 0 {
            return Vec::new();
        }
        let mut scored: Vec<(u64, f32)> = (0..self.keys.len())
            .filter(|&i| !self.deleted[i] && accept(self.keys[i]))
            .map(|i| (self.keys[i], dot(query, self.vector(i as u32))))
            .collect();
        let by_score = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, by_score);
            scored.truncate(k);
        }
        scored.sort_by(by_score);
        scored
    }

    /// Tombstones `key`: it keeps routing searches but is never returned. False when it was not live.
    pub fn delete(&mut self, key: u64) -> bool {
        match self.by_key.remove(&key) {
            Some(node) => {
                self.deleted[node as usize] = true;
                true
            }
            None => false,
        }
    }

    /// Share of nodes that are tombstones.
    pub fn dead_share(&self) -> f64 {
        if self.keys.is_empty() {
            return 0.0;
        }
        (self.keys.len() - self.len()) as f64 / self.keys.len() as f64
    }

    /// A new graph of the live vectors only (same parameters and seed, inserted in node order).
    pub fn compacted(&self) -> Result<Hnsw> {
        let mut graph = Hnsw::new(self.dim, self.params);
        for node in 0..self.keys.len() {
            if !self.deleted[node] {
                graph.insert(self.keys[node], self.vector(node as u32))?;
            }
        }
        Ok(graph)
    }

    /// The graph as bytes; `stamp` is stored with it for the caller to check on load.
    pub fn to_bytes(&self, stamp: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.vectors.len() * 4 + self.layer0.len() * 4);
        out.extend_from_slice(MAGIC);
        for v in [
            self.dim as u64,
            self.params.m as u64,
            self.params.ef_construction as u64,
            self.params.ef_search as u64,
            self.params.seed,
            self.rng.0,
            stamp,
            self.keys.len() as u64,
            self.entry.map_or(u64::MAX, u64::from),
            self.top as u64,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for node in 0..self.keys.len() {
            out.extend_from_slice(&self.keys[node].to_le_bytes());
            out.push(self.levels[node]);
            out.push(u8::from(self.deleted[node]));
        }
        for x in &self.vectors {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in self.layer0.iter().chain(self.upper.iter().flatten()) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Reads a graph written by [`Hnsw::to_bytes`]; returns it and its stamp. Every length, level and
    /// neighbour id is checked: a damaged file is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<(Hnsw, u64)> {
        let bad = |what: &str| KnowledgeError::BadInput(format!("vector graph: {what}"));
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(8).ok_or_else(|| bad("truncated"))? != MAGIC {
            return Err(bad("not a finllm vector graph"));
        }
        let mut header = [0u64; 10];
        for v in &mut header {
            *v = reader.u64().ok_or_else(|| bad("truncated header"))?;
        }
        let [dim, m, ef_construction, ef_search, seed, rng, stamp, n, entry, top] = header;
        let small = |v: u64, max: u64, what: &str| {
            if v <= max { Ok(v as usize) } else { Err(bad(what)) }
        };
        let dim = small(dim, 65_536, "dimension")?;
        let m = small(m, 255, "m")?;
        let n = small(n, u64::from(u32::MAX), "node count")?;
        let top = small(top, MAX_LEVEL as u64, "top level")?;
        // Each node takes at least 10 + 4*dim + 4*(2m+1) bytes: reject counts the file cannot hold.
        if n.saturating_mul(10 + 4 * dim + 4 * (2 * m + 1)) > bytes.len() {
            return Err(bad("node count larger than the file"));
        }
        let params = HnswParams {
            m,
            ef_construction: small(ef_construction, 1 << 20, "ef_construction")?,
            ef_search: small(ef_search, 1 << 20, "ef_search")?,
            seed,
        };
        let mut graph = Hnsw::new(dim, params);
        if graph.params != params {
            return Err(bad("parameters out of range"));
        }
        graph.rng = SplitMix(rng);
        for node in 0..n {
            let key = reader.u64().ok_or_else(|| bad("truncated nodes"))?;
            let head = reader.take(2).ok_or_else(|| bad("truncated nodes"))?;
            let (level, deleted) = (head[0], head[1] != 0);
            if usize::from(level) > MAX_LEVEL {
                return Err(bad("level out of range"));
            }
            graph.keys.push(key);
            graph.levels.push(level);
            graph.deleted.push(deleted);
            if !deleted && graph.by_key.insert(key, node as u32).is_some() {
                return Err(bad("a key is live twice"));
            }
        }
        let floats = reader.take(n * dim * 4).ok_or_else(|| bad("truncated vectors"))?;
        graph.vectors =
            floats.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let mut ids = |count: usize| -> Result<Vec<u32>> {
            let raw = reader.take(count * 4).ok_or_else(|| bad("truncated links"))?;
            Ok(raw.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
        };
        graph.layer0 = ids(n * (2 * m + 1))?;
        for node in 0..n {
            let level = usize::from(graph.levels[node]);
            graph.upper.push(ids(level * (m + 1))?);
        }
        for node in 0..n as u32 {
            for layer in 0..=usize::from(graph.levels[node as usize]) {
                let slots = graph.slots(layer);
                let base = if layer == 0 {
                    node as usize * (slots + 1)
                } else {
                    (layer - 1) * (slots + 1)
                };
                let list = if layer == 0 { &graph.layer0 } else { &graph.upper[node as usize] };
                let count = list[base] as usize;
                if count > slots
                    || list[base + 1..base + 1 + count].iter().any(|&x| x as usize >= n)
                {
                    return Err(bad("neighbour list out of range"));
                }
                // A neighbour on layer l must live on layer l (else it has no list there).
                if list[base + 1..base + 1 + count]
                    .iter()
                    .any(|&x| usize::from(graph.levels[x as usize]) < layer)
                {
                    return Err(bad("neighbour below its layer"));
                }
            }
        }
        graph.entry = match entry {
            u64::MAX if n == 0 => None,
            e if (e as usize) < n && usize::from(graph.levels[e as usize]) == top => Some(e as u32),
            _ => return Err(bad("entry point")),
        };
        graph.top = top;
        if reader.at != bytes.len() {
            return Err(bad("trailing bytes"));
        }
        Ok((graph, stamp))
    }

    /// Writes the graph to `path` atomically (a temporary file, then a rename).
    pub fn save(&self, path: &Path, stamp: u64) -> Result<()> {
        let tmp = path.with_extension("hnsw.tmp");
        std::fs::write(&tmp, self.to_bytes(stamp)).map_err(|e| KnowledgeError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| KnowledgeError::io(path, e))
    }

    /// Reads a graph saved with [`Hnsw::save`].
    pub fn load(path: &Path) -> Result<(Hnsw, u64)> {
        let bytes = std::fs::read(path).map_err(|e| KnowledgeError::io(path, e))?;
        Hnsw::from_bytes(&bytes)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
}
