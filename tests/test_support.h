#pragma once
// Helpers shared by the tests: temporary folders and small synthetic CIFAR-10 sets.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "config/config.h"
#include "data/cifar10.h"
#include "util/errors.h"

namespace resnet::testing {

// The Python with the pinned PyPI packages (torch, safetensors, onnx, onnxruntime, tensorboard:
// scripts/python_env.sh), set by tests/CMakeLists.txt.
inline const std::string kPython = RESNET_PYTHON;
// Asserts (fails, never skips) that kPython imports `modules` ("torch, torchvision").
inline ::testing::AssertionResult python_has(const std::string& modules) {
  const std::string cmd = kPython + " -c 'import " + modules + "' > /dev/null 2>&1";
  if (std::system(cmd.c_str()) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << kPython << " cannot import " << modules
                                       << ": run scripts/python_env.sh (scripts/test.sh does)";
}

// A TCP port on the loopback that nobody listens on now (for a test job's store).
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

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

// ResNet-8 (n = 1) on a small synthetic set: a run of a few hundred steps takes seconds. The
// tests that train start from this, set what they need otherwise, then validate().
inline ExperimentConfig tiny_defaults(const std::string& data_dir, int64_t iterations) {
  ExperimentConfig c;
  c.name = "tiny";
  c.model.depth = 8;
  c.data.dir = data_dir;
  c.train.batch_size = 32;
  c.train.iterations = iterations;
  c.train.eval_every = 10;
  c.train.checkpoint_every = 10;
  c.train.log_every = 2;
  c.train.eval_batch_size = 50;
  c.train.lr_schedule.milestones = {iterations / 2, 3 * iterations / 4};
  // One thread: ctest -j2 runs two tests at once on 2 cores, where a 2-thread ResNet-8 step
  // measured 2-35x slower than a 1-thread one (OpenMP threads waiting for a descheduled peer).
  c.runtime.threads = 1;
  c.runtime.seed = 3;
  return c;
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
