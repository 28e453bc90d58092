//! One error type for the whole crate.
//!
//! Every [`ErrorKind`] has a stable numeric code; the C ABI returns exactly these codes, so a
//! value once published is never reused or renumbered.

use std::fmt;

/// Declares [`ErrorKind`] from the one list of error kinds: each kind's code, stable name, Go
/// name and description. The C header's `TANDEM_ERR_*` codes, the Go binding's codes and
/// sentinels and the C++ binding's `ErrorCode` are generated from it (`tests/header.rs`).
macro_rules! error_kinds {
    ($($kind:ident = $code:literal, $name:literal, $go:literal, $doc:literal;)*) => {
        /// What went wrong, as a stable category. The discriminants are the C error codes.
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $(#[doc = $doc] $kind = $code,)*
        }

        impl ErrorKind {
            /// Every kind, in code order.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$kind),*];

            /// A short lowercase name, stable like the code, for logs and JSON (and the
            /// `TANDEM_ERR_` constant's suffix, upper-cased).
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $name,)*
                }
            }

            /// The kind's name in the Go binding (`Code<name>`, `Err<name>`).
            pub fn go_name(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $go,)*
                }
            }

            /// The kind's name in Rust and in the C++ binding's `ErrorCode`.
            pub fn variant(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => stringify!($kind),)*
                }
            }

            /// What the kind means, one sentence (the documentation of every binding).
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorKind::$kind => $doc.trim(),)*
                }
            }
        }
    };
}

error_kinds! {
    NullArgument = 1, "null_argument", "NullArgument",
        " A NULL argument where a pointer was required (C ABI only).";
    InvalidUtf8 = 2, "invalid_utf8", "InvalidUTF8",
        " Text that is not valid UTF-8.";
    InvalidArgument = 3, "invalid_argument", "InvalidArgument",
        " An argument outside its domain: a wrong size, an unknown name, a malformed label or config.";
    NotFound = 4, "not_found", "NotFound",
        " A file or directory that should exist does not.";
    Io = 5, "io", "IO",
        " Reading or writing the file system failed.";
    RuntimeUnavailable = 6, "runtime_unavailable", "RuntimeUnavailable",
        " The ONNX Runtime shared library could not be found or loaded.";
    Onnx = 7, "onnx", "ONNX",
        " ONNX Runtime failed while building or running a session.";
    Tokenizer = 8, "tokenizer", "Tokenizer",
        " The tokenizer could not be loaded or failed to encode.";
    Format = 9, "format", "Format",
        " A file with an unknown format, an unsupported version, or content that does not parse.";
    BackboneMismatch = 10, "backbone_mismatch", "BackboneMismatch",
        " A bundle or heads trained on a different backbone than the one given.";
    ExecutionProviderUnavailable = 11, "execution_provider_unavailable", "ExecutionProviderUnavailable",
        " The requested execution provider (e.g. CUDA) cannot run here; there is no silent fallback.";
    Cancelled = 12, "cancelled", "Cancelled",
        " The caller cancelled the operation (a progress callback returned false); nothing was changed.";
    BufferTooSmall = 13, "buffer_too_small", "BufferTooSmall",
        " A caller buffer is too small; the dimension getters say how big it must be.";
    Panic = 14, "panic", "Panic",
        " A panic was caught at the C boundary: always a bug in tandem.";
    Internal = 15, "internal", "Internal",
        " An internal invariant failed: always a bug in tandem.";
    Numeric = 16, "numeric", "Numeric",
        " A computation produced NaN or infinite values: training diverged (lower the learning rate) or its inputs were not finite.";
}

impl ErrorKind {
    /// The stable numeric code of this kind.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The kind for a numeric code, if the code is known.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|k| k.code() == code)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// tandem's error: a stable [`ErrorKind`] plus a human-readable message that says what failed
/// and, where possible, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// Result alias used throughout tandem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Creates an error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// The stable category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable numeric code (same as `self.kind().code()`).
    pub fn code(&self) -> u32 {
        self.kind.code()
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Shorthand for [`ErrorKind::InvalidArgument`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Shorthand for [`ErrorKind::Format`].
    pub fn format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Format, message)
    }

    /// Wraps an I/O error with the path it concerns; a missing file becomes [`ErrorKind::NotFound`].
    pub fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        let kind = if err.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Io
        };
        Self::new(kind, format!("{}: {err}", path.display()))
    }

    /// Shorthand for [`ErrorKind::Numeric`].
    pub fn numeric(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Numeric, message)
    }

    /// Wraps an ONNX Runtime error with what tandem was doing when it happened.
    pub fn onnx(context: &str, err: impl fmt::Display) -> Self {
        Self::new(ErrorKind::Onnx, format!("{context}: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_dense_and_round_trip() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.code(), i as u32 + 1);
            assert_eq!(ErrorKind::from_code(kind.code()), Some(*kind));
        }
        assert_eq!(ErrorKind::from_code(0), None);
        assert_eq!(ErrorKind::from_code(999), None);
    }

    #[test]
    fn io_not_found_maps_to_not_found() {
        let e = Error::io(
            std::path::Path::new("/nope"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("/nope"));
        let e = Error::io(
            std::path::Path::new("/x"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind(), ErrorKind::Io);
    }
}
