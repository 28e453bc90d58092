//! How to load and run a backbone: which graph, on which device, with how many threads,
//! sessions and texts per run.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Which of the exported graphs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Variant {
    /// The plain fp32 export (`model.onnx`).
    #[default]
    Fp32,
    /// fp32 after ONNX Runtime's transformer optimizer (`model.opt.onnx`).
    Opt,
    /// Dynamically quantized int8 for CPU (`model.int8.onnx`).
    Int8,
}

impl Variant {
    /// Every variant.
    pub const ALL: [Variant; 3] = [Variant::Fp32, Variant::Opt, Variant::Int8];

    /// Whether this graph is meant for `device`. The int8 graph is quantized for the CPU: on CUDA,
    /// ONNX Runtime runs its quantization ops on the CPU behind 57 device copies, measured on an
    /// H200 at 0.2-0.7x the speed of the same graph on the CPU, so tandem refuses it there rather
    /// than fall back to the CPU piecemeal.
    pub fn runs_on(self, device: Device) -> bool {
        !(self == Variant::Int8 && matches!(device, Device::Cuda { .. }))
    }

    /// The manifest key: `fp32`, `opt` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Fp32 => "fp32",
            Variant::Opt => "opt",
            Variant::Int8 => "int8",
        }
    }
}

impl std::str::FromStr for Variant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fp32" => Ok(Variant::Fp32),
            "opt" => Ok(Variant::Opt),
            "int8" => Ok(Variant::Int8),
            other => Err(Error::invalid(format!(
                "unknown backbone variant `{other}` (expected fp32, opt or int8)"
            ))),
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the graph runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// ONNX Runtime's CPU execution provider.
    #[default]
    Cpu,
    /// The CUDA execution provider on the given GPU. Needs the `cuda` cargo feature and a CUDA
    /// build of ONNX Runtime; if it cannot run, loading fails instead of falling back to CPU.
    Cuda {
        /// CUDA device ordinal.
        device_id: i32,
    },
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda { device_id: 0 }),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(id)) if id >= 0 => Ok(Device::Cuda { device_id: id }),
                _ => Err(Error::invalid(format!(
                    "unknown device `{other}` (expected cpu, cuda or cuda:N)"
                ))),
            },
        }
    }
}

/// What runs a model's heads (everything after the backbone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeadsEngine {
    /// tandem's native code.
    #[default]
    Native,
    /// ONNX Runtime, on the backbone's device, from the heads written as an ONNX graph.
    Onnx,
}

impl HeadsEngine {
    /// `native` or `onnx`.
    pub fn name(self) -> &'static str {
        match self {
            HeadsEngine::Native => "native",
            HeadsEngine::Onnx => "onnx",
        }
    }
}

impl std::str::FromStr for HeadsEngine {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "native" => Ok(HeadsEngine::Native),
            "onnx" => Ok(HeadsEngine::Onnx),
            other => Err(Error::invalid(format!(
                "unknown heads engine `{other}` (expected native or onnx)"
            ))),
        }
    }
}

/// How to load and run a backbone.
#[derive(Debug, Clone)]
pub struct BackboneOptions {
    /// Graph variant.
    pub variant: Variant,
    /// Intra-op threads per session; `None` uses all available cores.
    pub threads: Option<usize>,
    /// Execution provider.
    pub device: Device,
    /// Explicit ONNX Runtime library; else `TANDEM_ORT_LIB`, else the cache.
    pub ort_library: Option<PathBuf>,
    /// Most texts per graph run. Inputs are sorted by length before batching, and on the CPU
    /// a run is cut short where its padding would cost more than another run, so padding stays
    /// small.
    pub batch_size: usize,
    /// Most padded tokens (rows x longest row) per graph run. Long texts run in smaller batches:
    /// attention's cost and memory traffic grow with the padded area, and past a few thousand
    /// tokens a bigger batch is slower per text, not faster (measured on 128–256-token texts
    /// with 2 threads: 2048 beat 1024 by 4–17% and 4096 by up to 8%).
    pub max_batch_tokens: usize,
    /// Most sessions kept for concurrent callers (each holds its own copy of the weights).
    pub sessions: usize,
    /// Check the sha256 of the graph and tokenizer against the manifest while loading.
    pub verify: bool,
    /// What runs the heads of models loaded on this backbone.
    pub heads: HeadsEngine,
}

impl Default for BackboneOptions {
    fn default() -> Self {
        BackboneOptions {
            variant: Variant::Fp32,
            threads: None,
            device: Device::Cpu,
            ort_library: None,
            batch_size: 32,
            max_batch_tokens: 2048,
            sessions: 1,
            verify: false,
            heads: HeadsEngine::Native,
        }
    }
}

impl BackboneOptions {
    /// The most intra-op threads per session: beyond this, ONNX Runtime would try to start
    /// that many threads (a mistyped count could ask for billions).
    pub const MAX_THREADS: usize = 1024;
    /// The most concurrent sessions: each holds its own copy of the weights.
    pub const MAX_SESSIONS: usize = 256;
    /// The most texts per graph run.
    pub const MAX_BATCH_SIZE: usize = 65_536;
    /// The most padded tokens per graph run.
    pub const MAX_BATCH_TOKENS: usize = 1 << 24;

    /// Checks every count: each at least 1 and at most its `MAX_*` bound, so an absurd value is
    /// a clear error instead of a hang or an out-of-memory abort at load or at the first run.
    pub fn validate(&self) -> Result<()> {
        let checks = [
            ("threads", self.threads.unwrap_or(1), Self::MAX_THREADS),
            ("sessions", self.sessions, Self::MAX_SESSIONS),
            ("batch_size", self.batch_size, Self::MAX_BATCH_SIZE),
            (
                "max_batch_tokens",
                self.max_batch_tokens,
                Self::MAX_BATCH_TOKENS,
            ),
        ];
        for (name, value, max) in checks {
            if value == 0 || value > max {
                return Err(Error::invalid(format!(
                    "{name} must be between 1 and {max}, got {value}"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn parse_variant_and_device() {
        assert_eq!("int8".parse::<Variant>().unwrap(), Variant::Int8);
        assert_eq!(
            "fp16".parse::<Variant>().unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!(
            "cuda:1".parse::<Device>().unwrap(),
            Device::Cuda { device_id: 1 }
        );
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().is_err());
    }

    #[test]
    fn only_the_int8_graph_is_kept_off_cuda() {
        let cuda = Device::Cuda { device_id: 0 };
        assert!(Variant::ALL.iter().all(|v| v.runs_on(Device::Cpu)));
        assert!(Variant::Fp32.runs_on(cuda) && Variant::Opt.runs_on(cuda));
        assert!(!Variant::Int8.runs_on(cuda));
    }
}
