#pragma once
// `--version` of every resnet-* tool: what the binary is and what it was built with and sees.
#include <string>

namespace resnet::cli {

// Lines "key: value", e.g.
//   resnet-train 1.0.0
//   libtorch: 2.11.0
//   cuda: built in (runtime 13.0)      | cuda: no (a CPU-only LibTorch)
//   cudnn: built in (9.19.0)           | cudnn: no
//   nccl: built in (2.28.9)            | nccl: no
//   devices: cpu (2 cores); cuda:0 NVIDIA H100 80GB HBM3
//   devices: cpu (2 cores); no CUDA device (Found no NVIDIA driver on your system...)
std::string version_text(const std::string& tool);

}  // namespace resnet::cli
