package tandem

// #include "tandem.h"
import "C"

import (
	"errors"
	"fmt"
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
