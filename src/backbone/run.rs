//! Running texts through the graph: tokenize, plan length-sorted batches, run each padded batch
//! on a pooled session, read and pool its outputs.

use std::borrow::Cow;

use ndarray::{Array2, ArrayView3};
use ort::session::SessionInputValue;
use ort::value::Tensor;

use super::pool::Worker;
use super::session::Output;
use super::{l2_normalize, plan, Backbone, Device, EncodedBatch};
use crate::error::{Error, ErrorKind, Result};

impl Backbone {
    /// Tokenizes `texts` (no-op when empty), plans length-sorted batches and runs each through
    /// the graph, handing `each` the batch's text indices, pooled rows and (with `tokens`)
    /// per-token vectors.
    #[allow(clippy::type_complexity)]
    pub(super) fn run_batches(
        &self,
        texts: &[&str],
        tokens: bool,
        mut each: impl FnMut(&[usize], Array2<f32>, Option<Vec<Vec<half::f16>>>),
    ) -> Result<()> {
        if texts.is_empty() {
            return Ok(());
        }
        // On a GPU the graph runs faster than one core tokenizes (measured on an H200: long
        // texts plateaued at ~2,000/s, the sequential tokenizer's rate), and ONNX Runtime's own
        // threads are idle while it waits, so tokenizing fans out over every core there.
        let ids = match self.options.device {
            Device::Cpu => self.tokenizer.encode(texts)?,
            Device::Cuda { .. } => self.tokenizer.encode_parallel(texts)?,
        };
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        for chunk in plan::plan_batches(
            &lengths,
            self.options.batch_size,
            self.options.max_batch_tokens,
            self.run_cost,
        ) {
            let rows: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            let batch = self.tokenizer.pad(&rows);
            let (emb, toks) = self.run_batch(&batch, tokens)?;
            each(&chunk, emb, toks);
        }
        Ok(())
    }

    /// Runs one padded batch through the graph and pools it; with `tokens`, also returns each
    /// row's valid token vectors (unpadded, f16).
    #[allow(clippy::type_complexity)]
    fn run_batch(
        &self,
        batch: &EncodedBatch,
        tokens: bool,
    ) -> Result<(Array2<f32>, Option<Vec<Vec<half::f16>>>)> {
        let shape = vec![batch.rows as i64, batch.width as i64];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(3);
        let mut add = |name: &'static str, data: Vec<i64>| -> Result<()> {
            let value: SessionInputValue<'_> = if self.io.int32_ids {
                let v: Vec<i32> = data.iter().map(|&x| x as i32).collect();
                Tensor::from_array((shape.clone(), v))
                    .map_err(|e| Error::onnx("building input tensor", e))?
                    .into()
            } else {
                Tensor::from_array((shape.clone(), data))
                    .map_err(|e| Error::onnx("building input tensor", e))?
                    .into()
            };
            inputs.push((Cow::Borrowed(name), value));
            Ok(())
        };
        add("input_ids", batch.ids.clone())?;
        add("attention_mask", batch.mask.clone())?;
        if self.io.token_type_ids {
            add("token_type_ids", vec![0; batch.ids.len()])?;
        }
        let mut worker = self.pool.acquire()?;
        let Worker {
            session,
            run_options,
            token_run_options,
        } = &mut *worker;
        let options = match (tokens, token_run_options) {
            (true, Some(o)) => o,
            (true, None) => return Err(Error::format("the graph has no per-token output")),
            (false, _) => run_options,
        };
        let outputs = session
            .run_with_options(inputs, options)
            .map_err(|e| Error::onnx("running the backbone", e))?;
        let dim = self.dim();
        let token_view = |name: &str| -> Result<Vec<f32>> {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| Error::onnx("reading the token output", e))?;
            check_shape(shape, &[batch.rows, batch.width, dim])?;
            Ok(data.to_vec())
        };
        let mut emb = match &self.io.output {
            Output::Pooled(name) => {
                let (shape, data) = outputs[name.as_str()]
                    .try_extract_tensor::<f32>()
                    .map_err(|e| Error::onnx("reading the pooled output", e))?;
                check_shape(shape, &[batch.rows, dim])?;
                Array2::from_shape_vec((batch.rows, dim), data.to_vec())
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?
            }
            Output::Tokens(name) => {
                let data = token_view(name)?;
                let view = ArrayView3::from_shape((batch.rows, batch.width, dim), &data[..])
                    .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
                self.manifest.pooling.pool_padded(view, &batch.row_masks)
            }
        };
        if self.manifest.normalize {
            l2_normalize(&mut emb);
        }
        let per_row = match (tokens, &self.io.tokens) {
            (true, Some(name)) => {
                let data = token_view(name)?;
                let per_row = batch
                    .row_masks
                    .iter()
                    .enumerate()
                    .map(|(r, mask)| {
                        // Right padding: the valid tokens are the row's first `len`.
                        // A text with no tokens at all (only possible with a tokenizer that adds no
                        // special tokens) keeps its one padding position, so no sequence is empty.
                        let len = mask.iter().filter(|&&m| m != 0).count().max(1);
                        let start = r * batch.width * dim;
                        let src = &data[start..start + len * dim];
                        let mut dst = vec![half::f16::ZERO; src.len()];
                        half::slice::HalfFloatSliceExt::convert_from_f32_slice(&mut dst[..], src);
                        dst
                    })
                    .collect();
                Some(per_row)
            }
            _ => None,
        };
        Ok((emb, per_row))
    }
}

fn check_shape(shape: &[i64], want: &[usize]) -> Result<()> {
    let ok = shape.len() == want.len() && shape.iter().zip(want).all(|(&a, &b)| a == b as i64);
    if ok {
        Ok(())
    } else {
        Err(Error::format(format!(
            "graph output has shape {shape:?}, expected {want:?} (does the manifest's dim match the graph?)"
        )))
    }
}
