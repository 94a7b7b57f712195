#pragma once
// Helpers for the tests that train runs and look into run folders or processes: quiet trainer
// options, a checkpoint's weights, metrics rows, whole files, and waiting for a child process
// with a deadline.
#include <sys/wait.h>
#include <unistd.h>

#include <ATen/ATen.h>
#include <chrono>
#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "models/resnet.h"
#include "train/checkpoint.h"
#include "train/sgd.h"
#include "train/trainer.h"

namespace resnet::testing {

// No console, no progress line: train.log only.
inline TrainOptions quiet(const std::string& out = "") {
  TrainOptions o;
  o.out_dir = out;
  o.progress = false;
  o.console = false;
  return o;
}

// Parameters, BN buffers and momentum of a run's last checkpoint (and its step).
inline std::vector<at::Tensor> weights_of(const std::string& run, int64_t* step = nullptr) {
  CheckpointReader r(run + "/checkpoints/last.ckpt");
  auto model = make_model(r.config().model);
  r.load_model(*model);
  Sgd sgd(model->parameters(), {});
  r.load_optimizer(sgd, *model);
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  for (const auto& b : model->buffers()) out.push_back(b.detach().clone());
  for (const auto& m : sgd.momentum_buffers()) out.push_back(m.clone());
  if (step) *step = r.contents().state.step;
  return out;
}

// The metrics rows of a run without the columns that measure time.
inline std::vector<nlohmann::json> metric_rows(const std::string& run) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    nlohmann::json row = nlohmann::json::parse(line);
    row.erase("images_per_sec");
    row.erase("elapsed_s");
    rows.push_back(row);
  }
  return rows;
}

inline std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The exit code of `pid` (128 + signal if killed); one still running after `limit` is killed
// and gives -1, so that a test fails instead of hanging.
inline int wait_exit(pid_t pid, std::chrono::seconds limit = std::chrono::seconds(300)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace resnet::testing
