#pragma once
// Weight files the PyTorch ecosystem reads: a named list of tensors plus our metadata.
//
//   .pt           PyTorch's zip format (torch.save) holding a plain state_dict: a dict of
//                 name -> tensor that torch.load(path, weights_only=True) accepts (1.13 and 2.x).
//                 Metadata: the zip record "<archive>/extra/resnet_train.json", which torch.load
//                 ignores; the state_dict stays exactly what load_state_dict(strict=True) wants.
//   .safetensors  8-byte little-endian header length N, N bytes of JSON
//                 {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
//                 then the raw little-endian data. Metadata: __metadata__["resnet_train"] (JSON text).
//
// Readers never execute anything from a file: the .pt pickle is read by our own restricted
// unpickler (serialize/unpickler.h), which knows tensors, dicts, lists, tuples, numbers and strings.
// open_weights() learns names, dtypes and shapes without reading any tensor's bytes; load()
// then reads only the tensors asked for (a model's), and only the storages they need.
// Tensors are float32, bfloat16, float16 or int64, little-endian. Every reader error is an
// InputError whose one line names the file.
#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "serialize/safetensors.h"  // NamedTensors
#include "serialize/tensor_source.h"

namespace resnet {

enum class WeightsFormat { kPt, kSafetensors };

struct WeightsFile {
  // In file order. From open_weights(): meta tensors (dtype and shape, no data) until load()ed.
  NamedTensors tensors;
  nlohmann::json metadata = nlohmann::json::object();  // ours (see weights_metadata.h), or {}
  WeightsFormat format = WeightsFormat::kPt;
  std::string path;                      // names the file in errors
  std::shared_ptr<TensorSource> source;  // reads tensors[i] as id ids[i]
  std::vector<size_t> ids;

  // Reads tensors[i] for each i of `indices` from the file (InputError naming it).
  void load(const std::vector<size_t>& indices);
  void load_all();
};

// ".pt"/".pth"/".bin" -> kPt, ".safetensors" -> kSafetensors; `flag` ("pt"|"safetensors") wins
// when not empty. InputError naming the path or the flag otherwise.
WeightsFormat format_for(const std::string& path, const std::string& flag = "");
const char* format_name(WeightsFormat format);

// Writes atomically (never a half-written file). Tensors: float32/bfloat16/float16/int64, any
// device and layout (each is written as a contiguous CPU copy). std::runtime_error on I/O errors.
void write_weights(const std::string& path, WeightsFormat format, const NamedTensors& tensors,
                   const nlohmann::json& metadata);

// Reads a .pt or .safetensors file (told apart by content, not by name), every tensor.
WeightsFile read_weights(const std::string& path);
// The same from bytes already read; `path` only names the file in errors.
WeightsFile parse_weights(std::string bytes, const std::string& path);
// Names, dtypes and shapes (meta tensors) and metadata, checked; no tensor's bytes read yet.
WeightsFile open_weights(std::string bytes, const std::string& path);
// The same from the file (at most budget::kWeightsFileBytes): what a net is sized against before it
// is built.
WeightsFile open_weights(const std::string& path);

// Per format (bytes -> meta tensors and their source); InputError messages do not name the file,
// open_weights adds it.
using SharedBytes = std::shared_ptr<const std::string>;
std::string encode_pt(const NamedTensors& tensors, const nlohmann::json& metadata);
WeightsFile decode_pt(const SharedBytes& bytes);
std::string encode_safetensors(const NamedTensors& tensors, const nlohmann::json& metadata);
WeightsFile decode_safetensors(const SharedBytes& bytes);

// The dtypes a weight file may hold; InputError("<what>: dtype ... is not supported") otherwise.
void check_weight_dtype(const at::Tensor& tensor, const std::string& what);

// `name` as a one-line message may show it (control characters as \xNN, cut at 80), quoted.
std::string quoted_name(const std::string& name);

}  // namespace resnet
