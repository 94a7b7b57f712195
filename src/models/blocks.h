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
//   A  identity on a stride-2 subsample, extra channels zero-padded: no parameters (paper, CIFAR);
//      the zeros go after the identity channels, or half before and half after (`pad_split`)
//   B  1x1 conv + BN projection only where the shape changes
//   C  1x1 conv + BN projection on every block
// In pre-activation blocks projections see the pre-activated input and have no BN of their own.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>

#include "models/layout.h"
#include "models/recorder.h"

namespace resnet {

// A conv followed by an eval-mode BN, folded into one conv with a bias (inference only):
//   bn(conv(x)) = conv(x; w * g) + (beta - mean * g),  g = gamma / sqrt(var + eps).
// A null BN folds nothing (the conv as is). Weights keep the conv's memory format.
struct FoldedConv {
  at::Tensor weight, bias;
  int64_t stride = 1, padding = 0;
  at::Tensor operator()(const at::Tensor& x) const;
};
FoldedConv fold_conv_bn(const torch::nn::Conv2d& conv, const torch::nn::BatchNorm2d& bn);

// ReLU on a tensor nothing else holds (a fresh conv/BN/sum output) may overwrite it: autograd
// keeps the ReLU's result for backward, and neither BN nor the addition needs its own output.
// Where a recorder has seen the tensor (`recorded`) it must stay intact.
at::Tensor relu_fresh(at::Tensor t, bool recorded);

struct BlockOptions {
  int64_t in_channels = 16;
  int64_t planes = 16;  // width of the 3x3 convs; output = planes * expansion
  int64_t stride = 1;
  bool residual = true;
  char shortcut = 'A';  // 'A' | 'B' | 'C'
  bool preact = false;
  bool pad_split = false;  // option A: zero channels before and after x (else after it)
};

// What BasicBlock and Bottleneck share: both are a chain of (conv, BN) layers; they differ only
// in the convs they build. The forward pass is written once, here:
//   post-activation  o = x; for each layer: o = bn(conv(o)), ReLU between layers;  y = relu(o + s(x))
//   pre-activation   o = x; for each layer: o = conv(relu(bn(o)));                 y = o + s(x)
class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(BlockOptions options, int64_t expansion);
  at::Tensor forward(const at::Tensor& x, ForwardRecorder* recorder = nullptr, int index = -1);

  const BlockOptions& options() const { return options_; }
  int64_t out_channels() const { return options_.planes * expansion_; }
  // Shape changes here: the block downsamples or widens (Veit et al.: deleting these hurts).
  bool changes_shape() const { return options_.stride != 1 || options_.in_channels != out_channels(); }
  bool has_projection() const { return !projection_conv_.is_empty(); }

  // Lesion (Veit et al. 2016): a deleted block becomes its shortcut, y = s(x) (plain: the
  // parameter-free option-A map of x, i.e. the layer is simply skipped).
  bool lesioned = false;

  // Which way the gradient may leave the addition y = F(x) + s(x) backwards (Veit et al. 2016
  // §4, Fig. 6: the gradient along one path): kBranch only through F, kSkip only through s (a
  // plain block, having no skip, passes none). The other term is detached: forward values are
  // bit for bit those of kBoth, only the backward graph loses an edge.
  enum class GradientPath { kBoth, kBranch, kSkip };
  GradientPath gradient_path = GradientPath::kBoth;

  // Evaluation speed: with `on`, forward() in eval mode without a recorder runs every BN that
  // follows a conv folded into that conv (computed here from the current running statistics);
  // `off` drops the folded copies. Training mode always runs the real layers.
  void set_folded(bool on);

  // The BN whose gamma = 0 zeroes the residual branch (zero_init_residual).
  torch::nn::BatchNorm2d last_branch_bn() const { return bns_.back(); }

  // For exporters: the branch's layers (convs()[i], bns()[i] are conv<i+1>, bn<i+1>), each conv
  // with the BN that follows it folded in (post-activation: bn<i+1>; pre-activation: bn<i+2>,
  // none after the last conv), and the projection with its BN (weight undefined without one).
  const std::vector<torch::nn::Conv2d>& convs() const { return convs_; }
  const std::vector<torch::nn::BatchNorm2d>& bns() const { return bns_; }
  std::vector<FoldedConv> fold_layers() const;
  FoldedConv fold_projection() const;

 protected:
  // Registers layer k (1-based) of the branch as conv<k> and bn<k>.
  void add_layer(torch::nn::Conv2d conv, torch::nn::BatchNorm2d bn);
  // Registers the branch of a `block` ("basic" | "bottleneck") block: branch_convs (models/layout.h).
  void add_branch(const std::string& block);

  // s(x). `pre` is relu(bn1(x)) for pre-activation blocks (projections read it), else x.
  at::Tensor shortcut(const at::Tensor& x, const at::Tensor& pre);
  // y from the branch output and the shortcut; records, handles plain and lesion.
  at::Tensor combine(const at::Tensor& x, const at::Tensor& pre, const at::Tensor& branch, ForwardRecorder* recorder,
                     int index);
  at::Tensor lesion_output(const at::Tensor& x, const at::Tensor& pre, ForwardRecorder* recorder, int index);

  std::vector<torch::nn::Conv2d> convs_;
  std::vector<torch::nn::BatchNorm2d> bns_;
  BlockOptions options_;
  int64_t expansion_;
  torch::nn::Conv2d projection_conv_{nullptr};
  torch::nn::BatchNorm2d projection_bn_{nullptr};
  // set_folded(true): convs_[i] with the BN that follows it (post-activation: bns_[i];
  // pre-activation: bns_[i + 1], none after the last conv), and the projection with its BN.
  std::vector<FoldedConv> folded_;
  FoldedConv folded_projection_;
};

// F = bn2(conv3x3(relu(bn1(conv3x3(x)))))              (pre-activation: conv(relu(bn(.))) twice)
class BasicBlockImpl : public BlockImpl {
 public:
  static constexpr int64_t kExpansion = 1;
  explicit BasicBlockImpl(BlockOptions options);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
};

// F = bn3(conv1x1(relu(bn2(conv3x3(relu(bn1(conv1x1(x))))))))  (1x1 reduce, 3x3, 1x1 expand x4)
class BottleneckImpl : public BlockImpl {
 public:
  static constexpr int64_t kExpansion = 4;
  explicit BottleneckImpl(BlockOptions options);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
};

TORCH_MODULE(BasicBlock);
TORCH_MODULE(Bottleneck);

// Option A's parameter-free shortcut: subsample by `stride`, zero-pad channels up to `out`:
// the extra E = out - C channels after x's C, or (split) floor(E/2) before and the rest after.
at::Tensor option_a_shortcut(const at::Tensor& x, int64_t stride, int64_t out_channels, bool split = false);

}  // namespace resnet
