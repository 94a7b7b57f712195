#pragma once
// Top-1 error, mean loss, per-class accuracy and the confusion matrix of a model on a set:
// BN in eval mode, no augmentation, batched, with one host sync at the end.
#include <ATen/core/Tensor.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batches.h"
#include "models/resnet.h"

namespace resnet {

struct EvalResult {
  double loss = 0;   // mean cross-entropy
  double error = 0;  // top-1 error, fraction in 0..1
  int64_t count = 0;
  at::Tensor confusion;                    // int64 [C, C]: row = true class, column = predicted
  std::vector<double> per_class_accuracy;  // fraction per true class (NaN-free: 0 if absent)

  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

struct EvalOptions {
  EvalOptions(int64_t batch_size = 1000, bool channels_last = false, bool bf16 = false)
      : batch_size(batch_size), channels_last(channels_last), bf16(bf16) {}
  int64_t batch_size = 1000;
  bool channels_last = false;
  bool bf16 = false;  // autocast (CUDA only)
  // Data-parallel evaluation: this process evaluates its contiguous share of the set
  // ([r*N/n, (r+1)*N/n)) and `sum_over_ranks` adds the ranks' totals (confusion counts and summed
  // loss, one double tensor) in place, so every rank gets the result over the whole set: the same
  // counts as one process evaluating it, and the same loss to rounding of a double sum (each
  // image's loss is added in double, so the float rounding of per-batch sums does not enter).
  Shard shard;
  std::function<void(at::Tensor&)> sum_over_ranks;
};

// The model is put in eval mode and back into the mode it had.
EvalResult evaluate(ResNetImpl& model, const ImageSet& set, const Normalizer& normalizer, const EvalOptions& options);

// Human-readable report: error, per-class accuracy, confusion matrix.
std::string format_report(const EvalResult& result, const std::vector<std::string>& class_names);

}  // namespace resnet
