#pragma once
// Checkpoints: everything needed to continue a run bit for bit, written atomically, holding
// tensors and JSON and nothing that runs.
//
// Format (version kCheckpointVersion = 2): a safetensors file (serialize/safetensors.h).
//   tensors   model.<name>      every parameter and buffer, under the model's own names
//             momentum.<name>   the SGD momentum buffer of parameter <name>
//             normalizer.mean, normalizer.std   what the inputs were normalised with
//   __metadata__["resnet_train_checkpoint"]: one JSON document
//             {"format": "resnet-train-checkpoint", "version": 2,
//              "config": the resolved ExperimentConfig, so resnet-eval rebuilds the model unaided,
//              "state": step, running train metrics, times, best validation error,
//              "data_fingerprint": the CIFAR-10 files the run trained on (resume refuses others),
//              "changes": what `--resume --allow-change` let differ from the run's start}
// Python reads it with a few lines (python/cifar_resnet.py: read_checkpoint).
//
// Version 1, the TorchScript archives of earlier builds, is still read, without TorchScript
// (checkpoint_v1.h): a resume of such a run writes version 2 from then on.
// No random-generator state: nothing draws from a global generator after the weights are
// initialised (the data order, crops and flips are pure functions of (seed, step), data/batches.h).
#include <ATen/core/Tensor.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/batches.h"
#include "models/resnet.h"
#include "serialize/safetensors.h"  // NamedTensors
#include "serialize/tensor_source.h"

namespace resnet {

class Sgd;

constexpr int64_t kCheckpointVersion = 2;

// The run's progress that a resume must restore.
struct TrainState {
  int64_t step = 0;           // steps completed
  double train_loss_sum = 0;  // since the last evaluation
  int64_t train_correct = 0;
  int64_t train_seen = 0;
  double train_seconds = 0;    // time spent in training steps (all sessions)
  double eval_seconds = 0;     // time spent evaluating (all sessions)
  double elapsed_seconds = 0;  // wall time of the run (all sessions)
  int64_t images_trained = 0;
  double best_val_error = -1;  // < 0: none yet
  int64_t best_val_step = -1;
};

struct CheckpointContents {
  nlohmann::json config;  // resolved config
  TrainState state;
  Normalizer normalizer;                             // CPU tensors
  std::string data_fingerprint;                      // data_fingerprint() of the training data; "" = not recorded
  nlohmann::json changes = nlohmann::json::array();  // [{step, key, from, to}], see trainer.h
};

// Streams the checkpoint into path.tmp, fsyncs it, renames it over path and fsyncs the folder:
// a crash or a write error (disk full: std::runtime_error naming path) leaves the previous
// checkpoint intact.
void save_checkpoint(const std::string& path, const CheckpointContents& contents, ResNetImpl& model, Sgd* optimizer);

// What a checkpoint file holds, whichever version wrote it; metadata not yet validated.
struct StoredCheckpoint {
  int64_t version = 0;
  nlohmann::json metadata;  // {format, version, config, state, data_fingerprint, changes}
  NamedTensors model;       // by the model's names
  // Momentum buffers by parameter name (version 2), or in parameter order with empty names
  // (version 1, which stored a list).
  NamedTensors momentum;
  at::Tensor mean, std;
  // Version 1 (a zip whose records may be deflated) reads model and momentum tensors only once
  // they are matched against a model: until then they are meta tensors (dtype and shape), read
  // through `source` by these ids. Version 2's tensors are read in full (their bytes are the file's).
  std::shared_ptr<TensorSource> source;
  std::vector<size_t> model_ids, momentum_ids;
};

// Opens a checkpoint file for reading: a regular file of at most budget::kWeightsFileBytes. One
// inside a run's checkpoints/ folder is opened relative to the run folder without following a
// symlink (util/folder.h); any other path as the user named it. InputError naming it.
ReadableFile open_checkpoint_file(const std::string& path);

// Opens a checkpoint. A missing, truncated, foreign or tampered file is an InputError naming it.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);
  const CheckpointContents& contents() const { return contents_; }
  int64_t version() const { return stored_.version; }
  // The model's tensors as stored (by the model's names), to size a model before building it.
  const NamedTensors& model_tensors() const { return stored_.model; }
  const std::string& path() const { return path_; }
  // The stored config, validated; an InputError naming the file if it no longer validates.
  ExperimentConfig config() const;
  // Copies the weights into `model` (any device). Names, shapes and dtypes must match exactly.
  void load_model(ResNetImpl& model);
  // Copies the momentum buffers of `model`'s parameters into `optimizer` (made over them).
  void load_optimizer(Sgd& optimizer, ResNetImpl& model);

 private:
  std::string path_;
  StoredCheckpoint stored_;
  CheckpointContents contents_;
};

}  // namespace resnet
