#pragma once
// Top-1 error, mean loss, per-class accuracy and the confusion matrix of a model on a set:
// BN in eval mode, no augmentation, batched, with one host sync at the end.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/batches.h"
#include "models/resnet.h"

namespace resnet {

struct EvalResult {
  double loss = 0;                         // mean cross-entropy
  double error = 0;                        // top-1 error, fraction in 0..1
  int64_t count = 0;
  at::Tensor confusion;                    // int64 [C, C]: row = true class, column = predicted
  std::vector<double> per_class_accuracy;  // fraction per true class (NaN-free: 0 if absent)

  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
};

struct EvalOptions {
  int64_t batch_size = 1000;
  bool channels_last = false;
  bool bf16 = false;  // autocast (CUDA only)
};

// The model is put in eval mode and back into the mode it had.
EvalResult evaluate(ResNetImpl& model, const ImageSet& set, const Normalizer& normalizer,
                    const EvalOptions& options);

// Human-readable report: error, per-class accuracy, confusion matrix.
std::string format_report(const EvalResult& result, const std::vector<std::string>& class_names);

}  // namespace resnet
