//! The CUDA execution provider, end to end on the real backbone.
//!
//! Built only with `--features cuda`. Where a GPU and a CUDA build of ONNX Runtime exist, run it
//! with `TANDEM_EXPECT_CUDA=1` (and `TANDEM_ORT_LIB` naming the CUDA build): every test then
//! demands that CUDA loads and gives the reference embeddings. Everywhere else each test checks
//! that asking for CUDA is an `ExecutionProviderUnavailable` error, never a CPU fallback. (The
//! int8 graph is refused on CUDA in every build: tests/errors.rs.)
#![cfg(feature = "cuda")]

mod common;

use common::{backbone_dir, cosine, reference, reference_cosines};
use tandem::{Backbone, BackboneOptions, Device, ErrorKind, Variant};

const CUDA: Device = Device::Cuda { device_id: 0 };

fn expect_cuda() -> bool {
    std::env::var("TANDEM_EXPECT_CUDA").as_deref() == Ok("1")
}

/// The default backbone on CUDA, or `None` after checking that CUDA is refused where it can't
/// run (no GPU here and `TANDEM_EXPECT_CUDA` unset).
fn cuda_backbone(options: BackboneOptions) -> Option<Backbone> {
    let r = Backbone::load(
        backbone_dir(tandem::home::DEFAULT_BACKBONE),
        BackboneOptions {
            device: CUDA,
            ..options
        },
    );
    if expect_cuda() {
        Some(r.unwrap_or_else(|e| panic!("CUDA must load here: {e}")))
    } else {
        let e = r.expect_err("CUDA loaded, but TANDEM_EXPECT_CUDA is not 1");
        assert_eq!(
            e.kind(),
            ErrorKind::ExecutionProviderUnavailable,
            "{}",
            e.message()
        );
        None
    }
}

fn on_cuda(variant: Variant) -> Option<Backbone> {
    cuda_backbone(BackboneOptions {
        variant,
        threads: Some(2),
        ..Default::default()
    })
}

/// The largest element-wise difference of two embedding matrices of one shape.
fn max_abs_diff(a: &ndarray::Array2<f32>, b: &ndarray::Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

fn report(what: &str, cs: &[(String, f32)]) {
    let min = cs.iter().map(|c| c.1).fold(f32::INFINITY, f32::min);
    let mean = cs.iter().map(|c| c.1).sum::<f32>() / cs.len() as f32;
    println!(
        "{what}: cosine to the reference, min {min:.6}, mean {mean:.6} over {} items",
        cs.len()
    );
}

/// `variant` on CUDA has cosine >= 0.9999 to the reference on every item.
fn matches_the_reference_on_cuda(variant: Variant) {
    let Some(b) = on_cuda(variant) else {
        return;
    };
    let cs = reference_cosines(&b);
    report(&format!("{variant} on CUDA"), &cs);
    for (text, c) in cs {
        assert!(c >= 0.9999, "{variant}: cosine {c} for {text:?}");
    }
}

#[test]
fn fp32_on_cuda_matches_the_reference_on_every_item() {
    matches_the_reference_on_cuda(Variant::Fp32);
}

#[test]
fn opt_graph_on_cuda_matches_the_reference_on_every_item() {
    matches_the_reference_on_cuda(Variant::Opt);
}

#[test]
fn cuda_and_cpu_give_the_same_embeddings() {
    let Some(gpu) = on_cuda(Variant::Fp32) else {
        return;
    };
    let cpu = common::load(Variant::Fp32);
    let refs = reference();
    let texts = common::texts(&refs, usize::MAX);
    let worst = max_abs_diff(&gpu.embed(&texts).unwrap(), &cpu.embed(&texts).unwrap());
    println!("fp32 CUDA vs CPU: largest element difference {worst:.2e}");
    assert!(worst < 1e-4, "CUDA and CPU differ by {worst}");
}

#[test]
fn batching_and_order_do_not_change_cuda_embeddings() {
    let Some(b) = on_cuda(Variant::Fp32) else {
        return;
    };
    let refs = reference();
    let texts = common::texts(&refs, usize::MAX);
    let together = b.embed(&texts).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = b.embed(&[t]).unwrap();
        for (a, x) in alone.row(0).iter().zip(together.row(i).iter()) {
            assert!((a - x).abs() < 1e-4, "row {i}: alone {a}, batched {x}");
        }
    }
    assert_eq!(b.embed(&[]).unwrap().dim(), (0, 384));
}

#[test]
fn token_embeddings_on_cuda_pool_to_the_reference() {
    let Some(b) = on_cuda(Variant::Fp32) else {
        return;
    };
    let refs = reference();
    let texts = common::texts(&refs, usize::MAX);
    let (pooled, seqs) = b.embed_tokens(&texts).unwrap();
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(seqs.length(i), r.tokens, "tokens of {:?}", r.text);
        let c = cosine(pooled.row(i).as_slice().unwrap(), &r.embedding);
        assert!(c >= 0.9999, "pooled cosine {c} for {:?}", r.text);
        let mean = seqs
            .gather(&[i])
            .tokens
            .mean_axis(ndarray::Axis(0))
            .unwrap();
        let c = cosine(mean.as_slice().unwrap(), &r.embedding);
        assert!(
            c >= 0.9999,
            "mean of f16 tokens, cosine {c} for {:?}",
            r.text
        );
    }
}

#[test]
fn many_threads_share_cuda_sessions_safely() {
    let Some(b) = cuda_backbone(BackboneOptions {
        threads: Some(1),
        sessions: 3,
        batch_size: 4,
        ..Default::default()
    }) else {
        return;
    };
    let refs = reference();
    common::embed_from_threads(&b, &common::texts(&refs, 16), 10, |got, want, t, i| {
        let worst = max_abs_diff(got, want);
        assert!(worst < 1e-5, "thread {t}, slice {i}: differs by {worst}");
    });
}

#[test]
fn a_gpu_that_does_not_exist_is_an_error() {
    let e = Backbone::load(
        backbone_dir(tandem::home::DEFAULT_BACKBONE),
        BackboneOptions {
            device: Device::Cuda { device_id: 97 },
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::ExecutionProviderUnavailable,
        "{}",
        e.message()
    );
}

/// Heads written as ONNX and run by ONNX Runtime on CUDA (`HeadsEngine::Onnx` on a CUDA
/// backbone) agree with the native heads to 1e-5; where CUDA cannot run, opening them there is
/// an `ExecutionProviderUnavailable` error, not a CPU fallback.
#[test]
fn onnx_heads_on_cuda_match_native_heads() {
    use rand::SeedableRng;
    use tandem::data::{TaskKind, TaskSpec};
    use tandem::heads::{predict_arrays, Architecture, Heads, Network, TaskEntry};
    let arch = Architecture::embedding_only(384, vec![5]);
    let network = Network::new(arch, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3)).unwrap();
    let heads = Heads {
        network,
        normalizer: None,
        tasks: vec![TaskEntry {
            spec: TaskSpec {
                name: "topic".into(),
                kind: TaskKind::Multiclass,
                labels: (0..5).map(|i| format!("c{i}")).collect(),
            },
            thresholds: vec![],
        }],
        version: 0,
        onnx: None,
    };
    let runtime = tandem::runtime::runtime(None).unwrap();
    let onnx = tandem::onnx::OnnxHeads::from_heads(&heads, runtime, CUDA);
    if !expect_cuda() {
        assert_eq!(
            onnx.unwrap_err().kind(),
            ErrorKind::ExecutionProviderUnavailable
        );
        return;
    }
    let onnx = onnx.unwrap();
    let emb = ndarray::Array2::from_shape_fn((64, 384), |(i, j)| {
        ((i * 31 + j * 7) % 13) as f32 / 13.0 - 0.5
    });
    let native = predict_arrays(
        &heads,
        emb.view(),
        ndarray::Array2::zeros((64, 0)).view(),
        None,
    )
    .unwrap();
    let got = onnx
        .run(emb.view(), ndarray::Array2::zeros((64, 0)).view(), None)
        .unwrap();
    let d = max_abs_diff(&native[0], &got[0]);
    println!("ONNX heads on CUDA vs native: max |diff| {d:.2e}");
    assert!(d <= 1e-5, "{d}");
}

/// A bundle with a fine-tuned top layer serves its own backbone graph on CUDA (issue 20's "on
/// CPU or CUDA"): loaded on a CUDA backbone, the bundle's graph runs there and predicts what it
/// predicts on the CPU (≤ 1e-4 on probabilities). Where CUDA cannot run, `on_cuda` has checked
/// that asking for it is an error, and nothing is trained.
#[test]
fn a_fine_tuned_bundle_serves_on_cuda_as_on_the_cpu() {
    use serde_json::json;
    use std::sync::Arc;
    use tandem::model::Model;
    use tandem::train::trainer::Trainer;
    let Some(gpu) = on_cuda(Variant::Fp32) else {
        return;
    };
    let cpu = Arc::new(common::load(Variant::Fp32));
    let data = common::labelled("trec.jsonl", 160);
    let spec = json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "embedding_cache": false,
        "config": {"mode": "embedding_only", "seed": 2, "head": {"stage": {"epochs": 2}},
                   "backbone": {"trainable_layers": 1, "lr": 0.001}},
    });
    let mut t = Trainer::from_json(Arc::clone(&cpu), &spec.to_string()).unwrap();
    for (text, label) in &data[..120] {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    t.train(&mut |_| true).unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-cuda-ft-{}", std::process::id()));
    t.save(&dir).unwrap();
    let held: Vec<&str> = data[120..].iter().map(|(t, _)| t.as_str()).collect();
    let on_cpu = Model::load(&dir, cpu).unwrap();
    let on_gpu = Model::load(&dir, Arc::new(gpu)).unwrap();
    assert!(on_gpu.backbone().manifest().name.contains("fine-tuned"));
    assert_eq!(on_gpu.backbone().options().device, CUDA);
    let (a, _) = on_cpu.predict_raw(&held).unwrap();
    let (b, _) = on_gpu.predict_raw(&held).unwrap();
    let d = max_abs_diff(&a[0], &b[0]);
    println!("fine-tuned bundle, CUDA vs CPU: max |probability diff| {d:.2e}");
    assert!(d <= 1e-4, "{d}");
    let _ = std::fs::remove_dir_all(&dir);
}
