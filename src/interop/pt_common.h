#pragma once
// What the two torch.save readers share: pt_file.cpp (the zip format) and pt_legacy.cpp (the
// legacy stream of pickles, PyTorch < 1.6 or _use_new_zipfile_serialization=False).
#include <string>

#include "interop/weights_file.h"
#include "serialize/unpickler.h"

namespace resnet {

// The tensors of the state_dict pickled in `p` (see weights_file.h); `what` names the pickle
// in errors ("data.pkl").
NamedTensors state_dict_of(const pickle::Pickle& p, const std::string& what);

// True if `bytes` start with the legacy format's magic number.
bool is_legacy_pt(const std::string& bytes);
WeightsFile decode_legacy_pt(const std::string& bytes);

}  // namespace resnet
