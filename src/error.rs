//! One error type for the whole crate.
//!
//! Every [`ErrorKind`] has a stable numeric code; the C ABI returns exactly these codes, so a
//! value once published is never reused or renumbered.

use std::fmt;

/// What went wrong, as a stable category. The discriminants are the C error codes.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A required pointer argument was NULL (C ABI only).
    NullArgument = 1,
    /// Text input was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument had a value outside its domain (a wrong size, an unknown name, a bad number).
    InvalidArgument = 3,
    /// A file or directory that should exist does not.
    NotFound = 4,
    /// Reading or writing the file system failed.
    Io = 5,
    /// The ONNX Runtime shared library could not be found or loaded.
    RuntimeUnavailable = 6,
    /// ONNX Runtime reported an error while building or running a session.
    Onnx = 7,
    /// The tokenizer could not be loaded or failed to encode.
    Tokenizer = 8,
    /// A file had an unknown format, an unsupported version, or content that does not parse.
    Format = 9,
    /// A model or bundle belongs to a different backbone than the one it is used with.
    BackboneMismatch = 10,
    /// The requested execution provider (e.g. CUDA) cannot run here.
    ExecutionProviderUnavailable = 11,
    /// The caller cancelled the operation (e.g. from a progress callback).
    Cancelled = 12,
    /// A caller-supplied buffer is too small for the result.
    BufferTooSmall = 13,
    /// A panic was caught at the C boundary; this is always a bug in tandem.
    Panic = 14,
    /// An internal invariant failed; this is always a bug in tandem.
    Internal = 15,
    /// A computation produced NaN or infinite values (training diverged, or its inputs were
    /// not finite).
    Numeric = 16,
}

impl ErrorKind {
    /// Every kind, in code order; used by tests and by the C ABI's code table.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::NullArgument,
        ErrorKind::InvalidUtf8,
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::Io,
        ErrorKind::RuntimeUnavailable,
        ErrorKind::Onnx,
        ErrorKind::Tokenizer,
        ErrorKind::Format,
        ErrorKind::BackboneMismatch,
        ErrorKind::ExecutionProviderUnavailable,
        ErrorKind::Cancelled,
        ErrorKind::BufferTooSmall,
        ErrorKind::Panic,
        ErrorKind::Internal,
        ErrorKind::Numeric,
    ];

    /// The stable numeric code of this kind.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The kind for a numeric code, if the code is known.
    pub fn from_code(code: u32) -> Option<ErrorKind> {
        Self::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// A short lowercase name, stable like the code, for logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::NullArgument => "null_argument",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Io => "io",
            ErrorKind::RuntimeUnavailable => "runtime_unavailable",
            ErrorKind::Onnx => "onnx",
            ErrorKind::Tokenizer => "tokenizer",
            ErrorKind::Format => "format",
            ErrorKind::BackboneMismatch => "backbone_mismatch",
            ErrorKind::ExecutionProviderUnavailable => "execution_provider_unavailable",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::BufferTooSmall => "buffer_too_small",
            ErrorKind::Panic => "panic",
            ErrorKind::Internal => "internal",
            ErrorKind::Numeric => "numeric",
        }
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
