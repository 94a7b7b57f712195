#include "parallel/c10d_communicator.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <errno.h>  // program_invocation_short_name

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <future>
#include <thread>

#include "parallel/job.h"
#include "parallel/replay_deadline.h"
#include "util/duration.h"
#include "util/errors.h"

#if defined(RESNET_WITH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace resnet {
namespace {

using Backend = c10::intrusive_ptr<compat::C10dBackend>;

[[noreturn]] void lost(int rank, const char* what, const std::exception& e, std::chrono::milliseconds timeout) {
  throw DistError(
      fmt::format("rank {}: lost contact with the other ranks during {} ({}); another rank died, hung past the {} s "
                  "timeout (runtime.dist_timeout_s) or was stopped: see its output",
                  rank, what, first_line(e.what()), timeout.count() / 1000));
}

// How long the NCCL abort may take (ncclCommAbort has been known to hang), and how long the
// process may take to exit once the error is thrown.
constexpr auto kAbortGrace = std::chrono::seconds(10);
constexpr auto kExitGrace = std::chrono::seconds(60);
// Every this many replays the host checks the mark made that many replays before.
constexpr int64_t kReplayCheckEvery = 20;

// The GPU may stay stuck even after the abort, and then unwinding (the graph's destructor, CUDA's
// teardown at exit) could hang a process that must exit: if it still runs after kExitGrace, this
// prints the one line itself and exits 1.
void exit_if_still_running(const std::string& message) {
  std::thread([message] {
    std::this_thread::sleep_for(kExitGrace);
    std::fprintf(stderr, "%s: failed: %s\n", program_invocation_short_name, message.c_str());
    std::fflush(stderr);
    std::_Exit(kExitFailure);
  }).detach();
}

// ReplayDeadline's expiry: abort the communicator (its kernels then return), then stop the run.
[[noreturn]] void replay_expired(int rank, const Backend& backend, std::chrono::milliseconds timeout) {
  const std::string message = fmt::format(
      "rank {}: lost contact with another rank: a captured all-reduce did not finish within {} s "
      "(runtime.dist_timeout_s: another rank died or hung; see its output); the NCCL communicator was aborted",
      rank, timeout.count() / 1000);
#if defined(RESNET_WITH_NCCL)
  auto aborted = std::make_shared<std::promise<void>>();
  std::future<void> done = aborted->get_future();
  std::thread([backend, aborted] {
    try {
      if (auto* nccl = dynamic_cast<c10d::ProcessGroupNCCL*>(backend.get())) nccl->abort();
    } catch (...) {  // the message above says what matters
    }
    aborted->set_value();
  }).detach();
  (void)done.wait_for(kAbortGrace);
#else
  (void)backend;
#endif
  exit_if_still_running(message);
  throw DistError(message);
}

Backend make_backend(const c10::intrusive_ptr<c10d::Store>& store, const LaunchEnv& env, const std::string& backend,
                     std::chrono::milliseconds timeout) {
  if (backend == "gloo") {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    // One node: loopback. Several: GLOO_SOCKET_IFNAME, else the address the host name resolves
    // to (what torch.distributed does).
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else if (env.local_world_size == env.world_size)
      opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = 2;
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
  }
#if defined(RESNET_WITH_NCCL)
  auto opts = c10d::ProcessGroupNCCL::Options::create();
  opts->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, env.rank, env.world_size, opts);
#else
  throw InputError("runtime.dist_backend: nccl: this build has no NCCL");
#endif
}

// The collectives, on one c10d backend. Each names what it is for; each host-blocking one first
// settles the replays of a captured all-reduce (see GradientAverage).
class C10dCommunicator final : public Communicator {
 public:
  C10dCommunicator(Backend backend, const LaunchEnv& env, const std::string& name, const c10::Device& device,
                   std::chrono::milliseconds timeout)
      : backend_(std::move(backend)),
        rank_(env.rank),
        size_(env.world_size),
        name_(name),
        device_(device),
        timeout_(timeout) {}

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return name_; }
  c10::Device device() const override { return device_; }

  void broadcast(const std::vector<at::Tensor>& tensors, const char* what) override;
  void sum(at::Tensor& tensor, const char* what) override;
  int64_t max(int64_t value, const char* what) override;
  int64_t min(int64_t value, const char* what) override { return -max(-value, what); }
  void agree(const char* what, const std::function<void()>& body) override;
  std::unique_ptr<GradientAverage> gradient_average(const std::vector<at::Tensor>& params,
                                                    int64_t bucket_bytes) override;

  // For the gradient exchange: an all-reduce (SUM) that the caller waits for.
  c10::intrusive_ptr<c10d::Work> sum_async(at::Tensor& tensor, const char* what);
  void wait(c10d::Work& work, const char* what);
  void replayed();
  void settle_replays();

 private:
  // One message per dtype: flattened, sent, copied back.
  void broadcast_one_dtype(const std::vector<at::Tensor>& group, const char* what);

  Backend backend_;
  int rank_, size_;
  std::string name_;
  c10::Device device_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<ReplayDeadline> replays_;  // made at the first replay of a captured collective
#if defined(RESNET_WITH_CUDA)
  at::cuda::CUDAEvent marks_[2];  // ReplayDeadline's slots
#endif
};

void C10dCommunicator::broadcast(const std::vector<at::Tensor>& tensors, const char* what) {
  if (tensors.empty() || skip_for_test(rank_, what)) return;
  note("broadcast", what);
  settle_replays();
  std::vector<at::ScalarType> types;
  for (const auto& t : tensors)
    if (std::find(types.begin(), types.end(), t.scalar_type()) == types.end()) types.push_back(t.scalar_type());
  for (const auto type : types) {
    std::vector<at::Tensor> group;
    for (const auto& t : tensors)
      if (t.scalar_type() == type) group.push_back(t);
    broadcast_one_dtype(group, what);
  }
}

void C10dCommunicator::broadcast_one_dtype(const std::vector<at::Tensor>& group, const char* what) {
  std::vector<at::Tensor> flat_parts;
  for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}).to(device_));
  std::vector<at::Tensor> flat{at::cat(flat_parts)};
  try {
    backend_->broadcast(flat, c10d::BroadcastOptions{})->wait();
  } catch (const std::exception& e) {
    lost(rank_, what, e, timeout_);
  }
  int64_t offset = 0;
  for (const auto& t : group) {
    const int64_t n = t.numel();
    at::Tensor dst = t.detach();
    dst.copy_(flat[0].narrow(0, offset, n).view(t.sizes()));
    offset += n;
  }
}

c10::intrusive_ptr<c10d::Work> C10dCommunicator::sum_async(at::Tensor& tensor, const char* what) {
  std::vector<at::Tensor> v{tensor};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  try {
    return backend_->allreduce(v, opts);
  } catch (const std::exception& e) {
    lost(rank_, what, e, timeout_);
  }
}

void C10dCommunicator::wait(c10d::Work& work, const char* what) {
  try {
    work.wait();
  } catch (const std::exception& e) {
    lost(rank_, what, e, timeout_);
  }
}

void C10dCommunicator::sum(at::Tensor& tensor, const char* what) {
  if (skip_for_test(rank_, what)) return;
  note("sum", what);
  settle_replays();
  at::Tensor here = tensor.device() == device_ ? tensor : tensor.to(device_);
  auto work = sum_async(here, what);
  wait(*work, what);
  if (!here.is_same(tensor)) tensor.copy_(here);
}

int64_t C10dCommunicator::max(int64_t value, const char* what) {
  if (skip_for_test(rank_, what)) return value;
  note("max", what);
  settle_replays();
  std::vector<at::Tensor> v{at::full({1}, value, at::TensorOptions().dtype(at::kLong).device(device_))};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  try {
    backend_->allreduce(v, opts)->wait();
  } catch (const std::exception& e) {
    lost(rank_, what, e, timeout_);
  }
  return v[0].item<int64_t>();
}

void C10dCommunicator::agree(const char* what, const std::function<void()>& body) {
  std::exception_ptr error;
  const int64_t code = run_and_catch(body, error);
  int64_t worst = code;
  try {
    worst = max(code, what);
  } catch (const DistError&) {
    if (error) std::rethrow_exception(error);  // our own failure says more than the lost peer
    throw;
  }
  if (error) std::rethrow_exception(error);
  if (worst != 0)
    throw PeerFailed(static_cast<int>(worst),
                     fmt::format("rank {}: stopped: another rank failed while {} (its message says why)", rank_, what));
}

void C10dCommunicator::replayed() {
#if defined(RESNET_WITH_CUDA)
  if (!replays_) {
    // Called inside the step's stream guard: the current stream is the one the graph replayed on.
    ReplayDeadline::Probe probe{[this](ReplayDeadline::Slot s) { marks_[s].record(c10::cuda::getCurrentCUDAStream()); },
                                [this](ReplayDeadline::Slot s) { return marks_[s].query(); }};
    const int rank = rank_;
    Backend backend = backend_;
    replays_ = std::make_unique<ReplayDeadline>(
        std::move(probe), timeout_, kReplayCheckEvery,
        [backend, rank](std::chrono::milliseconds timeout) { replay_expired(rank, backend, timeout); });
  }
  replays_->replayed();
#endif
}

void C10dCommunicator::settle_replays() {
  if (replays_) replays_->settle();
}

// The gradient exchange: flat buckets per dtype in reverse parameter order (backward produces the
// last layers' gradients first), every bucket's all-reduce launched before the first is waited
// for, each divided by the world size (Gloo has no AVG) and copied back.
class C10dGradientAverage final : public GradientAverage {
 public:
  C10dGradientAverage(C10dCommunicator& comm, const std::vector<at::Tensor>& params, int64_t bucket_bytes);
  void run() override;
  void replayed() override { comm_.replayed(); }
  void settle() override { comm_.settle_replays(); }
  double take_seconds() override {
    const double s = seconds_;
    seconds_ = 0;
    return s;
  }
  int64_t buckets() const override { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    at::Tensor flat;
    std::vector<at::Tensor> params;
    std::vector<int64_t> offsets;
  };
  C10dCommunicator& comm_;
  std::vector<Bucket> buckets_;
  double seconds_ = 0;
};

C10dGradientAverage::C10dGradientAverage(C10dCommunicator& comm, const std::vector<at::Tensor>& params,
                                         int64_t bucket_bytes)
    : comm_(comm) {
  std::vector<at::Tensor> pending(params.rbegin(), params.rend());
  while (!pending.empty()) {
    const at::ScalarType type = pending.front().scalar_type();
    Bucket b;
    int64_t bytes = 0, numel = 0;
    std::vector<at::Tensor> rest;
    for (auto& p : pending) {
      const int64_t pb = p.numel() * static_cast<int64_t>(p.element_size());
      if (p.scalar_type() == type && (b.params.empty() || bytes + pb <= bucket_bytes)) {
        b.params.push_back(p);
        b.offsets.push_back(numel);
        numel += p.numel();
        bytes += pb;
      } else {
        rest.push_back(p);
      }
    }
    b.flat = at::zeros({numel}, at::TensorOptions().dtype(type).device(comm_.device()));
    buckets_.push_back(std::move(b));
    pending = std::move(rest);
  }
}

void C10dGradientAverage::run() {
  const auto start = std::chrono::steady_clock::now();
  std::vector<c10::intrusive_ptr<c10d::Work>> inflight;
  for (auto& b : buckets_) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      const at::Tensor& p = b.params[i];
      at::Tensor slot = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      const at::Tensor& g = p.grad();
      if (g.defined()) slot.copy_(g);
      else slot.zero_();  // a parameter unused this step contributes zeros, as DDP does
    }
    inflight.push_back(comm_.sum_async(b.flat, "the gradient all-reduce"));
  }
  for (size_t k = 0; k < buckets_.size(); ++k) {
    comm_.wait(*inflight[k], "the gradient all-reduce");
    Bucket& b = buckets_[k];
    b.flat.div_(comm_.size());
    for (size_t i = 0; i < b.params.size(); ++i) {
      at::Tensor p = b.params[i];
      at::Tensor slot = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = slot.clone();
      else p.mutable_grad().copy_(slot);
    }
  }
  seconds_ += seconds_since(start);
}

std::unique_ptr<GradientAverage> C10dCommunicator::gradient_average(const std::vector<at::Tensor>& params,
                                                                    int64_t bucket_bytes) {
  return std::make_unique<C10dGradientAverage>(*this, params, bucket_bytes);
}

}  // namespace

bool skip_for_test(int rank, const char* what) {
  static const char* hook = std::getenv("RESNET_TEST_SKIP_COLLECTIVE");
  if (!hook || !*hook) return false;
  const std::string h = hook;
  const size_t colon = h.find(':');
  return colon != std::string::npos && h.substr(0, colon) == std::to_string(rank) && h.substr(colon + 1) == what;
}

std::unique_ptr<Communicator> connect_c10d(c10::intrusive_ptr<c10d::Store> store, const LaunchEnv& env,
                                           const std::string& backend, const c10::Device& device,
                                           std::chrono::milliseconds timeout) {
  Backend group;
  try {
    group = make_backend(store, env, backend, timeout);
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError(fmt::format("rank {}: could not form the {} process group of {} ranks via {}:{} ({})", env.rank,
                                backend, env.world_size, env.master_addr, env.master_port, first_line(e.what())));
  }
  auto comm = std::make_unique<C10dCommunicator>(group, env, backend,
                                                 backend == "nccl" ? device : c10::Device(c10::kCPU), timeout);
  (void)comm->max(0, "start-up");  // NCCL connects lazily: every rank meets once here
  return comm;
}

}  // namespace resnet
