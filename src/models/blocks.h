#pragma once
// The building blocks of He et al. 2015 (post-activation) and He et al. 2016 (pre-activation).
//
//   BasicBlock     y = relu(F(x) + s(x)),  F = bn2(conv3x3(relu(bn1(conv3x3(x)))))
//   Bottleneck     y = relu(F(x) + s(x)),  F = bn3(conv1x1(relu(bn2(conv3x3(relu(bn1(conv1x1(x))))))))
//   pre-activation y = F(x) + s(x),        F = conv(relu(bn(...))) ... (clean identity path)
//
// `residual = false` gives the plain twin: the same layers with the addition removed (and no
// shortcut modules, so with option A plain and residual nets have identical parameters).
// Shortcut s(x) where the shape changes (stride 2 or more channels):
//   A  identity on a stride-2 subsample, extra channels zero-padded: no parameters (paper, CIFAR)
//   B  1x1 conv + BN projection only where the shape changes
//   C  1x1 conv + BN projection on every block
// In pre-activation blocks projections see the pre-activated input and have no BN of their own.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include "models/recorder.h"

namespace resnet {

struct BlockOptions {
  int64_t in_channels = 16;
  int64_t planes = 16;     // width of the 3x3 convs; output = planes * expansion
  int64_t stride = 1;
  bool residual = true;
  char shortcut = 'A';     // 'A' | 'B' | 'C'
  bool preact = false;
};

// Common interface of BasicBlock and Bottleneck, so a network holds one list of blocks.
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(BlockOptions options, int64_t expansion);
  virtual at::Tensor forward(const at::Tensor& x, ForwardRecorder* recorder = nullptr,
                             int index = -1) = 0;

  const BlockOptions& options() const { return options_; }
  int64_t out_channels() const { return options_.planes * expansion_; }
  // Shape changes here: the block downsamples or widens (Veit et al.: deleting these hurts).
  bool changes_shape() const { return options_.stride != 1 || options_.in_channels != out_channels(); }
  bool has_projection() const { return !projection_conv_.is_empty(); }

  // Lesion (Veit et al. 2016): a deleted block becomes its shortcut, y = s(x) (plain: the
  // parameter-free option-A map of x, i.e. the layer is simply skipped).
  bool lesioned = false;

  // The BN whose gamma = 0 zeroes the residual branch (zero_init_residual).
  virtual torch::nn::BatchNorm2d last_branch_bn() = 0;

 protected:
  // s(x). `pre` is relu(bn1(x)) for pre-activation blocks (projections read it), else x.
  at::Tensor shortcut(const at::Tensor& x, const at::Tensor& pre);
  // y from the branch output and the shortcut; records, handles plain and lesion.
  at::Tensor combine(const at::Tensor& x, const at::Tensor& pre, const at::Tensor& branch,
                     ForwardRecorder* recorder, int index);
  at::Tensor lesion_output(const at::Tensor& x, const at::Tensor& pre, ForwardRecorder* recorder,
                           int index);

  BlockOptions options_;
  int64_t expansion_;
  torch::nn::Conv2d projection_conv_{nullptr};
  torch::nn::BatchNorm2d projection_bn_{nullptr};
};

class BasicBlockImpl : public BlockImpl {
 public:
  static constexpr int64_t kExpansion = 1;
  explicit BasicBlockImpl(BlockOptions options);
  at::Tensor forward(const at::Tensor& x, ForwardRecorder* recorder = nullptr,
                     int index = -1) override;
  torch::nn::BatchNorm2d last_branch_bn() override { return bn2; }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};

class BottleneckImpl : public BlockImpl {
 public:
  static constexpr int64_t kExpansion = 4;
  explicit BottleneckImpl(BlockOptions options);
  at::Tensor forward(const at::Tensor& x, ForwardRecorder* recorder = nullptr,
                     int index = -1) override;
  torch::nn::BatchNorm2d last_branch_bn() override { return bn3; }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

TORCH_MODULE(BasicBlock);
TORCH_MODULE(Bottleneck);

// Option A's parameter-free shortcut: subsample by `stride`, zero-pad channels up to `out`.
at::Tensor option_a_shortcut(const at::Tensor& x, int64_t stride, int64_t out_channels);

}  // namespace resnet
