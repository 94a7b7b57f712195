#pragma once
// Checkpoints: everything needed to continue a run bit for bit, written atomically.
//
// Contents (format "resnet-train-checkpoint", version kCheckpointVersion):
//   config       resolved ExperimentConfig (JSON), so resnet-eval rebuilds the model unaided
//   model        parameter and buffer tensors, by name (shapes checked on load)
//   momentum     SGD momentum buffers, in parameter order
//   normalizer   the mean/std the model was trained with
//   state        step, running train metrics, elapsed time, best validation error
//   data         a fingerprint of the CIFAR-10 files the run trained on (resume refuses others)
//   changes      what `--resume --allow-change` let differ from the run's start, and when
// No random-generator state: nothing draws from a global generator after the weights are
// initialised (the data order, crops and flips are pure functions of (seed, step), data/batches.h),
// so a resume needs none. Checkpoints of earlier builds that hold one ("rng_cpu") still load.
#include <ATen/core/Tensor.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "data/batches.h"
#include "models/resnet.h"

namespace resnet {

class Sgd;

constexpr int64_t kCheckpointVersion = 1;

// The run's progress that a resume must restore.
struct TrainState {
  int64_t step = 0;                // steps completed
  double train_loss_sum = 0;       // since the last evaluation
  int64_t train_correct = 0;
  int64_t train_seen = 0;
  double train_seconds = 0;        // time spent in training steps (all sessions)
  double eval_seconds = 0;         // time spent evaluating (all sessions)
  double elapsed_seconds = 0;      // wall time of the run (all sessions)
  int64_t images_trained = 0;
  double best_val_error = -1;      // < 0: none yet
  int64_t best_val_step = -1;
};

struct CheckpointContents {
  nlohmann::json config;           // resolved config
  TrainState state;
  Normalizer normalizer;           // CPU tensors
  std::string data_fingerprint;    // data_fingerprint() of the training data; "" = not recorded
  nlohmann::json changes = nlohmann::json::array();  // [{step, key, from, to}], see trainer.h
};

// Streams the checkpoint into path.tmp, fsyncs it, renames it over path and fsyncs the folder:
// a crash or a write error (disk full: std::runtime_error naming path) leaves the previous
// checkpoint intact.
void save_checkpoint(const std::string& path, const CheckpointContents& contents, ResNetImpl& model,
                     Sgd* optimizer);

// Opens a checkpoint. A missing, truncated or foreign file is an InputError naming it.
class CheckpointReader {
 public:
  explicit CheckpointReader(const std::string& path);
  ~CheckpointReader();
  const CheckpointContents& contents() const { return contents_; }
  // The stored config, validated; an InputError naming the file if it no longer validates.
  ExperimentConfig config() const;
  // Copies the weights into `model` (any device). Names and shapes must match exactly.
  void load_model(ResNetImpl& model);
  void load_optimizer(Sgd& optimizer);

 private:
  struct Archive;
  std::string path_;
  std::unique_ptr<Archive> archive_;
  CheckpointContents contents_;
};

}  // namespace resnet
