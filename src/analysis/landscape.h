#pragma once
// Loss landscapes (Li et al., NeurIPS 2018, "Visualizing the Loss Landscape of Neural Nets"):
//   surface      f(θ + αδ + βη) on a grid of (α, β) in [-R, R]², δ, η random directions
//   line         f(θ + αδ), α in [-R, R], one random direction
//   interpolate  f(θ0 + α(θ1 - θ0)), α in [-R, 1 + R]: from the first model to the second
// f is the mean cross-entropy (and the top-1 error) on a fixed set of images, no augmentation,
// BN in eval mode, evaluated in batches on the BN-folded eval path (eval/evaluate.h).
//
// Filter normalisation (Li et al. §4): a random direction d ~ N(0, I) is rescaled filter by
// filter, d_i <- d_i |θ_i| / |d_i|, where a filter is one output row of a conv or linear weight
// (d[i] over its input channels and kernel). Biases and BN parameters (1-D tensors) get no
// direction (zero) unless asked; then each entry is its own filter: d_j = sign(d_j) |θ_j|. BN's
// running statistics are not parameters and stay as trained (except when interpolating, where
// every float tensor of the state, statistics included, goes from θ0 to θ1).
//
// Directions are drawn from `seed` and written as safetensors beside the result: tensors
// "delta.<name>" and (surface) "eta.<name>" under the model's own tensor names, so anyone can
// recompute any point. Grid points are written as they finish (landscape_<i>.jsonl, one line
// each, appended and fsynced); a rerun with the same arguments skips them.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/analysis.h"
#include "parallel/communicator.h"
#include "serialize/safetensors.h"  // NamedTensors

namespace resnet {

struct LandscapeOptions {
  std::string kind = "surface";  // surface | line | interpolate
  int64_t grid = 21;             // points per axis
  double range = 1.0;            // R above
  uint64_t seed = 0;
  bool include_bn = false;   // also perturb biases and BN's gamma/beta
  int64_t batch_size = 500;  // evaluation batch
  bool bf16 = false;         // autocast where the runtime has it (CUDA)
  bool channels_last = false;
};

// Li et al.'s filter normalisation of `d` against the weight `w` (same shape), in place.
void filter_normalize(at::Tensor& d, const at::Tensor& w, bool include_bn);

// A filter-normalised Gaussian direction for every parameter of `model` (named_parameters
// order; CPU float32 from `gen`, which the draws advance).
NamedTensors random_direction(const ResNetImpl& model, at::Generator& gen, bool include_bn);

struct Directions {
  NamedTensors delta, eta;  // eta is empty for 1-D landscapes
};

// surface/line: drawn from item_generator(seed, 0, 0) on the CPU, the same for every rank;
// interpolate: delta = `to` - `from` over every float tensor of the state.
Directions make_directions(const ResNetImpl& from, const ResNetImpl* to, const LandscapeOptions& options);
void write_directions(const std::string& path, const Directions& d, const nlohmann::json& metadata);

// The coordinates along one axis: grid values from lo to hi.
std::vector<double> landscape_axis(const LandscapeOptions& options);

// Grid points, row-major: point i has alpha = axis[i % N], beta = axis[i / N] (1-D: beta 0).
struct LandscapeGrid {
  std::vector<double> axis;
  at::Tensor loss, error;        // double [points]
  int64_t computed = 0;          // points evaluated in this call, by all ranks (not read back)
  int64_t resumed = 0;           // points read back from the points file
  double seconds_per_point = 0;  // wall time per point evaluated in this call (all ranks together)
};

// Evaluates the landscape of `s` around its current weights (put back at the end) over `images`.
// The ranks split the grid points not yet in `points_file` (my_items over them) in rounds of one
// point each, sum each round, and the writer appends the round's points to the file. `key`
// names the arguments: the file's first line; a file made with other arguments is refused (an
// InputError naming it).
LandscapeGrid landscape_grid(Subject& s, const ImageSet& images, const Directions& d, const LandscapeOptions& options,
                             Communicator& comm, const std::string& points_file, const nlohmann::json& key);

// Runs the landscape of every subject (interpolate: the path from subjects[0] to subjects[1])
// into `dir`: directions_<i>.safetensors, landscape_<i>.jsonl and landscape.json (returned).
nlohmann::json landscape_json(std::vector<Subject>& subjects, const ImageSet& images, const nlohmann::json& images_desc,
                              const LandscapeOptions& options, Communicator& comm, const std::string& dir);

// landscape_contour.png + landscape_surface.png (surface: every subject side by side on one
// colour scale) or landscape.png (line, interpolate).
std::vector<std::string> plot_landscape(const nlohmann::json& result, const std::string& dir);

// A digest of a model's state (every tensor's name, shape and bytes): which weights a result
// belongs to.
std::string state_digest(const ResNetImpl& model);

}  // namespace resnet
