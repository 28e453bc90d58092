//! Parity of the native BERT layers (`tandem::nn::bert`), loaded from the backbone's ONNX graph
//! by `tandem::onnx::bert`, with ONNX Runtime running the same graph.
//!
//! A Python helper (the cache's venv: onnx, onnxruntime, numpy) adds the embedding output and
//! every layer's output as graph outputs, runs the graph per text in ONNX Runtime and writes
//! them as `.npy`; it also runs the sentence-transformers graph for its `sentence_embedding`,
//! and writes a copy of the graph with one bias of the wrong length for the loader's errors.
//! Token ids come from tandem's own tokenizer. Needs `scripts/setup.sh` to have run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ndarray::{concatenate, s, Array2, Array3, Axis};
use ndarray_npy::read_npy;
use tandem::backbone::TextTokenizer;
use tandem::nn::bert::BertLayer;
use tandem::onnx::bert::{bert_layer_count, load_bert_layer, load_bert_layers};
use tandem::onnx::read::read;

const HIDDEN: &str = "all-MiniLM-L6-v2-hidden";
const PYTHON: &str = r#"
import json, sys
import numpy as np, onnx, onnxruntime as ort
hidden_path, st_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
ids = json.load(open(out + "/ids.json"))
m = onnx.load(hidden_path)
nodes = {n.name: n for n in m.graph.node}
names = [nodes["/embeddings/LayerNorm/LayerNormalization"].output[0]] + [
    nodes[f"/encoder/layer.{i}/output/LayerNorm/LayerNormalization"].output[0] for i in range(6)]
outputs = {o.name for o in m.graph.output}
for n in names:
    if n not in outputs:
        m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
opts = ort.SessionOptions()
opts.intra_op_num_threads = 2
hidden = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
st = ort.InferenceSession(st_path, opts, providers=["CPUExecutionProvider"])
sentence = []
for t, row in enumerate(ids):
    x = np.array([row], dtype=np.int64)
    mask = np.ones_like(x)
    outs = hidden.run(["last_hidden_state"] + names,
                      {"input_ids": x, "attention_mask": mask, "token_type_ids": np.zeros_like(x)})
    assert np.array_equal(outs[0], outs[-1])
    np.save(f"{out}/hidden_{t}.npy", np.stack([o[0] for o in outs[1:]]).astype(np.float32))
    sentence.append(st.run(["sentence_embedding"], {"input_ids": x, "attention_mask": mask})[0][0])
np.save(f"{out}/sentence.npy", np.stack(sentence).astype(np.float32))
# A graph whose layer-1 key bias is one element short, for the loader's shape error.
b = next(t for t in m.graph.initializer if t.name == "encoder.layer.1.attention.self.key.bias")
arr = onnx.numpy_helper.to_array(b)[:-1]
b.CopyFrom(onnx.numpy_helper.from_array(arr, b.name))
onnx.save(m, out + "/broken.onnx")
"#;

/// Hidden states from ONNX Runtime, per text: `[7, n, 384]` (the embeddings' output, then the
/// output of each of the 6 layers), and the sentence-transformers graph's embeddings.
struct Reference {
    /// The hidden-state graph with one bias of the wrong length.
    broken: tandem::onnx::OnnxModel,
    hidden: Vec<Array3<f32>>,
    sentence: Array2<f32>,
    texts: Vec<String>,
    fixture: Vec<Vec<f32>>,
}

/// The reference, computed once per test process.
fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(compute_reference)
}

fn compute_reference() -> Reference {
    let refs = common::reference();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let tok =
        TextTokenizer::load(&common::backbone_dir(HIDDEN).join("tokenizer.json"), 256).unwrap();
    let ids = tok.encode(&texts).unwrap();
    let dir = common::tmp("bert_layer", "reference");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ids.json"), serde_json::to_string(&ids).unwrap()).unwrap();
    std::fs::write(dir.join("reference.py"), PYTHON).unwrap();
    let python = tandem::home::cache_dir().join("venv/bin/python3");
    let out = Command::new(&python)
        .arg(dir.join("reference.py"))
        .arg(graph(HIDDEN))
        .arg(graph(tandem::home::DEFAULT_BACKBONE))
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    assert!(
        out.status.success(),
        "reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hidden: Vec<Array3<f32>> = (0..texts.len())
        .map(|t| read_npy(dir.join(format!("hidden_{t}.npy"))).unwrap())
        .collect();
    for (h, ids) in hidden.iter().zip(&ids) {
        assert_eq!(h.dim(), (7, ids.len(), 384));
    }
    let r = Reference {
        sentence: read_npy(dir.join("sentence.npy")).unwrap(),
        broken: read(&dir.join("broken.onnx")).unwrap(),
        hidden,
        texts: refs.iter().map(|r| r.text.clone()).collect(),
        fixture: refs.into_iter().map(|r| r.embedding).collect(),
    };
    std::fs::remove_dir_all(&dir).unwrap();
    r
}

fn graph(backbone: &str) -> PathBuf {
    common::backbone_dir(backbone).join("model.onnx")
}

/// The texts `which` packed: the states after `stage` (0: embeddings, i: layer i − 1) and the
/// offsets.
fn packed(r: &Reference, which: &[usize], stage: usize) -> (Array2<f32>, Vec<usize>) {
    let views: Vec<_> = which
        .iter()
        .map(|&t| r.hidden[t].index_axis(Axis(0), stage))
        .collect();
    let mut offsets = vec![0];
    for v in &views {
        offsets.push(offsets.last().unwrap() + v.nrows());
    }
    (concatenate(Axis(0), &views).unwrap(), offsets)
}

/// Max |a − b| over everything and the smallest per-row cosine.
fn diff(a: &Array2<f32>, b: &Array2<f32>) -> (f32, f32) {
    assert_eq!(a.dim(), b.dim());
    let max = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    let cos = a
        .rows()
        .into_iter()
        .zip(b.rows())
        .map(|(x, y)| common::cosine(x.as_slice().unwrap(), y.as_slice().unwrap()))
        .fold(1.0, f32::min);
    (max, cos)
}

fn layers(path: &Path) -> Vec<BertLayer> {
    load_bert_layers(&read(path).unwrap(), 12).unwrap()
}

#[test]
fn native_layers_reproduce_onnx_runtime() {
    let r = reference();
    let layers = layers(&graph(HIDDEN));
    assert_eq!(layers.len(), 6);
    let cfg = layers[0].config();
    assert_eq!((cfg.hidden, cfg.heads, cfg.intermediate), (384, 12, 1536));
    assert!(
        (cfg.layer_norm_eps - 1e-12).abs() < 1e-18,
        "{}",
        cfg.layer_norm_eps
    );

    // One layer at a time from ONNX Runtime's input to it: a short batch with the 2-token text,
    // a 3-token one, a 33-token one and a 256-token one, packed.
    let few = [35, 5, 17, 36, 0];
    for (i, layer) in layers.iter().enumerate() {
        let (x, offsets) = packed(r, &few, i);
        let (want, _) = packed(r, &few, i + 1);
        let got = layer.forward_inference(x.view(), &offsets);
        let (max, cos) = diff(&got, &want);
        eprintln!("layer {i}: max |diff| {max:.2e}, min token cosine {cos:.8}");
        assert!(max <= 1e-4, "layer {i}: max |diff| {max}");
        assert!(cos >= 0.99999, "layer {i}: cosine {cos}");
    }
    // The training forward (another matmul path) matches too, and backward runs at full size.
    let mut top = layers[5].clone();
    let (x, offsets) = packed(r, &few, 5);
    let (want, _) = packed(r, &few, 6);
    let y = top.forward(x.view(), &offsets, true);
    let (max, cos) = diff(&y, &want);
    eprintln!("layer 5, training forward: max |diff| {max:.2e}, min token cosine {cos:.8}");
    assert!(
        max <= 1e-4 && cos >= 0.99999,
        "training forward: {max}, {cos}"
    );
    let dx = top.backward(y.view());
    assert_eq!(dx.dim(), x.dim());
    assert!(dx.iter().all(|v| v.is_finite()));
    assert!(top
        .params()
        .iter()
        .all(|p| p.grad.iter().any(|&g| g != 0.0)));
}

#[test]
fn six_native_layers_from_the_embeddings_give_the_graphs_outputs() {
    let r = reference();
    let layers = layers(&graph(HIDDEN));
    let all: Vec<usize> = (0..r.texts.len()).collect();
    let (mut h, offsets) = packed(r, &all, 0);
    for layer in &layers {
        h = layer.forward_inference(h.view(), &offsets);
    }
    let (want, _) = packed(r, &all, 6);
    let (max, cos) = diff(&h, &want);
    eprintln!(
        "last hidden state after 6 native layers: max |diff| {max:.2e}, min token cosine {cos:.8}"
    );
    assert!(max <= 1e-4, "max |diff| {max}");
    assert!(cos >= 0.99999, "cosine {cos}");

    // Mean pooling and L2 normalisation: the sentence embedding.
    let mut worst_graph = 1.0f32;
    let mut worst_fixture = 1.0f32;
    for (t, w) in offsets.windows(2).enumerate() {
        let mut e = h.slice(s![w[0]..w[1], ..]).mean_axis(Axis(0)).unwrap();
        let norm = e.dot(&e).sqrt();
        e /= norm;
        let e = e.to_vec();
        let c_graph = common::cosine(&e, r.sentence.row(t).as_slice().unwrap());
        let c_fixture = common::cosine(&e, &r.fixture[t]);
        assert!(
            c_graph >= 0.99999,
            "{:?}: cosine {c_graph} with the graph",
            r.texts[t]
        );
        assert!(
            c_fixture >= 0.9999,
            "{:?}: cosine {c_fixture} with the fixture",
            r.texts[t]
        );
        worst_graph = worst_graph.min(c_graph);
        worst_fixture = worst_fixture.min(c_fixture);
    }
    eprintln!(
        "sentence embeddings of {} texts: min cosine {worst_graph:.8} with the graph, \
         {worst_fixture:.8} with sentence-transformers",
        r.texts.len()
    );
}

#[test]
fn loader_reads_both_exports_alike_and_explains_what_is_wrong() {
    let r = reference();
    let hidden = read(&graph(HIDDEN)).unwrap();
    let st = read(&graph(tandem::home::DEFAULT_BACKBONE)).unwrap();
    assert_eq!(bert_layer_count(&hidden), 6);
    assert_eq!(bert_layer_count(&st), 6);
    // The sentence-transformers export names things differently (`/0/encoder/…`,
    // `0.model.encoder…`) but holds the same weights.
    for i in [0, 5] {
        let (a, b) = (
            load_bert_layer(&hidden, i, 12).unwrap(),
            load_bert_layer(&st, i, 12).unwrap(),
        );
        assert_eq!(a.name(), format!("encoder.layer.{i}"));
        for (p, q) in a.params().iter().zip(b.params()) {
            assert_eq!(p.name, q.name);
            assert_eq!(p.value, q.value, "{}", p.name);
        }
    }
    // Layers differ from each other (the loader does not read one layer six times).
    let (l0, l1) = (
        load_bert_layer(&hidden, 0, 12).unwrap(),
        load_bert_layer(&hidden, 1, 12).unwrap(),
    );
    assert!(l0
        .params()
        .iter()
        .zip(l1.params())
        .all(|(p, q)| p.value != q.value));

    let e = load_bert_layer(&hidden, 6, 12).unwrap_err().to_string();
    assert!(
        e.contains("/encoder/layer.6/attention/self/query/MatMul"),
        "{e}"
    );
    assert!(load_bert_layer(&hidden, 0, 5).is_err());
    load_bert_layer(&r.broken, 0, 12).unwrap();
    let e = load_bert_layer(&r.broken, 1, 12).unwrap_err().to_string();
    assert!(
        e.contains("attention.self.key.bias") && e.contains("383"),
        "{e}"
    );
}

#[test]
fn backward_of_a_pretrained_layer_matches_finite_differences() {
    // Directional derivatives of Σ r ⊙ layer(x) on the real layer 5 and a real 3-token text
    // (the unit tests check every entry on small random layers; this checks BERT's sizes and
    // ε = 1e-12 with real activations), along the input and along the query and intermediate
    // weights.
    let r = reference();
    let mut layer = layers(&graph(HIDDEN)).remove(5);
    let (x, offsets) = packed(r, &[5], 5);
    let x = x.mapv(f64::from);
    let seeded = |seed: u64, n: usize| -> Vec<f64> {
        // A small deterministic generator: the test needs no quality, only variety.
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
            })
            .collect()
    };
    let rr = Array2::from_shape_vec(x.dim(), seeded(1, x.len()))
        .unwrap()
        .mapv(|v| v as f32);
    let f = |l: &mut BertLayer, x: &Array2<f64>| -> f64 {
        let y = l.forward_inference(x.mapv(|v| v as f32).view(), &offsets);
        y.iter().zip(&rr).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    for p in layer.params_mut() {
        p.zero_grad();
    }
    layer.forward(x.mapv(|v| v as f32).view(), &offsets, true);
    let dx = layer.backward(rr.view());
    let h = 1e-2;
    // Input direction.
    let u = Array2::from_shape_vec(x.dim(), seeded(2, x.len())).unwrap();
    let analytic: f64 = dx.iter().zip(&u).map(|(&g, &u)| g as f64 * u).sum();
    let numeric = (f(&mut layer, &(&x + &(&u * h))) - f(&mut layer, &(&x - &(&u * h)))) / (2.0 * h);
    eprintln!("input direction: analytic {analytic:.6}, numeric {numeric:.6}");
    assert!((analytic - numeric).abs() <= 1e-2 * analytic.abs().max(numeric.abs()) + 1e-3);
    // Parameter directions (h is relative to the weights' scale of ~0.05).
    for (pi, name) in [(0, "query.weight"), (10, "intermediate.dense.weight")] {
        assert!(layer.params()[pi].name.ends_with(name));
        let u = seeded(3 + pi as u64, layer.params()[pi].len());
        let g = layer.params()[pi].grad.clone();
        let analytic: f64 = g.iter().zip(&u).map(|(&g, &u)| g as f64 * u).sum();
        let h = 1e-3;
        let orig = layer.params()[pi].value.clone();
        let shifted = |l: &mut BertLayer, sign: f64| {
            let mut v = orig.clone();
            for (v, &u) in v.iter_mut().zip(&u) {
                *v += (sign * h * u) as f32;
            }
            l.params_mut()[pi].value = v;
            let out = f(l, &x);
            l.params_mut()[pi].value = orig.clone();
            out
        };
        let numeric = (shifted(&mut layer, 1.0) - shifted(&mut layer, -1.0)) / (2.0 * h);
        eprintln!("{name} direction: analytic {analytic:.6}, numeric {numeric:.6}");
        assert!(
            (analytic - numeric).abs() <= 2e-2 * analytic.abs().max(numeric.abs()) + 1e-2,
            "{name}: analytic {analytic}, numeric {numeric}"
        );
    }
}
