#pragma once
// Weights in and out of a model: export a model's state_dict with its metadata, and load a
// .pt/.safetensors state_dict (ours, Python's, torchvision's, the popular CIFAR codes') into a model.
//
// Metadata (weights_file.h says where each format keeps it), one JSON object:
//   {"format": "resnet-train-weights", "version": 1, "names": "native"|"torchvision",
//    "model": <the model section of the config>, "normalizer": {"mode", "mean", "std"},
//    "step": N, "test_error": x|null, "source": "<checkpoint>"}
// mean/std are the per-channel (or per-pixel, mode "pixel") values an input x in [0, 1] is
// normalised with: (x - mean) / std.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "data/batches.h"
#include "interop/naming.h"
#include "interop/state_dict.h"
#include "models/resnet.h"

namespace resnet {

constexpr int kWeightsMetadataVersion = 1;

nlohmann::json weights_metadata(const ModelConfig& model, const Normalizer& normalizer,
                                const std::string& normalize_mode, int64_t step, const nlohmann::json& test_error,
                                const std::string& source, Names names);
// The normaliser stored by weights_metadata, if `metadata` has one (false otherwise). InputError
// naming `path` if it is there but malformed.
bool normalizer_from_metadata(const nlohmann::json& metadata, const std::string& path, Normalizer* out);

// Writes the model's state_dict (eval-ready: parameters and BN buffers) under `names`.
void export_weights(const ResNetImpl& model, const std::string& path, WeightsFormat format, Names names,
                    const nlohmann::json& metadata);

struct WeightsLoad {
  std::string path;                  // absolute
  std::string sha256;                // of the file's bytes
  std::string scheme = "native";     // the naming scheme, as detected (naming.h)
  int64_t loaded = 0;                // tensors copied into the model
  std::vector<std::string> skipped;  // model entries left as they were (init_skip), native names
  nlohmann::json metadata;           // the file's, or {}
  std::optional<Origin> origin;      // what a foreign file's keys say about the code that wrote it
};

// Copies the tensors of `path` into `model` (any device, memory format; values converted to
// the model's dtype). The naming scheme is detected (naming.h: ours, torchvision's, kuangliu's,
// akamaster's, ...; also under a "module." prefix). Model entries under a `skip` prefix (dotted:
// "fc" covers fc.weight, not fcx; either naming) keep their values, and file entries under it
// are ignored. A file without BN num_batches_tracked entries loads (the counter stays 0: it does
// not change what BN computes with a fixed momentum). Anything else that does not fit is one
// InputError naming the file, listing the missing, unexpected and mis-shaped keys and, when the
// keys describe a network of ours, the --set options that build it (origin_hint). `expect_sha256`
// (if not empty) must match.
WeightsLoad load_weights_into(ResNetImpl& model, const std::string& path, const std::vector<std::string>& skip = {},
                              const std::string& expect_sha256 = "");

// A note for a file that loaded but whose code, by its keys, builds or normalises differently
// from `config` (option A's padding, the normaliser: what keys cannot show), or "". With
// `normaliser_known` (the file's metadata or data.mean gave one) the normaliser is not mentioned.
std::string weights_note(const WeightsLoad& load, const ExperimentConfig& config, bool normaliser_known);

// The training hook for model.init_from: loads it (if set) into a freshly built model, and
// records in `config` the file's absolute path and SHA-256 (so config.json names the weights
// the run started from, and re-running that config refuses other weights).
void init_from_file(ResNetImpl& model, ModelConfig& config);

}  // namespace resnet
