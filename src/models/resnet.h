#pragma once
// The networks of He et al. 2015 and 2016 (and of the other families in models/family.h), built
// from a ModelConfig: the layout its family declares (models/layout.h: stem, stages, blocks),
// as modules.
//
//   stem (conv, + BN + ReLU post-activation, + 3x3/2 max-pool for the imagenet stem) -> blocks
//   stage by stage (each stage after the first starts with stride 2) -> [pre-activation: final
//   BN + ReLU] -> global average pool -> fc.
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <vector>

#include "config/config.h"
#include "models/blocks.h"
#include "models/layout.h"

namespace resnet {

class ResNetImpl : public torch::nn::Module {
 public:
  // `config` must have passed validate() (use make_model, which does).
  explicit ResNetImpl(const ModelConfig& config);

  // images: float [B, 3, H, W] (normalised) -> logits [B, num_classes]
  at::Tensor forward(const at::Tensor& images, ForwardRecorder* recorder = nullptr);

  const ModelConfig& config() const { return config_; }
  const NetworkSpec& spec() const { return layout_.spec; }
  const NetworkLayout& layout() const { return layout_; }
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
  NetworkLayout layout_;
  torch::nn::Conv2d stem_conv_{nullptr};
  torch::nn::BatchNorm2d stem_bn_{nullptr};   // post-activation only
  torch::nn::BatchNorm2d final_bn_{nullptr};  // pre-activation only
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

// "resnet-56", "plain-20", "preact-resnet-164", "resnet-18-imagenet", "wrn-28-10": how reports
// name a model (its family's name for it).
std::string model_name(const ModelConfig& config);

// Number of trainable parameters (the paper's "# params").
int64_t count_parameters(const torch::nn::Module& module);

}  // namespace resnet
