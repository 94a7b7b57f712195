#pragma once
// c10d's Communicator (Gloo on the CPU, NCCL on CUDA). Internal to src/parallel/: the only
// header outside src/compat that includes c10d.
#include <chrono>
#include <memory>
#include <string>

#include "compat/c10d_compat.h"
#include "parallel/communicator.h"
#include "parallel/launch_env.h"

namespace resnet {

// The process group of `env`'s job over `store`; returns once every rank has joined (a first
// collective: NCCL connects lazily). DistError if it cannot be formed within `timeout`.
std::unique_ptr<Communicator> connect_c10d(c10::intrusive_ptr<c10d::Store> store, const LaunchEnv& env,
                                           const std::string& backend, const c10::Device& device,
                                           std::chrono::milliseconds timeout);

// Test hook, for the test that compares the ranks' records of collectives: with
// RESNET_TEST_SKIP_COLLECTIVE="<rank>:<what>" set, that rank skips the collectives named `what`,
// as a rank that forgot an agreement point would.
bool skip_for_test(int rank, const char* what);

}  // namespace resnet
