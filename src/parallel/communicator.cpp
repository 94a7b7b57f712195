#include "parallel/communicator.h"

namespace resnet {
namespace {

class NoAverage final : public GradientAverage {
 public:
  void run() override {}
};

class OneProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return ""; }
  c10::Device device() const override { return c10::Device(c10::kCPU); }
  void broadcast(const std::vector<at::Tensor>&, const char* what) override { note("broadcast", what); }
  void sum(at::Tensor&, const char* what) override { note("sum", what); }
  int64_t max(int64_t value, const char* what) override {
    note("max", what);
    return value;
  }
  int64_t min(int64_t value, const char* what) override {
    note("min", what);
    return value;
  }
  void agree(const char* what, const std::function<void()>& body) override {
    note("agree", what);
    body();
  }
  std::unique_ptr<GradientAverage> gradient_average(const std::vector<at::Tensor>&, int64_t) override {
    return std::make_unique<NoAverage>();
  }
};

}  // namespace

std::unique_ptr<Communicator> one_process() { return std::make_unique<OneProcess>(); }

std::vector<int64_t> my_items(int64_t count, const Communicator& comm) {
  std::vector<int64_t> out;
  for (int64_t i = comm.rank(); i < count; i += comm.size()) out.push_back(i);
  return out;
}

}  // namespace resnet
