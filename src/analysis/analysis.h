#pragma once
// The experiments behind "why residual learning works": the subjects they study, and the
// measurements of the first analyses, each a function of a model and images (each analysis's
// unit, src/analysis/<name>.cpp, holds its measurement, its JSON, its plot and its flags;
// analysis/registry.h lists them):
//   responses  std of each conv layer's response, after BN and before ReLU/addition (He et al. Fig. 7)
//   gradients  |dL/dx| at every block input and |dL/dW| of every conv weight on one batch
//   residuals  |F(x)| / |x| per block: how far each block is from the identity
//   activations feature maps of chosen images at the stem and after each stage
//   lesion     test error with one block deleted, and with k random blocks deleted (Veit et al. 2016)
// landscape.h, hessian.h and paths.h have the geometry analyses'.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/batches.h"
#include "data/cifar10.h"
#include "models/resnet.h"

namespace resnet {

// A model under study, with what it needs to see images the way it was trained.
struct Subject {
  std::string label;  // e.g. "resnet-56 @64000", "plain-20 @init"
  ExperimentConfig config;
  ResNet model{nullptr};
  Normalizer normalizer;
  std::string note;  // for the user: what a foreign weights file's code does differently (weights_note)
};

// From a checkpoint (file or run folder); label "<kind>-<depth> @<step>".
Subject subject_from_checkpoint(const std::string& path, const c10::Device& device);
// From a weights file (.pt/.safetensors under any naming interop/weights.h loads: ours,
// torchvision's, the popular CIFAR codes') for the model `config` names; label
// "<kind>-<depth> (<file name>)". The normaliser is data.mean/data.std if the config sets them,
// else the file's metadata's, else fitted on `train` (the training images) as a new run would.
Subject subject_from_weights(const std::string& path, const ExperimentConfig& config, const ImageSet& train,
                             const c10::Device& device);
// A freshly initialised model of `config` (seeded by runtime.seed); label "<kind>-<depth> @init".
Subject subject_from_config(const ExperimentConfig& config, const Normalizer& normalizer, const c10::Device& device);

struct LayerStat {
  std::string name;
  double value = 0;
};

// Per conv layer: mean over channels of the per-channel std of its response (BN in eval mode).
std::vector<LayerStat> response_std(Subject& s, const ImageSet& images, int64_t batch_size);

struct GradientNorms {
  double loss = 0;
  std::vector<double> block_input;  // |dL/dx| at the input of block i (Frobenius, whole batch)
  std::vector<LayerStat> weights;   // |dL/dW| of each conv weight, forward order
};
// One forward/backward pass in training mode (as during training); the weights do not change.
GradientNorms gradient_norms(ResNetImpl& model, const at::Tensor& images, const at::Tensor& labels);

struct BlockRatio {
  double branch_norm = 0, input_norm = 0, ratio = 0;  // |F(x)|, |x|, |F(x)| / |x|
};
std::vector<BlockRatio> residual_ratios(Subject& s, const ImageSet& images, int64_t batch_size);

struct LesionOptions {
  int64_t draws = 4;  // random draws per k
  int64_t max_k = 0;  // 0 = every k up to the number of blocks
  int64_t batch_size = 500;
  uint64_t seed = 0;
};
struct LesionResult {
  double baseline_error = 0;
  std::vector<double> single;               // error with block i deleted
  std::vector<std::vector<double>> random;  // random[k-1]: errors of the draws with k deleted
};
LesionResult lesion_study(Subject& s, const ImageSet& test, const LesionOptions& options);

// Feature maps of image `index` of `images`: stage 0 (stem) .. S, each float [C, H, W] (CPU).
std::vector<at::Tensor> feature_maps(Subject& s, const ImageSet& images, int64_t index);

// JSON of each analysis over several subjects (the files resnet-analyze writes).
nlohmann::json responses_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size);
nlohmann::json gradients_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size);
nlohmann::json residuals_json(std::vector<Subject>& subjects, const ImageSet& images, int64_t batch_size);
nlohmann::json lesion_json(std::vector<Subject>& subjects, const ImageSet& test, const LesionOptions& options);

}  // namespace resnet
