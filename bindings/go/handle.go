package tandem

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// handle owns one native handle *T that many goroutines may use at once (a tandem_backbone or
// a tandem_model; a Trainer, used by one goroutine at a time, has its own exclusive logic).
//
// Each call holds a read lock from acquire to release; close takes the write lock, so it waits
// for calls in flight, then frees the native handle. A nil ptr means closed, and so does a nil
// *handle (the zero value of a type holding one). Live handles are counted in liveHandles, and
// a finalizer frees a handle that was never closed.
type handle[T any] struct {
	mu   sync.RWMutex
	ptr  *T
	free func(*T)
}

// newHandle takes ownership of ptr, a live native handle that free releases, and sets the
// finalizer that frees it if close is never called. The finalizer is set on the handle, which
// only its owner (a Backbone or Model) references, so it runs once the owner is unreachable;
// the owner's methods call runtime.KeepAlive on the owner after using ptr.
func newHandle[T any](ptr *T, free func(*T)) *handle[T] {
	h := &handle[T]{ptr: ptr, free: free}
	atomic.AddInt64(&liveHandles, 1)
	runtime.SetFinalizer(h, (*handle[T]).drop)
	return h
}

// acquire returns the live native handle with the read lock held, or, when h is closed (or
// nil), an error wrapping ErrClosed that names it as what ("Backbone", "Model"). Every
// successful acquire is paired with release.
func (h *handle[T]) acquire(what string) (*T, error) {
	if h == nil {
		return nil, closedError(what)
	}
	h.mu.RLock()
	if h.ptr == nil {
		h.mu.RUnlock()
		return nil, closedError(what)
	}
	return h.ptr, nil
}

// release ends a call begun by a successful acquire.
func (h *handle[T]) release() { h.mu.RUnlock() }

// close frees the native handle, waiting for calls in flight, and removes the finalizer. It is
// idempotent, and a no-op on a nil handle.
func (h *handle[T]) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drop()
	runtime.SetFinalizer(h, nil)
}

// drop frees the native handle if it is still live. The caller holds the write lock, or is the
// finalizer (then nobody else can reach h).
func (h *handle[T]) drop() {
	if h.ptr != nil {
		h.free(h.ptr)
		h.ptr = nil
		atomic.AddInt64(&liveHandles, -1)
	}
}
