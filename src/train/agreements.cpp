#include "train/agreements.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <limits>
#include <stdexcept>

#include "models/resnet.h"
#include "train/sgd.h"

namespace resnet {

void Agreements::start_up(ResNetImpl& model, Sgd& sgd) {
  std::vector<at::Tensor> state = model.parameters();
  for (const auto& b : model.buffers()) state.push_back(b);
  for (const auto& m : sgd.momentum_buffers()) state.push_back(m);
  comm_.broadcast(state, "the start-up broadcast of the weights");
}

int Agreements::stop_signal(int mine, int64_t done, bool sync_point) {
  // On CUDA a data-parallel run reads the agreement back only at sync points or every 10 steps.
  if (comm_.size() > 1 && cuda_ && !sync_point && done % 10 != 0) return 0;
  return static_cast<int>(comm_.max(mine, "the stop-signal agreement"));
}

TrainStep::Totals Agreements::training_metrics(const TrainStep::Totals& mine) {
  at::Tensor sums =
      at::tensor({mine.loss_sum, static_cast<double>(mine.correct), static_cast<double>(mine.seen)}, at::kDouble);
  comm_.sum(sums, "the training metrics' all-reduce");
  TrainStep::Totals all;
  all.loss_sum = sums[0].item<double>();
  all.correct = static_cast<int64_t>(sums[1].item<double>());
  all.seen = static_cast<int64_t>(sums[2].item<double>());
  return all;
}

int64_t Agreements::first_non_finite_step(int64_t mine) {
  const int64_t none = std::numeric_limits<int64_t>::max();
  const int64_t first = comm_.min(mine < 0 ? none : mine, "the first non-finite loss's agreement");
  return first == none ? -1 : first;
}

void Agreements::batchnorm(ResNetImpl& model, int64_t step) {
  if (batchnorm_synced_at_ == step) return;
  comm_.broadcast(model.buffers(), "the BatchNorm statistics' broadcast");
  batchnorm_synced_at_ = step;
}

std::function<void(at::Tensor&)> Agreements::evaluation_sum() {
  return [this](at::Tensor& totals) { comm_.sum(totals, "the evaluation's all-reduce"); };
}

void Agreements::same_weights(ResNetImpl& model, Sgd& sgd, int64_t step) {
  if (comm_.size() == 1) return;  // nothing to compare with (and hashing costs a copy of everything)
  std::vector<at::Tensor> state = model.parameters();
  for (const auto& m : sgd.momentum_buffers()) state.push_back(m);
  const auto h = static_cast<int64_t>(hash_tensors(state));
  if (comm_.min(h, "the weight check") != comm_.max(h, "the weight check"))
    throw std::runtime_error(
        fmt::format("rank {}: the ranks' weights differ at step {} (they must stay identical); "
                    "not saving. Please report this with train.log",
                    comm_.rank(), step));
}

uint64_t hash_tensors(const std::vector<at::Tensor>& tensors) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& t : tensors) {
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    const size_t n = c.numel() * c.element_size();
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  return h;
}

}  // namespace resnet
