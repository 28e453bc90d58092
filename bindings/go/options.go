package tandem

// #include "shim.h"
import "C"

import (
	"encoding/json"
	"fmt"
	"time"
)

// HeaderABIVersion is the C ABI version of the header this package was compiled against.
const HeaderABIVersion uint32 = C.TANDEM_ABI_VERSION

// Version returns the library's version, e.g. "0.1.0".
func Version() string { return C.GoString(C.tandem_version()) }

// ABIVersion returns the C ABI version the linked library implements. The package refuses to
// load backbones or run Doctor when it differs from HeaderABIVersion.
func ABIVersion() uint32 { return uint32(C.tandem_abi_version()) }

func checkABI() error {
	if got := ABIVersion(); got != HeaderABIVersion {
		return &Error{
			Code: CodeInvalidArgument,
			Message: fmt.Sprintf("the linked libtandem implements C ABI %d but this package was built against ABI %d; rebuild against a matching library",
				got, HeaderABIVersion),
		}
	}
	return nil
}

// Option configures how a backbone is loaded (LoadBackbone) or checked (Doctor). The zero set
// of options means the defaults: the default backbone in the cache, the fp32 graph, all
// cores, CPU, ONNX Runtime from TANDEM_ORT_LIB or the cache.
type Option func(*options)

type options struct {
	threads     *uint32
	variant     *string
	device      *string
	heads       *string
	ortLibrary  *string
	backboneDir *string
	backbone    *string
	batchSize   int
	sessions    int
	batching    bool
}

// WithThreads sets the intra-op threads per ONNX Runtime session; 0 means all cores.
func WithThreads(n uint32) Option { return func(o *options) { o.threads = &n } }

// WithVariant selects the graph variant: "fp32", "opt" or "int8".
func WithVariant(name string) Option { return func(o *options) { o.variant = &name } }

// WithDevice selects the execution provider: "cpu", "cuda" or "cuda:N". If it cannot run,
// loading fails with ErrExecutionProviderUnavailable rather than falling back to the CPU.
func WithDevice(name string) Option { return func(o *options) { o.device = &name } }

// WithHeads selects what runs the heads of models loaded on the backbone: "native" (the
// default) or "onnx" (the heads written as an ONNX graph and run by ONNX Runtime on the
// backbone's device; the same results to 1e-5).
func WithHeads(name string) Option { return func(o *options) { o.heads = &name } }

// WithORTLibrary names the ONNX Runtime shared library to load (else TANDEM_ORT_LIB, else the
// cache). The library is loaded once per process: the first backbone load decides.
func WithORTLibrary(path string) Option { return func(o *options) { o.ortLibrary = &path } }

// WithBackboneDir names the backbone directory (manifest.json, the graphs, tokenizer.json);
// the default is all-MiniLM-L6-v2 in the cache.
func WithBackboneDir(path string) Option { return func(o *options) { o.backboneDir = &path } }

// WithBackbone names the backbone: one setup installs ("minilm-l6", the default;
// "minilm-l3", the fastest; "mpnet-base", the most accurate) or a directory name under the
// cache's models/. A backbone that is not installed is ErrNotFound when the options are used.
func WithBackbone(name string) Option { return func(o *options) { o.backbone = &name } }

// WithBatching sets the most texts per graph run (default 32) and the most concurrent
// sessions (default 1; each holds its own copy of the weights, so more sessions serve more
// goroutines at once). Both must be positive.
func WithBatching(batchSize, sessions int) Option {
	return func(o *options) { o.batchSize, o.sessions, o.batching = batchSize, sessions, true }
}

// newCOptions builds native options from opts; the caller frees them with
// tandem_options_free.
// withCOptions checks the ABI, builds C options from opts, calls f with them and frees them:
// the steps every call that takes options shares.
func withCOptions(opts []Option, f func(*C.tandem_options) *C.tandem_error) error {
	if err := checkABI(); err != nil {
		return err
	}
	c, err := newCOptions(opts)
	if err != nil {
		return err
	}
	defer C.tandem_options_free(c)
	return takeError(f(c))
}

func newCOptions(opts []Option) (*C.tandem_options, error) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	c := C.tandem_options_new()
	err := func() error {
		if o.threads != nil {
			if err := takeError(C.tandem_options_set_threads(c, C.uint32_t(*o.threads))); err != nil {
				return err
			}
		}
		if o.variant != nil {
			if err := takeError(C.tg_options_set_variant(c, *o.variant)); err != nil {
				return err
			}
		}
		if o.device != nil {
			if err := takeError(C.tg_options_set_device(c, *o.device)); err != nil {
				return err
			}
		}
		if o.heads != nil {
			if err := takeError(C.tg_options_set_heads(c, *o.heads)); err != nil {
				return err
			}
		}
		if o.ortLibrary != nil {
			if err := takeError(C.tg_options_set_ort_library(c, *o.ortLibrary)); err != nil {
				return err
			}
		}
		if o.backboneDir != nil {
			if err := takeError(C.tg_options_set_backbone_dir(c, *o.backboneDir)); err != nil {
				return err
			}
		}
		if o.backbone != nil {
			if err := takeError(C.tg_options_set_backbone_name(c, *o.backbone)); err != nil {
				return err
			}
		}
		if o.batching {
			if o.batchSize < 0 || o.sessions < 0 {
				return invalidArgument("batching: batch size %d and sessions %d must be positive", o.batchSize, o.sessions)
			}
			if err := takeError(C.tandem_options_set_batching(c, C.size_t(o.batchSize), C.size_t(o.sessions))); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		C.tandem_options_free(c)
		return nil, err
	}
	return c, nil
}

// DoctorReport is the health report of Doctor: the same report `tandem doctor` prints.
type DoctorReport struct {
	// OK is true when every check passed.
	OK bool `json:"ok"`
	// Checks lists every check, in order.
	Checks []DoctorCheck `json:"checks"`
	// ExecutionProviders lists the loaded ONNX Runtime's execution providers (empty when it
	// did not load).
	ExecutionProviders []ExecutionProvider `json:"execution_providers"`
	// Raw is the report's JSON as the library wrote it.
	Raw json.RawMessage `json:"-"`
}

// DoctorCheck is one line of a DoctorReport.
type DoctorCheck struct {
	// Name says what was checked ("onnxruntime", "file model.onnx", "graph int8", ...).
	Name string `json:"name"`
	// OK says whether it passed.
	OK bool `json:"ok"`
	// Detail says what was found, or why it failed.
	Detail string `json:"detail"`
}

// ExecutionProvider is an ONNX Runtime execution provider and whether the loaded library
// offers it.
type ExecutionProvider struct {
	// Name is ONNX Runtime's name for it ("CPUExecutionProvider", ...).
	Name string `json:"name"`
	// Available says whether the loaded library has it.
	Available bool `json:"available"`
}

// Doctor checks the ONNX Runtime library, the execution providers, the backbone files and
// that every graph loads and embeds, with the given options. Failed checks are in the
// report (OK false), not errors.
func Doctor(opts ...Option) (*DoctorReport, error) {
	var out *C.char
	err := withCOptions(opts, func(c *C.tandem_options) *C.tandem_error {
		return C.tandem_doctor_json(c, &out)
	})
	if err != nil {
		return nil, err
	}
	raw := takeString(out)
	r := &DoctorReport{Raw: json.RawMessage(raw)}
	if err := json.Unmarshal(r.Raw, r); err != nil {
		return nil, &Error{Code: CodeFormat, Message: "doctor report: " + err.Error()}
	}
	return r, nil
}

// NoCacheCap as PruneCache's maxBytes prunes by age alone.
const NoCacheCap = ^uint64(0)

// PruneCache prunes the on-disk embedding caches under root ("" for the default,
// <cache dir>/embcache): whole files not used for olderThan (0: no age limit), then the least
// recently used until the caches hold at most maxBytes (NoCacheCap: no cap). It is safe while
// other processes use the caches. It returns the bytes freed. To keep a cap while training, set
// "cache": {"max_size": ...} in the trainer's config instead.
func PruneCache(root string, maxBytes uint64, olderThan time.Duration) (uint64, error) {
	var freed C.uint64_t
	secs := uint64(olderThan / time.Second)
	if err := takeError(C.tg_cache_prune(root, C.uint64_t(maxBytes), C.uint64_t(secs), &freed)); err != nil {
		return 0, err
	}
	return uint64(freed), nil
}
