// The ImageNet family (He et al. 2015, §3.4, Table 1): stem -> 4 stages at 64/128/256/512 ->
// pool -> fc, with blocks [2,2,2,2] (18), [3,4,6,3] (34, 50), [3,4,23,3] (101), [3,8,36,3]
// (152); basic blocks up to 34, bottlenecks from 50. torchvision's architecture (the stride on
// the bottleneck's 3x3 conv, "v1.5"; projections where the shape changes, option B).
//   stem "imagenet": 7x7/2 conv + BN + ReLU + 3x3/2 max-pool; stem "cifar": 3x3/1 conv + BN + ReLU
//   (kuangliu/pytorch-cifar's ResNet-18 on 32x32 images).
#include <map>

#include "models/family.h"
#include "util/errors.h"

namespace resnet {
namespace {

const std::map<int, std::vector<int64_t>>& depths() {
  static const std::map<int, std::vector<int64_t>> table = {
      {18, {2, 2, 2, 2}}, {34, {3, 4, 6, 3}}, {50, {3, 4, 6, 3}}, {101, {3, 4, 23, 3}}, {152, {3, 8, 36, 3}}};
  return table;
}

const std::vector<int64_t>& stage_blocks(int depth) {
  const auto it = depths().find(depth);
  if (it == depths().end())
    throw InputError("model.depth: " + std::to_string(depth) +
                     " is not an ImageNet-family depth (18, 34, 50, 101, 152)");
  return it->second;
}

std::string natural_block(int depth) { return depth <= 34 ? "basic" : "bottleneck"; }

class ImageNet final : public Family {
 public:
  std::string name() const override { return "imagenet"; }
  std::string summary() const override {
    return "He et al. 2015 §3.4: ResNet-18/34 (basic), 50/101/152 (bottleneck), 4 stages at 64..512, as torchvision";
  }

  void resolve(ModelConfig& m) const override {
    if (m.width != 1) throw InputError("model.width: the imagenet family has none (WRN-d-k: model.family \"wide\")");
    stage_blocks(m.depth);
    const std::string natural = natural_block(m.depth);
    if (m.block == "auto") m.block = natural;
    if (m.block != natural)
      throw InputError("model.block: ResNet-" + std::to_string(m.depth) + " uses " + natural + " blocks");
    if (m.stem == "auto") m.stem = "imagenet";
    if (!m.preact) m.preact = false;
    if (m.shortcut == "auto") m.shortcut = "B";
  }

  NetworkSpec spec(const ModelConfig& m) const override {
    NetworkSpec s;
    s.stage_blocks = stage_blocks(m.depth);
    s.block = natural_block(m.depth);
    s.stem_channels = 64;
    s.stage_planes = {64, 128, 256, 512};
    const bool imagenet_stem = m.stem != "cifar";
    s.stem_kernel = imagenet_stem ? 7 : 3;
    s.stem_stride = imagenet_stem ? 2 : 1;
    s.stem_pool = imagenet_stem;
    return s;
  }

  std::string model_name(const ModelConfig& m) const override {
    const std::string kind = m.residual ? (m.preact.value_or(false) ? "preact-resnet" : "resnet") : "plain";
    return kind + "-" + std::to_string(m.depth) + "-imagenet";
  }

  bool from_stages(const StageKeys& k, ModelConfig& m) const override {
    for (const auto& [depth, blocks] : depths()) {
      if (blocks != k.blocks || (depth >= 50) != k.bottleneck) continue;
      m.family = "imagenet";
      m.depth = depth;
      m.block = natural_block(depth);
      m.stem = k.stem_kernel == 7 ? "imagenet" : "cifar";
      return true;
    }
    return false;
  }

  std::vector<KnownCode> known_codes() const override {
    return {
        {"kuangliu", "kuangliu/pytorch-cifar",
         [](const ModelConfig& m, bool) { return !m.preact.value_or(false) && m.stem == "cifar"; }, "", kCifarMean,
         kCifarStd},
        {"torchvision", "torchvision",
         [](const ModelConfig& m, bool) { return !m.preact.value_or(false) && m.stem == "imagenet"; }, "",
         kImageNetMean, kImageNetStd},
    };
  }

  std::string torchvision_mismatch(const ModelConfig& m) const override {
    if (!m.residual) return "torchvision has no plain networks";
    if (m.preact.value_or(false)) return "torchvision has no pre-activation ResNets";
    if (m.shortcut != "B") return "torchvision's ResNets use shortcut B, this one " + m.shortcut;
    return "";
  }
};

}  // namespace

const Family& imagenet_family() {
  static const ImageNet family;
  return family;
}

}  // namespace resnet
