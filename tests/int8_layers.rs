//! Fine-tuned layers in the int8 graph (`onnx::quant`): re-quantizing the pretrained layers
//! reproduces the int8 graph that ONNX Runtime's quantizer wrote at setup, bit for bit (an
//! independent implementation of the same quantization); fine-tuned layers written into it
//! serve through ONNX Runtime as close to the fine-tuned fp32 model as the stock int8 graph is
//! to the stock fp32 one. Needs `scripts/setup.sh`.

mod common;

use tandem::onnx::bert::load_bert_layers;
use tandem::onnx::quant::{int8_layer_count, quantize_columns, with_layers_int8, Int8Range};
use tandem::onnx::read::{read, tensor_to_f32};
use tandem::onnx::split::SplitBackbone;
use tandem::onnx::tuned::TunedBackbone;
use tandem::{Backbone, BackboneOptions, ErrorKind, Variant};

/// An int8 tensor's values, stored as raw bytes or (small ones, by the quantizer) as int32s.
fn int8s(t: &tandem::onnx::proto::TensorProto) -> Vec<i8> {
    if t.raw_data.is_empty() {
        t.int32_data.iter().map(|&v| v as i8).collect()
    } else {
        t.raw_data.iter().map(|&v| v as i8).collect()
    }
}

#[test]
fn requantized_pretrained_layers_reproduce_the_int8_graph() {
    let backbone = common::load(Variant::Fp32);
    let fp32 = read(&backbone.dir().join("model.onnx")).unwrap();
    let int8 = read(&backbone.dir().join("model.int8.onnx")).unwrap();
    let layers = load_bert_layers(&fp32, 12).unwrap();
    assert_eq!(int8_layer_count(&int8), layers.len());
    let out = with_layers_int8(&int8, 0, &layers).unwrap();
    let (old, new) = (int8.graph(), out.graph.as_ref().unwrap());
    assert_eq!(old.node.len(), new.node.len());
    let old_inits = tandem::onnx::read::initializers(old);
    let new_inits = tandem::onnx::read::initializers(new);
    let mut rewritten = 0;
    for (a, b) in old.node.iter().zip(&new.node) {
        for (x, y) in a.input.iter().zip(&b.input) {
            if x == y {
                continue;
            }
            assert!(y.starts_with("tandem.tuned.int8."), "{y}");
            let (x, y) = (old_inits[x.as_str()], new_inits[y.as_str()]);
            assert_eq!(x.dims, y.dims, "{}", y.name);
            assert_eq!(x.data_type, y.data_type, "{}", y.name);
            if x.data_type == 1 {
                let (u, v) = (
                    tensor_to_f32(x, None).unwrap(),
                    tensor_to_f32(y, None).unwrap(),
                );
                assert_eq!(u, v, "{} vs {}", x.name, y.name);
            } else {
                assert_eq!(x.data_type, 3, "{}: int8 expected", x.name);
                assert!(int8s(x) == int8s(y), "{} vs {}", x.name, y.name);
            }
            rewritten += 1;
        }
    }
    // Per layer: QKV (4), output (3 + bias), LayerNorms (4), FFN up (3 + bias), down (3 +
    // bias) and the side path of the outlier channels (3, where the graph has one).
    println!("{rewritten} tensors re-quantized, all equal to the quantizer's");
    assert!(rewritten >= 20 * layers.len(), "{rewritten}");

    // Hand-checked quantization: per column max |w| / qmax, ties to even, zero columns scale 1;
    // the range is read back from the values.
    let w = ndarray::array![[1.27f32, 0.0, 0.5], [-0.635, 0.0, -1.0]];
    let (q, s) = quantize_columns(w.view(), Int8Range::Full);
    assert_eq!(s, vec![0.01, 1.0, 1.0 / 127.0]);
    assert_eq!(q, vec![127, 0, 64, -64, 0, -127]);
    assert_eq!(
        Int8Range::of(q.iter().map(|&v| v as i64)),
        Some(Int8Range::Full)
    );
    let w = ndarray::array![[1.28f32, 0.0, 0.5], [-0.64, 0.0, -1.0]];
    let (q, s) = quantize_columns(w.view(), Int8Range::Reduced);
    assert_eq!(s, vec![0.02, 1.0, 1.0 / 64.0]);
    assert_eq!(q, vec![64, 0, 32, -32, 0, -64]);
    assert_eq!(
        Int8Range::of(q.iter().map(|&v| v as i64)),
        Some(Int8Range::Reduced)
    );
    assert_eq!(Int8Range::of([0, 3, -100]), None);
    assert_eq!(Int8Range::of([]), None);

    // The wrong number of layers, and an fp32 graph, are clear errors.
    let e = with_layers_int8(&int8, 1, &layers).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format, "{e}");
    let e = with_layers_int8(&fp32, 0, &layers).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Format, "{e}");
}

#[test]
fn fine_tuned_layers_serve_from_the_int8_graph() {
    let base = common::load(Variant::Fp32);
    let refs = common::reference();
    let texts = common::texts(&refs, 40);
    let mut split = SplitBackbone::new(&base, 2, 12).unwrap();
    for layer in split.top_mut() {
        for p in layer.params_mut() {
            // A deterministic change as large as fine-tuning makes.
            p.value.mapv_inplace(|v| v * 1.05 + 0.01 * (v * 31.0).sin());
        }
    }
    let tuned = TunedBackbone::new(&base, split.top()).unwrap();
    let bytes = tuned.int8().expect("the stock backbone has an int8 graph");
    assert!(bytes > 10 << 20, "{bytes}");
    let dir = common::tmp("int8_layers", "tuned");
    tuned.write(&dir).unwrap();
    let load = |dir: &std::path::Path, variant| {
        Backbone::load(
            dir,
            BackboneOptions {
                variant,
                threads: Some(2),
                verify: true,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let native = split.embed(&base, &texts).unwrap();
    let tuned_int8 = load(&dir, Variant::Int8).embed(&texts).unwrap();
    let stock_fp32 = base.embed(&texts).unwrap();
    let stock_int8 = load(base.dir(), Variant::Int8).embed(&texts).unwrap();
    let worst = |a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>| {
        (0..texts.len())
            .map(|i| common::cosine(&a.row(i).to_vec(), &b.row(i).to_vec()))
            .fold(1.0f32, f32::min)
    };
    let tuned_gap = worst(&tuned_int8, &native);
    let stock_gap = worst(&stock_int8, &stock_fp32);
    let moved = worst(&tuned_int8, &stock_int8);
    println!(
        "worst cosine: int8 vs fp32 fine-tuned {tuned_gap:.5}, stock {stock_gap:.5}; \
         fine-tuned int8 vs stock int8 {moved:.5}"
    );
    // As faithful as the stock int8 graph, and really the fine-tuned layers.
    assert!(tuned_gap >= stock_gap - 0.005, "{tuned_gap} {stock_gap}");
    assert!(moved < 0.999, "{moved}");
    let _ = std::fs::remove_dir_all(&dir);
}
