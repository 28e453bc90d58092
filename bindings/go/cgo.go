package tandem

// #include "shim.h"
import "C"

import (
	"unsafe"
)

// liveHandles counts native handles (backbones, trainers, models, ensembles) not yet freed; the
// tests use it to check that finalizers free forgotten handles.
var liveHandles int64

// cStrings is a batch of strings copied into one C allocation, in the C ABI's batch layout:
// an array of pointers and an array of lengths. Go memory may not hold pointers handed to C,
// so the texts are copied; the copy is small next to embedding them.
type cStrings struct {
	base unsafe.Pointer
	ptrs **C.char
	lens *C.size_t
	n    int
}

// newCStrings copies texts into C memory; free it with free.
func newCStrings(texts []string) cStrings {
	n := len(texts)
	if n == 0 {
		return cStrings{}
	}
	const word = unsafe.Sizeof(uintptr(0))
	total := 0
	for _, s := range texts {
		total += len(s)
	}
	head := 2 * uintptr(n) * word
	base := C.malloc(C.size_t(head + uintptr(total)))
	if base == nil {
		panic("tandem: out of memory copying texts")
	}
	ptrs := unsafe.Slice((**C.char)(base), n)
	lens := unsafe.Slice((*C.size_t)(unsafe.Add(base, uintptr(n)*word)), n)
	data := unsafe.Slice((*byte)(unsafe.Add(base, head)), total)
	off := 0
	for i, s := range texts {
		copy(data[off:], s)
		ptrs[i] = (*C.char)(unsafe.Add(base, head+uintptr(off)))
		lens[i] = C.size_t(len(s))
		off += len(s)
	}
	return cStrings{base: base, ptrs: &ptrs[0], lens: &lens[0], n: n}
}

func (c cStrings) free() {
	if c.base != nil {
		C.free(c.base)
	}
}

// takeString copies a library-owned string out and frees it with tandem_string_free.
func takeString(s *C.char) string {
	if s == nil {
		return ""
	}
	defer C.tandem_string_free(s)
	return C.GoString(s)
}

// floatPtr returns a pointer to the first element of buf for the library to write into, or
// nil for an empty buffer.
func floatPtr(buf []float32) *C.float {
	if len(buf) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&buf[0]))
}

// rows slices a row-major matrix of n rows into n row slices sharing its storage.
func rows(flat []float32, n, dim int) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = flat[i*dim : (i+1)*dim : (i+1)*dim]
	}
	return out
}
