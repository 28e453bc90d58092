//! `tandem doctor`: what works here, checked.

use std::process::ExitCode;

use clap::Args;
use tandem::{BackboneOptions, Device, Result};

use crate::BackboneArgs;

#[derive(Args)]
pub struct DoctorArgs {
    /// Print a JSON report instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    backbone: BackboneArgs,
}

/// `tandem doctor`.
pub fn run(args: DoctorArgs) -> Result<ExitCode> {
    let b = &args.backbone;
    let options = BackboneOptions {
        device: b.device,
        threads: b.threads,
        ort_library: b.ort_lib.clone(),
        ..Default::default()
    };
    let report = tandem::doctor::doctor(&b.dir(), &options);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        let width = report
            .checks
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0);
        for c in &report.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:width$}  {}", c.name, c.detail);
        }
        for p in report.execution_providers.iter().filter(|p| !p.available) {
            eprintln!("note: {} not available in this ONNX Runtime build", p.name);
        }
        let hint = match options.device {
            _ if report.ok => "",
            Device::Cpu => " (run scripts/setup.sh)",
            // On CUDA the likely gap is the CUDA build of ONNX Runtime or the GPU's libraries.
            Device::Cuda { .. } => {
                " (run scripts/setup.sh, then scripts/setup_cuda.sh and source its env.sh)"
            }
        };
        let status = if report.ok {
            "all checks passed"
        } else {
            "some checks failed"
        };
        println!("doctor: {status}{hint}");
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
