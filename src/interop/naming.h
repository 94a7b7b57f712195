#pragma once
// How state_dicts name a ResNet's tensors: ours, and the conventions of the widely used PyTorch
// ResNet code, each a mapping from our module names.
//
//   native         stem_conv, stem_bn, block<i>.conv<k>/bn<k>, block<i>.shortcut_conv/shortcut_bn,
//                  final_bn, fc                 (blocks numbered 0.. through all stages)
//   layer schemes  conv1, bn1, layer<s>.<j>.conv<k>/bn<k>, layer<s>.<j>.<P>.0/<P>.1, bn, <H>
//                  (s = stage 1.., j = block within the stage; P the projection's name, H the head's)
//     torchvision  P = downsample, H = fc     torchvision, timm, chenyaofo/pytorch-cifar-models
//     kuangliu     P = shortcut,   H = linear kuangliu/pytorch-cifar, akamaster/pytorch_resnet_cifar10
//     and the two mixed variants (shortcut + fc, downsample + linear) that forks of those produce.
// Pre-activation nets: the final BN (before the pool) is "bn" under a layer scheme.
//
// Keys do not say everything: option A's padding (after or split), plain vs residual with option A
// and the normaliser leave no trace in a state_dict. guess_origin() names what the keys do say,
// and which known code they look like (whose padding and normaliser are known).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "interop/weights_file.h"
#include "models/resnet.h"

namespace resnet {

struct NamingScheme {
  std::string name;        // "native", "torchvision", "kuangliu", "shortcut+fc", "downsample+linear"
  std::string projection;  // layer schemes: "downsample" | "shortcut"; "" for native
  std::string head;        // "fc" | "linear"
  std::string used_by;     // who writes these names (messages, README)
  bool layered() const { return !projection.empty(); }
};

// Native first, then torchvision, kuangliu and the mixed variants.
const std::vector<NamingScheme>& naming_schemes();
// By name; throws std::out_of_range for an unknown one (names are ours, not the user's).
const NamingScheme& naming_scheme(const std::string& name);

// native name -> the scheme's name, for every entry of model_state(model).
std::map<std::string, std::string> scheme_names(const ResNetImpl& model, const NamingScheme& scheme);

// The scheme under which the most of the model's entries appear among `file_names` (the first
// such scheme on a tie, so native wins when the names are the same).
const NamingScheme& detect_scheme(const ResNetImpl& model, const std::vector<std::string>& file_names);

// What a state_dict's keys say about the network that wrote them (layer schemes only).
struct Origin {
  std::string source;        // known code it looks like ("akamaster/pytorch_resnet_cifar10"), or ""
  ModelConfig model;         // as far as the keys tell (validated; padding from the known source)
  bool plain_or_a = false;   // no projections anywhere: option A, or a plain net (the keys are the same)
  std::vector<double> mean;  // the normaliser the known source trains with (0-1 scale), or empty
  std::vector<double> std;
};
// nullopt when the keys do not describe a network we can build (or the scheme is native).
std::optional<Origin> guess_origin(const NamedTensors& tensors, const NamingScheme& scheme);

// "--set model.depth=56 --set model.option_a_padding=split": the settings of `origin` that
// `model` lacks, and (with_normaliser) the source's data.mean/data.std unless `data` (if given)
// has them already; "" when there are none.
std::string suggested_sets(const Origin& origin, const ModelConfig& model, const DataConfig* data,
                           bool with_normaliser = true);

// One sentence for messages: "these keys look like akamaster/pytorch_resnet_cifar10's resnet-56
// (option A, zeros split around the identity channels): try --set ...". "" when `sets` is empty.
std::string origin_hint(const Origin& origin, const std::string& sets);

}  // namespace resnet
