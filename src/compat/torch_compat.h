#pragma once
// Everything that differs between Debian's LibTorch 1.13 (CPU) and LibTorch 2.x (CUDA) lives
// behind these functions, so the rest of the code compiles unchanged against both.
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace resnet::compat {

// "1.13.1", "2.11.0", ...
std::string torch_version();

bool cuda_available();
int cuda_device_count();
// Whether this binary was built with CUDA (a CUDA LibTorch, RESNET_WITH_CUDA), and what it sees:
// the number of CUDA devices and, when there are none, why (the CUDA runtime's first line,
// "Found no NVIDIA driver on your system...", caught instead of printed). Asked once per process.
struct CudaStatus {
  bool built = false;
  int devices = 0;
  std::string why_none;
  std::string runtime_version;  // CUDA runtime the LibTorch was built with: "13.0"; "" without CUDA
  std::string cudnn_version;    // "9.19.0"; "" without cuDNN
};
const CudaStatus& cuda_status();
// Name of CUDA device 0, or "cpu".
std::string device_name(const c10::Device& device);

// Autocast on `device_type` with `dtype` (bf16). 1.13: at::autocast::set_enabled +
// set_autocast_gpu_dtype; 2.4+: set_autocast_enabled(device, on) + set_autocast_dtype(device, dtype).
// The weight cast cache must be off while a CUDA graph is captured.
void set_autocast(c10::DeviceType device_type, bool enabled, c10::ScalarType dtype, bool cache_enabled);
// Leaves autocast nested region (clears the cast cache).
void clear_autocast_cache();

// bf16 autocast on `device` for the scope's lifetime when `enabled` (else nothing); on exit,
// also by exception, autocast is switched off and its cast cache cleared.
class Autocast {
 public:
  Autocast(const c10::Device& device, bool enabled, bool cache_enabled = true);
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  c10::DeviceType type_;
  bool enabled_;
};

}  // namespace resnet::compat
