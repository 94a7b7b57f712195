#pragma once
// ExperimentConfig: the plain structs that name an experiment completely.
//
// A field here holds a key's type and default; its name, description, check and whether a resume
// may change it are its row in config/keys.cpp. Everything else comes from that row: reading and
// writing JSON (by name, never by position), validation and its messages, the keys a resume may
// change, `resnet-train --help-config` and docs/config.md (tests/test_config.cpp sets every
// declared key by name to a value other than its default and reads it back).
// Unknown keys, wrong types and invalid values are InputErrors naming the dotted key.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace resnet {

struct ModelConfig {
  std::string family = "cifar";   // a family of models/families.h: cifar | imagenet | wide
  int depth = 20;                 // the family's depth rule (cifar 6n+2 / 9n+2, imagenet 18..152, wide 6n+4)
  bool residual = true;           // false: the plain twin (same layers, no addition)
  std::string shortcut = "auto";  // A | B | C; auto = per family
  std::string block = "auto";     // basic | bottleneck; auto = per family and depth
  std::optional<bool> preact;     // pre-activation blocks (He et al. 2016); unset = auto, per family
  std::string stem = "auto";      // cifar (3x3/1) | imagenet (7x7/2 + maxpool); auto = per family
  int num_classes = 10;
  bool zero_init_residual = false;  // last BN of each residual branch starts at gamma = 0
  // Fine-tuning: a new run starts from the weights in this .pt/.safetensors file (any naming
  // interop/naming.h knows, told apart automatically) instead of a random initialisation; resumes
  // ignore it. Layers under an init_skip prefix ("fc", "conv1") keep their random start.
  std::string init_from;
  std::vector<std::string> init_skip;
  std::string init_sha256;  // the file's SHA-256: "" = any (the run fills it in), else must match
  // Where option A's zero channels go when a shortcut widens x from C to C' channels:
  //   after  [x, 0 ... 0]                        (ours, the default)
  //   split  [0 (floor((C'-C)/2)), x, 0 (rest)]  (akamaster/pytorch_resnet_cifar10's
  //          F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4)): identity channels in the middle)
  std::string option_a_padding = "after";
  int width = 1;             // the wide family's k (WRN-d-k: stage widths 16k, 32k, 64k); 1 elsewhere
  bool allow_large = false;  // build nets past the size bounds (models/layout.h) when that is meant
};

struct DataConfig {
  std::string dir;                    // "" = --data-dir, else $CIFAR10_DIR, else data/cifar-10-batches-bin
  int64_t val_size = 0;               // images held out of the training set (paper: 5000)
  int64_t val_seed = 0;               // seed of the rule that picks them
  int64_t train_limit = 0;            // use only the first N training images (0 = all)
  int64_t test_limit = 0;             // evaluate on the first N test images (0 = all)
  std::string normalize = "channel";  // channel (mean/std per channel) | pixel (paper: per-pixel mean)
  bool augment = true;                // 4-pixel pad + random 32x32 crop + horizontal flip
  // An explicit per-channel normaliser (R, G, B on the 0-1 scale: x' = (x / 255 - mean) / std)
  // instead of one fitted on the training images, e.g. ImageNet's [0.485, 0.456, 0.406] /
  // [0.229, 0.224, 0.225] for weights trained with it. Empty = fit (data.normalize).
  std::vector<double> mean;
  std::vector<double> std;
};

struct LrScheduleConfig {
  std::string type = "multistep";                 // multistep | cosine | constant
  std::vector<int64_t> milestones{32000, 48000};  // steps at which lr *= gamma (multistep)
  double gamma = 0.1;
  std::string warmup = "none";  // none | linear (0 -> lr) | constant (warmup_lr, the paper's 110/1202)
  int64_t warmup_steps = 0;
  double warmup_lr = 0.01;
  double min_lr = 0.0;  // cosine floor
};

struct TrainConfig {
  int64_t batch_size = 128;
  int64_t iterations = 64000;  // length in steps; used when epochs == 0
  double epochs = 0;           // length in epochs (overrides iterations when > 0)
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 1e-4;
  int64_t eval_every = 0;         // steps between evaluations; 0 = once per epoch
  int64_t checkpoint_every = 0;   // steps between checkpoints; 0 = at every evaluation
  int64_t log_every = 50;         // steps between progress lines
  int64_t eval_batch_size = 256;  // fastest measured on the 2-core CPU (channels_last)
  LrScheduleConfig lr_schedule;
};

struct RuntimeConfig {
  std::string device = "auto";  // auto | cpu | cuda
  int64_t threads = 0;          // CPU threads; 0 = all cores (LibTorch's own default is 1)
  int64_t seed = 0;
  std::string precision = "auto";       // auto | fp32 | bf16 (auto = bf16 on CUDA, fp32 on CPU)
  std::optional<bool> channels_last;    // unset = auto (on: faster on CUDA and CPU)
  std::optional<bool> cuda_graph;       // unset = auto (on for CUDA)
  std::optional<bool> cudnn_benchmark;  // unset = auto (on for CUDA)
  // Under torchrun / srun (src/parallel): auto = NCCL on CUDA where the LibTorch has it, else Gloo.
  std::string dist_backend = "auto";  // auto | gloo | nccl
  int64_t dist_timeout_s = 300;       // a rank that dies or hangs stops the others within this
  bool tensorboard = true;            // also write TensorBoard event files into the run folder
};

struct ExperimentConfig {
  std::string name = "experiment";
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  RuntimeConfig runtime;
};

nlohmann::json to_json(const ExperimentConfig& config);

// Merges `user` over the defaults (schema check: unknown key / wrong type throw InputError
// naming the key), converts, then validates values (see `validate`).
ExperimentConfig config_from_json(const nlohmann::json& user);

// Loads a config file; errors name the file and the key.
ExperimentConfig load_config(const std::string& path);

// Applies one `--set dotted.key=value` override to a user JSON document. The value is parsed as
// JSON; if that fails it is taken as a string (so `--set model.shortcut=B` works).
void apply_override(nlohmann::json& user, const std::string& assignment);

// Checks the model's keys and lets its family (models/families.h) resolve the "auto" choices
// (shortcut, block, preact, stem) and check its depth rule and size: any network the builder can
// make, of a size the bounds allow. Throws InputError("model.depth: ...") and the like.
void validate_model(ModelConfig& model);

// validate_model, plus what an experiment on CIFAR-10 needs (at least 10 outputs, activations of
// a training batch within bounds) and every data, train and runtime value.
void validate(ExperimentConfig& config);

}  // namespace resnet
