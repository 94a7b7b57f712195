#pragma once
// The networks of He et al. 2015, built from a ModelConfig.
//
//   CIFAR family (§4.2): 3x3 conv (16) -> 3 stages of n blocks at 16/32/64 filters (strides
//     1/2/2) -> global average pool -> FC. depth = 6n+2 (BasicBlock) or 9n+2 (Bottleneck,
//     outputs 64/128/256).
//   ImageNet family (§3.4): stem -> 4 stages at 64/128/256/512 -> pool -> FC, with blocks
//     [2,2,2,2] (18), [3,4,6,3] (34, 50), [3,4,23,3] (101), [3,8,36,3] (152).
//     stem "imagenet": 7x7/2 conv + BN + ReLU + 3x3/2 max-pool; stem "cifar": 3x3/1 conv + BN + ReLU.
// Pre-activation networks end with BN + ReLU before the pool (He et al. 2016).
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "config/config.h"
#include "models/blocks.h"

namespace resnet {

// The layout a ModelConfig resolves to: what the paper's tables list.
struct NetworkSpec {
  std::string block;                 // basic | bottleneck
  int64_t stem_channels = 16;
  std::vector<int64_t> stage_planes;  // 3x3 widths per stage
  std::vector<int64_t> stage_blocks;  // blocks per stage
};

// Throws InputError("model.depth: ...") for a depth the family cannot build.
NetworkSpec network_spec(const ModelConfig& config);

class ResNetImpl : public torch::nn::Module {
 public:
  // `config` must have passed validate() (use make_model, which does).
  explicit ResNetImpl(const ModelConfig& config);

  // images: float [B, 3, H, W] (normalised) -> logits [B, num_classes]
  at::Tensor forward(const at::Tensor& images, ForwardRecorder* recorder = nullptr);

  const ModelConfig& config() const { return config_; }
  const NetworkSpec& spec() const { return spec_; }
  // Blocks in forward order; block i belongs to stage stage_of(i) (1-based).
  const std::vector<std::shared_ptr<BlockImpl>>& blocks() const { return blocks_; }
  int stage_of(size_t block) const { return block_stage_.at(block); }

  // Deletes (lesions) the given blocks; all others are restored.
  void set_lesioned(const std::vector<int>& blocks);

  // Folds every BN that follows a conv into that conv for eval-mode forwards without a recorder
  // (see BlockImpl::set_folded); the folded copies reflect the weights at the time of the call.
  void set_folded(bool on);

  // For exporters: the stem conv with its BN folded in (pre-activation: the conv alone), the
  // pre-activation final BN (null otherwise) and the classifier.
  FoldedConv fold_stem() const;
  const torch::nn::BatchNorm2d& final_bn() const { return final_bn_; }
  const torch::nn::Linear& fc() const { return fc_; }

 private:
  ModelConfig config_;
  NetworkSpec spec_;
  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};  // post-activation only
  torch::nn::BatchNorm2d final_bn_{nullptr}; // pre-activation only
  torch::nn::Linear fc_{nullptr};
  FoldedConv stem_folded_;
  std::vector<std::shared_ptr<BlockImpl>> blocks_;
  std::vector<int> block_stage_;
};
TORCH_MODULE(ResNet);

// Evaluation with folded BNs for the scope's lifetime: the model in eval mode, its BNs folded
// into the convs; on exit the folds are dropped and the train/eval mode restored.
class FoldedEval {
 public:
  explicit FoldedEval(ResNetImpl& model);
  ~FoldedEval();
  FoldedEval(const FoldedEval&) = delete;
  FoldedEval& operator=(const FoldedEval&) = delete;

 private:
  ResNetImpl& model_;
  bool was_training_;
};

// Validates (a copy of) the config and builds the model.
ResNet make_model(ModelConfig config);

// Stores every 4-D weight channels_last (LibTorch has no Module::to(memory_format)).
void to_channels_last(torch::nn::Module& module);

// "resnet-56", "plain-20", "preact-resnet-164", "resnet-18-imagenet": how reports name a model.
std::string model_name(const ModelConfig& config);

// Number of trainable parameters (the paper's "# params").
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace resnet
