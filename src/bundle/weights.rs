//! Named tensors in safetensors, stored as f32 or f16 (through `half`) and always read as f32.

use std::path::Path;

use half::f16;
use ndarray::ArrayD;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

pub use crate::nn::Weights;

/// Writes `weights` to `path`, as f16 when `f16` is set.
pub fn write_weights(path: &Path, weights: &Weights, f16_weights: bool) -> Result<()> {
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(weights.len());
    for (name, a) in weights {
        if a.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "tensor `{name}` has NaN or infinite values"
            )));
        }
        let data: Vec<u8> = if f16_weights {
            a.iter()
                .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                .collect()
        } else {
            a.iter().flat_map(|&x| x.to_le_bytes()).collect()
        };
        bytes.push((name.clone(), a.shape().to_vec(), data));
    }
    let dtype = if f16_weights { Dtype::F16 } else { Dtype::F32 };
    let views = bytes
        .iter()
        .map(|(n, s, d)| {
            TensorView::new(dtype, s.clone(), d)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::invalid(format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| Error::new(crate::ErrorKind::Io, format!("{}: {e}", path.display())))
}

/// Reads every tensor of `path` as f32 (at most [`crate::files::BUNDLE_WEIGHTS`] bytes).
pub fn read_weights(path: &Path) -> Result<Weights> {
    let bytes = crate::files::read(path, crate::files::BUNDLE_WEIGHTS)?;
    parse_weights(&bytes).map_err(|e| Error::format(format!("{}: {}", path.display(), e.message())))
}

/// Every tensor of a safetensors file's bytes, as f32. Untrusted input: any dtype but F32 and
/// F16, a malformed header, or a NaN or infinite value is a [`Format`](crate::ErrorKind::Format)
/// error.
pub fn parse_weights(bytes: &[u8]) -> Result<Weights> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::format(e.to_string()))?;
    let mut out = Weights::new();
    for name in st.names() {
        let t = st.tensor(name).map_err(|e| Error::format(e.to_string()))?;
        let data: Vec<f32> = match t.dtype() {
            Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F16 => t
                .data()
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::format(format!(
                    "tensor `{name}` has unsupported dtype {other:?}"
                )))
            }
        };
        if data.iter().any(|x| !x.is_finite()) {
            return Err(Error::format(format!(
                "tensor `{name}` has NaN or infinite values"
            )));
        }
        let a = ArrayD::from_shape_vec(t.shape().to_vec(), data)
            .map_err(|e| Error::format(format!("tensor `{name}`: {e}")))?;
        out.insert(name.to_string(), a);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn f32_round_trips_exactly_and_f16_closely() {
        let dir = std::env::temp_dir().join(format!("tandem-weights-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Weights::new();
        w.insert(
            "a.weight".into(),
            ArrayD::from_shape_fn(IxDyn(&[2, 3]), |i| (i[0] * 3 + i[1]) as f32 * 0.1 - 0.2),
        );
        w.insert("a.bias".into(), ArrayD::from_elem(IxDyn(&[3]), 1.5));
        write_weights(&dir.join("f32.st"), &w, false).unwrap();
        assert_eq!(read_weights(&dir.join("f32.st")).unwrap(), w);
        write_weights(&dir.join("f16.st"), &w, true).unwrap();
        let r = read_weights(&dir.join("f16.st")).unwrap();
        for (k, a) in &w {
            for (x, y) in a.iter().zip(r[k].iter()) {
                assert!((x - y).abs() < 1e-3, "{k}: {x} vs {y}");
            }
        }
        let mut bad = w.clone();
        bad.insert("nan".into(), ArrayD::from_elem(IxDyn(&[1]), f32::NAN));
        assert!(write_weights(&dir.join("bad.st"), &bad, false).is_err());
        std::fs::write(dir.join("junk.st"), b"junk").unwrap();
        assert_eq!(
            read_weights(&dir.join("junk.st")).unwrap_err().kind(),
            crate::ErrorKind::Format
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
