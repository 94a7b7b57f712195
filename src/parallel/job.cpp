#include "parallel/job.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "compat/torch_compat.h"
#include "parallel/c10d_communicator.h"
#include "util/errors.h"

namespace resnet {

struct Job::Store {
  c10::intrusive_ptr<c10d::Store> store;
};

namespace {

// Ends the process (exit 1, one line) if the store is not reached within the timeout: a store
// that accepts the connection and never answers (a 2.x torchrun's libuv store and a 1.13 client)
// blocks the client in a read that no timeout of its own ends.
class StoreWatchdog {
 public:
  // Waits `timeout` and a grace of 10 s (so that the store's own errors come first).
  StoreWatchdog(const LaunchEnv& env, std::chrono::milliseconds timeout)
      : thread_([this, env, timeout] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (cv_.wait_for(lock, timeout + std::chrono::seconds(10), [this] { return done_; })) return;
          const std::string msg = fmt::format(
              "rank {}: the rendezvous store at {}:{} did not answer within {} s (+10 s of grace; under torchrun: use "
              "the torchrun "
              "of the torch whose LibTorch this build links, {}; a 2.x torchrun's store does not answer a 1.13 "
              "client)",
              env.rank, env.master_addr, env.master_port, timeout.count() / 1000, compat::torch_version());
          std::fprintf(stderr, "%s\n", one_line(msg).c_str());
          std::fflush(stderr);
          std::_Exit(kExitFailure);
        }) {}
  ~StoreWatchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

c10::intrusive_ptr<c10d::Store> make_store(const LaunchEnv& env, std::chrono::milliseconds timeout) {
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
    // The constructor's own timeout bounds connecting and waiting for the workers; the watchdog
    // bounds the rest.
    const StoreWatchdog watchdog(env, timeout);
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, opts);
    if (env.agent_store)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), store);
    return store;
  } catch (const std::exception& e) {
    throw DistError(fmt::format("rank {}: could not reach the rendezvous store at {}:{} within {} s ({})", env.rank,
                                env.master_addr, env.master_port, timeout.count() / 1000, first_line(e.what())));
  }
}

std::vector<uint8_t> to_bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

}  // namespace

int64_t run_and_catch(const std::function<void()>& body, std::exception_ptr& error) {
  try {
    body();
    return 0;
  } catch (const InputError&) {
    error = std::current_exception();
    return kExitBadInput;
  } catch (const PeerFailed& e) {
    error = std::current_exception();
    return e.exit_code;
  } catch (...) {
    error = std::current_exception();
    return kExitFailure;
  }
}

Job::Job(const LaunchEnv& env, std::chrono::milliseconds timeout) : env_(env), timeout_(timeout) {
  if (!env.active()) return;
  store_ = std::make_unique<Store>();
  store_->store = make_store(env, timeout);
}

Job::~Job() = default;

void Job::agree(const char* what, const std::function<void()>& body) {
  std::exception_ptr error;
  const int64_t code = run_and_catch(body, error);
  if (!store_) {
    if (error) std::rethrow_exception(error);
    return;
  }
  c10d::Store& store = *store_->store;
  const std::string round = "resnet/agree/" + std::to_string(round_++) + "/";
  int64_t worst = code;
  try {
    store.set(round + std::to_string(env_.rank), to_bytes(std::to_string(code)));
    std::vector<std::string> keys;
    for (int r = 0; r < env_.world_size; ++r) keys.push_back(round + std::to_string(r));
    store.wait(keys, timeout_);
    for (const auto& key : keys) {
      const std::vector<uint8_t> v = store.get(key);
      worst = std::max<int64_t>(worst, std::atoll(std::string(v.begin(), v.end()).c_str()));
    }
    // The store's host (rank 0) must outlive the others' reads.
    const int64_t read = store.add(round + "read", 1);
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    if (env_.rank == 0 && !env_.agent_store)
      for (int64_t n = read; n < env_.world_size && std::chrono::steady_clock::now() < deadline;
           n = store.add(round + "read", 0))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } catch (const std::exception& e) {
    if (error) std::rethrow_exception(error);  // our own failure says more than the lost peer
    throw DistError(
        fmt::format("rank {}: lost contact with the other ranks while {} ({}); another rank died or hung "
                    "past {} s: see its output",
                    env_.rank, what, first_line(e.what()), timeout_.count() / 1000));
  }
  if (error) std::rethrow_exception(error);
  if (worst != 0)
    throw PeerFailed(static_cast<int>(worst), fmt::format("rank {}: stopped: another rank failed while {} (its "
                                                          "message says why)",
                                                          env_.rank, what));
}

std::unique_ptr<Communicator> Job::connect(const std::string& backend, const c10::Device& device,
                                           std::chrono::milliseconds timeout) {
  if (!store_) return one_process();
  store_->store->setTimeout(timeout);
  return connect_c10d(store_->store, env_, backend, device, timeout);
}

bool have_nccl() {
#if defined(RESNET_WITH_NCCL)
  return true;
#else
  return false;
#endif
}

std::string nccl_version() {
#if defined(RESNET_WITH_NCCL)
  return c10d::getNcclVersion();
#else
  return "";
#endif
}

std::string resolve_backend(const std::string& choice, const c10::Device& device) {
  if (choice == "auto") return device.is_cuda() && have_nccl() ? "nccl" : "gloo";
  if (choice == "nccl") {
    if (!have_nccl())
      throw InputError(
          "runtime.dist_backend: nccl: this build of resnet-train has no NCCL (a CUDA LibTorch "
          "with NCCL is needed); use gloo or auto");
    if (!device.is_cuda()) throw InputError("runtime.dist_backend: nccl needs runtime.device cuda");
  }
  return choice;
}

}  // namespace resnet
