//! `tandem pack`: the minimal set of files a device needs to run one bundle from C — the
//! library, its header, ONNX Runtime, the one backbone graph the bundle runs on, the tokenizer,
//! the backbone manifest and the bundle — gathered into one directory that needs no cache.
//!
//! Layout (docs/deploy.md):
//!
//! ```text
//! PACK/
//! ├── README.txt                 how to build against and run from the pack
//! ├── include/tandem.h
//! ├── lib/libtandem.so.0         the library (libtandem.so -> libtandem.so.0, for linking)
//! ├── lib/libonnxruntime.so…     ONNX Runtime (libonnxruntime.so -> it when it is versioned)
//! ├── backbone/                  manifest.json (verbatim), the graph, tokenizer.json
//! └── model/                     the bundle: manifest.json, weights.safetensors, README.md
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use tandem::backbone::{sha256_file, BackboneManifest};
use tandem::{bundle, Error, ErrorKind, Result, Variant};

/// The C header this tandem was built with, embedded so that packing needs no checkout.
const HEADER: &str = include_str!("../../../include/tandem.h");

/// The library's SONAME (build.rs): what programs linked with `-ltandem` load at run time.
const SONAME: &str = concat!("libtandem.so.", env!("CARGO_PKG_VERSION_MAJOR"));

/// `tandem pack`'s arguments.
#[derive(Args)]
pub struct PackArgs {
    /// The bundle to pack (a directory written by `tandem train`).
    model: PathBuf,
    /// The pack directory to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Graph to pack: fp32, opt or int8 (default: the one the bundle was trained on; another
    /// variant of the same backbone serves it too, at that graph's accuracy).
    #[arg(long)]
    variant: Option<Variant>,
    /// Backbone: a name or a path, as for `predict` (default: the bundle's own when its top
    /// layers were fine-tuned, else the one it names in the cache, else all-MiniLM-L6-v2).
    #[arg(long, value_name = "NAME|DIR")]
    backbone: Option<PathBuf>,
    /// ONNX Runtime library (default: $TANDEM_ORT_LIB, then the cache).
    #[arg(long, value_name = "PATH")]
    ort_lib: Option<PathBuf>,
    /// libtandem.so to pack (default: the one beside this executable, as cargo builds it, or
    /// in ../lib, as `make install` puts it).
    #[arg(long, value_name = "PATH")]
    lib: Option<PathBuf>,
}

/// One file in the pack: its path inside the pack and its size (0 for a link).
struct Packed {
    rel: String,
    bytes: u64,
    note: String,
}

/// Packs `args.model` into `args.out` and prints what it holds.
pub fn run(args: PackArgs) -> Result<ExitCode> {
    // Everything is checked before anything is written.
    let (manifest, _) = bundle::load(&args.model)?;
    // A bundle with fine-tuned layers runs on its own backbone.
    let own = args.model.join(bundle::BACKBONE_DIR);
    let bb_dir = match &args.backbone {
        Some(arg) => tandem::home::resolve_backbone(arg),
        None if own.is_dir() => own,
        None => tandem::home::installed_backbone(&manifest.backbone.name)
            .unwrap_or_else(tandem::home::default_backbone_dir),
    };
    let bb = BackboneManifest::load(&bb_dir)?;
    let family = bb
        .graphs
        .get("fp32")
        .and_then(|f| bb.sha256_of(f))
        .unwrap_or_default();
    if family != manifest.backbone.family_sha256 || bb.dim != manifest.backbone.dim {
        return Err(Error::new(
            ErrorKind::BackboneMismatch,
            format!(
                "{} was trained on backbone {} (sha256 {}), but {} holds {} (sha256 {family}); \
                 pass the right one with --backbone",
                args.model.display(),
                manifest.backbone.name,
                manifest.backbone.family_sha256,
                bb_dir.display(),
                bb.name
            ),
        ));
    }
    let trained: Variant = manifest.backbone.variant.parse()?;
    let variant = args.variant.unwrap_or(trained);
    let graph = bb.graphs.get(variant.name()).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!("backbone {} has no `{variant}` graph", bb_dir.display()),
        )
    })?;
    if variant == trained && bb.sha256_of(&graph) != Some(manifest.backbone.graph_sha256.as_str()) {
        return Err(Error::new(
            ErrorKind::BackboneMismatch,
            format!(
                "the bundle was trained on the {variant} graph with sha256 {}, but {} records {}",
                manifest.backbone.graph_sha256,
                bb_dir.join(&graph).display(),
                bb.sha256_of(&graph).unwrap_or("no sha256")
            ),
        ));
    }
    let backbone_files = [graph.as_str(), "tokenizer.json"];
    for f in backbone_files {
        check_sha(&bb_dir.join(f), bb.sha256_of(f))?;
    }
    let (ort, _) = tandem::runtime::locate_library(args.ort_lib.as_deref());
    let ort_real = real_file(&ort, "the ONNX Runtime library (--ort-lib)")?;
    let lib = match &args.lib {
        Some(p) => p.clone(),
        None => find_library()?,
    };
    let lib_real = real_file(&lib, "libtandem.so (--lib)")?;

    let out = &args.out;
    refuse_non_empty(out)?;
    let tmp = temporary_sibling(out)?;
    let result = (|| {
        let mut files = Vec::new();
        let mut put = |rel: &str, from: Option<&Path>, text: Option<&str>, note: &str| {
            let to = tmp.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            }
            match (from, text) {
                (Some(from), _) => std::fs::copy(from, &to).map_err(|e| Error::io(&to, e))?,
                (None, Some(text)) => {
                    std::fs::write(&to, text).map_err(|e| Error::io(&to, e))?;
                    text.len() as u64
                }
                (None, None) => unreachable!("a file comes from a path or a text"),
            };
            let bytes = std::fs::metadata(&to).map_err(|e| Error::io(&to, e))?.len();
            files.push(Packed {
                rel: rel.to_string(),
                bytes,
                note: note.to_string(),
            });
            Ok::<(), Error>(())
        };
        put("include/tandem.h", None, Some(HEADER), "the C header")?;
        put(
            &format!("lib/{SONAME}"),
            Some(&lib_real),
            None,
            "the tandem library",
        )?;
        let ort_name = file_name(&ort_real)?;
        put(
            &format!("lib/{ort_name}"),
            Some(&ort_real),
            None,
            "ONNX Runtime",
        )?;
        put(
            "backbone/manifest.json",
            Some(&bb_dir.join("manifest.json")),
            None,
            "backbone manifest (verbatim: its hashes name the backbone)",
        )?;
        for f in backbone_files {
            let note = if f == graph {
                format!("the {variant} graph, sha256 verified")
            } else {
                "tokenizer, sha256 verified".to_string()
            };
            put(&format!("backbone/{f}"), Some(&bb_dir.join(f)), None, &note)?;
        }
        let model_dir = &args.model;
        for f in [bundle::MANIFEST_FILE, bundle::WEIGHTS_FILE] {
            put(
                &format!("model/{f}"),
                Some(&model_dir.join(f)),
                None,
                "the bundle",
            )?;
        }
        let card = model_dir.join(bundle::CARD_FILE);
        if card.is_file() {
            put("model/README.md", Some(&card), None, "the model card")?;
        } else {
            let text = bundle::card::render(&manifest);
            put(
                "model/README.md",
                None,
                Some(&text),
                "the model card (written now)",
            )?;
        }
        let readme = readme(variant, trained, &ort_name, &manifest.backbone.name);
        put("README.txt", None, Some(&readme), "how to use this pack")?;
        // Links, for building against the pack and for ONNX Runtime's unversioned name.
        let mut links = vec![("lib/libtandem.so".to_string(), SONAME.to_string())];
        if ort_name != "libonnxruntime.so" {
            links.push(("lib/libonnxruntime.so".to_string(), ort_name.clone()));
        }
        for (rel, target) in &links {
            let at = tmp.join(rel);
            std::os::unix::fs::symlink(target, &at).map_err(|e| Error::io(&at, e))?;
            files.push(Packed {
                rel: rel.clone(),
                bytes: 0,
                note: format!("link to {target}"),
            });
        }
        // The copies, checked again where they landed.
        for f in backbone_files {
            check_sha(&tmp.join("backbone").join(f), bb.sha256_of(f))?;
        }
        bundle::load(&tmp.join("model"))?;
        Ok(files)
    })();
    let files = match result {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if out.exists() {
        // Empty (checked above): replaced by the finished pack.
        std::fs::remove_dir(out).map_err(|e| Error::io(out, e))?;
    }
    std::fs::rename(&tmp, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        Error::io(out, e)
    })?;
    print!("{}", summary(out, &files, variant, trained));
    Ok(ExitCode::SUCCESS)
}

/// Fails unless `path`'s sha256 is `expected`.
fn check_sha(path: &Path, expected: Option<&str>) -> Result<()> {
    let expected = expected.ok_or_else(|| {
        Error::format(format!(
            "{}: the backbone manifest records no sha256 for it",
            path.display()
        ))
    })?;
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(Error::format(format!(
            "{}: sha256 {actual} does not match the backbone manifest ({expected})",
            path.display()
        )));
    }
    Ok(())
}

/// The regular file `path` names, links followed; NotFound naming `what` if there is none.
fn real_file(path: &Path, what: &str) -> Result<PathBuf> {
    match std::fs::canonicalize(path) {
        Ok(p) if p.is_file() => Ok(p),
        _ => Err(Error::new(
            ErrorKind::NotFound,
            format!("{}: {what} is not there", path.display()),
        )),
    }
}

fn file_name(path: &Path) -> Result<String> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("{}: no file name", path.display())))
}

/// libtandem.so beside this executable (cargo's target/PROFILE/) or in ../lib (an install
/// prefix).
fn find_library() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(|e| Error::io(Path::new("tandem"), e))?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let dir = exe.parent().unwrap_or(Path::new("."));
    let tried = [
        dir.join("libtandem.so"),
        dir.join("..").join("lib").join("libtandem.so"),
    ];
    tried.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
        Error::new(
            ErrorKind::NotFound,
            format!(
                "no libtandem.so at {} or {}: build it (`make lib`, or `cargo build --release \
                 --lib`) or name it with --lib",
                tried[0].display(),
                tried[1].display()
            ),
        )
    })
}

/// Refuses an `out` that exists and is not an empty directory.
fn refuse_non_empty(out: &Path) -> Result<()> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} is not empty; pack into a new or empty directory",
                    out.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if out.exists() => Err(Error::invalid(format!(
            "{} exists and is not a directory",
            out.display()
        ))),
        Err(e) => Err(Error::io(out, e)),
    }
}

/// A fresh temporary sibling of `out` to write the pack in before it is renamed into place.
fn temporary_sibling(out: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(out).map_err(|e| Error::io(out, e))?;
    let parent = abs
        .parent()
        .ok_or_else(|| Error::invalid(format!("{}: no parent directory", out.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let name = file_name(&abs)?;
    let tmp = parent.join(format!(".{name}.pack-tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    Ok(tmp)
}

/// Every file with its size, then the total and the command that runs it.
fn summary(out: &Path, files: &[Packed], variant: Variant, trained: Variant) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "packed {}", out.display());
    let mut sorted: Vec<&Packed> = files.iter().collect();
    sorted.sort_by(|a, b| a.rel.cmp(&b.rel));
    for f in &sorted {
        let size = if f.bytes == 0 && f.note.starts_with("link") {
            "link".to_string()
        } else {
            tandem::cache::usage::format_size(f.bytes)
        };
        let _ = writeln!(s, "  {:<34} {:>9}  {}", f.rel, size, f.note);
    }
    let total: u64 = files.iter().map(|f| f.bytes).sum();
    let _ = writeln!(
        s,
        "total {} ({total} bytes) in {} files",
        tandem::cache::usage::format_size(total),
        files.iter().filter(|f| f.bytes > 0).count()
    );
    if variant != trained {
        let _ = writeln!(
            s,
            "note: the bundle was trained (and its metrics measured) on the {trained} graph; \
             this pack runs it on {variant}"
        );
    }
    let _ = writeln!(
        s,
        "see {} for how to run it",
        out.join("README.txt").display()
    );
    s
}

/// README.txt of a pack: what is in it and how to build against it and run it.
fn readme(variant: Variant, trained: Variant, ort_name: &str, backbone: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "A tandem pack: everything a device needs to run one trained model from C, with no
tandem cache directory (written by `tandem pack`, tandem {version}).

{files}
Build:
  cc app.c -IPACK/include -LPACK/lib -ltandem -Wl,-rpath,'$ORIGIN/lib' -o app
  (or set LD_LIBRARY_PATH=PACK/lib at run time instead of the rpath)

Load, in C (examples/c/predict.c in the tandem repository does exactly this):
  tandem_options *o = tandem_options_new();
  tandem_options_set_backbone_dir(o, \"PACK/backbone\", strlen(\"PACK/backbone\"));
  tandem_options_set_variant(o, \"{variant}\", {vlen});
  tandem_options_set_ort_library(o, \"PACK/lib/{ort_name}\", strlen(\"PACK/lib/{ort_name}\"));
  tandem_backbone_load(o, &backbone);
  tandem_model_load(backbone, \"PACK/model\", strlen(\"PACK/model\"), &model);

The variant must be set: the default is fp32, and this pack holds only the {variant} graph.
With the predict example:
  ./predict --backbone PACK/backbone --variant {variant} --ort-lib PACK/lib/{ort_name} PACK/model \"some text\"

backbone/manifest.json is the original, byte for byte: it lists the hashes of graphs that are
not packed, because the fp32 graph's hash is the backbone's identity, which the bundle checks.
Copy the pack with its links (cp -a, tar).
",
        version = env!("CARGO_PKG_VERSION"),
        files = [
            ("include/tandem.h", "the C header".to_string()),
            (
                &format!("lib/{SONAME}"),
                "the tandem library (lib/libtandem.so links to it, to build against)".into(),
            ),
            (
                &format!("lib/{ort_name}"),
                "ONNX Runtime, loaded by tandem at run time".into(),
            ),
            (
                "backbone/",
                format!("{backbone}: manifest.json, its {variant} graph, tokenizer.json"),
            ),
            ("model/", "the bundle (model/README.md is its model card)".into()),
        ]
        .iter()
        .map(|(f, what)| format!("  {f:<30} {what}\n"))
        .collect::<String>(),
        vlen = variant.name().len(),
    );
    if variant != trained {
        let _ = writeln!(
            s,
            "\nThe model was trained on the {trained} graph; its metrics are for that graph, and \
             this {variant} graph gives slightly different embeddings."
        );
    }
    s
}
