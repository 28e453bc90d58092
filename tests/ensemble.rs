//! Ensembles average their members: probabilities are the members' mean, decisions are made on
//! the mean thresholds, groups combine the averaged outputs, members with other tasks are
//! refused naming them. Needs `scripts/setup.sh`.

mod common;

use std::path::Path;
use std::sync::Arc;

use ndarray::Array2;
use serde_json::json;
use tandem::ensemble::Ensemble;
use tandem::eval::Aggregation;
use tandem::model::Model;
use tandem::train::Trainer;
use tandem::{Backbone, ErrorKind, Variant};

/// A bundle trained on TREC questions (the first `n`, one task `label`), saved in `dir`.
fn bundle(b: &Arc<Backbone>, dir: &Path, seed: u64, mode: &str, task: &str, n: usize) {
    let spec = json!({
        "tasks": [{"name": task, "kind": "multiclass"}],
        "config": {"mode": mode, "seed": seed, "head": {"hidden": [16], "stage": {"epochs": 4}},
                   "metadata": {"stage": {"epochs": 3}}},
    });
    let mut t = Trainer::from_json(Arc::clone(b), &spec.to_string()).unwrap();
    for (text, label) in common::labelled("trec.jsonl", n) {
        t.add_example(&text, &json!({ task: label })).unwrap();
    }
    t.train(&mut |_| true).unwrap();
    t.save(dir).unwrap();
}

fn mean(a: &[Array2<f32>], b: &[Array2<f32>]) -> Vec<Array2<f32>> {
    a.iter().zip(b).map(|(x, y)| (x + y) / 2.0).collect()
}

fn max_diff(a: &[Array2<f32>], b: &[Array2<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn an_ensemble_predicts_its_members_mean() {
    let b = Arc::new(common::load(Variant::Int8));
    let root = common::tmp("ensemble", "members");
    let (a_dir, m_dir, other) = (root.join("a"), root.join("m"), root.join("other"));
    // An embedding-only member and one that reads metadata: one backbone run serves both.
    bundle(&b, &a_dir, 1, "embedding_only", "label", 600);
    bundle(&b, &m_dir, 2, "two_stage", "label", 600);
    let a = Model::load(&a_dir, Arc::clone(&b)).unwrap();
    let m = Model::load(&m_dir, Arc::clone(&b)).unwrap();
    let texts = [
        "Who wrote Hamlet ?",
        "How far is the Moon ?",
        "What does NASA stand for ?",
        "Where is Timbuktu ?",
    ];
    let (pa, _) = a.predict_raw(&texts).unwrap();
    let (pm, _) = m.predict_raw(&texts).unwrap();
    let want = mean(&pa, &pm);
    let e = Ensemble::new(vec![a, m]).unwrap();
    let got = e.predict_raw(&texts).unwrap();
    assert!(max_diff(&got, &want) <= 1e-6, "{}", max_diff(&got, &want));
    let labels = &e.tasks()[0].spec.labels;
    for (i, p) in e.predict(&texts).unwrap().iter().enumerate() {
        let row = want[0].row(i);
        let best = (0..row.len())
            .max_by(|&x, &y| row[x].total_cmp(&row[y]))
            .unwrap();
        assert_eq!(p[0].labels, [labels[best].clone()]);
    }
    // Groups combine the averaged outputs: a group of one text is that text's prediction.
    let groups: Vec<String> = ["x", "y", "y", "z"].iter().map(|s| s.to_string()).collect();
    let g = e
        .predict_groups(&texts, &groups, Aggregation::Mean)
        .unwrap();
    assert_eq!(g.len(), 3);
    let one = e.predict(&texts[..1]).unwrap();
    assert_eq!(g[0].1[0].labels, one[0][0].labels);
    let y = &g[1].1[0].probabilities;
    for (k, p) in y.iter().enumerate() {
        let expect = (want[0][[1, k]] + want[0][[2, k]]) / 2.0;
        assert!((p - expect).abs() <= 1e-6);
    }

    // A member with other tasks is refused, naming them.
    bundle(&b, &other, 1, "embedding_only", "topic", 300);
    let members = vec![
        Model::load(&a_dir, Arc::clone(&b)).unwrap(),
        Model::load(&other, Arc::clone(&b)).unwrap(),
    ];
    let err = Ensemble::new(members).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("topic") && err.message().contains("member 2"),
        "{err}"
    );
    assert!(Ensemble::new(vec![]).is_err());
    std::fs::remove_dir_all(&root).unwrap();
}
