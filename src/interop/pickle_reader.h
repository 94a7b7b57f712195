#pragma once
// A restricted unpickler for the data.pkl of a torch.save zip file, in the spirit of
// torch.load(weights_only=True): it runs no code and imports nothing. It knows the opcodes of
// pickle protocols 2-5 that build dicts, lists, tuples, numbers, strings, None and booleans, and
// exactly these globals:
//   collections.OrderedDict                          -> a dict (what model.state_dict() is)
//   torch._utils._rebuild_tensor_v2, _rebuild_parameter -> a tensor over a storage
//   torch.{Float,BFloat16,Half,Long}Storage          -> the storage's dtype
// Anything else (os.system, a class, another dtype's storage) is refused with its name.
// LibTorch 1.13's own unpickler cannot be used: it turns an OrderedDict into None
// (pytorch/pytorch#100741) and resolves any global it is given.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>

#include "interop/weights_file.h"

namespace resnet {

// Returns the bytes of storage `key` (the zip record data/<key>) as a 1-D tensor of `numel`
// elements of `dtype`; throws InputError if it is missing or has another size.
using StorageLoader = std::function<at::Tensor(const std::string& key, at::ScalarType dtype, int64_t numel)>;

// The state_dict pickled in `bytes`: the top-level dict's tensor values, in order. Entries that
// are not tensors (numbers, strings, an "epoch") are left out; a dict with no tensors but one
// "state_dict", "model_state_dict" or "model" entry holding them is read through. InputError
// (without the file name) for anything else.
NamedTensors unpickle_state_dict(const std::string& bytes, const StorageLoader& load_storage);

}  // namespace resnet
