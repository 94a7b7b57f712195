#pragma once
// SGD with momentum, Nesterov and weight decay, written with tensor ops and reading the learning
// rate from a 0-dim tensor on the parameters' device.
//
// Why not torch::optim::SGD: it reads lr as a double, and a CUDA graph bakes such scalars into
// the captured kernels. Here lr lives in a tensor updated in place before each step/replay, so
// one captured step serves the whole schedule. Momentum buffers start at zero, which makes the
// first step (buf = g) the same kernel as every other step (buf = m * buf + g): no branch to
// capture. Same update as torch.optim.SGD (dampening 0):
//   g = grad + wd * p;  buf = m * buf + g;  d = nesterov ? g + m * buf : buf;  p -= lr * d
#include <ATen/core/Tensor.h>

#include <vector>

#include "config/config.h"

namespace resnet {

struct SgdOptions {
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool nesterov = false;
};

// train.momentum, train.weight_decay and train.nesterov, each by name.
SgdOptions sgd_options(const TrainConfig& train);

class Sgd {
 public:
  Sgd(std::vector<at::Tensor> params, SgdOptions options);

  void set_lr(double lr);  // in place: lr_.fill_(-lr)
  double lr() const { return lr_value_; }
  void step();       // uses each parameter's .grad()
  void zero_grad();  // zeroes grads in place (keeps them allocated)

  const std::vector<at::Tensor>& params() const { return params_; }
  std::vector<at::Tensor>& momentum_buffers() { return buffers_; }
  const SgdOptions& options() const { return options_; }

 private:
  std::vector<at::Tensor> params_;
  std::vector<at::Tensor> buffers_;
  SgdOptions options_;
  at::Tensor lr_;  // 0-dim, holds -lr, on the parameters' device
  double lr_value_ = 0;
};

}  // namespace resnet
