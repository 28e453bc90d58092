//! Containers: [`Sequential`], [`Residual`] and the [`Module`] enum they hold.

use ndarray::{Array2, ArrayView2};

use super::activation::{Gelu, Relu};
use super::dropout::Dropout;
use super::layer::Layer;
use super::linear::Linear;
use super::norm::LayerNorm;
use super::param::{join_name, Param};

/// Any built-in layer; what containers hold. A closed enum (rather than `Box<dyn Layer>`) keeps
/// models `Clone + Send + Sync + Debug` without extra bounds.
#[derive(Debug, Clone)]
pub enum Module {
    /// [`Linear`].
    Linear(Linear),
    /// [`LayerNorm`].
    LayerNorm(LayerNorm),
    /// [`Relu`].
    Relu(Relu),
    /// [`Gelu`].
    Gelu(Gelu),
    /// [`Dropout`].
    Dropout(Dropout),
    /// [`Residual`].
    Residual(Residual),
    /// [`Sequential`].
    Sequential(Sequential),
}

macro_rules! delegate {
    ($self:ident, $l:ident => $e:expr) => {
        match $self {
            Module::Linear($l) => $e,
            Module::LayerNorm($l) => $e,
            Module::Relu($l) => $e,
            Module::Gelu($l) => $e,
            Module::Dropout($l) => $e,
            Module::Residual($l) => $e,
            Module::Sequential($l) => $e,
        }
    };
}

impl Module {
    /// Calls `f` on every [`Dropout`] in this subtree (e.g. to reseed a replica).
    pub fn for_each_dropout(&mut self, f: &mut dyn FnMut(&mut Dropout)) {
        match self {
            Module::Dropout(d) => f(d),
            Module::Residual(r) => r.inner.for_each_dropout(f),
            Module::Sequential(s) => s.for_each_dropout(f),
            _ => {}
        }
    }
}

impl Layer for Module {
    fn forward(&mut self, x: ArrayView2<'_, f32>, train: bool) -> Array2<f32> {
        delegate!(self, l => l.forward(x, train))
    }
    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        delegate!(self, l => l.backward(grad_out))
    }
    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        delegate!(self, l => l.backward_params_only(grad_out))
    }
    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        delegate!(self, l => l.forward_inference(x))
    }
    fn params(&self) -> Vec<&Param> {
        delegate!(self, l => l.params())
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        delegate!(self, l => l.params_mut())
    }
    fn name(&self) -> &str {
        delegate!(self, l => l.name())
    }
    fn set_name(&mut self, name: &str) {
        delegate!(self, l => l.set_name(name))
    }
    fn clear_cache(&mut self) {
        delegate!(self, l => l.clear_cache())
    }
}

macro_rules! module_from {
    ($($t:ident),*) => {
        $(impl From<$t> for Module {
            fn from(l: $t) -> Module {
                Module::$t(l)
            }
        })*
    };
}
module_from!(Linear, LayerNorm, Relu, Gelu, Dropout, Residual, Sequential);

/// Layers applied in order. Each child has a local name (its index unless given one); its full
/// name is `{sequential name}.{local name}`.
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    name: String,
    children: Vec<(String, Module)>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer named by its index.
    pub fn push(&mut self, layer: impl Into<Module>) {
        let local = self.children.len().to_string();
        self.push_named(local, layer);
    }

    /// Appends a layer with a local name (which should be unique among the children).
    pub fn push_named(&mut self, local: impl Into<String>, layer: impl Into<Module>) {
        let local = local.into();
        let mut layer = layer.into();
        layer.set_name(&join_name(&self.name, &local));
        self.children.push((local, layer));
    }

    /// Builder form of [`Sequential::push`].
    pub fn with(mut self, layer: impl Into<Module>) -> Self {
        self.push(layer);
        self
    }

    /// Builder form of [`Sequential::push_named`].
    pub fn with_named(mut self, local: impl Into<String>, layer: impl Into<Module>) -> Self {
        self.push_named(local, layer);
        self
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children (the container is then the identity).
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The children with their local names.
    pub fn children(&self) -> impl Iterator<Item = (&str, &Module)> {
        self.children.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// The children, mutably.
    pub fn children_mut(&mut self) -> impl Iterator<Item = (&str, &mut Module)> {
        self.children.iter_mut().map(|(n, m)| (n.as_str(), m))
    }

    /// Calls `f` on every [`Dropout`] in the subtree.
    pub fn for_each_dropout(&mut self, f: &mut dyn FnMut(&mut Dropout)) {
        for (_, c) in &mut self.children {
            c.for_each_dropout(f);
        }
    }
}

impl Layer for Sequential {
    fn forward(&mut self, x: ArrayView2<'_, f32>, train: bool) -> Array2<f32> {
        let mut iter = self.children.iter_mut();
        let Some((_, first)) = iter.next() else {
            return x.to_owned();
        };
        let mut h = first.forward(x, train);
        for (_, c) in iter {
            h = c.forward(h.view(), train);
        }
        h
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut g = grad_out.to_owned();
        for (_, c) in self.children.iter_mut().rev() {
            g = c.backward(g.view());
        }
        g
    }

    /// Backpropagates only as far as the first child with a trainable parameter, and calls
    /// that child's `backward_params_only`: frozen leading layers cost nothing.
    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        let Some(first) = self
            .children
            .iter()
            .position(|(_, c)| c.has_trainable_params())
        else {
            return;
        };
        let mut g = grad_out.to_owned();
        for (_, c) in self.children[first + 1..].iter_mut().rev() {
            g = c.backward(g.view());
        }
        self.children[first].1.backward_params_only(g.view());
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut iter = self.children.iter();
        let Some((_, first)) = iter.next() else {
            return x.to_owned();
        };
        let mut h = first.forward_inference(x);
        for (_, c) in iter {
            h = c.forward_inference(h.view());
        }
        h
    }

    fn params(&self) -> Vec<&Param> {
        self.children.iter().flat_map(|(_, c)| c.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.children
            .iter_mut()
            .flat_map(|(_, c)| c.params_mut())
            .collect()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        for (local, c) in &mut self.children {
            c.set_name(&join_name(name, local));
        }
    }

    fn clear_cache(&mut self) {
        for (_, c) in &mut self.children {
            c.clear_cache();
        }
    }
}

/// A residual block y = x + f(x), where f is a [`Sequential`] that must preserve the width.
/// The block is transparent for naming: f's children are named directly under the block's
/// name (`{name}.{child}`), so wrapping a block in a residual does not rename its parameters.
#[derive(Debug, Clone, Default)]
pub struct Residual {
    name: String,
    inner: Sequential,
}

impl Residual {
    /// Wraps `inner`.
    pub fn new(inner: Sequential) -> Self {
        let mut r = Residual {
            name: String::new(),
            inner,
        };
        let name = r.inner.name().to_string();
        r.set_name(&name);
        r
    }

    /// The wrapped function f.
    pub fn inner(&self) -> &Sequential {
        &self.inner
    }

    /// The wrapped function f, mutably.
    pub fn inner_mut(&mut self) -> &mut Sequential {
        &mut self.inner
    }
}

impl Layer for Residual {
    fn forward(&mut self, x: ArrayView2<'_, f32>, train: bool) -> Array2<f32> {
        let mut y = self.inner.forward(x, train);
        assert_eq!(
            y.dim(),
            x.dim(),
            "Residual {:?}: f(x) changes the shape",
            self.name
        );
        y += &x;
        y
    }

    fn backward(&mut self, grad_out: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut dx = self.inner.backward(grad_out);
        dx += &grad_out;
        dx
    }

    fn backward_params_only(&mut self, grad_out: ArrayView2<'_, f32>) {
        self.inner.backward_params_only(grad_out);
    }

    fn forward_inference(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        let mut y = self.inner.forward_inference(x);
        assert_eq!(
            y.dim(),
            x.dim(),
            "Residual {:?}: f(x) changes the shape",
            self.name
        );
        y += &x;
        y
    }

    fn params(&self) -> Vec<&Param> {
        self.inner.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param> {
        self.inner.params_mut()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
        self.inner.set_name(name);
    }

    fn clear_cache(&mut self) {
        self.inner.clear_cache();
    }
}
