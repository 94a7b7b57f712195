// Fuzz target: the CIFAR-10 binary reader (read_cifar10_files, load_cifar10, make_splits).
//
// The reader takes paths, so the input becomes files in a scratch folder. The first byte picks:
//   even: the rest is one file, read with read_cifar10_files;
//   odd:  a whole folder: for each of data_batch_1..5.bin and test_batch.bin a presence flag, a
//         record count (0-3) and a few bytes more or less than whole records, then its bytes;
//         an optional batches.meta.txt; then load_cifar10 and make_splits with small limits.
// Checks, beyond "only InputError naming the file or folder": what is accepted has whole
// records, one label per image, every label in 0..9, and splits that add up.
#include <ATen/ATen.h>
#include <fuzzer/FuzzedDataProvider.h>

#include <filesystem>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/cifar10.h"
#include "fuzz_support.h"

using resnet::fuzz::expect_only_input_errors;
using resnet::fuzz::finding;

namespace {

void check_set(const resnet::ImageSet& set, int64_t expected, const std::string& what) {
  if (set.size() != expected)
    finding(what + ": " + std::to_string(set.size()) + " images, expected " + std::to_string(expected));
  if (set.size() == 0) return;
  if (set.images.sizes() != at::IntArrayRef({expected, 3, 32, 32}) || set.images.scalar_type() != at::kByte)
    finding(what + ": images are not uint8 [N, 3, 32, 32]");
  if (set.labels.sizes() != at::IntArrayRef({expected}) || set.labels.scalar_type() != at::kLong)
    finding(what + ": labels are not int64 [N]");
  if (set.labels.min().item<int64_t>() < 0 || set.labels.max().item<int64_t>() > 9)
    finding(what + ": a label outside 0..9 was accepted");
}

void one_file(FuzzedDataProvider& in) {
  const std::string path = resnet::fuzz::scratch().file("one.bin");
  const std::vector<uint8_t> bytes = in.ConsumeRemainingBytes<uint8_t>();
  resnet::fuzz::write_bytes(path, bytes.data(), bytes.size());
  resnet::ImageSet set;
  if (expect_only_input_errors([&] { set = resnet::read_cifar10_files({path}); }, path))
    check_set(set, static_cast<int64_t>(bytes.size()) / resnet::kCifarRecordBytes, path);
}

void folder(FuzzedDataProvider& in) {
  namespace fs = std::filesystem;
  const std::string dir = resnet::fuzz::scratch().file("cifar");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const char* names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                         "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
  const bool with_train = in.ConsumeBool();
  for (const char* name : names) {
    if (!in.ConsumeBool()) continue;  // missing file
    const auto records = in.ConsumeIntegralInRange<int64_t>(0, 3);
    const auto trim = in.ConsumeIntegralInRange<int64_t>(-2, 2);
    const auto want = static_cast<size_t>(std::max<int64_t>(0, records * resnet::kCifarRecordBytes + trim));
    const std::vector<uint8_t> bytes = in.ConsumeBytes<uint8_t>(want);
    resnet::fuzz::write_bytes((fs::path(dir) / name).string(), bytes.data(), bytes.size());
  }
  if (in.ConsumeBool()) {
    const std::string meta = in.ConsumeRandomLengthString(256);
    resnet::fuzz::write_bytes((fs::path(dir) / "batches.meta.txt").string(), meta.data(), meta.size());
  }
  resnet::DataConfig config;  // only values that validate() accepts: all >= 0
  config.val_size = in.ConsumeIntegralInRange<int64_t>(0, 20);
  config.val_seed = in.ConsumeIntegral<int64_t>();
  config.train_limit = in.ConsumeIntegralInRange<int64_t>(0, 20);
  config.test_limit = in.ConsumeIntegralInRange<int64_t>(0, 5);

  resnet::Cifar10 data;
  if (!expect_only_input_errors([&] { data = resnet::load_cifar10(dir, with_train); }, dir)) return;
  const int64_t train_n = data.train.size(), test_n = data.test.size();
  check_set(data.train, train_n, "train");
  check_set(data.test, test_n, "test");
  if (with_train && (train_n == 0 || train_n % 5 != 0)) finding("training set of " + std::to_string(train_n));
  if (test_n == 0) finding("empty test set accepted");
  if (data.class_names.size() != 10) finding("not 10 class names");

  resnet::Splits s;
  if (!expect_only_input_errors([&] { s = resnet::make_splits(data, config); })) return;
  const int64_t used = config.train_limit > 0 ? std::min(config.train_limit, train_n) : train_n;
  check_set(s.train, used - (used > 0 ? config.val_size : 0), "split train");
  check_set(s.val, used > 0 ? config.val_size : 0, "split val");
  check_set(s.test, config.test_limit > 0 ? std::min(config.test_limit, test_n) : test_n, "split test");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  if (in.ConsumeIntegral<uint8_t>() % 2 == 0) one_file(in);
  else folder(in);
  return 0;
}
