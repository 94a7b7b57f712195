// Loss landscapes (Li et al. 2018) on tiny models and synthetic images: filter normalisation holds
// per filter; the same seed gives the same directions (and the file holds them under the model's
// names); a grid point equals evaluating θ + αδ + βη directly; interpolation ends at both models;
// a killed run resumes from the points written and refuses other arguments; 2 ranks give the
// 1-rank grid; the pictures render. And resnet-analyze's landscape/hessian/paths command lines.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "analysis/landscape.h"
#include "interop/weights_file.h"
#include "sharding_support.h"
#include "test_support.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::RankOf;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

Subject tiny_subject(bool residual = true, int64_t seed = 0) {
  ExperimentConfig c;
  c.model.depth = 8;
  c.model.residual = residual;
  c.runtime.seed = seed;
  validate(c);
  ImageSet images = resnet::testing::synthetic_set(64, 1);
  return subject_from_config(c, fit_normalizer(images.images, "channel"), at::kCPU);
}

ImageSet images() { return resnet::testing::synthetic_set(24, 2); }

LandscapeOptions small(const std::string& kind = "surface", int64_t grid = 3) {
  LandscapeOptions o;
  o.kind = kind;
  o.grid = grid;
  o.range = 0.5;
  o.seed = 11;
  o.batch_size = 10;  // several batches per point
  return o;
}

const nlohmann::json kImages = {{"split", "test"}, {"first", 24}};

// The model's loss on `set` without the folded eval path: eval mode, one forward.
double direct_loss(ResNetImpl& model, const Subject& s, const ImageSet& set) {
  torch::NoGradGuard no_grad;
  model.eval();
  return at::cross_entropy_loss(model.forward(s.normalizer(set.images)), set.labels).item<double>();
}

std::map<std::string, at::Tensor> read_directions(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, t] : read_weights(path).tensors) out[name] = t;
  return out;
}

std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

}  // namespace

TEST(Landscape, FilterNormalisationHoldsPerFilter) {
  Subject s = tiny_subject();
  for (bool include_bn : {false, true}) {
    at::Generator gen = at::detail::createCPUGenerator(5);
    const NamedTensors d = random_direction(*s.model, gen, include_bn);
    auto params = s.model->named_parameters();
    ASSERT_EQ(d.size(), params.size());
    for (const auto& [name, dir] : d) {
      const at::Tensor w = params[name].detach();
      if (w.dim() > 1) {  // conv filters and fc rows: |d_i| = |w_i| for every filter i
        at::Tensor dn = dir.reshape({w.size(0), -1}).norm(2, {1}), wn = w.reshape({w.size(0), -1}).norm(2, {1});
        EXPECT_TRUE(at::allclose(dn, wn, 1e-5, 1e-7)) << name;
        EXPECT_FALSE(at::allclose(dir, w)) << name << " is random, not the weight itself";
      } else if (include_bn) {
        EXPECT_TRUE(at::allclose(dir.abs(), w.abs())) << name;
      } else {
        EXPECT_EQ(dir.abs().max().item<double>(), 0.0) << name << ": biases and BN get no direction";
      }
    }
  }
}

TEST(Landscape, TheSameSeedGivesTheSameDirectionsAndTheFileHoldsThem) {
  Subject s = tiny_subject();
  LandscapeOptions o = small();
  const Directions a = make_directions(*s.model, nullptr, o), b = make_directions(*s.model, nullptr, o);
  o.seed = 12;
  const Directions c = make_directions(*s.model, nullptr, o);
  ASSERT_EQ(a.delta.size(), a.eta.size());
  bool any_different = false;
  for (size_t i = 0; i < a.delta.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.delta[i].second, b.delta[i].second));
    EXPECT_TRUE(torch::equal(a.eta[i].second, b.eta[i].second));
    any_different |= !torch::equal(a.delta[i].second, c.delta[i].second);
  }
  EXPECT_TRUE(any_different) << "another seed, other directions";
  TempDir tmp;
  write_directions(tmp / "d.safetensors", a, {{"seed", 11}});
  const auto file = read_directions(tmp / "d.safetensors");
  EXPECT_EQ(file.size(), 2 * a.delta.size());
  ASSERT_EQ(a.delta.size(), s.model->named_parameters().size());
  for (size_t i = 0; i < a.delta.size(); ++i) {
    const std::string& name = a.delta[i].first;  // the model's own tensor names, in its order
    EXPECT_EQ(name, s.model->named_parameters()[i].key());
    ASSERT_TRUE(file.count("delta." + name) && file.count("eta." + name)) << name;
    EXPECT_TRUE(torch::equal(file.at("delta." + name), a.delta[i].second)) << name;
    EXPECT_TRUE(torch::equal(file.at("eta." + name), a.eta[i].second)) << name;
  }
  EXPECT_EQ(read_weights(tmp / "d.safetensors").metadata["seed"], 11);
}

TEST(Landscape, AGridPointEqualsEvaluatingThePerturbedWeightsDirectly) {
  TempDir tmp;
  std::vector<Subject> subjects{tiny_subject()};
  const ImageSet set = images();
  auto comm = one_process();
  const nlohmann::json j = landscape_json(subjects, set, kImages, small(), *comm, tmp.path());
  const auto& r = j["subjects"][0];
  EXPECT_EQ(r["axis"], nlohmann::json({-0.5, 0.0, 0.5}));
  const auto d = read_directions(tmp / r["directions"].get<std::string>());
  Subject fresh = tiny_subject();  // the same weights (same seed), evaluated here by hand
  for (auto [ia, ib] : {std::pair{0, 0}, std::pair{2, 1}, std::pair{1, 1}}) {
    const double alpha = r["axis"][ia], beta = r["axis"][ib];
    Subject s = tiny_subject();
    {
      torch::NoGradGuard no_grad;
      for (auto& p : s.model->named_parameters())
        p.value().add_(d.at("delta." + p.key()) * alpha + d.at("eta." + p.key()) * beta);
    }
    const double want = direct_loss(*s.model, s, set), got = r["loss"][ib][ia];
    EXPECT_NEAR(got, want, 1e-5 * std::abs(want)) << alpha << ", " << beta;
  }
  // The centre is the model itself, and the model is left as it was.
  EXPECT_NEAR(r["loss"][1][1].get<double>(), direct_loss(*fresh.model, fresh, set), 1e-5);
  EXPECT_EQ(state_digest(*subjects[0].model), state_digest(*fresh.model));
}

TEST(Landscape, InterpolationGoesFromTheFirstModelToTheSecond) {
  TempDir tmp;
  std::vector<Subject> subjects{tiny_subject(true, 1), tiny_subject(true, 2)};
  const ImageSet set = images();
  LandscapeOptions o = small("interpolate", 3);
  o.range = 0;  // alpha = 0, 0.5, 1
  auto comm = one_process();
  const nlohmann::json j = landscape_json(subjects, set, kImages, o, *comm, tmp.path());
  ASSERT_EQ(j["subjects"].size(), 1u);
  const auto& loss = j["subjects"][0]["loss"];
  EXPECT_NEAR(loss[0].get<double>(), direct_loss(*subjects[0].model, subjects[0], set), 1e-5);
  EXPECT_NEAR(loss[2].get<double>(), direct_loss(*subjects[1].model, subjects[1], set), 1e-5);
  // Two different networks do not interpolate.
  std::vector<Subject> mixed{tiny_subject(true), tiny_subject(false)};
  resnet::testing::expect_input_error([&] { landscape_json(mixed, set, kImages, o, *comm, tmp.path()); },
                                      "landscape --kind interpolate", "different networks");
}

TEST(Landscape, AKilledRunResumesFromThePointsWrittenAndRefusesOtherArguments) {
  TempDir tmp;
  std::vector<Subject> subjects{tiny_subject()};
  const ImageSet set = images();
  auto comm = one_process();
  const nlohmann::json straight = landscape_json(subjects, set, kImages, small(), *comm, tmp.path());
  const std::string points = tmp / "landscape_0.jsonl";
  std::vector<std::string> lines = lines_of(points);
  ASSERT_EQ(lines.size(), 10u);  // the key, then 9 points
  // As if killed after 4 points, in the middle of writing the 5th.
  write_file_atomic(points, lines[0] + "\n" + lines[1] + "\n" + lines[2] + "\n" + lines[3] + "\n" + lines[4] + "\n" +
                                lines[5].substr(0, 20));
  const nlohmann::json resumed = landscape_json(subjects, set, kImages, small(), *comm, tmp.path());
  EXPECT_EQ(resumed["subjects"][0]["points_resumed"], 4);
  EXPECT_EQ(resumed["subjects"][0]["points_computed"], 5);
  EXPECT_EQ(resumed["subjects"][0]["loss"], straight["subjects"][0]["loss"]);
  EXPECT_EQ(lines_of(points).size(), 10u);
  // Finished: nothing left to compute.
  EXPECT_EQ(landscape_json(subjects, set, kImages, small(), *comm, tmp.path())["subjects"][0]["points_computed"], 0);
  // Other arguments do not mix with the points written: one line naming the file and the key.
  resnet::testing::expect_input_error(
      [&] { landscape_json(subjects, set, kImages, small("surface", 4), *comm, tmp.path()); }, points,
      "grid: the file has 3, this run 4");
  // Other weights neither.
  std::vector<Subject> other{tiny_subject(true, 9)};
  resnet::testing::expect_input_error([&] { landscape_json(other, set, kImages, small(), *comm, tmp.path()); }, points,
                                      "other arguments (weights_sha256: the file has");
  // A damaged line in the middle is not skipped silently.
  lines = lines_of(points);
  lines[3] = "{\"i\": 99}";
  std::string text;
  for (const auto& l : lines) text += l + "\n";
  write_file_atomic(points, text);
  resnet::testing::expect_input_error([&] { landscape_json(subjects, set, kImages, small(), *comm, tmp.path()); },
                                      points, "line 4");
}

TEST(Landscape, TwoRanksGiveTheOneRankGrid) {
  std::vector<Subject> subjects{tiny_subject()};
  const ImageSet set = images();
  const LandscapeOptions o = small();
  const Directions d = make_directions(*subjects[0].model, nullptr, o);
  TempDir one_dir, first_dir, second_dir;
  RankOf one(0, 1), first(0, 2), second(1, 2);
  const LandscapeGrid g1 = landscape_grid(subjects[0], set, d, o, one, one_dir / "p.jsonl", {{"k", 1}});
  const LandscapeGrid g0 = landscape_grid(subjects[0], set, d, o, first, first_dir / "p.jsonl", {{"k", 1}});
  const LandscapeGrid g2 = landscape_grid(subjects[0], set, d, o, second, second_dir / "p.jsonl", {{"k", 1}});
  EXPECT_EQ(g0.computed, 5);
  EXPECT_EQ(g2.computed, 4);
  // Each rank's partial grid (zeros at the other's points) adds up to the 1-rank grid, bit for bit.
  EXPECT_TRUE(torch::equal(g0.loss + g2.loss, g1.loss));
  EXPECT_TRUE(torch::equal(g0.error + g2.error, g1.error));
  // Only the writer (rank 0) writes: its points, one line each.
  EXPECT_FALSE(fs::exists(second_dir / "p.jsonl"));
  EXPECT_EQ(lines_of(first_dir / "p.jsonl").size(), 1u + 5u);
}

TEST(Landscape, PicturesOnOneColourScale) {
  TempDir tmp;
  std::vector<Subject> subjects{tiny_subject(true), tiny_subject(false)};
  auto comm = one_process();
  const nlohmann::json j = landscape_json(subjects, images(), kImages, small(), *comm, tmp.path());
  auto files = plot_landscape(j, tmp.path());
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) EXPECT_GT(fs::file_size(f), 10000u) << f;
  // Both panels in one script, with one colour range.
  const std::string gp = read_text_file(tmp / "landscape_contour.gp");
  EXPECT_NE(gp.find("splot $s1"), std::string::npos);
  EXPECT_EQ(gp.find("set cbrange"), gp.rfind("set cbrange"));
  fs::create_directories(tmp / "line");
  const nlohmann::json line = landscape_json(subjects, images(), kImages, small("line", 5), *comm, tmp / "line");
  files = plot_landscape(line, tmp.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_GT(fs::file_size(files[0]), 5000u);
}

// ---- resnet-analyze landscape | hessian | paths, as a user runs them -------------------------

namespace {

struct Cli {
  TempDir tmp;
  Cli() {
    resnet::testing::write_synthetic_cifar(tmp / "data", 8, 16);  // 40 training images
    write_file_atomic(tmp / "tiny.json", R"({"model": {"depth": 8}})");
  }
  std::string command(const std::string& analysis, const std::string& out, const std::string& flags) const {
    return std::string(RESNET_ANALYZE_BIN) + " " + analysis + " --config " + (tmp / "tiny.json") + " --data-dir " +
           (tmp / "data") + " --device cpu --set runtime.threads=1 --out " + (tmp / out) + " " + flags;
  }
  // Exit status; output in tmp/log.
  int run(const std::string& analysis, const std::string& out, const std::string& flags) const {
    const int status = std::system((command(analysis, out, flags) + " > " + (tmp / "log") + " 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string log() const { return read_text_file(tmp / "log"); }
};

}  // namespace

TEST(ResnetAnalyzeGeometryCli, WriteJsonAndPngsAndRefuseBadArguments) {
  Cli cli;
  ASSERT_EQ(cli.run("landscape", "l", "--grid 3 --images 16"), 0) << cli.log();
  for (const char* f : {"landscape.json", "landscape_contour.png", "landscape_surface.png", "directions_0.safetensors",
                        "landscape_0.jsonl"})
    EXPECT_TRUE(fs::exists(cli.tmp / (std::string("l/") + f))) << f;
  nlohmann::json j = read_json_file(cli.tmp / "l/landscape.json");
  EXPECT_EQ(j["images"]["split"], "train");
  EXPECT_EQ(j["images"]["first"], 16);
  EXPECT_EQ(j["subjects"][0]["points_computed"], 9);
  ASSERT_EQ(cli.run("landscape", "l", "--grid 3 --images 16"), 0) << cli.log();
  EXPECT_EQ(read_json_file(cli.tmp / "l/landscape.json")["subjects"][0]["points_resumed"], 9);
  // Another grid into the same folder: exit 2, one line naming the points file and the key.
  EXPECT_EQ(cli.run("landscape", "l", "--grid 4 --images 16"), 2);
  EXPECT_NE(cli.log().find("landscape_0.jsonl: holds a partial landscape made with other arguments (grid"),
            std::string::npos)
      << cli.log();
  const std::string refusal = cli.log();
  EXPECT_EQ(std::count(refusal.begin(), refusal.end(), '\n'), 1) << refusal;

  ASSERT_EQ(cli.run("hessian", "h", "--images 12 --top-k 2 --max-iterations 4 --probes 2 --lanczos-steps 3"), 0)
      << cli.log();
  j = read_json_file(cli.tmp / "h/hessian.json");
  EXPECT_EQ(j["subjects"][0]["top_eigenvalues"].size(), 2u);
  EXPECT_EQ(j["subjects"][0]["trace"]["samples"].size(), 2u);
  EXPECT_EQ(j["subjects"][0]["density"]["runs"][0]["nodes"].size(), 3u);
  EXPECT_TRUE(fs::exists(cli.tmp / "h/hessian.png"));

  ASSERT_EQ(cli.run("paths", "p", "--images 8 --samples 2 --mass 0.5"), 0) << cli.log();
  j = read_json_file(cli.tmp / "p/paths.json");
  EXPECT_EQ(j["subjects"][0]["lengths"].size(), 4u);
  EXPECT_EQ(j["mass"], 0.5);  // --mass reaches the analysis
  EXPECT_TRUE(fs::exists(cli.tmp / "p/paths.png"));
  // A flag of another analysis is an error, not silently ignored.
  EXPECT_EQ(cli.run("paths", "x", "--grid 3"), 2);

  EXPECT_EQ(cli.run("landscape", "x", "--kind sideways"), 2);
  EXPECT_EQ(cli.run("landscape", "x", "--grid 1"), 2);
  EXPECT_EQ(cli.run("landscape", "x", "--kind interpolate --grid 3 --images 8"), 2);  // needs two models
  EXPECT_NE(cli.log().find("give exactly two models"), std::string::npos) << cli.log();
  EXPECT_EQ(cli.run("hessian", "x", "--probes -1"), 2);
}

TEST(ResnetAnalyzeGeometryCli, AKilledLandscapeResumesWhereItStopped) {
  Cli cli;
  const std::string flags = "--grid 8 --images 24";
  ASSERT_EQ(cli.run("landscape", "straight", flags), 0) << cli.log();
  // The same run, killed (SIGKILL: no chance to clean up) once a few points are on disk.
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cli.command("landscape", "killed", flags) + " >/dev/null 2>&1").c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  const std::string points = cli.tmp / "killed/landscape_0.jsonl";
  for (int i = 0; i < 6000 && lines_of(points).size() < 6; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  const size_t written = lines_of(points).size() - 1;
  ASSERT_GE(written, 5u);
  ASSERT_LT(written, 64u) << "finished before it was killed: use a larger grid";
  ASSERT_EQ(cli.run("landscape", "killed", flags), 0) << cli.log();
  const nlohmann::json resumed = read_json_file(cli.tmp / "killed/landscape.json");
  EXPECT_GE(resumed["subjects"][0]["points_resumed"].get<size_t>(), written - 1);  // a torn last line is redone
  EXPECT_EQ(resumed["subjects"][0]["points_resumed"].get<int64_t>() +
                resumed["subjects"][0]["points_computed"].get<int64_t>(),
            64);
  EXPECT_EQ(resumed["subjects"][0]["loss"], read_json_file(cli.tmp / "straight/landscape.json")["subjects"][0]["loss"]);
}

// Under a launcher's variables (torchrun's RANK, WORLD_SIZE, MASTER_ADDR, ...) the grid points,
// Hutchinson's probes and the path samples are split over 2 ranks on c10d (Gloo), and rank 0
// writes the same results a single process does; rank 1 writes nothing. Analyses that do not
// split refuse to run under a launcher.
TEST(ResnetAnalyzeGeometryCli, TwoRanksGiveTheOneProcessResults) {
  Cli cli;
  // Both ranks at once; returns "rc0 rc1", their output in tmp/<out>.log0 and .log1.
  auto two = [&](const std::string& analysis, const std::string& out, const std::string& flags) {
    const std::string env = "WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                            std::to_string(resnet::testing::free_port());
    const std::string cmd = cli.command(analysis, out, flags), log = cli.tmp / out;
    const std::string script = "env RANK=0 LOCAL_RANK=0 " + env + " " + cmd + " >" + log +
                               ".log0 2>&1 & a=$!; env RANK=1 "
                               "LOCAL_RANK=1 " +
                               env + " " + cmd + " >" + log + ".log1 2>&1; b=$?; wait $a; echo \"$? $b\" >" + log +
                               ".rc";
    EXPECT_EQ(std::system(("sh -c '" + script + "'").c_str()), 0);
    return lines_of(log + ".rc").at(0);
  };
  auto logs = [&](const std::string& out) {
    return read_text_file(cli.tmp / (out + ".log0")) + read_text_file(cli.tmp / (out + ".log1"));
  };
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"landscape", "--grid 4 --images 16"},
      {"hessian", "--images 12 --top-k 2 --max-iterations 6 --probes 3 --slq-runs 2 --lanczos-steps 3"},
      {"paths", "--images 8 --samples 3"}};
  for (const auto& [analysis, flags] : runs) {
    ASSERT_EQ(cli.run(analysis, "one_" + analysis, flags), 0) << cli.log();
    ASSERT_EQ(two(analysis, "two_" + analysis, flags), "0 0") << logs("two_" + analysis);
    EXPECT_EQ(read_text_file(cli.tmp / ("two_" + analysis + ".log1")), "") << "rank 1 wrote or said something";
    const nlohmann::json one = read_json_file(cli.tmp / ("one_" + analysis + "/" + analysis + ".json"));
    const nlohmann::json both = read_json_file(cli.tmp / ("two_" + analysis + "/" + analysis + ".json"));
    const nlohmann::json a = one["subjects"][0], b = both["subjects"][0];
    if (analysis == "landscape") {
      EXPECT_EQ(b["loss"], a["loss"]);      // each point computed whole on one rank: the same bits
      EXPECT_EQ(b["points_computed"], 16);  // by the two ranks together
      EXPECT_EQ(both["ranks"], 2);
      EXPECT_EQ(one["ranks"], 1);
    } else if (analysis == "hessian") {
      // The Hessian-vector products are sums over the ranks' batches: equal up to rounding.
      for (size_t i = 0; i < 2; ++i)
        EXPECT_NEAR(b["top_eigenvalues"][i].get<double>(), a["top_eigenvalues"][i].get<double>(),
                    1e-4 * std::abs(a["top_eigenvalues"][i].get<double>()));
      EXPECT_NEAR(b["trace"]["estimate"].get<double>(), a["trace"]["estimate"].get<double>(),
                  1e-4 * std::abs(a["trace"]["estimate"].get<double>()));
      EXPECT_EQ(b["trace"]["samples"].size(), 3u);
    } else {
      ASSERT_EQ(a["lengths"].size(), b["lengths"].size());
      for (size_t k = 0; k < a["lengths"].size(); ++k)
        EXPECT_NEAR(b["lengths"][k]["total"].get<double>(), a["lengths"][k]["total"].get<double>(),
                    1e-6 * std::abs(a["lengths"][k]["total"].get<double>()) + 1e-12)
            << "k " << k;
    }
  }
  // responses does not split: refused on both ranks, one line each, nothing written.
  EXPECT_EQ(two("responses", "two_responses", ""), "2 2");
  EXPECT_NE(read_text_file(cli.tmp / "two_responses.log0").find("responses: runs as one process"), std::string::npos)
      << logs("two_responses");
  EXPECT_FALSE(fs::exists(cli.tmp / "two_responses"));
}
