/* The smallest complete tandem program: train an intent classifier from a few examples held in
 * memory, save it as a bundle, load it back and classify new text.
 *
 *   cc hello.c $(pkg-config --cflags --libs tandem) -o hello && ./hello
 *
 * Needs the backbone and ONNX Runtime that scripts/setup.sh installs (or TANDEM_HOME). */
#include <stdio.h>
#include <string.h>

#include <tandem.h>

/* Prints and frees an error; returns 1 if there was one. */
static int check(tandem_error *err, const char *what) {
  if (!err) return 0;
  fprintf(stderr, "%s: [%s] %s\n", what, tandem_error_code_name(tandem_error_code(err)),
          tandem_error_message(err));
  tandem_error_free(err);
  return 1;
}

int main(void) {
  static const char *const examples[][2] = {
      {"I was charged twice this month", "billing"},
      {"Please refund my last payment", "billing"},
      {"How do I update my credit card?", "billing"},
      {"My invoice shows the wrong amount", "billing"},
      {"Can I get a receipt for my subscription?", "billing"},
      {"Why did my bill go up?", "billing"},
      {"The app crashes when I open it", "technical"},
      {"I can't log in, the page keeps loading", "technical"},
      {"The upload button does nothing", "technical"},
      {"I get an error 500 when saving", "technical"},
      {"Sync stopped working after the update", "technical"},
      {"The screen stays blank on my phone", "technical"},
  };
  const size_t n = sizeof examples / sizeof examples[0];

  tandem_backbone *backbone = NULL; /* NULL options: the default backbone, fp32, all cores */
  if (check(tandem_backbone_load(NULL, &backbone), "load backbone")) return 1;

  /* One multiclass task named "intent"; config keys are those of docs/config.toml. */
  const char *spec =
      "{\"tasks\": [{\"name\": \"intent\", \"kind\": \"multiclass\"}],"
      " \"config\": {\"mode\": \"embedding_only\", \"seed\": 0, \"valid_fraction\": 0.34}}";
  tandem_trainer *trainer = NULL;
  if (check(tandem_trainer_new(backbone, spec, strlen(spec), &trainer), "trainer")) return 1;
  for (size_t i = 0; i < n; i++) {
    char labels[64];
    snprintf(labels, sizeof labels, "{\"intent\": \"%s\"}", examples[i][1]);
    if (check(tandem_trainer_add_example(trainer, examples[i][0], strlen(examples[i][0]), labels,
                                         strlen(labels)),
              "add example"))
      return 1;
  }
  if (check(tandem_trainer_train(trainer, NULL, NULL), "train")) return 1; /* no progress callback */
  if (check(tandem_trainer_save(trainer, "hello-bundle", strlen("hello-bundle")), "save")) return 1;
  tandem_trainer_free(trainer);

  tandem_model *model = NULL;
  if (check(tandem_model_load(backbone, "hello-bundle", strlen("hello-bundle"), &model), "load"))
    return 1;
  tandem_backbone_free(backbone); /* the model keeps its own reference */

  const char *texts[] = {"you billed me two times", "the app won't start"};
  tandem_predictions *preds = NULL;
  if (check(tandem_model_predict(model, texts, NULL, 2, &preds), "predict")) return 1;
  for (size_t row = 0; row < 2; row++) {
    float probs[2];
    if (check(tandem_predictions_probabilities(preds, row, 0, probs, 2), "probabilities")) return 1;
    printf("%-10s %s=%.2f %s=%.2f  %s\n", tandem_predictions_label(preds, row, 0, 0),
           tandem_predictions_class_name(preds, 0, 0), probs[0],
           tandem_predictions_class_name(preds, 0, 1), probs[1], texts[row]);
  }
  tandem_predictions_free(preds);
  tandem_model_free(model);
  return 0;
}
