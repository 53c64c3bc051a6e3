//! Exact Shapley values from a value function given on every coalition of features: the
//! model-agnostic method, for any graph (pipelines included), under a limit on the number of
//! features, and the weights the tree method shares.
//!
//! A coalition is a bit mask over the features (bit `i` set: feature `i` takes the explained
//! row's value, otherwise the background row's), so `values[mask]` is the coalition's value
//! and there are `2^features` of them.

/// The Shapley weight of a coalition of `size` features out of `features`:
/// `size! (features - size - 1)! / features!`.
pub fn weight(size: usize, features: usize) -> f64 {
    debug_assert!(size < features);
    // 1 / (features * C(features - 1, size)), without factorials that overflow.
    let n = features - 1;
    let k = size.min(n - size);
    let mut binomial = 1.0f64;
    for i in 0..k {
        binomial = binomial * (n - i) as f64 / (i + 1) as f64;
    }
    1.0 / (features as f64 * binomial)
}

/// The Shapley value of each feature, from `values[mask]` for every coalition `mask` of
/// `features` features (`values.len() == 1 << features`). Their sum is
/// `values[all] - values[none]` (efficiency), up to rounding.
pub fn shapley_values(values: &[f64], features: usize) -> Vec<f64> {
    assert_eq!(values.len(), 1usize << features, "one value per coalition");
    if features == 0 {
        return Vec::new();
    }
    let weights: Vec<f64> = (0..features).map(|s| weight(s, features)).collect();
    let mut phi = vec![0.0f64; features];
    for (mask, &value) in values.iter().enumerate() {
        let size = (mask as u64).count_ones() as usize;
        for (i, phi_i) in phi.iter_mut().enumerate() {
            let bit = 1usize << i;
            if mask & bit == 0 {
                *phi_i += weights[size] * (values[mask | bit] - value);
            }
        }
    }
    phi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_of_one_feature_sum_to_one_over_its_coalitions() {
        for features in 1..12 {
            // Each size s has C(features - 1, s) coalitions without feature i.
            let mut total = 0.0;
            for size in 0..features {
                let mut count = 1.0;
                for j in 0..size {
                    count = count * (features - 1 - j) as f64 / (j + 1) as f64;
                }
                total += count * weight(size, features);
            }
            assert!((total - 1.0).abs() < 1e-12, "{features}: {total}");
        }
        assert_eq!(weight(0, 1), 1.0);
        assert!((weight(1, 3) - 1.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn an_additive_game_gives_each_feature_its_own_term_and_interactions_split_evenly() {
        // v(S) = 1·[0 in S] + 2·[1 in S] + 4·[0 in S and 2 in S]
        let v = |mask: usize| {
            f64::from(mask & 1 != 0)
                + 2.0 * f64::from(mask & 2 != 0)
                + 4.0 * f64::from(mask & 5 == 5)
        };
        let values: Vec<f64> = (0..8).map(v).collect();
        let phi = shapley_values(&values, 3);
        assert_eq!(phi, vec![3.0, 2.0, 2.0]);
        assert_eq!(phi.iter().sum::<f64>(), values[7] - values[0]);
    }
}
