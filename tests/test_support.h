#pragma once
// Helpers shared by the tests: temporary folders and small synthetic CIFAR-10 sets.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "data/cifar10.h"
#include "util/errors.h"

namespace resnet::testing {

// A fresh folder under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "resnet-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (std::filesystem::path(path_) / name).string(); }

 private:
  std::string path_;
};

// A learnable synthetic set: each class has its own mean colour plus noise, so a tiny
// network gets well below chance within a few dozen steps.
inline ImageSet synthetic_set(int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  ImageSet s;
  s.labels = at::randint(0, 10, {n}, gen, at::kLong);
  at::Tensor colour = at::arange(10, at::kFloat).mul(25).view({10, 1, 1, 1});
  at::Tensor base = colour.index_select(0, s.labels).expand({n, 3, 32, 32});
  at::Tensor noise = at::randint(0, 40, {n, 3, 32, 32}, gen, at::kFloat);
  s.images = (base + noise).clamp(0, 255).to(at::kByte).contiguous();
  return s;
}

// Writes a CIFAR-10 folder: 5 training files of `per_file` records and a test file.
inline void write_synthetic_cifar(const std::string& dir, int64_t per_file, int64_t test_n) {
  std::filesystem::create_directories(dir);
  for (int i = 1; i <= 5; ++i)
    write_cifar10_file(dir + "/data_batch_" + std::to_string(i) + ".bin", synthetic_set(per_file, i));
  write_cifar10_file(dir + "/test_batch.bin", synthetic_set(test_n, 99));
}

// Expects `body` to throw a one-line InputError that starts with `prefix` and mentions `needle`.
template <typename F>
void expect_input_error(F&& body, const std::string& prefix, const std::string& needle = "") {
  try {
    body();
    ADD_FAILURE() << "accepted (" << prefix << " ... " << needle << ")";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "wanted '" << needle << "' in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace resnet::testing
