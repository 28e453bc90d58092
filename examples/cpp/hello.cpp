// The smallest complete tandem program in C++ (examples/c/hello.c through tandem.hpp): train an
// intent classifier from a few examples held in memory, save it as a bundle, load it back and
// classify new text.
//
//   c++ -std=c++17 hello.cpp $(pkg-config --cflags --libs tandem) -o hello
//
// Needs the backbone and ONNX Runtime that scripts/setup.sh installs (or TANDEM_HOME).
#include <cstdio>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "tandem.hpp"

int main() {
  const std::pair<const char*, const char*> examples[] = {
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

  try {  // every failing call throws tandem::Error; each handle frees itself
    const auto backbone = tandem::Backbone::load();  // the default backbone, fp32, all cores

    // One multiclass task named "intent"; config keys are those of docs/config.toml.
    tandem::Trainer trainer(backbone, R"({"tasks": [{"name": "intent", "kind": "multiclass"}],
        "config": {"mode": "embedding_only", "seed": 0, "valid_fraction": 0.34}})");
    for (const auto& [text, intent] : examples) trainer.add_example(text, {{"intent", intent}});
    trainer.train();  // no progress callback
    trainer.save("hello-bundle");

    const auto model = tandem::Model::load(backbone, "hello-bundle");
    const std::vector<std::string> texts = {"you billed me two times", "the app won't start"};
    const auto preds = model.predict(texts);
    const auto classes = preds.class_names(0);
    for (std::size_t row = 0; row < preds.size(); ++row) {
      const auto probs = preds.probabilities(row);  // task 0, in class order
      std::printf("%-10s", preds.label(row).c_str());
      for (std::size_t c = 0; c < classes.size(); ++c) {
        std::printf(" %s=%.2f", classes[c].c_str(), probs[c]);
      }
      std::printf("  %s\n", texts[row].c_str());
    }
  } catch (const std::exception& e) {  // tandem::Error's what() is "[code_name] message"
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
