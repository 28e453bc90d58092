// classify: train a classification head on a demo dataset with the tandem C++ binding, print
// its validation and held-out metrics, save a bundle, reload it and classify a few new texts.
//
//   classify [DATA.jsonl] [--bundle DIR] [--limit N] [--epochs N] [--mode MODE]
//
// DATA.jsonl has one JSON object per line with string fields "text" and "label" (other fields
// are ignored); the default is data/sms_spam.jsonl in tandem's cache ($TANDEM_HOME, else
// ~/.cache/tandem). Lines without both fields as strings are skipped and counted.
// Build: bindings/cpp/run_test.sh (or see its g++ line).

#include "tandem.hpp"

#include "minijson.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

struct Example {
  std::string text;
  std::string label;
};

struct Args {
  std::string data;
  std::string bundle = "/tmp/tandem-classify-bundle";
  std::size_t limit = 3000;
  int epochs = 20;
  std::string mode = "embedding_only";
  std::vector<std::string> texts;  // --text, repeatable
};

void usage(const char* argv0) {
  std::cerr << "usage: " << argv0
            << " [DATA.jsonl] [--bundle DIR] [--limit N] [--epochs N] [--mode MODE] [--text T]...\n"
               "  DATA.jsonl  JSONL with string fields \"text\" and \"label\"\n"
               "              (default $TANDEM_HOME/data/sms_spam.jsonl, else under ~/.cache/tandem)\n"
               "  --bundle    where to save the trained bundle (default "
               "/tmp/tandem-classify-bundle)\n"
               "  --limit     use at most N examples (default 3000; 0 = all)\n"
               "  --epochs    head training epochs (default 20)\n"
               "  --mode      embedding_only, two_stage, joint or metadata_only\n"
               "  --text      a text to classify with the reloaded bundle (repeatable; default:\n"
               "              a few made-up texts for sms_spam/trec, else held-out examples)\n";
}

bool parse_args(int argc, char** argv, Args& args) {
  // tandem's cache directory: $TANDEM_HOME, else ${XDG_CACHE_HOME:-~/.cache}/tandem.
  std::string cache;
  if (const char* t = std::getenv("TANDEM_HOME"); t != nullptr && *t != '\0') {
    cache = t;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    cache = std::string(x) + "/tandem";
  } else {
    const char* home = std::getenv("HOME");
    cache = std::string(home ? home : ".") + "/.cache/tandem";
  }
  args.data = cache + "/data/sms_spam.jsonl";
  bool have_data = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else if (a == "--bundle") {
      args.bundle = value();
    } else if (a == "--limit") {
      args.limit = static_cast<std::size_t>(std::stoul(value()));
    } else if (a == "--epochs") {
      args.epochs = std::stoi(value());
    } else if (a == "--mode") {
      args.mode = value();
    } else if (a == "--text") {
      args.texts.push_back(value());
    } else if (!a.empty() && a[0] == '-') {
      throw std::invalid_argument("unknown option " + a);
    } else if (!have_data) {
      args.data = a;
      have_data = true;
    } else {
      throw std::invalid_argument("unexpected argument " + a);
    }
  }
  return true;
}

// Reads "text"/"label" string pairs from a JSONL file; counts lines it has to skip.
std::vector<Example> read_jsonl(const std::string& path, std::size_t& skipped) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<Example> out;
  std::string line;
  std::size_t lineno = 0;
  skipped = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      const minijson::Value v = minijson::parse(line);
      const minijson::Value* text = v.find("text");
      const minijson::Value* label = v.find("label");
      if (text && label && text->is_string() && label->is_string()) {
        out.push_back({text->string(), label->string()});
      } else {
        ++skipped;
      }
    } catch (const minijson::ParseError& e) {
      throw std::runtime_error(path + ":" + std::to_string(lineno) + ": " + e.what());
    }
  }
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Prints accuracy, macro F1 and the per-class lines of a metrics object.
void print_metrics(const char* title, const minijson::Value& m) {
  std::printf("%s: accuracy %.4f, macro F1 %.4f, n %.0f\n", title, m["accuracy"].number(),
              m["macro_f1"].number(), m["n"].number());
  if (const minijson::Value* per_class = m.find("per_class")) {
    for (const auto& c : per_class->items()) {
      std::printf("  %-12s precision %.3f  recall %.3f  F1 %.3f  support %.0f\n",
                  c["label"].string().c_str(), c["precision"].number(), c["recall"].number(),
                  c["f1"].number(), c["support"].number());
    }
  }
}

int run(const Args& args) {
  std::printf("tandem %s (C ABI %u)\n", tandem::version().c_str(), tandem::abi_version());

  std::size_t skipped = 0;
  std::vector<Example> data = read_jsonl(args.data, skipped);
  std::printf("read %zu examples from %s (%zu lines without string text/label skipped)\n",
              data.size(), args.data.c_str(), skipped);
  if (data.size() < 20) throw std::runtime_error("need at least 20 labelled examples");

  // A fixed-seed shuffle, then 80% to train (the trainer holds out its own validation split)
  // and 20% as a test set the trainer never sees.
  std::mt19937 rng(12345);
  std::shuffle(data.begin(), data.end(), rng);
  if (args.limit != 0 && data.size() > args.limit) data.resize(args.limit);
  const std::size_t n_train = data.size() * 4 / 5;

  std::map<std::string, std::size_t> counts;
  for (std::size_t i = 0; i < n_train; ++i) ++counts[data[i].label];
  std::printf("training on %zu examples, testing on %zu; classes:", n_train, data.size() - n_train);
  for (const auto& [label, n] : counts) std::printf(" %s=%zu", label.c_str(), n);
  std::printf("\n");

  tandem::Backbone backbone = tandem::Backbone::load();
  const std::string spec = R"({"tasks":[{"name":"label","kind":"multiclass"}],"config":{"mode":")" +
                           args.mode + R"(","seed":0,"head":{"stage":{"epochs":)" +
                           std::to_string(args.epochs) + "}}}}";
  tandem::Trainer trainer(backbone, spec);
  for (std::size_t i = 0; i < n_train; ++i) {
    trainer.add_example(data[i].text, tandem::Labels{{"label", data[i].label}});
  }

  const auto t0 = std::chrono::steady_clock::now();
  trainer.train([&](const tandem::Progress& p) {
    if (p.stage == "embed") {
      if (p.epoch + 1 == p.epochs) std::printf("  embedded the texts in %u chunks\n", p.epochs);
    } else if (p.epoch % 5 == 0 || p.epoch + 1 == p.epochs) {
      std::printf("  %s epoch %2u/%u  train loss %.4f  valid loss %.4f\n", p.stage.c_str(),
                  p.epoch + 1, p.epochs, p.train_loss, p.valid_loss);
    }
    std::fflush(stdout);
    return true;  // returning false would cancel (tandem::Error, ErrorCode::Cancelled)
  });
  const minijson::Value report = minijson::parse(trainer.report_json());
  std::printf("trained in %.2f s\n", seconds_since(t0));
  for (const auto& stage : report["stages"].items()) {
    std::printf("  stage %s: %.0f epochs run (early stopping may end it sooner), best epoch %.0f,"
                " valid loss %.4f\n",
                stage["stage"].string().c_str(), stage["epochs_run"].number(),
                stage["best_epoch"].number() + 1, stage["best_valid_loss"].number());
  }
  print_metrics("validation", report["valid_metrics"]);

  std::vector<std::string> test_texts;
  std::vector<tandem::Labels> test_labels;
  for (std::size_t i = n_train; i < data.size(); ++i) {
    test_texts.push_back(data[i].text);
    test_labels.push_back({{"label", data[i].label}});
  }
  print_metrics("held-out test", minijson::parse(trainer.evaluate(test_texts, test_labels)));

  trainer.save(args.bundle);
  std::printf("saved bundle to %s\n", args.bundle.c_str());

  // Serve from the saved bundle, as a deployed application would.
  const tandem::Model model = tandem::Model::load(backbone, args.bundle);
  std::vector<std::string> fresh = args.texts;
  std::vector<std::string> truth;  // known labels, when classifying held-out examples
  if (fresh.empty() && counts.count("spam") != 0) {
    fresh = {"Congratulations! You have won a free cruise. Call 0800 123 456 now to claim it.",
             "Are we still meeting for lunch tomorrow? I can bring the notes.",
             "WINNER!! You have been selected to receive a 900 GBP prize reward. Txt CLAIM to 81010",
             "sorry running late, be there in 10 min"};
  } else if (fresh.empty() && counts.count("HUM") != 0) {
    fresh = {"Who was the first person to walk on the moon ?", "How many calories are in an apple ?",
             "Where is Mount Everest ?", "What does NASA stand for ?"};
  } else if (fresh.empty()) {
    for (std::size_t i = n_train; i < data.size() && fresh.size() < 4; ++i) {
      fresh.push_back(data[i].text);
      truth.push_back(data[i].label);
    }
  }
  std::printf("classifying %zu new texts with the reloaded bundle (heads version %llu):\n",
              fresh.size(), static_cast<unsigned long long>(model.heads_version()));
  const tandem::Predictions predictions = model.predict(fresh);
  const std::size_t task = predictions.task_index("label").value_or(0);
  for (std::size_t r = 0; r < predictions.size(); ++r) {
    const std::vector<float> probs = predictions.probabilities(r, task);
    const float top = *std::max_element(probs.begin(), probs.end());
    std::string shown = fresh[r].substr(0, 90);
    std::replace(shown.begin(), shown.end(), '\n', ' ');
    std::printf("  %-10s p=%.3f  %s%s%s\n", predictions.label(r, task).c_str(), top,
                truth.empty() ? "" : ("[true: " + truth[r] + "] ").c_str(), shown.c_str(),
                fresh[r].size() > 90 ? "..." : "");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  try {
    parse_args(argc, argv, args);
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
    usage(argv[0]);
    return 2;
  }
  try {
    return run(args);
  } catch (const tandem::Error& e) {
    std::cerr << "classify: tandem error " << e.code() << " (" << e.code_name()
              << "): " << e.message() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "classify: " << e.what() << "\n";
  }
  return 1;
}
