package tandem

// #include "shim.h"
import "C"

import "runtime"

// Backbone is a loaded sentence-embedding backbone (ONNX Runtime sessions and tokenizer).
// It is safe for concurrent use by multiple goroutines. Trainers and models made from it keep
// the native backbone alive, so it may be closed before them.
type Backbone struct {
	h *handle[C.tandem_backbone]
}

// LoadBackbone loads a backbone with the given options (none for the defaults). Close it when
// done.
//
// Errors: ErrNotFound (model files), ErrRuntimeUnavailable (no ONNX Runtime; the message says
// how to get one), ErrExecutionProviderUnavailable, ErrONNX, ErrTokenizer, ErrFormat, and
// ErrInvalidArgument for a bad option.
func LoadBackbone(opts ...Option) (*Backbone, error) {
	var ptr *C.tandem_backbone
	err := withCOptions(opts, func(c *C.tandem_options) *C.tandem_error {
		return C.tandem_backbone_load(c, &ptr)
	})
	if err != nil {
		return nil, err
	}
	return &Backbone{h: newHandle(ptr, freeBackbone)}, nil
}

func freeBackbone(p *C.tandem_backbone) { C.tandem_backbone_free(p) }

// acquire returns the live handle with the read lock held, or an error when closed.
func (b *Backbone) acquire() (*C.tandem_backbone, error) {
	if b == nil {
		return nil, closedError("Backbone (nil)")
	}
	return b.h.acquire("Backbone")
}

func (b *Backbone) release() { b.h.release() }

// Close frees the backbone handle, waiting for calls in flight. It is idempotent and always
// returns nil.
func (b *Backbone) Close() error {
	if b != nil {
		b.h.close()
	}
	return nil
}

// Dim returns the embedding dimension (384 for all-MiniLM-L6-v2), or 0 once closed.
func (b *Backbone) Dim() int {
	ptr, err := b.acquire()
	if err != nil {
		return 0
	}
	defer b.release()
	d := int(C.tandem_backbone_dim(ptr))
	runtime.KeepAlive(b)
	return d
}

// GraphSHA256 returns the sha256 of the graph in use as 64 hex digits, or "" once closed.
func (b *Backbone) GraphSHA256() string {
	ptr, err := b.acquire()
	if err != nil {
		return ""
	}
	defer b.release()
	s := C.GoString(C.tandem_backbone_graph_sha256(ptr))
	runtime.KeepAlive(b)
	return s
}

// Embed returns one L2-normalized embedding of Dim floats per text. The rows share one
// backing array.
//
// Errors: ErrInvalidUTF8 (a text with invalid UTF-8), ErrTokenizer, ErrONNX.
func (b *Backbone) Embed(texts []string) ([][]float32, error) {
	ptr, err := b.acquire()
	if err != nil {
		return nil, err
	}
	defer b.release()
	dim := int(C.tandem_backbone_dim(ptr))
	n := len(texts)
	if n == 0 {
		return [][]float32{}, nil
	}
	in := newCStrings(texts)
	defer in.free()
	flat := make([]float32, n*dim)
	err = takeError(C.tandem_backbone_embed(ptr, in.ptrs, in.lens, C.size_t(n), floatPtr(flat), C.size_t(len(flat))))
	runtime.KeepAlive(b)
	if err != nil {
		return nil, err
	}
	return rows(flat, n, dim), nil
}

// MetadataFeatureNames returns the names of the metadata features ExtractMetadata computes
// ("chars", "flesch_reading_ease", ...), in column order.
func MetadataFeatureNames() []string {
	n := int(C.tandem_metadata_feature_count())
	names := make([]string, n)
	for i := range names {
		names[i] = C.GoString(C.tandem_metadata_feature_name(C.size_t(i)))
	}
	return names
}

// ExtractMetadata returns the raw (un-normalized) metadata features of each text, one row of
// len(MetadataFeatureNames()) finite values per text. It needs no backbone.
//
// Errors: ErrInvalidUTF8.
func ExtractMetadata(texts []string) ([][]float32, error) {
	if err := checkABI(); err != nil {
		return nil, err
	}
	dim := int(C.tandem_metadata_feature_count())
	n := len(texts)
	if n == 0 {
		return [][]float32{}, nil
	}
	in := newCStrings(texts)
	defer in.free()
	flat := make([]float32, n*dim)
	if err := takeError(C.tandem_metadata_extract(in.ptrs, in.lens, C.size_t(n), floatPtr(flat), C.size_t(len(flat)))); err != nil {
		return nil, err
	}
	return rows(flat, n, dim), nil
}
