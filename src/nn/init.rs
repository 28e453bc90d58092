//! Seeded weight initialisation.

use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How a [`crate::nn::Linear`] weight matrix of shape `[fan_out, fan_in]` is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Init {
    /// Kaiming/He uniform for ReLU-family layers: U(−b, b) with b = √(6 / fan_in)
    /// (gain √2, fan-in mode). Used for hidden layers followed by ReLU or GELU.
    KaimingUniform,
    /// Xavier/Glorot uniform: U(−b, b) with b = √(6 / (fan_in + fan_out)). Used for output
    /// layers (logits) and layers without a rectifier.
    XavierUniform,
    /// All zeros (e.g. a head that must start as the zero function).
    Zeros,
}

impl Init {
    /// The bound b of the uniform distribution for the given fans (0 for [`Init::Zeros`]).
    pub fn bound(self, fan_in: usize, fan_out: usize) -> f32 {
        match self {
            Init::KaimingUniform => (6.0 / fan_in.max(1) as f64).sqrt() as f32,
            Init::XavierUniform => (6.0 / (fan_in + fan_out).max(1) as f64).sqrt() as f32,
            Init::Zeros => 0.0,
        }
    }

    /// Draws a `[fan_out, fan_in]` matrix, row-major, consuming `fan_out · fan_in` uniforms
    /// from `rng` (none for [`Init::Zeros`]).
    pub fn matrix(self, fan_out: usize, fan_in: usize, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
        let b = self.bound(fan_in, fan_out);
        if b == 0.0 {
            return ArrayD::zeros(IxDyn(&[fan_out, fan_in]));
        }
        ArrayD::from_shape_simple_fn(IxDyn(&[fan_out, fan_in]), || rng.random_range(-b..b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bounds_and_statistics() {
        assert!((Init::KaimingUniform.bound(6, 100) - 1.0).abs() < 1e-7);
        assert!((Init::XavierUniform.bound(2, 4) - 1.0).abs() < 1e-7);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let w = Init::KaimingUniform.matrix(200, 150, &mut rng);
        let b = Init::KaimingUniform.bound(150, 200);
        assert!(w.iter().all(|v| v.abs() <= b));
        // Var of U(-b, b) is b²/3 = 2/fan_in.
        let var = w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64;
        assert!((var - 2.0 / 150.0).abs() < 0.05 * 2.0 / 150.0, "var {var}");
        let mut rng2 = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(w, Init::KaimingUniform.matrix(200, 150, &mut rng2));
    }
}
