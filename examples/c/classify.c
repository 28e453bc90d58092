/* Train a spam filter on the device, save it, reload it, and classify new messages.
 *
 *   cc classify.c $(pkg-config --cflags --libs tandem) -o classify
 *   ./classify [DATA.jsonl [LABEL_FIELD]] [-- "message" ...]
 *
 * DATA defaults to the SMS spam demo set installed by scripts/setup.sh
 * ($TANDEM_HOME or ~/.cache/tandem, under data/sms_spam.jsonl); each line is a JSON object with
 * a "text" string and a label field ("label" by default). */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tandem.h>

/* Prints the error, frees it and returns true if there was one. */
static bool failed(tandem_error *e, const char *what) {
  if (!e) return false;
  fprintf(stderr, "%s: [%s] %s\n", what, tandem_error_code_name(tandem_error_code(e)),
          tandem_error_message(e));
  tandem_error_free(e);
  return true;
}

/* Appends the UTF-8 encoding of code point `cp` to `out`. */
static size_t put_utf8(char *out, unsigned cp) {
  if (cp < 0x80) {
    out[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = (char)(0xE0 | (cp >> 12));
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = (char)(0xF0 | (cp >> 18));
  out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  out[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0xFFFD;
  }
  return v;
}

/* The string value of `"field": "..."` in a one-line JSON object, unescaped into a malloc'd
 * buffer; NULL when absent. Enough JSON for the demo files, not a general parser. */
static char *json_string_field(const char *line, const char *field) {
  char key[64];
  snprintf(key, sizeof key, "\"%s\":", field);
  const char *p = strstr(line, key);
  if (!p) return NULL;
  p += strlen(key);
  while (*p == ' ') p++;
  if (*p++ != '"') return NULL;
  char *out = malloc(strlen(p) * 2 + 4), *o = out;
  while (*p && *p != '"') {
    if (*p != '\\') {
      *o++ = *p++;
      continue;
    }
    p++;
    switch (*p) {
      case 'n': *o++ = '\n'; break;
      case 't': *o++ = '\t'; break;
      case 'r': *o++ = '\r'; break;
      case 'b': *o++ = '\b'; break;
      case 'f': *o++ = '\f'; break;
      case 'u': {
        unsigned cp = hex4(p + 1);
        p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u') {
          unsigned lo = hex4(p + 3);
          if (lo >= 0xDC00 && lo < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
          }
        }
        if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
        o += put_utf8(o, cp);
        break;
      }
      default: *o++ = *p; break; /* \" \\ \/ */
    }
    if (*p) p++;
  }
  *o = '\0';
  return out;
}

static bool progress(void *user_data, const char *stage, uint32_t epoch, uint32_t epochs,
                     float train_loss, float valid_loss) {
  (void)user_data;
  if (strcmp(stage, "embed") != 0 && (epoch + 1 == epochs || epoch % 10 == 0))
    fprintf(stderr, "  %s epoch %u/%u  train loss %.4f  valid loss %.4f\n", stage, epoch + 1,
            epochs, train_loss, valid_loss);
  return true;
}

int main(int argc, char **argv) {
  char default_data[1024];
  const char *home = getenv("TANDEM_HOME");
  if (home && *home) snprintf(default_data, sizeof default_data, "%s/data/sms_spam.jsonl", home);
  else if (getenv("XDG_CACHE_HOME") && *getenv("XDG_CACHE_HOME"))
    snprintf(default_data, sizeof default_data, "%s/tandem/data/sms_spam.jsonl",
             getenv("XDG_CACHE_HOME"));
  else
    snprintf(default_data, sizeof default_data, "%s/.cache/tandem/data/sms_spam.jsonl",
             getenv("HOME") ? getenv("HOME") : ".");
  int arg = 1;
  const char *data = default_data, *field = "label";
  if (arg < argc && strcmp(argv[arg], "--") != 0) data = argv[arg++];
  if (arg < argc && strcmp(argv[arg], "--") != 0) field = argv[arg++];
  if (arg < argc && strcmp(argv[arg], "--") == 0) arg++;

  printf("tandem %s (ABI %u)\n", tandem_version(), tandem_abi_version());
  tandem_backbone *backbone = NULL;
  if (failed(tandem_backbone_load(NULL, &backbone), "loading the backbone")) return 1;

  char spec[256];
  snprintf(spec, sizeof spec,
           "{\"tasks\": [{\"name\": \"%s\", \"kind\": \"multiclass\"}],"
           " \"config\": {\"seed\": 0}}",
           field);
  tandem_trainer *trainer = NULL;
  if (failed(tandem_trainer_new(backbone, spec, strlen(spec), &trainer), "trainer")) return 1;

  FILE *f = fopen(data, "r");
  if (!f) {
    perror(data);
    return 1;
  }
  size_t cap = 1 << 20, n = 0;
  char *line = malloc(cap);
  while (fgets(line, (int)cap, f)) {
    char *text = json_string_field(line, "text");
    char *label = json_string_field(line, field);
    if (text && label) {
      char *labels = malloc(strlen(label) * 2 + strlen(field) + 16), *o = labels;
      o += sprintf(o, "{\"%s\": \"", field);
      for (const char *c = label; *c; c++) {
        if (*c == '"' || *c == '\\') *o++ = '\\';
        *o++ = *c;
      }
      strcpy(o, "\"}");
      if (!failed(tandem_trainer_add_example(trainer, text, strlen(text), labels,
                                             strlen(labels)),
                  "example"))
        n++;
      free(labels);
    }
    free(text);
    free(label);
  }
  free(line);
  fclose(f);
  printf("training on %zu examples from %s\n", n, data);
  if (failed(tandem_trainer_train(trainer, progress, NULL), "training")) return 1;

  char *report = NULL;
  if (!failed(tandem_trainer_report_json(trainer, &report), "report")) {
    const char *m = strstr(report, "\"valid_metrics\"");
    const char *acc = m ? strstr(m, "\"accuracy\":") : NULL;
    const char *f1 = m ? strstr(m, "\"macro_f1\":") : NULL;
    if (acc && f1)
      printf("validation accuracy %.4f, macro-F1 %.4f\n", atof(acc + 11), atof(f1 + 11));
    tandem_string_free(report);
  }

  char dir[] = "/tmp/tandem-example-XXXXXX";
  if (!mkdtemp(dir)) return 1;
  char bundle[64];
  snprintf(bundle, sizeof bundle, "%s/bundle", dir);
  if (failed(tandem_trainer_save(trainer, bundle, strlen(bundle)), "saving")) return 1;
  tandem_trainer_free(trainer);

  tandem_model *model = NULL;
  if (failed(tandem_model_load(backbone, bundle, strlen(bundle), &model), "loading")) return 1;
  tandem_backbone_free(backbone); /* the model keeps it alive */

  static const char *builtin[] = {
      "WINNER!! You have been selected for a $1000 prize. Call 09061701461 now to claim",
      "Are we still on for dinner tonight? I'll be there around 7",
      "URGENT: your account is suspended, verify at http://bit.ly/x now",
  };
  const char **texts = arg < argc ? (const char **)&argv[arg] : builtin;
  size_t count = arg < argc ? (size_t)(argc - arg) : sizeof builtin / sizeof builtin[0];
  tandem_predictions *p = NULL;
  if (failed(tandem_model_predict(model, texts, NULL, count, &p), "predicting")) return 1;
  for (size_t i = 0; i < count; i++) {
    float probs[16] = {0};
    size_t k = tandem_predictions_class_count(p, 0);
    const char *label = tandem_predictions_label(p, i, 0, 0);
    if (k <= 16) failed(tandem_predictions_probabilities(p, i, 0, probs, 16), "probabilities");
    float best = 0;
    for (size_t j = 0; j < k && j < 16; j++)
      if (label && strcmp(tandem_predictions_class_name(p, 0, j), label) == 0) best = probs[j];
    printf("%-6s (p=%.3f)  %s\n", label ? label : "?", best, texts[i]);
  }
  tandem_predictions_free(p);
  tandem_model_free(model);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : 1;
}
