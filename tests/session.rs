//! The stateful trainer (what the C ABI wraps) on real data: determinism, cancellation that
//! loses nothing, evaluation, saving, and handing heads to a live model.

mod common;

use std::sync::Arc;

use serde_json::json;
use tandem::model::Model;
use tandem::train::Trainer;
use tandem::{ErrorKind, Variant};

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
    let data = common::labelled("trec.jsonl", 400);

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
    let held: Vec<(String, String)> = common::labelled("trec.jsonl", 600).split_off(400);
    let texts: Vec<&str> = held.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<_> = held.iter().map(|(_, l)| json!({ "label": l })).collect();
    let m = a.evaluate(&texts, &labels).unwrap();
    // Six classes (chance about 0.17) after ten short epochs on 400 questions: it learned.
    assert!(m["macro_f1"].as_f64().unwrap() > 0.4, "{m}");
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

#[test]
fn trainer_can_choose_its_recipe_by_validation_and_the_host_can_cancel_the_search() {
    let backbone = Arc::new(common::load(Variant::Fp32));
    let data = common::labelled("trec.jsonl", 80);
    // Fine-tuning takes minutes in a debug build: its own test below.
    let auto = |seed: u64, budget: f64| {
        let spec = json!({
            "tasks": [{"name": "label", "kind": "multiclass"}],
            // Small heads and few epochs: a debug build trains every candidate in seconds.
            "config": {"seed": seed,
                       "head": {"stage": {"epochs": 3}, "hidden": [32],
                                "sequence": {"conv_channels": 16}},
                       "metadata": {"stage": {"epochs": 3}}},
            "recipe": "auto",
            "budget_seconds": budget,
            "finetune": false,
        });
        let mut t = Trainer::from_json(Arc::clone(&backbone), &spec.to_string()).unwrap();
        for (text, label) in &data {
            t.add_example(text, &json!({ "label": label })).unwrap();
        }
        t
    };
    // A zero budget measures the first candidate (the linear recipe) and says what it left out.
    let mut a = auto(5, 0.0);
    a.train(&mut |_| true).unwrap();
    let r = a.report_json().unwrap();
    assert_eq!(r["recipe"], "linear", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.starts_with("chose linear: best "), "{reason}");
    assert!(reason.contains("not measured: embedding_only"), "{reason}");
    let candidates = r["selection"]["candidates"].as_array().unwrap();
    assert_eq!(candidates.len(), 2, "{r}");
    assert!(candidates[1..].iter().all(|c| c["score"].is_null()));
    assert_eq!(r["selection"]["validation"]["kind"], "cross_validation");
    // (The search is seeded and deterministic for the candidates measured: compare::select's
    // tests.)
    let wa = a.heads().unwrap().network.weights();
    // With time, every candidate is measured and the best clear winner is kept; the bundle
    // records the chosen recipe's config, and evaluation reads what that recipe reads.
    let mut c = auto(5, 600.0);
    c.train(&mut |_| true).unwrap();
    let r = c.report_json().unwrap();
    let sel = c.selection().unwrap().clone();
    assert!(
        sel.candidates.iter().all(|c| c.score.is_some()),
        "{}",
        sel.reason()
    );
    assert_eq!(r["recipe"], sel.chosen.name());
    let held: Vec<(String, String)> = common::labelled("trec.jsonl", 180).split_off(80);
    let texts: Vec<&str> = held.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<_> = held.iter().map(|(_, l)| json!({ "label": l })).collect();
    let m = c.evaluate(&texts, &labels).unwrap();
    assert!(m["macro_f1"].as_f64().unwrap() > 0.4, "{m}");
    let dir = common::tmp("session", "auto");
    c.save(&dir).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let head = &manifest["training"]["head"]["kind"];
    let mode = &manifest["training"]["mode"];
    let expected = sel.chosen.config(&c.spec().config, 5);
    assert_eq!(head.as_str(), Some(expected.head.kind.name()), "{manifest}");
    assert_eq!(mode.as_str(), Some(expected.mode.name()), "{manifest}");
    let model = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    assert_eq!(model.predict(&texts[..3]).unwrap().len(), 3);
    std::fs::remove_dir_all(&dir).unwrap();

    // The host's cancel stops the search (not only the candidate), and the last heads and
    // choice stay.
    a.add_example("Who wrote Hamlet ?", &json!({"label": "HUM"}))
        .unwrap();
    let mut seen = 0;
    let err = a
        .train(&mut |r| {
            if r.stage != "embed" {
                seen += 1;
            }
            seen < 4
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(a.heads().unwrap().network.weights(), wa);
    assert_eq!(a.selection().unwrap().chosen.name(), "linear");
}

#[test]
fn a_trainer_search_fine_tunes_the_top_layers_as_a_candidate_and_serves_the_winner() {
    let backbone = Arc::new(common::load(Variant::Fp32));
    let data = common::labelled("trec.jsonl", 24);
    // One short epoch and no warm-up: a debug build trains transformer layers slowly.
    let spec = json!({
        "tasks": [{"name": "label", "kind": "multiclass"}],
        "config": {"seed": 4, "head": {"stage": {"epochs": 1}, "hidden": [16]},
                   "metadata": {"stage": {"epochs": 1}},
                   "backbone": {"contrastive_epochs": 0}},
        "recipe": "auto",
        "budget_seconds": 600.0,
    });
    let mut t = Trainer::from_json(Arc::clone(&backbone), &spec.to_string()).unwrap();
    for (text, label) in &data {
        t.add_example(text, &json!({ "label": label })).unwrap();
    }
    let mut embeds = 0;
    t.train(&mut |r| {
        embeds += usize::from(r.stage == "embed");
        true
    })
    .unwrap();
    assert!(embeds > 0);
    let sel = t.selection().unwrap().clone();
    assert_eq!(sel.candidates[1].arm.name(), "finetune", "{}", sel.reason());
    assert!(sel.candidates[1].score.is_some(), "{}", sel.reason());
    let texts: Vec<&str> = data.iter().map(|(t, _)| t.as_str()).collect();
    let labels: Vec<_> = data.iter().map(|(_, l)| json!({ "label": l })).collect();
    let m = t.evaluate(&texts, &labels).unwrap();
    let dir = common::tmp("session", "auto-finetune");
    t.save(&dir).unwrap();
    let model = Model::load(&dir, Arc::clone(&backbone)).unwrap();
    let tuned = sel.chosen.name() == "finetune";
    assert_eq!(dir.join("backbone").join("model.onnx").is_file(), tuned);
    // The evaluation reads what the saved bundle serves: the same predictions (one may flip
    // between the native layers and ONNX Runtime's, which agree to 1e-4 on probabilities).
    let served = model.predict(&texts).unwrap();
    let right = served
        .iter()
        .zip(&data)
        .filter(|(p, (_, l))| p[0].labels == [l.clone()])
        .count();
    let accuracy = right as f64 / data.len() as f64;
    assert!(
        (m["accuracy"].as_f64().unwrap() - accuracy).abs() <= 1.0 / 24.0 + 1e-9,
        "{m} against {accuracy}"
    );
    // The frozen heads of a fine-tuned winner are refused for a hot swap (they read another
    // backbone's embeddings), and the spec can leave fine-tuning out.
    assert_eq!(t.heads().is_err(), tuned);
    std::fs::remove_dir_all(&dir).unwrap();
    let mut frozen = spec.clone();
    frozen["finetune"] = json!(false);
    let mut f = Trainer::from_json(Arc::clone(&backbone), &frozen.to_string()).unwrap();
    for (text, label) in &data {
        f.add_example(text, &json!({ "label": label })).unwrap();
    }
    f.train(&mut |_| true).unwrap();
    assert!(f
        .selection()
        .unwrap()
        .candidates
        .iter()
        .all(|c| c.arm.name() != "finetune"));
}
