//! Statistics: exact McNemar values, seeded bootstrap intervals, paired comparisons.

use eval::stats::{bootstrap_ci, mcnemar, paired};

#[test]
fn mcnemar_exact() {
    assert_eq!(mcnemar(0, 0), 1.0);
    // b=0, c=5: 2 * 0.5^5 = 0.0625.
    assert!((mcnemar(0, 5) - 0.0625).abs() < 1e-12);
    // b=1, c=9: 2 * (1 + 10) / 1024.
    assert!((mcnemar(1, 9) - 22.0 / 1024.0).abs() < 1e-12);
    assert!((mcnemar(9, 1) - mcnemar(1, 9)).abs() < 1e-12);
}

#[test]
fn bootstrap_is_seeded_and_brackets_the_mean() {
    let values: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i % 4 != 0))).collect();
    let (lo, hi) = bootstrap_ci(&values, 1000, 7);
    assert_eq!((lo, hi), bootstrap_ci(&values, 1000, 7));
    assert!(lo < 0.75 && 0.75 < hi && hi - lo < 0.2, "{lo} {hi}");
}

#[test]
fn paired_detects_a_real_difference_only() {
    let a: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i % 2 == 0))).collect();
    let better: Vec<f64> = (0..100).map(|i| f64::from(u8::from(i % 10 != 9))).collect();
    let p = paired(&a, &better, 0);
    assert!(p.significant && p.mcnemar_p.unwrap() < 0.01 && p.diff > 0.3, "{p:?}");
    let same = paired(&a, &a, 0);
    assert!(!same.significant && same.mcnemar_p == Some(1.0));
}
