#pragma once
// safetensors (https://github.com/huggingface/safetensors), the format of weight files and of
// checkpoints here: an 8-byte little-endian header length N, N bytes of JSON
//   {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}}
// (padded with spaces to a multiple of 8), then the raw little-endian tensor data.
//
// Read as strictly as the reference implementation, and then some: the header is bounded
// (budget::kSafetensorsHeaderBytes) and must be valid JSON of bounded nesting without a key twice
// (util/json_io.h: the reference implementation keeps the last of two); each tensor's byte count (numel x item size,
// overflow-checked) must equal its range; the ranges must tile the data exactly (no holes, no overlaps, nothing after
// the last one), so the tensors together take exactly the file's data bytes: all of it is checked before anything is
// allocated. Dtypes: F32, BF16, F16, I64.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "util/folder.h"

namespace resnet {

// A state_dict: names in file order, tensors dense and contiguous on the CPU.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

namespace safetensors {

struct Entry {
  std::string name;
  at::ScalarType dtype;
  std::vector<int64_t> sizes;
  uint64_t begin, end;  // byte range within the data section
};

struct Header {
  std::vector<Entry> entries;                   // in file order (by data offset)
  std::map<std::string, std::string> metadata;  // __metadata__
  uint64_t data_start = 0;                      // 8 + N
};

// The header of a file of `file_size` bytes whose first min(file_size, 8 + N) bytes are `head`
// (call with the first 8 bytes to learn how many are needed: needed_bytes()). InputError
// (without the file name) for anything malformed.
uint64_t needed_bytes(const std::string& first8, uint64_t file_size);
Header parse_header(const std::string& head, uint64_t file_size);

// The header bytes (length + JSON + padding) for `tensors` laid out in order, each as a
// contiguous little-endian copy.
std::string header_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata);

// The name of a dtype in the format ("F32"...); InputError for a dtype it does not hold.
const char* dtype_name(at::ScalarType dtype);

// A safetensors file read in place: the header first, then each tensor straight from the file
// into its own memory (no copy of the whole file).
class FileReader {
 public:
  explicit FileReader(const std::string& path);            // InputError naming the path
  FileReader(const std::string& path, ReadableFile file);  // a file opened already
  ~FileReader();
  const Header& header() const { return header_; }
  at::Tensor read(const Entry& entry) const;  // a CPU tensor

 private:
  std::string path_;
  int fd_ = -1;
  Header header_;
};

}  // namespace safetensors
}  // namespace resnet
