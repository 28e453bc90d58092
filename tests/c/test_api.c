/* Calls every function of tandem.h, on the success path and on every documented error path:
 * NULL arguments, invalid UTF-8, wrong sizes, missing files, a bundle from another backbone,
 * a bundle of an unknown format, and a cancelled training run. Run under valgrind in CI.
 *
 * Needs the cache made by scripts/setup.sh (ONNX Runtime + the default backbone). With
 * TANDEM_TEST_BACKBONE set to another backbone directory (CI's valgrind run uses the tiny
 * random test backbone, since ONNX Runtime runs ~100x slower under valgrind), every call and
 * error path still runs, but checks that need a meaningful embedding (which label wins) are
 * skipped: the native run on the real backbone makes those. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "data.h"

static char tmp_root[256];
/* True on the real default backbone, whose embeddings mean something. */
static int semantic = 1;

/* Section timings on stderr: the suite runs under valgrind, where slow spots matter. */
static void section(const char *name) {
  static struct timespec last;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (last.tv_sec != 0)
    fprintf(stderr, "  [%.1fs] %s\n",
            (double)(now.tv_sec - last.tv_sec) + (now.tv_nsec - last.tv_nsec) / 1e9, name);
  last = now;
}

static void path_in_tmp(char *out, size_t cap, const char *name) {
  snprintf(out, cap, "%s/%s", tmp_root, name);
}

/* Reads a whole file into a malloc'd, NUL-terminated buffer (NULL on failure). */
static char *read_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf) buf[n] = '\0';
  fclose(f);
  return buf;
}

static int write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  size_t n = strlen(text);
  int ok = fwrite(text, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* Copies bundle `from` to `to` with the first occurrence of `key`'s string value replaced. */
static int copy_bundle_with(const char *from, const char *to, const char *key,
                            const char *value) {
  char src[512], dst[512], cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
  if (system(cmd) != 0) return 0;
  snprintf(src, sizeof src, "%s/manifest.json", from);
  snprintf(dst, sizeof dst, "%s/manifest.json", to);
  char *text = read_file(src);
  if (!text) return 0;
  char pattern[128];
  snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
  char *at = strstr(text, pattern);
  int ok = 0;
  if (at) {
    char *start = at + strlen(pattern);
    char *end = strchr(start, '"');
    size_t out_len = strlen(text) + strlen(value) + 1;
    char *out = malloc(out_len);
    snprintf(out, out_len, "%.*s%s%s", (int)(start - text), text, value, end);
    ok = write_file(dst, out);
    free(out);
  }
  free(text);
  return ok;
}

/* Copies bundle `from` to `to` with `insert` written right after the first `after` in its
 * manifest (e.g. digits before a number, which makes it huge). */
static int copy_bundle_inserting(const char *from, const char *to, const char *after,
                                 const char *insert) {
  char src[600], dst[600], cmd[1700];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", to, from, to);
  if (system(cmd) != 0) return 0;
  snprintf(src, sizeof src, "%s/manifest.json", from);
  snprintf(dst, sizeof dst, "%s/manifest.json", to);
  char *text = read_file(src);
  if (!text) return 0;
  char *at = strstr(text, after);
  int ok = 0;
  if (at) {
    size_t head = (size_t)(at - text) + strlen(after);
    size_t out_len = strlen(text) + strlen(insert) + 1;
    char *out = malloc(out_len);
    snprintf(out, out_len, "%.*s%s%s", (int)head, text, insert, text + head);
    ok = write_file(dst, out);
    free(out);
  }
  free(text);
  return ok;
}

static void test_info_and_errors(void) {
  EXPECT(strcmp(tandem_version(), TANDEM_VERSION_STRING) == 0);
  EXPECT(tandem_abi_version() == TANDEM_ABI_VERSION);
  EXPECT(strcmp(tandem_error_code_name(TANDEM_ERR_NOT_FOUND), "not_found") == 0);
  EXPECT(strcmp(tandem_error_code_name(TANDEM_ERR_CANCELLED), "cancelled") == 0);
  EXPECT(strcmp(tandem_error_code_name(999), "unknown") == 0);
  EXPECT(tandem_error_code(NULL) == 0);
  EXPECT(strcmp(tandem_error_message(NULL), "") == 0);
  tandem_error_free(NULL);
  tandem_string_free(NULL);
  tandem_options_free(NULL);
  tandem_backbone_free(NULL);
  tandem_trainer_free(NULL);
  tandem_model_free(NULL);
  tandem_predictions_free(NULL);
}

static void test_options(void) {
  tandem_options *o = tandem_options_new();
  EXPECT(o != NULL);
  ERR(tandem_options_set_threads(NULL, 2), TANDEM_ERR_NULL_ARGUMENT);
  OK(tandem_options_set_threads(o, 0));
  /* Absurd counts are refused up front (they used to hang or abort at load). */
  ERR(tandem_options_set_threads(o, 4000000000u), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_batching(o, 8, 1000000), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_batching(o, (size_t)1 << 40, 1), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_variant(o, "bogus", 5), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_variant(o, "\xff\xfe", 2), TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_options_set_variant(o, NULL, 4), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_variant(NULL, "fp32", 4), TANDEM_ERR_NULL_ARGUMENT);
  /* The name need not be NUL-terminated: only `len` bytes are read. */
  OK(tandem_options_set_variant(o, "int8XXXX", 4));
  OK(tandem_options_set_variant(o, "fp32", 4));
  ERR(tandem_options_set_device(o, "tpu", 3), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_device(NULL, "cpu", 3), TANDEM_ERR_NULL_ARGUMENT);
  OK(tandem_options_set_device(o, "cpu", 3));
  ERR(tandem_options_set_batching(o, 0, 1), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_batching(NULL, 8, 1), TANDEM_ERR_NULL_ARGUMENT);
  OK(tandem_options_set_batching(o, 16, 2));
  ERR(tandem_options_set_ort_library(o, "", 0), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_ort_library(NULL, "x", 1), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_backbone_dir(o, NULL, 3), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_backbone_dir(NULL, "x", 1), TANDEM_ERR_NULL_ARGUMENT);
  tandem_options_free(o);
}

/* Before any backbone loads: a missing ONNX Runtime library and a missing model directory. */
static void test_missing_runtime_and_model(void) {
  tandem_options *o = tandem_options_new();
  const char *lib = "/nonexistent/libonnxruntime.so";
  OK(tandem_options_set_ort_library(o, lib, strlen(lib)));
  tandem_backbone *b = NULL;
  ERR(tandem_backbone_load(o, &b), TANDEM_ERR_RUNTIME_UNAVAILABLE);
  EXPECT(b == NULL);
  tandem_options_free(o);

  o = tandem_options_new();
  const char *dir = "/nonexistent/backbone";
  OK(tandem_options_set_backbone_dir(o, dir, strlen(dir)));
  ERR(tandem_backbone_load(o, &b), TANDEM_ERR_NOT_FOUND);
  ERR(tandem_backbone_load(o, NULL), TANDEM_ERR_NULL_ARGUMENT);
  EXPECT(b == NULL);
  /* The doctor reports a missing backbone as a failed check, not an error. */
  char *report = NULL;
  ERR(tandem_doctor_json(o, NULL), TANDEM_ERR_NULL_ARGUMENT);
  if (OK(tandem_doctor_json(o, &report))) {
    EXPECT(strstr(report, "\"ok\":false") != NULL);
    EXPECT(strstr(report, "/nonexistent/backbone") != NULL);
    tandem_string_free(report);
  }
  tandem_options_free(o);
}

static tandem_backbone *load_backbone(void) {
  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_threads(o, 2));
  const char *dir = getenv("TANDEM_TEST_BACKBONE");
  if (dir && *dir) {
    semantic = 0;
    OK(tandem_options_set_backbone_dir(o, dir, strlen(dir)));
  }
  tandem_backbone *b = NULL;
  OK(tandem_backbone_load(o, &b));
  tandem_options_free(o);
  return b;
}

static void test_backbone(const tandem_backbone *b) {
  EXPECT(tandem_backbone_dim(b) == (semantic ? 384u : 32u));
  EXPECT(tandem_backbone_dim(NULL) == 0);
  EXPECT(strlen(tandem_backbone_graph_sha256(b)) == 64);
  EXPECT(strcmp(tandem_backbone_graph_sha256(NULL), "") == 0);

  /* A second ONNX Runtime library cannot replace the loaded one. */
  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_ort_library(o, "/tmp", 4));
  tandem_backbone *other = NULL;
  ERR(tandem_backbone_load(o, &other), TANDEM_ERR_INVALID_ARGUMENT);
  tandem_options_free(o);

  const char *texts[] = {"Who wrote Hamlet ?", "How far away is the moon ?",
                         "Who wrote Hamlet ?XXXX"};
  size_t lens[] = {18, 25, 18};
  size_t dim = tandem_backbone_dim(b);
  float *out = calloc(3 * dim, sizeof(float));
  ERR(tandem_backbone_embed(NULL, texts, lens, 3, out, 3 * dim), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_backbone_embed(b, NULL, lens, 3, out, 3 * dim), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_backbone_embed(b, texts, lens, 3, NULL, 3 * dim), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_backbone_embed(b, texts, lens, 3, out, 3 * dim - 1), TANDEM_ERR_BUFFER_TOO_SMALL);
  const char *bad[] = {"ok", "caf\xc3"};
  ERR(tandem_backbone_embed(b, bad, NULL, 2, out, 2 * dim), TANDEM_ERR_INVALID_UTF8);
  const char *with_null[] = {"ok", NULL};
  ERR(tandem_backbone_embed(b, with_null, NULL, 2, out, 2 * dim), TANDEM_ERR_NULL_ARGUMENT);
  EXPECT(out[0] == 0.0f); /* written only on success */
  if (OK(tandem_backbone_embed(b, texts, lens, 3, out, 3 * dim))) {
    for (size_t r = 0; r < 3; r++) {
      double norm = 0;
      for (size_t j = 0; j < dim; j++) norm += (double)out[r * dim + j] * out[r * dim + j];
      EXPECT(fabs(sqrt(norm) - 1.0) < 1e-4);
    }
    /* Texts 0 and 2 are the same bytes under their lengths. */
    double diff = 0;
    for (size_t j = 0; j < dim; j++) diff += fabs((double)out[j] - out[2 * dim + j]);
    EXPECT(diff < 1e-4);
    double cross = 0;
    for (size_t j = 0; j < dim; j++) cross += (double)out[j] * out[dim + j];
    if (semantic) EXPECT(cross < 0.9);
  }
  /* NUL-terminated texts (lens NULL), and an empty batch. */
  OK(tandem_backbone_embed(b, texts, NULL, 2, out, 2 * dim));
  OK(tandem_backbone_embed(b, NULL, NULL, 0, NULL, 0));
  free(out);
}

static void test_metadata(void) {
  size_t n = tandem_metadata_feature_count();
  EXPECT(n >= 40);
  EXPECT(strcmp(tandem_metadata_feature_name(0), "char_count") == 0);
  EXPECT(strcmp(tandem_metadata_feature_name(1), "word_count") == 0);
  for (size_t i = 0; i < n; i++) EXPECT(tandem_metadata_feature_name(i) != NULL);
  EXPECT(tandem_metadata_feature_name(n) == NULL);
  const char *texts[] = {"Hello world", ""};
  float *out = calloc(2 * n, sizeof(float));
  ERR(tandem_metadata_extract(texts, NULL, 2, out, 2 * n - 1), TANDEM_ERR_BUFFER_TOO_SMALL);
  ERR(tandem_metadata_extract(NULL, NULL, 2, out, 2 * n), TANDEM_ERR_NULL_ARGUMENT);
  const char *bad[] = {"\xc0\x80"};
  ERR(tandem_metadata_extract(bad, NULL, 1, out, n), TANDEM_ERR_INVALID_UTF8);
  if (OK(tandem_metadata_extract(texts, NULL, 2, out, 2 * n))) {
    EXPECT(out[0] == 11.0f);
    EXPECT(out[1] == 2.0f);
    EXPECT(out[n] == 0.0f);
    for (size_t i = 0; i < 2 * n; i++) EXPECT(isfinite(out[i]));
  }
  free(out);
}

typedef struct {
  int calls;
  int cancel_at; /* cancel on this call (1-based); 0 never */
  int saw_epoch;
} progress_state;

static bool on_progress(void *user_data, const char *stage, uint32_t epoch, uint32_t epochs,
                        float train_loss, float valid_loss) {
  progress_state *s = user_data;
  s->calls++;
  /* "embed" and "thresholds" reports carry no losses (NaN). */
  if (strcmp(stage, "embed") != 0 && strcmp(stage, "thresholds") != 0) {
    s->saw_epoch = 1;
    if (!(epoch < epochs && isfinite(train_loss) && isfinite(valid_loss))) failures++;
  }
  return s->cancel_at == 0 || s->calls < s->cancel_at;
}

static void label_json(char *buf, size_t cap, const char *label) {
  snprintf(buf, cap, "{\"label\": \"%s\"}", label);
}

/* A trainer on the questions, with the head stage's learning rate `lr`. */
static tandem_trainer *make_trainer_lr(const tandem_backbone *b, int seed, const char *lr) {
  char spec[512];
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
           " \"embedding_cache\": false,"
           " \"config\": {\"mode\": \"embedding_only\", \"seed\": %d,"
           " \"head\": {\"hidden\": [32], \"stage\": {\"epochs\": 25, \"patience\": 0,"
           " \"lr\": %s}}}}",
           seed, lr);
  tandem_trainer *t = NULL;
  OK(tandem_trainer_new(b, spec, strlen(spec), &t));
  for (size_t i = 0; i < N_QUESTIONS; i++) {
    char labels[64];
    label_json(labels, sizeof labels, QUESTIONS[i].label);
    /* Every third question validates; the rest train. */
    if (i % 3 == 2)
      OK(tandem_trainer_add_validation_example(t, QUESTIONS[i].text, strlen(QUESTIONS[i].text),
                                               labels, strlen(labels)));
    else
      OK(tandem_trainer_add_example(t, QUESTIONS[i].text, strlen(QUESTIONS[i].text), labels,
                                    strlen(labels)));
  }
  return t;
}

static tandem_trainer *make_trainer(const tandem_backbone *b, int seed) {
  return make_trainer_lr(b, seed, "0.002");
}

static tandem_trainer *test_trainer(const tandem_backbone *b, const char *bundle_dir) {
  tandem_trainer *t = NULL;
  const char *spec = "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}]}";
  ERR(tandem_trainer_new(NULL, spec, strlen(spec), &t), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_new(b, spec, strlen(spec), NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_new(b, "{not json", 9, &t), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_new(b, "{\"tasks\": []}", 13, &t), TANDEM_ERR_INVALID_ARGUMENT);
  const char *unknown = "{\"tasks\": [{\"name\": \"y\", \"kind\": \"binary\"}],"
                        " \"config\": {\"learning_rate\": 1}}";
  tandem_error *e = tandem_trainer_new(b, unknown, strlen(unknown), &t);
  EXPECT(e != NULL && tandem_error_code(e) == TANDEM_ERR_INVALID_ARGUMENT);
  EXPECT(e != NULL && strstr(tandem_error_message(e), "learning_rate") != NULL);
  tandem_error_free(e);
  ERR(tandem_trainer_new(b, "{\"tasks\xff", 9, &t), TANDEM_ERR_INVALID_UTF8);
  EXPECT(t == NULL);

  t = make_trainer(b, 7);
  EXPECT(tandem_trainer_example_count(t) == N_QUESTIONS - N_QUESTIONS / 3);
  EXPECT(tandem_trainer_example_count(NULL) == 0);
  EXPECT(tandem_trainer_validation_count(t) == N_QUESTIONS / 3);
  EXPECT(tandem_trainer_validation_count(NULL) == 0);
  size_t before = tandem_trainer_example_count(t);
  /* Malformed examples are rejected whole; nothing is added. */
  ERR(tandem_trainer_add_example(t, "x", 1, "[1]", 3), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(t, "x", 1, "{\"topic\": \"a\"}", 14),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(t, "x", 1, "{\"label\": [1]}", 14),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(t, "x", 1, "{}", 2), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(t, "x", 1, "{\"label\":", 9), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(t, "\xe2\x82", 2, "{\"label\": \"HUM\"}", 16),
      TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_trainer_add_example(NULL, "x", 1, "{\"label\": \"HUM\"}", 16),
      TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_add_validation_example(t, "x", 1, "{\"label\": 1.5, \"x\": 1}", 22),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_validation_example(NULL, "x", 1, "{}", 2), TANDEM_ERR_NULL_ARGUMENT);
  EXPECT(tandem_trainer_example_count(t) == before);

  /* Not trained yet. */
  char *json = NULL;
  ERR(tandem_trainer_report_json(t, &json), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_save(t, bundle_dir, strlen(bundle_dir)), TANDEM_ERR_INVALID_ARGUMENT);

  /* Cancelled from the callback, during embedding and during an epoch: nothing changes. */
  progress_state cancel_first = {0, 1, 0};
  ERR(tandem_trainer_train(t, on_progress, &cancel_first), TANDEM_ERR_CANCELLED);
  EXPECT(cancel_first.calls == 1);
  progress_state cancel_later = {0, 5, 0};
  ERR(tandem_trainer_train(t, on_progress, &cancel_later), TANDEM_ERR_CANCELLED);
  EXPECT(cancel_later.calls == 5 && cancel_later.saw_epoch);
  EXPECT(tandem_trainer_example_count(t) == before);
  ERR(tandem_trainer_report_json(t, &json), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_train(NULL, NULL, NULL), TANDEM_ERR_NULL_ARGUMENT);

  /* A learning rate far too high diverges: a numeric error naming it, not a hang. */
  tandem_trainer *hot = make_trainer_lr(b, 7, "1e30");
  if (hot) {
    tandem_error *e = tandem_trainer_train(hot, NULL, NULL);
    EXPECT(e != NULL && tandem_error_code(e) == TANDEM_ERR_NUMERIC);
    EXPECT(e != NULL && strstr(tandem_error_message(e), "diverged") != NULL);
    tandem_error_free(e);
    tandem_trainer_free(hot);
  }

  progress_state run = {0, 0, 0};
  OK(tandem_trainer_train(t, on_progress, &run));
  EXPECT(run.saw_epoch && run.calls >= 25);
  ERR(tandem_trainer_report_json(t, NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_report_json(NULL, &json), TANDEM_ERR_NULL_ARGUMENT);
  if (OK(tandem_trainer_report_json(t, &json))) {
    EXPECT(strstr(json, "\"valid_metrics\"") != NULL);
    EXPECT(strstr(json, "\"embedding_only\"") != NULL);
    tandem_string_free(json);
  }
  /* Training with no callback works too. */
  OK(tandem_trainer_train(t, NULL, NULL));

  const char *eval_texts[] = {"Who was the author of Hamlet ?", "How many moons does Mars have ?",
                              "Where is Lake Victoria ?"};
  const char *eval_labels[] = {"{\"label\": \"HUM\"}", "{\"label\": \"NUM\"}",
                               "{\"label\": \"LOC\"}"};
  ERR(tandem_trainer_evaluate(t, eval_texts, NULL, eval_labels, NULL, 3, NULL),
      TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_evaluate(t, eval_texts, NULL, eval_labels, NULL, 0, &json),
      TANDEM_ERR_INVALID_ARGUMENT);
  const char *bad_labels[] = {"{\"label\": \"HUM\"}", "{\"label\": \"XYZ\"}",
                              "{\"label\": \"LOC\"}"};
  ERR(tandem_trainer_evaluate(t, eval_texts, NULL, bad_labels, NULL, 3, &json),
      TANDEM_ERR_INVALID_ARGUMENT);
  if (OK(tandem_trainer_evaluate(t, eval_texts, NULL, eval_labels, NULL, 3, &json))) {
    EXPECT(strstr(json, "\"macro_f1\"") != NULL);
    if (semantic) EXPECT(strstr(json, "\"accuracy\":1.0") != NULL);
    tandem_string_free(json);
  }

  /* Saving: under a regular file fails with IO; into a fresh directory succeeds. */
  char file[512], under_file[600];
  path_in_tmp(file, sizeof file, "a-file");
  EXPECT(write_file(file, "x"));
  snprintf(under_file, sizeof under_file, "%s/bundle", file);
  ERR(tandem_trainer_save(t, under_file, strlen(under_file)), TANDEM_ERR_IO);
  ERR(tandem_trainer_save(t, "", 0), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_save(NULL, bundle_dir, strlen(bundle_dir)), TANDEM_ERR_NULL_ARGUMENT);
  OK(tandem_trainer_save(t, bundle_dir, strlen(bundle_dir)));
  return t;
}

static void check_top_label(const tandem_predictions *p, size_t row, const char *want) {
  EXPECT(tandem_predictions_label(p, row, 0, 0) != NULL);
  if (!semantic) return;
  const char *got = tandem_predictions_label(p, row, 0, 0);
  EXPECT(got != NULL && strcmp(got, want) == 0);
  if (got && strcmp(got, want) != 0) fprintf(stderr, "  row %zu: %s, not %s\n", row, got, want);
}

/* A bundle opens on the backbone it records, with no backbone loaded or named: the cache's
 * backbone of the name it was trained on (the tiny test backbone or the default one). It
 * predicts what the same bundle loaded on an explicit backbone predicts. */
static void test_model_open(const tandem_model *loaded, const char *bundle_dir) {
  tandem_model *m = NULL;
  char missing[512];
  path_in_tmp(missing, sizeof missing, "no-such-bundle-to-open");
  ERR(tandem_model_open(NULL, 3, NULL, &m), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_open(bundle_dir, strlen(bundle_dir), NULL, NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_open("\xff", 1, NULL, &m), TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_model_open(missing, strlen(missing), NULL, &m), TANDEM_ERR_NOT_FOUND);
  EXPECT(m == NULL);
  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_threads(o, 2));
  if (OK(tandem_model_open(bundle_dir, strlen(bundle_dir), o, &m))) {
    const char *texts[] = {"Who wrote Romeo and Juliet ?", "Where is the Eiffel Tower ?"};
    tandem_predictions *a = NULL, *b = NULL;
    if (OK(tandem_model_predict(loaded, texts, NULL, 2, &a)) &&
        OK(tandem_model_predict(m, texts, NULL, 2, &b))) {
      for (size_t i = 0; i < 2; i++) {
        float pa[3] = {0}, pb[3] = {0};
        OK(tandem_predictions_probabilities(a, i, 0, pa, 3));
        OK(tandem_predictions_probabilities(b, i, 0, pb, 3));
        for (size_t k = 0; k < 3; k++) EXPECT(fabs(pa[k] - pb[k]) <= 1e-6);
      }
    }
    tandem_predictions_free(a);
    tandem_predictions_free(b);
    tandem_model_free(m);
  }
  tandem_options_free(o);
}

/* Backbones by name. Error paths everywhere; on the real run (not under valgrind, where only
 * the tiny backbone is affordable), a model trained on each backbone setup installs by name
 * opens with tandem_model_open, no backbone given, and predicts as the same bundle loaded on
 * the named backbone does. CI's setup installs all three (scripts/setup.sh --tests). */
static void test_named_backbones(void) {
  tandem_options *o = tandem_options_new();
  ERR(tandem_options_set_backbone_name(NULL, "minilm-l6", 9), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_backbone_name(o, NULL, 3), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_backbone_name(o, "\xff", 1), TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_options_set_backbone_name(o, "", 0), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_backbone_name(o, "../models", 9), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_backbone_name(o, "/tmp", 4), TANDEM_ERR_INVALID_ARGUMENT);
  tandem_error *e = tandem_options_set_backbone_name(o, "no-such-backbone", 16);
  EXPECT(e != NULL && tandem_error_code(e) == TANDEM_ERR_NOT_FOUND);
  EXPECT(e != NULL && strstr(tandem_error_message(e), "minilm-l3") != NULL);
  tandem_error_free(e);
  tandem_options_free(o);
  if (!semantic) return;
  const char *names[] = {"minilm-l3", "minilm-l6", "mpnet-base"};
  const uint32_t dims[] = {384, 384, 768};
  for (size_t n = 0; n < 3; n++) {
    char dir[512], what[64];
    snprintf(what, sizeof what, "named-%s", names[n]);
    path_in_tmp(dir, sizeof dir, what);
    o = tandem_options_new();
    OK(tandem_options_set_threads(o, 2));
    tandem_backbone *b = NULL;
    if (!OK(tandem_options_set_backbone_name(o, names[n], strlen(names[n]))) ||
        !OK(tandem_backbone_load(o, &b))) {
      fprintf(stderr, "  (%s: install it with scripts/setup.sh --backbone %s)\n", names[n],
              names[n]);
      tandem_options_free(o);
      continue;
    }
    tandem_options_free(o);
    EXPECT(tandem_backbone_dim(b) == dims[n]);
    tandem_trainer *t = make_trainer(b, 5);
    tandem_model *loaded = NULL, *opened = NULL;
    if (OK(tandem_trainer_train(t, NULL, NULL)) && OK(tandem_trainer_save(t, dir, strlen(dir))) &&
        OK(tandem_model_load(b, dir, strlen(dir), &loaded)) &&
        OK(tandem_model_open(dir, strlen(dir), NULL, &opened))) {
      const char *texts[] = {"Who was the first woman to fly across the Atlantic ?",
                             "Where is the Great Wall of China ?",
                             "How many planets are in the solar system ?"};
      const char *want[] = {"HUM", "LOC", "NUM"};
      tandem_predictions *a = NULL, *p = NULL;
      if (OK(tandem_model_predict(loaded, texts, NULL, 3, &a)) &&
          OK(tandem_model_predict(opened, texts, NULL, 3, &p))) {
        for (size_t i = 0; i < 3; i++) {
          float pa[3] = {0}, pb[3] = {0};
          OK(tandem_predictions_probabilities(a, i, 0, pa, 3));
          OK(tandem_predictions_probabilities(p, i, 0, pb, 3));
          for (size_t k = 0; k < 3; k++) EXPECT(fabs(pa[k] - pb[k]) <= 1e-6);
          /* Each backbone's head tells these apart (each scores >= 0.73 macro-F1 on TREC). */
          const char *label = tandem_predictions_label(p, i, 0, 0);
          int right = label != NULL && strcmp(label, want[i]) == 0;
          EXPECT(right);
          if (!right)
            fprintf(stderr, "  %s: \"%s\" -> %s (%.2f %.2f %.2f)\n", names[n], texts[i],
                    label ? label : "NULL", pb[0], pb[1], pb[2]);
        }
      }
      tandem_predictions_free(a);
      tandem_predictions_free(p);
    }
    tandem_model_free(loaded);
    tandem_model_free(opened);
    tandem_trainer_free(t);
    tandem_backbone_free(b);
  }
}

static void test_model(const tandem_backbone *b, const tandem_trainer *t,
                       const char *bundle_dir) {
  tandem_model *m = NULL;
  char missing[512], empty_dir[512], foreign[512], future[512], huge[512];
  path_in_tmp(huge, sizeof huge, "huge-bundle");
  path_in_tmp(missing, sizeof missing, "no-such-bundle");
  path_in_tmp(empty_dir, sizeof empty_dir, "empty");
  path_in_tmp(foreign, sizeof foreign, "foreign-bundle");
  path_in_tmp(future, sizeof future, "future-bundle");
  ERR(tandem_model_load(b, missing, strlen(missing), &m), TANDEM_ERR_NOT_FOUND);
  EXPECT(mkdir(empty_dir, 0700) == 0);
  ERR(tandem_model_load(b, empty_dir, strlen(empty_dir), &m), TANDEM_ERR_NOT_FOUND);
  ERR(tandem_model_load(NULL, bundle_dir, strlen(bundle_dir), &m), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_load(b, bundle_dir, strlen(bundle_dir), NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_load(b, "\xff", 1, &m), TANDEM_ERR_INVALID_UTF8);
  /* A bundle trained on another backbone, and one in a format from the future. */
  EXPECT(copy_bundle_with(bundle_dir, foreign, "family_sha256",
                          "0000000000000000000000000000000000000000000000000000000000000000"));
  ERR(tandem_model_load(b, foreign, strlen(foreign), &m), TANDEM_ERR_BACKBONE_MISMATCH);
  EXPECT(copy_bundle_with(bundle_dir, future, "format", "tandem-bundle/99"));
  ERR(tandem_model_load(b, future, strlen(future), &m), TANDEM_ERR_FORMAT);
  /* A manifest that claims a gigantic layer: refused before anything is allocated (it used to
   * allocate what it claimed, and abort the host). */
  EXPECT(copy_bundle_inserting(bundle_dir, huge, "\"emb_dim\": ", "99999999"));
  ERR(tandem_model_load(b, huge, strlen(huge), &m), TANDEM_ERR_FORMAT);
  EXPECT(m == NULL);

  if (!OK(tandem_model_load(b, bundle_dir, strlen(bundle_dir), &m))) return;
  EXPECT(tandem_model_heads_version(m) == 0);
  EXPECT(tandem_model_heads_version(NULL) == 0);
  char *json = NULL;
  ERR(tandem_model_manifest_json(m, NULL), TANDEM_ERR_NULL_ARGUMENT);
  if (OK(tandem_model_manifest_json(m, &json))) {
    EXPECT(strstr(json, "tandem-bundle/1") != NULL);
    tandem_string_free(json);
  }

  const char *texts[] = {"Who wrote Romeo and Juliet ?", "How many days are in a leap year ?",
                         "Where is the Eiffel Tower ?", "Who discovered gravity ?"};
  tandem_predictions *p = NULL;
  ERR(tandem_model_predict(NULL, texts, NULL, 4, &p), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_predict(m, texts, NULL, 4, NULL), TANDEM_ERR_NULL_ARGUMENT);
  const char *bad[] = {"fine", "\xed\xa0\x80"}; /* an encoded surrogate is not UTF-8 */
  ERR(tandem_model_predict(m, bad, NULL, 2, &p), TANDEM_ERR_INVALID_UTF8);
  EXPECT(p == NULL);
  if (OK(tandem_model_predict(m, texts, NULL, 4, &p))) {
    EXPECT(tandem_predictions_len(p) == 4);
    EXPECT(tandem_predictions_task_count(p) == 1);
    EXPECT(tandem_predictions_heads_version(p) == 0);
    EXPECT(strcmp(tandem_predictions_task_name(p, 0), "label") == 0);
    EXPECT(tandem_predictions_task_name(p, 1) == NULL);
    EXPECT(tandem_predictions_task_kind(p, 0) == TANDEM_TASK_MULTICLASS);
    EXPECT(tandem_predictions_task_kind(p, 1) == UINT32_MAX);
    EXPECT(tandem_predictions_class_count(p, 0) == 3);
    EXPECT(tandem_predictions_class_count(p, 1) == 0);
    EXPECT(strcmp(tandem_predictions_class_name(p, 0, 0), "HUM") == 0);
    EXPECT(tandem_predictions_class_name(p, 0, 3) == NULL);
    EXPECT(tandem_predictions_group(p, 0) == NULL);
    EXPECT(tandem_predictions_label_count(p, 0, 0) == 1);
    EXPECT(tandem_predictions_label_count(p, 9, 0) == 0);
    EXPECT(tandem_predictions_label(p, 0, 0, 1) == NULL);
    check_top_label(p, 0, "HUM");
    check_top_label(p, 1, "NUM");
    check_top_label(p, 2, "LOC");
    check_top_label(p, 3, "HUM");
    float probs[3] = {0};
    ERR(tandem_predictions_probabilities(p, 0, 0, probs, 2), TANDEM_ERR_BUFFER_TOO_SMALL);
    ERR(tandem_predictions_probabilities(p, 4, 0, probs, 3), TANDEM_ERR_INVALID_ARGUMENT);
    ERR(tandem_predictions_probabilities(p, 0, 0, NULL, 3), TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_predictions_probabilities(NULL, 0, 0, probs, 3), TANDEM_ERR_NULL_ARGUMENT);
    if (OK(tandem_predictions_probabilities(p, 0, 0, probs, 3))) {
      EXPECT(fabs(probs[0] + probs[1] + probs[2] - 1.0) < 1e-5);
      if (semantic) EXPECT(probs[0] > probs[1] && probs[0] > probs[2]);
    }
    float value = -1;
    ERR(tandem_predictions_value(p, 0, 0, &value), TANDEM_ERR_INVALID_ARGUMENT);
    ERR(tandem_predictions_value(p, 0, 0, NULL), TANDEM_ERR_NULL_ARGUMENT);
    EXPECT(value == -1);
    ERR(tandem_predictions_json(p, NULL), TANDEM_ERR_NULL_ARGUMENT);
    if (OK(tandem_predictions_json(p, &json))) {
      EXPECT(strstr(json, "\"index\":3") != NULL);
      tandem_string_free(json);
    }
    tandem_predictions_free(p);
  }
  EXPECT(tandem_predictions_len(NULL) == 0);
  EXPECT(tandem_predictions_task_count(NULL) == 0);
  EXPECT(tandem_predictions_heads_version(NULL) == 0);
  EXPECT(tandem_predictions_task_name(NULL, 0) == NULL);
  EXPECT(tandem_predictions_label_count(NULL, 0, 0) == 0);

  /* Group aggregation: two authors, sorted by key. */
  const char *groups[] = {"bob", "alice", "bob", "alice"};
  ERR(tandem_model_predict_groups(m, texts, NULL, groups, NULL, 4, 99, &p),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_model_predict_groups(m, texts, NULL, NULL, NULL, 4, TANDEM_AGGREGATE_MEAN, &p),
      TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_predict_groups(NULL, texts, NULL, groups, NULL, 4, 0, &p),
      TANDEM_ERR_NULL_ARGUMENT);
  uint32_t hows[] = {TANDEM_AGGREGATE_MEAN, TANDEM_AGGREGATE_MEDIAN, TANDEM_AGGREGATE_MAJORITY,
                     TANDEM_AGGREGATE_TOTAL_VOTE};
  for (int h = 0; h < 4; h++) {
    p = NULL;
    if (!OK(tandem_model_predict_groups(m, texts, NULL, groups, NULL, 4, hows[h], &p))) continue;
    EXPECT(tandem_predictions_len(p) == 2);
    EXPECT(strcmp(tandem_predictions_group(p, 0), "alice") == 0);
    EXPECT(strcmp(tandem_predictions_group(p, 1), "bob") == 0);
    EXPECT(tandem_predictions_group(p, 2) == NULL);
    float probs[3];
    if (OK(tandem_predictions_probabilities(p, 0, 0, probs, 3)))
      EXPECT(fabs(probs[0] + probs[1] + probs[2] - 1.0) < 1e-5);
    if (OK(tandem_predictions_json(p, &json))) {
      EXPECT(strstr(json, "\"group\":\"alice\"") != NULL);
      tandem_string_free(json);
    }
    tandem_predictions_free(p);
  }

  /* Hot swap from a trainer and from a bundle; every prediction says which heads made it. */
  uint64_t v = 0;
  ERR(tandem_model_swap_heads(NULL, t, &v), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_swap_heads(m, NULL, &v), TANDEM_ERR_NULL_ARGUMENT);
  tandem_trainer *untrained = NULL;
  const char *spec = "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}]}";
  OK(tandem_trainer_new(b, spec, strlen(spec), &untrained));
  ERR(tandem_model_swap_heads(m, untrained, &v), TANDEM_ERR_INVALID_ARGUMENT);
  tandem_trainer_free(untrained);
  OK(tandem_model_swap_heads(m, t, &v));
  EXPECT(v == 1);
  OK(tandem_model_swap_heads(m, t, NULL));
  EXPECT(tandem_model_heads_version(m) == 2);
  ERR(tandem_model_swap_bundle(m, missing, strlen(missing), &v), TANDEM_ERR_NOT_FOUND);
  ERR(tandem_model_swap_bundle(m, foreign, strlen(foreign), &v), TANDEM_ERR_BACKBONE_MISMATCH);
  ERR(tandem_model_swap_bundle(m, future, strlen(future), &v), TANDEM_ERR_FORMAT);
  ERR(tandem_model_swap_bundle(m, huge, strlen(huge), &v), TANDEM_ERR_FORMAT);
  ERR(tandem_model_swap_bundle(NULL, bundle_dir, strlen(bundle_dir), &v),
      TANDEM_ERR_NULL_ARGUMENT);
  EXPECT(tandem_model_heads_version(m) == 2);
  OK(tandem_model_swap_bundle(m, bundle_dir, strlen(bundle_dir), &v));
  EXPECT(v == 3);
  if (OK(tandem_model_predict(m, texts, NULL, 1, &p))) {
    EXPECT(tandem_predictions_heads_version(p) == 3);
    check_top_label(p, 0, "HUM");
    tandem_predictions_free(p);
  }
  test_model_open(m, bundle_dir);
  tandem_model_free(m);
}

/* A trainer of every task kind at once, in metadata-only mode (no backbone run): binary,
 * multi-label and regression heads trained together, with the questions added. */
static tandem_trainer *kinds_trainer(const tandem_backbone *b, int seed) {
  char spec[512];
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"question\", \"kind\": \"binary\", \"positive\": \"yes\"},"
           " {\"name\": \"tags\", \"kind\": \"multilabel\"},"
           " {\"name\": \"length\", \"kind\": \"regression\"}],"
           " \"config\": {\"mode\": \"metadata_only\", \"seed\": %d,"
           " \"metadata\": {\"stage\": {\"epochs\": 30}}}}",
           seed);
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return NULL;
  for (size_t i = 0; i < N_QUESTIONS; i++) {
    const char *q = QUESTIONS[i].text;
    char text[256], labels[256];
    int ask = i % 2 == 0;
    snprintf(text, sizeof text, "%s%s", ask ? "" : "I know: ", q);
    if (!ask) text[strlen(text) - 2] = '\0'; /* drop " ?" */
    snprintf(labels, sizeof labels,
             "{\"question\": \"%s\", \"tags\": [%s], \"length\": %zu}", ask ? "yes" : "no",
             strcmp(QUESTIONS[i].label, "HUM") == 0 ? "\"person\"" : "\"other\", \"fact\"",
             strlen(text));
    OK(tandem_trainer_add_example(t, text, strlen(text), labels, strlen(labels)));
  }
  return t;
}

/* Every task kind at once: trained, saved as kinds-bundle, loaded, predicted. */
static void test_task_kinds(const tandem_backbone *b) {
  tandem_trainer *t = kinds_trainer(b, 1);
  if (!t) return;
  ERR(tandem_trainer_add_example(t, "x", 1,
                                 "{\"question\": \"yes\", \"tags\": \"a\", \"length\": 1}", 46),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_trainer_add_example(
          t, "x", 1, "{\"question\": \"yes\", \"tags\": [], \"length\": \"long\"}", 50),
      TANDEM_ERR_INVALID_ARGUMENT);
  if (OK(tandem_trainer_train(t, NULL, NULL))) {
    char dir[512];
    path_in_tmp(dir, sizeof dir, "kinds-bundle");
    OK(tandem_trainer_save(t, dir, strlen(dir)));
    tandem_model *m = NULL;
    if (OK(tandem_model_load(b, dir, strlen(dir), &m))) {
      const char *texts[] = {"Where is the nearest hospital ?", "A short line"};
      tandem_predictions *p = NULL;
      if (OK(tandem_model_predict(m, texts, NULL, 2, &p))) {
        EXPECT(tandem_predictions_task_count(p) == 3);
        EXPECT(tandem_predictions_task_kind(p, 0) == TANDEM_TASK_BINARY);
        EXPECT(tandem_predictions_task_kind(p, 1) == TANDEM_TASK_MULTILABEL);
        EXPECT(tandem_predictions_task_kind(p, 2) == TANDEM_TASK_REGRESSION);
        EXPECT(strcmp(tandem_predictions_class_name(p, 0, 1), "yes") == 0);
        EXPECT(tandem_predictions_class_count(p, 1) == 3);
        EXPECT(tandem_predictions_class_count(p, 2) == 0);
        EXPECT(tandem_predictions_label_count(p, 0, 2) == 0);
        float probs[2];
        if (OK(tandem_predictions_probabilities(p, 0, 0, probs, 2)))
          EXPECT(fabs(probs[0] + probs[1] - 1.0) < 1e-5);
        float v = 0;
        if (OK(tandem_predictions_value(p, 0, 2, &v))) EXPECT(isfinite(v) && v > 5 && v < 80);
        ERR(tandem_predictions_probabilities(p, 0, 2, probs, 2), TANDEM_ERR_INVALID_ARGUMENT);
        tandem_predictions_free(p);
      }
      tandem_model_free(m);
    }
  }
  tandem_trainer_free(t);
}

/* Rewrites the manifest of the bundle in `dir`: the contents of its first `n` "thresholds"
 * arrays become `arrays[0..n]` (e.g. "0.2" or "0.1, 0.3, 0.5"). */
static int set_thresholds(const char *dir, const char *const *arrays, size_t n) {
  char path[600];
  snprintf(path, sizeof path, "%s/manifest.json", dir);
  char *text = read_file(path);
  if (!text) return 0;
  const char *key = "\"thresholds\": [";
  for (size_t k = 0; k < n; k++) {
    char *at = text;
    for (size_t j = 0; j <= k && at; j++) {
      at = strstr(at, key);
      if (at && j < k) at += strlen(key);
    }
    char *end = at ? strchr(at, ']') : NULL;
    if (!end) {
      free(text);
      return 0;
    }
    size_t head = (size_t)(at - text) + strlen(key);
    size_t out_len = strlen(text) + strlen(arrays[k]) + 1;
    char *out = malloc(out_len);
    snprintf(out, out_len, "%.*s%s%s", (int)head, text, arrays[k], end);
    free(text);
    text = out;
  }
  int ok = write_file(path, text);
  free(text);
  return ok;
}

/* Checks that `e` predicts, for every row and task, the mean of `a`'s and `b`'s probabilities
 * (values for regression). */
static void expect_mean(const tandem_predictions *e, const tandem_predictions *a,
                        const tandem_predictions *b) {
  size_t rows = tandem_predictions_len(a), tasks = tandem_predictions_task_count(a);
  EXPECT(rows > 0 && tandem_predictions_len(e) == rows && tandem_predictions_len(b) == rows);
  EXPECT(tasks > 0 && tandem_predictions_task_count(e) == tasks);
  for (size_t t = 0; t < tasks; t++) {
    EXPECT(strcmp(tandem_predictions_task_name(e, t), tandem_predictions_task_name(a, t)) == 0);
    EXPECT(tandem_predictions_task_kind(e, t) == tandem_predictions_task_kind(a, t));
    size_t k = tandem_predictions_class_count(a, t);
    EXPECT(tandem_predictions_class_count(e, t) == k);
    for (size_t r = 0; r < rows; r++) {
      if (tandem_predictions_task_kind(a, t) == TANDEM_TASK_REGRESSION) {
        float ve = 0, va = 0, vb = 0;
        if (OK(tandem_predictions_value(e, r, t, &ve)) &&
            OK(tandem_predictions_value(a, r, t, &va)) &&
            OK(tandem_predictions_value(b, r, t, &vb)))
          EXPECT(fabs(ve - (va + vb) / 2) <= 1e-4 * (1 + fabs(ve)));
        continue;
      }
      float pe[8] = {0}, pa[8] = {0}, pb[8] = {0};
      if (k > 8 || !OK(tandem_predictions_probabilities(e, r, t, pe, 8)) ||
          !OK(tandem_predictions_probabilities(a, r, t, pa, 8)) ||
          !OK(tandem_predictions_probabilities(b, r, t, pb, 8)))
        continue;
      for (size_t c = 0; c < k; c++) {
        int close = fabs(pe[c] - (pa[c] + pb[c]) / 2) <= 1e-6;
        EXPECT(close);
        if (!close)
          fprintf(stderr, "  row %zu task %zu class %zu: %g, not the mean of %g and %g\n", r, t, c,
                  pe[c], pa[c], pb[c]);
      }
    }
  }
}

/* True when row `row` of task `task` predicts the class named `name`. */
static int has_label(const tandem_predictions *p, size_t row, size_t task, const char *name) {
  for (size_t i = 0; i < tandem_predictions_label_count(p, row, task); i++)
    if (strcmp(tandem_predictions_label(p, row, task, i), name) == 0) return 1;
  return 0;
}

/* Ensembles of two multiclass bundles on one backbone: built from loaded models
 * (tandem_ensemble_new) and opened from directories (tandem_ensemble_open), their probabilities
 * are the members' mean (from the single-model API) and the label its top class; an ensemble of
 * one predicts what its model does; groups combine the averaged outputs; the models may be
 * swapped or freed after; and every error path. `other_tasks` is a bundle with other tasks. */
static void test_ensemble(const tandem_backbone *b, const char *bundle_dir,
                          const char *other_tasks) {
  char second[512];
  path_in_tmp(second, sizeof second, "ensemble-second");
  tandem_trainer *t = make_trainer(b, 11);
  int trained = OK(tandem_trainer_train(t, NULL, NULL)) &&
                OK(tandem_trainer_save(t, second, strlen(second)));
  tandem_trainer_free(t);
  if (!trained) return;
  tandem_model *a = NULL, *m2 = NULL, *other = NULL;
  if (!OK(tandem_model_load(b, bundle_dir, strlen(bundle_dir), &a)) ||
      !OK(tandem_model_load(b, second, strlen(second), &m2)) ||
      !OK(tandem_model_load(b, other_tasks, strlen(other_tasks), &other))) {
    tandem_model_free(a);
    tandem_model_free(m2);
    tandem_model_free(other);
    return;
  }

  /* Errors of tandem_ensemble_new. */
  tandem_ensemble *e = NULL;
  const tandem_model *pair[] = {a, m2};
  const tandem_model *with_null[] = {a, NULL};
  const tandem_model *mixed[] = {a, other};
  ERR(tandem_ensemble_new(NULL, 2, &e), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_new(with_null, 2, &e), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_new(pair, 2, NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_new(pair, 0, &e), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_ensemble_new(NULL, 0, &e), TANDEM_ERR_INVALID_ARGUMENT);
  tandem_error *err = tandem_ensemble_new(mixed, 2, &e);
  EXPECT(err != NULL && tandem_error_code(err) == TANDEM_ERR_INVALID_ARGUMENT);
  /* The message names the member and both sets of tasks. */
  EXPECT(err != NULL && strstr(tandem_error_message(err), "member 2") != NULL &&
         strstr(tandem_error_message(err), "question") != NULL &&
         strstr(tandem_error_message(err), "label") != NULL);
  tandem_error_free(err);
  EXPECT(e == NULL);
  EXPECT(tandem_ensemble_member_count(NULL) == 0);
  tandem_ensemble_free(NULL);

  /* Errors of tandem_ensemble_open. */
  char missing[512];
  path_in_tmp(missing, sizeof missing, "no-such-ensemble-member");
  const char *dirs[] = {bundle_dir, second};
  const char *bad_utf8[] = {bundle_dir, "\xff"};
  const char *with_missing[] = {bundle_dir, missing};
  const char *with_empty[] = {bundle_dir, ""};
  const char *with_null_dir[] = {bundle_dir, NULL};
  const char *mixed_dirs[] = {bundle_dir, other_tasks};
  ERR(tandem_ensemble_open(NULL, NULL, 2, NULL, &e), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_open(with_null_dir, NULL, 2, NULL, &e), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_open(dirs, NULL, 2, NULL, NULL), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_ensemble_open(dirs, NULL, 0, NULL, &e), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_ensemble_open(bad_utf8, NULL, 2, NULL, &e), TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_ensemble_open(with_empty, NULL, 2, NULL, &e), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_ensemble_open(with_missing, NULL, 2, NULL, &e), TANDEM_ERR_NOT_FOUND);
  err = tandem_ensemble_open(mixed_dirs, NULL, 2, NULL, &e);
  EXPECT(err != NULL && tandem_error_code(err) == TANDEM_ERR_INVALID_ARGUMENT);
  EXPECT(err != NULL && strstr(tandem_error_message(err), "member 2") != NULL &&
         strstr(tandem_error_message(err), "question") != NULL);
  tandem_error_free(err);
  EXPECT(e == NULL);

  const char *texts[] = {"Who wrote Romeo and Juliet ?", "Where is the Eiffel Tower ?",
                         "How many moons does Mars have ?", "Who invented the light bulb ?"};
  const char *groups[] = {"x", "y", "x", "z"};
  tandem_predictions *pa = NULL, *pb = NULL, *pe = NULL, *po = NULL, *p1 = NULL, *pg = NULL;
  tandem_ensemble *one = NULL, *opened = NULL;
  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_threads(o, 2));
  /* Lengths given for one call, NUL-terminated for the other. */
  size_t dir_lens[] = {strlen(bundle_dir), strlen(second)};
  if (OK(tandem_model_predict(a, texts, NULL, 4, &pa)) &&
      OK(tandem_model_predict(m2, texts, NULL, 4, &pb)) && OK(tandem_ensemble_new(pair, 2, &e)) &&
      OK(tandem_ensemble_new(pair, 1, &one)) &&
      OK(tandem_ensemble_open(dirs, dir_lens, 2, o, &opened))) {
    EXPECT(tandem_ensemble_member_count(e) == 2);
    EXPECT(tandem_ensemble_member_count(one) == 1);
    EXPECT(tandem_ensemble_member_count(opened) == 2);

    /* Prediction errors. */
    const char *bad_texts[] = {"ok", "\xff"};
    ERR(tandem_ensemble_predict(NULL, texts, NULL, 4, &pe), TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_ensemble_predict(e, texts, NULL, 4, NULL), TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_ensemble_predict(e, NULL, NULL, 4, &pe), TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_ensemble_predict(e, bad_texts, NULL, 2, &pe), TANDEM_ERR_INVALID_UTF8);
    ERR(tandem_ensemble_predict_groups(NULL, texts, NULL, groups, NULL, 4, 0, &pg),
        TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_ensemble_predict_groups(e, texts, NULL, NULL, NULL, 4, 0, &pg),
        TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_ensemble_predict_groups(e, texts, NULL, groups, NULL, 4, 99, &pg),
        TANDEM_ERR_INVALID_ARGUMENT);
    ERR(tandem_ensemble_predict_groups(e, texts, NULL, bad_texts, NULL, 2, 0, &pg),
        TANDEM_ERR_INVALID_UTF8);
    ERR(tandem_ensemble_predict_groups(e, texts, NULL, groups, NULL, 4, 0, NULL),
        TANDEM_ERR_NULL_ARGUMENT);
    EXPECT(pe == NULL && pg == NULL);
    if (OK(tandem_ensemble_predict(e, NULL, NULL, 0, &pe))) {
      EXPECT(tandem_predictions_len(pe) == 0);
      tandem_predictions_free(pe);
      pe = NULL;
    }

    if (OK(tandem_ensemble_predict(e, texts, NULL, 4, &pe))) {
      expect_mean(pe, pa, pb);
      EXPECT(tandem_predictions_heads_version(pe) == 0);
      /* The label is the top class of the mean. */
      size_t k = tandem_predictions_class_count(pe, 0);
      EXPECT(k == 3);
      for (size_t r = 0; r < 4 && k == 3; r++) {
        float p[3] = {0};
        if (!OK(tandem_predictions_probabilities(pe, r, 0, p, 3))) continue;
        size_t best = 0;
        for (size_t c = 1; c < k; c++)
          if (p[c] > p[best]) best = c;
        EXPECT(tandem_predictions_label_count(pe, r, 0) == 1);
        EXPECT(strcmp(tandem_predictions_label(pe, r, 0, 0),
                      tandem_predictions_class_name(pe, 0, best)) == 0);
      }
      char *json = NULL;
      if (OK(tandem_predictions_json(pe, &json))) {
        EXPECT(strstr(json, "\"task\":\"label\"") != NULL);
        tandem_string_free(json);
      }
    }
    /* The ensemble opened from directories predicts the same. */
    if (OK(tandem_ensemble_predict(opened, texts, NULL, 4, &po))) expect_mean(po, pa, pb);
    /* An ensemble of one is its model (the mean of the model and itself). */
    if (OK(tandem_ensemble_predict(one, texts, NULL, 4, &p1))) {
      expect_mean(p1, pa, pa);
      for (size_t r = 0; r < 4; r++)
        EXPECT(strcmp(tandem_predictions_label(p1, r, 0, 0),
                      tandem_predictions_label(pa, r, 0, 0)) == 0);
    }
    /* Groups, sorted by key, average the ensemble's rows (x: rows 0 and 2). */
    if (pe && OK(tandem_ensemble_predict_groups(e, texts, NULL, groups, NULL, 4,
                                                TANDEM_AGGREGATE_MEAN, &pg))) {
      EXPECT(tandem_predictions_len(pg) == 3);
      EXPECT(strcmp(tandem_predictions_group(pg, 0), "x") == 0);
      EXPECT(strcmp(tandem_predictions_group(pg, 1), "y") == 0);
      EXPECT(strcmp(tandem_predictions_group(pg, 2), "z") == 0);
      float gx[3], gy[3], r0[3], r1[3], r2[3];
      if (OK(tandem_predictions_probabilities(pg, 0, 0, gx, 3)) &&
          OK(tandem_predictions_probabilities(pg, 1, 0, gy, 3)) &&
          OK(tandem_predictions_probabilities(pe, 0, 0, r0, 3)) &&
          OK(tandem_predictions_probabilities(pe, 1, 0, r1, 3)) &&
          OK(tandem_predictions_probabilities(pe, 2, 0, r2, 3)))
        for (size_t c = 0; c < 3; c++) {
          EXPECT(fabs(gx[c] - (r0[c] + r2[c]) / 2) <= 1e-6);
          EXPECT(fabs(gy[c] - r1[c]) <= 1e-6);
        }
      EXPECT(has_label(pg, 2, 0, tandem_predictions_label(pe, 3, 0, 0)));
    }
    /* The ensemble took the models' heads: a later swap into a model, and freeing both, change
     * nothing it predicts. */
    OK(tandem_model_swap_bundle(a, second, strlen(second), NULL));
    tandem_model_free(a);
    tandem_model_free(m2);
    a = m2 = NULL;
    tandem_predictions *again = NULL;
    if (pe && OK(tandem_ensemble_predict(e, texts, NULL, 4, &again))) {
      expect_mean(again, pe, pe);
      tandem_predictions_free(again);
    }
  }
  tandem_options_free(o);
  tandem_predictions_free(pa);
  tandem_predictions_free(pb);
  tandem_predictions_free(pe);
  tandem_predictions_free(po);
  tandem_predictions_free(p1);
  tandem_predictions_free(pg);
  tandem_ensemble_free(e);
  tandem_ensemble_free(one);
  tandem_ensemble_free(opened);
  tandem_model_free(a);
  tandem_model_free(m2);
  tandem_model_free(other);
}

/* An ensemble of binary, multi-label and regression heads (two metadata-only bundles, with
 * thresholds written into their manifests) decides each label on the members' mean
 * probability and the mean of their thresholds; values are the mean value. */
static void test_ensemble_thresholds(const tandem_backbone *b, const char *first) {
  char second[512];
  path_in_tmp(second, sizeof second, "kinds-bundle-2");
  tandem_trainer *t = kinds_trainer(b, 2);
  int ok = t && OK(tandem_trainer_train(t, NULL, NULL)) &&
           OK(tandem_trainer_save(t, second, strlen(second)));
  tandem_trainer_free(t);
  if (!ok) return;
  /* Binary 0.2 and 0.7 (mean 0.45); multi-label mean 0.3, 0.5, 0.7. */
  const char *th_a[] = {"0.2", "0.1, 0.3, 0.5"};
  const char *th_b[] = {"0.7", "0.5, 0.7, 0.9"};
  const float mean_binary = 0.45f, mean_multi[] = {0.3f, 0.5f, 0.7f};
  EXPECT(set_thresholds(first, th_a, 2));
  EXPECT(set_thresholds(second, th_b, 2));
  tandem_model *a = NULL, *m2 = NULL;
  tandem_ensemble *e = NULL;
  tandem_predictions *pa = NULL, *pb = NULL, *pe = NULL;
  const char *texts[] = {"Where is the nearest hospital ?", "A short line",
                         "Who painted the ceiling of the Sistine Chapel ?",
                         "I know: the Nile is long", "How many", "ok ?",
                         "Which is the tallest building in the world ?", "Paris"};
  const size_t n = sizeof texts / sizeof texts[0];
  const char *dirs[] = {first, second};
  if (OK(tandem_model_load(b, first, strlen(first), &a)) &&
      OK(tandem_model_load(b, second, strlen(second), &m2)) &&
      OK(tandem_ensemble_open(dirs, NULL, 2, NULL, &e)) &&
      OK(tandem_model_predict(a, texts, NULL, n, &pa)) &&
      OK(tandem_model_predict(m2, texts, NULL, n, &pb)) &&
      OK(tandem_ensemble_predict(e, texts, NULL, n, &pe))) {
    EXPECT(tandem_predictions_task_count(pe) == 3);
    expect_mean(pe, pa, pb);
    const char *tags[3];
    for (size_t c = 0; c < 3 && tandem_predictions_class_count(pe, 1) == 3; c++)
      tags[c] = tandem_predictions_class_name(pe, 1, c);
    size_t decided_by_mean = 0;
    for (size_t r = 0; r < n && tandem_predictions_class_count(pe, 1) == 3; r++) {
      float p[3] = {0}, q[2] = {0};
      /* Member a decides with its own threshold (the manifest edit took). */
      if (OK(tandem_predictions_probabilities(pa, r, 0, q, 2)) && fabs(q[1] - 0.2f) > 1e-5)
        EXPECT(has_label(pa, r, 0, "yes") == (q[1] >= 0.2f));
      if (OK(tandem_predictions_probabilities(pe, r, 0, q, 2)) &&
          fabs(q[1] - mean_binary) > 1e-5) {
        EXPECT(has_label(pe, r, 0, "yes") == (q[1] >= mean_binary));
        EXPECT(has_label(pe, r, 0, "no") == (q[1] < mean_binary));
        /* Between the members' thresholds the mean threshold decides, not either member's. */
        if (q[1] > 0.2f && q[1] < 0.7f) decided_by_mean++;
      }
      if (OK(tandem_predictions_probabilities(pe, r, 1, p, 3)))
        for (size_t c = 0; c < 3; c++)
          if (fabs(p[c] - mean_multi[c]) > 1e-5)
            EXPECT(has_label(pe, r, 1, tags[c]) == (p[c] >= mean_multi[c]));
    }
    if (decided_by_mean == 0)
      fprintf(stderr, "  (no binary probability fell between 0.2 and 0.7)\n");
  }
  tandem_predictions_free(pa);
  tandem_predictions_free(pb);
  tandem_predictions_free(pe);
  tandem_ensemble_free(e);
  tandem_model_free(a);
  tandem_model_free(m2);
}

/* Adds every question as a training example labelled with its type. */
static void add_questions(tandem_trainer *t) {
  for (size_t i = 0; i < N_QUESTIONS; i++) {
    char labels[64];
    label_json(labels, sizeof labels, QUESTIONS[i].label);
    OK(tandem_trainer_add_example(t, QUESTIONS[i].text, strlen(QUESTIONS[i].text), labels,
                                  strlen(labels)));
  }
}

/* n_train of a trained trainer's report, or -1. */
static long report_n_train(const tandem_trainer *t) {
  char *json = NULL;
  long n = -1;
  if (OK(tandem_trainer_report_json(t, &json))) {
    const char *at = strstr(json, "\"n_train\":");
    if (at) n = strtol(at + strlen("\"n_train\":"), NULL, 10);
    tandem_string_free(json);
  }
  return n;
}

/* Distillation from C: the teacher named in the spec's config labels texts added without
 * labels, which join the training split; without a teacher they are refused at training. */
static void test_distillation(const tandem_backbone *b, const char *teacher_dir) {
  static const char *UNLABELLED[] = {
      "Who painted the ceiling of the Sistine Chapel ?",
      "How far is the Moon from the Earth ?",
      "What is the capital city of Australia ?",
      "When did the Berlin Wall fall ?",
      "Why do cats purr ?",
  };
  const size_t n_unlabelled = sizeof UNLABELLED / sizeof UNLABELLED[0];
  char spec[1024];
  const char *base = "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
                     " \"config\": {\"mode\": \"embedding_only\", \"seed\": 4,"
                     " \"head\": {\"stage\": {\"epochs\": 4}}";
  snprintf(spec, sizeof spec, "%s, \"distill\": {\"teachers\": [\"%s\"], \"weight\": 0.7}}}",
           base, teacher_dir);
  tandem_trainer *t = NULL, *plain = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return;
  add_questions(t);
  ERR(tandem_trainer_add_unlabelled(NULL, "x", 1), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_add_unlabelled(t, NULL, 1), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_trainer_add_unlabelled(t, "\xff", 1), TANDEM_ERR_INVALID_UTF8);
  for (size_t i = 0; i < n_unlabelled; i++)
    OK(tandem_trainer_add_unlabelled(t, UNLABELLED[i], strlen(UNLABELLED[i])));
  EXPECT(tandem_trainer_unlabelled_count(t) == n_unlabelled);
  EXPECT(tandem_trainer_unlabelled_count(NULL) == 0);
  snprintf(spec, sizeof spec, "%s}}", base);
  if (OK(tandem_trainer_new(b, spec, strlen(spec), &plain))) {
    add_questions(plain);
    if (OK(tandem_trainer_train(t, NULL, NULL)) && OK(tandem_trainer_train(plain, NULL, NULL))) {
      long with = report_n_train(t), without = report_n_train(plain);
      EXPECT(without > 0 && with == without + (long)n_unlabelled);
    }
    /* Unlabelled texts without a teacher: refused when training. */
    OK(tandem_trainer_add_unlabelled(plain, UNLABELLED[0], strlen(UNLABELLED[0])));
    tandem_error *e = tandem_trainer_train(plain, NULL, NULL);
    EXPECT(e != NULL && tandem_error_code(e) == TANDEM_ERR_INVALID_ARGUMENT &&
           strstr(tandem_error_message(e), "teacher") != NULL);
    tandem_error_free(e);
  }
  tandem_trainer_free(plain);
  tandem_trainer_free(t);
}

/* 1 when the two files hold the same bytes. */
static int same_bytes(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int same = fa != NULL && fb != NULL;
  while (same) {
    int ca = fgetc(fa), cb = fgetc(fb);
    if (ca != cb) same = 0;
    if (ca == EOF || cb == EOF) break;
  }
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return same;
}

/* Pre-training a metadata encoder on unlabelled texts, as `tandem pretrain` does: one seed,
 * one encoder; serving refuses the encoder bundle, a two-stage trainer starts from it; bad
 * targets, configs and paths are named errors, and a cancelled run writes nothing. */
static void test_pretrain(const tandem_backbone *b) {
  const char *texts[N_QUESTIONS];
  for (size_t i = 0; i < N_QUESTIONS; i++) texts[i] = QUESTIONS[i].text;
  const char *config = "{\"seed\": 3, \"metadata\": {\"stage1_targets\": [\"masked_features\","
                       " \"length\"], \"stage\": {\"epochs\": 3}}}";
  char enc[512], again[512], wa[600], wb[600], bad[512];
  path_in_tmp(enc, sizeof enc, "encoder");
  path_in_tmp(again, sizeof again, "encoder-again");
  path_in_tmp(bad, sizeof bad, "encoder-bad");
  progress_state seen = {0, 0, 0};
  char *report = NULL;
  if (!OK(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, config, strlen(config), enc,
                                  strlen(enc), on_progress, &seen, &report)))
    return;
  EXPECT(seen.calls == 3 && seen.saw_epoch);
  EXPECT(report != NULL && strstr(report, "\"best_epoch\":") != NULL &&
         strstr(report, "\"masked_features\":") != NULL && strstr(report, "\"length\":") != NULL);
  tandem_string_free(report);
  /* TOML works as well, and the same seed gives the same weights; no report asked for. */
  const char *toml = "seed = 3\n[metadata]\nstage1_targets = [\"masked_features\", \"length\"]\n"
                     "[metadata.stage]\nepochs = 3\n";
  OK(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, toml, strlen(toml), again, strlen(again),
                             NULL, NULL, NULL));
  snprintf(wa, sizeof wa, "%s/weights.safetensors", enc);
  snprintf(wb, sizeof wb, "%s/weights.safetensors", again);
  EXPECT(same_bytes(wa, wb));

  /* An encoder predicts nothing: loading it as a model says what it is for. */
  tandem_model *m = NULL;
  tandem_error *e = tandem_model_load(b, enc, strlen(enc), &m);
  EXPECT(e != NULL && tandem_error_code(e) == TANDEM_ERR_INVALID_ARGUMENT &&
         strstr(tandem_error_message(e), "init_encoder") != NULL);
  tandem_error_free(e);
  tandem_model_free(m);
  char spec[1024];
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
           " \"config\": {\"mode\": \"two_stage\", \"seed\": 4, \"head\": {\"stage\": {\"epochs\":"
           " 3}}, \"metadata\": {\"init_encoder\": \"%s\", \"stage\": {\"epochs\": 2}}}}",
           enc);
  tandem_trainer *t = NULL;
  if (OK(tandem_trainer_new(b, spec, strlen(spec), &t))) {
    add_questions(t);
    OK(tandem_trainer_train(t, NULL, NULL));
    tandem_trainer_free(t);
  }

  /* Errors: each named, nothing written. */
  ERR(tandem_pretrain_encoder(NULL, NULL, 3, NULL, 0, bad, strlen(bad), NULL, NULL, NULL),
      TANDEM_ERR_NULL_ARGUMENT);
  const char *invalid[] = {"fine", "\xff"};
  ERR(tandem_pretrain_encoder(invalid, NULL, 2, NULL, 0, bad, strlen(bad), NULL, NULL, NULL),
      TANDEM_ERR_INVALID_UTF8);
  ERR(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, NULL, 0, NULL, 4, NULL, NULL, NULL),
      TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, NULL, 0, "", 0, NULL, NULL, NULL),
      TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_pretrain_encoder(texts, NULL, 1, NULL, 0, bad, strlen(bad), NULL, NULL, NULL),
      TANDEM_ERR_INVALID_ARGUMENT);
  const char *bad_configs[] = {
      "{\"metadata\": {\"stage1_targets\": [\"labels\"]}}",
      "{\"metadata\": {\"stage1_targets\": [\"lenght\"]}}",
      "{\"seed\": \"x\"}",
      "{not json",
  };
  for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++)
    ERR(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, bad_configs[i], strlen(bad_configs[i]),
                                bad, strlen(bad), NULL, NULL, NULL),
        TANDEM_ERR_INVALID_ARGUMENT);
  progress_state cancel = {0, 1, 0};
  ERR(tandem_pretrain_encoder(texts, NULL, N_QUESTIONS, config, strlen(config), bad, strlen(bad),
                              on_progress, &cancel, NULL),
      TANDEM_ERR_CANCELLED);
  struct stat st;
  EXPECT(stat(bad, &st) != 0);
}

/* Checkpoints named in the trainer spec: the best epochs by the configured monitor and every
 * second epoch are saved as bundles while training runs; the best one predicts exactly as the
 * trained model does. */
static void test_checkpoints(const tandem_backbone *b) {
  char dir[512], spec[1200], index_path[600], best_dir[700], final_dir[512];
  path_in_tmp(dir, sizeof dir, "checkpoints");
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
           " \"checkpoints\": {\"dir\": \"%s\", \"keep_top\": 1, \"every\": 2},"
           " \"config\": {\"mode\": \"embedding_only\", \"seed\": 3,"
           " \"head\": {\"stage\": {\"epochs\": 4, \"patience\": 0, \"monitor\": \"accuracy\"}}}}",
           dir);
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return;
  add_questions(t);
  if (OK(tandem_trainer_train(t, NULL, NULL))) {
    snprintf(index_path, sizeof index_path, "%s/checkpoints.json", dir);
    char *index = read_file(index_path);
    EXPECT(index != NULL);
    if (index) {
      EXPECT(strstr(index, "accuracy of label (max)") != NULL);
      EXPECT(strstr(index, "\"bundle\": \"heads-epoch-002\"") != NULL);
      EXPECT(strstr(index, "\"bundle\": \"heads-epoch-004\"") != NULL);
      const char *key = "\"best\": \"";
      const char *at = strstr(index, key);
      EXPECT(at != NULL);
      if (at) {
        at += strlen(key);
        const char *end = strchr(at, '"');
        snprintf(best_dir, sizeof best_dir, "%s/%.*s", dir, (int)(end - at), at);
        path_in_tmp(final_dir, sizeof final_dir, "checkpoints-final");
        OK(tandem_trainer_save(t, final_dir, strlen(final_dir)));
        tandem_model *best = NULL, *final = NULL;
        if (OK(tandem_model_load(b, best_dir, strlen(best_dir), &best)) &&
            OK(tandem_model_load(b, final_dir, strlen(final_dir), &final))) {
          const char *texts[] = {"Who wrote Hamlet ?", "How far is the moon ?"};
          tandem_predictions *p = NULL, *q = NULL;
          if (OK(tandem_model_predict(best, texts, NULL, 2, &p)) &&
              OK(tandem_model_predict(final, texts, NULL, 2, &q))) {
            size_t k = tandem_predictions_class_count(p, 0);
            float a[16], c[16];
            for (size_t i = 0; i < 2 && k <= 16; i++) {
              if (OK(tandem_predictions_probabilities(p, i, 0, a, k)) &&
                  OK(tandem_predictions_probabilities(q, i, 0, c, k)))
                EXPECT(memcmp(a, c, k * sizeof(float)) == 0);
            }
          }
          tandem_predictions_free(p);
          tandem_predictions_free(q);
        }
        tandem_model_free(best);
        tandem_model_free(final);
      }
      free(index);
    }
    /* The directory now holds this run's checkpoints: another run into it is refused. */
    ERR(tandem_trainer_train(t, NULL, NULL), TANDEM_ERR_INVALID_ARGUMENT);
  }
  tandem_trainer_free(t);
}

/* Monte-Carlo dropout: the mean of seeded passes with dropout on, and each probability's
 * spread; the same seed gives the same numbers, and plain predictions carry no spread. */
static void test_sampled(const tandem_backbone *b, const char *bundle_dir) {
  tandem_model *m = NULL;
  if (!OK(tandem_model_load(b, bundle_dir, strlen(bundle_dir), &m))) return;
  const char *texts[] = {"Who wrote Romeo and Juliet ?", "How many days are in a leap year ?"};
  tandem_predictions *p = NULL, *q = NULL, *plain = NULL;
  ERR(tandem_model_predict_sampled(NULL, texts, NULL, 2, 8, 3, &p), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_model_predict_sampled(m, texts, NULL, 2, 0, 3, &p), TANDEM_ERR_INVALID_ARGUMENT);
  if (OK(tandem_model_predict_sampled(m, texts, NULL, 2, 8, 3, &p)) &&
      OK(tandem_model_predict_sampled(m, texts, NULL, 2, 8, 3, &q)) &&
      OK(tandem_model_predict(m, texts, NULL, 2, &plain))) {
    size_t k = tandem_predictions_class_count(p, 0);
    float probs[16], again[16], sd[16];
    int spread = 0;
    for (size_t i = 0; i < 2 && k <= 16; i++) {
      if (OK(tandem_predictions_probabilities(p, i, 0, probs, k)) &&
          OK(tandem_predictions_probabilities(q, i, 0, again, k)) &&
          OK(tandem_predictions_spread(p, i, 0, sd, k))) {
        float sum = 0;
        for (size_t j = 0; j < k; j++) {
          sum += probs[j];
          EXPECT(sd[j] >= 0 && sd[j] < 0.5f);
          if (sd[j] > 0) spread = 1;
        }
        EXPECT(fabs(sum - 1.0) < 1e-4);
        EXPECT(memcmp(probs, again, k * sizeof(float)) == 0);
      }
    }
    EXPECT(spread);
    ERR(tandem_predictions_spread(p, 0, 0, sd, 1), TANDEM_ERR_BUFFER_TOO_SMALL);
    ERR(tandem_predictions_spread(plain, 0, 0, sd, 16), TANDEM_ERR_INVALID_ARGUMENT);
    ERR(tandem_predictions_spread(p, 5, 0, sd, 16), TANDEM_ERR_INVALID_ARGUMENT);
    char *json = NULL;
    if (OK(tandem_predictions_json(p, &json))) {
      EXPECT(strstr(json, "\"spread\"") != NULL);
      tandem_string_free(json);
    }
  }
  tandem_predictions_free(p);
  tandem_predictions_free(q);
  tandem_predictions_free(plain);
  tandem_model_free(m);
}

/* The recipe chosen by validation: "recipe": "auto" with a zero budget measures the first
 * candidate (the linear recipe) only, and the report says what it chose and why. */
static void test_auto_recipe(const tandem_backbone *b) {
  const char *spec =
      "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
      " \"embedding_cache\": false, \"recipe\": \"auto\", \"budget_seconds\": 0,"
      " \"config\": {\"seed\": 4}}";
  const char *bad = "{\"tasks\": [{\"name\": \"y\", \"kind\": \"binary\"}],"
                    " \"budget_seconds\": 5}";
  tandem_trainer *t = NULL;
  ERR(tandem_trainer_new(b, bad, strlen(bad), &t), TANDEM_ERR_INVALID_ARGUMENT);
  EXPECT(t == NULL);
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return;
  add_questions(t);
  if (OK(tandem_trainer_train(t, NULL, NULL))) {
    char *json = NULL;
    if (OK(tandem_trainer_report_json(t, &json))) {
      EXPECT(strstr(json, "\"recipe\":\"linear\"") != NULL);
      EXPECT(strstr(json, "\"selection\"") != NULL);
      EXPECT(strstr(json, "chose linear") != NULL);
      EXPECT(strstr(json, "not measured") != NULL);
      tandem_string_free(json);
    }
  }
  tandem_trainer_free(t);
}

/* Sequence heads: chosen in the spec, trained on the backbone's per-token vectors, stored with
 * their architecture, and served by a loaded model that embeds tokens itself. */
static void test_sequence_head(const tandem_backbone *b) {
  const char *spec =
      "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
      " \"embedding_cache\": false,"
      " \"config\": {\"mode\": \"embedding_only\", \"seed\": 2,"
      " \"head\": {\"kind\": \"sequence\", \"hidden\": [16],"
      " \"sequence\": {\"attention_queries\": 2, \"conv_kernels\": [1, 3],"
      " \"conv_channels\": 8}, \"stage\": {\"epochs\": 4}}}}";
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return;
  add_questions(t);
  const char *bad = "{\"tasks\": [{\"name\": \"y\", \"kind\": \"binary\"}],"
                    " \"config\": {\"head\": {\"kind\": \"sequence\","
                    " \"sequence\": {\"conv_kernels\": [2]}}}}";
  tandem_trainer *t2 = NULL;
  ERR(tandem_trainer_new(b, bad, strlen(bad), &t2), TANDEM_ERR_INVALID_ARGUMENT);
  EXPECT(t2 == NULL);
  if (OK(tandem_trainer_train(t, NULL, NULL))) {
    char dir[512];
    path_in_tmp(dir, sizeof dir, "sequence-bundle");
    OK(tandem_trainer_save(t, dir, strlen(dir)));
    tandem_model *m = NULL;
    if (OK(tandem_model_load(b, dir, strlen(dir), &m))) {
      char *json = NULL;
      if (OK(tandem_model_manifest_json(m, &json))) {
        EXPECT(strstr(json, "\"sequence\"") != NULL);
        EXPECT(strstr(json, "\"conv_channels\": 8") != NULL ||
               strstr(json, "\"conv_channels\":8") != NULL);
        tandem_string_free(json);
      }
      const char *texts[] = {"Who wrote Hamlet ?", "", "How far is the Moon ?"};
      tandem_predictions *p = NULL;
      if (OK(tandem_model_predict(m, texts, NULL, 3, &p))) {
        EXPECT(tandem_predictions_len(p) == 3);
        float probs[6];
        size_t k = tandem_predictions_class_count(p, 0);
        EXPECT(k >= 2 && k <= 6);
        if (OK(tandem_predictions_probabilities(p, 1, 0, probs, k))) {
          float sum = 0;
          for (size_t j = 0; j < k; j++) sum += probs[j];
          EXPECT(fabs(sum - 1.0) < 1e-4);
        }
        tandem_predictions_free(p);
      }
      tandem_model_free(m);
    }
  }
  tandem_trainer_free(t);
}

/* Fine-tuning the backbone's top layer through the trainer spec: the bundle carries the
 * fine-tuned backbone, a model loaded from it predicts, and its heads cannot be swapped into a
 * model on the stock backbone. */
static void test_finetune(const tandem_backbone *b, const tandem_model *stock) {
  const char *spec =
      "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
      " \"embedding_cache\": false,"
      " \"config\": {\"mode\": \"embedding_only\", \"seed\": 4,"
      " \"head\": {\"hidden\": [16], \"stage\": {\"epochs\": 3}},"
      " \"backbone\": {\"trainable_layers\": 1, \"lr\": 0.001}}}";
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return;
  const char *bad = "{\"tasks\": [{\"name\": \"y\", \"kind\": \"binary\"}],"
                    " \"config\": {\"backbone\": {\"trainable_layers\": 99}}}";
  tandem_trainer *t2 = NULL;
  ERR(tandem_trainer_new(b, bad, strlen(bad), &t2), TANDEM_ERR_INVALID_ARGUMENT);
  EXPECT(t2 == NULL);
  add_questions(t);
  if (OK(tandem_trainer_train(t, NULL, NULL))) {
    if (stock) ERR(tandem_model_swap_heads(stock, t, NULL), TANDEM_ERR_BACKBONE_MISMATCH);
    char dir[512];
    path_in_tmp(dir, sizeof dir, "finetuned-bundle");
    OK(tandem_trainer_save(t, dir, strlen(dir)));
    char graph[600];
    snprintf(graph, sizeof graph, "%s/backbone/model.onnx", dir);
    struct stat st;
    EXPECT(stat(graph, &st) == 0 && st.st_size > 1000);
    tandem_model *m = NULL;
    if (OK(tandem_model_load(b, dir, strlen(dir), &m))) {
      char *json = NULL;
      if (OK(tandem_model_manifest_json(m, &json))) {
        EXPECT(strstr(json, "fine-tuned") != NULL);
        tandem_string_free(json);
      }
      const char *texts[] = {"Who wrote Hamlet ?", "How far is the Moon ?"};
      tandem_predictions *p = NULL;
      if (OK(tandem_model_predict(m, texts, NULL, 2, &p))) {
        EXPECT(tandem_predictions_len(p) == 2);
        size_t k = tandem_predictions_class_count(p, 0);
        float probs[8] = {0};
        if (k >= 2 && k <= 8 && OK(tandem_predictions_probabilities(p, 0, 0, probs, k))) {
          float sum = 0;
          for (size_t j = 0; j < k; j++) sum += probs[j];
          EXPECT(fabs(sum - 1.0) < 1e-4);
        }
        tandem_predictions_free(p);
      }
      tandem_model_free(m);
    }
  }
  tandem_trainer_free(t);
}

/* Writes `size` bytes to `path`, last modified `age` seconds ago. */
static int write_aged(const char *path, size_t size, time_t age) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  for (size_t i = 0; i < size; i++) fputc('x', f);
  if (fclose(f) != 0) return 0;
  struct timespec times[2];
  clock_gettime(CLOCK_REALTIME, &times[0]);
  times[0].tv_sec -= age;
  times[1] = times[0];
  return utimensat(AT_FDCWD, path, times, 0) == 0;
}

/* The heads served through ONNX Runtime agree with the native heads, and the model exports as
 * one ONNX graph (with the tokenizer and labels beside it). */
static void test_onnx(const char *bundle_dir) {
  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_threads(o, 2));
  ERR(tandem_options_set_heads(o, "tflite", 6), TANDEM_ERR_INVALID_ARGUMENT);
  ERR(tandem_options_set_heads(NULL, "onnx", 4), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_options_set_heads(o, NULL, 4), TANDEM_ERR_NULL_ARGUMENT);
  const char *dir = getenv("TANDEM_TEST_BACKBONE");
  if (dir && *dir) OK(tandem_options_set_backbone_dir(o, dir, strlen(dir)));
  tandem_backbone *native_bb = NULL, *onnx_bb = NULL;
  OK(tandem_backbone_load(o, &native_bb));
  OK(tandem_options_set_heads(o, "onnx", 4));
  OK(tandem_backbone_load(o, &onnx_bb));
  tandem_options_free(o);
  tandem_model *native = NULL, *onnx = NULL;
  if (native_bb && onnx_bb && OK(tandem_model_load(native_bb, bundle_dir, strlen(bundle_dir), &native)) &&
      OK(tandem_model_load(onnx_bb, bundle_dir, strlen(bundle_dir), &onnx))) {
    const char *texts[] = {"Who wrote Romeo and Juliet ?", "How many days are in a leap year ?",
                           "Where is the Eiffel Tower ?"};
    tandem_predictions *a = NULL, *b = NULL;
    if (OK(tandem_model_predict(native, texts, NULL, 3, &a)) &&
        OK(tandem_model_predict(onnx, texts, NULL, 3, &b))) {
      for (size_t i = 0; i < 3; i++) {
        float pa[3] = {0}, pb[3] = {0};
        OK(tandem_predictions_probabilities(a, i, 0, pa, 3));
        OK(tandem_predictions_probabilities(b, i, 0, pb, 3));
        for (size_t k = 0; k < 3; k++) EXPECT(fabs(pa[k] - pb[k]) <= 1e-5);
      }
    }
    tandem_predictions_free(a);
    tandem_predictions_free(b);

    char out[512], labels[512], missing[512];
    path_in_tmp(out, sizeof out, "export.onnx");
    path_in_tmp(labels, sizeof labels, "export.tandem.json");
    path_in_tmp(missing, sizeof missing, "no-such-dir/export.onnx");
    ERR(tandem_model_export_onnx(NULL, out, strlen(out), "fp32", 4), TANDEM_ERR_NULL_ARGUMENT);
    ERR(tandem_model_export_onnx(native, out, strlen(out), "fp64", 4), TANDEM_ERR_INVALID_ARGUMENT);
    ERR(tandem_model_export_onnx(native, missing, strlen(missing), "fp32", 4), TANDEM_ERR_NOT_FOUND);
    OK(tandem_model_export_onnx(native, out, strlen(out), "fp32", 4));
    struct stat st;
    EXPECT(stat(out, &st) == 0 && st.st_size > 1000);
    EXPECT(stat(labels, &st) == 0 && st.st_size > 10);
  }
  tandem_model_free(native);
  tandem_model_free(onnx);
  tandem_backbone_free(native_bb);
  tandem_backbone_free(onnx_bb);
}

static void test_cache_prune(void) {
  char root[512], graph[600], pooled[700], tokens[700], missing[600];
  path_in_tmp(root, sizeof root, "embcache");
  snprintf(graph, sizeof graph, "%s/0123456789abcdef", root);
  snprintf(pooled, sizeof pooled, "%s/pooled.v2", graph);
  snprintf(tokens, sizeof tokens, "%s/tokens.v3", graph);
  snprintf(missing, sizeof missing, "%s/none", root);
  EXPECT(mkdir(root, 0700) == 0 && mkdir(graph, 0700) == 0);
  EXPECT(write_aged(tokens, 3000, 3 * 86400));
  EXPECT(write_aged(pooled, 1000, 3600));
  uint64_t freed = 7;
  /* No cap, no age limit: nothing goes. A missing root holds nothing. */
  OK(tandem_cache_prune(root, strlen(root), UINT64_MAX, 0, &freed));
  EXPECT(freed == 0);
  OK(tandem_cache_prune(missing, strlen(missing), 0, 0, &freed));
  EXPECT(freed == 0);
  /* Older than 2 days: the token file. */
  OK(tandem_cache_prune(root, strlen(root), UINT64_MAX, 2 * 86400, &freed));
  EXPECT(freed == 3000);
  EXPECT(access(tokens, F_OK) != 0 && access(pooled, F_OK) == 0);
  /* A cap of 500 bytes: the pooled file too (NULL freed_out is allowed). */
  OK(tandem_cache_prune(root, strlen(root), 500, 0, NULL));
  EXPECT(access(pooled, F_OK) != 0);
  ERR(tandem_cache_prune(NULL, 3, 0, 0, &freed), TANDEM_ERR_NULL_ARGUMENT);
  ERR(tandem_cache_prune("\xff", 1, 0, 0, &freed), TANDEM_ERR_INVALID_UTF8);
}

int main(void) {
  const char *base = getenv("TMPDIR");
  snprintf(tmp_root, sizeof tmp_root, "%s/tandem-c-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp_root)) {
    perror("mkdtemp");
    return 2;
  }
  section("start");
  test_info_and_errors();
  test_options();
  section("info, errors, options");
  test_missing_runtime_and_model();
  section("missing runtime and model");
  test_metadata();
  section("metadata");
  test_cache_prune();
  section("cache prune");
  tandem_backbone *b = load_backbone();
  section("backbone load");
  test_named_backbones();
  section("backbones by name");
  if (b) {
    char bundle_dir[512];
    path_in_tmp(bundle_dir, sizeof bundle_dir, "bundle");
    test_backbone(b);
    section("backbone embed");
    tandem_trainer *t = test_trainer(b, bundle_dir);
    section("trainer");
    test_model(b, t, bundle_dir);
    section("model");
    test_onnx(bundle_dir);
    section("ONNX heads and export");
    test_sampled(b, bundle_dir);
    section("Monte-Carlo dropout");
    tandem_model *stock = NULL;
    OK(tandem_model_load(b, bundle_dir, strlen(bundle_dir), &stock));
    test_finetune(b, stock);
    tandem_model_free(stock);
    section("fine-tuned backbone layers");
    test_task_kinds(b);
    section("task kinds");
    char kinds_dir[512];
    path_in_tmp(kinds_dir, sizeof kinds_dir, "kinds-bundle");
    test_ensemble(b, bundle_dir, kinds_dir);
    section("ensembles");
    test_ensemble_thresholds(b, kinds_dir);
    section("ensemble thresholds");
    test_sequence_head(b);
    section("sequence head");
    test_auto_recipe(b);
    section("recipe chosen by validation");
    test_checkpoints(b);
    section("checkpoints");
    test_distillation(b, bundle_dir);
    section("distillation");
    test_pretrain(b);
    section("encoder pre-training");
    tandem_trainer_free(t);
    tandem_backbone_free(b);
  }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
  return finish("test_api");
}
