//! Named parameters, and helpers over lists of them (freezing, zeroing, snapshots, loading).
//!
//! Every trainable tensor in `nn` is a [`Param`] that carries its full hierarchical name (for
//! example `encoder.0.linear.weight`). Layers hand out `Vec<&Param>` / `Vec<&mut Param>` in a
//! stable order, so a model is saved by iterating [`crate::nn::Layer::params`] and writing
//! `(name, shape, data)` triples, and loaded back by name with [`load_values`].

use std::collections::{BTreeMap, HashMap};

use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Ix1, Ix2, IxDyn};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Named tensors, as a bundle stores a network's parameters: parameter path → value.
pub type Weights = BTreeMap<String, ArrayD<f32>>;

/// One learnable tensor: its value, the gradient accumulated by backward passes, and whether
/// optimizers may change it.
///
/// `value` and `grad` always have the same shape. Layers keep their parameters as
/// dynamic-dimensional arrays so that every parameter has the same type; the `*2`/`*1`
/// accessors give typed views.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// Full hierarchical name, `.`-separated (e.g. `encoder.0.linear.weight`).
    pub name: String,
    /// Current value.
    pub value: ArrayD<f32>,
    /// Accumulated gradient of the loss with respect to `value` (same shape).
    pub grad: ArrayD<f32>,
    /// Whether optimizers update this parameter. Backward passes skip the gradient
    /// computation of frozen parameters (their `grad` stays as it was, normally zero).
    pub trainable: bool,
}

impl Param {
    /// A trainable parameter with the given value and a zero gradient.
    pub fn new(name: impl Into<String>, value: ArrayD<f32>) -> Param {
        let grad = ArrayD::zeros(value.raw_dim());
        Param {
            name: name.into(),
            value,
            grad,
            trainable: true,
        }
    }

    /// A trainable parameter of `shape` filled with zeros.
    pub fn zeros(name: impl Into<String>, shape: &[usize]) -> Param {
        Param::new(name, ArrayD::zeros(IxDyn(shape)))
    }

    /// The shape of the value (and of the gradient).
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// Number of scalar entries.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Whether the parameter has no entries.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// The value as a matrix.
    ///
    /// # Panics
    /// If the parameter is not 2-D (a layer invariant).
    pub fn value2(&self) -> ArrayView2<'_, f32> {
        self.value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("parameter is 2-D")
    }

    /// The gradient as a mutable matrix.
    ///
    /// # Panics
    /// If the parameter is not 2-D.
    pub fn grad2_mut(&mut self) -> ArrayViewMut2<'_, f32> {
        self.grad
            .view_mut()
            .into_dimensionality::<Ix2>()
            .expect("parameter is 2-D")
    }

    /// The value as a vector.
    ///
    /// # Panics
    /// If the parameter is not 1-D.
    pub fn value1(&self) -> ArrayView1<'_, f32> {
        self.value
            .view()
            .into_dimensionality::<Ix1>()
            .expect("parameter is 1-D")
    }

    /// The gradient as a mutable vector.
    ///
    /// # Panics
    /// If the parameter is not 1-D.
    pub fn grad1_mut(&mut self) -> ArrayViewMut1<'_, f32> {
        self.grad
            .view_mut()
            .into_dimensionality::<Ix1>()
            .expect("parameter is 1-D")
    }

    /// Replaces the value, checking the shape. The gradient is left as it is.
    pub fn set_value(&mut self, value: ArrayD<f32>) -> Result<()> {
        if value.shape() != self.value.shape() {
            return Err(Error::invalid(format!(
                "parameter {}: expected shape {:?}, got {:?}",
                self.name,
                self.value.shape(),
                value.shape()
            )));
        }
        self.value = value;
        Ok(())
    }
}

/// Joins a parent path and a child name with `.`, leaving out empty parts.
pub fn join_name(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (_, true) => parent.to_string(),
        _ => format!("{parent}.{child}"),
    }
}

/// Whether `name` lies in the subtree `prefix`: equal to it or below it at a `.` boundary
/// (`encoder.1` matches `encoder.1.linear.weight` but not `encoder.10.linear.weight`). The
/// empty prefix matches everything.
pub fn name_in_subtree(name: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    match name.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.'),
        None => false,
    }
}

/// Sets `trainable` on every parameter in the subtree `prefix` (see [`name_in_subtree`]) and
/// returns how many parameters matched.
pub fn set_trainable<'a>(
    params: impl IntoIterator<Item = &'a mut Param>,
    prefix: &str,
    trainable: bool,
) -> usize {
    let mut n = 0;
    for p in params {
        if name_in_subtree(&p.name, prefix) {
            p.trainable = trainable;
            n += 1;
        }
    }
    n
}

/// Zeroes the gradient of every parameter.
pub fn zero_grad<'a>(params: impl IntoIterator<Item = &'a mut Param>) {
    for p in params {
        p.zero_grad();
    }
}

/// Total number of scalar entries.
pub fn count<'a>(params: impl IntoIterator<Item = &'a Param>) -> usize {
    params.into_iter().map(Param::len).sum()
}

/// Checks that names are unique; returns the first duplicate as an error.
pub fn check_unique_names<'a>(params: impl IntoIterator<Item = &'a Param>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for p in params {
        if !seen.insert(p.name.as_str()) {
            return Err(Error::invalid(format!(
                "duplicate parameter name {}",
                p.name
            )));
        }
    }
    Ok(())
}

/// Copies values into `params` by name from `values` (for example tensors read from a
/// safetensors file). Every parameter must be present with the same shape; with `strict`, every
/// entry of `values` must also be used. On error nothing is changed.
pub fn load_values(
    params: &mut [&mut Param],
    values: &HashMap<String, ArrayD<f32>>,
    strict: bool,
) -> Result<()> {
    for p in params.iter() {
        match values.get(&p.name) {
            None => return Err(Error::format(format!("missing parameter {}", p.name))),
            Some(v) if v.shape() != p.shape() => {
                return Err(Error::format(format!(
                    "parameter {}: stored shape {:?}, model expects {:?}",
                    p.name,
                    v.shape(),
                    p.shape()
                )))
            }
            Some(_) => {}
        }
    }
    if strict && values.len() != params.len() {
        let known: std::collections::HashSet<&str> =
            params.iter().map(|p| p.name.as_str()).collect();
        let mut extra: Vec<&str> = values
            .keys()
            .map(String::as_str)
            .filter(|k| !known.contains(k))
            .collect();
        extra.sort_unstable();
        return Err(Error::format(format!(
            "unexpected parameters: {}",
            extra.join(", ")
        )));
    }
    for p in params.iter_mut() {
        p.value.assign(&values[&p.name]);
    }
    Ok(())
}

/// Adds the gradients of `src` into those of `dst`, matched by position (names and shapes must
/// agree) — for summing the gradients of data-parallel replicas into the master copy.
pub fn accumulate_grads(dst: &mut [&mut Param], src: &[&Param]) -> Result<()> {
    check_same_layout(dst.iter().map(|p| &**p), src.iter().copied())?;
    for (d, s) in dst.iter_mut().zip(src) {
        d.grad += &s.grad;
    }
    Ok(())
}

/// Copies the values of `src` into `dst`, matched by position (names and shapes must agree) —
/// for broadcasting updated weights to data-parallel replicas.
pub fn copy_values(dst: &mut [&mut Param], src: &[&Param]) -> Result<()> {
    check_same_layout(dst.iter().map(|p| &**p), src.iter().copied())?;
    for (d, s) in dst.iter_mut().zip(src) {
        d.value.assign(&s.value);
    }
    Ok(())
}

fn check_same_layout<'a>(
    a: impl ExactSizeIterator<Item = &'a Param>,
    b: impl ExactSizeIterator<Item = &'a Param>,
) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::invalid(format!(
            "parameter lists differ in length ({} vs {})",
            a.len(),
            b.len()
        )));
    }
    for (x, y) in a.zip(b) {
        if x.name != y.name || x.shape() != y.shape() {
            return Err(Error::invalid(format!(
                "parameter mismatch: {} {:?} vs {} {:?}",
                x.name,
                x.shape(),
                y.name,
                y.shape()
            )));
        }
    }
    Ok(())
}

/// A copy of parameter values by name (for early stopping's restore-best, or checkpoints).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamSnapshot {
    /// `(name, shape, row-major data)` for each parameter, in enumeration order.
    pub entries: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl ParamSnapshot {
    /// Copies the current values.
    pub fn capture<'a>(params: impl IntoIterator<Item = &'a Param>) -> ParamSnapshot {
        ParamSnapshot {
            entries: params
                .into_iter()
                .map(|p| {
                    (
                        p.name.clone(),
                        p.shape().to_vec(),
                        p.value.iter().copied().collect(),
                    )
                })
                .collect(),
        }
    }

    /// Writes the stored values back into `params` by name. Every parameter must be in the
    /// snapshot with the same shape; on error nothing is changed.
    pub fn restore(&self, params: &mut [&mut Param]) -> Result<()> {
        let map: HashMap<String, ArrayD<f32>> = self
            .entries
            .iter()
            .map(|(n, s, d)| {
                let a = ArrayD::from_shape_vec(IxDyn(s), d.clone())
                    .map_err(|e| Error::format(format!("snapshot entry {n}: {e}")))?;
                Ok((n.clone(), a))
            })
            .collect::<Result<_>>()?;
        load_values(params, &map, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_matching_respects_segments() {
        assert!(name_in_subtree("encoder.1.linear.weight", "encoder.1"));
        assert!(!name_in_subtree("encoder.10.linear.weight", "encoder.1"));
        assert!(name_in_subtree("encoder", "encoder"));
        assert!(name_in_subtree("x", ""));
        assert!(!name_in_subtree("enc", "encoder"));
        assert_eq!(join_name("", "weight"), "weight");
        assert_eq!(join_name("a.b", "weight"), "a.b.weight");
    }

    #[test]
    fn load_values_checks_names_and_shapes() {
        let mut a = Param::zeros("a", &[2]);
        let mut b = Param::zeros("b", &[1, 2]);
        let mut map = HashMap::new();
        map.insert("a".to_string(), ArrayD::from_elem(IxDyn(&[2]), 1.0));
        {
            let mut ps = vec![&mut a, &mut b];
            assert!(load_values(&mut ps, &map, false).is_err());
        }
        assert_eq!(a.value[[0]], 0.0, "nothing changed on error");
        map.insert("b".to_string(), ArrayD::from_elem(IxDyn(&[2, 1]), 2.0));
        assert!(load_values(&mut [&mut a, &mut b], &map, false).is_err());
        map.insert("b".to_string(), ArrayD::from_elem(IxDyn(&[1, 2]), 2.0));
        map.insert("c".to_string(), ArrayD::from_elem(IxDyn(&[1]), 2.0));
        let err = load_values(&mut [&mut a, &mut b], &map, true).unwrap_err();
        assert!(err.message().contains('c'));
        load_values(&mut [&mut a, &mut b], &map, false).unwrap();
        assert_eq!(b.value[[0, 1]], 2.0);
        assert!(check_unique_names([&a, &b]).is_ok());
        assert!(check_unique_names([&a, &a]).is_err());
    }

    #[test]
    fn replica_helpers() {
        let mut a = Param::zeros("w", &[2]);
        let mut b = Param::new("w", ArrayD::from_elem(IxDyn(&[2]), 3.0));
        b.grad.fill(0.5);
        accumulate_grads(&mut [&mut a], &[&b]).unwrap();
        accumulate_grads(&mut [&mut a], &[&b]).unwrap();
        assert_eq!(a.grad[[1]], 1.0);
        copy_values(&mut [&mut a], &[&b]).unwrap();
        assert_eq!(a.value[[0]], 3.0);
        let c = Param::zeros("v", &[2]);
        assert!(copy_values(&mut [&mut a], &[&c]).is_err());
        assert!(accumulate_grads(&mut [&mut a], &[]).is_err());
    }
}
