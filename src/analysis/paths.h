#pragma once
// The paths gradients take (Veit et al. 2016, §4 and Fig. 6). Unrolled, n residual blocks
// y = F(x) + s(x) give 2^n paths from the first block's input to the last block's output: a path
// of length k goes through the branch F of k blocks and through the skip s of the other n - k,
// and there are C(n, k) of them (binomial). Veit's measurement: forward a batch, then
// backpropagate with, for k sampled blocks, the gradient flowing only through the branch and,
// for the others, only through the skip (forward values unchanged); the norm of the gradient at
// the first block's input, averaged over samples, is the gradient along one path of length k.
// Times the number of such paths it gives how much of the gradient comes from length k: almost
// all of it from short paths ("effective depth", ResNet-110: 5-17 blocks of 54).
//
// Exact identity behind it: at fixed forward values each block's backward map is linear,
// J_F + J_s, so the ordinary gradient is the sum of the path gradients over all 2^n subsets.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "analysis/analysis.h"
#include "parallel/communicator.h"

namespace resnet {

// C(n, k) for k = 0..n as doubles (Pascal's triangle: exact while below 2^53, n <= 56).
std::vector<double> path_counts(int64_t n);

// dL/dx0 at the first block's input x0 (the stem's output) for cross-entropy on (images,
// labels), BN in eval mode, when block i passes the gradient through its branch only where
// through_branch[i], else through its skip only. The model's blocks are left as they were.
// `logits` (optional) receives the forward's output.
at::Tensor path_gradient(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels,
                         const std::vector<bool>& through_branch, at::Tensor* logits = nullptr);

// The same with every block passing both ways: the ordinary gradient at x0.
at::Tensor ordinary_gradient(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels);

struct PathsOptions {
  int64_t samples = 10;  // random block subsets per path length k
  uint64_t seed = 0;
  double mass = 0.9;  // the effective range holds at least this share of the total
};

struct PathsResult {
  int64_t blocks = 0;
  std::vector<double> count;                   // C(n, k): paths of length k, k = 0..n
  std::vector<double> mean_norm;               // mean over samples of |dL/dx0| along one path of length k
  std::vector<double> std_norm;                // their std over samples
  std::vector<double> total;                   // count * mean_norm: the gradient that length k carries
  int64_t effective_lo = 0, effective_hi = 0;  // shortest range of lengths holding `mass` of the total
};

// The shortest range [lo, hi] of indices whose values sum to at least `mass` of the sum (the
// one with the larger sum when several are that short).
std::pair<int64_t, int64_t> shortest_range(const std::vector<double>& values, double mass);

// Veit's measurement on one batch. Work items (k, sample), (n + 1) * samples of them, are split
// over the ranks and summed; sample s of length k draws its blocks from item_generator(seed, k, s).
PathsResult gradient_paths(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels,
                           const PathsOptions& options, Communicator& comm);

// The paths analysis of each subject on the first `images` of `set` (normalised as trained).
nlohmann::json paths_json(std::vector<Subject>& subjects, const ImageSet& set, const PathsOptions& options,
                          Communicator& comm);
// paths.png: Veit Fig. 6 (path lengths, gradient per path length, total gradient per length).
std::vector<std::string> plot_paths(const nlohmann::json& result, const std::string& dir);

}  // namespace resnet
