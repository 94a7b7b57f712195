#include "compat/torch_compat.h"

#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/version.h>

#include "util/errors.h"

#if defined(RESNET_WITH_CUDA)
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace resnet::compat {

std::string torch_version() { return TORCH_VERSION; }

#if defined(RESNET_WITH_CUDA)
namespace {

// Keeps the first warning raised in its scope instead of printing it: the CUDA runtime's
// TORCH_WARN when there is no driver or device, which would otherwise reach stderr unasked.
// (1.13 hands the handler the location and the text; 2.x a c10::Warning.)
class CaptureWarning : public c10::WarningHandler {
 public:
#if TORCH_VERSION_MAJOR >= 2
  void process(const c10::Warning& warning) override { keep(warning.msg()); }
#else
  void process(const c10::SourceLocation&, const std::string& msg, const bool) override { keep(msg); }
#endif
  std::string first;

 private:
  void keep(const std::string& msg) {
    if (first.empty()) first = msg;
  }
};

// 13000 -> "13.0", 91900 -> "9.19.0" (CUDA: major*1000 + minor*10; cuDNN 9: major*10000 + minor*100 + patch).
std::string cuda_version_text(long v) { return fmt::format("{}.{}", v / 1000, (v % 1000) / 10); }
std::string cudnn_version_text(long v) {
  return v >= 90000 ? fmt::format("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
                    : fmt::format("{}.{}.{}", v / 1000, (v % 1000) / 100, v % 100);
}

// Why there is no device, in the user's terms: no driver at all (no libcuda.so.1: a machine
// without an NVIDIA GPU), else what the runtime says (no device, a driver too old, ...).
std::string why_no_device(const std::string& warning) {
  void* driver = ::dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!driver) return "no NVIDIA driver: libcuda.so.1 is not installed";
  ::dlclose(driver);
  int n = 0;
  const cudaError_t error = cudaGetDeviceCount(&n);
  (void)cudaGetLastError();  // clear it: nothing else here uses the runtime
  if (error != cudaSuccess) return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(error);
  return warning.empty() ? "the CUDA driver shows 0 devices" : first_line(warning);
}

CudaStatus ask_cuda() {
  CudaStatus s;
  s.built = true;
  const auto& hooks = at::detail::getCUDAHooks();
  CaptureWarning capture;
  {
    c10::WarningUtils::WarningHandlerGuard guard(&capture);
    try {
      s.devices = static_cast<int>(c10::cuda::device_count());
    } catch (const c10::Error& e) {
      capture.first = e.what_without_backtrace();
    }
  }
  if (s.devices == 0) s.why_none = why_no_device(capture.first);
  try {
    s.runtime_version = cuda_version_text(hooks.versionCUDART());
    if (hooks.compiledWithCuDNN()) s.cudnn_version = cudnn_version_text(hooks.versionCuDNN());
  } catch (const c10::Error&) {
    // Not a CUDA LibTorch after all: the versions stay empty.
  }
  return s;
}

}  // namespace
#endif

const CudaStatus& cuda_status() {
#if defined(RESNET_WITH_CUDA)
  static const CudaStatus status = ask_cuda();
#else
  static const CudaStatus status;
#endif
  return status;
}

bool cuda_available() { return cuda_status().devices > 0; }

int cuda_device_count() { return cuda_status().devices; }

std::string device_name(const c10::Device& device) {
#if defined(RESNET_WITH_CUDA)
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index() < 0 ? 0 : device.index())->name;
#endif
  return device.str();
}

void set_autocast(c10::DeviceType device_type, bool enabled, c10::ScalarType dtype, bool cache_enabled) {
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
