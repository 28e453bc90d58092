// tandem.hpp: header-only C++17 RAII binding of the tandem C ABI (include/tandem.h).
//
// Build: -std=c++17 -I<tandem>/include -I<tandem>/bindings/cpp and link libtandem
// (-L<tandem>/target/release -ltandem).
//
// Conventions of this binding:
// - Every handle class (Options, Backbone, Trainer, Model, Ensemble, Predictions) owns exactly
//   one C handle
//   and frees it in its destructor. Handles are move-only; a moved-from handle is empty
//   (`!handle` is true), safe to destroy and to assign to. Calling a throwing method on an empty
//   handle throws tandem::Error with ErrorCode::NullArgument (the C library's own check);
//   non-throwing getters return 0 / empty values, as the C getters do for NULL.
// - Every failing C call throws tandem::Error carrying the C error code and message; the C error
//   object is always freed before the exception propagates.
// - Text goes in as std::string_view (UTF-8, need not be NUL-terminated) or as a TextBatch,
//   which views a std::vector<std::string>, a std::vector<std::string_view> or a braced list.
// - Thread safety follows the C ABI: `const` methods of Backbone, Model, Ensemble and
//   Predictions may be called from many threads at once (Model::swap_heads / swap_bundle too,
//   although they are non-const because they change what later predictions return); a Trainer
//   or an Options is used by one thread at a time.
#ifndef TANDEM_HPP
#define TANDEM_HPP

#include "tandem.h"

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tandem {

class Trainer;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

// BEGIN GENERATED: error codes (tests/header.rs; TANDEM_BLESS_HEADER=1 cargo test --test header)
/// The C error codes (`TANDEM_ERR_*`) as a scoped enum; `Error::kind()` returns one.
enum class ErrorCode : std::uint32_t {
  /// A NULL argument where a pointer was required (C ABI only).
  NullArgument = TANDEM_ERR_NULL_ARGUMENT,
  /// Text that is not valid UTF-8.
  InvalidUtf8 = TANDEM_ERR_INVALID_UTF8,
  /// An argument outside its domain: a wrong size, an unknown name, a malformed label or config.
  InvalidArgument = TANDEM_ERR_INVALID_ARGUMENT,
  /// A file or directory that should exist does not.
  NotFound = TANDEM_ERR_NOT_FOUND,
  /// Reading or writing the file system failed.
  Io = TANDEM_ERR_IO,
  /// The ONNX Runtime shared library could not be found or loaded.
  RuntimeUnavailable = TANDEM_ERR_RUNTIME_UNAVAILABLE,
  /// ONNX Runtime failed while building or running a session.
  Onnx = TANDEM_ERR_ONNX,
  /// The tokenizer could not be loaded or failed to encode.
  Tokenizer = TANDEM_ERR_TOKENIZER,
  /// A file with an unknown format, an unsupported version, or content that does not parse.
  Format = TANDEM_ERR_FORMAT,
  /// A bundle or heads trained on a different backbone than the one given.
  BackboneMismatch = TANDEM_ERR_BACKBONE_MISMATCH,
  /// The requested execution provider (e.g. CUDA) cannot run here; there is no silent fallback.
  ExecutionProviderUnavailable = TANDEM_ERR_EXECUTION_PROVIDER_UNAVAILABLE,
  /// The caller cancelled the operation (a progress callback returned false); nothing was changed.
  Cancelled = TANDEM_ERR_CANCELLED,
  /// A caller buffer is too small; the dimension getters say how big it must be.
  BufferTooSmall = TANDEM_ERR_BUFFER_TOO_SMALL,
  /// A panic was caught at the C boundary: always a bug in tandem.
  Panic = TANDEM_ERR_PANIC,
  /// An internal invariant failed: always a bug in tandem.
  Internal = TANDEM_ERR_INTERNAL,
  /// A computation produced NaN or infinite values: training diverged (lower the learning rate) or
  /// its inputs were not finite.
  Numeric = TANDEM_ERR_NUMERIC,
};
// END GENERATED: error codes

/// The stable lowercase name of a code ("not_found", ...), or "unknown". Never fails.
inline const char* error_code_name(std::uint32_t code) noexcept {
  const char* name = tandem_error_code_name(code);
  return name ? name : "unknown";
}

/// The exception every failing tandem call throws: the C error's code and message.
/// `what()` is "[code_name] message"; `message()` is the message alone.
/// Copying an Error never throws (the text lives in std::runtime_error's shared storage).
class Error : public std::runtime_error {
 public:
  /// An error with a `TANDEM_ERR_*` code and a message.
  Error(std::uint32_t code, const std::string& message)
      : std::runtime_error(prefix(code) + message),
        code_(code),
        prefix_len_(prefix(code).size()) {}
  /// An error with an ErrorCode and a message.
  Error(ErrorCode code, const std::string& message)
      : Error(static_cast<std::uint32_t>(code), message) {}

  /// The numeric code, one of `TANDEM_ERR_*`.
  std::uint32_t code() const noexcept { return code_; }
  /// The code as an ErrorCode (a value outside the enumerators if a newer library adds codes).
  ErrorCode kind() const noexcept { return static_cast<ErrorCode>(code_); }
  /// The stable name of the code ("not_found", ...).
  const char* code_name() const noexcept { return error_code_name(code_); }
  /// The library's message, without the "[code_name] " prefix of what().
  const char* message() const noexcept { return what() + prefix_len_; }

 private:
  static std::string prefix(std::uint32_t code) {
    return std::string("[") + error_code_name(code) + "] ";
  }
  std::uint32_t code_;
  std::size_t prefix_len_;
};

namespace detail {

struct ErrorFree {
  void operator()(tandem_error* e) const noexcept { tandem_error_free(e); }
};
struct StringFree {
  void operator()(char* s) const noexcept { tandem_string_free(s); }
};
using ErrorPtr = std::unique_ptr<tandem_error, ErrorFree>;
using CString = std::unique_ptr<char, StringFree>;

/// Throws the C error `raw` (if any) as tandem::Error, freeing it in every case.
inline void check(tandem_error* raw) {
  if (raw == nullptr) return;
  ErrorPtr owned(raw);  // freed even if building the exception throws (bad_alloc)
  const char* msg = tandem_error_message(owned.get());
  throw Error(tandem_error_code(owned.get()), std::string(msg ? msg : ""));
}

/// Copies a library-owned `char *` result into a std::string and frees it.
inline std::string take_string(char* raw) {
  CString owned(raw);
  return owned ? std::string(owned.get()) : std::string();
}

/// A copy of a borrowed C string, "" for NULL.
inline std::string copy_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

/// Appends `s` to `out` as a JSON string literal (quotes, backslashes and control characters
/// escaped; UTF-8 passed through unchanged, so invalid UTF-8 is still reported by the library).
inline void append_json_string(std::string& out, std::string_view s) {
  static const char hex[] = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(hex[u >> 4]);
          out.push_back(hex[u & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

/// Owns one C handle; frees it with `Free` (a function object). Move-only; moved-from is empty.
template <typename T, typename Free>
class Handle {
 public:
  Handle() noexcept = default;
  explicit Handle(T* p) noexcept : p_(p) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : p_(std::exchange(other.p_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      p_ = std::exchange(other.p_, nullptr);
    }
    return *this;
  }
  ~Handle() { reset(); }
  T* get() const noexcept { return p_; }
  void reset() noexcept {
    if (p_ != nullptr) Free{}(std::exchange(p_, nullptr));
  }

 private:
  T* p_ = nullptr;
};

struct OptionsFree {
  void operator()(tandem_options* p) const noexcept { tandem_options_free(p); }
};
struct BackboneFree {
  void operator()(tandem_backbone* p) const noexcept { tandem_backbone_free(p); }
};
struct TrainerFree {
  void operator()(tandem_trainer* p) const noexcept { tandem_trainer_free(p); }
};
struct ModelFree {
  void operator()(tandem_model* p) const noexcept { tandem_model_free(p); }
};
struct EnsembleFree {
  void operator()(tandem_ensemble* p) const noexcept { tandem_ensemble_free(p); }
};
struct PredictionsFree {
  void operator()(tandem_predictions* p) const noexcept { tandem_predictions_free(p); }
};

/// rows * cols, throwing instead of overflowing.
inline std::size_t checked_product(std::size_t rows, std::size_t cols) {
  if (cols != 0 && rows > std::numeric_limits<std::size_t>::max() / cols) {
    throw std::length_error("tandem: batch too large");
  }
  return rows * cols;
}

/// Splits a row-major buffer into rows of `cols` floats.
inline std::vector<std::vector<float>> split_rows(const std::vector<float>& flat, std::size_t rows,
                                                  std::size_t cols) {
  std::vector<std::vector<float>> out;
  out.reserve(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const auto begin = flat.begin() + static_cast<std::ptrdiff_t>(r * cols);
    out.emplace_back(begin, begin + static_cast<std::ptrdiff_t>(cols));
  }
  return out;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Library information
// ---------------------------------------------------------------------------------------------

/// The library's version ("0.1.0"), as reported by the loaded libtandem.
inline std::string version() { return detail::copy_or_empty(tandem_version()); }

/// The C ABI version the loaded library implements. This binding was compiled against
/// `TANDEM_ABI_VERSION`; see abi_compatible().
inline std::uint32_t abi_version() noexcept { return tandem_abi_version(); }

/// True when the loaded library implements the ABI this binding was compiled against. A host
/// should refuse to run otherwise (Backbone::load checks it for you).
inline bool abi_compatible() noexcept { return tandem_abi_version() == TANDEM_ABI_VERSION; }

/// Throws std::runtime_error unless abi_compatible().
inline void require_abi() {
  if (!abi_compatible()) {
    throw std::runtime_error("tandem: the library implements C ABI version " +
                             std::to_string(tandem_abi_version()) +
                             " but this program was built against version " +
                             std::to_string(TANDEM_ABI_VERSION));
  }
}

// ---------------------------------------------------------------------------------------------
// Text batches
// ---------------------------------------------------------------------------------------------

/// A non-owning view of a batch of UTF-8 strings in the (pointers, lengths) form the C ABI takes.
/// Implicitly built from `std::vector<std::string>`, `std::vector<std::string_view>` or a braced
/// list of string literals / views. It borrows the strings: use it only as a function argument
/// (the strings must outlive the call), never store it.
class TextBatch {
 public:
  /// Views every string of `texts`.
  TextBatch(const std::vector<std::string>& texts) {  // NOLINT(google-explicit-constructor)
    reserve(texts.size());
    for (const auto& t : texts) push(t);
  }
  /// Views every string of `texts`.
  TextBatch(const std::vector<std::string_view>& texts) {  // NOLINT(google-explicit-constructor)
    reserve(texts.size());
    for (auto t : texts) push(t);
  }
  /// Views a braced list, e.g. `{"one", "two"}`.
  TextBatch(std::initializer_list<std::string_view> texts) {
    reserve(texts.size());
    for (auto t : texts) push(t);
  }

  /// Number of strings.
  std::size_t size() const noexcept { return ptrs_.size(); }
  /// True when there are no strings.
  bool empty() const noexcept { return ptrs_.empty(); }
  /// The pointer array (NULL when empty, which the C ABI accepts with n == 0).
  const char* const* ptrs() const noexcept { return ptrs_.empty() ? nullptr : ptrs_.data(); }
  /// The length array (NULL when empty).
  const std::size_t* lens() const noexcept { return lens_.empty() ? nullptr : lens_.data(); }

 private:
  void reserve(std::size_t n) {
    ptrs_.reserve(n);
    lens_.reserve(n);
  }
  void push(std::string_view s) {
    ptrs_.push_back(s.data());  // may be NULL only with size 0, which the C ABI accepts
    lens_.push_back(s.size());
  }
  std::vector<const char*> ptrs_;
  std::vector<std::size_t> lens_;
};

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// Options for loading a backbone: model directory, graph variant, threads, execution provider,
/// ONNX Runtime library, batching. Setters return *this for chaining and throw tandem::Error
/// on a bad value (the options are then unchanged). Use one Options from one thread at a time.
class Options {
 public:
  /// The defaults: the cached default backbone, the fp32 graph, all cores, CPU.
  Options() : h_(tandem_options_new()) {
    if (!h_.get()) throw std::bad_alloc();
  }
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;
  Options(Options&&) noexcept = default;
  Options& operator=(Options&&) noexcept = default;
  ~Options() = default;

  /// Intra-op threads per session; 0 means all available cores.
  Options& threads(std::uint32_t n) {
    detail::check(tandem_options_set_threads(h_.get(), n));
    return *this;
  }
  /// The graph variant: "fp32", "opt" or "int8". Errors: InvalidArgument (unknown name).
  Options& variant(std::string_view name) {
    detail::check(tandem_options_set_variant(h_.get(), name.data(), name.size()));
    return *this;
  }
  /// The execution provider: "cpu", "cuda" or "cuda:N". There is no silent CPU fallback:
  /// Backbone::load fails with ExecutionProviderUnavailable if it cannot run.
  Options& device(std::string_view name) {
    detail::check(tandem_options_set_device(h_.get(), name.data(), name.size()));
    return *this;
  }
  /// What runs the heads of models loaded on the backbone: "native" (the default) or "onnx"
  /// (the heads written as an ONNX graph and run by ONNX Runtime; the same results to 1e-5).
  /// Errors: InvalidArgument (unknown name).
  Options& heads(std::string_view name) {
    detail::check(tandem_options_set_heads(h_.get(), name.data(), name.size()));
    return *this;
  }
  /// The ONNX Runtime shared library to load (the first backbone load in a process decides).
  Options& ort_library(std::string_view path) {
    detail::check(tandem_options_set_ort_library(h_.get(), path.data(), path.size()));
    return *this;
  }
  /// The backbone directory (manifest.json, graphs, tokenizer.json).
  Options& backbone_dir(std::string_view path) {
    detail::check(tandem_options_set_backbone_dir(h_.get(), path.data(), path.size()));
    return *this;
  }
  /// The backbone by name: one setup installs ("minilm-l6", "minilm-l3", "mpnet-base") or a
  /// directory name under the cache's models/. Throws NotFound when it is not installed.
  Options& backbone_name(std::string_view name) {
    detail::check(tandem_options_set_backbone_name(h_.get(), name.data(), name.size()));
    return *this;
  }
  /// Most texts per graph run (default 32) and most concurrent sessions (default 1). Zeros are
  /// InvalidArgument.
  Options& batching(std::size_t batch_size, std::size_t sessions) {
    detail::check(tandem_options_set_batching(h_.get(), batch_size, sessions));
    return *this;
  }

  /// False for a moved-from Options.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_options* get() const noexcept { return h_.get(); }
  /// The C handle (still owned by this object).
  tandem_options* get() noexcept { return h_.get(); }

 private:
  detail::Handle<tandem_options, detail::OptionsFree> h_;
};

/// Checks the ONNX Runtime library, execution providers, backbone files and that every graph
/// loads and embeds, with the default options. Returns the JSON report
/// `{"ok": bool, "checks": [...], "execution_providers": [...]}`; failed checks are in the
/// report, not exceptions.
inline std::string doctor_json() {
  char* out = nullptr;
  detail::check(tandem_doctor_json(nullptr, &out));
  return detail::take_string(out);
}

/// As doctor_json(), with `options`.
inline std::string doctor_json(const Options& options) {
  if (!options) throw Error(ErrorCode::NullArgument, "`options` is empty (moved from)");
  char* out = nullptr;
  detail::check(tandem_doctor_json(options.get(), &out));
  return detail::take_string(out);
}

/// Prunes the on-disk embedding caches under `root` (empty: the default, `<cache dir>/embcache`):
/// whole files not used for `older_than_s` seconds (0: no age limit), then the least recently
/// used until the caches hold at most `max_bytes` (UINT64_MAX: no cap). Safe while other
/// processes use the caches. Returns the bytes freed.
inline std::uint64_t cache_prune(const std::string& root, std::uint64_t max_bytes,
                                 std::uint64_t older_than_s = 0) {
  std::uint64_t freed = 0;
  detail::check(tandem_cache_prune(root.data(), root.size(), max_bytes, older_than_s, &freed));
  return freed;
}

// ---------------------------------------------------------------------------------------------
// Metadata features
// ---------------------------------------------------------------------------------------------

/// The number of metadata features per text.
inline std::size_t metadata_feature_count() noexcept { return tandem_metadata_feature_count(); }

/// The stable feature names ("char_count", "flesch_reading_ease", ...), in output order.
inline std::vector<std::string> metadata_feature_names() {
  const std::size_t n = tandem_metadata_feature_count();
  std::vector<std::string> names;
  names.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const char* name = tandem_metadata_feature_name(i);
    if (name == nullptr) throw Error(ErrorCode::Internal, "metadata feature name missing");
    names.emplace_back(name);
  }
  return names;
}

/// The raw (un-normalized, finite) metadata features of each text: one row of
/// metadata_feature_count() floats per text. Needs no model. Thread-safe.
/// Errors: InvalidUtf8.
inline std::vector<std::vector<float>> extract_metadata(TextBatch texts) {
  const std::size_t cols = tandem_metadata_feature_count();
  std::vector<float> flat(detail::checked_product(texts.size(), cols));
  detail::check(tandem_metadata_extract(texts.ptrs(), texts.lens(), texts.size(),
                                        flat.empty() ? nullptr : flat.data(), flat.size()));
  return detail::split_rows(flat, texts.size(), cols);
}

// ---------------------------------------------------------------------------------------------
// Backbone
// ---------------------------------------------------------------------------------------------

/// A loaded backbone (ONNX Runtime sessions + tokenizer) that embeds text. Immutable: its const
/// methods may be called from many threads at once. Models and trainers made from it keep the
/// underlying backbone alive, so a Backbone may be destroyed before them.
class Backbone {
 public:
  /// An empty handle (only useful as a move target).
  Backbone() noexcept = default;
  Backbone(const Backbone&) = delete;
  Backbone& operator=(const Backbone&) = delete;
  Backbone(Backbone&&) noexcept = default;
  Backbone& operator=(Backbone&&) noexcept = default;
  ~Backbone() = default;

  /// Loads the default backbone with default options. Checks the ABI version first.
  /// Errors: NotFound, RuntimeUnavailable, ExecutionProviderUnavailable, Onnx, Tokenizer, Format.
  static Backbone load() { return load_with(nullptr); }
  /// Loads a backbone with `options` (copied; they may be destroyed right after).
  static Backbone load(const Options& options) {
    if (!options) throw Error(ErrorCode::NullArgument, "`options` is empty (moved from)");
    return load_with(options.get());
  }

  /// The embedding dimension (384 for all-MiniLM-L6-v2); 0 for an empty handle.
  std::size_t dim() const noexcept { return tandem_backbone_dim(h_.get()); }

  /// The sha256 of the graph in use (64 hex digits); "" for an empty handle.
  std::string graph_sha256() const {
    return detail::copy_or_empty(tandem_backbone_graph_sha256(h_.get()));
  }

  /// Embeds each text into an L2-normalized vector of dim() floats. Thread-safe.
  /// Errors: InvalidUtf8, Tokenizer, Onnx.
  std::vector<std::vector<float>> embed(TextBatch texts) const {
    return detail::split_rows(embed_flat(texts), texts.size(), dim());
  }

  /// As embed(), as one row-major buffer of texts.size() * dim() floats.
  std::vector<float> embed_flat(TextBatch texts) const {
    std::vector<float> flat(detail::checked_product(texts.size(), dim()));
    detail::check(tandem_backbone_embed(h_.get(), texts.ptrs(), texts.lens(), texts.size(),
                                        flat.empty() ? nullptr : flat.data(), flat.size()));
    return flat;
  }

  /// Embeds one text.
  std::vector<float> embed_one(std::string_view text) const {
    return embed_flat(std::initializer_list<std::string_view>{text});
  }

  /// False for an empty (default-constructed or moved-from) handle.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_backbone* get() const noexcept { return h_.get(); }

 private:
  static Backbone load_with(const tandem_options* options) {
    require_abi();
    tandem_backbone* raw = nullptr;
    detail::check(tandem_backbone_load(options, &raw));
    Backbone b;
    b.h_ = detail::Handle<tandem_backbone, detail::BackboneFree>(raw);
    return b;
  }
  detail::Handle<tandem_backbone, detail::BackboneFree> h_;
};

// ---------------------------------------------------------------------------------------------
// Trainer
// ---------------------------------------------------------------------------------------------

/// One class label per task, e.g. `{{"label", "HUM"}}`; turned into the labels JSON object
/// `{"label": "HUM"}` (values are JSON strings, so this form is for multiclass and binary tasks
/// with string labels; use the JSON overloads for lists, numbers or booleans).
using Labels = std::map<std::string, std::string>;

/// The labels JSON object for `labels` (every value a JSON string).
inline std::string labels_json(const Labels& labels) {
  std::string out = "{";
  bool first = true;
  for (const auto& kv : labels) {
    if (!first) out.push_back(',');
    first = false;
    detail::append_json_string(out, kv.first);
    out.push_back(':');
    detail::append_json_string(out, kv.second);
  }
  out.push_back('}');
  return out;
}

/// A progress report during Trainer::train.
struct Progress {
  /// "embed" (then `epoch` counts chunks of texts embedded and the losses are NaN), a
  /// training stage: "heads", "stage1", "stage2", "joint", ..., or last "thresholds" (once per
  /// binary or multi-label task whose decision thresholds are tuned; losses NaN).
  std::string stage;
  /// 0-based epoch (or chunk) within `epochs`.
  std::uint32_t epoch = 0;
  /// Epochs (or chunks) planned for this stage.
  std::uint32_t epochs = 0;
  /// Training loss of this epoch (NaN while embedding).
  float train_loss = 0.0f;
  /// Validation loss of this epoch (NaN while embedding).
  float valid_loss = 0.0f;
};

/// Called after each chunk of embeddings and each epoch; return false to cancel training.
using ProgressFn = std::function<bool(const Progress&)>;

namespace detail {
struct TrainContext {
  const ProgressFn* fn;
  std::exception_ptr error;
};
}  // namespace detail

}  // namespace tandem

extern "C" {
/// The C progress callback that forwards to a tandem::ProgressFn. It never lets an exception
/// reach the C frames: it stores it, cancels, and Trainer::train rethrows it after the C call.
inline bool tandem_cpp_progress_trampoline(void* user_data, const char* stage, std::uint32_t epoch,
                                           std::uint32_t epochs, float train_loss,
                                           float valid_loss) noexcept {
  auto* ctx = static_cast<tandem::detail::TrainContext*>(user_data);
  try {
    tandem::Progress p;
    p.stage = stage ? stage : "";
    p.epoch = epoch;
    p.epochs = epochs;
    p.train_loss = train_loss;
    p.valid_loss = valid_loss;
    return (*ctx->fn)(p);
  } catch (...) {
    ctx->error = std::current_exception();
    return false;
  }
}
}  // extern "C"

namespace tandem {

namespace detail {
/// Runs `call(progress, user_data)`, a C call that takes tandem's progress callback, with
/// `on_progress` behind the trampoline (none when it is empty). An exception the callback threw
/// is rethrown here once the C call has returned, in place of the CANCELLED error it provoked;
/// any other error is thrown as tandem::Error.
template <typename Call>
void call_with_progress(const ProgressFn& on_progress, Call call) {
  TrainContext ctx{&on_progress, nullptr};
  ErrorPtr err(on_progress ? call(&tandem_cpp_progress_trampoline, &ctx) : call(nullptr, nullptr));
  if (ctx.error) {
    err.reset();
    std::rethrow_exception(ctx.error);
  }
  check(err.release());
}
}  // namespace detail

/// Learns heads on the device: create it from a backbone and a JSON spec, add labelled
/// examples, train (with progress and cancellation), evaluate, save a bundle, or hand the heads
/// to a live Model. Use one Trainer from one thread at a time. A failed or cancelled training
/// run keeps the examples and the previously trained heads.
class Trainer {
 public:
  /// An empty handle (only useful as a move target).
  Trainer() noexcept = default;
  /// A trainer on `backbone` (kept alive by the trainer) from a JSON spec, e.g.
  /// `{"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":"embedding_only"}}`.
  /// Task kinds: multiclass, binary, multilabel, regression; config modes: two_stage, joint,
  /// embedding_only, metadata_only. Unknown keys are errors.
  /// Errors: InvalidArgument (bad spec), InvalidUtf8, Io (embedding cache).
  Trainer(const Backbone& backbone, std::string_view spec_json) {
    tandem_trainer* raw = nullptr;
    detail::check(tandem_trainer_new(backbone.get(), spec_json.data(), spec_json.size(), &raw));
    h_ = detail::Handle<tandem_trainer, detail::TrainerFree>(raw);
  }
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  Trainer(Trainer&&) noexcept = default;
  Trainer& operator=(Trainer&&) noexcept = default;
  ~Trainer() = default;

  /// Adds a training example; `labels_json` is a JSON object with one label per task, e.g.
  /// `{"topic": "sport", "spam": false}` (a list for multi-label, a number for regression).
  /// A malformed example is rejected whole. Errors: InvalidUtf8, InvalidArgument (bad JSON,
  /// unknown or missing task, a label of the wrong shape).
  void add_example(std::string_view text, std::string_view labels_json) {
    detail::check(tandem_trainer_add_example(h_.get(), text.data(), text.size(),
                                             labels_json.data(), labels_json.size()));
  }
  /// Adds a training example with one string label per task, e.g. `Labels{{"label", "HUM"}}`.
  void add_example(std::string_view text, const Labels& labels) {
    add_example(text, std::string_view(tandem::labels_json(labels)));
  }

  /// Adds a validation example (same arguments as add_example). Without any, training holds
  /// out a stratified fraction (`config.valid_fraction`) of the training examples.
  void add_validation_example(std::string_view text, std::string_view labels_json) {
    detail::check(tandem_trainer_add_validation_example(h_.get(), text.data(), text.size(),
                                                        labels_json.data(), labels_json.size()));
  }
  /// Adds a validation example with one string label per task.
  void add_validation_example(std::string_view text, const Labels& labels) {
    add_validation_example(text, std::string_view(tandem::labels_json(labels)));
  }

  /// Training examples added so far (0 for an empty handle).
  std::size_t example_count() const noexcept { return tandem_trainer_example_count(h_.get()); }

  /// Adds a text without labels, for distillation: with teacher bundles in the spec's config
  /// (`"distill": {"teachers": [...]}`), it joins the training split labelled by the
  /// teachers' decisions, with their outputs as soft targets; train() without a teacher
  /// refuses it. Errors: InvalidUtf8.
  void add_unlabelled(std::string_view text) {
    detail::check(tandem_trainer_add_unlabelled(h_.get(), text.data(), text.size()));
  }

  /// Texts added with add_unlabelled (0 for an empty handle).
  std::size_t unlabelled_count() const noexcept {
    return tandem_trainer_unlabelled_count(h_.get());
  }

  /// Trains heads on the examples added so far, without progress reports.
  /// Errors: InvalidArgument (no examples, too few to split, bad labels), Onnx, Tokenizer.
  void train() { detail::check(tandem_trainer_train(h_.get(), nullptr, nullptr)); }

  /// Trains heads, calling `on_progress` on this thread after each chunk of embeddings and each
  /// epoch. If it returns false, training stops and tandem::Error (ErrorCode::Cancelled) is
  /// thrown. If it throws, training is cancelled and that exception is rethrown here once the
  /// library has returned (it never unwinds through the C library). Either way the trainer
  /// keeps its examples and previous heads and can be trained again. Do not use this trainer
  /// from inside the callback (it is busy training).
  void train(const ProgressFn& on_progress) {
    detail::call_with_progress(on_progress, [this](tandem_progress_fn progress, void* user_data) {
      return tandem_trainer_train(h_.get(), progress, user_data);
    });
  }

  /// The last successful training run's report as JSON (`recipe`, `mode`, `stages` with
  /// per-epoch history, `valid_metrics`, timings, sizes; after a `"recipe": "auto"` search also
  /// `selection` and `reason`). Errors: InvalidArgument (not trained yet).
  std::string report_json() const {
    char* out = nullptr;
    detail::check(tandem_trainer_report_json(h_.get(), &out));
    return detail::take_string(out);
  }

  /// Metrics of the trained heads on labelled texts (one labels JSON object per text), as a
  /// JSON object (`accuracy`, `macro_f1`, `micro_f1`, per-class details, or `mae`, `rmse`,
  /// `pearson`; every task under `tasks`). Non-const: embeddings are memoized in the trainer.
  /// Errors: InvalidArgument (not trained, sizes differ, empty, bad or unknown labels),
  /// InvalidUtf8, Onnx.
  std::string evaluate(TextBatch texts, TextBatch labels_json) {
    if (texts.size() != labels_json.size()) {
      throw Error(ErrorCode::InvalidArgument,
                  std::to_string(texts.size()) + " texts but " +
                      std::to_string(labels_json.size()) + " label objects");
    }
    char* out = nullptr;
    detail::check(tandem_trainer_evaluate(h_.get(), texts.ptrs(), texts.lens(),
                                          labels_json.ptrs(), labels_json.lens(), texts.size(),
                                          &out));
    return detail::take_string(out);
  }
  /// As evaluate(), with one Labels map per text. (A template only so that a braced list of
  /// JSON strings, `evaluate(texts, {"{...}", "{...}"})`, unambiguously picks the overload
  /// above.)
  template <typename L, typename = std::enable_if_t<std::is_same_v<L, Labels>>>
  std::string evaluate(TextBatch texts, const std::vector<L>& labels) {
    std::vector<std::string> json;
    json.reserve(labels.size());
    for (const auto& l : labels) json.push_back(tandem::labels_json(l));
    return evaluate(texts, TextBatch(json));
  }

  /// Saves the trained heads as a bundle in directory `dir`, atomically (an existing bundle
  /// there is replaced). Errors: InvalidArgument (not trained yet, empty path), InvalidUtf8, Io.
  void save(std::string_view dir) const {
    detail::check(tandem_trainer_save(h_.get(), dir.data(), dir.size()));
  }

  /// False for an empty (default-constructed or moved-from) handle.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_trainer* get() const noexcept { return h_.get(); }
  /// The C handle (still owned by this object).
  tandem_trainer* get() noexcept { return h_.get(); }

 private:
  detail::Handle<tandem_trainer, detail::TrainerFree> h_;
};

/// Pre-trains a metadata encoder on unlabelled `texts` and saves it atomically as an encoder
/// bundle in `out_dir`, as `tandem pretrain` does; a Trainer starts from it with
/// `"config": {"mode": "two_stage", "metadata": {"init_encoder": "<out_dir>"}}`. `config` is
/// a training config as JSON or TOML text (empty: the defaults): `seed`, `valid_fraction`,
/// `[metadata]` (the encoder's shape, `stage1_targets`, `mask_rate`, `[metadata.stage]`).
/// `on_progress` (may be empty) sees each epoch as stage "pretrain" and cancels by returning
/// false, as for Trainer::train. Returns the run's summary as JSON (`best_epoch`,
/// `epochs_run`, `valid_loss`, `target_losses`, `n_train`, `n_valid`, `train_seconds`).
/// Errors: InvalidArgument (bad config, `labels` among the targets, too few texts), InvalidUtf8,
/// Io, Cancelled (nothing written).
inline std::string pretrain_encoder(TextBatch texts, std::string_view config,
                                    std::string_view out_dir, const ProgressFn& on_progress = {}) {
  std::string out;
  detail::call_with_progress(on_progress, [&](tandem_progress_fn progress, void* user_data) {
    char* report = nullptr;
    detail::ErrorPtr err(tandem_pretrain_encoder(texts.ptrs(), texts.lens(), texts.size(),
                                                 config.data(), config.size(), out_dir.data(),
                                                 out_dir.size(), progress, user_data, &report));
    out = detail::take_string(report);
    return err.release();
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Predictions
// ---------------------------------------------------------------------------------------------

/// What a task predicts (`TANDEM_TASK_*`).
enum class TaskKind : std::uint32_t {
  Multiclass = TANDEM_TASK_MULTICLASS,  ///< Exactly one of several classes.
  Binary = TANDEM_TASK_BINARY,          ///< One of two classes; the second is the positive one.
  Multilabel = TANDEM_TASK_MULTILABEL,  ///< Any subset of several labels.
  Regression = TANDEM_TASK_REGRESSION,  ///< A real value.
};

/// How Model::predict_groups combines the texts of one group (`TANDEM_AGGREGATE_*`).
enum class Aggregation : std::uint32_t {
  Mean = TANDEM_AGGREGATE_MEAN,          ///< The mean of each probability (or value).
  Median = TANDEM_AGGREGATE_MEDIAN,      ///< The median of each probability (or value).
  Majority = TANDEM_AGGREGATE_MAJORITY,  ///< Each text votes for its top class; vote shares.
  /// Majority's vote shares, decided as probabilities on the tuned thresholds.
  TotalVote = TANDEM_AGGREGATE_TOTAL_VOTE,
};

/// One task's prediction for one row (a plain copy; see Predictions::rows()).
struct TaskPrediction {
  std::string task;                  ///< The task name.
  TaskKind kind = TaskKind::Multiclass;  ///< The task kind.
  std::vector<std::string> labels;   ///< Predicted labels (1 for multiclass/binary, 0 for regression).
  std::vector<float> probabilities;  ///< Per class, in class order (empty for regression).
  std::optional<float> value;        ///< The value, for regression tasks.
};

/// One row (text or group) of predictions.
struct Prediction {
  std::optional<std::string> group;  ///< The group key, for grouped predictions.
  std::vector<TaskPrediction> tasks;  ///< One entry per task, in the bundle's order.
};

/// Predictions for a batch of texts (or groups), from Model::predict / predict_groups:
/// per row and task the predicted labels, class probabilities or value. Immutable; its const
/// methods may be called from many threads. Accessors throw std::out_of_range for a row, task
/// or class out of range (probabilities()/value() throw tandem::Error InvalidArgument instead,
/// as the C library reports it).
class Predictions {
 public:
  /// An empty handle (only useful as a move target).
  Predictions() noexcept = default;
  Predictions(const Predictions&) = delete;
  Predictions& operator=(const Predictions&) = delete;
  Predictions(Predictions&&) noexcept = default;
  Predictions& operator=(Predictions&&) noexcept = default;
  ~Predictions() = default;

  /// Rows: one per input text, or one per group (0 for an empty handle).
  std::size_t size() const noexcept { return tandem_predictions_len(h_.get()); }
  /// Tasks per row, in the bundle's order.
  std::size_t task_count() const noexcept { return tandem_predictions_task_count(h_.get()); }
  /// The version of the heads that made every prediction here (0 as loaded, +1 per swap).
  std::uint64_t heads_version() const noexcept {
    return tandem_predictions_heads_version(h_.get());
  }

  /// Task `task`'s name.
  std::string task_name(std::size_t task) const {
    return required(tandem_predictions_task_name(h_.get(), task), "task");
  }
  /// Task `task`'s kind.
  TaskKind task_kind(std::size_t task) const {
    const std::uint32_t k = tandem_predictions_task_kind(h_.get(), task);
    if (k == std::numeric_limits<std::uint32_t>::max()) {
      throw std::out_of_range("tandem: task index out of range");
    }
    return static_cast<TaskKind>(k);
  }
  /// The index of the task named `name`; std::nullopt if there is none.
  std::optional<std::size_t> task_index(std::string_view name) const {
    for (std::size_t t = 0, n = task_count(); t < n; ++t) {
      const char* s = tandem_predictions_task_name(h_.get(), t);
      if (s != nullptr && name == s) return t;
    }
    return std::nullopt;
  }
  /// Classes of task `task` (0 for regression or out of range).
  std::size_t class_count(std::size_t task) const noexcept {
    return tandem_predictions_class_count(h_.get(), task);
  }
  /// The label that probability index `cls` of task `task` refers to.
  std::string class_name(std::size_t task, std::size_t cls) const {
    return required(tandem_predictions_class_name(h_.get(), task, cls), "class");
  }
  /// Every class name of task `task`, in probability order.
  std::vector<std::string> class_names(std::size_t task) const {
    task_kind(task);  // range check
    std::vector<std::string> names;
    const std::size_t n = class_count(task);
    names.reserve(n);
    for (std::size_t c = 0; c < n; ++c) names.push_back(class_name(task, c));
    return names;
  }
  /// The group key of row `row` for grouped predictions; std::nullopt for ungrouped ones.
  std::optional<std::string> group(std::size_t row) const {
    check_row(row);
    const char* g = tandem_predictions_group(h_.get(), row);
    return g ? std::optional<std::string>(g) : std::nullopt;
  }
  /// The labels row `row` predicts for task `task`: one for multiclass and binary, any number
  /// for multi-label, none for regression.
  std::vector<std::string> labels(std::size_t row, std::size_t task) const {
    check_cell(row, task);
    const std::size_t n = tandem_predictions_label_count(h_.get(), row, task);
    std::vector<std::string> out;
    out.reserve(n);
    for (std::size_t k = 0; k < n; ++k) {
      out.push_back(required(tandem_predictions_label(h_.get(), row, task, k), "label"));
    }
    return out;
  }
  /// The single predicted label of a multiclass or binary task (the first label otherwise);
  /// throws std::out_of_range if the row predicts no label (regression, empty multi-label).
  /// Binary and multi-label decisions use the thresholds tuned on validation data (stored in
  /// the bundle), not 0.5, so a binary label need not be the class with the higher probability.
  std::string label(std::size_t row, std::size_t task = 0) const {
    check_cell(row, task);
    return required(tandem_predictions_label(h_.get(), row, task, 0), "label");
  }
  /// The class probabilities of row `row` for task `task`, in class order (binary: [1-p, p];
  /// multi-label: independent per-label probabilities). Errors: InvalidArgument (out of range,
  /// or a regression task).
  std::vector<float> probabilities(std::size_t row, std::size_t task = 0) const {
    std::vector<float> out(class_count(task));
    detail::check(tandem_predictions_probabilities(h_.get(), row, task,
                                                   out.empty() ? nullptr : out.data(),
                                                   out.size()));
    return out;
  }
  /// The predicted value of a regression task. Errors: InvalidArgument (out of range, or not a
  /// regression task).
  float value(std::size_t row, std::size_t task = 0) const {
    float v = 0.0f;
    detail::check(tandem_predictions_value(h_.get(), row, task, &v));
    return v;
  }
  /// The Monte-Carlo spread of predictions made by Model::predict_sampled: the standard
  /// deviation over the passes of each class's probability (class order), or of a regression
  /// task's value (one number). Errors: InvalidArgument (out of range, or predictions made
  /// without Monte-Carlo dropout).
  std::vector<float> spread(std::size_t row, std::size_t task = 0) const {
    std::vector<float> out(std::max<std::size_t>(class_count(task), 1));
    detail::check(tandem_predictions_spread(h_.get(), row, task, out.data(), out.size()));
    return out;
  }
  /// Every row as JSONL (`{"index"|"group", "predictions": [...]}` per line), as `tandem predict`.
  std::string json() const {
    char* out = nullptr;
    detail::check(tandem_predictions_json(h_.get(), &out));
    return detail::take_string(out);
  }

  /// Row `row` copied into plain structs.
  Prediction row(std::size_t row) const {
    check_row(row);
    Prediction p;
    p.group = group(row);
    const std::size_t tasks = task_count();
    p.tasks.reserve(tasks);
    for (std::size_t t = 0; t < tasks; ++t) {
      TaskPrediction tp;
      tp.task = task_name(t);
      tp.kind = task_kind(t);
      tp.labels = labels(row, t);
      if (tp.kind == TaskKind::Regression) {
        tp.value = value(row, t);
      } else {
        tp.probabilities = probabilities(row, t);
      }
      p.tasks.push_back(std::move(tp));
    }
    return p;
  }
  /// Every row copied into plain structs.
  std::vector<Prediction> rows() const {
    std::vector<Prediction> out;
    const std::size_t n = size();
    out.reserve(n);
    for (std::size_t r = 0; r < n; ++r) out.push_back(row(r));
    return out;
  }

  /// False for an empty (default-constructed or moved-from) handle.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_predictions* get() const noexcept { return h_.get(); }

 private:
  friend class Model;
  friend class Ensemble;
  explicit Predictions(tandem_predictions* raw) noexcept : h_(raw) {}

  static std::string required(const char* s, const char* what) {
    if (s == nullptr) throw std::out_of_range(std::string("tandem: ") + what + " index out of range");
    return s;
  }
  void check_row(std::size_t row) const {
    if (row >= size()) throw std::out_of_range("tandem: row index out of range");
  }
  void check_cell(std::size_t row, std::size_t task) const {
    check_row(row);
    if (task >= task_count()) throw std::out_of_range("tandem: task index out of range");
  }
  detail::Handle<tandem_predictions, detail::PredictionsFree> h_;
};

// ---------------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------------

/// A trained bundle on a backbone, ready to serve. predict/predict_groups (const) and the swaps
/// may be called from many threads at once: predictions in flight finish on the heads they
/// started with, and each Predictions records the heads version that made it.
class Model {
 public:
  /// An empty handle (only useful as a move target).
  Model() noexcept = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;
  ~Model() = default;

  /// Loads the bundle in directory `dir` onto `backbone` (kept alive by the model).
  /// Errors: NotFound (no bundle there), Format, BackboneMismatch, InvalidUtf8,
  /// InvalidArgument (empty path).
  static Model load(const Backbone& backbone, std::string_view dir) {
    tandem_model* raw = nullptr;
    detail::check(tandem_model_load(backbone.get(), dir.data(), dir.size(), &raw));
    Model m;
    m.h_ = detail::Handle<tandem_model, detail::ModelFree>(raw);
    return m;
  }

  /// Loads the bundle in directory `dir` on the backbone it records, with no backbone loaded or
  /// named: its own fine-tuned one, else the cached backbone of the name it was trained on, else
  /// the default, with the graph variant it was trained with. Errors: NotFound, Format,
  /// BackboneMismatch (its backbone is not installed), InvalidUtf8, Onnx, RuntimeLoad.
  static Model open(std::string_view dir) { return open_with(dir, nullptr); }
  /// The same with `options` (threads, device, ...; a variant or backbone directory set there
  /// overrides the bundle's).
  static Model open(std::string_view dir, const Options& options) {
    if (!options) throw Error(ErrorCode::NullArgument, "`options` is empty (moved from)");
    return open_with(dir, options.get());
  }

  /// Predicts every task for each text. Thread-safe. Errors: InvalidUtf8, Tokenizer, Onnx.
  Predictions predict(TextBatch texts) const {
    tandem_predictions* raw = nullptr;
    detail::check(tandem_model_predict(h_.get(), texts.ptrs(), texts.lens(), texts.size(), &raw));
    return Predictions(raw);
  }

  /// Predicts with Monte-Carlo dropout: each task's probabilities (or value) are the mean of
  /// `samples` passes of the heads with dropout on, drawn from `seed` (same seed, same numbers);
  /// Predictions::spread reads their standard deviation. Thread-safe.
  /// Errors: InvalidArgument (0 samples, or heads without dropout), InvalidUtf8, Tokenizer, Onnx.
  Predictions predict_sampled(TextBatch texts, std::size_t samples, std::uint64_t seed = 0) const {
    tandem_predictions* raw = nullptr;
    detail::check(tandem_model_predict_sampled(h_.get(), texts.ptrs(), texts.lens(), texts.size(),
                                               samples, seed, &raw));
    return Predictions(raw);
  }

  /// One prediction per group: text i belongs to group `groups[i]` (e.g. an author id) and each
  /// group's outputs are combined by `how`. Rows come back in sorted group order;
  /// Predictions::group(row) gives each row's key. Thread-safe.
  /// Errors: InvalidArgument (sizes differ, unknown aggregation), InvalidUtf8, Tokenizer, Onnx.
  Predictions predict_groups(TextBatch texts, TextBatch groups,
                             Aggregation how = Aggregation::Mean) const {
    if (texts.size() != groups.size()) {
      throw Error(ErrorCode::InvalidArgument, std::to_string(texts.size()) + " texts but " +
                                                  std::to_string(groups.size()) + " group keys");
    }
    tandem_predictions* raw = nullptr;
    detail::check(tandem_model_predict_groups(h_.get(), texts.ptrs(), texts.lens(), groups.ptrs(),
                                              groups.lens(), texts.size(),
                                              static_cast<std::uint32_t>(how), &raw));
    return Predictions(raw);
  }

  /// Hot-swaps in the heads `trainer` last trained (copied; the trainer stays usable) and
  /// returns the new heads version. Thread-safe with respect to the model; `trainer` must not
  /// be in use by another thread. Errors: InvalidArgument (trainer not trained, or heads for
  /// another embedding size), BackboneMismatch.
  std::uint64_t swap_heads(const Trainer& trainer) {
    std::uint64_t v = 0;
    detail::check(tandem_model_swap_heads(h_.get(), trainer.get(), &v));
    return v;
  }

  /// Hot-swaps in the heads of the bundle in `dir` (checked as load()) and returns the new heads
  /// version. Thread-safe. Errors: NotFound, Format, BackboneMismatch, InvalidUtf8.
  std::uint64_t swap_bundle(std::string_view dir) {
    std::uint64_t v = 0;
    detail::check(tandem_model_swap_bundle(h_.get(), dir.data(), dir.size(), &v));
    return v;
  }

  /// The version of the heads now serving (0 as loaded, +1 per swap; 0 for an empty handle).
  std::uint64_t heads_version() const noexcept { return tandem_model_heads_version(h_.get()); }

  /// The bundle manifest the model was loaded from (tasks, labels, thresholds, metrics,
  /// provenance) as JSON. It describes the bundle as loaded, not heads swapped in later: read
  /// the serving heads' tasks and classes from a Predictions (task_name, class_names).
  std::string manifest_json() const {
    char* out = nullptr;
    detail::check(tandem_model_manifest_json(h_.get(), &out));
    return detail::take_string(out);
  }

  /// Writes the model (the backbone's `variant` graph, "fp32", "opt" or "int8", then the heads
  /// it serves now) as one ONNX graph to `path`, with tokenizer.json and <stem>.tandem.json
  /// beside it: what `tandem export` writes, for stock ONNX Runtime.
  void export_onnx(std::string_view path, std::string_view variant = "fp32") const {
    detail::check(tandem_model_export_onnx(h_.get(), path.data(), path.size(), variant.data(),
                                           variant.size()));
  }

  /// False for an empty (default-constructed or moved-from) handle.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_model* get() const noexcept { return h_.get(); }

 private:
  static Model open_with(std::string_view dir, const tandem_options* options) {
    require_abi();
    tandem_model* raw = nullptr;
    detail::check(tandem_model_open(dir.data(), dir.size(), options, &raw));
    Model m;
    m.h_ = detail::Handle<tandem_model, detail::ModelFree>(raw);
    return m;
  }
  detail::Handle<tandem_model, detail::ModelFree> h_;
};

// ---------------------------------------------------------------------------------------------
// Ensemble
// ---------------------------------------------------------------------------------------------

/// Several bundles with the same tasks predicting together: each task's probabilities (or
/// values) are the mean of the members', and labels are decided on them as one model's would
/// be, with each binary and multi-label threshold the mean of the members' tuned ones. Members
/// on one loaded backbone share its run (texts are embedded once). Immutable: its const methods
/// may be called from many threads at once. Predictions are the same type a Model returns.
class Ensemble {
 public:
  /// An empty handle (only useful as a move target).
  Ensemble() noexcept = default;
  Ensemble(const Ensemble&) = delete;
  Ensemble& operator=(const Ensemble&) = delete;
  Ensemble(Ensemble&&) noexcept = default;
  Ensemble& operator=(Ensemble&&) noexcept = default;
  ~Ensemble() = default;

  /// Loads the bundles in directories `dirs` as one ensemble, as `tandem predict --model A
  /// --model B` does: the first on the backbone it records (as Model::open), the others onto
  /// that same loaded backbone. Errors: InvalidArgument (no directories, an empty one, or a
  /// bundle with other tasks than the first: the message names both), NotFound, Format,
  /// BackboneMismatch, InvalidUtf8, Onnx, RuntimeLoad.
  static Ensemble open(TextBatch dirs) { return open_with(dirs, nullptr); }
  /// The same with `options` for the backbone (threads, device, ...; a variant or backbone
  /// directory set there overrides the first bundle's).
  static Ensemble open(TextBatch dirs, const Options& options) {
    if (!options) throw Error(ErrorCode::NullArgument, "`options` is empty (moved from)");
    return open_with(dirs, options.get());
  }

  /// An ensemble of loaded models, e.g. `Ensemble::of({a, b})`, which must have the same tasks.
  /// It takes the heads each model serves now (later swaps into a model do not change it) and
  /// shares their backbones, so the models may be destroyed before it. Errors: InvalidArgument
  /// (no models, or one with other tasks than the first), NullArgument (an empty Model).
  static Ensemble of(const std::vector<std::reference_wrapper<const Model>>& models) {
    std::vector<const tandem_model*> ptrs;
    ptrs.reserve(models.size());
    for (const Model& m : models) ptrs.push_back(m.get());
    tandem_ensemble* raw = nullptr;
    detail::check(tandem_ensemble_new(ptrs.empty() ? nullptr : ptrs.data(), ptrs.size(), &raw));
    Ensemble e;
    e.h_ = detail::Handle<tandem_ensemble, detail::EnsembleFree>(raw);
    return e;
  }

  /// Predicts every task for each text with every member and averages them. Thread-safe.
  /// Errors: InvalidUtf8, Tokenizer, Onnx.
  Predictions predict(TextBatch texts) const {
    tandem_predictions* raw = nullptr;
    detail::check(
        tandem_ensemble_predict(h_.get(), texts.ptrs(), texts.lens(), texts.size(), &raw));
    return Predictions(raw);
  }

  /// One prediction per group from the members' averaged outputs, as Model::predict_groups
  /// combines one model's. Rows come back in sorted group order. Thread-safe.
  /// Errors: InvalidArgument (sizes differ, unknown aggregation), InvalidUtf8, Tokenizer, Onnx.
  Predictions predict_groups(TextBatch texts, TextBatch groups,
                             Aggregation how = Aggregation::Mean) const {
    if (texts.size() != groups.size()) {
      throw Error(ErrorCode::InvalidArgument, std::to_string(texts.size()) + " texts but " +
                                                  std::to_string(groups.size()) + " group keys");
    }
    tandem_predictions* raw = nullptr;
    detail::check(tandem_ensemble_predict_groups(h_.get(), texts.ptrs(), texts.lens(),
                                                 groups.ptrs(), groups.lens(), texts.size(),
                                                 static_cast<std::uint32_t>(how), &raw));
    return Predictions(raw);
  }

  /// The number of members (0 for an empty handle).
  std::size_t member_count() const noexcept { return tandem_ensemble_member_count(h_.get()); }

  /// False for an empty (default-constructed or moved-from) handle.
  explicit operator bool() const noexcept { return h_.get() != nullptr; }
  /// The C handle (still owned by this object).
  const tandem_ensemble* get() const noexcept { return h_.get(); }

 private:
  static Ensemble open_with(const TextBatch& dirs, const tandem_options* options) {
    require_abi();
    tandem_ensemble* raw = nullptr;
    detail::check(tandem_ensemble_open(dirs.ptrs(), dirs.lens(), dirs.size(), options, &raw));
    Ensemble e;
    e.h_ = detail::Handle<tandem_ensemble, detail::EnsembleFree>(raw);
    return e;
  }
  detail::Handle<tandem_ensemble, detail::EnsembleFree> h_;
};

}  // namespace tandem

#endif  // TANDEM_HPP
