//! A preallocated, paged KV cache in f16, shared by all sequences a server runs.
//!
//! Memory is budgeted once in bytes and split into fixed-size blocks of `block_size` token slots (for every
//! layer and KV head). Each sequence owns a block table; its keys and values are written in place into the
//! slots of its blocks, so a decode step copies nothing but the new token's K/V (no per-token `Tensor::cat`,
//! and grouped-query attention reads the shared KV head directly, no `repeat_kv`). Blocks are reference
//! counted: [`KvCache::fork`] lets a new sequence reuse a cached prompt prefix, and a block shared by several
//! sequences is copied before anyone writes into it (copy on write). Design after vLLM's PagedAttention
//! (Kwon et al. 2023), on the CPU.

use std::collections::HashMap;

use half::f16;

use crate::config::ModelConfig;
use crate::error::{EngineError, Result};

/// Identifies a sequence in the cache.
pub type SeqId = u64;

/// Size of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvCacheConfig {
    /// Token slots per block.
    pub block_size: usize,
    /// Total bytes for keys and values of all layers (rounded down to whole blocks).
    pub max_bytes: usize,
    /// The longest sequence allowed (capped at the model's context window).
    pub max_context: usize,
}

/// Block sizes the attention kernel is compiled for (it keeps a block's scores in registers).
pub const BLOCK_SIZES: [usize; 4] = [4, 8, 16, 32];

/// The shape of one layer's K and V storage: values are `[block][kv_head][slot][head_dim]`; keys are
/// `[block][kv_head][head_dim][slot]`, transposed inside each block so that attention computes a query's
/// scores against a whole block as `head_dim` vector multiply-adds, with no horizontal sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvGeometry {
    /// Token slots per block.
    pub block_size: usize,
    /// KV heads.
    pub n_kv_heads: usize,
    /// Width of a head.
    pub head_dim: usize,
}

impl KvGeometry {
    /// Elements of one block in one layer's K (or V) storage.
    pub fn block_elems(&self) -> usize {
        self.n_kv_heads * self.block_size * self.head_dim
    }

    /// Index of the first value element of `(block, kv_head, slot)`; with `slot = 0`, also where the
    /// `(block, kv_head)` tile of keys starts.
    pub fn index(&self, block: u32, kv_head: usize, slot: usize) -> usize {
        ((block as usize * self.n_kv_heads + kv_head) * self.block_size + slot) * self.head_dim
    }

    /// Index of key element `d` of `(block, kv_head, slot)`.
    pub fn key_index(&self, block: u32, kv_head: usize, d: usize, slot: usize) -> usize {
        self.index(block, kv_head, 0) + d * self.block_size + slot
    }
}

/// Keys and values of one layer.
#[derive(Debug)]
pub struct LayerKv {
    pub(crate) k: Vec<f16>,
    pub(crate) v: Vec<f16>,
}

#[derive(Debug, Clone, Default)]
struct SeqState {
    blocks: Vec<u32>,
    len: usize,
}

/// Where one token's K/V go: a block and a slot in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Block index.
    pub block: u32,
    /// Slot within the block.
    pub offset: usize,
}

/// The paged cache.
#[derive(Debug)]
pub struct KvCache {
    geometry: KvGeometry,
    max_context: usize,
    layers: Vec<LayerKv>,
    refcount: Vec<u32>,
    free: Vec<u32>,
    seqs: HashMap<SeqId, SeqState>,
    next_id: SeqId,
}

impl KvCache {
    /// Bytes one token occupies in the cache for this model (keys and values, all layers, f16).
    pub fn bytes_per_token(model: &ModelConfig) -> usize {
        2 * model.n_layers * model.n_kv_heads * model.head_dim * size_of::<f16>()
    }

    /// Allocates the whole budget up front.
    pub fn new(model: &ModelConfig, cfg: &KvCacheConfig) -> Result<KvCache> {
        if !BLOCK_SIZES.contains(&cfg.block_size) {
            return Err(EngineError::Config(format!(
                "KV cache block size must be one of {BLOCK_SIZES:?}, not {}",
                cfg.block_size
            )));
        }
        let geometry = KvGeometry {
            block_size: cfg.block_size,
            n_kv_heads: model.n_kv_heads,
            head_dim: model.head_dim,
        };
        let block_bytes = Self::bytes_per_token(model) * cfg.block_size;
        let n_blocks = cfg.max_bytes / block_bytes.max(1);
        if n_blocks == 0 || n_blocks > u32::MAX as usize {
            return Err(EngineError::Config(format!(
                "KV cache budget of {} bytes gives {n_blocks} blocks of {block_bytes} bytes",
                cfg.max_bytes
            )));
        }
        let elems = n_blocks * geometry.block_elems();
        let layers = (0..model.n_layers)
            .map(|_| LayerKv { k: vec![f16::ZERO; elems], v: vec![f16::ZERO; elems] })
            .collect();
        Ok(KvCache {
            geometry,
            max_context: cfg.max_context.min(model.max_position),
            layers,
            refcount: vec![0; n_blocks],
            free: (0..n_blocks as u32).rev().collect(),
            seqs: HashMap::new(),
            next_id: 0,
        })
    }

    /// Storage layout.
    pub fn geometry(&self) -> KvGeometry {
        self.geometry
    }

    /// The longest sequence this cache accepts.
    pub fn max_context(&self) -> usize {
        self.max_context
    }

    /// Total blocks.
    pub fn total_blocks(&self) -> usize {
        self.refcount.len()
    }

    /// Blocks not used by any sequence.
    pub fn free_blocks(&self) -> usize {
        self.free.len()
    }

    /// Token slots that can still be allocated (ignoring copy-on-write needs).
    pub fn free_tokens(&self) -> usize {
        self.free.len() * self.geometry.block_size
    }

    /// Starts an empty sequence.
    pub fn add_sequence(&mut self) -> SeqId {
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.insert(id, SeqState::default());
        id
    }

    /// Starts a sequence whose first `n_tokens` are those of `src` (a cached prompt prefix): full blocks are
    /// shared, nothing is copied until one of the sequences writes into a shared block.
    pub fn fork(&mut self, src: SeqId, n_tokens: usize) -> Result<SeqId> {
        let state = self.seq(src)?;
        if n_tokens > state.len {
            return Err(EngineError::InvalidRequest(format!(
                "cannot share {n_tokens} tokens of sequence {src}, which holds {}",
                state.len
            )));
        }
        let n_blocks = n_tokens.div_ceil(self.geometry.block_size);
        let blocks = state.blocks[..n_blocks].to_vec();
        for &b in &blocks {
            self.refcount[b as usize] += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.seqs.insert(id, SeqState { blocks, len: n_tokens });
        Ok(id)
    }

    /// Ends a sequence and returns its unshared blocks to the pool.
    pub fn free_sequence(&mut self, id: SeqId) -> Result<()> {
        let state = self.seqs.remove(&id).ok_or(EngineError::UnknownSequence(id))?;
        for b in state.blocks {
            self.release(b);
        }
        Ok(())
    }

    /// Forgets everything after the first `len` tokens (e.g. to roll back a failed step).
    pub fn truncate(&mut self, id: SeqId, len: usize) -> Result<()> {
        let bs = self.geometry.block_size;
        let state = self.seqs.get_mut(&id).ok_or(EngineError::UnknownSequence(id))?;
        if len >= state.len {
            return Ok(());
        }
        state.len = len;
        let keep = len.div_ceil(bs);
        let dropped: Vec<u32> = state.blocks.drain(keep..).collect();
        for b in dropped {
            self.release(b);
        }
        Ok(())
    }

    /// Tokens cached for a sequence.
    pub fn seq_len(&self, id: SeqId) -> Result<usize> {
        Ok(self.seq(id)?.len)
    }

    /// The ids of all live sequences.
    pub fn sequences(&self) -> Vec<SeqId> {
        let mut ids: Vec<SeqId> = self.seqs.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    fn seq(&self, id: SeqId) -> Result<&SeqState> {
        self.seqs.get(&id).ok_or(EngineError::UnknownSequence(id))
    }

    fn release(&mut self, block: u32) {
        let rc = &mut self.refcount[block as usize];
        *rc = rc.saturating_sub(1);
        if *rc == 0 {
            self.free.push(block);
        }
    }

    /// Makes room for `n` more tokens of `id` and returns the position of the first; copies a shared block that
    /// would be written into. Either all of it happens or nothing does.
    pub(crate) fn reserve(&mut self, id: SeqId, n: usize) -> Result<usize> {
        let bs = self.geometry.block_size;
        let state = self.seq(id)?;
        let start = state.len;
        let end = start + n;
        if end > self.max_context {
            return Err(EngineError::ContextLength { needed: end, max: self.max_context });
        }
        let first_written = start / bs;
        let cow: Vec<usize> = (first_written..state.blocks.len())
            .filter(|&i| self.refcount[state.blocks[i] as usize] > 1)
            .collect();
        let new_blocks = end.div_ceil(bs).saturating_sub(state.blocks.len());
        let needed = new_blocks + cow.len();
        if needed > self.free.len() {
            return Err(EngineError::CacheFull { needed, free: self.free.len() });
        }
        for i in cow {
            let old = self.seqs[&id].blocks[i];
            let new = self.alloc();
            self.copy_block(old, new);
            self.release(old);
            if let Some(s) = self.seqs.get_mut(&id) {
                s.blocks[i] = new;
            }
        }
        for _ in 0..new_blocks {
            let b = self.alloc();
            if let Some(s) = self.seqs.get_mut(&id) {
                s.blocks.push(b);
            }
        }
        if let Some(s) = self.seqs.get_mut(&id) {
            s.len = end;
        }
        Ok(start)
    }

    fn alloc(&mut self) -> u32 {
        // Callers check the free count first.
        let b = self.free.pop().unwrap_or(0);
        self.refcount[b as usize] = 1;
        b
    }

    fn copy_block(&mut self, from: u32, to: u32) {
        let n = self.geometry.block_elems();
        let (src, dst) = (from as usize * n, to as usize * n);
        for layer in &mut self.layers {
            layer.k.copy_within(src..src + n, dst);
            layer.v.copy_within(src..src + n, dst);
        }
    }

    /// The block table of a sequence.
    pub(crate) fn blocks(&self, id: SeqId) -> Result<&[u32]> {
        Ok(&self.seq(id)?.blocks)
    }

    /// The slot of position `pos` of a sequence (which must be reserved).
    pub(crate) fn slot(&self, blocks: &[u32], pos: usize) -> Slot {
        let bs = self.geometry.block_size;
        Slot { block: blocks[pos / bs], offset: pos % bs }
    }

    /// One layer's storage.
    pub(crate) fn layer_mut(&mut self, layer: usize) -> Option<&mut LayerKv> {
        self.layers.get_mut(layer)
    }
}

impl LayerKv {
    /// Writes one token's keys and values (`[n_kv_heads * head_dim]` each) into its slot.
    pub(crate) fn write(&mut self, geo: &KvGeometry, slot: Slot, k: &[f32], v: &[f32]) {
        let hd = geo.head_dim;
        for h in 0..geo.n_kv_heads {
            let base = geo.key_index(slot.block, h, 0, slot.offset);
            for (d, src) in k[h * hd..(h + 1) * hd].iter().enumerate() {
                self.k[base + d * geo.block_size] = f16::from_f32(*src);
            }
            let at = geo.index(slot.block, h, slot.offset);
            for (dst, src) in self.v[at..at + hd].iter_mut().zip(&v[h * hd..(h + 1) * hd]) {
                *dst = f16::from_f32(*src);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Architecture, RopeConfig, RopeScaling, RopeStyle};

    fn cache(blocks: usize) -> KvCache {
        let model = ModelConfig {
            arch: Architecture::Llama,
            vocab_size: 10,
            hidden_size: 8,
            intermediate_size: 8,
            n_layers: 2,
            n_heads: 2,
            n_kv_heads: 1,
            head_dim: 4,
            rms_norm_eps: 1e-5,
            rope: RopeConfig {
                theta: 1e4,
                rotary_dim: 4,
                style: RopeStyle::NeoX,
                scaling: RopeScaling::None,
            },
            max_position: 1000,
            tie_embeddings: false,
            attention_bias: false,
            bos_token_id: None,
            eos_token_ids: vec![],
            moe: None,
            qk_norm: false,
        };
        let bytes = KvCache::bytes_per_token(&model) * 4 * blocks;
        KvCache::new(&model, &KvCacheConfig { block_size: 4, max_bytes: bytes, max_context: 100 })
            .unwrap()
    }

    fn mark(c: &mut KvCache, seq: SeqId, pos: usize, value: f32) {
        let slot = c.slot(c.blocks(seq).unwrap(), pos);
        let geo = c.geometry();
        for layer in &mut c.layers {
            layer.write(&geo, slot, &[value; 4], &[value; 4]);
        }
    }

    fn read(c: &KvCache, seq: SeqId, pos: usize) -> f32 {
        let slot = c.slot(c.blocks(seq).unwrap(), pos);
        c.layers[1].k[c.geometry().key_index(slot.block, 0, 0, slot.offset)].to_f32()
    }

    #[test]
    fn fork_shares_blocks_and_copies_on_write() {
        let mut c = cache(8);
        let a = c.add_sequence();
        assert_eq!(c.reserve(a, 6).unwrap(), 0);
        for p in 0..6 {
            mark(&mut c, a, p, p as f32);
        }
        assert_eq!(c.free_blocks(), 6);
        let b = c.fork(a, 6).unwrap();
        assert_eq!(c.free_blocks(), 6, "nothing copied at fork");
        // b writes position 6, inside the shared partial block: it gets its own copy.
        assert_eq!(c.reserve(b, 1).unwrap(), 6);
        assert_eq!(c.free_blocks(), 5);
        mark(&mut c, b, 6, 60.0);
        assert_eq!((read(&c, b, 5), read(&c, b, 6)), (5.0, 60.0));
        // a writes its own position 6; the partial block is no longer shared, so no copy.
        c.reserve(a, 1).unwrap();
        assert_eq!(c.free_blocks(), 5);
        mark(&mut c, a, 6, -6.0);
        assert_eq!((read(&c, a, 6), read(&c, b, 6)), (-6.0, 60.0));
        assert_eq!(
            c.blocks(a).unwrap()[0],
            c.blocks(b).unwrap()[0],
            "the full first block stays shared"
        );
        c.free_sequence(a).unwrap();
        assert_eq!(c.free_blocks(), 6, "b still holds the shared block");
        c.free_sequence(b).unwrap();
        assert_eq!(c.free_blocks(), 8);
        assert!(matches!(c.free_sequence(b), Err(EngineError::UnknownSequence(_))));
    }

    #[test]
    fn truncate_into_a_shared_block_then_write_copies() {
        let mut c = cache(8);
        let a = c.add_sequence();
        c.reserve(a, 8).unwrap();
        for p in 0..8 {
            mark(&mut c, a, p, p as f32);
        }
        let b = c.fork(a, 8).unwrap();
        c.truncate(b, 2).unwrap();
        assert_eq!((c.seq_len(b).unwrap(), c.blocks(b).unwrap().len()), (2, 1));
        c.reserve(b, 1).unwrap();
        mark(&mut c, b, 2, 99.0);
        assert_eq!((read(&c, a, 2), read(&c, b, 2), read(&c, b, 1)), (2.0, 99.0, 1.0));
    }

    #[test]
    fn budget_and_context_limits() {
        let mut c = cache(2);
        let a = c.add_sequence();
        assert!(matches!(c.reserve(a, 9), Err(EngineError::CacheFull { needed: 3, free: 2 })));
        assert_eq!(c.seq_len(a).unwrap(), 0);
        assert!(matches!(
            c.reserve(a, 101),
            Err(EngineError::ContextLength { needed: 101, max: 100 })
        ));
        assert!(c.fork(a, 1).is_err(), "cannot share more than the sequence holds");
    }
}
