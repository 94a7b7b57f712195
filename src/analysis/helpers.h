#pragma once
// What the analysis units (src/analysis/<name>.cpp) share: running subjects over images, the
// images they take, and the pieces of their JSON and plots.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/analysis.h"

namespace CLI {
class App;
}

namespace resnet {

// What the geometry analyses (landscape, hessian, paths) read: the first `images` of `split`,
// and the seed of their random draws.
struct SplitFlags {
  std::string split = "train";
  uint64_t seed = 0;
  int64_t images = 0;
};
// --split, --seed and --images (default `images`); `seeds` says what the seed draws.
void add_split_flags(CLI::App& app, SplitFlags& flags, int64_t images, const std::string& seeds);

// Runs the subject's model over `images` in eval mode in batches, calling the recorder.
void forward_all(Subject& s, const ImageSet& images, int64_t batch_size, ForwardRecorder& rec);

// The first `n` images of `set` (all of them for n <= 0 or past its end).
ImageSet first_images(const ImageSet& set, int64_t n);

// The first `count` images of `split` ("train" | "test"), and how a result names them: the split,
// the count and a SHA-256 of their bytes (a resumed landscape must see the same images).
ImageSet named_images(const Cifar10& data, const std::string& split, int64_t count, nlohmann::json& desc);

// {"label", "depth", "residual", "family"}: how every analysis's JSON names a subject.
nlohmann::json subject_header(const Subject& s);

// rows[i][key] for every row; 0, 1, ..., n - 1 (+ start).
std::vector<double> column(const nlohmann::json& rows, const char* key);
std::vector<double> iota(size_t n, double start = 0);

// <dir>/<name>.
std::string file_in(const std::string& dir, const std::string& name);

}  // namespace resnet
