#pragma once
// c10d differences between LibTorch 1.13 and 2.x (included by src/parallel only).
// - 1.13: ProcessGroupGloo/NCCL derive from c10d::ProcessGroup; 2.x: from c10d::Backend (the
//   ProcessGroup there is a dispatcher over backends). Both have the same collective methods and
//   constructor (store, rank, size, options), so we hold the backend through this base.
// - Debian's LibTorch 1.13 has Gloo and no NCCL; a CUDA LibTorch 2.x has both (USE_C10D_NCCL).
// 2.x compiles the Gloo (and NCCL) backend headers only under USE_C10D_GLOO (USE_C10D_NCCL),
// which PyTorch defines for its own build, not for its users. Every LibTorch we build against has
// Gloo (Debian's, pip wheels).
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/version.h>

#if defined(RESNET_WITH_CUDA) && defined(USE_C10D_NCCL)
#define RESNET_WITH_NCCL 1
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace resnet::compat {

#if TORCH_VERSION_MAJOR >= 2
using C10dBackend = c10d::Backend;
#else
using C10dBackend = c10d::ProcessGroup;
#endif

}  // namespace resnet::compat
