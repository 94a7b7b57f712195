#include "train/sgd.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <c10/util/Exception.h>

namespace resnet {

SgdOptions sgd_options(const TrainConfig& t) {
  SgdOptions o;
  o.momentum = t.momentum;
  o.weight_decay = t.weight_decay;
  o.nesterov = t.nesterov;
  return o;
}

Sgd::Sgd(std::vector<at::Tensor> params, SgdOptions options) : params_(std::move(params)), options_(options) {
  TORCH_CHECK(!params_.empty(), "Sgd: no parameters");
  for (const auto& p : params_) buffers_.push_back(at::zeros_like(p));
  lr_ = at::zeros({}, params_.front().options());
}

void Sgd::set_lr(double lr) {
  lr_.fill_(-lr);
  lr_value_ = lr;
}

void Sgd::step() {
  c10::NoGradGuard no_grad;
  const double m = options_.momentum;
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    at::Tensor g = p.grad();
    if (!g.defined()) continue;  // 2.x leaves unused grads undefined
    if (options_.weight_decay != 0) g = g.add(p, options_.weight_decay);
    at::Tensor& buf = buffers_[i];
    if (m != 0) {
      buf.mul_(m).add_(g);
      g = options_.nesterov ? g.add(buf, m) : buf;
    }
    p.addcmul_(g, lr_);  // p += (-lr) * g, lr read from the tensor
  }
}

void Sgd::zero_grad() {
  for (auto& p : params_) {
    at::Tensor g = p.mutable_grad();
    if (g.defined()) g.zero_();
  }
}

}  // namespace resnet
