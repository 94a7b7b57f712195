#pragma once
// resnet-analyze's analyses. Each is one unit under src/analysis/ (<name>.cpp): its flags with
// their defaults, its run over the subjects, its JSON and its plot; registry.cpp lists them once.
// resnet-analyze's help, its subcommands, dispatch and plotting all come from this list.
//
// Adding one: a file src/analysis/<name>.cpp with a class deriving from Analysis and a
// make_<name>_analysis() (ARCHITECTURE.md shows a whole one), its name in RESNET_ANALYSES
// (registry.cpp) and its source in CMakeLists.txt.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "parallel/communicator.h"
#include "train/runtime.h"

namespace CLI {
class App;
}

namespace resnet {

// What resnet-analyze hands every analysis.
struct AnalysisInputs {
  std::vector<Subject>& subjects;  // checkpoints, weights files, fresh models, in command-line order
  const Cifar10& data;             // the test split; the training split too where needs_train_images()
  const Runtime& runtime;          // this rank's (precision, channels_last)
  Communicator& comm;              // one process, or the ranks of torchrun/srun
  std::string out_dir;             // where partial results may go (the writer writes the files)
};

class Analysis {
 public:
  virtual ~Analysis() = default;
  virtual std::string name() const = 0;     // its subcommand and file names: <name>.json, <name>*.png
  virtual std::string summary() const = 0;  // one line for --help
  // Registers its flags on its subcommand, bound to its own members (their defaults).
  virtual void add_flags(CLI::App& command) = 0;
  // Whether it reads training images (resnet-analyze loads them only then).
  virtual bool needs_train_images() const { return false; }
  // Whether its items split over the ranks of torchrun/srun; the others refuse a launcher.
  virtual bool splits_over_ranks() const { return false; }
  // <name>.json's content, computed on every rank (each takes its share where it splits).
  virtual nlohmann::json run(AnalysisInputs& in) = 0;
  // Draws its PNGs from that JSON (and what run() kept) into `dir`; returns the files written.
  virtual std::vector<std::string> plot(const nlohmann::json& result, const std::string& dir) = 0;
};

// A fresh instance of every analysis (flags at their defaults), in --help's order.
std::vector<std::unique_ptr<Analysis>> make_analyses();
// A fresh instance of the analysis named `name`, or null.
std::unique_ptr<Analysis> make_analysis(const std::string& name);

}  // namespace resnet
