#include "cli/analyze_geometry.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "analysis/hessian.h"
#include "analysis/landscape.h"
#include "analysis/paths.h"
#include "analysis/sharding.h"
#include "cli/common.h"
#include "train/runtime.h"
#include "util/errors.h"
#include "util/json_io.h"
#include "util/sha256.h"

namespace resnet::cli {
namespace {

int64_t default_images(const std::string& analysis) {
  if (analysis == "landscape") return 2000;  // Li et al. evaluate on the training set too
  if (analysis == "hessian") return 200;     // PyHessian's mini-batch
  return 128;                                // paths: one batch
}

// The first `count` images of the split, and how a result names them: the split, the count
// and a SHA-256 of their bytes (a resumed landscape must see the same images).
ImageSet named_images(const Cifar10& data, const std::string& split, int64_t count, nlohmann::json& desc) {
  const ImageSet& set = split == "train" ? data.train : data.test;
  if (set.size() == 0) throw InputError("--split " + split + ": no images loaded");
  count = std::min(count, set.size());
  ImageSet out{set.images.narrow(0, 0, count).contiguous(), set.labels.narrow(0, 0, count).contiguous()};
  std::string bytes(static_cast<const char*>(out.images.data_ptr()), static_cast<size_t>(out.images.numel()));
  bytes.append(static_cast<const char*>(out.labels.data_ptr()), static_cast<size_t>(out.labels.numel() * 8));
  desc = {{"split", split}, {"first", count}, {"sha256", sha256_hex(bytes)}};
  return out;
}

// The landscape options from the flags and the rank's runtime (precision, channels_last).
nlohmann::json run_landscape(const GeometryFlags& f, std::vector<Subject>& subjects, const ImageSet& images,
                             const nlohmann::json& desc, int64_t batch, const Runtime& rt, Communicator& comm,
                             const std::string& out_dir) {
  LandscapeOptions o;
  o.kind = f.kind;
  o.grid = f.grid > 0 ? f.grid : (f.kind == "surface" ? 21 : 41);
  o.range = f.range >= 0 ? f.range : (f.kind == "interpolate" ? 0.5 : 1.0);
  o.seed = f.seed;
  o.include_bn = f.include_bn;
  o.batch_size = batch > 0 ? batch : 500;
  o.bf16 = rt.bf16;
  o.channels_last = rt.channels_last;
  if (rt.channels_last)
    for (auto& s : subjects) to_channels_last(*s.model);
  return landscape_json(subjects, images, desc, o, comm, out_dir);
}

nlohmann::json run_hessian(const GeometryFlags& f, std::vector<Subject>& subjects, const ImageSet& images,
                           const nlohmann::json& desc, int64_t batch, Communicator& comm) {
  HessianOptions o;
  o.eigen.top_k = f.top_k;
  o.eigen.max_iterations = f.max_iterations;
  o.eigen.tolerance = f.tolerance;
  o.eigen.seed = f.seed;
  o.probes = f.probes;
  o.slq_runs = f.slq_runs;
  o.lanczos_steps = f.lanczos_steps;
  // Default: the top eigenvalues' batch in one chunk per rank, the trace's and density's (rank
  // local) in one chunk; one chunk keeps its gradient graph between products.
  o.chunk = batch > 0 ? batch : (images.size() + comm.size() - 1) / comm.size();
  o.local_chunk = batch > 0 ? batch : images.size();
  return hessian_json(subjects, images, desc, o, comm);
}

}  // namespace

bool is_geometry_analysis(const std::string& a) { return a == "landscape" || a == "hessian" || a == "paths"; }

void add_geometry_flags(CLI::App& app, GeometryFlags& f) {
  app.add_option("--split", f.split, "landscape/hessian/paths: images from this split (default train)")
      ->check(CLI::IsMember({"train", "test"}));
  app.add_option("--seed", f.seed, "landscape/hessian/paths: random directions, starts, probes, samples (default 0)");
  app.add_option("--kind", f.kind, "landscape: surface (2-D, default) | line (1-D) | interpolate (two models)")
      ->check(CLI::IsMember({"surface", "line", "interpolate"}));
  app.add_option("--grid", f.grid, "landscape: points per axis (default 21; 41 in 1-D)")->check(CLI::Range(2, 1001));
  app.add_option("--range", f.range, "landscape: alpha, beta in [-R, R] (interpolate: [-R, 1 + R]; default 1, 0.5)")
      ->check(CLI::Range(0.0, 1e6));
  app.add_flag("--include-bn", f.include_bn, "landscape: also perturb biases and BN parameters");
  app.add_option("--top-k", f.top_k, "hessian: eigenvalues by power iteration (default 1)")->check(CLI::Range(1, 100));
  app.add_option("--max-iterations", f.max_iterations, "hessian: power iterations per eigenvalue (default 100)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--tolerance", f.tolerance, "hessian: power iteration stops at this relative change (default 1e-3)")
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--probes", f.probes, "hessian: Hutchinson probes for the trace (default 32; 0: none)")
      ->check(CLI::Range(0, 100000));
  app.add_option("--slq-runs", f.slq_runs, "hessian: Lanczos runs for the density (default 1; 0: none)")
      ->check(CLI::Range(0, 10000));
  app.add_option("--lanczos-steps", f.lanczos_steps, "hessian: Lanczos steps per run (default 40)")
      ->check(CLI::Range(1, 10000));
  app.add_option("--samples", f.samples, "paths: random block subsets per path length (default 10)")
      ->check(CLI::Range(1, 100000));
}

bool geometry_needs_train(const std::string& analysis, const GeometryFlags& f) {
  return is_geometry_analysis(analysis) && f.split == "train";
}

RuntimeConfig runtime_settings(const std::vector<std::string>& sets) {
  std::vector<std::string> runtime_sets;
  for (const auto& s : sets)
    if (s.rfind("runtime.", 0) == 0) runtime_sets.push_back(s);
  return resolve_config(nlohmann::json::object(), runtime_sets, "--set").runtime;
}

int run_geometry(const std::string& analysis, const GeometryFlags& f, std::vector<Subject>& subjects,
                 const Cifar10& data, int64_t images, int64_t batch, const Runtime& rt, const std::string& out_dir,
                 Communicator& comm) {
  nlohmann::json desc;
  const ImageSet set = named_images(data, f.split, images > 0 ? images : default_images(analysis), desc);
  nlohmann::json result;
  if (analysis == "landscape") {
    result = run_landscape(f, subjects, set, desc, batch, rt, comm, out_dir);
  } else if (analysis == "hessian") {
    result = run_hessian(f, subjects, set, desc, batch, comm);
  } else {
    PathsOptions o;
    o.samples = f.samples;
    o.seed = f.seed;
    o.mass = f.mass;
    result = paths_json(subjects, set, o, comm);
    result["images"] = desc;
  }
  result["ranks"] = comm.size();  // how many processes shared the work
  // Rank 0 writes; every rank learns whether that worked (and exits with it).
  comm.agree("writing the results", [&] {
    if (!comm.writer()) return;
    const std::string json_path = (std::filesystem::path(out_dir) / (analysis + ".json")).string();
    write_file_atomic(json_path, result.dump(2) + "\n");
    const std::vector<std::string> pngs = analysis == "landscape" ? plot_landscape(result, out_dir)
                                          : analysis == "hessian" ? plot_hessian(result, out_dir)
                                                                  : plot_paths(result, out_dir);
    std::cout << json_path << "\n";
    for (const auto& p : pngs) std::cout << p << "\n";
  });
  return 0;
}

}  // namespace resnet::cli
