/* Load a trained bundle and classify texts: what a device runs. Every path can be given, so it
 * runs from a `tandem pack` directory with no cache directory at all.
 *
 *   cc predict.c $(pkg-config --cflags --libs tandem) -o predict
 *   ./predict [--backbone DIR] [--variant fp32|opt|int8] [--ort-lib PATH] MODEL [TEXT ...]
 *
 * From a pack (tandem pack MODEL --out PACK; PACK/README.txt says the same):
 *
 *   cc predict.c -IPACK/include -LPACK/lib -ltandem -Wl,-rpath,PACK/lib -o predict
 *   ./predict --backbone PACK/backbone --variant int8 --ort-lib PACK/lib/libonnxruntime.so \
 *       PACK/model "Who wrote Hamlet?"
 *
 * Without --backbone and --ort-lib, the backbone and ONNX Runtime come from the cache that
 * scripts/setup.sh fills ($TANDEM_HOME or ~/.cache/tandem; TANDEM_ORT_LIB names the library).
 * Without TEXT arguments, each line of standard input is a text. Prints one JSON object per
 * text (the format of `tandem predict`): every task's labels and probabilities. */
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

static int usage(void) {
  fprintf(stderr,
          "usage: predict [--backbone DIR] [--variant fp32|opt|int8] [--ort-lib PATH] MODEL "
          "[TEXT ...]\n");
  return 2;
}

/* Classifies `count` texts with `model` and prints one JSON line per text. */
static bool classify(const tandem_model *model, const char *const *texts, size_t count) {
  tandem_predictions *p = NULL;
  if (failed(tandem_model_predict(model, texts, NULL, count, &p), "predicting")) return false;
  char *json = NULL;
  bool ok = !failed(tandem_predictions_json(p, &json), "predictions");
  if (ok) {
    size_t n = strlen(json);
    printf("%s%s", json, n && json[n - 1] == '\n' ? "" : "\n"); /* one JSON line per text */
  }
  tandem_string_free(json);
  tandem_predictions_free(p);
  return ok;
}

int main(int argc, char **argv) {
  tandem_options *options = tandem_options_new();
  int arg = 1;
  for (; arg + 1 < argc && strncmp(argv[arg], "--", 2) == 0; arg += 2) {
    const char *name = argv[arg], *value = argv[arg + 1];
    tandem_error *e = NULL;
    if (strcmp(name, "--backbone") == 0)
      e = tandem_options_set_backbone_dir(options, value, strlen(value));
    else if (strcmp(name, "--variant") == 0)
      e = tandem_options_set_variant(options, value, strlen(value));
    else if (strcmp(name, "--ort-lib") == 0)
      e = tandem_options_set_ort_library(options, value, strlen(value));
    else {
      tandem_options_free(options);
      return usage();
    }
    if (failed(e, name)) return 2;
  }
  if (arg >= argc) {
    tandem_options_free(options);
    return usage();
  }
  const char *bundle = argv[arg++];

  tandem_backbone *backbone = NULL;
  tandem_error *e = tandem_backbone_load(options, &backbone);
  tandem_options_free(options);
  if (failed(e, "loading the backbone")) return 1;
  tandem_model *model = NULL;
  e = tandem_model_load(backbone, bundle, strlen(bundle), &model);
  tandem_backbone_free(backbone); /* the model keeps it alive */
  if (failed(e, "loading the model")) return 1;

  bool ok = true;
  if (arg < argc) {
    ok = classify(model, (const char *const *)&argv[arg], (size_t)(argc - arg));
  } else {
    static char line[1 << 16];
    while (ok && fgets(line, sizeof line, stdin)) {
      line[strcspn(line, "\r\n")] = '\0';
      const char *text = line;
      ok = classify(model, &text, 1);
    }
  }
  tandem_model_free(model);
  return ok ? 0 : 1;
}
