//! The sampled pass of Monte-Carlo dropout: inference with every dropout layer on, from
//! streams seeded by the caller, so that repeated passes over the same inputs draw different
//! masks and the spread of their outputs estimates the model's uncertainty (Gal and
//! Ghahramani, 2016). It runs on a copy of the network (dropout masks are state).

use ndarray::{Array2, ArrayView2};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::training::TrainBatch;
use super::Network;
use crate::backbone::PackedBatch;
use crate::error::{Error, ErrorKind, Result};
use crate::heads::Mode;
use crate::nn::{Dropout, Layer};

impl Network {
    /// Restarts every dropout stream (encoder, auxiliary heads, heads, sequence encoder) from
    /// seeds drawn from `seed`, and returns how many MLP dropout layers drop anything.
    pub fn reseed_all_dropout(&mut self, seed: u64) -> usize {
        let mut master = ChaCha8Rng::seed_from_u64(seed);
        let mut active = 0;
        let mlps = self
            .encoder
            .iter_mut()
            .chain(self.aux_heads.iter_mut())
            .chain(self.heads.iter_mut());
        for m in mlps {
            m.net_mut().for_each_dropout(&mut |d: &mut Dropout| {
                d.reseed(master.next_u64());
                active += usize::from(d.p() > 0.0);
            });
        }
        if let Some(s) = self.sequence.as_mut() {
            s.reseed_dropout(master.next_u64());
        }
        active
    }

    /// Every task's raw outputs with dropout on (each call draws new masks); the inputs are
    /// those of [`Network::forward`].
    pub fn forward_sampled(
        &mut self,
        emb: ArrayView2<'_, f32>,
        features: ArrayView2<'_, f32>,
        tokens: Option<&PackedBatch>,
    ) -> Result<Vec<Array2<f32>>> {
        let outputs = if self.arch.mode == Mode::MetadataOnly {
            self.forward_metadata_train(features)?
        } else {
            if self.sequence.is_some() && tokens.is_none() {
                return Err(Error::invalid(
                    "sequence heads need the texts' per-token vectors",
                ));
            }
            self.forward_train(&TrainBatch {
                pooled: None,
                emb,
                feats: features,
                tokens,
            })?
        };
        // Nothing will go backward: the layers' caches are dropped now.
        for m in self
            .encoder
            .iter_mut()
            .chain(self.aux_heads.iter_mut())
            .chain(self.heads.iter_mut())
        {
            m.clear_cache();
        }
        if outputs.len() != self.arch.outputs.len() {
            return Err(Error::new(
                ErrorKind::Internal,
                "sampled pass gave another number of outputs",
            ));
        }
        Ok(outputs)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::data::{TaskKind, TaskSpec};
    use crate::heads::{predict_arrays, predict_sampled, Architecture, Heads, Network, TaskEntry};

    fn heads(dropout: f32) -> Heads {
        let mut arch = Architecture::embedding_only(6, vec![3, 1]);
        arch.head.dropout = dropout;
        arch.target_scale = vec![(0.0, 1.0), (10.0, 2.0)];
        let task = |name: &str, kind, labels: &[&str]| TaskEntry {
            spec: TaskSpec {
                name: name.into(),
                kind,
                labels: labels.iter().map(|l| l.to_string()).collect(),
            },
            thresholds: vec![],
        };
        Heads {
            network: Network::new(arch, &mut ChaCha8Rng::seed_from_u64(1)).unwrap(),
            normalizer: None,
            tasks: vec![
                task("topic", TaskKind::Multiclass, &["a", "b", "c"]),
                task("score", TaskKind::Regression, &[]),
            ],
            version: 0,
            onnx: None,
        }
    }

    fn inputs() -> Array2<f32> {
        Array2::from_shape_fn((5, 6), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 5.0 - 1.0)
    }

    #[test]
    fn the_mean_and_spread_are_those_of_the_sampled_passes() {
        let h = heads(0.3);
        let x = inputs();
        let none = Array2::<f32>::zeros((5, 0));
        let got = predict_sampled(&h, x.view(), none.view(), None, 20, 7).unwrap();
        // The same passes by hand: a copy reseeded alike, 20 sampled forwards, then the mean and
        // the population standard deviation of the probabilities (and de-standardized values).
        let mut net = h.network.clone();
        assert!(net.reseed_all_dropout(7) > 0);
        let passes: Vec<Vec<Array2<f32>>> = (0..20)
            .map(|_| {
                let raw = net.forward_sampled(x.view(), none.view(), None).unwrap();
                crate::heads::probabilities(&h.tasks, &h.network.arch, &raw)
            })
            .collect();
        for t in 0..2 {
            for ((i, j), &m) in got.mean[t].indexed_iter() {
                let v: Vec<f64> = passes.iter().map(|p| p[t][[i, j]] as f64).collect();
                let mean = v.iter().sum::<f64>() / 20.0;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0).sqrt();
                assert!((m as f64 - mean).abs() < 1e-5, "task {t} [{i},{j}]");
                assert!(
                    (got.std[t][[i, j]] as f64 - sd).abs() < 1e-4,
                    "task {t} [{i},{j}]"
                );
            }
        }
        // Dropout makes the passes differ; the mean probabilities still sum to 1.
        assert!(got.std[0].iter().any(|&s| s > 1e-4));
        for row in got.mean[0].rows() {
            assert!((row.sum() - 1.0).abs() < 1e-5);
        }
        // The same seed, the same numbers; another seed, others. The served model is untouched.
        let again = predict_sampled(&h, x.view(), none.view(), None, 20, 7).unwrap();
        assert_eq!(again.mean, got.mean);
        let other = predict_sampled(&h, x.view(), none.view(), None, 20, 8).unwrap();
        assert_ne!(other.mean, got.mean);
        let plain = predict_arrays(&h, x.view(), none.view(), None).unwrap();
        assert_eq!(
            plain,
            predict_arrays(&heads(0.3), x.view(), none.view(), None).unwrap()
        );
    }

    #[test]
    fn heads_without_dropout_or_no_samples_are_refused() {
        let x = inputs();
        let none = Array2::<f32>::zeros((5, 0));
        let e = predict_sampled(&heads(0.0), x.view(), none.view(), None, 10, 0).unwrap_err();
        assert!(e.message().contains("no dropout"), "{}", e.message());
        let e = predict_sampled(&heads(0.2), x.view(), none.view(), None, 0, 0).unwrap_err();
        assert!(e.message().contains("at least 1"), "{}", e.message());
    }
}
