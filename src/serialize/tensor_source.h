#pragma once
// Tensors a reader knows by name, dtype and shape before it reads any of their bytes: callers
// match names and shapes first (on meta tensors, which hold no data) and then read only the
// tensors they use (docs/safety.md: "materialised bytes bounded by what the matched names need").
#include <ATen/core/Tensor.h>

#include <cstddef>
#include <vector>

namespace resnet {

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  // The tensors with these ids (as the reader numbered them), read now: dense CPU tensors.
  // InputError (without the file's name: the caller adds it) if the file does not hold them.
  virtual std::vector<at::Tensor> load(const std::vector<size_t>& ids) = 0;
};

}  // namespace resnet
