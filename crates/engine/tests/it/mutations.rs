//! Seeded mutations of the committed model files through the loaders, thousands per format: flipped bytes,
//! extreme integers written over lengths and offsets, truncations, insertions and deletions in the header.
//! Every outcome must be a load or an error that names the file's problem, never a panic; the in-memory
//! GGUF validator takes the bulk (it is what the `gguf_parse` fuzz target drives), and a few hundred go
//! through the full loader (configuration, tensors, a warm-up forward pass) from disk.

use engine::error::EngineError;
use engine::gguf;
use engine::model::{LoadOptions, load};

use crate::fixtures::fixture;

/// xorshift64: seeded and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One random structural mutation confined to the first `header` bytes (where lengths and offsets live).
fn mutate(bytes: &[u8], header: usize, rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let at = rng.below(header);
    match rng.below(6) {
        0 => {
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(header);
                b[i] = rng.next() as u8;
            }
        }
        1 => {
            let extremes = [u64::MAX, u64::MAX / 2, 1 << 40, 1 << 32, 0, bytes.len() as u64 + 1];
            let v = extremes[rng.below(extremes.len())].to_le_bytes();
            let end = (at + 8).min(b.len());
            b[at..end].copy_from_slice(&v[..end - at]);
        }
        2 => b.truncate(rng.below(bytes.len())),
        3 => {
            let n = 1 + rng.below(16);
            let filler: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            b.splice(at..at, filler);
        }
        4 => {
            let end = (at + 1 + rng.below(16)).min(b.len());
            b.drain(at..end);
        }
        _ => {
            let len = 1 + rng.below(64);
            let from = rng.below(header);
            let chunk: Vec<u8> = b[from..(from + len).min(b.len())].to_vec();
            let end = (at + chunk.len()).min(b.len());
            b[at..end].copy_from_slice(&chunk[..end - at]);
        }
    }
    b
}

fn is_file_error(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::Corrupt { .. }
            | EngineError::UnsupportedQuant { .. }
            | EngineError::UnsupportedArchitecture(_)
            | EngineError::MissingTensor(_)
            | EngineError::ShapeMismatch { .. }
            | EngineError::Config(_)
    )
}

#[test]
fn gguf_mutations_are_loads_or_named_errors() {
    let mut rng = Rng(0x5eed_9f4a_11c3_d2b7);
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "llama/model-q8_0.gguf",
        "qwen2/model-f32.gguf",
        "llama-k/model-q4_k_m.gguf",
        "bailingmoe/model-q8_0.gguf",
        "bailingmoe2/model-q8_0.gguf",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let header = gguf::validate(&bytes).unwrap().tensor_data_offset as usize;
        let mut rejected = 0;
        for i in 0..2000 {
            let m = mutate(&bytes, header, &mut rng);
            match gguf::validate(&m) {
                Ok(_) => {}
                Err(e) if is_file_error(&e) => rejected += 1,
                Err(e) => panic!("{name} mutation {i}: unexpected error kind: {e}"),
            }
            if i % 20 == 0 {
                let path = dir.path().join("m.gguf");
                std::fs::write(&path, &m).unwrap();
                if let Err(e) = load(&path, &LoadOptions { warm_up: true }) {
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        assert!(rejected > 500, "{name}: only {rejected} of 2000 mutations were rejected");
    }
}

#[test]
fn safetensors_mutations_are_loads_or_named_errors() {
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    let src = fixture("llama/hf");
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut rejected = 0;
    for i in 0..400 {
        let m = mutate(&bytes, header, &mut rng);
        std::fs::write(dir.path().join("model.safetensors"), &m).unwrap();
        match load(dir.path(), &LoadOptions { warm_up: i % 4 == 0 }) {
            Ok(_) => {}
            Err(e) if is_file_error(&e) => rejected += 1,
            Err(e) => panic!("mutation {i}: unexpected error kind: {e}"),
        }
    }
    assert!(rejected > 100, "only {rejected} of 400 mutations were rejected");
}
