#pragma once
// Everything one process needs to run (its share of) a training run, and how it is set up:
// the runtime agreed by every rank, then data, model and optimizer (from a checkpoint on a
// resume), then rank 0's state on every rank. The loop that runs it is train/loop.h.
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "config/config.h"
#include "data/batches.h"
#include "data/cifar10.h"
#include "models/resnet.h"
#include "parallel/communicator.h"
#include "parallel/job.h"
#include "train/agreements.h"
#include "train/checkpoint.h"
#include "train/runtime.h"
#include "train/sgd.h"
#include "train/trainer.h"

namespace spdlog {
class logger;
}

namespace resnet {

class RunDir;

struct Session {
  ExperimentConfig config;
  TrainOptions options;
  Runtime runtime;
  Cifar10 data;
  Splits splits;
  Normalizer normalizer;
  ResNet model{nullptr};
  std::unique_ptr<Sgd> sgd;
  std::unique_ptr<BatchSource> source;
  TrainState state;
  int64_t total = 0;
  std::string data_fingerprint;
  nlohmann::json changes = nlohmann::json::array();  // recorded --resume changes
  LaunchEnv env;  // where this process sits in the job (launcher's variables; inactive: one process)
  // The other processes of the job (a one-process communicator when there are none), the named
  // points where this one meets them, and the gradient exchange.
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<Agreements> agree;
  std::unique_ptr<GradientAverage> grads;
};

// The machine side of the run (device, threads, backend), agreed by every rank of `job` before
// anything else may fail on one rank only; then the communicator.
void start(Session& s, Job& job);

// Builds data, model and optimizer, from `from` on a resume; checks every input before anything
// is written. Runs inside an agreement: no collectives.
void prepare(Session& s, CheckpointReader* from);

// After prepare() succeeded on every rank: rank 0's weights, BN statistics and momentum on every
// rank, and the gradient exchange set up.
void join_ranks(Session& s);

// config.json and the checkpoint's config: the resolved config, plus the changes made on resume.
nlohmann::json stored_config(const Session& s);

// The run's logger: console + train.log on rank 0 (or a single process: `dir`); the other ranks
// of a data-parallel run write warnings and errors only, to stderr, prefixed with their rank.
// A log that cannot be written stops the run (exit 1, one line naming train.log).
std::shared_ptr<spdlog::logger> make_logger(const Session& s, const RunDir* dir, bool tty);

}  // namespace resnet
