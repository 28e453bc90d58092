//! Parity of tandem's embeddings with sentence-transformers' reference embeddings.
//!
//! Needs `scripts/setup.sh` to have run (it fails, with that instruction, otherwise).

mod common;

use common::{backbone_dir, cosine, load, reference, reference_cosines};
use tandem::{Backbone, BackboneOptions, Variant};

#[test]
fn fp32_matches_reference_on_every_item() {
    for (text, c) in reference_cosines(&load(Variant::Fp32)) {
        assert!(c >= 0.9999, "cosine {c} for {text:?}");
    }
}

#[test]
fn opt_graph_matches_reference_on_every_item() {
    for (text, c) in reference_cosines(&load(Variant::Opt)) {
        assert!(c >= 0.9999, "cosine {c} for {text:?}");
    }
}

#[test]
fn int8_is_close_on_every_item_and_on_average() {
    let cs = reference_cosines(&load(Variant::Int8));
    for (text, c) in &cs {
        assert!(*c >= 0.98, "int8 cosine {c} for {text:?}");
    }
    let mean = cs.iter().map(|(_, c)| c).sum::<f32>() / cs.len() as f32;
    assert!(mean >= 0.99, "int8 mean cosine {mean}");
}

#[test]
fn hidden_state_graph_with_token_type_ids_is_mean_pooled_to_the_reference() {
    // This export has a token_type_ids input and only last_hidden_state: tandem pools itself.
    let b = Backbone::load(
        backbone_dir("all-MiniLM-L6-v2-hidden"),
        BackboneOptions {
            threads: Some(2),
            ..Default::default()
        },
    )
    .unwrap();
    for (text, c) in reference_cosines(&b) {
        assert!(c >= 0.9999, "cosine {c} for {text:?}");
    }
}

#[test]
fn truncation_and_token_counts_match_the_reference() {
    let b = load(Variant::Int8);
    let refs = reference();
    let texts = common::texts(&refs, usize::MAX);
    let ids = b.tokenizer().encode(&texts).unwrap();
    for (r, ids) in refs.iter().zip(&ids) {
        assert_eq!(ids.len(), r.tokens, "token count for {:?}", r.text);
        assert!(ids.len() <= 256);
    }
    assert!(
        refs.iter().filter(|r| r.tokens == 256).count() >= 2,
        "fixture has long texts"
    );
}

#[test]
fn parallel_tokenization_gives_the_sequential_ids_in_order() {
    let b = load(Variant::Int8);
    let refs = reference();
    // Enough texts that rayon splits them, in an order unlike any sorted one.
    let texts: Vec<&str> = (0..10)
        .flat_map(|k| refs.iter().rev().skip(k).map(|r| r.text.as_str()))
        .collect();
    let tok = b.tokenizer();
    assert_eq!(
        tok.encode_parallel(&texts).unwrap(),
        tok.encode(&texts).unwrap()
    );
    assert!(tok.encode_parallel(&[]).unwrap().is_empty());
}

#[test]
fn batching_and_order_do_not_change_embeddings() {
    let b = load(Variant::Fp32);
    let refs = reference();
    let texts = common::texts(&refs, usize::MAX);
    let together = b.embed(&texts).unwrap();
    let mut reversed: Vec<&str> = texts.clone();
    reversed.reverse();
    let rev = b.embed(&reversed).unwrap();
    for (i, t) in texts.iter().enumerate() {
        let alone = b.embed(&[t]).unwrap();
        let j = texts.len() - 1 - i;
        for (a, (x, y)) in alone
            .row(0)
            .iter()
            .zip(together.row(i).iter().zip(rev.row(j).iter()))
        {
            assert!(
                (a - x).abs() < 1e-4 && (a - y).abs() < 1e-4,
                "row {i} differs: {a} {x} {y}"
            );
        }
    }
    assert_eq!(b.embed(&[]).unwrap().dim(), (0, 384));
}

#[test]
fn embed_is_safe_and_consistent_from_many_threads() {
    // int8 uses dynamic activation quantization, whose scales depend on the whole batch, so each
    // thread's result is compared with the same call made alone beforehand: identical inputs
    // must give identical outputs however many threads share the session pool.
    let b = Backbone::load(
        backbone_dir(tandem::home::DEFAULT_BACKBONE),
        BackboneOptions {
            variant: Variant::Int8,
            threads: Some(1),
            sessions: 2,
            batch_size: 4,
            ..Default::default()
        },
    )
    .unwrap();
    let refs = reference();
    common::embed_from_threads(&b, &common::texts(&refs, 12), 5, |got, want, t, i| {
        assert_eq!(got, want, "thread {t}, slice {i}");
    });
}

/// Mean of a text's f16 token vectors, L2-normalized: what sentence-transformers' pooling does.
fn mean_of_tokens(seqs: &tandem::TokenSeqs, i: usize) -> Vec<f32> {
    let packed = seqs.gather(&[i]);
    let mean = packed.tokens.mean_axis(ndarray::Axis(0)).unwrap();
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    mean.iter().map(|v| v / norm).collect()
}

#[test]
fn token_embeddings_are_ragged_and_pool_to_the_reference() {
    // Both graph shapes: sentence_embedding + token_embeddings, and last_hidden_state only.
    for dir in [tandem::home::DEFAULT_BACKBONE, "all-MiniLM-L6-v2-hidden"] {
        let b = Backbone::load(
            backbone_dir(dir),
            BackboneOptions {
                threads: Some(2),
                batch_size: 7,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(b.has_token_output());
        let refs = reference();
        let texts = common::texts(&refs, usize::MAX);
        let (pooled, seqs) = b.embed_tokens(&texts).unwrap();
        assert_eq!(
            pooled,
            b.embed(&texts).unwrap(),
            "{dir}: pooled rows as embed"
        );
        assert_eq!(seqs.len(), texts.len());
        for (i, r) in refs.iter().enumerate() {
            // One vector per token, special tokens included, no padding.
            assert_eq!(seqs.length(i), r.tokens, "{dir}: tokens of {:?}", r.text);
            let c = cosine(&mean_of_tokens(&seqs, i), &r.embedding);
            assert!(
                c >= 0.9999,
                "{dir}: mean of f16 tokens, cosine {c} for {:?}",
                r.text
            );
        }
        assert_eq!(seqs.bytes(), seqs.total_tokens() * 384 * 2);
        let (p, s) = b.embed_tokens(&[]).unwrap();
        assert_eq!((p.nrows(), s.len()), (0, 0));
    }
}
