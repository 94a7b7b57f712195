// Fuzz target: the weight-file readers (src/interop), as resnet-eval --weights and
// model.init_from use them on a file's bytes: .pt (zip + our restricted unpickler) or
// .safetensors, told apart by content.
// Checks, beyond "only InputError naming the file": what is accepted is a non-empty list of
// uniquely named, dense CPU tensors of a supported dtype, whose values can be read, and our
// metadata (if any) is a JSON object.
//
// Seeds: tests/fuzz/corpus/weights/ (small files from our writers and from Python's torch.save
// of an OrderedDict state_dict).
#include <ATen/ATen.h>

#include <set>
#include <string>

#include "fuzz_support.h"
#include "interop/weights_file.h"

using resnet::fuzz::expect_only_input_errors;
using resnet::fuzz::finding;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string name = "input.weights";
  resnet::WeightsFile file;
  if (!expect_only_input_errors([&] { file = resnet::parse_weights(bytes, name); }, name)) return 0;
  if (file.tensors.empty()) finding("accepted a file without tensors");
  if (!file.metadata.is_object()) finding("metadata that is not an object");
  std::set<std::string> names;
  for (const auto& [n, t] : file.tensors) {
    if (!names.insert(n).second) finding("accepted a duplicate name");
    if (!t.defined() || t.device() != at::kCPU || !t.is_contiguous()) finding("a tensor that is not dense on the CPU");
    const auto d = t.scalar_type();
    if (d != at::kFloat && d != at::kBFloat16 && d != at::kHalf && d != at::kLong) finding("accepted another dtype");
    if (t.numel() > 0) (void)t.to(at::kDouble).sum().item<double>();  // every value is readable
  }
  return 0;
}
