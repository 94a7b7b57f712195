#include "interop/weights_file.h"

#include <c10/util/Exception.h>

#include <filesystem>
#include <new>
#include <set>

#include "interop/pt_common.h"
#include "util/budgets.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

std::string quoted_name(const std::string& name) { return "'" + excerpt(name, 80) + "'"; }

WeightsFormat format_for(const std::string& path, const std::string& flag) {
  if (flag == "pt") return WeightsFormat::kPt;
  if (flag == "safetensors") return WeightsFormat::kSafetensors;
  if (!flag.empty()) throw InputError("--format: '" + flag + "' is not one of pt|safetensors");
  if (ends_with(path, ".safetensors")) return WeightsFormat::kSafetensors;
  if (ends_with(path, ".pt") || ends_with(path, ".pth") || ends_with(path, ".bin")) return WeightsFormat::kPt;
  throw InputError(path + ": cannot tell the format from the name (.pt or .safetensors); pass --format");
}

const char* format_name(WeightsFormat format) { return format == WeightsFormat::kPt ? "pt" : "safetensors"; }

void check_weight_dtype(const at::Tensor& t, const std::string& what) {
  const auto d = t.scalar_type();
  if (d != at::kFloat && d != at::kBFloat16 && d != at::kHalf && d != at::kLong)
    throw InputError(what + ": dtype " + std::string(c10::toString(d)) +
                     " is not supported (float32, bfloat16, float16, int64)");
}

void write_weights(const std::string& path, WeightsFormat format, const NamedTensors& tensors,
                   const nlohmann::json& metadata) {
  const std::string bytes =
      format == WeightsFormat::kPt ? encode_pt(tensors, metadata) : encode_safetensors(tensors, metadata);
  write_file_atomic(path, bytes);
}

namespace {

// Runs `body`, turning whatever a reader of `path` throws into one InputError naming it.
template <typename F>
auto naming(const std::string& path, F&& body) {
  try {
    return body();
  } catch (const InputError& e) {
    throw InputError(path + ": " + e.what());
  } catch (const c10::Error& e) {  // anything LibTorch finds that we did not
    throw InputError(path + ": damaged weights file (" + excerpt(first_line(e.what_without_backtrace()), 120) + ")");
  } catch (const std::bad_alloc&) {
    throw InputError(path + ": damaged weights file (sizes beyond memory)");
  }
}

WeightsFile decode(const SharedBytes& bytes) {
  if (bytes->rfind("PK\x03\x04", 0) == 0) return decode_pt(bytes);
  if (bytes->size() >= 9 && (*bytes)[8] == '{') return decode_safetensors(bytes);
  if (is_legacy_pt(*bytes)) return decode_legacy_pt(bytes);
  throw InputError("neither a PyTorch .pt (zip) nor a .safetensors file");
}

}  // namespace

WeightsFile open_weights(std::string bytes, const std::string& path) {
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  WeightsFile file = naming(path, [&] { return decode(shared); });
  file.path = path;
  if (file.tensors.empty()) throw InputError(path + ": holds no tensors");
  std::set<std::string> seen;
  for (const auto& [name, t] : file.tensors) {
    if (!seen.insert(name).second) throw InputError(path + ": tensor " + quoted_name(name) + " appears twice");
    try {
      check_weight_dtype(t, "tensor " + quoted_name(name));
    } catch (const InputError& e) {
      throw InputError(path + ": " + e.what());
    }
  }
  return file;
}

void WeightsFile::load(const std::vector<size_t>& indices) {
  std::vector<size_t> want;
  for (size_t i : indices) want.push_back(ids.at(i));
  const std::vector<at::Tensor> got = naming(path, [&] { return source->load(want); });
  for (size_t k = 0; k < indices.size(); ++k) tensors[indices[k]].second = got[k];
}

void WeightsFile::load_all() {
  std::vector<size_t> all(tensors.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  load(all);
}

WeightsFile parse_weights(std::string bytes, const std::string& path) {
  WeightsFile file = open_weights(std::move(bytes), path);
  file.load_all();
  return file;
}

WeightsFile read_weights(const std::string& path) {
  return parse_weights(read_text_file(path, budget::kWeightsFileBytes), path);
}

WeightsFile open_weights(const std::string& path) {
  return open_weights(read_text_file(path, budget::kWeightsFileBytes), path);
}

}  // namespace resnet
