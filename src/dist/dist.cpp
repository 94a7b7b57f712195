#include "dist/dist.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <errno.h>  // program_invocation_short_name

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <thread>

#include "compat/c10d_compat.h"
#include "dist/replay_deadline.h"
#include "util/errors.h"

#if defined(RESNET_WITH_CUDA)
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace resnet {

// ---- the launcher's environment ----------------------------------------------------------
namespace {

int parse_int(const char* name, const char* value, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  if (errno || end == value || *end != '\0' || v < lo || v > hi)
    throw InputError(fmt::format("environment variable {}='{}': expected an integer in {}..{}", name, value, lo, hi));
  return static_cast<int>(v);
}

}  // namespace

std::string DistEnv::describe() const {
  return fmt::format("rank {} of {} (local {} of {}) via {}, store {}:{}{}", rank, world_size, local_rank,
                     local_world_size, launcher, master_addr, master_port,
                     restart_count > 0 ? fmt::format(", restart {}", restart_count) : std::string());
}

DistEnv read_dist_env(const std::function<const char*(const char*)>& getenv_fn) {
  auto get = [&](const char* name) -> const char* {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v && *v ? v : nullptr;
  };
  auto need = [&](const char* name, const char* why) -> const char* {
    const char* v = get(name);
    if (!v) throw InputError(fmt::format("environment variable {} is not set ({})", name, why));
    return v;
  };
  DistEnv env;
  if (get("RANK") || get("WORLD_SIZE")) {  // torchrun (or anything that sets its variables)
    const char* why = "RANK and WORLD_SIZE are set: a torchrun-style launch needs all of its variables";
    env.launcher = "torchrun";
    env.world_size = parse_int("WORLD_SIZE", need("WORLD_SIZE", why), 1, 1 << 20);
    env.rank = parse_int("RANK", need("RANK", why), 0, env.world_size - 1);
    env.local_rank = get("LOCAL_RANK") ? parse_int("LOCAL_RANK", get("LOCAL_RANK"), 0, env.world_size - 1) : 0;
    env.local_world_size = get("LOCAL_WORLD_SIZE")
                               ? parse_int("LOCAL_WORLD_SIZE", get("LOCAL_WORLD_SIZE"), 1, env.world_size)
                               : env.world_size;
    if (env.local_rank >= env.local_world_size)
      throw InputError(fmt::format("environment variable LOCAL_RANK={} is not below LOCAL_WORLD_SIZE={}",
                                   env.local_rank, env.local_world_size));
    env.master_addr = need("MASTER_ADDR", why);
    env.master_port = parse_int("MASTER_PORT", need("MASTER_PORT", why), 1, 65535);
    if (const char* r = get("TORCHELASTIC_RESTART_COUNT"))
      env.restart_count = parse_int("TORCHELASTIC_RESTART_COUNT", r, 0, 1 << 30);
    if (const char* a = get("TORCHELASTIC_USE_AGENT_STORE")) {
      const std::string s = a;
      if (s != "True" && s != "False" && s != "true" && s != "false" && s != "1" && s != "0")
        throw InputError("environment variable TORCHELASTIC_USE_AGENT_STORE='" + s + "': expected True or False");
      env.agent_store = s == "True" || s == "true" || s == "1";
    }
    return env;
  }
  // srun: one task per rank. SLURM_STEP_NUM_TASKS is set for job steps (srun), not for the batch
  // script itself, whose SLURM_NTASKS may be > 1 while it runs one process.
  const char* step_tasks = get("SLURM_STEP_NUM_TASKS");
  if (step_tasks && get("SLURM_PROCID") && parse_int("SLURM_STEP_NUM_TASKS", step_tasks, 1, 1 << 20) > 1) {
    env.launcher = "slurm";
    env.world_size = parse_int("SLURM_STEP_NUM_TASKS", step_tasks, 1, 1 << 20);
    env.rank = parse_int("SLURM_PROCID", get("SLURM_PROCID"), 0, env.world_size - 1);
    env.local_rank = get("SLURM_LOCALID") ? parse_int("SLURM_LOCALID", get("SLURM_LOCALID"), 0, env.world_size - 1) : 0;
    const int nodes = get("SLURM_STEP_NUM_NODES") ? parse_int("SLURM_STEP_NUM_NODES", get("SLURM_STEP_NUM_NODES"), 1, 1 << 20) : 1;
    env.local_world_size = nodes > 0 && env.world_size % nodes == 0 ? env.world_size / nodes : 1;
    if (env.local_rank >= env.local_world_size) env.local_world_size = env.local_rank + 1;
    if (const char* addr = get("MASTER_ADDR")) {
      env.master_addr = addr;
    } else if (nodes == 1) {
      env.master_addr = "127.0.0.1";
    } else {
      throw InputError("environment variable MASTER_ADDR is not set: a Slurm step over several nodes needs the "
                       "first node's address (e.g. export MASTER_ADDR=$(scontrol show hostnames | head -n1))");
    }
    if (const char* port = get("MASTER_PORT")) {
      env.master_port = parse_int("MASTER_PORT", port, 1, 65535);
    } else {  // one port per job, so that two jobs on one node do not meet
      const char* job = get("SLURM_JOB_ID");
      env.master_port = 20000 + (job ? parse_int("SLURM_JOB_ID", job, 0, 1 << 30) % 20000 : 9500);
    }
    if (const char* r = get("SLURM_RESTART_COUNT")) env.restart_count = parse_int("SLURM_RESTART_COUNT", r, 0, 1 << 30);
  }
  return env;
}

// ---- the process group --------------------------------------------------------------------
struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<compat::C10dBackend> backend;
  std::chrono::milliseconds timeout{0};
  std::unique_ptr<ReplayDeadline> replays;  // made at the first replay of a captured collective
#if defined(RESNET_WITH_CUDA)
  at::cuda::CUDAEvent marks[2];  // ReplayDeadline's slots
#endif
};

class ProcessGroup::Pending {
 public:
  c10::intrusive_ptr<c10d::Work> work;
  const char* what = "";
};

namespace {

[[noreturn]] void lost(int rank, const char* what, const std::exception& e, std::chrono::milliseconds timeout) {
  throw DistError(fmt::format(
      "rank {}: lost contact with the other ranks during {} ({}); another rank died, hung past the {} s "
      "timeout (runtime.dist_timeout_s) or was stopped: see its output",
      rank, what, first_line(e.what()), timeout.count() / 1000));
}

// How long the NCCL abort may take (ncclCommAbort has been known to hang), and how long the
// process may take to exit once the error is thrown.
constexpr auto kAbortGrace = std::chrono::seconds(10);
constexpr auto kExitGrace = std::chrono::seconds(60);

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
[[noreturn]] void replay_expired(int rank, const c10::intrusive_ptr<compat::C10dBackend>& backend,
                                 std::chrono::milliseconds timeout) {
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

}  // namespace

bool have_nccl() {
#if defined(RESNET_WITH_NCCL)
  return true;
#else
  return false;
#endif
}

std::string resolve_backend(const std::string& choice, const c10::Device& device) {
  if (choice == "auto") return device.is_cuda() && have_nccl() ? "nccl" : "gloo";
  if (choice == "nccl") {
    if (!have_nccl())
      throw InputError("runtime.dist_backend: nccl: this build of resnet-train has no NCCL (a CUDA LibTorch "
                       "with NCCL is needed); use gloo or auto");
    if (!device.is_cuda()) throw InputError("runtime.dist_backend: nccl needs runtime.device cuda");
  }
  return choice;
}

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, const std::string& backend,
                                                    const c10::Device& device, std::chrono::milliseconds timeout) {
  std::unique_ptr<ProcessGroup> pg(new ProcessGroup());
  pg->impl_ = std::make_unique<Impl>();
  pg->rank_ = env.rank;
  pg->size_ = env.world_size;
  pg->backend_ = backend;
  pg->device_ = backend == "nccl" ? device : c10::Device(c10::kCPU);
  pg->impl_->timeout = timeout;
  const std::string where = fmt::format("{}:{}", env.master_addr, env.master_port);
  try {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(env.master_port);
    opts.numWorkers = static_cast<std::size_t>(env.world_size);
    opts.timeout = timeout;
    // torchrun's agent already listens on MASTER_PORT: every rank is a client there, and keys
    // carry the attempt's prefix, as torch.distributed's env:// rendezvous does it.
    opts.isServer = !env.agent_store && env.rank == 0;
    // Every rank counts itself in (the server waits for all of them): a client that does not
    // leaves the server waiting for the whole timeout.
    opts.waitWorkers = true;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    if (env.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
    pg->impl_->store = store;
  } catch (const std::exception& e) {
    throw DistError(fmt::format("rank {}: could not reach the rendezvous store at {} within {} s ({})", env.rank,
                                where, timeout.count() / 1000, first_line(e.what())));
  }
  try {
    if (backend == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // One node: loopback. Several: GLOO_SOCKET_IFNAME, else the address the host name resolves
      // to (what torch.distributed does).
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (env.local_world_size == env.world_size)
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      opts->threads = 2;
      pg->impl_->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->impl_->store, env.rank, env.world_size, opts);
    } else {
#if defined(RESNET_WITH_NCCL)
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      pg->impl_->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg->impl_->store, env.rank, env.world_size, opts);
#else
      throw InputError("runtime.dist_backend: nccl: this build has no NCCL");
#endif
    }
  } catch (const InputError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistError(fmt::format("rank {}: could not form the {} process group of {} ranks via {} ({})", env.rank,
                                backend, env.world_size, where, first_line(e.what())));
  }
  pg->barrier("start-up");  // NCCL connects lazily: make every rank meet once here
  return pg;
}

ProcessGroup::~ProcessGroup() = default;

void ProcessGroup::replayed() {
#if defined(RESNET_WITH_CUDA)
  Impl& impl = *impl_;
  if (!impl.replays) {
    // Called inside the step's stream guard: the current stream is the one the graph replayed on.
    ReplayDeadline::Probe probe{
        [&impl](ReplayDeadline::Slot s) { impl.marks[s].record(c10::cuda::getCurrentCUDAStream()); },
        [&impl](ReplayDeadline::Slot s) { return impl.marks[s].query(); }};
    const int rank = rank_;
    impl.replays = std::make_unique<ReplayDeadline>(
        std::move(probe), impl.timeout, kReplayCheckEvery,
        [&impl, rank](std::chrono::milliseconds timeout) { replay_expired(rank, impl.backend, timeout); });
  }
  impl.replays->replayed();
#endif
}

void ProcessGroup::settle_replays() {
  if (impl_->replays) impl_->replays->settle();
}

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, const char* what) {
  if (tensors.empty()) return;
  settle_replays();
  // One message per dtype: flattened, sent, copied back.
  std::vector<at::ScalarType> types;
  for (const auto& t : tensors)
    if (std::find(types.begin(), types.end(), t.scalar_type()) == types.end()) types.push_back(t.scalar_type());
  for (const auto type : types) {
    std::vector<at::Tensor> group;
    for (const auto& t : tensors)
      if (t.scalar_type() == type) group.push_back(t);
    std::vector<at::Tensor> flat_parts;
    for (const auto& t : group) flat_parts.push_back(t.detach().reshape({-1}).to(device_));
    std::vector<at::Tensor> flat{at::cat(flat_parts)};
    try {
      impl_->backend->broadcast(flat, c10d::BroadcastOptions{})->wait();
    } catch (const std::exception& e) {
      lost(rank_, what, e, impl_->timeout);
    }
    int64_t offset = 0;
    for (const auto& t : group) {
      const int64_t n = t.numel();
      at::Tensor dst = t.detach();
      dst.copy_(flat[0].narrow(0, offset, n).view(t.sizes()));
      offset += n;
    }
  }
}

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_sum_async(at::Tensor& tensor, const char* what) {
  auto p = std::make_unique<Pending>();
  p->what = what;
  std::vector<at::Tensor> v{tensor};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  try {
    p->work = impl_->backend->allreduce(v, opts);
  } catch (const std::exception& e) {
    lost(rank_, what, e, impl_->timeout);
  }
  return p;
}

void ProcessGroup::wait(Pending& pending) {
  try {
    pending.work->wait();
  } catch (const std::exception& e) {
    lost(rank_, pending.what, e, impl_->timeout);
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor& tensor, const char* what) {
  settle_replays();
  auto p = all_reduce_sum_async(tensor, what);
  wait(*p);
}

int64_t ProcessGroup::max(int64_t value, const char* what) {
  settle_replays();
  std::vector<at::Tensor> v{at::full({1}, value, at::TensorOptions().dtype(at::kLong).device(device_))};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::MAX;
  try {
    impl_->backend->allreduce(v, opts)->wait();
  } catch (const std::exception& e) {
    lost(rank_, what, e, impl_->timeout);
  }
  return v[0].item<int64_t>();
}

int64_t ProcessGroup::min(int64_t value, const char* what) { return -max(-value, what); }

void ProcessGroup::barrier(const char* what) {
  // An all-reduce rather than barrier(): NCCL's barrier guesses a device, Gloo's is the same.
  (void)max(0, what);
}

void ProcessGroup::together(const char* what, const std::function<void()>& body) {
  std::exception_ptr error;
  int64_t code = 0;
  try {
    body();
  } catch (const InputError&) {
    error = std::current_exception();
    code = kExitBadInput;
  } catch (const PeerFailed& e) {
    error = std::current_exception();
    code = e.exit_code;
  } catch (...) {
    error = std::current_exception();
    code = kExitFailure;
  }
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

// ---- gradients ----------------------------------------------------------------------------
GradAllReduce::GradAllReduce(ProcessGroup& group, const std::vector<at::Tensor>& params, int64_t bucket_bytes)
    : group_(group) {
  // Reverse order: backward produces the last layers' gradients first.
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
    b.flat = at::zeros({numel}, at::TensorOptions().dtype(type).device(group_.device()));
    buckets_.push_back(std::move(b));
    pending = std::move(rest);
  }
}

void GradAllReduce::run() {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<ProcessGroup::Pending>> inflight;
  for (auto& b : buckets_) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      const at::Tensor& p = b.params[i];
      at::Tensor slot = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      const at::Tensor& g = p.grad();
      if (g.defined()) slot.copy_(g);
      else slot.zero_();  // a parameter unused this step contributes zeros, as DDP does
    }
    inflight.push_back(group_.all_reduce_sum_async(b.flat, "the gradient all-reduce"));
  }
  for (size_t k = 0; k < buckets_.size(); ++k) {
    group_.wait(*inflight[k]);
    Bucket& b = buckets_[k];
    b.flat.div_(group_.size());
    for (size_t i = 0; i < b.params.size(); ++i) {
      at::Tensor p = b.params[i];
      at::Tensor slot = b.flat.narrow(0, b.offsets[i], p.numel()).view(p.sizes());
      if (!p.grad().defined()) p.mutable_grad() = slot.clone();
      else p.mutable_grad().copy_(slot);
    }
  }
  seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double GradAllReduce::take_seconds() {
  const double s = seconds_;
  seconds_ = 0;
  return s;
}

uint64_t hash_tensors(const std::vector<at::Tensor>& tensors) {
  uint64_t h = 1469598103934665603ULL;
  for (const auto& t : tensors) {
    const at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const auto* p = static_cast<const unsigned char*>(c.data_ptr());
    const size_t n = c.numel() * c.element_size();
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  }
  return h;
}

}  // namespace resnet
