#pragma once
// C++ modules have no forward hooks, so a model reports what analysis needs through an
// optional recorder passed to forward(). A null recorder costs nothing.
#include <ATen/core/Tensor.h>

#include <string>

namespace resnet {

class ForwardRecorder {
 public:
  virtual ~ForwardRecorder() = default;
  // A conv layer's response: after its BN and before any ReLU or addition (He et al. Fig. 7).
  // In pre-activation blocks, where BN comes first, it is the conv output itself.
  virtual void on_layer(const std::string& name, const at::Tensor& response) {}
  // Block `index` (0-based over the network): input x, residual branch F(x) (undefined for a
  // lesioned block) and output y.
  virtual void on_block(int index, const at::Tensor& x, const at::Tensor& branch, const at::Tensor& y) {}
  // Output of the stem (stage 0) and of each stage 1..S.
  virtual void on_stage(int stage, const at::Tensor& output) {}
};

}  // namespace resnet
