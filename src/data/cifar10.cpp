#include "data/cifar10.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/budgets.h"
#include "util/errors.h"
#include "util/json_io.h"

namespace resnet {
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kDefaultClassNames = {"airplane", "automobile", "bird",  "cat",  "deer",
                                                     "dog",      "frog",       "horse", "ship", "truck"};

const char* kHowToGet = "get it with scripts/get_cifar10.sh (or --from PATH), or point --data-dir / $CIFAR10_DIR at it";

int64_t file_records(const std::string& path) {
  std::error_code ec;
  const auto bytes = fs::file_size(path, ec);
  if (ec) throw InputError(path + ": cannot read (" + ec.message() + "); " + kHowToGet);
  if (bytes == 0) throw InputError(path + ": empty file (0 bytes; truncated download?)");
  if (bytes % kCifarRecordBytes != 0)
    throw InputError(path + ": size " + std::to_string(bytes) + " bytes is not a whole number of " +
                     std::to_string(kCifarRecordBytes) + "-byte CIFAR-10 records (truncated or not CIFAR-10)");
  return static_cast<int64_t>(bytes / kCifarRecordBytes);
}

// The class names of batches.meta.txt (one a line), else the standard ones. The file is read
// as any user file is (a regular file of at most budget::kSmallTextBytes: a FIFO or /dev/zero in
// its place is refused), and each name is kept printable: control characters (a terminal's escape
// sequences) escaped, at most 40 bytes of it.
std::vector<std::string> class_names(const std::string& dir) {
  const std::string path = (fs::path(dir) / "batches.meta.txt").string();
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return kDefaultClassNames;
  const std::string text = read_text_file(path, budget::kSmallTextBytes);
  std::vector<std::string> names;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) names.push_back(excerpt(line, 40));
  }
  return names.size() == kDefaultClassNames.size() ? names : kDefaultClassNames;
}

}  // namespace

ImageSet read_cifar10_files(const std::vector<std::string>& paths) {
  int64_t total = 0;
  std::vector<int64_t> counts;
  for (const auto& p : paths) counts.push_back(file_records(p)), total += counts.back();

  // Read straight into one [N, 3073] buffer, then split label and pixel columns.
  at::Tensor raw = at::empty({total, kCifarRecordBytes}, at::kByte);
  char* dst = reinterpret_cast<char*>(raw.data_ptr<uint8_t>());
  for (size_t f = 0; f < paths.size(); ++f) {
    std::ifstream in(paths[f], std::ios::binary);
    const auto bytes = static_cast<std::streamsize>(counts[f] * kCifarRecordBytes);
    if (!in.read(dst, bytes)) throw InputError(paths[f] + ": short read");
    // A label outside 0..9 means the file is corrupt or not CIFAR-10.
    for (int64_t r = 0; r < counts[f]; ++r) {
      const auto label = static_cast<unsigned char>(dst[r * kCifarRecordBytes]);
      if (label >= kCifarClasses)
        throw InputError(paths[f] + ": record " + std::to_string(r) + " has label " + std::to_string(label) +
                         " (expected 0-9)");
    }
    dst += bytes;
  }
  ImageSet set;
  set.labels = raw.select(1, 0).to(at::kLong);  // int64 [N]
  set.images = raw.narrow(1, 1, kCifarRecordBytes - 1).reshape({total, 3, 32, 32}).contiguous();
  return set;
}

void write_cifar10_file(const std::string& path, const ImageSet& set) {
  const int64_t n = set.size();
  at::Tensor raw = at::empty({n, kCifarRecordBytes}, at::kByte);
  raw.select(1, 0).copy_(set.labels.to(at::kByte));
  raw.narrow(1, 1, kCifarRecordBytes - 1).copy_(set.images.reshape({n, kCifarRecordBytes - 1}));
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(raw.data_ptr<uint8_t>()), n * kCifarRecordBytes);
  if (!out) throw std::runtime_error(path + ": write failed");
}

Cifar10 load_cifar10(const std::string& dir, bool with_train) {
  if (!fs::is_directory(dir)) throw InputError("CIFAR-10 folder " + dir + " does not exist; " + kHowToGet);
  Cifar10 data;
  auto need = [&](const std::string& name) {
    const std::string p = (fs::path(dir) / name).string();
    if (!fs::exists(p)) throw InputError(p + ": missing CIFAR-10 file; " + kHowToGet);
    return p;
  };
  if (with_train) {
    std::vector<std::string> files;
    for (int i = 1; i <= 5; ++i) files.push_back(need("data_batch_" + std::to_string(i) + ".bin"));
    const int64_t per_file = file_records(files[0]);
    for (const auto& f : files) {
      if (file_records(f) != per_file)
        throw InputError(f + ": holds " + std::to_string(file_records(f)) + " records but " + files[0] + " holds " +
                         std::to_string(per_file) + " (truncated file?)");
    }
    data.train = read_cifar10_files(files);
  }
  data.test = read_cifar10_files({need("test_batch.bin")});

  data.class_names = class_names(dir);
  return data;
}

std::string resolve_data_dir(const std::string& flag, const DataConfig& data) {
  if (!flag.empty()) return flag;
  if (!data.dir.empty()) return data.dir;
  if (const char* env = std::getenv("CIFAR10_DIR"); env && *env) return env;
  return "data/cifar-10-batches-bin";
}

Splits make_splits(const Cifar10& data, const DataConfig& config) {
  Splits s;
  ImageSet train = data.train;
  if (train.size() > 0) {
    if (config.train_limit > 0 && config.train_limit < train.size()) {
      train.images = train.images.narrow(0, 0, config.train_limit);
      train.labels = train.labels.narrow(0, 0, config.train_limit);
    }
    if (config.val_size >= train.size())
      throw InputError("data.val_size: " + std::to_string(config.val_size) + " leaves no training images (have " +
                       std::to_string(train.size()) + ")");
    if (config.val_size > 0) {
      // A fixed rule of (val_seed, n): the same images are held out on every run and resume.
      at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(config.val_seed));
      at::Tensor perm = at::randperm(train.size(), gen, at::kLong);
      at::Tensor val_idx = std::get<0>(perm.narrow(0, 0, config.val_size).sort());
      at::Tensor train_idx = std::get<0>(perm.narrow(0, config.val_size, train.size() - config.val_size).sort());
      s.val = {train.images.index_select(0, val_idx), train.labels.index_select(0, val_idx)};
      train = {train.images.index_select(0, train_idx), train.labels.index_select(0, train_idx)};
    }
  }
  s.train = train;
  s.test = data.test;
  if (config.test_limit > 0 && config.test_limit < s.test.size()) {
    s.test.images = s.test.images.narrow(0, 0, config.test_limit);
    s.test.labels = s.test.labels.narrow(0, 0, config.test_limit);
  }
  return s;
}

namespace {

uint64_t fnv1a_words(uint64_t hash, const at::Tensor& t) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  const at::Tensor c = t.contiguous();
  const auto* bytes = static_cast<const unsigned char*>(c.data_ptr());
  const size_t n = static_cast<size_t>(c.numel()) * c.element_size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes + i, 8);
    hash = (hash ^ word) * kPrime;
  }
  for (; i < n; ++i) hash = (hash ^ bytes[i]) * kPrime;
  return (hash ^ n) * kPrime;  // the length too: a shorter set is a different set
}

}  // namespace

std::string data_fingerprint(const Cifar10& data) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const ImageSet* set : {&data.train, &data.test}) {
    if (set->size() == 0) continue;
    hash = fnv1a_words(hash, set->images.to(at::kCPU));
    hash = fnv1a_words(hash, set->labels.to(at::kCPU));
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

}  // namespace resnet
