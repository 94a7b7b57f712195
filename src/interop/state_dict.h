#pragma once
// A model's state_dict under two naming schemes:
//
//   native       our module names, which python/cifar_resnet.py reproduces:
//                stem_conv, stem_bn, block<i>.conv<k>/bn<k>, block<i>.shortcut_conv/shortcut_bn,
//                final_bn, fc  (blocks numbered 0.. through all stages)
//   torchvision  torchvision.models.resnet18/34/50/101/152: conv1, bn1,
//                layer<s>.<j>.conv<k>/bn<k>, layer<s>.<j>.downsample.0/1, fc  (s = stage 1..4,
//                j = block within the stage)
//
// Our ImageNet family is torchvision's architecture (stride on the bottleneck's 3x3 conv, "v1.5";
// projections only where the shape changes, i.e. option B), so the two names are one network.
// These are the names exports write; loads also read the other codes' names (naming.h).
// Order: PyTorch's (each module's parameters, then its buffers; modules as registered).
#include <map>
#include <string>

#include "config/config.h"
#include "interop/weights_file.h"
#include "models/resnet.h"

namespace resnet {

enum class Names { kNative, kTorchvision };
// "native" | "torchvision"; InputError("--names: ...") otherwise.
Names names_from_flag(const std::string& flag);
const char* names_name(Names names);

// The state (parameters and buffers, incl. BN's num_batches_tracked) under native names. The
// tensors are the model's own (not copies).
NamedTensors model_state(const ResNetImpl& model);

// Why `config` has no torchvision counterpart, "" if it has one (its family says: only the
// ImageNet family's post-activation residual nets with shortcut B). A "cifar" stem keeps the
// names; torchvision's conv1 and maxpool must then be swapped for a 3x3/1 conv and nn.Identity.
std::string torchvision_mismatch(const ModelConfig& config);

// native name -> torchvision name for every entry of model_state(model). Throws InputError
// (torchvision_mismatch) when the model has no torchvision counterpart.
std::map<std::string, std::string> torchvision_names(const ResNetImpl& model);

// model_state(model) under `names`.
NamedTensors named_state(const ResNetImpl& model, Names names);

// Before a model is built for a file's tensors: the net the resolved `config` declares
// (models/layout.h) must fit `file`, so that a file's metadata cannot make a small file a large
// allocation. With `native` names (checkpoints, our exports) the classifier's shape, the total of
// values and then every tensor's shape must be the file's; with another code's names the file
// must hold at least the values the net needs. InputError naming `path`, the key and the tensor.
void check_file_fits(const ModelConfig& config, const NamedTensors& file, const std::string& path, bool native);

}  // namespace resnet
