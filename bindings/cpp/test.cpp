// Tests of the C++ binding (tandem.hpp) against the real library, backbone and TREC data.
// Build and run with bindings/cpp/run_test.sh. Exits non-zero if any check fails.
//
// Data: $TANDEM_TREC, else data/trec.jsonl in tandem's cache directory ($TANDEM_HOME, else
// ${XDG_CACHE_HOME:-~/.cache}/tandem); a missing file is a failure.
// TANDEM_CPP_TEST_SMALL=1 (set by run_test.sh under valgrind) predicts on 20 held-out questions
// instead of 150 and uses one thread per session, so that the run stays within minutes there.

#include "tandem.hpp"

#include "minijson.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// A tiny check harness: counts failures, keeps going, exits non-zero at the end.
// ---------------------------------------------------------------------------------------------

static int g_checks = 0;
static int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    ++g_checks;                                                                     \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                               \
  } while (0)

#define CHECK_MSG(cond, ...)                                                        \
  do {                                                                              \
    ++g_checks;                                                                     \
    if (!(cond)) {                                                                  \
      ++g_failures;                                                                 \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                            \
      std::fprintf(stderr, "\n");                                                   \
    }                                                                               \
  } while (0)

// Checks that `expr` throws tandem::Error with ErrorCode `code` (and that the message is set).
#define CHECK_THROWS_CODE(expr, code)                                                          \
  do {                                                                                         \
    ++g_checks;                                                                                \
    try {                                                                                      \
      (void)(expr);                                                                            \
      ++g_failures;                                                                            \
      std::fprintf(stderr, "%s:%d: expected tandem::Error %s from: %s\n", __FILE__, __LINE__, \
                   #code, #expr);                                                              \
    } catch (const tandem::Error& e_) {                                                        \
      if (e_.kind() != (code) || e_.message()[0] == '\0') {                                  \
        ++g_failures;                                                                          \
        std::fprintf(stderr, "%s:%d: expected %s from %s, got: %s\n", __FILE__, __LINE__,     \
                     #code, #expr, e_.what());                                                 \
      }                                                                                        \
    } catch (const std::exception& e_) {                                                       \
      ++g_failures;                                                                            \
      std::fprintf(stderr, "%s:%d: expected tandem::Error from %s, got std::exception: %s\n", \
                   __FILE__, __LINE__, #expr, e_.what());                                      \
    }                                                                                          \
  } while (0)

// Checks that `expr` throws an exception of type `type`.
#define CHECK_THROWS_AS(expr, type)                                                               \
  do {                                                                                            \
    ++g_checks;                                                                                   \
    try {                                                                                         \
      (void)(expr);                                                                               \
      ++g_failures;                                                                               \
      std::fprintf(stderr, "%s:%d: expected %s from: %s\n", __FILE__, __LINE__, #type, #expr);   \
    } catch (const type&) {                                                                       \
    } catch (const std::exception& e_) {                                                          \
      ++g_failures;                                                                               \
      std::fprintf(stderr, "%s:%d: expected %s from %s, got: %s\n", __FILE__, __LINE__, #type,   \
                   #expr, e_.what());                                                             \
    }                                                                                             \
  } while (0)

template <typename F>
static void section(const char* name, F&& body) {
  const int before = g_failures;
  std::printf("== %s\n", name);
  std::fflush(stdout);
  try {
    body();
  } catch (const std::exception& e) {
    ++g_failures;
    std::fprintf(stderr, "unexpected exception in section %s: %s\n", name, e.what());
  } catch (...) {
    ++g_failures;
    std::fprintf(stderr, "unexpected non-std exception in section %s\n", name);
  }
  std::printf("   %s\n", g_failures == before ? "ok" : "FAILED");
}

// ---------------------------------------------------------------------------------------------
// Compile-time properties of the handle types.
// ---------------------------------------------------------------------------------------------

template <typename T>
constexpr bool move_only_v = !std::is_copy_constructible_v<T> && !std::is_copy_assignable_v<T> &&
                             std::is_nothrow_move_constructible_v<T> &&
                             std::is_nothrow_move_assignable_v<T> &&
                             std::is_nothrow_destructible_v<T>;
static_assert(move_only_v<tandem::Options>);
static_assert(move_only_v<tandem::Backbone>);
static_assert(move_only_v<tandem::Trainer>);
static_assert(move_only_v<tandem::Model>);
static_assert(move_only_v<tandem::Ensemble>);
static_assert(move_only_v<tandem::Predictions>);
static_assert(std::is_nothrow_copy_constructible_v<tandem::Error>);
static_assert(std::is_base_of_v<std::runtime_error, tandem::Error>);
static_assert(static_cast<std::uint32_t>(tandem::ErrorCode::Cancelled) == TANDEM_ERR_CANCELLED);
static_assert(static_cast<std::uint32_t>(tandem::ErrorCode::Internal) == TANDEM_ERR_INTERNAL);
static_assert(static_cast<std::uint32_t>(tandem::ErrorCode::Numeric) == TANDEM_ERR_NUMERIC);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

struct Example {
  std::string text;
  std::string label;
};

static std::vector<Example> read_jsonl(const std::string& path, std::size_t limit) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<Example> out;
  std::string line;
  while (out.size() < limit && std::getline(in, line)) {
    if (line.empty()) continue;
    const minijson::Value v = minijson::parse(line);
    out.push_back({v["text"].string(), v["label"].string()});
  }
  return out;
}

// tandem's cache directory, as the library finds it: $TANDEM_HOME, else
// ${XDG_CACHE_HOME:-$HOME/.cache}/tandem.
static std::string tandem_home() {
  if (const char* t = std::getenv("TANDEM_HOME"); t != nullptr && *t != '\0') return t;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0')
    return std::string(x) + "/tandem";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/tandem";
}

static float dot(const std::vector<float>& a, const std::vector<float>& b) {
  float s = 0.0f;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) s += a[i] * b[i];
  return s;
}

static bool all_finite(const std::vector<float>& v) {
  return std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); });
}

static bool close(const std::vector<float>& a, const std::vector<float>& b, float tol) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i] - b[i]) > tol) return false;
  }
  return true;
}

static std::size_t argmax(const std::vector<float>& v) {
  return static_cast<std::size_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

static std::string spec(const char* mode, int seed, int epochs) {
  return std::string(R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":")") +
         mode + R"(","seed":)" + std::to_string(seed) + R"(,"head":{"stage":{"epochs":)" +
         std::to_string(epochs) + "}}}}";
}

// State shared by the sections (loaded once).
struct Fixture {
  fs::path tmp;
  tandem::Backbone backbone;
  std::vector<Example> train;  // 450 TREC examples
  std::vector<Example> test;   // the next 150 (20 in small mode)
  std::vector<std::string> test_texts;
  std::vector<tandem::Labels> test_labels;
  fs::path bundle;             // saved by the train section
  tandem::Model model;         // loaded by the train section
  std::vector<float> p0_row0;  // model's probabilities of test_texts[0] with the first heads
};

// ---------------------------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------------------------

static void test_minijson() {
  using minijson::parse;
  const auto v = parse(
      R"({"text": "a \"q\" \\ back\/slash\n\ttab \u00e9\u20AC \ud83d\ude00 \ud800x \udc00",)"
      R"( "label": "HUM", "n": -1.5e2, "ok": true, "no": null, "list": [1, {"x": []}]})");
  CHECK(v.is_object());
  CHECK(v["text"].string() ==
        "a \"q\" \\ back/slash\n\ttab \xC3\xA9\xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBDx \xEF\xBF\xBD");
  CHECK(v["label"].string() == "HUM");
  CHECK(v["n"].number() == -150.0);
  CHECK(v["ok"].boolean());
  CHECK(v["no"].is_null());
  CHECK(v["list"].size() == 2 && v["list"][1]["x"].is_array());
  CHECK(v.find("missing") == nullptr);
  CHECK(parse(R"("\u0000")").string() == std::string("\0", 1));
  CHECK(parse("  [ ]  ").size() == 0);
  // Raw UTF-8 passes through unchanged.
  CHECK(parse("\"\xC3\xA9t\xC3\xA9\"").string() == "\xC3\xA9t\xC3\xA9");
  // A high surrogate followed by another escape keeps that escape.
  CHECK(parse(R"("\ud800\n")").string() == "\xEF\xBF\xBD\n");
  CHECK_THROWS_AS(parse(R"({"a": 1,})"), minijson::ParseError);
  CHECK_THROWS_AS(parse(R"({"a" 1})"), minijson::ParseError);
  CHECK_THROWS_AS(parse(R"("bad \x escape")"), minijson::ParseError);
  CHECK_THROWS_AS(parse(R"("\u12G4")"), minijson::ParseError);
  CHECK_THROWS_AS(parse("\"raw\nnewline\""), minijson::ParseError);
  CHECK_THROWS_AS(parse(R"("unterminated)"), minijson::ParseError);
  CHECK_THROWS_AS(parse("01"), minijson::ParseError);
  CHECK_THROWS_AS(parse("{} x"), minijson::ParseError);
  CHECK_THROWS_AS(parse("tru"), minijson::ParseError);
  CHECK_THROWS_AS(v["missing"], std::out_of_range);
  CHECK_THROWS_AS(v["label"].number(), std::logic_error);

  // The binding's JSON string escaping, read back by the parser.
  const std::string nasty = "say \"hi\"\\ \n\t\r\b\f \x01 \xC3\xBC \xE2\x82\xAC";
  const std::string json = tandem::labels_json({{"k\"ey", nasty}, {"a", ""}});
  CHECK(json == "{\"a\":\"\",\"k\\\"ey\":\"say \\\"hi\\\"\\\\ \\n\\t\\r\\b\\f \\u0001 \xC3\xBC \xE2\x82\xAC\"}");
  const auto back = parse(json);
  CHECK(back["k\"ey"].string() == nasty);
  CHECK(back["a"].string().empty());
}

static void test_info() {
  CHECK(tandem::version() == TANDEM_VERSION_STRING);
  CHECK(tandem::abi_version() == TANDEM_ABI_VERSION);
  CHECK(tandem::abi_compatible());
  tandem::require_abi();
  CHECK(std::string(tandem::error_code_name(TANDEM_ERR_NOT_FOUND)) == "not_found");
  CHECK(std::string(tandem::error_code_name(9999)) == "unknown");

  const tandem::Error e(tandem::ErrorCode::NotFound, "no bundle at x");
  CHECK(e.code() == TANDEM_ERR_NOT_FOUND);
  CHECK(e.kind() == tandem::ErrorCode::NotFound);
  CHECK(std::string(e.message()) == "no bundle at x");
  CHECK(std::string(e.what()) == "[not_found] no bundle at x");
  CHECK(std::string(e.code_name()) == "not_found");
  const tandem::Error copy = e;
  CHECK(std::string(copy.message()) == "no bundle at x" && copy.code() == e.code());

  const auto doctor = minijson::parse(tandem::doctor_json());
  CHECK(doctor["ok"].boolean());
  CHECK(doctor["checks"].size() > 0);
  tandem::Options opts;
  opts.threads(1);
  CHECK(minijson::parse(tandem::doctor_json(opts))["ok"].boolean());
  // A cache directory that does not exist holds nothing to prune.
  CHECK(tandem::cache_prune("/nonexistent/tandem-embcache", 0) == 0);
  CHECK_THROWS_CODE(tandem::cache_prune(std::string("\xff", 1), 0), tandem::ErrorCode::InvalidUtf8);
}

static void test_options() {
  tandem::Options o;
  CHECK(static_cast<bool>(o));
  o.threads(2).variant("fp32").device("cpu").batching(16, 1);
  CHECK_THROWS_CODE(o.variant("fp64"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.variant("\xff\xfe"), tandem::ErrorCode::InvalidUtf8);
  CHECK_THROWS_CODE(o.device("tpu"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.ort_library(""), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.backbone_dir(""), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.batching(0, 1), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.batching(8, 0), tandem::ErrorCode::InvalidArgument);

  tandem::Options missing;
  missing.backbone_dir("/nonexistent/tandem-backbone");
  CHECK_THROWS_CODE(tandem::Backbone::load(missing), tandem::ErrorCode::NotFound);

  // Backbones by name: looked up in the cache when set, never as a path.
  CHECK_THROWS_CODE(o.backbone_name(""), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.backbone_name("../models"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(o.backbone_name("no-such-backbone"), tandem::ErrorCode::NotFound);
  tandem::Options named;
  named.threads(2).backbone_name("minilm-l6");
  CHECK(tandem::Backbone::load(named).dim() == 384);

  tandem::Options moved = std::move(o);
  CHECK(!o);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(static_cast<bool>(moved));
  CHECK_THROWS_CODE(o.threads(1), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(tandem::Backbone::load(o), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(tandem::doctor_json(o), tandem::ErrorCode::NullArgument);
  o = std::move(moved);  // a moved-from object can be assigned to again
  CHECK(static_cast<bool>(o) && !moved);
  o.threads(1);
}

static void test_embed(const tandem::Backbone& b) {
  CHECK(b.dim() == 384);
  const std::string sha = b.graph_sha256();
  CHECK(sha.size() == 64 && sha.find_first_not_of("0123456789abcdef") == std::string::npos);

  const std::vector<std::string> texts = {"How far is the moon from the earth ?",
                                          "What is the distance between the earth and the moon ?",
                                          "I would like a pizza with extra cheese."};
  const auto rows = b.embed(texts);
  CHECK(rows.size() == 3);
  for (const auto& r : rows) {
    CHECK(r.size() == b.dim());
    CHECK(all_finite(r));
    CHECK_MSG(std::fabs(std::sqrt(dot(r, r)) - 1.0f) < 1e-3f, "norm %f", std::sqrt(dot(r, r)));
  }
  const float near = dot(rows[0], rows[1]);
  const float far = dot(rows[0], rows[2]);
  CHECK_MSG(near > far + 0.2f, "paraphrase cos %f vs unrelated cos %f", near, far);

  // The three input forms and the flat and single variants agree.
  const std::vector<float> flat = b.embed_flat(texts);
  CHECK(flat.size() == 3 * b.dim());
  CHECK(close(std::vector<float>(flat.begin() + static_cast<std::ptrdiff_t>(b.dim()),
                                 flat.begin() + static_cast<std::ptrdiff_t>(2 * b.dim())),
              rows[1], 1e-6f));
  const std::vector<std::string_view> views(texts.begin(), texts.end());
  CHECK(close(b.embed(views)[2], rows[2], 1e-5f));
  CHECK(close(b.embed({texts[0], "x"})[0], rows[0], 1e-5f));
  CHECK(close(b.embed_one(texts[2]), rows[2], 1e-5f));

  // Edge cases: an empty batch, an empty string, an interior NUL (lengths are passed).
  CHECK(b.embed(std::vector<std::string>{}).empty());
  CHECK(b.embed_flat(std::vector<std::string>{}).empty());
  const auto empty = b.embed_one("");
  CHECK(empty.size() == b.dim() && std::fabs(dot(empty, empty) - 1.0f) < 1e-3f);
  const auto with_nul = b.embed_one(std::string("moon\0pizza", 10));
  CHECK(with_nul.size() == b.dim() && all_finite(with_nul));

  CHECK_THROWS_CODE(b.embed({"fine", "bad \xff\xfe utf-8"}), tandem::ErrorCode::InvalidUtf8);
  CHECK_THROWS_CODE(b.embed_one("\xc3"), tandem::ErrorCode::InvalidUtf8);

  // Concurrent embedding from one backbone gives the serial results.
  std::vector<std::vector<std::vector<float>>> results(4);
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (std::size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      try {
        results[i] = b.embed(texts);
      } catch (...) {
        ++errors;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(errors.load() == 0);
  for (const auto& r : results) CHECK(r.size() == 3 && close(r[2], rows[2], 1e-5f));
}

static void test_metadata() {
  const auto names = tandem::metadata_feature_names();
  CHECK(names.size() == tandem::metadata_feature_count());
  CHECK(names.size() > 10);
  CHECK(std::set<std::string>(names.begin(), names.end()).size() == names.size());
  const auto idx = [&](const char* n) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  CHECK(idx("char_count") < names.size());
  CHECK(idx("word_count") < names.size());
  CHECK(idx("flesch_reading_ease") < names.size());

  const auto f = tandem::extract_metadata({"h\xC3\xA9llo w\xC3\xB6rld", "One. Two! Three?", ""});
  CHECK(f.size() == 3);
  for (const auto& row : f) CHECK(row.size() == names.size() && all_finite(row));
  CHECK_MSG(f[0][idx("char_count")] == 11.0f, "char_count %f", f[0][idx("char_count")]);
  CHECK(f[0][idx("word_count")] == 2.0f);
  CHECK(f[1][idx("word_count")] == 3.0f);
  CHECK(f[2][idx("char_count")] == 0.0f);
  CHECK(tandem::extract_metadata(std::vector<std::string>{}).empty());
  CHECK_THROWS_CODE(tandem::extract_metadata({"ok", "\x80"}), tandem::ErrorCode::InvalidUtf8);
}

static void test_trainer_errors(Fixture& fx) {
  const tandem::Backbone& b = fx.backbone;
  // Bad specs.
  CHECK_THROWS_CODE(tandem::Trainer(b, "{"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::Trainer(b, R"({"tasks":[]})"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::Trainer(b, R"({"tasks":[{"name":"y","kind":"ordinal"}]})"),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(
      tandem::Trainer(b, R"({"tasks":[{"name":"y","kind":"multiclass"}],"config":{"mode":"magic"}})"),
      tandem::ErrorCode::InvalidArgument);
  try {
    tandem::Trainer t(b, R"({"tasks":[{"name":"y","kind":"multiclass"}],"config":{"bogus_key":1}})");
    CHECK_MSG(false, "unknown config key accepted");
  } catch (const tandem::Error& e) {
    CHECK(e.kind() == tandem::ErrorCode::InvalidArgument);
    CHECK_MSG(std::string(e.message()).find("bogus_key") != std::string::npos, "message: %s",
              e.message());
  }
  CHECK_THROWS_CODE(tandem::Trainer(b, "{\"tasks\":[{\"name\":\"\xff\"}]}"),
                    tandem::ErrorCode::InvalidUtf8);

  // Bad examples are rejected whole.
  tandem::Trainer t(b, spec("embedding_only", 0, 2));
  CHECK_THROWS_CODE(t.add_example("x", R"({"nope":"HUM"})"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("x", tandem::Labels{{"label", "HUM"}, {"nope", "x"}}),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("x", "{}"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("x", R"({"label":)"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("x", R"({"label":["a","b"]})"),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("x", R"(["HUM"])"), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.add_example("bad \xff", tandem::Labels{{"label", "HUM"}}),
                    tandem::ErrorCode::InvalidUtf8);
  CHECK_THROWS_CODE(t.add_validation_example("x", R"({"nope":"HUM"})"),
                    tandem::ErrorCode::InvalidArgument);
  CHECK(t.example_count() == 0);

  // Nothing trained yet.
  CHECK_THROWS_CODE(t.train(), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.report_json(), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.save((fx.tmp / "never").string()), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.evaluate({"x"}, {R"({"label":"HUM"})"}), tandem::ErrorCode::InvalidArgument);
  CHECK(!fs::exists(fx.tmp / "never"));

  // Bundles that are not there or not bundles.
  CHECK_THROWS_CODE(tandem::Model::load(b, (fx.tmp / "does-not-exist").string()),
                    tandem::ErrorCode::NotFound);
  fs::create_directories(fx.tmp / "empty-dir");
  CHECK_THROWS_CODE(tandem::Model::load(b, (fx.tmp / "empty-dir").string()),
                    tandem::ErrorCode::NotFound);
  fs::create_directories(fx.tmp / "garbage");
  std::ofstream(fx.tmp / "garbage" / "manifest.json") << "{ not json";
  CHECK_THROWS_CODE(tandem::Model::load(b, (fx.tmp / "garbage").string()),
                    tandem::ErrorCode::Format);
  CHECK_THROWS_CODE(tandem::Model::load(b, ""), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::Model::load(b, "\xff"), tandem::ErrorCode::InvalidUtf8);
}

static void test_train_save_load_predict(Fixture& fx) {
  tandem::Trainer t(fx.backbone, spec("embedding_only", 0, 8));
  for (std::size_t i = 0; i < fx.train.size(); ++i) {
    const Example& ex = fx.train[i];
    if (i % 2 == 0) {
      t.add_example(ex.text, tandem::Labels{{"label", ex.label}});  // map overload
    } else {
      t.add_example(ex.text, tandem::labels_json({{"label", ex.label}}));  // JSON overload
    }
  }
  CHECK(t.example_count() == fx.train.size());

  std::vector<tandem::Progress> seen;
  t.train([&](const tandem::Progress& p) {
    seen.push_back(p);
    return true;
  });
  CHECK(!seen.empty());
  std::uint32_t last_heads_epoch = 0;
  bool any_heads = false;
  for (const auto& p : seen) {
    CHECK_MSG(p.epoch < p.epochs, "%s %u/%u", p.stage.c_str(), p.epoch, p.epochs);
    if (p.stage == "embed") {
      CHECK(std::isnan(p.train_loss) && std::isnan(p.valid_loss));
      CHECK(!any_heads);  // embedding comes first
    } else {
      CHECK_MSG(p.stage == "heads", "stage %s", p.stage.c_str());
      CHECK(p.epochs == 8);
      CHECK(std::isfinite(p.train_loss) && std::isfinite(p.valid_loss));
      CHECK(!any_heads || p.epoch == last_heads_epoch + 1);
      any_heads = true;
      last_heads_epoch = p.epoch;
    }
  }
  CHECK(any_heads);

  const auto report = minijson::parse(t.report_json());
  CHECK(report["mode"].string() == "embedding_only");
  CHECK(report["n_train"].number() + report["n_valid"].number() ==
        static_cast<double>(fx.train.size()));
  const double valid_acc = report["valid_metrics"]["accuracy"].number();
  CHECK(valid_acc >= 0.0 && valid_acc <= 1.0);

  // Evaluate on the held-out TREC questions (6 classes; the largest is ~23%).
  const std::string eval_json = t.evaluate(fx.test_texts, fx.test_labels);
  const auto metrics = minijson::parse(eval_json);
  const double macro_f1 = metrics["macro_f1"].number();
  const double accuracy = metrics["accuracy"].number();
  std::printf("   held-out accuracy %.3f, macro F1 %.3f (validation accuracy %.3f)\n", accuracy,
              macro_f1, valid_acc);
  CHECK(macro_f1 > 0.3 && macro_f1 <= 1.0);
  CHECK(accuracy > 0.55 && accuracy <= 1.0);
  CHECK(metrics["n"].number() == static_cast<double>(fx.test.size()));
  CHECK(metrics["tasks"]["label"]["macro_f1"].number() == macro_f1);
  // The JSON-string form gives the same metrics.
  std::vector<std::string> label_json;
  for (const auto& l : fx.test_labels) label_json.push_back(tandem::labels_json(l));
  CHECK(minijson::parse(t.evaluate(fx.test_texts, label_json))["macro_f1"].number() == macro_f1);
  // A class the heads never saw, mismatched sizes, nothing to evaluate.
  CHECK_THROWS_CODE(t.evaluate({"Who is it ?"}, {R"({"label":"NOT_A_CLASS"})"}),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.evaluate({"a", "b"}, {R"({"label":"HUM"})"}),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(t.evaluate(std::vector<std::string>{}, std::vector<std::string>{}),
                    tandem::ErrorCode::InvalidArgument);

  // Save, load, predict.
  fx.bundle = fx.tmp / "trec-bundle";
  t.save(fx.bundle.string());
  CHECK(fs::exists(fx.bundle / "manifest.json"));
  fx.model = tandem::Model::load(fx.backbone, fx.bundle.string());
  CHECK(static_cast<bool>(fx.model));
  CHECK(fx.model.heads_version() == 0);
  const auto manifest = minijson::parse(fx.model.manifest_json());
  CHECK(manifest["tasks"][0]["name"].string() == "label");
  CHECK(manifest["tasks"][0]["labels"].size() == 6);

  const tandem::Predictions p = fx.model.predict(fx.test_texts);
  CHECK(p.size() == fx.test.size());
  {
    // Opened on the backbone the bundle records (found in the cache by name): the same model.
    const tandem::Model opened = tandem::Model::open(fx.bundle.string(), tandem::Options().threads(2));
    const tandem::Predictions q = opened.predict(fx.test_texts);
    for (std::size_t r = 0; r < p.size(); ++r) {
      const auto a = p.probabilities(r, 0), b = q.probabilities(r, 0);
      for (std::size_t k = 0; k < a.size(); ++k) CHECK(std::fabs(a[k] - b[k]) <= 1e-6f);
    }
    CHECK_THROWS_CODE(tandem::Model::open((fx.tmp / "does-not-exist").string()),
                      tandem::ErrorCode::NotFound);
  }
  CHECK(p.task_count() == 1);
  CHECK(p.heads_version() == 0);
  CHECK(p.task_name(0) == "label");
  CHECK(p.task_index("label") == std::optional<std::size_t>(0));
  CHECK(!p.task_index("nope").has_value());
  CHECK(p.task_kind(0) == tandem::TaskKind::Multiclass);
  CHECK(p.class_count(0) == 6);
  const auto classes = p.class_names(0);
  CHECK((std::set<std::string>(classes.begin(), classes.end()) ==
         std::set<std::string>{"ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"}));
  std::size_t correct = 0;
  for (std::size_t r = 0; r < p.size(); ++r) {
    const auto probs = p.probabilities(r, 0);
    CHECK(probs.size() == 6 && all_finite(probs));
    float sum = 0.0f;
    for (float x : probs) {
      sum += x;
      CHECK(x >= 0.0f && x <= 1.0f);
    }
    CHECK_MSG(std::fabs(sum - 1.0f) < 1e-4f, "row %zu sums to %f", r, sum);
    CHECK(p.label(r) == classes[argmax(probs)]);
    CHECK(p.labels(r, 0) == std::vector<std::string>{p.label(r)});
    CHECK(!p.group(r).has_value());
    if (p.label(r) == fx.test[r].label) ++correct;
  }
  const double model_acc = static_cast<double>(correct) / static_cast<double>(p.size());
  CHECK_MSG(std::fabs(model_acc - accuracy) <= 0.02,
            "reloaded model accuracy %.3f vs trainer evaluate %.3f", model_acc, accuracy);
  fx.p0_row0 = p.probabilities(0, 0);

  // The struct view agrees with the accessors; the JSONL view has one line per row.
  const auto rows = p.rows();
  CHECK(rows.size() == p.size());
  CHECK(!rows[3].group.has_value() && rows[3].tasks.size() == 1);
  CHECK(rows[3].tasks[0].task == "label" && rows[3].tasks[0].kind == tandem::TaskKind::Multiclass);
  CHECK(rows[3].tasks[0].labels == p.labels(3, 0));
  CHECK(rows[3].tasks[0].probabilities == p.probabilities(3, 0));
  CHECK(!rows[3].tasks[0].value.has_value());
  const std::string jsonl = p.json();
  CHECK(static_cast<std::size_t>(std::count(jsonl.begin(), jsonl.end(), '\n')) + 1 == p.size());
  const auto first = minijson::parse(jsonl.substr(0, jsonl.find('\n')));
  CHECK(first["index"].number() == 0.0);
  CHECK(first["predictions"][0]["labels"][0].string() == p.label(0));

  // Out of range and wrong-kind accessors.
  CHECK_THROWS_AS(p.task_name(1), std::out_of_range);
  CHECK_THROWS_AS(p.task_kind(1), std::out_of_range);
  CHECK_THROWS_AS(p.class_name(0, 6), std::out_of_range);
  CHECK_THROWS_AS(p.label(p.size()), std::out_of_range);
  CHECK_THROWS_AS(p.group(p.size()), std::out_of_range);
  CHECK_THROWS_CODE(p.probabilities(p.size(), 0), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(p.value(0, 0), tandem::ErrorCode::InvalidArgument);

  // A few new questions.
  const auto q = fx.model.predict(
      {"Who wrote Hamlet ?", "How many miles is it from London to Paris ?",
       "Where is Mount Everest ?"});
  CHECK_MSG(q.label(0) == "HUM", "got %s", q.label(0).c_str());
  CHECK_MSG(q.label(1) == "NUM", "got %s", q.label(1).c_str());
  CHECK_MSG(q.label(2) == "LOC", "got %s", q.label(2).c_str());

  CHECK(fx.model.predict(std::vector<std::string>{}).size() == 0);
  CHECK_THROWS_CODE(fx.model.predict({"ok", "\xed\xa0\x80"}), tandem::ErrorCode::InvalidUtf8);
}

static void test_predict_sampled(Fixture& fx) {
  const std::vector<std::string> texts(fx.test_texts.begin(), fx.test_texts.begin() + 4);
  const auto a = fx.model.predict_sampled(texts, 8, 3);
  const auto b = fx.model.predict_sampled(texts, 8, 3);
  bool spread = false;
  for (std::size_t i = 0; i < texts.size(); i++) {
    const auto p = a.probabilities(i);
    const auto sd = a.spread(i);
    CHECK(p == b.probabilities(i));
    CHECK(sd.size() == p.size());
    float sum = 0;
    for (std::size_t k = 0; k < p.size(); k++) {
      sum += p[k];
      CHECK(sd[k] >= 0.0f);
      spread = spread || sd[k] > 0.0f;
    }
    CHECK(std::fabs(sum - 1.0f) < 1e-4f);
  }
  CHECK(spread);
  CHECK_THROWS_CODE(fx.model.predict(texts).spread(0), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(fx.model.predict_sampled(texts, 0), tandem::ErrorCode::InvalidArgument);
}

static void test_predict_groups(Fixture& fx) {
  const tandem::Model& m = fx.model;
  const std::vector<std::string> texts(fx.test_texts.begin(), fx.test_texts.begin() + 6);
  const std::vector<std::string> groups = {"b", "a", "b", "c", "a", "b"};
  const auto single = m.predict(texts);
  const std::size_t k = single.class_count(0);
  const std::vector<std::vector<std::size_t>> members = {{1, 4}, {0, 2, 5}, {3}};  // a, b, c

  const auto mean = m.predict_groups(texts, groups, tandem::Aggregation::Mean);
  CHECK(mean.size() == 3);
  CHECK(mean.group(0) == std::optional<std::string>("a"));
  CHECK(mean.group(1) == std::optional<std::string>("b"));
  CHECK(mean.group(2) == std::optional<std::string>("c"));
  CHECK(mean.heads_version() == m.heads_version());
  for (std::size_t g = 0; g < 3; ++g) {
    std::vector<float> expect(k, 0.0f);
    for (std::size_t i : members[g]) {
      const auto pr = single.probabilities(i, 0);
      for (std::size_t c = 0; c < k; ++c) expect[c] += pr[c] / static_cast<float>(members[g].size());
    }
    CHECK_MSG(close(mean.probabilities(g, 0), expect, 1e-5f), "group %zu mean", g);
    CHECK(mean.label(g) == mean.class_name(0, argmax(expect)));
  }
  CHECK(close(mean.probabilities(2, 0), single.probabilities(3, 0), 1e-6f));

  const auto majority = m.predict_groups(texts, groups, tandem::Aggregation::Majority);
  // Total vote counts the same votes (it decides sigmoid outputs differently).
  const auto total = m.predict_groups(texts, groups, tandem::Aggregation::TotalVote);
  for (std::size_t g = 0; g < 3; ++g) {
    std::vector<float> votes(k, 0.0f);
    for (std::size_t i : members[g]) {
      votes[argmax(single.probabilities(i, 0))] += 1.0f / static_cast<float>(members[g].size());
    }
    CHECK_MSG(close(majority.probabilities(g, 0), votes, 1e-6f), "group %zu votes", g);
    CHECK_MSG(close(total.probabilities(g, 0), votes, 1e-6f), "group %zu total vote", g);
    CHECK(total.label(g) == majority.label(g));
  }

  const auto median = m.predict_groups(texts, groups, tandem::Aggregation::Median);
  {
    std::vector<float> expect(k);
    for (std::size_t c = 0; c < k; ++c) {
      std::vector<float> v;
      for (std::size_t i : members[1]) v.push_back(single.probabilities(i, 0)[c]);
      std::sort(v.begin(), v.end());
      expect[c] = v[1];
    }
    CHECK(close(median.probabilities(1, 0), expect, 1e-6f));  // group "b": 3 members
  }

  const auto rows = mean.rows();
  CHECK(rows.size() == 3 && rows[1].group == std::optional<std::string>("b"));
  CHECK(mean.json().find("\"group\":\"a\"") != std::string::npos);

  CHECK_THROWS_CODE(m.predict_groups(texts, {"a"}), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(m.predict_groups(texts, groups, static_cast<tandem::Aggregation>(7)),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(m.predict_groups({"x"}, {"\xff"}), tandem::ErrorCode::InvalidUtf8);
}

static void add_examples(tandem::Trainer& t, const std::vector<Example>& data, std::size_t n) {
  for (std::size_t i = 0; i < n && i < data.size(); ++i) {
    t.add_example(data[i].text, tandem::Labels{{"label", data[i].label}});
  }
}

// An ensemble of the trained model and a second bundle: probabilities are the members' mean
// (from Model::predict), labels its top class; built from models or opened from directories;
// an ensemble of one is its model; groups combine the averaged outputs; the members may be
// destroyed first; errors throw tandem::Error.
static void test_ensemble(Fixture& fx) {
  const std::vector<std::string> texts(fx.test_texts.begin(), fx.test_texts.begin() + 6);
  const fs::path second = fx.tmp / "ensemble-second";
  {
    tandem::Trainer t(fx.backbone, spec("embedding_only", 11, 3));
    add_examples(t, fx.train, 200);
    t.train();
    t.save(second.string());
  }
  tandem::Ensemble e;
  tandem::Predictions pb;
  {
    // The second model only lives in this block; the ensemble keeps what it needs.
    const tandem::Model m2 = tandem::Model::load(fx.backbone, second.string());
    pb = m2.predict(texts);
    e = tandem::Ensemble::of({fx.model, m2});
  }
  CHECK(e && e.member_count() == 2);
  const tandem::Predictions pa = fx.model.predict(texts);
  const tandem::Predictions p = e.predict(texts);
  CHECK(p.size() == texts.size() && p.task_count() == 1 && p.task_name(0) == "label");
  CHECK(p.heads_version() == 0);
  const std::size_t k = p.class_count(0);
  std::vector<std::vector<float>> mean;
  for (std::size_t r = 0; r < p.size(); ++r) {
    const auto a = pa.probabilities(r, 0), b = pb.probabilities(r, 0);
    std::vector<float> m(k);
    for (std::size_t c = 0; c < k; ++c) m[c] = (a[c] + b[c]) / 2.0f;
    CHECK_MSG(close(p.probabilities(r, 0), m, 1e-6f), "row %zu is not the members' mean", r);
    CHECK(p.label(r) == p.class_name(0, argmax(m)));
    mean.push_back(m);
  }

  // Opened from the directories (with options), it predicts the same.
  const tandem::Ensemble opened =
      tandem::Ensemble::open({fx.bundle.string(), second.string()}, tandem::Options().threads(2));
  CHECK(opened.member_count() == 2);
  const tandem::Predictions po = opened.predict(texts);
  for (std::size_t r = 0; r < po.size(); ++r) CHECK(close(po.probabilities(r, 0), mean[r], 1e-5f));

  // An ensemble of one is its model.
  const tandem::Ensemble one = tandem::Ensemble::of({fx.model});
  CHECK(one.member_count() == 1);
  const tandem::Predictions p1 = one.predict(texts);
  for (std::size_t r = 0; r < p1.size(); ++r) {
    CHECK(close(p1.probabilities(r, 0), pa.probabilities(r, 0), 1e-6f));
    CHECK(p1.label(r) == pa.label(r));
  }

  // Groups average the ensemble's rows: a = rows 1 and 4, b = 0, 2 and 5, c = 3.
  const tandem::Predictions g = e.predict_groups(texts, {"b", "a", "b", "c", "a", "b"});
  CHECK(g.size() == 3 && g.group(0) == std::optional<std::string>("a"));
  std::vector<float> a_mean(k);
  for (std::size_t c = 0; c < k; ++c) a_mean[c] = (mean[1][c] + mean[4][c]) / 2.0f;
  CHECK(close(g.probabilities(0, 0), a_mean, 1e-5f));
  CHECK(close(g.probabilities(2, 0), mean[3], 1e-6f));

  // Errors.
  tandem::Trainer other(fx.backbone, R"({"tasks":[{"name":"topic","kind":"multiclass"}],
      "config":{"mode":"metadata_only","seed":0}})");
  for (int i = 0; i < 20; ++i) {
    other.add_example(i % 2 ? "Where is it ?" : "It is here.",
                      tandem::Labels{{"topic", i % 2 ? "q" : "s"}});
  }
  other.train();
  const fs::path other_dir = fx.tmp / "ensemble-other";
  other.save(other_dir.string());
  const tandem::Model other_model = tandem::Model::load(fx.backbone, other_dir.string());
  try {
    (void)tandem::Ensemble::of({fx.model, other_model});
    CHECK_MSG(false, "an ensemble of models with other tasks was built");
  } catch (const tandem::Error& err) {
    CHECK(err.kind() == tandem::ErrorCode::InvalidArgument);
    CHECK_MSG(std::string(err.message()).find("member 2") != std::string::npos &&
                  std::string(err.message()).find("topic") != std::string::npos,
              "%s", err.what());
  }
  CHECK_THROWS_CODE(tandem::Ensemble::of({}), tandem::ErrorCode::InvalidArgument);
  const tandem::Model empty;
  CHECK_THROWS_CODE(tandem::Ensemble::of({fx.model, empty}), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(tandem::Ensemble::open(std::vector<std::string>{}),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::Ensemble::open({fx.bundle.string(), (fx.tmp / "nope").string()}),
                    tandem::ErrorCode::NotFound);
  CHECK_THROWS_CODE(tandem::Ensemble::open({fx.bundle.string(), other_dir.string()}),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::Ensemble::open({"\xff"}), tandem::ErrorCode::InvalidUtf8);
  CHECK_THROWS_CODE(e.predict({"ok", "\xff"}), tandem::ErrorCode::InvalidUtf8);
  CHECK_THROWS_CODE(e.predict_groups(texts, {"a"}), tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(e.predict_groups(texts, {"a", "a", "a", "a", "a", "a"},
                                     static_cast<tandem::Aggregation>(9)),
                    tandem::ErrorCode::InvalidArgument);

  // Moved from: empty, and using it throws.
  tandem::Ensemble moved = std::move(e);
  CHECK(!e && e.member_count() == 0 && moved.member_count() == 2);
  CHECK_THROWS_CODE(e.predict({"x"}), tandem::ErrorCode::NullArgument);
  CHECK(close(moved.predict(texts).probabilities(0, 0), mean[0], 1e-6f));
}

// The saved bundle served through ONNX Runtime gives the native heads' probabilities, and the
// model exports as one ONNX graph.
static void test_onnx(Fixture& fx) {
  tandem::Options o;
  o.threads(1);
  CHECK_THROWS_CODE(o.heads("tflite"), tandem::ErrorCode::InvalidArgument);
  o.heads("onnx");
  tandem::Backbone b = tandem::Backbone::load(o);
  tandem::Model m = tandem::Model::load(b, fx.bundle.string());
  const auto p = m.predict({fx.test_texts[0]});
  CHECK(close(p.probabilities(0, 0), fx.p0_row0, 1e-5f));
  const fs::path out = fx.tmp / "export" / "model.onnx";
  fs::create_directories(out.parent_path());
  CHECK_THROWS_CODE(fx.model.export_onnx(out.string(), "fp64"), tandem::ErrorCode::InvalidArgument);
  fx.model.export_onnx(out.string());
  CHECK(fs::file_size(out) > 1000000);
  CHECK(fs::exists(out.parent_path() / "tokenizer.json"));
  CHECK(fs::exists(out.parent_path() / "model.tandem.json"));
}

// Fine-tuning the backbone's top layer through the spec: the bundle carries the fine-tuned
// backbone, a model loaded from it predicts, and its heads refuse a model on the stock backbone.
static void test_finetune(Fixture& fx) {
  const std::string s =
      R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":"embedding_only",)"
      R"("seed":2,"head":{"hidden":[16],"stage":{"epochs":3}},)"
      R"("backbone":{"trainable_layers":1,"lr":0.001}}})";
  tandem::Trainer t(fx.backbone, s);
  add_examples(t, fx.train, 120);
  t.train();
  CHECK_THROWS_CODE(fx.model.swap_heads(t), tandem::ErrorCode::BackboneMismatch);
  const fs::path dir = fx.tmp / "finetuned";
  t.save(dir.string());
  CHECK(fs::file_size(dir / "backbone" / "model.onnx") > 1000);
  tandem::Model m = tandem::Model::load(fx.backbone, dir.string());
  CHECK(m.manifest_json().find("fine-tuned") != std::string::npos);
  const tandem::Predictions p = m.predict(fx.test_texts);
  CHECK(p.size() == fx.test_texts.size());
  float sum = 0;
  for (float v : p.probabilities(0, 0)) sum += v;
  CHECK(std::fabs(sum - 1.0f) < 1e-4f);
  CHECK_THROWS_CODE(
      tandem::Trainer(fx.backbone,
                      R"({"tasks":[{"name":"y","kind":"binary"}],"config":{"backbone":{"trainable_layers":99}}})"),
      tandem::ErrorCode::InvalidArgument);
}

static void test_swap(Fixture& fx) {
  tandem::Model& m = fx.model;
  const std::uint64_t v0 = m.heads_version();
  CHECK(v0 == 0);
  const tandem::Predictions before = m.predict(fx.test_texts);

  tandem::Trainer untrained(fx.backbone, spec("embedding_only", 0, 2));
  CHECK_THROWS_CODE(m.swap_heads(untrained), tandem::ErrorCode::InvalidArgument);
  CHECK(m.heads_version() == v0);

  tandem::Trainer t2(fx.backbone, spec("embedding_only", 7, 3));
  add_examples(t2, fx.train, 200);
  t2.train();
  const std::uint64_t v1 = m.swap_heads(t2);
  CHECK(v1 == v0 + 1);
  CHECK(m.heads_version() == v1);
  const tandem::Predictions after = m.predict(fx.test_texts);
  CHECK(after.heads_version() == v1);
  // Predictions made before the swap are unchanged and still say which heads made them.
  CHECK(before.heads_version() == v0);
  CHECK(close(before.probabilities(0, 0), fx.p0_row0, 1e-6f));
  bool differs = false;
  for (std::size_t r = 0; r < after.size() && !differs; ++r) {
    differs = !close(after.probabilities(r, 0), before.probabilities(r, 0), 1e-4f);
  }
  CHECK_MSG(differs, "the swapped-in heads predict exactly as the old ones");
  // The trainer stays usable after handing over its heads.
  CHECK(t2.example_count() == 200);
  CHECK(!t2.report_json().empty());

  // Swapping the original bundle back in restores the original predictions.
  const std::uint64_t v2 = m.swap_bundle(fx.bundle.string());
  CHECK(v2 == v1 + 1 && m.heads_version() == v2);
  const tandem::Predictions restored = m.predict(fx.test_texts);
  CHECK(restored.heads_version() == v2);
  bool same = true;
  for (std::size_t r = 0; r < restored.size(); ++r) {
    same = same && close(restored.probabilities(r, 0), before.probabilities(r, 0), 1e-5f);
  }
  CHECK(same);
  CHECK_THROWS_CODE(m.swap_bundle((fx.tmp / "does-not-exist").string()), tandem::ErrorCode::NotFound);
  CHECK(m.heads_version() == v2);

  // Predict from several threads while swapping: every result is internally consistent. Each
  // reader does a fixed amount of work and the main thread swaps until they are done (bounded
  // even where threads are scheduled unfairly, as under valgrind).
  std::atomic<int> done{0};
  std::atomic<int> errors{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int i = 0; i < 3; ++i) {
    readers.emplace_back([&] {
      for (int k = 0; k < 5; ++k) {
        try {
          const auto p = m.predict({"Who wrote Hamlet ?", "Where is Rome ?"});
          const auto pr = p.probabilities(1, 0);
          float s = 0.0f;
          for (float x : pr) s += x;
          if (p.size() != 2 || std::fabs(s - 1.0f) > 1e-4f || p.heads_version() < v2) ++bad;
        } catch (...) {
          ++errors;
        }
      }
      ++done;
    });
  }
  std::uint64_t v = v2;
  int swaps = 0;
  while (done.load() < 3 || swaps < 2) {
    v = (swaps % 2 == 0) ? m.swap_heads(t2) : m.swap_bundle(fx.bundle.string());
    ++swaps;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (auto& r : readers) r.join();
  CHECK(errors.load() == 0 && bad.load() == 0);
  CHECK(v == v2 + static_cast<std::uint64_t>(swaps) && m.heads_version() == v);
}

static void test_cancel(Fixture& fx) {
  // Cancel the very first callback of a fresh trainer: that is the embedding pass.
  tandem::Trainer t(fx.backbone, spec("embedding_only", 0, 4));
  add_examples(t, fx.train, 300);
  std::string cancelled_at;
  CHECK_THROWS_CODE(t.train([&](const tandem::Progress& p) {
    cancelled_at = p.stage;
    return false;
  }),
                    tandem::ErrorCode::Cancelled);
  CHECK(cancelled_at == "embed");
  CHECK(t.example_count() == 300);
  CHECK_THROWS_CODE(t.report_json(), tandem::ErrorCode::InvalidArgument);  // never trained

  // The trainer is still usable: train it fully.
  int calls = 0;
  t.train([&](const tandem::Progress&) {
    ++calls;
    return true;
  });
  CHECK(calls > 0);
  const std::string report = t.report_json();

  // Cancel in the middle of the epochs: the previous heads and report are kept.
  int heads_calls = 0;
  CHECK_THROWS_CODE(t.train([&](const tandem::Progress& p) {
    if (p.stage != "embed") ++heads_calls;
    return heads_calls < 2;
  }),
                    tandem::ErrorCode::Cancelled);
  CHECK(heads_calls == 2);
  CHECK(t.report_json() == report);
  CHECK(t.example_count() == 300);
  t.save((fx.tmp / "after-cancel").string());  // the kept heads are still saveable
  CHECK(fs::exists(fx.tmp / "after-cancel" / "manifest.json"));

  // Cancelling at the very last report (the final epoch) still cancels: nothing is replaced.
  int total = 0;
  t.train([&](const tandem::Progress&) { return ++total > 0; });
  const std::string report2 = t.report_json();
  int seen = 0;
  CHECK_THROWS_CODE(t.train([&](const tandem::Progress&) { return ++seen < total; }),
                    tandem::ErrorCode::Cancelled);
  CHECK(seen == total);
  CHECK(t.report_json() == report2);

  // An empty std::function means no callback; training is seeded, so the run is reproduced.
  t.train(tandem::ProgressFn{});
  const auto r1 = minijson::parse(report);
  const auto r2 = minijson::parse(t.report_json());
  CHECK(r2["valid_metrics"]["accuracy"].number() == r1["valid_metrics"]["accuracy"].number());
  CHECK(r2["stages"][0]["best_valid_loss"].number() == r1["stages"][0]["best_valid_loss"].number());
}

struct CallbackFailure : std::runtime_error {
  explicit CallbackFailure(int at) : std::runtime_error("callback failed"), at(at) {}
  int at;
};

static void test_callback_exception(Fixture& fx) {
  tandem::Trainer t(fx.backbone, spec("embedding_only", 0, 4));
  add_examples(t, fx.train, 250);

  int calls = 0;
  bool caught = false;
  try {
    t.train([&](const tandem::Progress&) -> bool {
      if (++calls == 2) throw CallbackFailure(calls);
      return true;
    });
  } catch (const CallbackFailure& e) {
    caught = e.at == 2;
  } catch (const tandem::Error& e) {
    CHECK_MSG(false, "got tandem::Error instead of the callback's exception: %s", e.what());
  }
  CHECK(caught);
  CHECK(calls == 2);  // training stopped at the throw
  CHECK_THROWS_CODE(t.report_json(), tandem::ErrorCode::InvalidArgument);

  // A non-std exception type propagates too.
  bool caught_int = false;
  try {
    t.train([](const tandem::Progress&) -> bool { throw 42; });
  } catch (int v) {
    caught_int = v == 42;
  }
  CHECK(caught_int);

  // Still usable afterwards.
  t.train();
  CHECK(minijson::parse(t.report_json())["mode"].string() == "embedding_only");
}

// A four-task model (multiclass with awkward label names, binary, multi-label, regression) on
// metadata features: exercises every task kind's accessors and label escaping end to end.
static void test_task_kinds(Fixture& fx) {
  const std::string weird_a = "say \"hi\"";
  const std::string weird_b = "back\\slash\nnew\tline \xC3\xBC\xE2\x82\xAC";
  tandem::Trainer t(fx.backbone, R"({"tasks":[
      {"name":"topic","kind":"multiclass"},
      {"name":"flag","kind":"binary","positive":"yes"},
      {"name":"tags","kind":"multilabel"},
      {"name":"score","kind":"regression"}],
    "config":{"mode":"metadata_only","seed":0},"embedding_cache":false})");
  for (int i = 0; i < 60; ++i) {
    const bool question = i % 2 == 0;
    const std::string text = question ? "Where is number " + std::to_string(i) + " ? Who knows ?"
                                      : "I found number " + std::to_string(i) + ". It is here!";
    std::string labels = tandem::labels_json(
        {{"topic", question ? weird_a : weird_b}, {"flag", question ? "yes" : "no"}});
    labels.pop_back();  // add the non-string labels to the JSON object
    labels += std::string(",\"tags\":") + (question ? R"(["q","short"])" : R"(["x"])") +
              ",\"score\":" + (question ? "1.5" : "-0.5") + "}";
    t.add_example(text, labels);
  }
  t.train();
  t.save((fx.tmp / "kinds").string());
  const tandem::Model m = tandem::Model::load(fx.backbone, (fx.tmp / "kinds").string());
  // New texts shaped like the training ones (metadata features see shape, not meaning).
  const auto p = m.predict({"Where is number 1001 ? Who knows ?", "I found number 1002. It is here!"});
  CHECK(p.task_count() == 4);
  const std::size_t topic = p.task_index("topic").value_or(99);
  const std::size_t flag = p.task_index("flag").value_or(99);
  const std::size_t tags = p.task_index("tags").value_or(99);
  const std::size_t score = p.task_index("score").value_or(99);
  CHECK(topic < 4 && flag < 4 && tags < 4 && score < 4);
  if (topic >= 4 || flag >= 4 || tags >= 4 || score >= 4) return;

  CHECK(p.task_kind(topic) == tandem::TaskKind::Multiclass);
  const auto names = p.class_names(topic);
  CHECK((std::set<std::string>(names.begin(), names.end()) ==
         std::set<std::string>{weird_a, weird_b}));
  CHECK_MSG(p.label(0, topic) == weird_a, "got %s", p.label(0, topic).c_str());
  CHECK(p.label(1, topic) == weird_b);

  CHECK(p.task_kind(flag) == tandem::TaskKind::Binary);
  CHECK(p.class_count(flag) == 2 && p.class_name(flag, 1) == "yes");  // positive second
  const auto pf = p.probabilities(0, flag);
  CHECK(pf.size() == 2 && std::fabs(pf[0] + pf[1] - 1.0f) < 1e-5f && pf[1] > 0.5f);
  CHECK(p.label(0, flag) == "yes" && p.label(1, flag) == "no");

  CHECK(p.task_kind(tags) == tandem::TaskKind::Multilabel);
  const auto tags0 = p.labels(0, tags);
  const auto tags1 = p.labels(1, tags);
  CHECK_MSG((std::set<std::string>(tags0.begin(), tags0.end()) == std::set<std::string>{"q", "short"}),
            "row 0 tags: %zu", tags0.size());
  CHECK(tags1 == std::vector<std::string>{"x"});
  CHECK(p.probabilities(0, tags).size() == 3);

  CHECK(p.task_kind(score) == tandem::TaskKind::Regression);
  CHECK(p.class_count(score) == 0);
  CHECK(p.labels(0, score).empty());
  CHECK_THROWS_AS(p.label(0, score), std::out_of_range);
  CHECK_THROWS_CODE(p.probabilities(0, score), tandem::ErrorCode::InvalidArgument);
  const float s0 = p.value(0, score);
  const float s1 = p.value(1, score);
  // The two shapes of text get values apart, in the order and range of their targets (1.5 and
  // -0.5) after default training on 60 texts.
  CHECK_MSG(s0 - s1 > 0.5f && s0 < 2.25f && s1 > -1.25f, "values %f %f", s0, s1);
  const auto row = p.row(0);
  CHECK(row.tasks[score].value.has_value() && *row.tasks[score].value == s0);
  CHECK(row.tasks[score].probabilities.empty());
  CHECK(row.tasks[topic].labels == std::vector<std::string>{weird_a});
}

static void test_move_semantics(Fixture& fx) {
  // Default-constructed handles are empty.
  CHECK(!tandem::Backbone() && !tandem::Trainer() && !tandem::Model() && !tandem::Predictions());

  // Backbone: moved-from is empty and reports NULL_ARGUMENT through the C checks.
  tandem::Backbone b1 = tandem::Backbone::load(tandem::Options().threads(1));
  const tandem_backbone* raw = b1.get();
  tandem::Backbone b2 = std::move(b1);
  CHECK(!b1 && b2.get() == raw);  // NOLINT(bugprone-use-after-move)
  CHECK(b1.dim() == 0 && b1.graph_sha256().empty());
  CHECK_THROWS_CODE(b1.embed({"x"}), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(tandem::Trainer(b1, spec("embedding_only", 0, 1)),
                    tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(tandem::Model::load(b1, fx.bundle.string()), tandem::ErrorCode::NullArgument);
  CHECK(b2.embed_one("x").size() == 384);

  // Models and trainers keep the backbone alive after its handle is gone.
  tandem::Model m1 = tandem::Model::load(b2, fx.bundle.string());
  tandem::Trainer t1(b2, spec("embedding_only", 0, 2));
  b2 = tandem::Backbone();  // frees the handle (move-assignment onto a live handle)
  CHECK(!b2);
  CHECK(m1.predict({"Who wrote Hamlet ?"}).size() == 1);
  add_examples(t1, fx.train, 120);
  t1.train();

  // Model.
  tandem::Model m2 = std::move(m1);
  CHECK(!m1 && static_cast<bool>(m2));  // NOLINT(bugprone-use-after-move)
  CHECK(m1.heads_version() == 0);
  CHECK_THROWS_CODE(m1.predict({"x"}), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(m1.predict_groups({"x"}, {"g"}), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(m1.manifest_json(), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(m1.swap_heads(t1), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(m1.swap_bundle(fx.bundle.string()), tandem::ErrorCode::NullArgument);
  tandem::Model m3 = tandem::Model::load(fx.backbone, fx.bundle.string());
  m3 = std::move(m2);  // frees m3's model, takes m2's
  CHECK(!m2 && static_cast<bool>(m3));  // NOLINT(bugprone-use-after-move)
  tandem::Model& alias = m3;
  m3 = std::move(alias);  // self-move leaves it intact
  CHECK(static_cast<bool>(m3) && m3.predict({"x"}).size() == 1);
  CHECK(m3.swap_heads(t1) == 1);

  // Trainer.
  tandem::Trainer t2 = std::move(t1);
  CHECK(!t1 && t1.example_count() == 0 && t2.example_count() == 120);  // NOLINT
  CHECK_THROWS_CODE(t1.add_example("x", R"({"label":"HUM"})"), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(t1.train(), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(t1.train([](const tandem::Progress&) { return true; }),
                    tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(t1.report_json(), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(t1.save((fx.tmp / "x").string()), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(t1.evaluate({"x"}, {"{}"}), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(m3.swap_heads(t1), tandem::ErrorCode::NullArgument);
  CHECK(!t2.report_json().empty());

  // Predictions.
  tandem::Predictions p1 = m3.predict({"Who wrote Hamlet ?", "Where is Rome ?"});
  tandem::Predictions p2 = std::move(p1);
  CHECK(!p1 && p1.size() == 0 && p1.task_count() == 0);  // NOLINT(bugprone-use-after-move)
  CHECK(p2.size() == 2 && p2.heads_version() == 1);
  CHECK_THROWS_CODE(p1.json(), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_CODE(p1.probabilities(0, 0), tandem::ErrorCode::NullArgument);
  CHECK_THROWS_AS(p1.label(0), std::out_of_range);
  p1 = m3.predict({"x"});
  CHECK(p1.size() == 1);

  // Containers relocate handles with the noexcept moves.
  std::vector<tandem::Predictions> many;
  for (int i = 0; i < 20; ++i) many.push_back(m3.predict({"Who is there ?"}));
  for (const auto& p : many) CHECK(p.size() == 1 && p.label(0) == many[0].label(0));
}

// ---------------------------------------------------------------------------------------------

// Sequence heads: chosen in the spec, trained on per-token vectors, stored with their
// architecture, served by a loaded model; a bad sequence config is refused.
static void test_sequence_head(Fixture& fx) {
  const std::string seq_spec =
      R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":"embedding_only",)"
      R"("seed":4,"head":{"kind":"sequence","hidden":[32],"sequence":{"attention_queries":1,)"
      R"("conv_kernels":[1,3],"conv_channels":16},"stage":{"epochs":4}}}})";
  tandem::Trainer t(fx.backbone, seq_spec);
  for (const auto& e : fx.train) t.add_example(e.text, tandem::Labels{{"label", e.label}});
  t.train();
  const auto dir = fx.tmp / "sequence";
  t.save(dir.string());
  const tandem::Model m = tandem::Model::load(fx.backbone, dir.string());
  const std::string manifest = m.manifest_json();
  CHECK(manifest.find("\"sequence\"") != std::string::npos);
  CHECK(manifest.find("\"conv_kernels\"") != std::string::npos);
  const auto p = m.predict(fx.test_texts);
  CHECK(p.size() == fx.test_texts.size());
  std::size_t correct = 0;
  for (std::size_t i = 0; i < p.size(); i++) {
    const auto probs = p.probabilities(i, 0);
    float sum = 0;
    for (float v : probs) sum += v;
    CHECK(std::fabs(sum - 1.0f) < 1e-4f);
    if (p.label(i, 0) == fx.test[i].label) correct++;
  }
  // Six classes: chance is about one in six.
  CHECK_MSG(correct * 3 >= p.size(), "%zu of %zu correct", correct, p.size());
  CHECK_THROWS_CODE(
      tandem::Trainer(fx.backbone,
                      R"({"tasks":[{"name":"y","kind":"binary"}],"config":{"head":{"kind":"sequence",)"
                      R"("sequence":{"conv_kernels":[2]}}}})"),
      tandem::ErrorCode::InvalidArgument);
}

// "recipe": "auto" with a zero budget: the linear recipe (the first candidate) is chosen, and
// the report says so and why.
static void test_auto_recipe(Fixture& fx) {
  tandem::Trainer t(fx.backbone,
                    R"({"tasks":[{"name":"label","kind":"multiclass"}],"recipe":"auto",)"
                    R"("budget_seconds":0,"config":{"seed":1}})");
  for (std::size_t i = 0; i < 120; i++)
    t.add_example(fx.train[i].text, tandem::Labels{{"label", fx.train[i].label}});
  t.train();
  const std::string report = t.report_json();
  CHECK_MSG(report.find("\"recipe\":\"linear\"") != std::string::npos, "%s", report.c_str());
  CHECK(report.find("\"selection\"") != std::string::npos);
  CHECK(report.find("chose linear") != std::string::npos);
  CHECK_THROWS_CODE(
      tandem::Trainer(fx.backbone,
                      R"({"tasks":[{"name":"y","kind":"binary"}],"budget_seconds":1})"),
      tandem::ErrorCode::InvalidArgument);
}

// Distillation: the trained bundle teaches a new trainer, which also learns from texts added
// without labels; without a teacher those are refused at training.
static void test_distillation(Fixture& fx) {
  const std::string base =
      R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":"embedding_only",)"
      R"("seed":2,"head":{"stage":{"epochs":3}})";
  const std::string spec = base + R"(,"distill":{"teachers":[")" + fx.bundle.string() +
                           R"("],"weight":0.7}}})";
  tandem::Trainer t(fx.backbone, spec);
  tandem::Trainer plain(fx.backbone, base + "}}");
  for (std::size_t i = 0; i < 150; i++) {
    t.add_example(fx.train[i].text, tandem::Labels{{"label", fx.train[i].label}});
    plain.add_example(fx.train[i].text, tandem::Labels{{"label", fx.train[i].label}});
  }
  for (std::size_t i = 150; i < 160; i++) t.add_unlabelled(fx.train[i].text);
  CHECK(t.unlabelled_count() == 10);
  CHECK_THROWS_CODE(t.add_unlabelled(std::string_view("\xff", 1)),
                    tandem::ErrorCode::InvalidUtf8);
  t.train();
  plain.train();
  auto n_train = [](const std::string& report) {
    const auto at = report.find("\"n_train\":");
    return at == std::string::npos ? -1L : std::strtol(report.c_str() + at + 10, nullptr, 10);
  };
  const long with = n_train(t.report_json()), without = n_train(plain.report_json());
  CHECK_MSG(without > 0 && with == without + 10, "n_train %ld vs %ld", with, without);
  plain.add_unlabelled(fx.train[150].text);
  CHECK_THROWS_CODE(plain.train(), tandem::ErrorCode::InvalidArgument);
}

static void test_pretrain(Fixture& fx) {
  std::vector<std::string> texts;
  for (std::size_t i = 0; i < 150; i++) texts.push_back(fx.train[i].text);
  const std::string config =
      R"({"seed":5,"metadata":{"stage1_targets":["masked_features","readability"],)"
      R"("stage":{"epochs":3}}})";
  const fs::path enc = fx.tmp / "encoder";
  int epochs = 0;
  const std::string report = tandem::pretrain_encoder(
      texts, config, enc.string(), [&](const tandem::Progress& p) {
        CHECK(p.stage == "pretrain");
        epochs++;
        return true;
      });
  CHECK(epochs == 3);
  CHECK_MSG(report.find("\"readability\":") != std::string::npos, "%s", report.c_str());
  CHECK(fs::exists(enc / "manifest.json"));
  // Serving refuses an encoder; a two-stage trainer starts from it.
  CHECK_THROWS_CODE(tandem::Model::load(fx.backbone, enc.string()),
                    tandem::ErrorCode::InvalidArgument);
  tandem::Trainer t(fx.backbone,
                    R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":)"
                    R"("two_stage","seed":2,"head":{"stage":{"epochs":3}},"metadata":{)"
                    R"("init_encoder":")" + enc.string() + R"(","stage":{"epochs":2}}}})");
  for (std::size_t i = 0; i < 150; i++)
    t.add_example(fx.train[i].text, tandem::Labels{{"label", fx.train[i].label}});
  t.train();
  // Bad targets, and cancelling, are errors; a throwing callback's exception comes back.
  CHECK_THROWS_CODE(tandem::pretrain_encoder(texts, R"({"metadata":{"stage1_targets":["labels"]}})",
                                             (fx.tmp / "never").string()),
                    tandem::ErrorCode::InvalidArgument);
  CHECK_THROWS_CODE(tandem::pretrain_encoder(texts, config, (fx.tmp / "never").string(),
                                             [](const tandem::Progress&) { return false; }),
                    tandem::ErrorCode::Cancelled);
  bool thrown = false;
  try {
    tandem::pretrain_encoder(texts, config, (fx.tmp / "never").string(),
                             [](const tandem::Progress&) -> bool { throw std::logic_error("x"); });
  } catch (const std::logic_error&) {
    thrown = true;
  }
  CHECK(thrown);
  CHECK(!fs::exists(fx.tmp / "never"));
}

int main() {
  const char* trec_env = std::getenv("TANDEM_TREC");
  const std::string trec = trec_env ? trec_env : tandem_home() + "/data/trec.jsonl";
  const char* small_env = std::getenv("TANDEM_CPP_TEST_SMALL");
  const bool small = small_env != nullptr && std::string(small_env) == "1";

  char tmpl[] = "/tmp/tandem-cpp-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  Fixture fx;
  fx.tmp = tmpl;

  section("minijson", test_minijson);
  section("info", test_info);
  section("options", test_options);
  section("metadata", test_metadata);
  bool ready = false;
  section("setup (backbone, TREC data)", [&] {
    fx.backbone = tandem::Backbone::load(tandem::Options().threads(small ? 1 : 2));
    const auto data = read_jsonl(trec, 600);
    CHECK_MSG(data.size() == 600, "%zu TREC examples in %s", data.size(), trec.c_str());
    fx.train.assign(data.begin(), data.begin() + 450);
    fx.test.assign(data.begin() + 450, data.begin() + (small ? 470 : 600));
    for (const auto& ex : fx.test) {
      fx.test_texts.push_back(ex.text);
      fx.test_labels.push_back({{"label", ex.label}});
    }
    ready = data.size() == 600;
  });
  if (ready) {
    section("embed", [&] { test_embed(fx.backbone); });
    section("trainer and bundle errors", [&] { test_trainer_errors(fx); });
    section("train, evaluate, save, load, predict", [&] { test_train_save_load_predict(fx); });
    if (fx.model) {
      section("predict_groups", [&] { test_predict_groups(fx); });
      section("ensembles", [&] { test_ensemble(fx); });
      section("predict_sampled", [&] { test_predict_sampled(fx); });
      section("ONNX heads and export", [&] { test_onnx(fx); });
      section("hot swap", [&] { test_swap(fx); });
      section("fine-tuned backbone layers", [&] { test_finetune(fx); });
      section("move semantics", [&] { test_move_semantics(fx); });
      section("distillation", [&] { test_distillation(fx); });
      section("encoder pre-training", [&] { test_pretrain(fx); });
    }
    section("cancellation", [&] { test_cancel(fx); });
    section("exception in the progress callback", [&] { test_callback_exception(fx); });
    section("task kinds and label escaping", [&] { test_task_kinds(fx); });
    section("sequence head", [&] { test_sequence_head(fx); });
    section("recipe chosen by validation", [&] { test_auto_recipe(fx); });
  }

  std::error_code ec;
  fs::remove_all(fx.tmp, ec);
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
