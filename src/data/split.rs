//! Seeded stratified splitting: each stratum is shuffled with its own seeded order and cut at the
//! same fraction, so label proportions match across the parts.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Splits row indices into `(train, held_out)` with about `held_out_fraction` of every stratum
/// held out (at least one row of any stratum with two or more rows). Deterministic per seed;
/// both parts come back sorted.
pub fn stratified_split(
    strata: &[String],
    held_out_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, s) in strata.iter().enumerate() {
        groups.entry(s.as_str()).or_default().push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut held) = (Vec::new(), Vec::new());
    for (_, mut idx) in groups {
        idx.shuffle(&mut rng);
        let mut k = (idx.len() as f64 * held_out_fraction).round() as usize;
        if idx.len() >= 2 && held_out_fraction > 0.0 {
            k = k.clamp(1, idx.len() - 1);
        }
        held.extend_from_slice(&idx[..k.min(idx.len())]);
        train.extend_from_slice(&idx[k.min(idx.len())..]);
    }
    train.sort_unstable();
    held.sort_unstable();
    (train, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_are_kept_and_split_is_a_partition() {
        let strata: Vec<String> = (0..100)
            .map(|i| if i < 80 { "a" } else { "b" }.to_string())
            .collect();
        let (tr, te) = stratified_split(&strata, 0.2, 7);
        assert_eq!(tr.len() + te.len(), 100);
        assert_eq!(te.iter().filter(|&&i| i < 80).count(), 16);
        assert_eq!(te.iter().filter(|&&i| i >= 80).count(), 4);
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let strata: Vec<String> = (0..50).map(|i| (i % 3).to_string()).collect();
        assert_eq!(
            stratified_split(&strata, 0.3, 1),
            stratified_split(&strata, 0.3, 1)
        );
        assert_ne!(
            stratified_split(&strata, 0.3, 1),
            stratified_split(&strata, 0.3, 2)
        );
    }

    #[test]
    fn tiny_strata_keep_one_each_side() {
        let strata = vec!["x".to_string(), "x".to_string(), "y".to_string()];
        let (tr, te) = stratified_split(&strata, 0.2, 0);
        assert_eq!(te.len(), 1);
        assert_eq!(tr.len(), 2);
    }
}
