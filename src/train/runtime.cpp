#include "train/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <sched.h>

#include <algorithm>
#include <thread>

#include "compat/torch_compat.h"
#include "util/errors.h"

namespace resnet {

Runtime resolve_runtime(const RuntimeConfig& c, int local_rank, int local_ranks) {
  Runtime r;
  const bool have_cuda = compat::cuda_available();
  const compat::CudaStatus& status = compat::cuda_status();
  if (c.device == "cuda" && !status.built)
    throw InputError(
        "runtime.device: cuda requested, but this build has no CUDA (Debian's LibTorch is CPU-only; "
        "scripts/build.sh --pip builds against PyPI's torch with CUDA)");
  if (c.device == "cuda" && !have_cuda)
    throw InputError("runtime.device: cuda requested, but this machine shows no CUDA device (" +
                     excerpt(status.why_none, 120) + ")");
  // A CUDA build on a machine without a GPU trains on the CPU, and says so once.
  if (c.device == "auto" && status.built && !have_cuda)
    r.warnings.push_back("this build has CUDA, but sees no CUDA device (" + excerpt(status.why_none, 120) +
                         "): running on the CPU");
  r.device = (c.device == "cuda" || (c.device == "auto" && have_cuda))
                 ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank))
                 : c10::Device(c10::kCPU);
  if (r.device.is_cuda() && local_rank >= compat::cuda_device_count())
    throw InputError(
        fmt::format("runtime.device: local rank {} needs cuda:{}, but this machine has {} CUDA devices "
                    "(start at most that many ranks per node)",
                    local_rank, local_rank, compat::cuda_device_count()));
  const bool cuda = r.device.is_cuda();
  if (c.cuda_graph.value_or(false) && !cuda)
    throw InputError("runtime.cuda_graph: CUDA graphs need runtime.device cuda");
  // bf16 autocast is the fast choice on CUDA. On the CPU it is opt-in: it pays only where the
  // CPU has bf16 instructions (avx512_bf16/AMX: 1.67x per ResNet-20 step on the Zen 4 test
  // machine); elsewhere oneDNN emulates bf16, which is expected to be slower (not measured here).
  r.bf16 = c.precision == "bf16" || (c.precision == "auto" && cuda);
  // channels_last pays on both: ~20% per training step on the 2-core CPU (resnet-bench).
  r.channels_last = c.channels_last.value_or(true);
  r.cuda_graph = c.cuda_graph.value_or(cuda);
  r.cudnn_benchmark = c.cudnn_benchmark.value_or(cuda);
  const int cores = usable_cores();
  const int share = std::max(1, cores / std::max(1, local_ranks));
  r.threads = c.threads > 0 ? static_cast<int>(std::min<int64_t>(c.threads, cores)) : share;
  if (c.threads > cores)
    r.warnings.push_back(fmt::format("runtime.threads: {} is more than the {} cores this process may use; using {}",
                                     c.threads, cores, cores));
  return r;
}

int usable_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void apply_runtime(const Runtime& r) {
  at::set_num_threads(r.threads);
  if (r.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(r.cudnn_benchmark);
}

std::string Runtime::describe() const {
  return fmt::format("device {} ({}), {} threads, {}, channels_last {}, cuda_graph {}", device.str(),
                     compat::device_name(device), threads, bf16 ? "bf16" : "fp32", channels_last ? "on" : "off",
                     cuda_graph ? "on" : "off");
}

}  // namespace resnet
