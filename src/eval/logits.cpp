#include "eval/logits.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace resnet {

at::Tensor compute_logits(ResNetImpl& model, const ImageSet& set, const Normalizer& normalizer, int64_t batch_size,
                          int64_t limit) {
  const bool was_training = model.is_training();
  model.eval();
  c10::NoGradGuard no_grad;
  const auto device = model.parameters().front().device();
  const Normalizer norm = normalizer.to(device);
  const int64_t n = limit > 0 ? std::min(limit, set.size()) : set.size();
  std::vector<at::Tensor> out;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t b = std::min(batch_size, n - start);
    at::Tensor images = norm(set.images.narrow(0, start, b).to(device));
    out.push_back(model.forward(images).to(at::kCPU, at::kFloat));
  }
  if (was_training) model.train();
  return out.empty() ? at::empty({0, model.config().num_classes}) : at::cat(out);
}

}  // namespace resnet
