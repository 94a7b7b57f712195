#pragma once
// The raw outputs of a model on a set, for comparing implementations (python/cifar_resnet.py,
// torchvision) image by image rather than through an error rate.
#include <ATen/core/Tensor.h>

#include "data/batches.h"
#include "models/resnet.h"

namespace resnet {

// images: uint8 [N, 3, 32, 32] (the set's first `limit` images; 0 = all), normalised with
// `normalizer` -> logits float [N, num_classes] on the CPU. Eval mode (BN with running
// statistics), the layers as they are (no BN folding), fp32; the model's mode is restored.
at::Tensor compute_logits(ResNetImpl& model, const ImageSet& set, const Normalizer& normalizer, int64_t batch_size,
                          int64_t limit = 0);

}  // namespace resnet
