#pragma once
// The processes of one run (or analysis), from the launcher's environment to a Communicator, in
// two steps so that a failure on one rank reaches the others at once at every stage:
//   Job job(read_launch_env(), timeout);      every rank reaches the launcher's store (TCPStore:
//                                              rank 0 hosts it, or torchrun's agent does)
//   job.agree("reading the checkpoint", ...)   agreements over the store, before any process group
//                                              exists (resolving the runtime, reading inputs, rank
//                                              0 taking the run folder's lock)
//   auto comm = job.connect(backend, device, timeout);   the c10d process group (Gloo or NCCL)
// Without a launcher (one process) the job is a no-op: agree() runs the body, connect() returns
// one_process().
//
// Failures of the group (a rank that died, hung past the timeout, a store that cannot be reached)
// are DistError: one line saying which rank saw what, exit 1.
#include <c10/core/Device.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "parallel/communicator.h"
#include "parallel/launch_env.h"

namespace resnet {

// A group member lost contact with the others, or the group could not be formed. Exit 1.
class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Job {
 public:
  explicit Job(const LaunchEnv& env, std::chrono::milliseconds timeout = std::chrono::seconds(300));
  ~Job();
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  const LaunchEnv& env() const { return env_; }
  bool writer() const { return env_.rank == 0; }

  // Communicator::agree before the communicator exists: every rank posts whether `body` failed
  // (and how) to the store and reads the others'; if any failed, every rank stops, its own
  // exception rethrown, the others' PeerFailed with the worst exit code.
  void agree(const char* what, const std::function<void()>& body);

  // The c10d process group over this job's store: `backend` "gloo" or "nccl" (resolve_backend),
  // collectives on `device` (NCCL) or the CPU (Gloo), `timeout` for each of them. Once.
  std::unique_ptr<Communicator> connect(const std::string& backend, const c10::Device& device,
                                        std::chrono::milliseconds timeout);

 private:
  struct Store;
  LaunchEnv env_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Store> store_;
  int64_t round_ = 0;
};

// "auto" -> "nccl" on CUDA when this LibTorch has NCCL, else "gloo"; checks an explicit choice.
std::string resolve_backend(const std::string& choice, const c10::Device& device);
bool have_nccl();
// The NCCL library's version ("2.28.9") where c10d's NCCL backend is built in, else "".
std::string nccl_version();

// Runs `body`; returns the exit code its failure stands for (0 if none: 2 for bad input, the
// peer's for PeerFailed, else 1) and keeps the exception in `error`.
int64_t run_and_catch(const std::function<void()>& body, std::exception_ptr& error);

}  // namespace resnet
