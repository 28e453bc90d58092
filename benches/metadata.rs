//! Metadata extraction throughput, single thread, in bytes of UTF-8 text per second.
//!
//! `cargo bench --bench metadata` measures two workloads of about 1 MB each:
//!
//! - **mixed documents**: ~2,900 short and medium texts (tweets, reviews, news paragraphs, e-mails,
//!   chat with emoji, some CJK and Arabic) with URLs, mentions, hashtags, numbers and prices,
//!   extracted one by one with `extract_into` into a reused buffer — the per-text cost that a host
//!   pays;
//! - **one long text**: the same documents joined into a single 1 MB string, through `extract`.
//!
//! It first prints plain MB/s (10^6 bytes per second; the median of timed rounds), then runs the
//! same two workloads under criterion with `Throughput::Bytes`. The target is at least 10 MB/s per
//! core. Under `cargo test --benches` everything runs once, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use tandem::metadata;

/// Texts in the styles the runtime sees; `{n}`, `{m}` and `{p}` are replaced by varying numbers.
const TEMPLATES: &[&str] = &[
    "Just landed in Lisbon!!! ☀️🌊 Best trip ever, thanks @sofia_travels #travel #portugal https://t.co/x{n}Yz",
    "I ordered the blue one on March {m} and it still hasn't arrived. Order #{n}, paid $ {p}.99. \
     Customer service said 3-5 business days... that was two weeks ago?! Not happy at all.",
    "The central bank raised interest rates by 0.{m} percentage points on Tuesday, its {m}th increase \
     this year, citing inflation that remains well above the 2% target. Analysts at Goldman Sachs \
     expect a further rise in December, while markets priced in a pause. \"We will do what it takes,\" \
     the governor told reporters in Frankfurt.",
    "URGENT: You have WON a £{p},000 prize! Call 0800-{n} now or reply YES to claim. T&Cs apply. \
     Visit www.claim-prize-now.co.uk",
    "Hi team,\n\nPlease find attached the Q{m} report (v{m}.2). Revenue grew {p}% year over year to \
     €{n} million; margins were flat. Let me know if you have questions — I'm out Friday.\n\nBest,\n\
     Maria (maria.lopez@example.com)",
    "lol 😂😂 did u see that?? 👀 my mom just texted me 'what does 🍆 mean' 💀💀 im crying rn",
    "What is the capital of Australia? How many people live in Canberra, and why isn't Sydney the capital?",
    "Great headphones. Sound is crisp, bass is deep, and the battery lasts about {m} hours. \
     The case feels cheap though, and the app keeps asking me to sign in. 4/5 ⭐⭐⭐⭐",
    "東京は日本の首都です。人口は約{n}万人で、世界最大の都市圏の一つです。",
    "مرحبا بكم في موقعنا! نحن نقدم أفضل الخدمات منذ عام {n}. اتصلوا بنا اليوم؟",
    "RT @nasa: Our Perseverance rover just collected sample #{m} from Jezero Crater 🚀👩‍🚀 \
     Details: https://mars.nasa.gov/mars2020/?id={n}&lang=en",
    "In 1865, the Thirteenth Amendment abolished slavery in the United States; however, the \
     struggle for civil rights continued well into the twentieth century, culminating in the \
     Civil Rights Act of 1964 and the Voting Rights Act of 1965. Historians still debate the \
     relative importance of grassroots organizing, court decisions (e.g. Brown v. Board of \
     Education) and federal legislation.",
    "Can't log in since the update 🙁 error code E{n}: \"invalid token\". Tried reinstalling, \
     clearing cache, everything. @support please help!!",
    "Price drop: iPhone {m} Pro now ₹{n},999 (was ₹{p},999) — limited stock. Free delivery over $50.",
];

/// About `target` bytes of documents, deterministic.
fn mixed_corpus(target: usize) -> Vec<String> {
    let mut docs = Vec::new();
    let mut bytes = 0;
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    while bytes < target {
        // xorshift64: cheap, deterministic variety.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let template = TEMPLATES[(state % TEMPLATES.len() as u64) as usize];
        let text = template
            .replace("{n}", &(state % 100_000).to_string())
            .replace("{m}", &(state % 12 + 1).to_string())
            .replace("{p}", &(state % 900 + 10).to_string());
        // One document in five is two texts in one.
        let text = if state % 10 < 2 {
            let other = TEMPLATES[((state >> 8) % TEMPLATES.len() as u64) as usize];
            format!("{text}\n\n{other}")
        } else {
            text
        };
        bytes += text.len();
        docs.push(text);
    }
    docs
}

/// Median MB/s over timed rounds of `f`, which processes `bytes` bytes per call.
fn plain_mb_per_s(bytes: usize, quick: bool, mut f: impl FnMut()) -> f64 {
    let (min_rounds, budget) = if quick {
        (1, Duration::ZERO)
    } else {
        f(); // warm up
        (5, Duration::from_secs(2))
    };
    let mut rates = Vec::new();
    let start = Instant::now();
    while rates.len() < min_rounds || start.elapsed() < budget {
        let t = Instant::now();
        f();
        rates.push(bytes as f64 / t.elapsed().as_secs_f64() / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let docs = mixed_corpus(1_000_000);
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let mixed_bytes: usize = docs.iter().map(String::len).sum();
    let long = docs.join("\n");
    let mut out = vec![0f32; metadata::num_features()];

    let mixed = plain_mb_per_s(mixed_bytes, quick, || {
        for d in &refs {
            metadata::extract_into(black_box(d), &mut out);
        }
        black_box(&out);
    });
    let single = plain_mb_per_s(long.len(), quick, || {
        black_box(metadata::extract(black_box(&long)));
    });

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut group = c.benchmark_group("metadata");
    group.throughput(Throughput::Bytes(mixed_bytes as u64));
    group.bench_function("mixed_documents", |b| {
        b.iter(|| {
            for d in &refs {
                metadata::extract_into(black_box(d), &mut out);
            }
            black_box(&out);
        })
    });
    group.throughput(Throughput::Bytes(long.len() as u64));
    group.bench_function("one_long_text", |b| {
        b.iter(|| black_box(metadata::extract(black_box(&long))))
    });
    group.finish();
    c.final_summary();

    println!();
    println!(
        "metadata extraction, 1 thread, {} features{}:",
        metadata::num_features(),
        if quick { " (smoke run, one round)" } else { "" }
    );
    println!(
        "  mixed documents  {:>6} docs, {:>9} bytes: {:>8.1} MB/s",
        docs.len(),
        mixed_bytes,
        mixed
    );
    println!(
        "  one long text    {:>6} doc,  {:>9} bytes: {:>8.1} MB/s",
        1,
        long.len(),
        single
    );
}
