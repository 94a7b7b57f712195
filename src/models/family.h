#pragma once
// A network family: everything that depends on model.family, in one object per family
// (src/models/families/<name>.cpp), listed once in models/family.cpp. Config validation, the
// builder, the naming schemes, ONNX and the reports ask the family; nothing else compares
// model.family with a string.
//
// A family says
//   - how a config resolves: its depth rule (once), its "auto" choices (block, stem, shortcut,
//     preact), what it refuses (resolve);
//   - the stages it builds (spec: stem, widths, blocks per stage), from which models/layout.h
//     derives every tensor's name and shape and ResNetImpl builds the modules. The ONNX export
//     reads the stem (kernel, stride, max-pool) from the same spec;
//   - how its nets appear under the naming schemes of other code (interop/naming.h): which stage
//     layouts in a foreign state_dict are its nets (from_stages), the published codes that write
//     them (known_codes), and whether torchvision has them;
//   - how reports name a net (model_name).
// No torch headers: config validation includes this.
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "models/layout.h"

namespace resnet {

// What a layer-scheme state_dict's keys say about its stages (interop/naming.cpp reads them).
struct StageKeys {
  std::vector<int64_t> blocks;  // blocks per stage
  std::vector<int64_t> planes;  // 3x3 width of each stage (its first block's conv1 output)
  bool bottleneck = false;      // the blocks have a conv3
  int64_t stem_kernel = 3;      // of conv1
};

// Published code whose state_dicts hold a family's nets under a layer naming scheme, and what
// its keys cannot say: option A's padding, the normaliser it trains with (0-1 scale).
struct KnownCode {
  std::string scheme;  // the naming scheme it writes (interop/naming.h)
  std::string source;  // "akamaster/pytorch_resnet_cifar10"
  // Whether a net with these (resolved) settings, and keys without any projection
  // (`no_projections`: option A or plain), is one of its nets.
  std::function<bool(const ModelConfig&, bool no_projections)> matches;
  std::string option_a_padding;  // "" = what the keys imply
  std::vector<double> mean, std;
};

class Family {
 public:
  virtual ~Family() = default;
  virtual std::string name() const = 0;
  // One line for --help-config and docs/config.md: what it builds and its depth rule.
  virtual std::string summary() const = 0;
  // Resolves the "auto" choices and checks what only the family knows (depth rule, width, block,
  // stem). InputError naming the key ("model.depth: 21 is not a CIFAR depth ...").
  virtual void resolve(ModelConfig& m) const = 0;
  // The stages of a resolved config. InputError("model.depth: ...") for a depth it cannot build.
  virtual NetworkSpec spec(const ModelConfig& m) const = 0;
  // "resnet-56", "plain-20", "preact-resnet-164", "resnet-18-imagenet", "wrn-28-10".
  virtual std::string model_name(const ModelConfig& m) const = 0;
  // The net whose stages a foreign state_dict shows (family, depth, block, width; the rest the
  // caller sets from the keys), or false if the family has none such.
  virtual bool from_stages(const StageKeys& keys, ModelConfig& m) const = 0;
  virtual std::vector<KnownCode> known_codes() const { return {}; }
  // Why torchvision's ResNet classes cannot hold this net; "" if they can.
  virtual std::string torchvision_mismatch(const ModelConfig& m) const {
    return "torchvision has no " + name() + "-family networks (use python/cifar_resnet.py)";
  }
};

// Every family, in the order docs and messages list them.
const std::vector<const Family*>& families();
// "cifar|imagenet|wide".
std::string family_names();
// By name; InputError("model.family: 'x' is not one of ...") for an unknown one.
const Family& family_of(const std::string& name);
inline const Family& family_of(const ModelConfig& m) { return family_of(m.family); }

// The normalisers the known codes train with (torchvision.transforms.Normalize, 0-1 scale).
inline const std::vector<double> kImageNetMean = {0.485, 0.456, 0.406}, kImageNetStd = {0.229, 0.224, 0.225};
// kuangliu/pytorch-cifar and chenyaofo/pytorch-cifar-models (the std is a widely copied
// miscalculation of CIFAR-10's, kept as those codes use it).
inline const std::vector<double> kCifarMean = {0.4914, 0.4822, 0.4465}, kCifarStd = {0.2023, 0.1994, 0.2010};

}  // namespace resnet
