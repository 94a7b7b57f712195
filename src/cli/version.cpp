#include "cli/version.h"

#include <fmt/format.h>

#include "compat/torch_compat.h"
#include "parallel/job.h"
#include "train/runtime.h"
#include "util/errors.h"

#ifndef RESNET_VERSION
#define RESNET_VERSION "unknown"
#endif

namespace resnet::cli {

std::string version_text(const std::string& tool) {
  const compat::CudaStatus& cuda = compat::cuda_status();
  auto built = [](bool in, const std::string& version) {
    return in ? fmt::format("built in ({})", version.empty() ? "version unknown" : version) : std::string("no");
  };
  std::string devices = fmt::format("cpu ({} cores)", usable_cores());
  for (int i = 0; i < cuda.devices; ++i) {
    const c10::Device d(c10::kCUDA, static_cast<c10::DeviceIndex>(i));
    devices += fmt::format("; {} {}", d.str(), compat::device_name(d));
  }
  if (cuda.built && cuda.devices == 0) devices += fmt::format("; no CUDA device ({})", excerpt(cuda.why_none, 120));
  return fmt::format(
      "{} {}\nlibtorch: {}\ncuda: {}\ncudnn: {}\nnccl: {}\ndevices: {}\n", tool, RESNET_VERSION,
      compat::torch_version(), cuda.built ? built(true, "runtime " + cuda.runtime_version) : "no (a CPU-only LibTorch)",
      built(!cuda.cudnn_version.empty(), cuda.cudnn_version), built(have_nccl(), nccl_version()), devices);
}

}  // namespace resnet::cli
