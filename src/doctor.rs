//! Health report: ONNX Runtime, execution providers, model files and graphs.
//!
//! The CLI's `tandem doctor` and the C ABI's `tandem_doctor_json` print the same report, so a
//! host application can show users exactly what the command line would.

use std::path::Path;

use serde::Serialize;

use crate::backbone::{verify_dir, BackboneManifest};
use crate::{Backbone, BackboneOptions, Variant};

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`onnxruntime`, `file model.onnx`, `graph int8`, ...).
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was found, or why it failed.
    pub detail: String,
}

/// An execution provider and whether this ONNX Runtime build offers it.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderStatus {
    /// ONNX Runtime's name for it (`CPUExecutionProvider`, `CUDAExecutionProvider`, ...).
    pub name: String,
    /// Whether the loaded library has it.
    pub available: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// True when every check passed.
    pub ok: bool,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// Execution providers of the loaded ONNX Runtime (empty when it did not load).
    pub execution_providers: Vec<ProviderStatus>,
}

/// Checks the runtime named by `options` (its `ort_library`, else `TANDEM_ORT_LIB`, else the
/// cache), the backbone in `dir` (every file against its manifest sha256), and that every graph
/// variant loads and embeds on `options.device`. Never fails: problems become failed checks.
pub fn doctor(dir: &Path, options: &BackboneOptions) -> DoctorReport {
    let mut checks = Checks(Vec::new());
    checks.push("tandem", Ok(crate::VERSION.to_string()));
    checks.push("cache", Ok(crate::home::cache_dir().display().to_string()));
    let providers = check_runtime(&mut checks, options);
    match BackboneManifest::load(dir) {
        Err(e) => checks.push("backbone", Err(e.message().to_string())),
        Ok(manifest) => check_backbone(&mut checks, dir, &manifest, options),
    }
    let checks = checks.0;
    DoctorReport {
        ok: checks.iter().all(|c| c.ok),
        checks,
        execution_providers: providers,
    }
}

/// The checks of a report, in order.
struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: &str, r: std::result::Result<String, String>) {
        let (ok, detail) = match r {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.0.push(Check {
            name: name.to_string(),
            ok,
            detail,
        });
    }
}

/// The ONNX Runtime library and its execution providers (only the CPU one is required; a
/// missing CUDA provider is listed, not a failure).
fn check_runtime(checks: &mut Checks, options: &BackboneOptions) -> Vec<ProviderStatus> {
    let mut providers = Vec::new();
    match crate::runtime::runtime(options.ort_library.as_deref()) {
        Ok(rt) => {
            checks.push(
                "onnxruntime",
                Ok(format!(
                    "{} at {} (from {})",
                    rt.version(),
                    rt.library().display(),
                    rt.source()
                )),
            );
            for (ep, available) in rt.execution_providers() {
                providers.push(ProviderStatus {
                    name: ep.to_string(),
                    available,
                });
                if ep == "CPUExecutionProvider" || available {
                    let r = if available {
                        Ok("available".to_string())
                    } else {
                        Err("not available in this ONNX Runtime build".to_string())
                    };
                    checks.push(&format!("provider {ep}"), r);
                }
            }
        }
        Err(e) => checks.push("onnxruntime", Err(e.message().to_string())),
    }
    providers
}

/// The backbone: its manifest, every file against its sha256, and every graph variant loading
/// and embedding on the device.
fn check_backbone(
    checks: &mut Checks,
    dir: &Path,
    manifest: &BackboneManifest,
    options: &BackboneOptions,
) {
    checks.push(
        "backbone",
        Ok(format!(
            "{} ({}; dim {}, {} pooling, max length {}) at {}",
            manifest.name,
            manifest.source,
            manifest.dim,
            manifest.pooling.name(),
            manifest.max_length,
            dir.display()
        )),
    );
    for f in verify_dir(dir, manifest) {
        let size = f
            .size
            .map(|s| format!("{:.1} MB", s as f64 / 1e6))
            .unwrap_or_else(|| "missing".into());
        let r = if f.ok() {
            Ok(format!("sha256 {} ({size})", f.expected))
        } else {
            Err(format!(
                "sha256 mismatch or unreadable: manifest {}, file {} ({size})",
                f.expected,
                f.actual.as_deref().unwrap_or("-")
            ))
        };
        checks.push(&format!("file {}", f.file), r);
    }
    for variant in Variant::ALL {
        if !variant.runs_on(options.device) {
            checks.push(
                &format!("graph {variant}"),
                Ok(format!("CPU-only graph, not run on {:?}", options.device)),
            );
            continue;
        }
        let opts = BackboneOptions {
            variant,
            batch_size: 8,
            ..options.clone()
        };
        let r = Backbone::load(dir, opts)
            .and_then(|b| b.embed(&["tandem doctor"]).map(|e| (b, e)))
            .map(|(b, e)| {
                format!(
                    "{} loads on {:?} and embeds (norm {:.4})",
                    b.graph_file(),
                    options.device,
                    e.row(0).dot(&e.row(0)).sqrt()
                )
            })
            .map_err(|e| e.message().to_string());
        checks.push(&format!("graph {variant}"), r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Device;

    #[test]
    fn a_missing_backbone_is_a_failed_check_not_an_error() {
        let dir = std::env::temp_dir().join("tandem-doctor-no-such-backbone");
        let r = doctor(&dir, &BackboneOptions::default());
        assert!(!r.ok);
        let b = r.checks.iter().find(|c| c.name == "backbone").unwrap();
        assert!(!b.ok);
        assert!(
            b.detail.contains("tandem-doctor-no-such-backbone"),
            "{}",
            b.detail
        );
    }

    #[test]
    fn on_cuda_the_cpu_only_int8_graph_is_listed_not_run() {
        let dir = std::env::temp_dir().join(format!("tandem-doctor-cuda-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("manifest.json"),
            r#"{"format":"tandem-backbone/1","name":"x","dim":384,"max_length":256,"pooling":"mean","normalize":true,
               "graphs":{"fp32":"model.onnx","opt":"model.opt.onnx","int8":"model.int8.onnx"},"files":{}}"#,
        )
        .unwrap();
        let options = BackboneOptions {
            device: Device::Cuda { device_id: 0 },
            ..Default::default()
        };
        let r = doctor(&dir, &options);
        let check = |name: &str| r.checks.iter().find(|c| c.name == name).unwrap();
        let int8 = check("graph int8");
        assert!(
            int8.ok && int8.detail.contains("CPU-only"),
            "{}",
            int8.detail
        );
        // The others are really tried (and fail here: no graph files).
        assert!(!check("graph fp32").ok && !check("graph opt").ok);
        let _ = std::fs::remove_dir_all(dir);
    }
}
