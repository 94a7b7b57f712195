// safetensors (https://github.com/huggingface/safetensors), read as strictly as the reference
// implementation: the header is bounded and must be valid JSON; each tensor's byte range must
// match its dtype and shape; the ranges must tile the data section exactly (no holes, no
// overlaps, nothing after the last one).
#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "interop/weights_file.h"
#include "util/errors.h"

namespace resnet {
namespace {

using ojson = nlohmann::ordered_json;

constexpr uint64_t kMaxHeader = 100'000'000;  // the reference implementation's limit

struct DtypeName {
  at::ScalarType dtype;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{at::kFloat, "F32"}, {at::kBFloat16, "BF16"}, {at::kHalf, "F16"}, {at::kLong, "I64"}};

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.dtype == t) return d.name;
  throw InputError(std::string("dtype ") + c10::toString(t) + " cannot be written");
}

}  // namespace

std::string encode_safetensors(const NamedTensors& tensors, const nlohmann::json& metadata) {
  ojson header = ojson::object();
  ojson meta = {{"format", "pt"}};  // what the safetensors library's torch helpers write
  if (!metadata.empty()) meta["resnet_train"] = metadata.dump();
  header["__metadata__"] = meta;
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    check_weight_dtype(t, name);
    if (name == "__metadata__") throw InputError("a tensor may not be called __metadata__");
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const uint64_t size = c.numel() * c.element_size();
    header[name] = {{"dtype", dtype_name(c.scalar_type())}, {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + size}}};
    offset += size;
    data.push_back(c);
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((uint64_t{json.size()} >> (8 * k)) & 0xff);
  out += json;
  out.reserve(out.size() + offset);
  for (const auto& c : data) out.append(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
  return out;
}

WeightsFile decode_safetensors(const std::string& bytes) {
  WeightsFile file;
  file.format = WeightsFormat::kSafetensors;
  if (bytes.size() < 8) throw InputError("truncated safetensors file (" + std::to_string(bytes.size()) + " bytes)");
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t(static_cast<unsigned char>(bytes[k])) << (8 * k);
  if (n > kMaxHeader) throw InputError("safetensors header length " + std::to_string(n) + " is implausible");
  if (n > bytes.size() - 8)
    throw InputError("safetensors header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(bytes.size()) + " bytes)");
  ojson header;
  try {
    header = ojson::parse(bytes.substr(8, n));
  } catch (const nlohmann::json::exception& e) {
    throw InputError("safetensors header is not valid JSON (" + first_line(e.what()) + ")");
  }
  if (!header.is_object()) throw InputError("safetensors header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;

  struct Range {
    uint64_t begin, end;
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> sizes;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw InputError("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items())
        if (!v.is_string()) throw InputError("__metadata__ " + quoted_name(k) + " is not a string");
      if (entry.contains("resnet_train")) {
        try {
          file.metadata = nlohmann::json::parse(entry["resnet_train"].get<std::string>());
        } catch (const nlohmann::json::exception& e) {
          throw InputError("__metadata__.resnet_train is not valid JSON (" + first_line(e.what()) + ")");
        }
        if (!file.metadata.is_object()) throw InputError("__metadata__.resnet_train is not a JSON object");
      }
      continue;
    }
    const std::string what = "tensor " + quoted_name(name);
    if (!entry.is_object() || entry.size() != 3 || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw InputError(what + ": expected {dtype, shape, data_offsets}");
    const auto& dt = entry["dtype"];
    const auto& shape = entry["shape"];
    const auto& off = entry["data_offsets"];
    if (!dt.is_string()) throw InputError(what + ": dtype is not a string");
    const DtypeName* dtype = nullptr;
    for (const auto& d : kDtypes)
      if (dt.get<std::string>() == d.name) dtype = &d;
    if (!dtype)
      throw InputError(what + ": dtype " + dt.dump() + " is not supported (F32, BF16, F16, I64)");
    if (!shape.is_array() || shape.size() > 16) throw InputError(what + ": shape is not a list of up to 16 sizes");
    std::vector<int64_t> sizes;
    uint64_t numel = 1;
    for (const auto& s : shape) {
      if (!s.is_number_unsigned()) throw InputError(what + ": shape " + shape.dump() + " has a size that is not a count");
      const uint64_t v = s.get<uint64_t>();
      if (v > uint64_t(std::numeric_limits<int64_t>::max()) || (v && numel > (uint64_t{1} << 62) / v))
        throw InputError(what + ": shape " + shape.dump() + " is too large");
      numel *= v;
      sizes.push_back(static_cast<int64_t>(v));
    }
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      throw InputError(what + ": data_offsets is not [begin, end]");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    const uint64_t item = c10::elementSize(dtype->dtype);
    if (begin > end || end > data_size)
      throw InputError(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                       "] lie outside the " + std::to_string(data_size) + " data bytes");
    if (end - begin != numel * item)
      throw InputError(what + ": data_offsets span " + std::to_string(end - begin) + " bytes, but " + dt.dump() +
                       " " + shape.dump() + " needs " + std::to_string(numel * item));
    ranges.push_back({begin, end, name, dtype->dtype, sizes});
  }
  // Checked before any tensor is allocated: overlapping ranges could otherwise make a small
  // file allocate its data many times over.
  std::vector<Range> sorted = ranges;
  std::sort(sorted.begin(), sorted.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  for (const auto& r : sorted) {
    if (r.begin != covered)
      throw InputError("tensor " + quoted_name(r.name) + ": data_offsets " + (r.begin < covered ? "overlap another tensor's" : "leave a gap before them"));
    covered = r.end;
  }
  if (covered != data_size)
    throw InputError(std::to_string(data_size - covered) + " data bytes after the last tensor belong to none");
  for (const auto& r : ranges) {  // header order
    at::Tensor t = at::empty(r.sizes, at::TensorOptions().dtype(r.dtype));
    if (r.end > r.begin) std::memcpy(t.data_ptr(), data + r.begin, r.end - r.begin);
    file.tensors.emplace_back(r.name, t);
  }
  return file;
}

}  // namespace resnet
