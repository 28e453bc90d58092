//! Embeds the TREC questions with the default backbone and shows nearest neighbours.
//!
//! `cargo run --release --example neighbours [-- --variant int8]`: what tandem can do before any
//! head is trained. Needs `scripts/setup.sh`.

use std::time::Instant;

use tandem::{Backbone, BackboneOptions, Result, Variant};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let variant: Variant = args
        .iter()
        .position(|a| a == "--variant")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(Variant::Int8);
    let path = tandem::home::data_dir().join("trec.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| tandem::Error::io(&path, e))?;
    let rows: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["text"].as_str().unwrap_or_default().to_string(),
                v["fine"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let backbone = Backbone::load_default(BackboneOptions {
        variant,
        ..Default::default()
    })?;
    let texts: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let start = Instant::now();
    let emb = backbone.embed(&texts)?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "embedded {} TREC questions with the {variant} graph in {secs:.1}s ({:.0} sentences/s)\n",
        texts.len(),
        texts.len() as f64 / secs
    );
    let queries = [
        "How far is the moon from the earth?",
        "Who painted the Mona Lisa?",
        "What does NASA stand for?",
        "Where can I buy cheap train tickets in Paris?",
        "Why is the sky blue?",
    ];
    let q = backbone.embed(&queries)?;
    for (query, qv) in queries.iter().zip(q.rows()) {
        // Rows are L2-normalized, so the dot product is the cosine.
        let scores = emb.dot(&qv);
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        println!("{query}");
        for &i in idx.iter().take(3) {
            println!("  {:.3}  [{}] {}", scores[i], rows[i].1, rows[i].0);
        }
    }
    Ok(())
}
