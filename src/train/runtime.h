#pragma once
// Runtime choices resolved against the machine: "auto" means the fast choice on CUDA
// (bf16 autocast, channels_last, whole-step CUDA graph, cuDNN benchmark) and fp32 eager with
// channels_last on the CPU.
#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "config/config.h"

namespace resnet {

struct Runtime {
  c10::Device device{c10::kCPU};
  bool bf16 = false;
  bool channels_last = false;
  bool cuda_graph = false;
  bool cudnn_benchmark = false;
  int threads = 1;
  std::vector<std::string> warnings;  // choices made for the user, to be logged (threads capped)

  std::string describe() const;
};

// Throws InputError("runtime.device: ...") when CUDA is asked for and not there, and for
// options that need CUDA (cuda_graph) on the CPU. runtime.threads above the cores this process
// may use is capped at them, with a warning: more threads than cores only makes them wait on
// each other (1000 threads made a 4-step run spin for over ten minutes on 2 cores).
int usable_cores();
// Under a multi-process launch, `local_rank` of `local_ranks` on this machine: CUDA device
// cuda:<local_rank>, and on the CPU runtime.threads 0 means the cores shared out among the
// local ranks.
Runtime resolve_runtime(const RuntimeConfig& config, int local_rank = 0, int local_ranks = 1);

// Sets LibTorch's thread count (its default here is 1, half the speed on 2 cores) and cuDNN flags.
void apply_runtime(const Runtime& runtime);

}  // namespace resnet
