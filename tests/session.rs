//! The stateful trainer (what the C ABI wraps) on real data: determinism, cancellation that
//! loses nothing, evaluation, saving, and handing heads to a live model.

mod common;

use std::sync::Arc;

use serde_json::json;
use tandem::model::Model;
use tandem::train::Trainer;
use tandem::{ErrorKind, Variant};

fn trec(n: usize) -> Vec<(String, String)> {
    let rows = tandem::data::read_rows(&tandem::home::data_dir().join("trec.jsonl"))
        .expect("run scripts/setup.sh");
    rows.iter()
        .take(n)
        .map(|r| (r.text("text").unwrap(), r.text("label").unwrap()))
        .collect()
}

fn trainer(backbone: &Arc<tandem::Backbone>, seed: u64, data: &[(String, String)]) -> Trainer {
    let spec = json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "config": {"mode": "two_stage", "seed": seed,
                   "metadata": {"stage": {"epochs": 4}}, "head": {"stage": {"epochs": 6}}},
    });
    let mut t = Trainer::from_json(Arc::clone(backbone), &spec.to_string()).unwrap();
    for (text, label) in data {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    t
}

#[test]
fn trainer_is_deterministic_cancellable_and_serves_a_live_model() {
    let backbone = Arc::new(common::load(Variant::Fp32));
    let data = trec(400);

    // Same seed, same data: bit-identical weights. Another seed: different ones.
    let mut a = trainer(&backbone, 3, &data);
    let mut b = trainer(&backbone, 3, &data);
    let mut c = trainer(&backbone, 4, &data);
    for t in [&mut a, &mut b, &mut c] {
        t.train(&mut |_| true).unwrap();
    }
    let wa = a.heads().unwrap().network.weights();
    assert_eq!(wa, b.heads().unwrap().network.weights());
    assert_ne!(wa, c.heads().unwrap().network.weights());

    // A malformed example is rejected and nothing is added.
    let n = a.len();
    let err = a.add_example("x", &json!({"label": ["HUM"]})).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("label"), "{}", err.message());
    assert_eq!(a.len(), n);

    // Cancelling mid-stage keeps the examples and the heads of the last successful run.
    a.add_example("Who painted The Night Watch ?", &json!({"label": "HUM"}))
        .unwrap();
    let mut epochs = 0;
    let err = a
        .train(&mut |r| {
            if r.stage != "embed" {
                epochs += 1;
            }
            epochs < 3
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(a.len(), n + 1);
    assert_eq!(a.heads().unwrap().network.weights(), wa);

    // Evaluation on held-out TREC rows, in the shape `tandem eval` prints.
    let held: Vec<(String, String)> = trec(600).split_off(400);
    let texts: Vec<&str> = held.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<_> = held.iter().map(|(_, l)| json!({ "label": l })).collect();
    let m = a.evaluate(&texts, &labels).unwrap();
    assert!(m["macro_f1"].as_f64().unwrap() > 0.5, "{m}");
    assert!(m["tasks"]["label"]["accuracy"].as_f64().is_some());

    // Save, load, then hot-swap another trainer's heads into the live model.
    let dir = std::env::temp_dir().join(format!("tandem-session-{}", std::process::id()));
    a.save(&dir).unwrap();
    let model = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    let before = model.predict(&texts[..5]).unwrap();
    assert_eq!(model.swap_heads(c.heads().unwrap()).unwrap(), 1);
    let (after, heads) = model.predict_versioned(&texts[..5]).unwrap();
    assert_eq!(heads.version, 1);
    assert_ne!(before, after);
    std::fs::remove_dir_all(&dir).unwrap();
}
