//! The backbone split for training its top layers: the bottom graph cut out of the fp32 graph
//! and run by ONNX Runtime, then the top K layers natively, then mean pooling and
//! normalization, reproduces the whole graph's sentence embeddings (cosine >= 0.99999 on the
//! reference texts) for every K; bad splits are clear errors. Needs `scripts/setup.sh`.

mod common;

use tandem::onnx::split::{bottom_graph, SplitBackbone};
use tandem::{ErrorKind, Variant};

#[test]
fn bottom_graph_and_native_top_layers_reproduce_the_backbone() {
    let backbone = common::load(Variant::Fp32);
    let refs = common::reference();
    let texts = common::texts(&refs, usize::MAX);
    let whole = backbone.embed(&texts).unwrap();
    for k in [1, 2, 6] {
        let split = SplitBackbone::new(&backbone, k, 12).unwrap();
        assert_eq!(split.top().len(), k);
        assert_eq!(split.bottom_layers(), 6 - k);
        // All six layers natively is slow in a debug build: a few texts then.
        let n = if k == 6 { 6 } else { texts.len() };
        let emb = split.embed(&backbone, &texts[..n]).unwrap();
        let worst = (0..n)
            .map(|i| common::cosine(&emb.row(i).to_vec(), &whole.row(i).to_vec()))
            .fold(1.0f32, f32::min);
        println!("K = {k}: worst cosine to the whole graph {worst:.8}");
        assert!(worst >= 0.99999, "K = {k}: cosine {worst}");
        // The bottom's packed hidden states: one row per real token of every text.
        let (tokens, offsets) = split.bottom(&backbone, &texts[..3]).unwrap();
        assert_eq!(offsets.len(), 4);
        assert_eq!(tokens.nrows(), offsets[3]);
        assert_eq!(tokens.ncols(), 384);
    }
    // The split cache stores the hidden states in f16: how far that moves the embeddings the
    // top layers make of them (the accuracy side is measured by scripts/cache_precision.py).
    let split = SplitBackbone::new(&backbone, 2, 12).unwrap();
    let (tokens, offsets) = split.bottom(&backbone, &texts).unwrap();
    let half = tokens.mapv(|v| half::f16::from_f32(v).to_f32());
    let through = |x: ndarray::Array2<f32>| {
        let mut h = x;
        for layer in split.top() {
            h = layer.forward_inference(h.view(), &offsets);
        }
        tandem::onnx::split::pool(h.view(), &offsets, tandem::backbone::Pooling::Mean, true)
    };
    let (a, b) = (through(tokens), through(half));
    let worst = (0..texts.len())
        .map(|i| common::cosine(&a.row(i).to_vec(), &b.row(i).to_vec()))
        .fold(1.0f32, f32::min);
    println!("f16-stored hidden states, K = 2: worst cosine to f32 {worst:.8}");
    assert!(worst >= 0.99999, "{worst}");
    // K = 0 (nothing to train) and K > L are refused; a graph split past its layers too.
    for k in [0, 7] {
        let e = SplitBackbone::new(&backbone, k, 12).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    let model = tandem::onnx::read::read(&backbone.dir().join("model.onnx")).unwrap();
    assert!(bottom_graph(&model, 6).is_err());
    // The bottom graph keeps only what the hidden states need: no pooling, fewer nodes.
    let bottom = bottom_graph(&model, 4).unwrap();
    let g = bottom.graph.as_ref().unwrap();
    assert!(g.node.len() < model.graph().node.len());
    assert!(!g.node.iter().any(|n| n.name.contains("layer.4/")));
    assert_eq!(g.output[0].name, "hidden_states");

    // Fine-tuned top layers go back into the whole graph (`onnx::bert::with_layers`): ONNX
    // Runtime serving that graph computes what the split computes with those layers.
    let mut split = SplitBackbone::new(&backbone, 2, 12).unwrap();
    for layer in split.top_mut() {
        for p in layer.params_mut() {
            // A deterministic change as large as fine-tuning makes.
            p.value.mapv_inplace(|v| v * 1.05 + 0.01 * (v * 31.0).sin());
        }
    }
    let tuned = tandem::onnx::bert::with_layers(&model, 4, split.top()).unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-tuned-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["manifest.json", "tokenizer.json"] {
        std::fs::copy(backbone.dir().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("model.onnx"), tandem::onnx::write::encode(&tuned)).unwrap();
    let served = tandem::Backbone::load(
        &dir,
        tandem::BackboneOptions {
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    let few = &texts[..10];
    let a = served.embed(few).unwrap();
    let b = split.embed(&backbone, few).unwrap();
    let moved = (0..few.len())
        .map(|i| common::cosine(&a.row(i).to_vec(), &whole.row(i).to_vec()))
        .fold(1.0f32, f32::min);
    assert!(
        moved < 0.999,
        "the change did not move the embeddings ({moved})"
    );
    let worst = (0..few.len())
        .map(|i| common::cosine(&a.row(i).to_vec(), &b.row(i).to_vec()))
        .fold(1.0f32, f32::min);
    println!("fine-tuned graph vs split: worst cosine {worst:.8}");
    assert!(worst >= 0.99999, "{worst}");
    std::fs::remove_dir_all(&dir).unwrap();

    // Hidden states at the split are cached (ragged, f16) next to the pooled cache: a second
    // pass runs nothing, and what it serves is the bottom's output to f16 precision.
    let root = std::env::temp_dir().join(format!("tandem-split-cache-{}", std::process::id()));
    let cache = tandem::cache::TokenCache::open_split(Some(&root), &backbone, 4).unwrap();
    let some = &texts[..12];
    let (first, stats) = split.hidden(&backbone, Some(&cache), some).unwrap();
    assert_eq!((stats.hits, stats.misses), (0, 12));
    let (again, stats) = split.hidden(&backbone, Some(&cache), some).unwrap();
    assert_eq!((stats.hits, stats.misses), (12, 0));
    let (tokens, offsets) = split.bottom(&backbone, some).unwrap();
    for i in 0..some.len() {
        assert_eq!(again.text(i), first.text(i));
        let exact = tokens.slice(ndarray::s![offsets[i]..offsets[i + 1], ..]);
        assert_eq!(again.length(i), exact.nrows());
        for (h, x) in again.text(i).iter().zip(exact.iter()) {
            let h = h.to_f32();
            assert!((h - x).abs() <= 1e-3 * x.abs().max(1.0), "{h} vs {x}");
        }
    }
    let files = tandem::cache::usage::scan(&root).unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.kind == tandem::cache::usage::CacheKind::SplitLayer),
        "{files:?}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn cls_pooling_reads_the_first_token_in_the_backbone_and_the_split() {
    // A backbone whose manifest says [CLS] pooling: tandem pools its per-token output to the
    // first token's vector (normalized), and the split's native top layers do the same.
    let dir = common::tmp("split", "cls");
    let cls = common::cls_backbone(&dir);
    assert_eq!(cls.manifest().pooling, tandem::backbone::Pooling::Cls);
    let refs = common::reference();
    let texts = common::texts(&refs, 12);
    let (emb, tokens) = cls.embed_tokens(&texts).unwrap();
    let mean = common::load(Variant::Fp32).embed(&texts).unwrap();
    let mut farthest = 1.0f32;
    for i in 0..texts.len() {
        // The token vectors are stored in f16.
        let first: Vec<f32> = tokens.text(i)[..384].iter().map(|v| v.to_f32()).collect();
        let c = common::cosine(&first, &emb.row(i).to_vec());
        assert!(c >= 0.9999, "text {i}: [CLS] cosine {c}");
        let norm: f32 = emb.row(i).iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "normalized: {norm}");
        farthest = farthest.min(common::cosine(&emb.row(i).to_vec(), &mean.row(i).to_vec()));
    }
    // Not the mean-pooled embedding.
    assert!(
        farthest < 0.95,
        "[CLS] and mean pooling agree to {farthest}"
    );
    for k in [1, 2] {
        let split = SplitBackbone::new(&cls, k, 12).unwrap();
        let native = split.embed(&cls, &texts).unwrap();
        let worst = (0..texts.len())
            .map(|i| common::cosine(&native.row(i).to_vec(), &emb.row(i).to_vec()))
            .fold(1.0f32, f32::min);
        println!("[CLS], K = {k}: worst cosine to the whole graph {worst:.8}");
        assert!(worst >= 0.99999, "K = {k}: {worst}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
