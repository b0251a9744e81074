//! Damaged model files and unsupported models are errors that name the cause, never panics: every truncation
//! of a fixture, seeded random byte corruption of its header, an unknown architecture, a missing config.

use engine::error::EngineError;
use engine::model::{LoadOptions, load};

use crate::fixtures::fixture;

fn load_bytes(bytes: &[u8], name: &str) -> Result<(), EngineError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    load(&path, &LoadOptions { warm_up: true }).map(|_| ())
}

#[test]
fn every_truncation_of_a_gguf_is_an_error() {
    let bytes = std::fs::read(fixture("qwen2/model-q8_0.gguf")).unwrap();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((64..bytes.len()).step_by(997));
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        match load_bytes(&bytes[..cut], "cut.gguf") {
            Err(EngineError::Corrupt { reason, .. }) => assert!(!reason.is_empty()),
            Err(e) => panic!("cut at {cut}: unexpected error kind {e}"),
            Ok(()) => panic!("cut at {cut}: a truncated file loaded"),
        }
    }
}

#[test]
fn corrupted_header_bytes_never_panic() {
    let bytes = std::fs::read(fixture("llama/model-q8_0.gguf")).unwrap();
    // A tiny xorshift generator keeps the test seeded and dependency-free.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let header_len = 8192.min(bytes.len());
    let mut errors = 0;
    for _ in 0..300 {
        let mut b = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % header_len as u64) as usize;
            b[at] = (next() & 0xff) as u8;
        }
        if load_bytes(&b, "flip.gguf").is_err() {
            errors += 1;
        }
    }
    assert!(errors > 0, "some corruptions must be detected");
}

#[test]
fn not_a_gguf_and_unknown_architecture() {
    let err = load_bytes(b"PK\x03\x04 definitely a zip", "zip.gguf").unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");

    let mut bytes = std::fs::read(fixture("llama/model-f32.gguf")).unwrap();
    // `general.architecture` = "llama" is the first metadata value; make it "llamb".
    let at = bytes.windows(5).position(|w| w == b"llama").unwrap();
    bytes[at + 4] = b'b';
    let err = load_bytes(&bytes, "arch.gguf").unwrap_err();
    assert!(matches!(&err, EngineError::UnsupportedArchitecture(a) if a == "llamb"), "{err}");
}

#[test]
fn hf_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path(), &LoadOptions { warm_up: false }).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");

    std::fs::copy(fixture("llama/hf/config.json"), dir.path().join("config.json")).unwrap();
    let st = std::fs::read(fixture("llama/hf/model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &st[..st.len() / 2]).unwrap();
    let err = load(dir.path(), &LoadOptions { warm_up: false }).unwrap_err();
    assert!(matches!(err, EngineError::Corrupt { .. }), "{err}");

    let cfg = std::fs::read_to_string(fixture("llama/hf/config.json"))
        .unwrap()
        .replace("\"llama\"", "\"mamba\"")
        .replace("LlamaForCausalLM", "MambaForCausalLM");
    std::fs::write(dir.path().join("config.json"), cfg).unwrap();
    let err = load(dir.path(), &LoadOptions { warm_up: false }).unwrap_err();
    assert!(matches!(err, EngineError::UnsupportedArchitecture(_)), "{err}");
}

#[test]
fn unsupported_quant_type_names_the_tensor() {
    let mut bytes = std::fs::read(fixture("llama/model-f32.gguf")).unwrap();
    // Tensor info: name, n_dims (u32) = 1, dim (u64) = 64, type (u32) = 0 (F32), offset (u64).
    let name = b"output_norm.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
    assert_eq!(&bytes[at..at + 4], &1u32.to_le_bytes());
    assert_eq!(&bytes[at + 4..at + 12], &64u64.to_le_bytes());
    bytes[at + 12..at + 16].copy_from_slice(&16u32.to_le_bytes()); // IQ2_XXS
    let err = load_bytes(&bytes, "iq2.gguf").unwrap_err();
    assert!(
        matches!(&err, EngineError::UnsupportedQuant { tensor, .. } if tensor == "output_norm.weight"),
        "{err}"
    );
}
