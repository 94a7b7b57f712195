#pragma once
// What the two torch.save readers share: pt_file.cpp (the zip format) and pt_legacy.cpp (the
// legacy stream of pickles, PyTorch < 1.6 or _use_new_zipfile_serialization=False).
#include <string>

#include "interop/weights_file.h"
#include "serialize/unpickler.h"

namespace resnet {

// The tensors of the state_dict pickled in `p` (see weights_file.h): their names and the indices
// of their tensor values in `p`; `what` names the pickle in errors ("data.pkl").
std::vector<std::pair<std::string, size_t>> state_dict_of(const pickle::Pickle& p, const std::string& what);

// A WeightsFile of those tensors as meta tensors, read through `source` by value index.
WeightsFile pickled_weights(const pickle::Pickle& p, const std::vector<std::pair<std::string, size_t>>& entries,
                            std::shared_ptr<TensorSource> source);

// True if `bytes` start with the legacy format's magic number.
bool is_legacy_pt(const std::string& bytes);
WeightsFile decode_legacy_pt(const SharedBytes& bytes);

}  // namespace resnet
