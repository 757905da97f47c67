//! Property tests: every fast metric against a brute-force O(n²) pair count.

use std::collections::BTreeMap;

use crossdistil_metrics::{auc, gauc, graded_classes, multi_auc};
use proptest::prelude::*;

/// Scores from a small set (signed zeros included) so that ties are frequent.
fn score() -> impl Strategy<Value = f32> {
    prop::sample::select(vec![-1.0f32, -0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 3.0])
}

/// Twice the number of (a, b) pairs with a > b, plus the tied pairs; and the two counts.
fn brute_wins2(a: &[f32], b: &[f32]) -> u128 {
    let mut w = 0u128;
    for &x in a {
        for &y in b {
            if x > y {
                w += 2;
            } else if x == y {
                w += 1;
            }
        }
    }
    w
}

fn brute_ratio(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some(brute_wins2(a, b) as f64 / (2 * a.len() as u128 * b.len() as u128) as f64)
}

fn brute_auc(scores: &[f32], labels: &[u8]) -> Option<f64> {
    let pos: Vec<f32> = scores
        .iter()
        .zip(labels)
        .filter(|p| *p.1 == 1)
        .map(|p| *p.0)
        .collect();
    let neg: Vec<f32> = scores
        .iter()
        .zip(labels)
        .filter(|p| *p.1 == 0)
        .map(|p| *p.0)
        .collect();
    brute_ratio(&pos, &neg)
}

fn labelled(max: usize) -> impl Strategy<Value = (Vec<f32>, Vec<u8>)> {
    prop::collection::vec((score(), 0u8..2), 0..max).prop_map(|v| v.into_iter().unzip())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn auc_matches_brute_force((scores, labels) in labelled(60)) {
        prop_assert_eq!(auc(&scores, &labels).unwrap(), brute_auc(&scores, &labels));
    }

    #[test]
    fn auc_invariant_under_increasing_transform(
        rows in prop::collection::vec((0usize..10, 0u8..2), 0..60),
        increments in prop::collection::vec(1u32..1000, 10),
    ) {
        // A random strictly increasing map from the 10 base values to new, spread-out values.
        let base: Vec<f32> = (0..10).map(|k| k as f32 / 10.0).collect();
        let mut mapped = Vec::with_capacity(10);
        let mut acc = -5000.0f32;
        for inc in &increments {
            acc += *inc as f32;
            mapped.push(acc);
        }
        let labels: Vec<u8> = rows.iter().map(|r| r.1).collect();
        let s1: Vec<f32> = rows.iter().map(|r| base[r.0]).collect();
        let s2: Vec<f32> = rows.iter().map(|r| mapped[r.0]).collect();
        let s3: Vec<f32> = s1.iter().map(|s| (s * 3.0).exp()).collect();
        let a1 = auc(&s1, &labels).unwrap();
        prop_assert_eq!(a1, auc(&s2, &labels).unwrap());
        prop_assert_eq!(a1, auc(&s3, &labels).unwrap());
    }

    #[test]
    fn gauc_matches_brute_force(
        rows in prop::collection::vec((score(), 0u8..2, 0u32..6), 0..80),
    ) {
        let scores: Vec<f32> = rows.iter().map(|r| r.0).collect();
        let labels: Vec<u8> = rows.iter().map(|r| r.1).collect();
        let groups: Vec<u32> = rows.iter().map(|r| r.2 * 1_000_003).collect();
        let got = gauc(&scores, &labels, &groups).unwrap();

        let mut users: BTreeMap<u32, (Vec<f32>, Vec<u8>)> = BTreeMap::new();
        for r in &rows {
            let u = users.entry(r.2).or_default();
            u.0.push(r.0);
            u.1.push(r.1);
        }
        let (mut num, mut den, mut used, mut skipped) = (0.0f64, 0u64, 0u64, 0u64);
        for (s, y) in users.values() {
            match brute_auc(s, y) {
                Some(a) => {
                    num += s.len() as f64 * a;
                    den += s.len() as u64;
                    used += 1;
                }
                None => skipped += 1,
            }
        }
        prop_assert_eq!(got.users_used, used);
        prop_assert_eq!(got.users_skipped, skipped);
        prop_assert_eq!(got.rows_used, den);
        match (got.value, (den > 0).then(|| num / den as f64)) {
            (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b),
            (a, b) => prop_assert_eq!(a, b),
        }
    }

    #[test]
    fn gauc_single_user_is_auc((scores, labels) in labelled(60)) {
        let groups = vec![42u32; scores.len()];
        let g = gauc(&scores, &labels, &groups).unwrap();
        // n·AUC/n may differ from AUC in the last bit.
        match (g.value, auc(&scores, &labels).unwrap()) {
            (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b),
            (a, b) => prop_assert_eq!(a, b),
        }
    }

    #[test]
    fn multi_auc_matches_brute_force(
        n_classes in 1u32..6,
        rows in prop::collection::vec((score(), 0u32..6), 0..80),
    ) {
        let scores: Vec<f32> = rows.iter().map(|r| r.0).collect();
        let classes: Vec<u32> = rows.iter().map(|r| r.1 % n_classes).collect();
        let got = multi_auc(&scores, &classes, n_classes).unwrap();

        let by_class: Vec<Vec<f32>> = (0..n_classes)
            .map(|c| scores.iter().zip(&classes).filter(|p| *p.1 == c).map(|p| *p.0).collect())
            .collect();
        let mut expected = Vec::new();
        for h in 1..n_classes as usize {
            for l in 0..h {
                expected.push((h as u32, l as u32, brute_ratio(&by_class[h], &by_class[l])));
            }
        }
        let got_pairs: Vec<(u32, u32, Option<f64>)> =
            got.per_pair.iter().map(|p| (p.higher, p.lower, p.auc)).collect();
        prop_assert_eq!(&got_pairs, &expected);
        for p in &got.per_pair {
            prop_assert_eq!(p.n_higher, by_class[p.higher as usize].len() as u64);
            prop_assert_eq!(p.n_lower, by_class[p.lower as usize].len() as u64);
        }
        let defined: Vec<f64> = expected.iter().filter_map(|e| e.2).collect();
        prop_assert_eq!(got.pairs_used, defined.len() as u64);
        prop_assert_eq!(got.pairs_skipped, (expected.len() - defined.len()) as u64);
        match (got.value, (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64)) {
            (Some(a), Some(b)) => prop_assert!((a - b).abs() < 1e-12, "{} vs {}", a, b),
            (a, b) => prop_assert_eq!(a, b),
        }
    }

    #[test]
    fn multi_auc_two_classes_is_auc((scores, labels) in labelled(60)) {
        let classes: Vec<u32> = labels.iter().map(|&y| u32::from(y)).collect();
        prop_assert_eq!(multi_auc(&scores, &classes, 2).unwrap().value, auc(&scores, &labels).unwrap());
    }

    #[test]
    fn graded_classes_bits(
        rows in prop::collection::vec(prop::collection::vec(0u8..2, 3), 0..20),
        task in 0usize..3,
    ) {
        let cols: Vec<Vec<u8>> = (0..3).map(|k| rows.iter().map(|r| r[k]).collect()).collect();
        let refs: Vec<&[u8]> = cols.iter().map(Vec::as_slice).collect();
        let classes = graded_classes(&refs, task).unwrap();
        let others: Vec<usize> = (0..3).filter(|&k| k != task).collect();
        for (r, &c) in rows.iter().zip(&classes) {
            let want = u32::from(r[task]) * 4 + u32::from(r[others[0]]) * 2 + u32::from(r[others[1]]);
            prop_assert_eq!(c, want);
        }
    }
}
