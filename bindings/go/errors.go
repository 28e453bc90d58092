package tandem

// #include "tandem.h"
import "C"

import (
	"errors"
	"fmt"
)

// ErrorCode is the stable code of an *Error, mirroring the C ABI's TANDEM_ERR_* constants.
type ErrorCode uint32

// Error codes, as in include/tandem.h.
const (
	// CodeNullArgument: a NULL argument where a pointer was required; the binding also uses
	// it for a closed handle (see ErrClosed).
	CodeNullArgument ErrorCode = C.TANDEM_ERR_NULL_ARGUMENT
	// CodeInvalidUTF8: text that is not valid UTF-8.
	CodeInvalidUTF8 ErrorCode = C.TANDEM_ERR_INVALID_UTF8
	// CodeInvalidArgument: an argument outside its domain (a wrong size, an unknown name, a
	// malformed label or config).
	CodeInvalidArgument ErrorCode = C.TANDEM_ERR_INVALID_ARGUMENT
	// CodeNotFound: a file or directory that should exist does not.
	CodeNotFound ErrorCode = C.TANDEM_ERR_NOT_FOUND
	// CodeIO: reading or writing the file system failed.
	CodeIO ErrorCode = C.TANDEM_ERR_IO
	// CodeRuntimeUnavailable: the ONNX Runtime shared library could not be found or loaded.
	CodeRuntimeUnavailable ErrorCode = C.TANDEM_ERR_RUNTIME_UNAVAILABLE
	// CodeONNX: ONNX Runtime failed while building or running a session.
	CodeONNX ErrorCode = C.TANDEM_ERR_ONNX
	// CodeTokenizer: the tokenizer could not be loaded or failed to encode.
	CodeTokenizer ErrorCode = C.TANDEM_ERR_TOKENIZER
	// CodeFormat: a file with an unknown format, an unsupported version, or content that does
	// not parse.
	CodeFormat ErrorCode = C.TANDEM_ERR_FORMAT
	// CodeBackboneMismatch: a bundle (or trainer) made with a different backbone than the one
	// given.
	CodeBackboneMismatch ErrorCode = C.TANDEM_ERR_BACKBONE_MISMATCH
	// CodeExecutionProviderUnavailable: the requested execution provider (e.g. CUDA) cannot
	// run here; there is no silent fallback.
	CodeExecutionProviderUnavailable ErrorCode = C.TANDEM_ERR_EXECUTION_PROVIDER_UNAVAILABLE
	// CodeCancelled: training was cancelled (progress function or context); nothing changed.
	CodeCancelled ErrorCode = C.TANDEM_ERR_CANCELLED
	// CodeBufferTooSmall: a caller buffer was too small (the binding sizes buffers itself, so
	// this signals a bug).
	CodeBufferTooSmall ErrorCode = C.TANDEM_ERR_BUFFER_TOO_SMALL
	// CodePanic: a panic was caught in the library: always a bug in tandem.
	CodePanic ErrorCode = C.TANDEM_ERR_PANIC
	// CodeInternal: an internal invariant failed: always a bug in tandem.
	CodeInternal ErrorCode = C.TANDEM_ERR_INTERNAL
	// CodeNumeric: a computation produced NaN or infinite values: training diverged (lower
	// the learning rate) or its inputs were not finite.
	CodeNumeric ErrorCode = C.TANDEM_ERR_NUMERIC
)

// String returns the code's stable lowercase name ("not_found", ...), or "unknown".
func (c ErrorCode) String() string {
	return C.GoString(C.tandem_error_code_name(C.uint32_t(c)))
}

// Error is an error reported by tandem: a stable Code and a human-readable Message.
//
// errors.Is(err, target) holds when target is one of the sentinels below (or any *Error with
// an empty Message) with the same Code. An Error may wrap a cause, such as the context error
// of a cancelled training run or ErrClosed.
type Error struct {
	// Code says what kind of failure this is.
	Code ErrorCode
	// Message explains it (from the library, or from the binding).
	Message string

	cause error
}

// Error formats the error as "tandem: <code name>: <message>".
func (e *Error) Error() string {
	if e.Message == "" {
		return "tandem: " + e.Code.String()
	}
	return "tandem: " + e.Code.String() + ": " + e.Message
}

// Unwrap returns the error's cause, if any (for example context.Canceled).
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error sentinel (empty Message) with e's Code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.cause == nil && t.Code == e.Code
}

// Sentinels for errors.Is, one per code.
var (
	// ErrNullArgument matches errors with CodeNullArgument.
	ErrNullArgument = &Error{Code: CodeNullArgument}
	// ErrInvalidUTF8 matches errors with CodeInvalidUTF8.
	ErrInvalidUTF8 = &Error{Code: CodeInvalidUTF8}
	// ErrInvalidArgument matches errors with CodeInvalidArgument.
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	// ErrNotFound matches errors with CodeNotFound.
	ErrNotFound = &Error{Code: CodeNotFound}
	// ErrIO matches errors with CodeIO.
	ErrIO = &Error{Code: CodeIO}
	// ErrRuntimeUnavailable matches errors with CodeRuntimeUnavailable.
	ErrRuntimeUnavailable = &Error{Code: CodeRuntimeUnavailable}
	// ErrONNX matches errors with CodeONNX.
	ErrONNX = &Error{Code: CodeONNX}
	// ErrTokenizer matches errors with CodeTokenizer.
	ErrTokenizer = &Error{Code: CodeTokenizer}
	// ErrFormat matches errors with CodeFormat.
	ErrFormat = &Error{Code: CodeFormat}
	// ErrBackboneMismatch matches errors with CodeBackboneMismatch.
	ErrBackboneMismatch = &Error{Code: CodeBackboneMismatch}
	// ErrExecutionProviderUnavailable matches errors with CodeExecutionProviderUnavailable.
	ErrExecutionProviderUnavailable = &Error{Code: CodeExecutionProviderUnavailable}
	// ErrCancelled matches errors with CodeCancelled.
	ErrCancelled = &Error{Code: CodeCancelled}
	// ErrBufferTooSmall matches errors with CodeBufferTooSmall.
	ErrBufferTooSmall = &Error{Code: CodeBufferTooSmall}
	// ErrPanic matches errors with CodePanic.
	ErrPanic = &Error{Code: CodePanic}
	// ErrInternal matches errors with CodeInternal.
	ErrInternal = &Error{Code: CodeInternal}
	// ErrNumeric matches errors with CodeNumeric.
	ErrNumeric = &Error{Code: CodeNumeric}
)

// ErrClosed is wrapped by the error of any method called on a closed Backbone, Trainer or
// Model (that error's Code is CodeNullArgument, what the library says for a NULL handle).
var ErrClosed = errors.New("tandem: handle is closed")

// ErrBusy is wrapped by the error of a Trainer method called while another call on the same
// trainer is running, for example from inside Train's progress function or from a second
// goroutine (that error's Code is CodeInvalidArgument). A trainer is used by one goroutine at
// a time.
var ErrBusy = errors.New("tandem: trainer is busy with another call")

// takeError converts a library error to an *Error and frees it; nil stays nil.
func takeError(e *C.tandem_error) error {
	if e == nil {
		return nil
	}
	defer C.tandem_error_free(e)
	return &Error{
		Code:    ErrorCode(C.tandem_error_code(e)),
		Message: C.GoString(C.tandem_error_message(e)),
	}
}

func closedError(what string) error {
	return &Error{Code: CodeNullArgument, Message: what + " is closed", cause: ErrClosed}
}

func busyError() error {
	return &Error{
		Code:    CodeInvalidArgument,
		Message: "trainer is busy: another call on it is in progress (one goroutine at a time; not from Train's progress function)",
		cause:   ErrBusy,
	}
}

func invalidArgument(format string, args ...any) error {
	return &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf(format, args...)}
}
