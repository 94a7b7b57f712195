#include "serialize/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "util/budgets.h"
#include "util/errors.h"
#include "util/folder.h"
#include "util/json_io.h"

namespace resnet::safetensors {
namespace {

// std::map-backed JSON: a checkpoint's header has thousands of entries, and ordered_json's
// insertion and lookup are linear. The entries are put in file order (by offset) afterwards.
using ojson = nlohmann::json;

struct DtypeName {
  at::ScalarType dtype;
  const char* name;
};
constexpr DtypeName kDtypes[] = {{at::kFloat, "F32"}, {at::kBFloat16, "BF16"}, {at::kHalf, "F16"}, {at::kLong, "I64"}};

std::string quoted(const std::string& name) { return "'" + excerpt(name, 80) + "'"; }

uint64_t header_length(const std::string& head) {
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t(static_cast<unsigned char>(head[k])) << (8 * k);
  return n;
}

// One tensor's entry: {dtype, shape, data_offsets} within `data_size` bytes.
Entry parse_entry(const std::string& name, const ojson& entry, uint64_t data_size) {
  const std::string what = "tensor " + quoted(name);
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
  if (!dtype) throw InputError(what + ": dtype " + json_excerpt(dt) + " is not supported (F32, BF16, F16, I64)");
  if (!shape.is_array() || shape.size() > 16) throw InputError(what + ": shape is not a list of up to 16 sizes");
  Entry e{name, dtype->dtype, {}, 0, 0};
  // numel x item size, overflow-checked: F32 [2^62] would wrap to 0 bytes and match [0, 0].
  uint64_t bytes = c10::elementSize(dtype->dtype);
  for (const auto& s : shape) {
    if (!s.is_number_unsigned())
      throw InputError(what + ": shape " + json_excerpt(shape) + " has a size that is not a count");
    const uint64_t v = s.get<uint64_t>();
    if (v > uint64_t(INT64_MAX) || __builtin_mul_overflow(bytes, v, &bytes) || bytes > uint64_t(INT64_MAX))
      throw InputError(what + ": shape " + json_excerpt(shape) + " is too large");
    e.sizes.push_back(static_cast<int64_t>(v));
  }
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    throw InputError(what + ": data_offsets is not [begin, end]");
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  if (e.begin > e.end || e.end > data_size)
    throw InputError(what + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                     "] lie outside the " + std::to_string(data_size) + " data bytes");
  if (e.end - e.begin != bytes)
    throw InputError(what + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes, but " +
                     json_excerpt(dt) + " " + json_excerpt(shape) + " needs " + std::to_string(bytes));
  return e;
}

std::map<std::string, std::string> parse_metadata(const ojson& entry) {
  if (!entry.is_object()) throw InputError("__metadata__ is not an object");
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : entry.items()) {
    if (!v.is_string()) throw InputError("__metadata__ " + quoted(k) + " is not a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

// The ranges must tile [0, data_size): checked before any tensor is allocated, so that
// overlapping ranges cannot make a small file allocate its data many times over.
void check_tiling(const std::vector<Entry>& entries, uint64_t data_size) {
  std::vector<const Entry*> sorted;
  for (const auto& e : entries) sorted.push_back(&e);
  std::sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  for (const Entry* e : sorted) {
    if (e->begin != covered)
      throw InputError("tensor " + quoted(e->name) + ": data_offsets " +
                       (e->begin < covered ? "overlap another tensor's" : "leave a gap before them"));
    covered = e->end;
  }
  if (covered != data_size)
    throw InputError(std::to_string(data_size - covered) + " data bytes after the last tensor belong to none");
}

}  // namespace

const char* dtype_name(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (d.dtype == t) return d.name;
  throw InputError(std::string("dtype ") + c10::toString(t) + " cannot be written");
}

uint64_t needed_bytes(const std::string& first8, uint64_t file_size) {
  if (first8.size() < 8 || file_size < 8)
    throw InputError("truncated safetensors file (" + std::to_string(file_size) + " bytes)");
  const uint64_t n = header_length(first8);
  if (n > budget::kSafetensorsHeaderBytes)
    throw InputError("safetensors header length " + std::to_string(n) + " is implausible");
  if (n > file_size - 8)
    throw InputError("safetensors header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(file_size) + " bytes)");
  return 8 + n;
}

Header parse_header(const std::string& head, uint64_t file_size) {
  const uint64_t start = needed_bytes(head, file_size);
  if (head.size() < start) throw InputError("truncated safetensors header");
  const ojson json = parse_json(head.substr(8, start - 8), "safetensors header");
  if (!json.is_object()) throw InputError("safetensors header is not a JSON object");
  Header h;
  h.data_start = start;
  h.entries.reserve(json.size());
  const uint64_t data_size = file_size - start;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") h.metadata = parse_metadata(entry);
    else h.entries.push_back(parse_entry(name, entry, data_size));
  }
  check_tiling(h.entries, data_size);
  std::stable_sort(h.entries.begin(), h.entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  return h;
}

std::string header_bytes(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  ojson header = ojson::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw InputError("a tensor may not be called __metadata__");
    const uint64_t size = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {
        {"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((uint64_t{json.size()} >> (8 * k)) & 0xff);
  return out + json;
}

FileReader::FileReader(const std::string& path)
    : FileReader(path, open_for_reading(path, budget::kWeightsFileBytes, "a safetensors file")) {}

FileReader::FileReader(const std::string& path, ReadableFile file) : path_(path) {
  const uint64_t size = file.size;
  fd_ = file.fd.release();
  try {
    std::string head(std::min<uint64_t>(size, 8), '\0');
    if (!read_exactly(fd_, head.data(), head.size(), 0)) throw InputError("cannot read the header");
    head.resize(needed_bytes(head, size));
    if (!read_exactly(fd_, head.data() + 8, head.size() - 8, 8)) throw InputError("cannot read the header");
    header_ = parse_header(head, size);
  } catch (const InputError& e) {
    ::close(fd_);
    fd_ = -1;
    throw InputError(path + ": " + e.what());
  }
}

FileReader::~FileReader() {
  if (fd_ >= 0) ::close(fd_);
}

at::Tensor FileReader::read(const Entry& e) const {
  at::Tensor t = at::empty(e.sizes, at::TensorOptions().dtype(e.dtype));
  if (e.end > e.begin && !read_exactly(fd_, t.data_ptr(), e.end - e.begin, header_.data_start + e.begin))
    throw InputError(path_ + ": tensor " + quoted(e.name) + " cannot be read (the file changed while it was read?)");
  return t;
}

}  // namespace resnet::safetensors
