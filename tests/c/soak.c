/* Soak runs through the C ABI: long, loaded runs for `make soak` (and a small `make soak-smoke`
 * / `make soak-valgrind`), not a timed unit test. Two parts, chosen by the first argument:
 *
 *   soak swaps  Trains two bundles for one backbone (different seeds and head sizes) on a slice
 *               of the TREC demo data, records each bundle's exact outputs for a fixed set of
 *               probe texts (each bundle loaded as its own model), then has --predictors threads
 *               (8) predict the probes in a loop while the main thread hot-swaps --swaps times
 *               (1000), alternating the bundles: swap k installs bundle B when k is odd and A
 *               when it is even, so heads version v serves A when v is even and B when it is
 *               odd. Swaps alternate in pairs between tandem_model_swap_bundle (from the saved
 *               directory) and tandem_model_swap_heads (from the trainer that made it). Every
 *               prediction is checked against the outputs of the bundle its heads version names:
 *               the label, the class names and every probability (within 1e-6). A torn
 *               prediction (heads of one version, labels or thresholds of another, or rows of
 *               one batch from two versions) shows up as a mismatch. After each swap the main
 *               thread waits until --per-swap (8) predictions have come back on the new
 *               version, so every version serves traffic and every swap lands while
 *               predictions are in flight.
 *
 *   soak rss    Trains a three-task bundle (multiclass, binary, regression) and predicts
 *               --predictions texts (1,000,000) in batches of --batch (4) from one thread,
 *               reading every task, class name, label, probability and value through the
 *               accessors and freeing everything; every 1,000th call also formats the
 *               predictions as JSON and makes a grouped prediction. VmRSS is sampled every
 *               --sample-every predictions (50,000); the run fails if RSS grows by more than
 *               --max-growth-kb (8192) between the first sample at or after --warmup (200,000)
 *               and the last one.
 *
 * Either part exits 0 only if nothing failed; every failure is printed. The backbone is
 * --backbone DIR, else $TANDEM_TEST_BACKBONE, else the default (all-MiniLM-L6-v2); training
 * data is the first --train (300) rows of --data FILE, by default trec.jsonl in the cache. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "data.h"

#define MAX_CLASSES 16
#define MAX_LABEL 64
#define PROBES 9
#define TOLERANCE 1e-6f
#define REPORT_FIRST 10 /* print the first few errors and mismatches of each kind */

/* ---- options ---------------------------------------------------------------------------- */

typedef struct {
  const char *part;
  const char *backbone;
  const char *variant;
  const char *data;
  const char *bundles[2];
  const char *method;
  unsigned long long threads, train, swaps, predictors, sessions, per_swap;
  unsigned long long predictions, batch, sample_every, warmup, max_growth_kb;
  int rss_bound;
} options;

static int usage(const char *msg) {
  if (msg) fprintf(stderr, "soak: %s\n", msg);
  fprintf(stderr,
          "usage: soak swaps [--swaps N] [--predictors N] [--sessions N] [--per-swap N]\n"
          "                  [--method both|bundle|heads] [--bundles DIR_A DIR_B]\n"
          "       soak rss [--predictions N] [--batch N] [--sample-every N] [--warmup N]\n"
          "                [--max-growth-kb N] [--no-rss-bound]\n"
          "  common: [--backbone DIR] [--variant fp32|opt|int8] [--threads N] [--data FILE]\n"
          "          [--train N]\n");
  return 2;
}

static int parse_count(const char *flag, const char *text, unsigned long long *out) {
  char *end = NULL;
  errno = 0;
  unsigned long long v = text ? strtoull(text, &end, 10) : 0;
  if (!text || !*text || *end || errno || text[0] == '-') {
    fprintf(stderr, "soak: %s needs a non-negative integer, got '%s'\n", flag,
            text ? text : "(nothing)");
    return 0;
  }
  *out = v;
  return 1;
}

/* Returns 0 after printing why when the arguments are not usable. */
static int parse_options(int argc, char **argv, options *o) {
  memset(o, 0, sizeof *o);
  o->threads = 1;
  o->train = 300;
  o->swaps = 1000;
  o->predictors = 8;
  o->sessions = 4;
  o->per_swap = 8;
  o->method = "both";
  o->predictions = 1000000;
  o->batch = 4;
  o->sample_every = 50000;
  o->warmup = 200000;
  o->max_growth_kb = 8192;
  o->rss_bound = 1;
  if (argc < 2) return 0;
  o->part = argv[1];
  if (strcmp(o->part, "swaps") != 0 && strcmp(o->part, "rss") != 0) return 0;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int ok = 1, takes = 1;
    if (strcmp(f, "--backbone") == 0) o->backbone = v;
    else if (strcmp(f, "--variant") == 0) o->variant = v;
    else if (strcmp(f, "--data") == 0) o->data = v;
    else if (strcmp(f, "--method") == 0) o->method = v;
    else if (strcmp(f, "--bundles") == 0) {
      o->bundles[0] = v;
      o->bundles[1] = i + 2 < argc ? argv[i + 2] : NULL;
      takes = 2;
      ok = o->bundles[1] != NULL;
    } else if (strcmp(f, "--threads") == 0) ok = parse_count(f, v, &o->threads);
    else if (strcmp(f, "--train") == 0) ok = parse_count(f, v, &o->train);
    else if (strcmp(f, "--swaps") == 0) ok = parse_count(f, v, &o->swaps);
    else if (strcmp(f, "--predictors") == 0) ok = parse_count(f, v, &o->predictors);
    else if (strcmp(f, "--sessions") == 0) ok = parse_count(f, v, &o->sessions);
    else if (strcmp(f, "--per-swap") == 0) ok = parse_count(f, v, &o->per_swap);
    else if (strcmp(f, "--predictions") == 0) ok = parse_count(f, v, &o->predictions);
    else if (strcmp(f, "--batch") == 0) ok = parse_count(f, v, &o->batch);
    else if (strcmp(f, "--sample-every") == 0) ok = parse_count(f, v, &o->sample_every);
    else if (strcmp(f, "--warmup") == 0) ok = parse_count(f, v, &o->warmup);
    else if (strcmp(f, "--max-growth-kb") == 0) ok = parse_count(f, v, &o->max_growth_kb);
    else if (strcmp(f, "--no-rss-bound") == 0) {
      o->rss_bound = 0;
      takes = 0;
    } else {
      fprintf(stderr, "soak: unknown argument '%s'\n", f);
      return 0;
    }
    if (takes > 0 && !v) {
      fprintf(stderr, "soak: %s needs a value\n", f);
      return 0;
    }
    if (!ok) {
      if (takes == 2) fprintf(stderr, "soak: --bundles needs two directories\n");
      return 0;
    }
    i += takes;
  }
  if (strcmp(o->method, "both") != 0 && strcmp(o->method, "bundle") != 0 &&
      strcmp(o->method, "heads") != 0) {
    fprintf(stderr, "soak: --method is both, bundle or heads, not '%s'\n", o->method);
    return 0;
  }
  if (o->bundles[0] && strcmp(o->method, "bundle") != 0) {
    fprintf(stderr, "soak: --bundles gives no trainers to swap heads from; add --method bundle\n");
    return 0;
  }
  if (o->predictors == 0 || o->predictors > 256 || o->sessions == 0 || o->per_swap == 0) {
    fprintf(stderr, "soak: --predictors must be 1..256, --sessions and --per-swap at least 1\n");
    return 0;
  }
  if (o->batch == 0 || o->sample_every == 0 || o->predictions == 0 || o->train < 24) {
    fprintf(stderr, "soak: --batch, --sample-every and --predictions must be positive, "
                    "--train at least 24\n");
    return 0;
  }
  if (strcmp(o->part, "rss") == 0 && o->warmup >= o->predictions) {
    fprintf(stderr, "soak: --warmup (%llu) must be below --predictions (%llu)\n", o->warmup,
            o->predictions);
    return 0;
  }
  return 1;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

/* VmRSS of this process in KiB, from /proc/self/status; -1 when unreadable. */
static long rss_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  size_t n = strlen(field);
  while (fgets(line, sizeof line, f))
    if (strncmp(line, field, n) == 0 && line[n] == ':') {
      kb = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* Appends code point `c` to `out` as UTF-8; 0 when it does not fit. */
static int put_utf8(char *out, size_t cap, size_t *n, unsigned long c) {
  unsigned char b[4];
  size_t k;
  if (c < 0x80) {
    b[0] = (unsigned char)c;
    k = 1;
  } else if (c < 0x800) {
    b[0] = (unsigned char)(0xc0 | (c >> 6));
    b[1] = (unsigned char)(0x80 | (c & 0x3f));
    k = 2;
  } else if (c < 0x10000) {
    b[0] = (unsigned char)(0xe0 | (c >> 12));
    b[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    b[2] = (unsigned char)(0x80 | (c & 0x3f));
    k = 3;
  } else {
    b[0] = (unsigned char)(0xf0 | (c >> 18));
    b[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
    b[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
    b[3] = (unsigned char)(0x80 | (c & 0x3f));
    k = 4;
  }
  if (*n + k >= cap) return 0;
  memcpy(out + *n, b, k);
  *n += k;
  return 1;
}

static int hex4(const char *p, unsigned long *out) {
  unsigned long v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return 0;
    v = v * 16 + (unsigned long)d;
  }
  *out = v;
  return 1;
}

/* Decodes the JSON string whose opening quote is at *p into `out` (NUL-terminated), leaving *p
 * after the closing quote. Returns 0 on malformed input or when it does not fit. */
static int json_string(const char **p, char *out, size_t cap) {
  const char *s = *p;
  size_t n = 0;
  if (*s++ != '"') return 0;
  while (*s && *s != '"') {
    unsigned long c = (unsigned char)*s++;
    if (c == '\\') {
      char e = *s++;
      switch (e) {
        case '"': case '\\': case '/': c = (unsigned long)e; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u': {
          if (!hex4(s, &c)) return 0;
          s += 4;
          if (c >= 0xd800 && c < 0xdc00) {
            unsigned long lo;
            if (s[0] != '\\' || s[1] != 'u' || !hex4(s + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
              return 0;
            s += 6;
            c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
          } else if (c >= 0xdc00 && c < 0xe000) {
            return 0;
          }
          if (!put_utf8(out, cap, &n, c)) return 0;
          continue;
        }
        default: return 0;
      }
    }
    if (n + 1 >= cap) return 0;
    out[n++] = (char)c;
  }
  if (*s != '"') return 0;
  out[n] = '\0';
  *p = s + 1;
  return 1;
}

static const char *skip_ws(const char *s) {
  while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
  return s;
}

/* Reads "text" and "label" from one JSONL row, a flat object of string fields. */
static int parse_row(const char *line, char *text, size_t text_cap, char *label,
                     size_t label_cap) {
  char key[64], value[2048];
  const char *s = skip_ws(line);
  int have_text = 0, have_label = 0;
  if (*s++ != '{') return 0;
  for (;;) {
    s = skip_ws(s);
    if (*s == '}') break;
    if (!json_string(&s, key, sizeof key)) return 0;
    s = skip_ws(s);
    if (*s++ != ':') return 0;
    s = skip_ws(s);
    if (!json_string(&s, value, sizeof value)) return 0; /* every field is a string */
    if (strcmp(key, "text") == 0 && strlen(value) < text_cap) {
      strcpy(text, value);
      have_text = 1;
    } else if (strcmp(key, "label") == 0 && strlen(value) < label_cap) {
      strcpy(label, value);
      have_label = 1;
    }
    s = skip_ws(s);
    if (*s == ',') s++;
    else if (*s != '}') return 0;
  }
  return have_text && have_label;
}

typedef struct {
  char **texts;
  char **labels;
  size_t n;
} dataset;

static void dataset_free(dataset *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->texts[i]);
    free(d->labels[i]);
  }
  free(d->texts);
  free(d->labels);
  memset(d, 0, sizeof *d);
}

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}

static void cache_path(char *out, size_t cap, const char *rel) {
  const char *home = getenv("TANDEM_HOME");
  const char *xdg = getenv("XDG_CACHE_HOME");
  const char *user = getenv("HOME");
  if (home && *home) snprintf(out, cap, "%s/%s", home, rel);
  else if (xdg && *xdg) snprintf(out, cap, "%s/tandem/%s", xdg, rel);
  else snprintf(out, cap, "%s/.cache/tandem/%s", user ? user : ".", rel);
}

/* The first `max` rows of the JSONL file (texts with labels); 0 when unreadable. */
static int load_rows(const char *path, size_t max, dataset *d) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "soak: cannot open the training data %s (%s); run scripts/setup.sh or pass "
                    "--data FILE\n", path, strerror(errno));
    return 0;
  }
  d->texts = calloc(max, sizeof(char *));
  d->labels = calloc(max, sizeof(char *));
  char line[8192], text[2048], label[MAX_LABEL];
  size_t lineno = 0;
  while (d->n < max && fgets(line, sizeof line, f)) {
    lineno++;
    if (skip_ws(line)[0] == '\0') continue;
    if (!parse_row(line, text, sizeof text, label, sizeof label)) {
      fprintf(stderr, "soak: %s:%zu: not a row with string fields \"text\" and \"label\"\n",
              path, lineno);
      fclose(f);
      dataset_free(d);
      return 0;
    }
    d->texts[d->n] = dup_string(text);
    d->labels[d->n] = dup_string(label);
    d->n++;
  }
  fclose(f);
  if (d->n < max) {
    fprintf(stderr, "soak: %s has %zu rows, --train asks for %zu\n", path, d->n, max);
    dataset_free(d);
    return 0;
  }
  return 1;
}

static tandem_backbone *load_backbone(const options *o, size_t sessions, const char **used) {
  const char *dir = o->backbone;
  if (!dir || !*dir) dir = getenv("TANDEM_TEST_BACKBONE");
  if (dir && !*dir) dir = NULL;
  *used = dir ? dir : "(default: all-MiniLM-L6-v2 in the cache)";
  tandem_options *opts = tandem_options_new();
  int ok = OK(tandem_options_set_threads(opts, (uint32_t)o->threads)) &&
           OK(tandem_options_set_batching(opts, 32, sessions)) &&
           (!dir || OK(tandem_options_set_backbone_dir(opts, dir, strlen(dir)))) &&
           (!o->variant || OK(tandem_options_set_variant(opts, o->variant, strlen(o->variant))));
  tandem_backbone *b = NULL;
  if (ok) OK(tandem_backbone_load(opts, &b));
  tandem_options_free(opts);
  return b;
}

/* A trainer for `spec` with every row of `d` added (labels made by `labels_of`), trained. */
static tandem_trainer *train(const tandem_backbone *b, const char *spec, const dataset *d,
                             void (*labels_of)(const dataset *, size_t, char *, size_t)) {
  tandem_trainer *t = NULL;
  if (!OK(tandem_trainer_new(b, spec, strlen(spec), &t))) return NULL;
  for (size_t i = 0; i < d->n; i++) {
    char labels[256];
    labels_of(d, i, labels, sizeof labels);
    if (!OK(tandem_trainer_add_example(t, d->texts[i], strlen(d->texts[i]), labels,
                                       strlen(labels)))) {
      tandem_trainer_free(t);
      return NULL;
    }
  }
  if (!OK(tandem_trainer_train(t, NULL, NULL))) {
    tandem_trainer_free(t);
    return NULL;
  }
  return t;
}

static int remove_tree(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0;
}

/* ---- swaps ------------------------------------------------------------------------------ */

enum { ALONE, BATCH, SHAPES }; /* each probe on its own, or all probes in one call */

typedef struct {
  size_t classes;
  char names[MAX_CLASSES][MAX_LABEL];
  char label[MAX_LABEL];
  float probs[MAX_CLASSES];
} row_truth;

static const char *probes[PROBES];
static row_truth truth[2][SHAPES][PROBES]; /* [bundle][shape][probe] */

static tandem_model *serving;
static atomic_int stop;
static atomic_ullong swaps_begun;
static _Atomic unsigned long long *seen; /* predictions (calls) per heads version */
static unsigned long long max_version;

typedef struct {
  unsigned long long calls, rows, exact, close, errors, mismatches, crossed;
} tally;

static tally tallies[256];
static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_ullong printed_errors, printed_mismatches;

static void report_mismatch(const char *fmt, unsigned long long version, size_t probe,
                            const char *detail) {
  if (atomic_fetch_add(&printed_mismatches, 1) >= REPORT_FIRST) return;
  pthread_mutex_lock(&print_lock);
  fprintf(stderr, "MISMATCH: heads version %llu, probe %zu (\"%s\"): ", version, probe,
          probes[probe]);
  fprintf(stderr, fmt, detail);
  fputc('\n', stderr);
  pthread_mutex_unlock(&print_lock);
}

static void report_error(const char *what, tandem_error *e) {
  if (atomic_fetch_add(&printed_errors, 1) < REPORT_FIRST) {
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "ERROR: %s: [%s] %s\n", what, tandem_error_code_name(tandem_error_code(e)),
            tandem_error_message(e));
    pthread_mutex_unlock(&print_lock);
  }
  tandem_error_free(e);
}

static int unreadable(size_t row, const char *why) {
  if (atomic_fetch_add(&printed_errors, 1) < REPORT_FIRST) {
    pthread_mutex_lock(&print_lock);
    fprintf(stderr, "ERROR: row %zu of a prediction: %s\n", row, why);
    pthread_mutex_unlock(&print_lock);
  }
  return 0;
}

/* Reads row `row` (task 0) of `p` into `r`. Returns 0 (after reporting) on an error. */
static int read_row(const tandem_predictions *p, size_t row, row_truth *r) {
  memset(r, 0, sizeof *r);
  r->classes = tandem_predictions_class_count(p, 0);
  if (r->classes < 2 || r->classes > MAX_CLASSES) return unreadable(row, "class count");
  for (size_t c = 0; c < r->classes; c++) {
    const char *name = tandem_predictions_class_name(p, 0, c);
    if (!name) return unreadable(row, "a NULL class name");
    snprintf(r->names[c], MAX_LABEL, "%s", name);
  }
  if (tandem_predictions_label_count(p, row, 0) != 1) return unreadable(row, "label count");
  const char *label = tandem_predictions_label(p, row, 0, 0);
  if (!label) return unreadable(row, "a NULL label");
  snprintf(r->label, MAX_LABEL, "%s", label);
  tandem_error *e = tandem_predictions_probabilities(p, row, 0, r->probs, MAX_CLASSES);
  if (e) {
    report_error("tandem_predictions_probabilities", e);
    return 0;
  }
  return 1;
}

/* Compares an observed row with the truth; 0 = mismatch (reported), 1 = within tolerance,
 * 2 = bit for bit. */
static int compare_row(const row_truth *got, const row_truth *want, unsigned long long v,
                       size_t probe) {
  char detail[160];
  if (got->classes != want->classes) {
    snprintf(detail, sizeof detail, "%zu classes, want %zu", got->classes, want->classes);
    report_mismatch("%s", v, probe, detail);
    return 0;
  }
  for (size_t c = 0; c < want->classes; c++)
    if (strcmp(got->names[c], want->names[c]) != 0) {
      report_mismatch("class name %s", v, probe, got->names[c]);
      return 0;
    }
  if (strcmp(got->label, want->label) != 0) {
    snprintf(detail, sizeof detail, "label %s, want %s", got->label, want->label);
    report_mismatch("%s", v, probe, detail);
    return 0;
  }
  int exact = 1;
  for (size_t c = 0; c < want->classes; c++) {
    float d = fabsf(got->probs[c] - want->probs[c]);
    if (!(d <= TOLERANCE)) {
      snprintf(detail, sizeof detail, "p[%zu] = %.9g, want %.9g (diff %.3g)", c,
               (double)got->probs[c], (double)want->probs[c], (double)d);
      report_mismatch("%s", v, probe, detail);
      return 0;
    }
    if (got->probs[c] != want->probs[c]) exact = 0;
  }
  return exact ? 2 : 1;
}

static void *predictor(void *arg) {
  tally *t = arg;
  size_t me = (size_t)(t - tallies);
  unsigned long long last = 0;
  for (unsigned long long i = me; !atomic_load(&stop); i++) {
    /* Mostly single probes (rotating), every fourth call all probes in one batch. */
    int shape = i % 4 == 3 ? BATCH : ALONE;
    size_t first = shape == BATCH ? 0 : (size_t)(i % PROBES);
    size_t n = shape == BATCH ? PROBES : 1;
    tandem_predictions *p = NULL;
    tandem_error *e = tandem_model_predict(serving, probes + first, NULL, n, &p);
    if (e) {
      t->errors++;
      report_error("tandem_model_predict", e);
      continue;
    }
    t->calls++;
    unsigned long long v = tandem_predictions_heads_version(p);
    unsigned long long now = tandem_model_heads_version(serving);
    unsigned long long begun = atomic_load(&swaps_begun);
    if (v < now) t->crossed++; /* its heads were replaced while it ran (or just after) */
    if (v > begun || v > max_version || v < last) {
      char detail[120];
      snprintf(detail, sizeof detail, "after version %llu, with %llu swaps begun", last, begun);
      report_mismatch("version out of order, %s", v, first, detail);
      t->mismatches++;
      tandem_predictions_free(p);
      continue;
    }
    last = v;
    atomic_fetch_add(&seen[v], 1);
    if (tandem_predictions_len(p) != n || tandem_predictions_task_count(p) != 1 ||
        tandem_predictions_task_kind(p, 0) != TANDEM_TASK_MULTICLASS) {
      report_mismatch("%s", v, first, "wrong row count, task count or task kind");
      t->mismatches++;
      tandem_predictions_free(p);
      continue;
    }
    for (size_t r = 0; r < n; r++) {
      row_truth got;
      t->rows++;
      if (!read_row(p, r, &got)) {
        t->errors++;
        continue;
      }
      int c = compare_row(&got, &truth[v % 2][shape][first + r], v, first + r);
      if (c == 0) t->mismatches++;
      if (c == 2) t->exact++;
      if (c == 1) t->close++;
    }
    tandem_predictions_free(p);
  }
  return NULL;
}

/* The truth for bundle `which`: its outputs for every probe, alone and in one batch, from a
 * model of its own. */
static int record_truth(const tandem_backbone *b, const char *dir, int which) {
  tandem_model *m = NULL;
  if (!OK(tandem_model_load(b, dir, strlen(dir), &m))) return 0;
  int ok = 1;
  for (size_t i = 0; i < PROBES && ok; i++) {
    tandem_predictions *p = NULL;
    ok = OK(tandem_model_predict(m, probes + i, NULL, 1, &p)) &&
         read_row(p, 0, &truth[which][ALONE][i]);
    tandem_predictions_free(p);
  }
  tandem_predictions *p = NULL;
  if (ok && OK(tandem_model_predict(m, probes, NULL, PROBES, &p)))
    for (size_t i = 0; i < PROBES && ok; i++) ok = read_row(p, i, &truth[which][BATCH][i]);
  else ok = 0;
  tandem_predictions_free(p);
  tandem_model_free(m);
  if (!ok) fprintf(stderr, "soak: could not record the outputs of bundle %s\n", dir);
  return ok;
}

static void multiclass_labels(const dataset *d, size_t i, char *out, size_t cap) {
  snprintf(out, cap, "{\"label\": \"%s\"}", d->labels[i]);
}

static int run_swaps(const options *o) {
  const char *backbone_dir;
  tandem_backbone *b = load_backbone(o, o->sessions, &backbone_dir);
  if (!b) return finish("soak swaps");
  printf("soak swaps: backbone %s (%s), %llu predictor threads, %llu sessions x %llu threads\n",
         backbone_dir, o->variant ? o->variant : "fp32", o->predictors, o->sessions, o->threads);
  for (size_t i = 0; i < PROBES; i++) probes[i] = QUESTIONS[(i * 4 + 1) % N_QUESTIONS].text;

  char tmp[300], dirs[2][400];
  const char *base = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/tandem-soak-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp)) {
    perror("soak: mkdtemp");
    return 2;
  }
  tandem_trainer *trainers[2] = {NULL, NULL};
  double t0 = now_seconds();
  if (o->bundles[0]) {
    for (int k = 0; k < 2; k++) snprintf(dirs[k], sizeof dirs[k], "%s", o->bundles[k]);
  } else {
    char data[512];
    if (o->data) snprintf(data, sizeof data, "%s", o->data);
    else cache_path(data, sizeof data, "data/trec.jsonl");
    dataset d = {0};
    if (!load_rows(data, (size_t)o->train, &d)) {
      remove_tree(tmp);
      return 2;
    }
    /* Two bundles: other seeds, other head widths, so that their outputs differ. */
    const int seeds[2] = {1, 2}, hidden[2] = {32, 64};
    for (int k = 0; k < 2 && failures == 0; k++) {
      char spec[600];
      snprintf(spec, sizeof spec,
               "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"}],"
               " \"embedding_cache\": false, \"config\": {\"seed\": %d,"
               " \"metadata\": {\"stage\": {\"epochs\": 10}},"
               " \"head\": {\"hidden\": [%d], \"stage\": {\"epochs\": 15}}}}",
               seeds[k], hidden[k]);
      snprintf(dirs[k], sizeof dirs[k], "%s/bundle-%c", tmp, 'a' + k);
      trainers[k] = train(b, spec, &d, multiclass_labels);
      if (trainers[k]) OK(tandem_trainer_save(trainers[k], dirs[k], strlen(dirs[k])));
    }
    dataset_free(&d);
    printf("trained bundles A and B on %llu TREC rows in %.1f s\n", o->train, now_seconds() - t0);
  }
  int ready = failures == 0 && record_truth(b, dirs[0], 0) && record_truth(b, dirs[1], 1);

  /* The check can only catch a torn prediction if the bundles disagree on every probe. */
  double closest = INFINITY, batch_vs_alone = 0;
  for (size_t i = 0; ready && i < PROBES; i++) {
    for (int s = 0; s < SHAPES; s++) {
      double diff = 0;
      for (size_t c = 0; c < truth[0][s][i].classes; c++) {
        double d = fabs((double)truth[0][s][i].probs[c] - truth[1][s][i].probs[c]);
        if (d > diff) diff = d;
      }
      if (diff < closest) closest = diff;
    }
    for (int k = 0; k < 2; k++)
      for (size_t c = 0; c < truth[k][ALONE][i].classes; c++) {
        double d = fabs((double)truth[k][BATCH][i].probs[c] - truth[k][ALONE][i].probs[c]);
        if (d > batch_vs_alone) batch_vs_alone = d;
      }
  }
  if (ready) {
    printf("bundles A and B differ by at least %.3g in some probability of every probe; "
           "a probe alone and in a batch differ by up to %.3g\n", closest, batch_vs_alone);
    if (!(closest >= 1e-3)) {
      fprintf(stderr, "soak: bundles A and B give nearly the same outputs (%.3g apart): the "
                      "check could not tell them apart; train them further apart\n", closest);
      ready = 0;
    }
  }
  if (ready) ready = OK(tandem_model_load(b, dirs[0], strlen(dirs[0]), &serving));

  unsigned long long done = 0;
  double seconds = 0;
  if (ready) {
    max_version = o->swaps;
    seen = malloc(((size_t)o->swaps + 1) * sizeof *seen);
    for (unsigned long long v = 0; v <= o->swaps; v++) atomic_init(&seen[v], 0);
    pthread_t threads[256];
    size_t started = 0;
    for (; started < o->predictors; started++)
      if (pthread_create(&threads[started], NULL, predictor, &tallies[started]) != 0) {
        fprintf(stderr, "soak: could not start predictor thread %zu\n", started);
        failures++;
        break;
      }
    double start = now_seconds();
    /* Waits until `per_swap` predictions have come back on version `v`. */
    const double patience = 300;
#define WAIT_FOR(v)                                                                      \
  do {                                                                                   \
    double since = now_seconds();                                                        \
    while (atomic_load(&seen[(v)]) < o->per_swap && now_seconds() - since < patience) \
      sleep_us(200);                                                                     \
    if (atomic_load(&seen[(v)]) < o->per_swap) {                                         \
      fprintf(stderr, "soak: no prediction came back on heads version %llu within %.0f s\n", \
              (unsigned long long)(v), patience);                                        \
      failures++;                                                                        \
    }                                                                                    \
  } while (0)
    WAIT_FOR(0);
    for (unsigned long long k = 1; k <= o->swaps && failures == 0; k++) {
      int bundle = k % 2; /* B (1) on odd versions, A (0) on even ones */
      int heads = strcmp(o->method, "heads") == 0 ||
                  (strcmp(o->method, "both") == 0 && ((k - 1) / 2) % 2 == 1);
      uint64_t v = 0;
      atomic_store(&swaps_begun, k);
      tandem_error *e = heads ? tandem_model_swap_heads(serving, trainers[bundle], &v)
                              : tandem_model_swap_bundle(serving, dirs[bundle],
                                                         strlen(dirs[bundle]), &v);
      if (e) {
        fprintf(stderr, "soak: swap %llu (%s) failed: [%s] %s\n", k,
                heads ? "tandem_model_swap_heads" : "tandem_model_swap_bundle",
                tandem_error_code_name(tandem_error_code(e)), tandem_error_message(e));
        tandem_error_free(e);
        failures++;
        break;
      }
      if (v != k) {
        fprintf(stderr, "soak: swap %llu returned heads version %llu\n", k,
                (unsigned long long)v);
        failures++;
        break;
      }
      done = k;
      WAIT_FOR(k);
    }
#undef WAIT_FOR
    seconds = now_seconds() - start;
    atomic_store(&stop, 1);
    for (size_t i = 0; i < started; i++) pthread_join(threads[i], NULL);
    EXPECT(tandem_model_heads_version(serving) == done);
  }

  tally sum = {0};
  for (size_t i = 0; i < o->predictors; i++) {
    sum.calls += tallies[i].calls;
    sum.rows += tallies[i].rows;
    sum.exact += tallies[i].exact;
    sum.close += tallies[i].close;
    sum.errors += tallies[i].errors;
    sum.mismatches += tallies[i].mismatches;
    sum.crossed += tallies[i].crossed;
    if (ready && tallies[i].calls == 0) {
      fprintf(stderr, "soak: predictor thread %zu made no prediction\n", i);
      failures++;
    }
  }
  unsigned long long versions = 0, fewest = ULLONG_MAX;
  for (unsigned long long v = 0; seen && v <= done; v++) {
    unsigned long long c = atomic_load(&seen[v]);
    if (c > 0) versions++;
    if (c < fewest) fewest = c;
  }
  if (sum.errors) failures++;
  if (sum.mismatches) failures++;
  if (ready && done != o->swaps) failures++;
  printf("soak swaps: %llu of %llu swaps done (%s) under %llu predicting threads in %.1f s; "
         "%llu predictions checked (%llu calls; %llu bit-identical, %llu within %g), "
         "%llu mismatches, %llu errors; %llu of %llu heads versions served (each by at least "
         "%llu calls); %llu calls came back on heads that a swap had replaced by then\n",
         done, o->swaps, o->method, o->predictors, seconds, sum.rows, sum.calls, sum.exact,
         sum.close, (double)TOLERANCE, sum.mismatches, sum.errors, versions, done + 1,
         fewest == ULLONG_MAX ? 0 : fewest, sum.crossed);

  tandem_model_free(serving);
  for (int k = 0; k < 2; k++) tandem_trainer_free(trainers[k]);
  tandem_backbone_free(b);
  free((void *)seen);
  if (!remove_tree(tmp)) fprintf(stderr, "soak: could not remove %s\n", tmp);
  return finish("soak swaps");
}

/* ---- rss -------------------------------------------------------------------------------- */

/* Three tasks: the TREC class, whether it asks for a person (binary), and the word count. */
static void three_task_labels(const dataset *d, size_t i, char *out, size_t cap) {
  size_t words = 0;
  for (const char *s = d->texts[i]; *s; s++)
    if (*s != ' ' && (s == d->texts[i] || s[-1] == ' ')) words++;
  snprintf(out, cap, "{\"label\": \"%s\", \"human\": \"%s\", \"words\": %zu}", d->labels[i],
           strcmp(d->labels[i], "HUM") == 0 ? "yes" : "no", words);
}

/* Reads everything `p` holds through the accessors; counts what is wrong. */
static unsigned long long read_all(const tandem_predictions *p, size_t rows) {
  unsigned long long bad = 0;
  if (tandem_predictions_len(p) != rows || tandem_predictions_task_count(p) != 3 ||
      tandem_predictions_heads_version(p) != 0)
    return 1;
  for (size_t r = 0; r < rows; r++)
    for (size_t t = 0; t < 3; t++) {
      if (!tandem_predictions_task_name(p, t)) bad++;
      uint32_t kind = tandem_predictions_task_kind(p, t);
      if (kind == TANDEM_TASK_REGRESSION) {
        float v = NAN;
        tandem_error *e = tandem_predictions_value(p, r, t, &v);
        if (e) {
          report_error("tandem_predictions_value", e);
          bad++;
        } else if (!isfinite(v)) {
          bad++;
        }
        continue;
      }
      size_t classes = tandem_predictions_class_count(p, t);
      float probs[MAX_CLASSES];
      if (classes < 2 || classes > MAX_CLASSES) {
        bad++;
        continue;
      }
      tandem_error *e = tandem_predictions_probabilities(p, r, t, probs, MAX_CLASSES);
      if (e) {
        report_error("tandem_predictions_probabilities", e);
        bad++;
        continue;
      }
      double total = 0;
      for (size_t c = 0; c < classes; c++) {
        if (!tandem_predictions_class_name(p, t, c) || !(probs[c] >= 0 && probs[c] <= 1)) bad++;
        total += probs[c];
      }
      if (fabs(total - 1.0) > 1e-4) bad++;
      size_t labels = tandem_predictions_label_count(p, r, t);
      if (labels != 1) bad++;
      for (size_t k = 0; k < labels; k++) {
        const char *label = tandem_predictions_label(p, r, t, k);
        int known = 0;
        for (size_t c = 0; label && c < classes; c++)
          known |= strcmp(label, tandem_predictions_class_name(p, t, c)) == 0;
        if (!known) bad++;
      }
    }
  return bad;
}

static int run_rss(const options *o) {
  const char *backbone_dir;
  tandem_backbone *b = load_backbone(o, 1, &backbone_dir);
  if (!b) return finish("soak rss");
  printf("soak rss: backbone %s (%s), %llu predictions in batches of %llu\n", backbone_dir,
         o->variant ? o->variant : "fp32", o->predictions, o->batch);

  char tmp[300], dir[400], data[512];
  const char *base = getenv("TMPDIR");
  snprintf(tmp, sizeof tmp, "%s/tandem-soak-XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(tmp)) {
    perror("soak: mkdtemp");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s/bundle", tmp);
  if (o->data) snprintf(data, sizeof data, "%s", o->data);
  else cache_path(data, sizeof data, "data/trec.jsonl");
  dataset d = {0};
  if (!load_rows(data, (size_t)o->train, &d)) {
    remove_tree(tmp);
    return 2;
  }
  const char *spec =
      "{\"tasks\": [{\"name\": \"label\", \"kind\": \"multiclass\"},"
      " {\"name\": \"human\", \"kind\": \"binary\", \"positive\": \"yes\"},"
      " {\"name\": \"words\", \"kind\": \"regression\"}],"
      " \"embedding_cache\": false, \"config\": {\"seed\": 3,"
      " \"metadata\": {\"stage\": {\"epochs\": 10}}, \"head\": {\"stage\": {\"epochs\": 10}}}}";
  double t0 = now_seconds();
  tandem_trainer *t = train(b, spec, &d, three_task_labels);
  int ready = t && OK(tandem_trainer_save(t, dir, strlen(dir)));
  tandem_trainer_free(t);
  tandem_model *m = NULL;
  ready = ready && OK(tandem_model_load(b, dir, strlen(dir), &m));
  if (ready)
    printf("trained a 3-task bundle on %zu TREC rows in %.1f s\n", d.n, now_seconds() - t0);

  /* The texts: the training rows, then the test questions, cycled through in batches. */
  size_t pool = d.n + N_QUESTIONS;
  const char **texts = calloc(pool + o->batch, sizeof(char *));
  for (size_t i = 0; i < pool + o->batch; i++) {
    size_t j = i % pool;
    texts[i] = j < d.n ? d.texts[j] : QUESTIONS[j - d.n].text;
  }
  const char *groups[] = {"a", "b"};

  size_t max_samples = (size_t)(o->predictions / o->sample_every) + 2;
  unsigned long long *at = calloc(max_samples, sizeof *at);
  long *kb = calloc(max_samples, sizeof *kb);
  size_t samples = 0;
  unsigned long long done = 0, calls = 0, errors = 0, bad = 0, next = 0;
  double start = now_seconds(), last_t = start;
  unsigned long long last_done = 0;
  if (ready) printf("%12s %12s %12s\n", "predictions", "VmRSS KiB", "per second");
  while (ready && done < o->predictions) {
    if (done >= next) {
      double now = now_seconds();
      at[samples] = done;
      kb[samples] = rss_kb("VmRSS");
      printf("%12llu %12ld %12.0f\n", done, kb[samples],
             done ? (double)(done - last_done) / (now - last_t) : 0.0);
      fflush(stdout);
      samples++;
      last_t = now;
      last_done = done;
      next += o->sample_every;
    }
    size_t n = (size_t)(o->predictions - done < o->batch ? o->predictions - done : o->batch);
    const char *const *batch = texts + (size_t)(calls * o->batch % pool);
    tandem_predictions *p = NULL;
    tandem_error *e = tandem_model_predict(m, batch, NULL, n, &p);
    calls++;
    done += n;
    if (e) {
      errors++;
      report_error("tandem_model_predict", e);
      continue;
    }
    bad += read_all(p, n);
    if (calls % 1000 == 0) {
      char *json = NULL;
      e = tandem_predictions_json(p, &json);
      if (e) {
        errors++;
        report_error("tandem_predictions_json", e);
      } else if (!json || json[0] != '{') {
        bad++;
      }
      tandem_string_free(json);
    }
    tandem_predictions_free(p);
    if (calls % 1000 == 0 && n >= 2) {
      const char *keys[] = {groups[0], groups[1], groups[0], groups[1]};
      size_t g = n < 4 ? n : 4;
      e = tandem_model_predict_groups(m, batch, NULL, keys, NULL, g, TANDEM_AGGREGATE_MEAN, &p);
      if (e) {
        errors++;
        report_error("tandem_model_predict_groups", e);
      } else {
        const char *second = tandem_predictions_group(p, 1);
        if (tandem_predictions_len(p) != 2 || !second || strcmp(second, "b") != 0) bad++;
        tandem_predictions_free(p);
      }
    }
  }
  double seconds = now_seconds() - start;
  if (ready) {
    at[samples] = done;
    kb[samples] = rss_kb("VmRSS");
    printf("%12llu %12ld %12.0f\n", done, kb[samples],
           (double)(done - last_done) / (now_seconds() - last_t));
    samples++;
  }
  size_t warm = 0;
  while (warm + 1 < samples && at[warm] < o->warmup) warm++;
  long growth = samples ? kb[samples - 1] - kb[warm] : 0;
  if (ready) {
    printf("soak rss: %llu predictions (%llu calls) in %.1f s, %.0f per second; %llu errors, "
           "%llu bad results; VmRSS %ld KiB at the start, %ld KiB at %llu (after warm-up), "
           "%ld KiB at the end: growth %+ld KiB after warm-up (bound %s%llu KiB); peak VmHWM "
           "%ld KiB\n",
           done, calls, seconds, done / seconds, errors, bad, kb[0], kb[warm], at[warm],
           kb[samples - 1], growth, o->rss_bound ? "" : "not checked: ", o->max_growth_kb,
           rss_kb("VmHWM"));
    if (errors || bad) failures++;
    for (size_t i = 0; i < samples; i++)
      if (kb[i] < 0) {
        fprintf(stderr, "soak: could not read VmRSS from /proc/self/status\n");
        failures++;
        break;
      }
    if (o->rss_bound && growth > (long)o->max_growth_kb) {
      fprintf(stderr, "soak: VmRSS grew by %ld KiB after warm-up, more than the %llu KiB bound\n",
              growth, o->max_growth_kb);
      failures++;
    }
  }
  free(at);
  free(kb);
  free(texts);
  dataset_free(&d);
  tandem_model_free(m);
  tandem_backbone_free(b);
  if (!remove_tree(tmp)) fprintf(stderr, "soak: could not remove %s\n", tmp);
  return finish("soak rss");
}

int main(int argc, char **argv) {
  options o;
  if (!parse_options(argc, argv, &o)) return usage(NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  return strcmp(o.part, "swaps") == 0 ? run_swaps(&o) : run_rss(&o);
}
