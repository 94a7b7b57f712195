// Fuzz target: the weight-file readers (src/interop), as resnet-eval --weights and
// model.init_from use them on a file's bytes: .pt (zip + our restricted unpickler) or
// .safetensors, told apart by content. First names, dtypes and shapes (open_weights: meta
// tensors, nothing read yet), then the tensors a model of at most 64 MiB would take (in file
// order, as many as fit): only those are read, and only the storages they need.
// Checks, beyond "only InputError naming the file": what is accepted is a non-empty list of
// uniquely named tensors of a supported dtype; what is loaded is dense CPU tensors of the shapes
// announced, whose values can be read; our metadata (if any) is a JSON object. A reader that
// allocates without bound is a finding too: scripts/fuzz.sh runs this target under -rss_limit_mb.
//
// Seeds: tests/fuzz/corpus/weights/ (small files from our writers and from Python's torch.save
// of an OrderedDict state_dict, and the bound seeds: floods, deep JSON, duplicate keys) and the
// hostile files scripts/fuzz.sh makes (tests/tools/make_hostile_inputs.py: up to 1 MiB each).
#include <ATen/ATen.h>

#include <set>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "interop/weights_file.h"

using resnet::fuzz::expect_only_input_errors;
using resnet::fuzz::finding;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  const std::string name = "input.weights";
  resnet::WeightsFile file;
  if (!expect_only_input_errors([&] { file = resnet::open_weights(bytes, name); }, name)) return 0;
  if (file.tensors.empty()) finding("accepted a file without tensors");
  if (!file.metadata.is_object()) finding("metadata that is not an object");
  std::set<std::string> names;
  std::vector<size_t> wanted;
  int64_t model_bytes = 0;
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const auto& [n, t] = file.tensors[i];
    if (!names.insert(n).second) finding("accepted a duplicate name");
    if (!t.defined() || !t.is_meta()) finding("a tensor read before it was asked for");
    const auto d = t.scalar_type();
    if (d != at::kFloat && d != at::kBFloat16 && d != at::kHalf && d != at::kLong) finding("accepted another dtype");
    const int64_t b = t.numel() * static_cast<int64_t>(t.element_size());
    if (model_bytes + b <= (int64_t{64} << 20)) wanted.push_back(i), model_bytes += b;
  }
  std::vector<std::vector<int64_t>> shapes;
  for (size_t i : wanted) shapes.push_back(file.tensors[i].second.sizes().vec());
  if (!expect_only_input_errors([&] { file.load(wanted); }, name)) return 0;
  for (size_t k = 0; k < wanted.size(); ++k) {
    const at::Tensor& t = file.tensors[wanted[k]].second;
    if (!t.defined() || t.device() != at::kCPU || !t.is_contiguous()) finding("a tensor that is not dense on the CPU");
    if (t.sizes().vec() != shapes[k]) finding("a tensor whose shape is not the one announced");
    if (t.numel() > 0) (void)t.to(at::kDouble).sum().item<double>();  // every value is readable
  }
  return 0;
}
