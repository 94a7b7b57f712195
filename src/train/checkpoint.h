#pragma once
// Checkpoints: everything needed to continue a run bit for bit, written atomically.
//
// Contents (format "resnet-train-checkpoint", version kCheckpointVersion):
//   config       resolved ExperimentConfig (JSON), so resnet-eval rebuilds the model unaided
//   model        parameter and buffer tensors, by name (shapes checked on load)
//   momentum     SGD momentum buffers, in parameter order
//   normalizer   the mean/std the model was trained with
//   state        step, running train metrics, elapsed time, best validation error
//   rng          the CPU generator's state (data order needs none: it is a function of the step)
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
};

// Writes path.tmp, then renames over path: a crash leaves the previous checkpoint intact.
void save_checkpoint(const std::string& path, const nlohmann::json& config, ResNetImpl& model,
                     Sgd* optimizer, const Normalizer& normalizer, const TrainState& state);

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
  void restore_rng();

 private:
  struct Archive;
  std::string path_;
  std::unique_ptr<Archive> archive_;
  CheckpointContents contents_;
};

}  // namespace resnet
