#pragma once
// Version 1 checkpoints: the TorchScript archives that builds before the safetensors format wrote
// (LibTorch's torch::serialize::OutputArchive: a zip holding data.pkl, the tensors' storages
// data/<k>, the class source code/__torch__.py and its debug table, constants.pkl, version).
//
// They are read without TorchScript: LibTorch's reader compiles code/__torch__.py and calls any
// __setstate__ it defines, so a file could run code of its choosing. Here:
//   - data.pkl goes through the restricted unpickler (serialize/unpickler.h) with one class
//     allowed, __torch__.Module, whose object becomes its plain attribute dict; no method runs;
//   - the archive must be exactly what the old writer made: its records (no others), its
//     constants.pkl, and the attributes it wrote with their types (format, version, config,
//     state, data_fingerprint, changes: strings/int; model_names; model_tensors and momentum:
//     tensor lists; norm_mean, norm_std and, before 2026-11-28, rng_cpu: tensors);
//   - code/__torch__.py is never compiled or run; its bytes must equal the class source that
//     writer generates for those attributes, so an archive carrying any other code (a
//     __setstate__ that writes files) is refused, also for the sake of whoever would open it
//     with torch.jit.load later.
#include <string>

#include "train/checkpoint.h"

namespace resnet {

// The checkpoint in the archive `bytes` (read from `path`); InputError naming the path for
// anything else. Model and momentum tensors are meta tensors, read when matched (StoredCheckpoint).
StoredCheckpoint read_checkpoint_v1(std::string bytes, const std::string& path);

// The class source (code/__torch__.py) LibTorch 1.13's OutputArchive writes for a module whose
// attributes are `attributes` (name, TorchScript type), in order; tensors are its parameters.
std::string v1_class_source(const std::vector<std::pair<std::string, std::string>>& attributes);

}  // namespace resnet
