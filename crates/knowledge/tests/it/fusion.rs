//! Weighted RRF: weights must matter. These tests fail if hybrid weighting silently does nothing.

use knowledge::fusion::{Fuser, RankedList, freshness_multiplier};

fn list(name: &str, weight: f32, keys: &[u64]) -> RankedList {
    RankedList { name: name.into(), weight, items: keys.iter().map(|&k| (k, 0.0)).collect() }
}

fn top(fused: &[(u64, f32)]) -> Vec<u64> {
    fused.iter().map(|(k, _)| *k).collect()
}

#[test]
fn weights_change_the_ranking() {
    let fuser = Fuser::default();
    let a = [1, 2, 3];
    let b = [3, 2, 1];
    assert_eq!(top(&fuser.fuse(&[list("a", 2.0, &a), list("b", 1.0, &b)]))[0], 1);
    assert_eq!(top(&fuser.fuse(&[list("a", 1.0, &a), list("b", 2.0, &b)]))[0], 3);
}

#[test]
fn zero_weight_list_contributes_nothing() {
    let fuser = Fuser::default();
    let only_a = fuser.fuse(&[list("a", 1.0, &[1, 2, 3])]);
    let with_muted_b = fuser.fuse(&[list("a", 1.0, &[1, 2, 3]), list("b", 0.0, &[9, 3, 2])]);
    assert_eq!(only_a, with_muted_b);
}

#[test]
fn rrf_scores_are_exact() {
    let fused = Fuser { k: 60.0 }.fuse(&[list("a", 1.0, &[7, 8]), list("b", 0.5, &[8])]);
    let score = |key: u64| fused.iter().find(|(k, _)| *k == key).unwrap().1;
    assert!((score(7) - 1.0 / 61.0).abs() < 1e-7);
    assert!((score(8) - (1.0 / 62.0 + 0.5 / 61.0)).abs() < 1e-7);
    assert_eq!(top(&fused), [8, 7]);
}

#[test]
fn rank_constant_matters() {
    // Chunk 2 is second in one list and fourth in the other; chunk 1 tops one list only. A large k
    // rewards agreement (2 wins), a small k rewards the single top rank (2 loses).
    let lists = [list("a", 1.0, &[1, 2]), list("b", 1.0, &[3, 4, 5, 2])];
    assert_eq!(top(&Fuser { k: 60.0 }.fuse(&lists))[0], 2);
    assert_ne!(top(&Fuser { k: 0.0 }.fuse(&lists))[0], 2);
}

#[test]
fn freshness_multiplier_halves_with_age() {
    assert!((freshness_multiplier(0.0, 1.0, 30.0) - 2.0).abs() < 1e-12);
    assert!((freshness_multiplier(30.0, 1.0, 30.0) - 1.5).abs() < 1e-12);
    assert!((freshness_multiplier(-5.0, 1.0, 30.0) - 2.0).abs() < 1e-12);
    assert!((freshness_multiplier(10.0, 0.0, 30.0) - 1.0).abs() < 1e-12);
}
