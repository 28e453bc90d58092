//! What the fuzz targets check, shared with the main crate's `tests/fuzz_regressions.rs` (which
//! includes this file), so a saved input replays through exactly the calls and checks that
//! found it. Each check takes the raw input bytes, panics when the library misbehaves, and
//! returns normally on any input the library handles as documented, with whether it was
//! accepted. Only tandem and the main crate's own dependencies are used here.

use std::path::{Path, PathBuf};

use half::f16;
use ndarray::Array2;
use serde_json::Value;
use tandem::backbone::{BackboneManifest, BACKBONE_FORMAT};
use tandem::bundle::{build_heads, parse_manifest, parse_weights};
use tandem::cache::{EmbeddingCache, TokenCache};
use tandem::heads::{decode, predict_arrays, Architecture, Network};
use tandem::train::trainer::{Recipe, TrainerSpec, MAX_BUDGET_SECONDS};
use tandem::{metadata, ErrorKind, TokenSeqs};

/// Texts a loaded bundle predicts on.
const TEXTS: [&str; 3] = [
    "",
    "Free entry! Call 0800 123 now, http://x.co @bob #win",
    "What is the capital of France?",
];

/// The bundle loader. Input: a little-endian `u32` manifest length `m`, `m` bytes of
/// `manifest.json`, then the bytes of `weights.safetensors`. Both are parsed and checked
/// against each other as `bundle::build_heads` does for `Model::load` (less the weights' sha256, which a fuzzer cannot
/// forge, and the backbone identity). Whatever passes must predict without panicking:
/// `predict_arrays` on three texts (their real metadata features through the bundle's
/// normalizer, embeddings of the bundle's width, per-token vectors for sequence heads) gives
/// one row per text and task, of the head's width, and every row decodes.
pub fn bundle(data: &[u8]) -> bool {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return false;
    };
    let m = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (manifest, weights) = rest.split_at(m);
    let Ok(manifest) = std::str::from_utf8(manifest) else {
        return false;
    };
    let (Ok(manifest), Ok(weights)) = (parse_manifest(manifest), parse_weights(weights)) else {
        return false;
    };
    let Ok(heads) = build_heads(&manifest, &weights) else {
        return false;
    };
    let arch = &heads.network.arch;
    let n = TEXTS.len();
    let emb = Array2::from_shape_fn((n, arch.emb_dim), |(i, j)| {
        if i == 0 {
            0.0
        } else {
            ((i * 31 + j) as f32).sin() * 0.1
        }
    });
    let feats = match &heads.normalizer {
        Some(norm) => norm.transform(metadata::extract_batch(&TEXTS).view()),
        None => Array2::zeros((n, 0)),
    };
    assert_eq!(feats.ncols(), arch.n_features, "normalizer width");
    let tokens = arch.needs_tokens().then(|| {
        let mut t = TokenSeqs::new(arch.emb_dim);
        for (i, len) in [1usize, 2, 5].into_iter().enumerate() {
            let v = Array2::from_shape_fn((len, arch.emb_dim), |(r, c)| (r + c + i) as f32 * 0.01);
            t.push(v.view());
        }
        t
    });
    if arch.needs_tokens() {
        assert!(
            predict_arrays(&heads, emb.view(), feats.view(), None).is_err(),
            "sequence heads predicted without tokens"
        );
    }
    let out = predict_arrays(&heads, emb.view(), feats.view(), tokens.as_ref())
        .expect("a bundle that loads must predict");
    assert_eq!(out.len(), heads.tasks.len());
    assert_eq!(out.len(), arch.outputs.len());
    for ((p, task), &width) in out.iter().zip(&heads.tasks).zip(&arch.outputs) {
        assert_eq!(p.dim(), (n, width), "task {}", task.spec.name);
        for row in p.rows() {
            assert_eq!(decode(task, &row.to_vec()).task, task.spec.name);
        }
    }
    true
}

/// Bundles a trainer could write, with odd shapes: the input describes an architecture (mode,
/// widths, MLP settings, sequence encoder, tasks) within small bounds, a feature selection, a
/// weight scale and a dtype; tandem builds that network itself (`Network::new`) and the bundle
/// is serialized as `bundle::save` would write it, then goes through [`bundle`]. Checks, on
/// top of [`bundle`]'s (whatever loads predicts): a bundle of an architecture that passes
/// `Architecture::validate`, with finite weights, must load (what trains must load). With
/// `TANDEM_FUZZ_DUMP=FILE` the bundle bytes are written there first, to keep a failing one as
/// a `bundle` regression.
///
/// Input, one field after another (past the end, every field reads 0): mode u8, emb_dim u8,
/// n_features u8, code_dim u8, encoder and head MLPs (hidden count u8, widths u8 each,
/// activation u8, dropout u8, layer_norm u8, residual u8), tasks (count u8, per task kind u8,
/// width u8, threshold u8, scale mean u8 and std u8), sequence encoder (present u8, queries u8,
/// kernel count u8, kernels u8 each, channels u8, transformer u8, heads u8, ffn u8, dropout u8),
/// feature selection and statistics (u8 each), the init seed u32, the weight scale u8 and f16
/// u8.
pub fn bundle_arch(data: &[u8]) -> bool {
    use serde_json::json;
    let mut c = Cursor(data);
    let modes = ["two_stage", "joint", "embedding_only", "metadata_only"];
    let mode = modes[c.u8() as usize % 4];
    let uses_emb = mode != "metadata_only";
    let uses_meta = mode != "embedding_only";
    let small = |c: &mut Cursor, max: u8| 1 + (c.u8() % max) as usize;
    let emb_dim = if uses_emb { small(&mut c, 12) } else { 0 };
    let n_features = if uses_meta { small(&mut c, 8) } else { 0 };
    let code_dim = if uses_meta { small(&mut c, 6) } else { 0 };
    let dropouts = [0.0, 0.1, 0.5];
    let mlp = |c: &mut Cursor| {
        let hidden: Vec<usize> = (0..c.u8() % 3).map(|_| small(c, 8)).collect();
        json!({
            "hidden": hidden,
            "activation": if c.flag() { "relu" } else { "gelu" },
            "dropout": dropouts[c.u8() as usize % 3],
            "layer_norm": !c.flag(),
            "residual": c.flag(),
        })
    };
    let encoder = mlp(&mut c);
    let head = mlp(&mut c);
    let kinds = ["multiclass", "binary", "multilabel", "regression"];
    let (mut tasks, mut outputs, mut scales) = (vec![], vec![], vec![]);
    for t in 0..small(&mut c, 3) {
        let kind = kinds[c.u8() as usize % 4];
        let width = match kind {
            "multiclass" => 1 + small(&mut c, 4),
            "multilabel" => small(&mut c, 4),
            _ => 1,
        };
        let threshold = c.u8() as f32 / 255.0;
        let labels: Vec<String> = match kind {
            "regression" => vec![],
            "binary" => vec!["no".into(), "yes".into()],
            _ => (0..width).map(|l| format!("label {l}")).collect(),
        };
        let thresholds = match kind {
            "binary" => vec![threshold],
            "multilabel" => vec![threshold; width],
            _ => vec![],
        };
        let (mean, std) = (c.u8() as f32 - 128.0, 0.25 + c.u8() as f32 / 16.0);
        scales.push(if kind == "regression" {
            (mean, std)
        } else {
            (0.0, 1.0)
        });
        outputs.push(width);
        tasks.push(
            json!({"name": format!("task {t}"), "kind": kind, "labels": labels,
            "thresholds": thresholds}),
        );
    }
    let mut arch = json!({
        "mode": mode, "emb_dim": emb_dim, "n_features": n_features, "encoder": encoder,
        "code_dim": code_dim, "head": head, "outputs": outputs, "target_scale": scales,
    });
    if uses_emb && c.flag() {
        let queries = c.u8() % 3;
        let kernels: Vec<usize> = (0..c.u8() % 3)
            .map(|_| 1 + 2 * (c.u8() % 3) as usize)
            .collect();
        arch["sequence"] = json!({
            "attention_queries": queries,
            "conv_kernels": kernels,
            "conv_channels": small(&mut c, 4),
            "transformer": c.flag(),
            "transformer_heads": small(&mut c, 4),
            "transformer_ffn": small(&mut c, 8),
            "dropout": dropouts[c.u8() as usize % 3],
        });
    }
    let names = metadata::feature_names();
    let features = uses_meta.then(|| {
        // Ascending and distinct: one index from each block of 8 features.
        let selected: Vec<usize> = (0..n_features)
            .map(|k| k * 8 + (c.u8() % 8) as usize)
            .collect();
        let mean: Vec<f32> = (0..n_features)
            .map(|_| c.u8() as f32 / 4.0 - 32.0)
            .collect();
        let std: Vec<f32> = (0..n_features)
            .map(|_| 0.25 + c.u8() as f32 / 32.0)
            .collect();
        json!({"names": names, "selected": selected, "mean": mean, "std": std})
    });
    let Ok(architecture) = serde_json::from_value::<Architecture>(arch.clone()) else {
        panic!("the generated architecture does not parse: {arch}");
    };
    let seed = c.u32();
    let scale = [1.0f32, 10.0, 1e4, 1e30][c.u8() as usize % 4];
    let f16 = c.flag();
    let valid = architecture.validate().is_ok();
    let mut rng = <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(
        u64::from(seed),
    );
    let Ok(network) = Network::new(architecture, &mut rng) else {
        return false;
    };
    let weights = network.weights();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>, bool)> = weights
        .iter()
        .map(|(name, a)| {
            let values = a.iter().map(|&x| x * scale);
            let (data, finite): (Vec<u8>, bool) = if f16 {
                let v: Vec<f16> = values.map(f16::from_f32).collect();
                let finite = v.iter().all(|x| x.is_finite());
                (v.iter().flat_map(|x| x.to_le_bytes()).collect(), finite)
            } else {
                let v: Vec<f32> = values.collect();
                let finite = v.iter().all(|x| x.is_finite());
                (v.iter().flat_map(|x| x.to_le_bytes()).collect(), finite)
            };
            (name.clone(), a.shape().to_vec(), data, finite)
        })
        .collect();
    let finite = bytes.iter().all(|b| b.3);
    let dtype = if f16 {
        safetensors::Dtype::F16
    } else {
        safetensors::Dtype::F32
    };
    let views = bytes.iter().map(|(name, shape, data, _)| {
        let view = safetensors::tensor::TensorView::new(dtype, shape.clone(), data);
        (name.clone(), view.expect("a tensor of its own shape"))
    });
    let weights = safetensors::serialize(views, None).expect("serialize the weights");
    let manifest = json!({
        "format": tandem::bundle::BUNDLE_FORMAT,
        "created_by": "tandem-fuzz",
        "backbone": {"name": "fuzz", "family_sha256": "00", "variant": "fp32",
            "graph_sha256": "00", "dim": emb_dim},
        "features": features,
        "tasks": tasks,
        "architecture": arch,
        "metrics": {},
        "training": {},
        "seed": seed,
        "weights_sha256": "",
        "weights_dtype": if f16 { "f16" } else { "f32" },
    });
    let manifest = serde_json::to_vec(&manifest).expect("manifest JSON");
    let mut input = (manifest.len() as u32).to_le_bytes().to_vec();
    input.extend_from_slice(&manifest);
    input.extend_from_slice(&weights);
    if let Some(path) = std::env::var_os("TANDEM_FUZZ_DUMP") {
        std::fs::write(path, &input).expect("TANDEM_FUZZ_DUMP");
    }
    let loaded = bundle(&input);
    if valid && finite {
        assert!(loaded, "a valid architecture's bundle does not load");
    }
    loaded
}

/// The backbone manifest (`BackboneManifest::parse`, behind `BackboneManifest::load`): a
/// manifest that parses meets every check `parse` documents, anything else is a `Format` error.
pub fn backbone_manifest(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match BackboneManifest::parse(text) {
        Ok(m) => {
            assert_eq!(m.format, BACKBONE_FORMAT);
            // A known pooling, and it says its own name back.
            let name = serde_json::to_string(&m.pooling).expect("serializes");
            assert_eq!(name, format!("\"{}\"", m.pooling.name()));
            assert!(m.dim > 0 && m.max_length >= 2);
            for (file, sha) in &m.files {
                assert_eq!(m.sha256_of(file), Some(sha.as_str()));
            }
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Format, "{e}");
            false
        }
    }
}

/// The trainer spec (`TrainerSpec::parse_json`, behind `tandem_trainer_new`): a spec that
/// parses names at least one task, each once, and has a budget only with the auto recipe,
/// within range; anything else is an `InvalidArgument` error.
pub fn trainer_spec(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match TrainerSpec::parse_json(text) {
        Ok(spec) => {
            assert!(!spec.tasks.is_empty());
            let mut names: Vec<&str> = spec.tasks.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), spec.tasks.len());
            assert!(names.iter().all(|n| !n.is_empty()));
            if spec.finetune.is_some() {
                assert_eq!(spec.recipe, Recipe::Auto);
            }
            if let Some(b) = spec.budget_seconds {
                assert_eq!(spec.recipe, Recipe::Auto);
                assert!(
                    b.is_finite() && (0.0..=MAX_BUDGET_SECONDS).contains(&b),
                    "{b}"
                );
            }
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            false
        }
    }
}

/// The JSONL reader (`data::parse_rows` with `csv = false`, behind `read_rows`): rows in line
/// order, each from a line of the text, every field readable as text; or a `Format` error
/// naming the input and line.
pub fn jsonl(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match tandem::data::parse_rows(text, false, "fuzz.jsonl") {
        Ok(rows) => {
            let lines = text.lines().count();
            assert!(rows.len() <= lines);
            assert!(rows.windows(2).all(|w| w[0].line < w[1].line));
            for row in &rows {
                assert!(row.line >= 1 && row.line <= lines);
                for key in row.fields.keys() {
                    let _ = row.text(key);
                }
            }
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Format, "{e}");
            assert!(e.message().starts_with("fuzz.jsonl:"), "{e}");
            false
        }
    }
}

/// The CSV reader (`data::parse_rows` with `csv = true`): every field of every row a string;
/// or a `Format` error naming the input.
pub fn csv(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match tandem::data::parse_rows(text, true, "fuzz.csv") {
        Ok(rows) => {
            for row in &rows {
                assert!(row.fields.values().all(Value::is_string));
                for key in row.fields.keys() {
                    assert!(row.text(key).is_some());
                }
            }
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Format, "{e}");
            assert!(e.message().starts_with("fuzz.csv:"), "{e}");
            false
        }
    }
}

/// The metadata extractor (`extract`, `extract_batch`) on any text (invalid UTF-8 becomes
/// U+FFFD): `feature_names().len()` values, all finite; and a text's row in a batch, after
/// another text, is bit for bit what it gets alone (no state leaks from text to text).
pub fn metadata(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let n = metadata::feature_names().len();
    assert_eq!(n, metadata::num_features());
    let v = metadata::extract(&text);
    assert_eq!(v.len(), n);
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        panic!("feature {} is {}", metadata::feature_names()[i], v[i]);
    }
    // A batch: the text's second half (from a char boundary), then the whole text.
    let cut = (text.len() / 2..=text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let batch = metadata::extract_batch(&[&text[cut..], &text[..]]);
    assert_eq!(batch.dim(), (2, n));
    assert!(batch.iter().all(|x| x.is_finite()));
    let bits = |xs: &[f32]| xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(&batch.row(1).to_vec()),
        bits(&v),
        "a text's batch row differs from its features alone"
    );
    true
}

/// Reads the fields of an input one after another; past the end, every read is 0 or empty.
pub struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) | u16::from(self.u8()) << 8
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    /// The low bit of a byte.
    fn flag(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Bytes with a one-byte length.
    fn blob(&mut self) -> Vec<u8> {
        let n = self.u8() as usize;
        self.bytes(n).to_vec()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Damage to a cache file, decoded from the input after the query (see [`query`]): until the
/// input ends, an op byte then its fields. Offsets wrap around the current length, so every
/// value means something.
///
/// | op % 7 | damage | fields |
/// |---|---|---|
/// | 0 | XOR one byte | offset u16, mask u8 |
/// | 1 | overwrite bytes (never past the end) | offset u16, bytes (u8 length) |
/// | 2 | truncate | length u16 (modulo length + 1) |
/// | 3 | append garbage | bytes (u8 length) |
/// | 4 | copy bytes within the file | from u16, to u16, length u8 |
/// | 5 | [`Forge::Poisoned`] | record u8, text u8, value u16, bits u32 |
/// | 6 | [`Forge::Count`] | record u8, count u32 |
enum Op {
    Flip { at: u16, mask: u8 },
    Overwrite { at: u16, bytes: Vec<u8> },
    Truncate { to: u16 },
    Append { bytes: Vec<u8> },
    Copy { from: u16, to: u16, len: u8 },
    Forge(Forge),
}

/// Damage a random byte cannot do: records that pass their CRCs.
enum Forge {
    /// A whole record of text `text` with valid CRCs whose value `which` is non-finite (a
    /// buggy writer), over record `record` of the intact file (or after the last one).
    Poisoned {
        record: u8,
        text: u8,
        which: u16,
        bits: u32,
    },
    /// Token cache: record `record`'s header (of the intact file) re-signed with token count
    /// `count` (0, huge, past the end of the file...). The pooled cache has no counts: there,
    /// a poisoned record of text `record`.
    Count { record: u8, count: u32 },
}

impl Op {
    fn read(c: &mut Cursor) -> Op {
        match c.u8() % 7 {
            0 => Op::Flip {
                at: c.u16(),
                mask: c.u8(),
            },
            1 => Op::Overwrite {
                at: c.u16(),
                bytes: c.blob(),
            },
            2 => Op::Truncate { to: c.u16() },
            3 => Op::Append { bytes: c.blob() },
            4 => Op::Copy {
                from: c.u16(),
                to: c.u16(),
                len: c.u8(),
            },
            5 => Op::Forge(Forge::Poisoned {
                record: c.u8(),
                text: c.u8(),
                which: c.u16(),
                bits: c.u32(),
            }),
            _ => Op::Forge(Forge::Count {
                record: c.u8(),
                count: c.u32(),
            }),
        }
    }

    /// Applies byte-level damage to `bytes`; hands a forging op back to the cache's own code.
    fn apply(self, bytes: &mut Vec<u8>) -> Option<Forge> {
        let len = bytes.len();
        let wrap = |at: u16| if len == 0 { 0 } else { at as usize % len };
        match self {
            Op::Flip { at, mask } => {
                if len > 0 {
                    bytes[wrap(at)] ^= mask;
                }
            }
            Op::Overwrite { at, bytes: new } => {
                let at = wrap(at);
                let n = new.len().min(len - at);
                bytes[at..at + n].copy_from_slice(&new[..n]);
            }
            Op::Truncate { to } => bytes.truncate(to as usize % (len + 1)),
            Op::Append { bytes: new } => bytes.extend_from_slice(&new),
            Op::Copy { from, to, len: n } => {
                let (from, to) = (wrap(from), wrap(to));
                let n = (n as usize).min(len - from).min(len - to);
                bytes.copy_within(from..from + n, to);
            }
            Op::Forge(f) => return Some(f),
        }
        None
    }
}

/// Writes `new` over `bytes` at `at`, extending them when it runs past the end.
fn write_at(bytes: &mut Vec<u8>, at: usize, new: &[u8]) {
    let at = at.min(bytes.len());
    let end = at + new.len();
    if end > bytes.len() {
        bytes.resize(end, 0);
    }
    bytes[at..end].copy_from_slice(new);
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn key(text: &str) -> [u8; 32] {
    <sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()).into()
}

/// A non-finite f32 from any bits: the exponent forced to all ones (an infinity or a NaN).
fn non_finite(bits: u32) -> f32 {
    f32::from_bits(bits | 0x7f80_0000)
}

/// The texts of the cache checks.
const CACHED: [&str; 5] = [
    "",
    "a",
    "hello world",
    "ünïcödé ✓",
    "a longer text, with more tokens than the others",
];

/// The start of a cache input: a byte `q`, then `q % 16` bytes, each picking a text of
/// [`CACHED`] to look up (repeats allowed).
fn query(c: &mut Cursor) -> Vec<&'static str> {
    let q = c.u8() % 16;
    (0..q)
        .map(|_| CACHED[c.u8() as usize % CACHED.len()])
        .collect()
}

/// What a first lookup on a damaged cache must do, whatever the damage: give every text its
/// true value `expect` (or a value `forged` accepts), embed only missing texts, each once, and
/// count them. `lookup` runs it with a hook the embedder calls with what it is asked for.
/// Returns the embedded texts and the values served.
fn checked_lookup<T: PartialEq + std::fmt::Debug>(
    query: &[&str],
    expect: &T,
    forged: impl Fn(&T) -> bool,
    lookup: impl FnOnce(&mut dyn FnMut(&[&str])) -> (T, tandem::cache::CacheStats),
) -> (Vec<String>, T) {
    let mut embedded: Vec<String> = Vec::new();
    let (got, stats) = lookup(&mut |t: &[&str]| embedded.extend(t.iter().map(|t| t.to_string())));
    if &got != expect {
        assert!(
            forged(&got),
            "a text got a wrong value: {got:?}, expected {expect:?}"
        );
    }
    let mut distinct = embedded.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), embedded.len(), "a text was embedded twice");
    assert!(embedded.iter().all(|t| query.contains(&t.as_str())));
    assert_eq!(stats.misses, embedded.len());
    assert_eq!(stats.hits, query.len() - embedded.len());
    assert!(stats.repaired <= stats.misses);
    (embedded, got)
}

/// The pooled embedding cache (`pooled.v2`: `EmbeddingCache::open_file`, `embed_with`) on a
/// damaged file: a valid cache of [`CACHED`] (3 floats per text), built with the real API,
/// damaged as the input says ([`query`], then [`Op`]s). Opening it and looking texts up never
/// fails; every text gets its true embedding (a damaged record is a miss, embedded again,
/// never a wrong vector); the embedder sees only missing texts, each once; the same handle
/// then serves them all from the cache, and so does a second open of the file.
pub struct PooledCacheCheck {
    path: PathBuf,
    good: Vec<u8>,
}

impl PooledCacheCheck {
    const DIM: usize = 3;
    /// Key, CRC, values.
    const REC: usize = 32 + 4 + 4 * Self::DIM;

    fn row(text: &str) -> [f32; Self::DIM] {
        let s = text.bytes().map(u32::from).sum::<u32>() as f32;
        std::array::from_fn(|j| s / 8.0 + j as f32 + text.len() as f32 * 0.25)
    }

    fn fake(texts: &[&str]) -> Array2<f32> {
        Array2::from_shape_fn((texts.len(), Self::DIM), |(i, j)| Self::row(texts[i])[j])
    }

    /// Builds the valid cache file in `dir` with the real API.
    pub fn new(dir: &Path) -> PooledCacheCheck {
        let path = dir.join("pooled.v2");
        let _ = std::fs::remove_file(&path);
        let cache = EmbeddingCache::open_file(&path, Self::DIM).expect("open");
        cache
            .embed_with(&CACHED, |t| Ok(Self::fake(t)))
            .expect("build the cache");
        let good = std::fs::read(&path).expect("read the cache");
        assert_eq!(good.len(), CACHED.len() * Self::REC);
        PooledCacheCheck { path, good }
    }

    /// A record of `text` with a valid CRC and a non-finite value, over record slot `slot`.
    fn poison(bytes: &mut Vec<u8>, slot: u8, text: u8, which: u16, bits: u32) {
        let text = CACHED[text as usize % CACHED.len()];
        let mut values = Self::row(text);
        values[which as usize % Self::DIM] = non_finite(bits);
        let values: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let k = key(text);
        let mut rec = k.to_vec();
        rec.extend_from_slice(&crc(&[&k, &values]).to_le_bytes());
        rec.extend_from_slice(&values);
        let slot = slot as usize % (bytes.len() / Self::REC + 1);
        write_at(bytes, slot * Self::REC, &rec);
    }

    /// Damages the cache as `data` says, then looks texts up.
    pub fn check(&self, data: &[u8]) {
        let mut c = Cursor(data);
        let query = query(&mut c);
        let mut bytes = self.good.clone();
        while !c.is_empty() {
            match Op::read(&mut c).apply(&mut bytes) {
                None => {}
                Some(Forge::Poisoned {
                    record,
                    text,
                    which,
                    bits,
                }) => Self::poison(&mut bytes, record, text, which, bits),
                Some(Forge::Count { record, count }) => {
                    Self::poison(&mut bytes, record, record, 0, count)
                }
            }
        }
        std::fs::write(&self.path, &bytes).expect("write the damaged cache");
        let expect = Self::fake(&query);
        let cache =
            EmbeddingCache::open_file(&self.path, Self::DIM).expect("a damaged cache opens");
        checked_lookup(
            &query,
            &expect,
            |_| false,
            |hook| {
                cache
                    .embed_with(&query, |t| {
                        hook(t);
                        Ok(Self::fake(t))
                    })
                    .expect("a damaged cache still embeds")
            },
        );
        // The handle, and a fresh one on the repaired file, serve every text from the cache.
        let (again, stats) = cache
            .embed_with(&query, |_| panic!("the same handle embedded again"))
            .expect("lookup");
        assert_eq!((&again, stats.misses), (&expect, 0));
        drop(cache);
        let cache = EmbeddingCache::open_file(&self.path, Self::DIM).expect("reopen");
        let (again, stats) = cache
            .embed_with(&query, |_| panic!("a repaired cache embedded again"))
            .expect("lookup after reopening");
        assert_eq!((again, stats.misses, stats.repaired), (expect, 0, 0));
    }
}

/// The per-token cache (`tokens.v3`: `TokenCache::open_file`, `embed_with`) on a damaged file:
/// a valid cache of [`CACHED`] (2-wide f16 vectors, 1 to 7 tokens per text), built with the
/// real API, damaged as the input says ([`query`], then [`Op`]s: headers re-signed with any
/// count, records forged with valid CRCs and a NaN or infinity). Opening it and looking texts
/// up, with the misses' pooled rows stored in a fresh pooled cache, never fails; every text
/// gets its true token vectors; the embedder sees only missing texts, each once; the pooled
/// cache then serves those; the same handle serves every text from the cache, and so does a
/// second open of the file.
pub struct TokenCacheCheck {
    path: PathBuf,
    pooled: PathBuf,
    good: Vec<u8>,
    /// Where each record of `good` starts, then its end.
    starts: Vec<usize>,
}

impl TokenCacheCheck {
    const DIM: usize = 2;
    /// Key, count, header CRC.
    const HEADER: usize = 32 + 8;

    fn tokens(text: &str) -> usize {
        text.len() % 7 + 1
    }

    /// Exact in f16, distinct per text.
    fn seq(text: &str) -> Array2<f32> {
        let s = text.bytes().map(usize::from).sum::<usize>();
        Array2::from_shape_fn((Self::tokens(text), Self::DIM), |(i, j)| {
            ((s + 3 * i + j) % 64) as f32 / 4.0
        })
    }

    fn fake(texts: &[&str]) -> (Array2<f32>, TokenSeqs) {
        let mut seqs = TokenSeqs::new(Self::DIM);
        for t in texts {
            seqs.push(Self::seq(t).view());
        }
        let pooled = Array2::from_shape_fn((texts.len(), Self::DIM), |(i, j)| {
            Self::seq(texts[i]).column(j).sum() / Self::tokens(texts[i]) as f32
        });
        (pooled, seqs)
    }

    /// Builds the valid cache file in `dir` with the real API.
    pub fn new(dir: &Path) -> TokenCacheCheck {
        let path = dir.join("tokens.v3");
        let _ = std::fs::remove_file(&path);
        let cache = TokenCache::open_file(&path, Self::DIM).expect("open");
        cache
            .embed_with(&CACHED, None, |t| Ok(Self::fake(t)))
            .expect("build the cache");
        let good = std::fs::read(&path).expect("read the cache");
        let mut starts = vec![0];
        for t in CACHED {
            let end = starts.last().unwrap() + Self::HEADER + Self::tokens(t) * Self::DIM * 2 + 4;
            starts.push(end);
        }
        assert_eq!(*starts.last().unwrap(), good.len());
        TokenCacheCheck {
            path,
            pooled: dir.join("pooled.v2"),
            good,
            starts,
        }
    }

    fn forge(&self, bytes: &mut Vec<u8>, f: Forge) {
        match f {
            Forge::Count { record, count } => {
                let at = self.starts[record as usize % CACHED.len()];
                if at + Self::HEADER <= bytes.len() {
                    let count = count.to_le_bytes();
                    let header_crc = crc(&[&bytes[at..at + 32], &count]).to_le_bytes();
                    bytes[at + 32..at + 36].copy_from_slice(&count);
                    bytes[at + 36..at + 40].copy_from_slice(&header_crc);
                }
            }
            Forge::Poisoned {
                record,
                text,
                which,
                bits,
            } => {
                let text = CACHED[text as usize % CACHED.len()];
                let mut values: Vec<f16> =
                    Self::seq(text).iter().map(|&v| f16::from_f32(v)).collect();
                let which = which as usize % values.len();
                values[which] = f16::from_f32(non_finite(bits));
                let values: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let k = key(text);
                let count = (Self::tokens(text) as u32).to_le_bytes();
                let mut rec = k.to_vec();
                rec.extend_from_slice(&count);
                rec.extend_from_slice(&crc(&[&k, &count]).to_le_bytes());
                rec.extend_from_slice(&values);
                rec.extend_from_slice(&crc(&[&k, &count, &values]).to_le_bytes());
                let at = self.starts[record as usize % self.starts.len()];
                write_at(bytes, at, &rec);
            }
        }
    }

    /// Whether every text whose served vectors are not its true ones was served from a record
    /// of the damaged file that passes both CRCs: damage the fuzzer forged (libFuzzer's
    /// comparison tracing hands it the CRC the cache compares against). CRCs catch accidents,
    /// not forgeries: whoever can write the cache file can write valid records, so serving
    /// them is the format working as documented. Any other wrong value is a bug.
    fn forged(&self, damaged: &[u8], query: &[&str], got: &TokenSeqs) -> bool {
        let truth = Self::fake(query).1;
        (0..query.len()).all(|i| {
            if got.text(i) == truth.text(i) {
                return true;
            }
            let k = key(query[i]);
            let count = (got.length(i) as u32).to_le_bytes();
            let values: Vec<u8> = got.text(i).iter().flat_map(|v| v.to_le_bytes()).collect();
            let mut rec = k.to_vec();
            rec.extend_from_slice(&count);
            rec.extend_from_slice(&crc(&[&k, &count]).to_le_bytes());
            rec.extend_from_slice(&values);
            rec.extend_from_slice(&crc(&[&k, &count, &values]).to_le_bytes());
            damaged.windows(rec.len()).any(|w| w == rec.as_slice())
        })
    }

    /// Damages the cache as `data` says, then looks texts up.
    pub fn check(&self, data: &[u8]) {
        let mut c = Cursor(data);
        let query = query(&mut c);
        let mut bytes = self.good.clone();
        while !c.is_empty() {
            if let Some(f) = Op::read(&mut c).apply(&mut bytes) {
                self.forge(&mut bytes, f);
            }
        }
        std::fs::write(&self.path, &bytes).expect("write the damaged cache");
        let _ = std::fs::remove_file(&self.pooled);
        let expect = Self::fake(&query).1;
        let cache = TokenCache::open_file(&self.path, Self::DIM).expect("a damaged cache opens");
        let pooled = EmbeddingCache::open_file(&self.pooled, Self::DIM).expect("pooled cache");
        let forged = |got: &TokenSeqs| self.forged(&bytes, &query, got);
        let (embedded, served) = checked_lookup(&query, &expect, forged, |hook| {
            cache
                .embed_with(&query, Some(&pooled), |t| {
                    hook(t);
                    Ok(Self::fake(t))
                })
                .expect("a damaged cache still embeds")
        });
        // What was served stays served (a forged record is as good as a real one from now on).
        let expect = served;
        // The pooled rows of the misses came along.
        let missed: Vec<&str> = embedded.iter().map(String::as_str).collect();
        let (rows, _) = pooled
            .embed_with(&missed, |_| {
                panic!("the misses' pooled rows were not stored")
            })
            .expect("pooled lookup");
        assert_eq!(rows, Self::fake(&missed).0);
        // The handle, and a fresh one on the repaired file, serve every text from the cache.
        let (again, stats) = cache
            .embed_with(&query, None, |_| panic!("the same handle embedded again"))
            .expect("lookup");
        assert_eq!((&again, stats.misses), (&expect, 0));
        drop(cache);
        let cache = TokenCache::open_file(&self.path, Self::DIM).expect("reopen");
        let (again, stats) = cache
            .embed_with(&query, None, |_| panic!("a repaired cache embedded again"))
            .expect("lookup after reopening");
        assert_eq!((again, stats.misses, stats.repaired), (expect, 0, 0));
        let tokens: usize = CACHED
            .iter()
            .filter(|t| query.contains(t))
            .map(|t| Self::tokens(t))
            .sum();
        assert!(cache.total_tokens() >= tokens);
    }
}

/// The ONNX reader (`onnx::read::parse`, behind `onnx::read::read` for imported heads and for
/// the backbone graph an export extends). Input: the bytes of an ONNX model file. Any bytes are
/// accepted or refused with a `Format` error (never a panic, abort or huge allocation). An
/// accepted graph lists its inputs, outputs, nodes and initializers; every node reads only
/// values defined before it; and every initializer's data reads back (as f32 or i64 where its
/// type is one of those) with as many values as its shape has, or is refused with an error.
pub fn onnx_graph(data: &[u8]) -> bool {
    use tandem::onnx::read::{parse, summarize, tensor_to_f32, tensor_to_i64};
    let model = match parse(data) {
        Ok(m) => m,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Format, "{e}");
            return false;
        }
    };
    let g = model.graph.as_ref().expect("parse checks the graph");
    let s = summarize(g);
    assert_eq!(s.nodes.len(), g.node.len());
    assert_eq!(s.initializers.len(), g.initializer.len());
    let mut defined: std::collections::HashSet<&str> =
        g.initializer.iter().map(|t| t.name.as_str()).collect();
    defined.extend(g.input.iter().map(|v| v.name.as_str()));
    for n in &g.node {
        assert!(n
            .input
            .iter()
            .all(|x| x.is_empty() || defined.contains(x.as_str())));
        defined.extend(n.output.iter().map(String::as_str));
    }
    for t in &g.initializer {
        let want: u64 = t.dims.iter().map(|&d| d as u64).product();
        // No model directory: external data must be refused, never read.
        match tensor_to_f32(t, None) {
            Ok(a) => assert_eq!(a.len() as u64, want),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Format, "{e}"),
        }
        match tensor_to_i64(t, None) {
            Ok(a) => assert_eq!(a.len() as u64, want),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Format, "{e}"),
        }
    }
    // The head importer on the same graph: an MLP it accepts has parameters of the widths it
    // claims (they load into tandem's MLP of that shape); anything else is a clear error.
    let onnx_model = tandem::onnx::OnnxModel {
        proto: model.clone(),
        dir: None,
    };
    match tandem::onnx::import::parse_head(&onnx_model) {
        Ok(head) => {
            let arch_ok = head.input_dim > 0 && head.output_dim > 0;
            assert!(arch_ok);
            let mut rng =
                <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(0);
            let mut mlp = tandem::nn::Mlp::new(
                head.input_dim,
                Some(head.output_dim),
                &head.config,
                &mut rng,
            )
            .expect("an accepted head has a valid shape");
            head.load_into(&mut mlp).expect("an accepted head loads");
        }
        Err(e) => assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::Format),
            "{e}"
        ),
    }
    // The BERT layer reader (fine-tuning's split): layers it reads go back into the graph.
    use tandem::onnx::bert::{attention_heads, bert_layer_count, load_bert_layers, with_layers};
    let clear = |e: &tandem::Error| {
        assert!(
            matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::Format),
            "{e}"
        )
    };
    if bert_layer_count(&onnx_model) > 0 {
        match attention_heads(&onnx_model) {
            Ok(heads) => {
                assert!(heads > 0);
                match load_bert_layers(&onnx_model, heads) {
                    Ok(layers) => {
                        assert_eq!(layers.len(), bert_layer_count(&onnx_model));
                        with_layers(&onnx_model, 0, &layers)
                            .expect("layers read from a graph go back into it");
                    }
                    Err(e) => clear(&e),
                }
            }
            Err(e) => clear(&e),
        }
    }
    // The int8 layer walk (a fine-tuned bundle's int8 graph): layers of a small shape go in or
    // the graph is a clear error, never a panic.
    let n = tandem::onnx::quant::int8_layer_count(&onnx_model);
    if (1..=4).contains(&n) {
        let cfg = tandem::nn::bert::BertConfig {
            hidden: 8,
            heads: 2,
            intermediate: 16,
            layer_norm_eps: 1e-12,
        };
        let mut rng =
            <rand_chacha::ChaCha8Rng as rand_chacha::rand_core::SeedableRng>::seed_from_u64(0);
        let layers: Vec<_> = (0..n)
            .map(|i| {
                tandem::nn::bert::BertLayer::new(&cfg, &mut rng)
                    .expect("a valid shape")
                    .named(&format!("encoder.layer.{i}"))
            })
            .collect();
        if let Err(e) = tandem::onnx::quant::with_layers_int8(&onnx_model, 0, &layers) {
            clear(&e);
        }
    }
    true
}
