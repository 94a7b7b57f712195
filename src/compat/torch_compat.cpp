#include "compat/torch_compat.h"

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <torch/version.h>

#if defined(RESNET_WITH_CUDA)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace resnet::compat {

std::string torch_version() { return TORCH_VERSION; }

bool cuda_available() {
#if defined(RESNET_WITH_CUDA)
  return at::hasCUDA() && c10::cuda::device_count() > 0;
#else
  return false;
#endif
}

int cuda_device_count() {
#if defined(RESNET_WITH_CUDA)
  return at::hasCUDA() ? static_cast<int>(c10::cuda::device_count()) : 0;
#else
  return 0;
#endif
}

std::string device_name(const c10::Device& device) {
#if defined(RESNET_WITH_CUDA)
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
#endif
  return device.str();
}

void set_autocast(c10::DeviceType device_type, bool enabled, c10::ScalarType dtype,
                  bool cache_enabled) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(device_type, enabled);
  at::autocast::set_autocast_dtype(device_type, dtype);
#else
  if (device_type == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  } else {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  }
#endif
  at::autocast::set_autocast_cache_enabled(cache_enabled);
}

void clear_autocast_cache() { at::autocast::clear_cache(); }

Autocast::Autocast(const c10::Device& device, bool enabled, bool cache_enabled)
    : type_(device.type()), enabled_(enabled) {
  if (enabled_) set_autocast(type_, true, at::kBFloat16, cache_enabled);
}

Autocast::~Autocast() {
  if (!enabled_) return;
  set_autocast(type_, false, at::kBFloat16, true);
  clear_autocast_cache();
}

}  // namespace resnet::compat
