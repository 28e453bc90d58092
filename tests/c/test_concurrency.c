/* 8 threads predict from one model while another thread trains and hot-swaps heads 50 times.
 *
 * Checks: no call fails; every prediction comes from exactly one heads version. The swaps
 * alternate between heads with 3 classes and heads with 2, so a prediction that mixed two
 * versions would show the wrong class count, or probabilities that differ from what that
 * version gives the same text. The truth for each version is taken by the swapping thread
 * right after its swap (it is the only thread that swaps, so its next prediction must come
 * from the version it installed). Threads must also never see versions go backwards. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "data.h"

#define PREDICTORS 8
#define SWAPS 50
#define MAX_OBS 100000
#define MAX_CLASSES 4

static const char *PROBE = "Who was the first person to walk on the Moon ?";

typedef struct {
  uint64_t version;
  size_t classes;
  float probs[MAX_CLASSES];
} observation;

typedef struct {
  observation obs[MAX_OBS];
  size_t n;
  int errors;
} thread_log;

static tandem_model *model;
static atomic_int done;
static observation truth[SWAPS + 1];
static int have_truth[SWAPS + 1];
static thread_log logs[PREDICTORS];

/* Predicts PROBE once and records what came back. Returns 0 on an error. */
static int observe(observation *o) {
  tandem_predictions *p = NULL;
  tandem_error *e = tandem_model_predict(model, &PROBE, NULL, 1, &p);
  if (e) {
    fprintf(stderr, "predict failed: %s\n", tandem_error_message(e));
    tandem_error_free(e);
    return 0;
  }
  o->version = tandem_predictions_heads_version(p);
  o->classes = tandem_predictions_class_count(p, 0);
  int ok = o->classes >= 2 && o->classes <= MAX_CLASSES;
  if (ok) {
    e = tandem_predictions_probabilities(p, 0, 0, o->probs, MAX_CLASSES);
    if (e) {
      fprintf(stderr, "probabilities failed: %s\n", tandem_error_message(e));
      tandem_error_free(e);
      ok = 0;
    }
  }
  tandem_predictions_free(p);
  return ok;
}

static void *predictor(void *arg) {
  thread_log *log = arg;
  /* Also predict a batch now and then: the pooled sessions see mixed workloads. */
  const char *batch[] = {"Where is Madrid ?", "How many wheels does a bicycle have ?",
                         "Who wrote Faust ?"};
  while (!atomic_load(&done) && log->n < MAX_OBS) {
    if (!observe(&log->obs[log->n])) {
      log->errors++;
      continue;
    }
    log->n++;
    if (log->n % 8 == 0) {
      tandem_predictions *p = NULL;
      tandem_error *e = tandem_model_predict(model, batch, NULL, 3, &p);
      if (e) {
        log->errors++;
        tandem_error_free(e);
      } else {
        if (tandem_predictions_len(p) != 3) log->errors++;
        tandem_predictions_free(p);
      }
    }
  }
  return NULL;
}

/* A trainer whose heads differ per seed; `binary` relabels the questions into 2 classes. */
static tandem_trainer *trainer_for(const tandem_backbone *b, int binary, int seed) {
  char spec[400];
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
           " \"embedding_cache\": false, \"config\": {\"mode\": \"embedding_only\","
           " \"seed\": %d, \"head\": {\"hidden\": [32], \"stage\": {\"epochs\": 10}}}}",
           seed);
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return NULL;
  for (size_t i = 0; i < N_QUESTIONS; i++) {
    char labels[64];
    const char *l = QUESTIONS[i].label;
    if (binary) l = strcmp(l, "HUM") == 0 ? "person" : "thing";
    snprintf(labels, sizeof labels, "{\"label\": \"%s\"}", l);
    OK(tandem_trainer_add_example(t, QUESTIONS[i].text, strlen(QUESTIONS[i].text), labels,
                                  strlen(labels)));
  }
  return t;
}

static int same(const observation *a, const observation *b) {
  if (a->version != b->version || a->classes != b->classes) return 0;
  for (size_t j = 0; j < a->classes; j++)
    if (fabsf(a->probs[j] - b->probs[j]) > 1e-5f) return 0;
  return 1;
}

int main(void) {
  const char *base = getenv("TMPDIR");
  char dir[300];
  snprintf(dir, sizeof dir, "%s/tandem-conc-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(dir)) return 2;
  char bundle[400];
  snprintf(bundle, sizeof bundle, "%s/bundle", dir);

  tandem_options *o = tandem_options_new();
  OK(tandem_options_set_threads(o, 1));
  OK(tandem_options_set_batching(o, 32, 4));
  tandem_backbone *b = NULL;
  if (!OK(tandem_backbone_load(o, &b))) return finish("test_concurrency");
  tandem_options_free(o);

  tandem_trainer *first = trainer_for(b, 0, 0);
  if (!first || !OK(tandem_trainer_train(first, NULL, NULL))) return finish("test_concurrency");
  OK(tandem_trainer_save(first, bundle, strlen(bundle)));
  tandem_trainer_free(first);
  if (!OK(tandem_model_load(b, bundle, strlen(bundle), &model))) return finish("test_concurrency");
  EXPECT(observe(&truth[0]) && truth[0].version == 0 && truth[0].classes == 3);
  have_truth[0] = 1;

  pthread_t threads[PREDICTORS];
  for (int i = 0; i < PREDICTORS; i++) pthread_create(&threads[i], NULL, predictor, &logs[i]);

  /* This thread trains and swaps, each time with another seed: odd versions have 2 classes,
   * even ones 3. */
  for (int s = 1; s <= SWAPS; s++) {
    tandem_trainer *t = trainer_for(b, s % 2, s);
    uint64_t v = 0;
    int swapped = t && OK(tandem_trainer_train(t, NULL, NULL)) &&
                  OK(tandem_model_swap_heads(model, t, &v));
    tandem_trainer_free(t);
    if (!swapped) continue;
    EXPECT(v == (uint64_t)s);
    if (v <= SWAPS && observe(&truth[v]) && truth[v].version == v) {
      have_truth[v] = 1;
      EXPECT(truth[v].classes == (s % 2 ? 2u : 3u));
    } else {
      failures++;
      fprintf(stderr, "swap %d: the swapping thread did not see its own version\n", s);
    }
  }
  atomic_store(&done, 1);
  for (int i = 0; i < PREDICTORS; i++) pthread_join(threads[i], NULL);

  size_t total = 0, mixed = 0, late_versions = 0;
  for (int i = 0; i < PREDICTORS; i++) {
    EXPECT(logs[i].errors == 0);
    EXPECT(logs[i].n > 0);
    uint64_t last = 0;
    for (size_t k = 0; k < logs[i].n; k++) {
      const observation *ob = &logs[i].obs[k];
      total++;
      if (ob->version < last) failures++;
      last = ob->version;
      if (ob->version > SWAPS || !have_truth[ob->version] || !same(ob, &truth[ob->version]))
        mixed++;
      if (ob->version > 0) late_versions++;
    }
  }
  fprintf(stderr, "%zu predictions by %d threads across %d swaps; %zu after the first swap\n",
          total, PREDICTORS, SWAPS, late_versions);
  EXPECT(mixed == 0);
  EXPECT(late_versions > 0);
  EXPECT(tandem_model_heads_version(model) == SWAPS);

  tandem_model_free(model);
  tandem_backbone_free(b);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return finish("test_concurrency");
}
