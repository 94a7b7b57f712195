// The analyses on tiny models and synthetic data: well-formed results, lesions that behave as
// Veit et al. describe, gradient norms that agree with autograd, and the sweep script's resume logic.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

#include "analysis/analysis.h"
#include "analysis/registry.h"
#include "data/cifar10.h"
#include "interop/naming.h"
#include "interop/weights.h"
#include "test_support.h"
#include "util/json_io.h"

using namespace resnet;
using resnet::testing::TempDir;
namespace fs = std::filesystem;

namespace {

Subject tiny_subject(bool residual, bool zero_init = false, bool preact = false, int depth = 14) {
  ExperimentConfig c;
  c.model.depth = depth;  // 2 blocks per stage, 6 in all
  c.model.residual = residual;
  c.model.zero_init_residual = zero_init;
  c.model.preact = preact;
  validate(c);
  ImageSet images = resnet::testing::synthetic_set(64, 1);
  return subject_from_config(c, fit_normalizer(images.images, "channel"), at::kCPU);
}

ImageSet test_images() { return resnet::testing::synthetic_set(40, 2); }

// gnuplot is a test dependency (scripts/install_deps.sh installs gnuplot-nox), not an optional
// extra: the tests that draw also check exit codes and the sweep's skip/resume, which a skip
// would silently drop. Without it they fail.
bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

}  // namespace

TEST(Analyses, ProduceOneEntryPerLayerOrBlock) {
  std::vector<Subject> subjects;
  subjects.push_back(tiny_subject(true));
  subjects.push_back(tiny_subject(false));
  const ImageSet images = test_images();
  const size_t blocks = 6, convs = 1 + 2 * blocks;

  nlohmann::json r = responses_json(subjects, images, 16);
  ASSERT_EQ(r["subjects"].size(), 2u);
  for (const auto& s : r["subjects"]) {
    ASSERT_EQ(s["layers"].size(), convs);
    EXPECT_EQ(s["layers"][0]["name"], "stem");
    for (const auto& l : s["layers"]) EXPECT_GT(l["std"].get<double>(), 0.0);
  }
  nlohmann::json g = gradients_json(subjects, images, 16);
  for (const auto& s : g["subjects"]) {
    EXPECT_EQ(s["blocks"].size(), blocks);
    EXPECT_EQ(s["layers"].size(), convs);
    EXPECT_GT(s["loss"].get<double>(), 0.0);
  }
  nlohmann::json res = residuals_json(subjects, images, 16);
  for (const auto& s : res["subjects"]) {
    ASSERT_EQ(s["blocks"].size(), blocks);
    for (const auto& b : s["blocks"]) EXPECT_GT(b["ratio"].get<double>(), 0.0);
  }
  LesionOptions lo;
  lo.draws = 3;
  lo.max_k = 4;
  nlohmann::json les = lesion_json(subjects, images, lo);
  for (const auto& s : les["subjects"]) {
    EXPECT_EQ(s["single"].size(), blocks);
    ASSERT_EQ(s["random"].size(), 4u);
    for (const auto& k : s["random"]) EXPECT_EQ(k["errors"].size(), 3u);
    // Blocks 2 and 4 open stages 2 and 3: they change the shape.
    EXPECT_TRUE(s["single"][2]["downsampling"].get<bool>());
    EXPECT_FALSE(s["single"][1]["downsampling"].get<bool>());
  }
  auto maps = feature_maps(subjects[0], images, 3);
  ASSERT_EQ(maps.size(), 4u);  // stem + 3 stages
  EXPECT_EQ(maps[0].sizes(), (std::vector<int64_t>{16, 32, 32}));
  EXPECT_EQ(maps[3].sizes(), (std::vector<int64_t>{64, 8, 8}));
}

TEST(Lesion, ZeroBranchResidualBlockDeletedLeavesTheOutputUnchanged) {
  torch::NoGradGuard no_grad;
  for (bool preact : {false, true}) {
    Subject s = tiny_subject(true, /*zero_init=*/true, preact);
    s.model->eval();
    at::Tensor x = s.normalizer(test_images().images);
    at::Tensor intact = s.model->forward(x);
    s.model->set_lesioned({1, 3, 5});  // identity-shaped blocks
    at::Tensor lesioned = s.model->forward(x);
    EXPECT_EQ(lesioned.sizes(), intact.sizes());
    EXPECT_TRUE(at::allclose(lesioned, intact, 1e-5, 1e-6)) << "preact " << preact;
  }
}

TEST(Lesion, DeletingABlockKeepsShapesAndChangesAPlainNet) {
  torch::NoGradGuard no_grad;
  Subject plain = tiny_subject(false);
  plain.model->eval();
  at::Tensor x = plain.normalizer(test_images().images);
  at::Tensor intact = plain.model->forward(x);
  for (int b = 0; b < 6; ++b) {
    plain.model->set_lesioned({b});  // including the downsampling blocks 2 and 4
    at::Tensor y = plain.model->forward(x);
    EXPECT_EQ(y.sizes(), intact.sizes());
    EXPECT_FALSE(at::allclose(y, intact, 1e-3, 1e-3)) << "block " << b;
  }
}

// Veit et al.'s lesion: a deleted block becomes its shortcut. An identity-shaped block then
// outputs its input; a downsampling option-A block outputs its input subsampled by 2 with the
// new channels zero. (Post-activation blocks keep their final ReLU, which changes nothing: the
// input is already a ReLU's output.) The branches are live here, so an intact block's output is
// not its shortcut; lifting the lesion gives the intact network back.
TEST(Lesion, ADeletedBlockOutputsItsShortcut) {
  torch::NoGradGuard no_grad;
  struct Blocks : ForwardRecorder {
    std::vector<at::Tensor> in, branch, out;
    void on_block(int, const at::Tensor& x, const at::Tensor& f, const at::Tensor& y) override {
      in.push_back(x.clone());
      branch.push_back(f);
      out.push_back(y.clone());
    }
  };
  // Option A written out: x[:, :, ::2, ::2], then zero channels up to `channels`.
  auto subsample_pad = [](const at::Tensor& x, int64_t channels) {
    at::Tensor s = x.slice(2, 0, x.size(2), 2).slice(3, 0, x.size(3), 2);
    return at::cat({s, at::zeros({s.size(0), channels - s.size(1), s.size(2), s.size(3)})}, 1);
  };
  const at::Tensor images = test_images().images;
  for (bool residual : {true, false}) {
    for (bool preact : {false, true}) {
      Subject s = tiny_subject(residual, /*zero_init=*/false, preact);
      s.model->eval();
      const at::Tensor x = s.normalizer(images);
      const at::Tensor logits = s.model->forward(x);
      Blocks intact;
      s.model->forward(x, &intact);
      for (int b = 0; b < 6; ++b) {
        const std::string where = "residual " + std::to_string(residual) + " preact " + std::to_string(preact) +
                                  " block " + std::to_string(b);
        s.model->set_lesioned({b});
        Blocks lesioned;
        s.model->forward(x, &lesioned);
        ASSERT_EQ(lesioned.out.size(), 6u);
        const at::Tensor& in = lesioned.in[b];
        const bool downsampling = b == 2 || b == 4;  // the first blocks of stages 2 and 3
        const at::Tensor expected = downsampling ? subsample_pad(in, 2 * in.size(1)) : in;
        EXPECT_TRUE(at::equal(lesioned.out[b], expected)) << where;
        EXPECT_FALSE(lesioned.branch[b].defined()) << where;
        // Blocks before the lesion are untouched; the intact block was not its shortcut.
        if (b > 0) EXPECT_TRUE(at::equal(lesioned.out[b - 1], intact.out[b - 1])) << where;
        const at::Tensor intact_shortcut = downsampling ? subsample_pad(intact.in[b], 2 * in.size(1)) : intact.in[b];
        EXPECT_FALSE(at::allclose(intact.out[b], intact_shortcut, 1e-3, 1e-3)) << where;
      }
      s.model->set_lesioned({});
      EXPECT_TRUE(at::equal(s.model->forward(x), logits));
    }
  }
}

// A pre-activation ResNet with zeroed branches is the identity through every block, so the
// gradient reaching each block input is the same within a stage. No branch conv gets gradient:
// conv1's output meets the zero gamma of bn2, and conv2 sees only relu(0) = 0. The stem does.
TEST(GradientNorms, IdentityNetworkHasEqualGradientsWithinEachStage) {
  Subject s = tiny_subject(true, /*zero_init=*/true, /*preact=*/true);
  ImageSet images = test_images();
  GradientNorms g = gradient_norms(*s.model, s.normalizer(images.images), images.labels);
  ASSERT_EQ(g.block_input.size(), 6u);
  EXPECT_NEAR(g.block_input[0], g.block_input[1], 1e-4 * g.block_input[0]);
  EXPECT_NEAR(g.block_input[2], g.block_input[3], 1e-4 * g.block_input[2]);
  EXPECT_NEAR(g.block_input[4], g.block_input[5], 1e-4 * g.block_input[4]);
  ASSERT_EQ(g.weights.size(), 13u);
  EXPECT_EQ(g.weights[0].name, "stem_conv.weight");
  EXPECT_GT(g.weights[0].value, 0.0);
  for (size_t i = 1; i < g.weights.size(); ++i) EXPECT_EQ(g.weights[i].value, 0.0) << g.weights[i].name;
}

TEST(GradientNorms, AgreeWithBackwardAndLeaveTheModelUntouched) {
  Subject s = tiny_subject(true);
  ImageSet images = test_images();
  at::Tensor x = s.normalizer(images.images);
  std::vector<at::Tensor> before;
  for (const auto& t : s.model->buffers()) before.push_back(t.clone());
  GradientNorms g = gradient_norms(*s.model, x, images.labels);
  // Buffers (BN running stats) are restored; parameters have no .grad.
  auto after = s.model->buffers();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(at::equal(before[i], after[i]));
  for (const auto& p : s.model->parameters()) EXPECT_FALSE(p.grad().defined());

  // Reference: ordinary backward() with retain_grad on the recorded inputs.
  struct Rec : ForwardRecorder {
    std::vector<at::Tensor> inputs;
    void on_block(int, const at::Tensor& in, const at::Tensor&, const at::Tensor&) override {
      in.retain_grad();
      inputs.push_back(in);
    }
  } rec;
  s.model->train();
  at::cross_entropy_loss(s.model->forward(x, &rec), images.labels).backward();
  for (size_t i = 0; i < rec.inputs.size(); ++i)
    EXPECT_NEAR(g.block_input[i], rec.inputs[i].grad().norm().item<double>(), 1e-5 * g.block_input[i]) << i;
  size_t w = 0;
  for (const auto& item : s.model->named_parameters()) {
    if (item.value().dim() != 4) continue;
    EXPECT_EQ(g.weights[w].name, item.key());
    EXPECT_NEAR(g.weights[w].value, item.value().grad().norm().item<double>(), 1e-5 * g.weights[w].value + 1e-12);
    ++w;
  }
  EXPECT_EQ(w, g.weights.size());
}

TEST(Plots, EveryAnalysisRendersItsPngs) {
  ASSERT_TRUE(have_gnuplot()) << "gnuplot is a test dependency: run scripts/install_deps.sh";
  TempDir tmp;
  std::vector<Subject> subjects;
  subjects.push_back(tiny_subject(true));
  const ImageSet images = test_images();
  LesionOptions lo;
  lo.draws = 2;
  lo.max_k = 2;
  const std::vector<std::pair<std::string, nlohmann::json>> results = {
      {"responses", responses_json(subjects, images, 20)},
      {"gradients", gradients_json(subjects, images, 20)},
      {"residuals", residuals_json(subjects, images, 20)},
      {"lesion", lesion_json(subjects, images, lo)}};
  for (const auto& [name, json] : results) {
    auto files = make_analysis(name)->plot(json, tmp.path());
    ASSERT_FALSE(files.empty());
    for (const auto& f : files) EXPECT_GT(fs::file_size(f), 5000u) << f;  // a real picture
  }
}

TEST(ResnetAnalyzeCli, WritesJsonAndPngForEveryAnalysis) {
  ASSERT_TRUE(have_gnuplot()) << "gnuplot is a test dependency: run scripts/install_deps.sh";
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 40, 60);
  write_file_atomic(tmp / "tiny.json", R"({"model": {"depth": 8}})");
  // Each analysis with its own flags (analysis/registry.h); the common ones before or after its name.
  const std::vector<std::pair<std::string, std::string>> runs = {{"responses", "--images 30 --batch 20"},
                                                                 {"gradients", "--batch 20"},
                                                                 {"residuals", "--images 30 --batch 20"},
                                                                 {"activations", "--show 0,1"},
                                                                 {"lesion", "--limit 30 --draws 2"}};
  for (const auto& [a, flags] : runs) {
    const std::string cmd = std::string(RESNET_ANALYZE_BIN) + " --device cpu " + a + " --config " +
                            (tmp / "tiny.json") + " --data-dir " + (tmp / "data") + " --out " + (tmp / "out") + " " +
                            flags + " > " + (tmp / "log") + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << a << ": " << read_text_file(tmp / "log");
    nlohmann::json j = read_json_file(tmp / ("out/" + a + ".json"));
    EXPECT_EQ(j["analysis"], a);
    EXPECT_EQ(j["subjects"].size(), 1u);
    bool png = false;
    for (const auto& e : fs::directory_iterator(tmp / "out"))
      png |= e.path().filename().string().rfind(a, 0) == 0 && e.path().extension() == ".png";
    EXPECT_TRUE(png) << a;
  }
  // The help lists every registered analysis, and each analysis's help its own flags.
  const std::string help = tmp / "help.txt";
  ASSERT_EQ(std::system((std::string(RESNET_ANALYZE_BIN) + " --help > " + help).c_str()), 0);
  for (const auto& a : make_analyses()) EXPECT_NE(read_text_file(help).find(a->name()), std::string::npos) << a->name();
  ASSERT_EQ(std::system((std::string(RESNET_ANALYZE_BIN) + " lesion --help > " + help).c_str()), 0);
  EXPECT_NE(read_text_file(help).find("--max-k"), std::string::npos) << read_text_file(help);
  // No subject is a usage error (exit 2).
  const std::string bad = std::string(RESNET_ANALYZE_BIN) + " lesion --out " + (tmp / "x") + " 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(bad.c_str())), 2);
  // An output folder that cannot be made (under a file), or a negative count: exit 2 too.
  const std::string base = std::string(RESNET_ANALYZE_BIN) + " lesion --config " + (tmp / "tiny.json") +
                           " --data-dir " + (tmp / "data") + " --device cpu --limit 30 --draws 1";
  const std::string under_file = base + " --out " + (tmp / "tiny.json/out") + " 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(under_file.c_str())), 2);
  const std::string negative = base + " --out " + (tmp / "neg") + " --max-k -1 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(negative.c_str())), 2);
  EXPECT_FALSE(fs::exists(tmp / "neg"));
}

// resnet-analyze --weights: a weights file (ours with its metadata, or another code's names with
// the normaliser from data.mean/data.std or fitted) is analysed exactly as the same network in
// process.
TEST(ResnetAnalyzeCli, WeightsFilesAreAnalysedLikeTheSameNetworkInProcess) {
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 40, 60);
  write_file_atomic(tmp / "tiny.json", R"({"model": {"depth": 8}})");
  ExperimentConfig c = load_config(tmp / "tiny.json");
  Cifar10 data = load_cifar10(tmp / "data");
  Subject s;
  s.config = c;
  s.model = make_model(c.model);
  s.normalizer = fit_normalizer(data.train.images, "channel");
  {
    at::manual_seed(3);
    c10::NoGradGuard no_grad;
    for (auto& [name, t] : model_state(*s.model))
      if (name.find("running_var") != std::string::npos) t.uniform_(0.5, 1.5);
      else if (t.is_floating_point() && t.dim() == 1) t.normal_(0, 0.1);
  }
  std::vector<Subject> subjects = {s};
  const ImageSet first30{data.test.images.narrow(0, 0, 30), data.test.labels.narrow(0, 0, 30)};
  const nlohmann::json expected = responses_json(subjects, first30, 20)["subjects"][0]["layers"];
  export_weights(*s.model, tmp / "ours.pt", WeightsFormat::kPt, Names::kNative,
                 weights_metadata(c.model, s.normalizer, "channel", 0, nullptr, "", Names::kNative));
  const auto kuangliu = scheme_names(*s.model, naming_scheme("kuangliu"));
  NamedTensors theirs;
  for (const auto& [name, t] : model_state(*s.model)) theirs.emplace_back("module." + kuangliu.at(name), t);
  write_weights(tmp / "theirs.pt", WeightsFormat::kPt, theirs, {});
  // data.mean/data.std win over fitting (ImageNet's constants, as akamaster's code normalises).
  DataConfig imagenet;
  imagenet.mean = {0.485, 0.456, 0.406};
  imagenet.std = {0.229, 0.224, 0.225};
  subjects[0].normalizer = explicit_normalizer(imagenet);
  const nlohmann::json expected_explicit = responses_json(subjects, first30, 20)["subjects"][0]["layers"];
  const std::string explicit_normaliser = " --set 'data.mean=[0.485,0.456,0.406]' --set 'data.std=[0.229,0.224,0.225]'";
  for (const std::string file : {"ours.pt", "theirs.pt", "theirs.pt+set", "ours.pt+set"}) {
    const bool set = file.find("+set") != std::string::npos;
    const std::string cmd = std::string(RESNET_ANALYZE_BIN) + " responses --weights " +
                            (tmp / file.substr(0, file.find('+'))) + " --config " + (tmp / "tiny.json") +
                            (set ? explicit_normaliser : "") + " --data-dir " + (tmp / "data") + " --out " +
                            (tmp / "out") + " --images 30 --batch 20 --device cpu > " + (tmp / "log") + " 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << file << ": " << read_text_file(tmp / "log");
    const nlohmann::json got = read_json_file(tmp / "out/responses.json")["subjects"][0]["layers"];
    const nlohmann::json& want = set ? expected_explicit : expected;
    ASSERT_EQ(got.size(), want.size()) << file;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i]["std"].get<double>(), want[i]["std"].get<double>(), 1e-6 * want[i]["std"].get<double>())
          << file << " " << got[i]["name"];
    // akamaster's keys (kuangliu's names, option A): the note says what they cannot show.
    const bool note =
        read_text_file(tmp / "log").find("note: " + (tmp / "theirs.pt") + ": these keys look like akamaster") !=
        std::string::npos;
    EXPECT_EQ(note, file.rfind("theirs", 0) == 0) << read_text_file(tmp / "log");
  }
  // Two files and two configs pair up; two files and three configs do not.
  const std::string three = std::string(RESNET_ANALYZE_BIN) + " lesion --weights " + (tmp / "ours.pt") + " --weights " +
                            (tmp / "theirs.pt") + " --config " + (tmp / "tiny.json") + " --config " +
                            (tmp / "tiny.json") + " --config " + (tmp / "tiny.json") + " --data-dir " + (tmp / "data") +
                            " --out " + (tmp / "x") + " 2>/dev/null";
  EXPECT_EQ(WEXITSTATUS(std::system(three.c_str())), 2);
  EXPECT_FALSE(fs::exists(tmp / "x"));
}

// scripts/depth_sweep.sh: finished runs are skipped, interrupted runs are resumed.
TEST(DepthSweep, SkipsFinishedRunsAndResumesInterruptedOnes) {
  ASSERT_TRUE(have_gnuplot()) << "gnuplot is a test dependency: run scripts/install_deps.sh";
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp / "data", 40, 40);
  write_file_atomic(tmp / "recipe.json", R"({"train": {"batch_size": 20, "iterations": 60, "eval_every": 20,
      "checkpoint_every": 3, "log_every": 5, "lr_schedule": {"milestones": [40]}}, "runtime": {"threads": 1}})");
  const std::string sweep = std::string(RESNET_SOURCE_DIR) + "/scripts/depth_sweep.sh";
  const std::string args = " --depths '8 14' --recipe " + (tmp / "recipe.json") + " --data-dir " + (tmp / "data") +
                           " --bin " + RESNET_BIN_DIR + " --out " + (tmp / "sweep");
  auto run = [&](const std::string& log) {
    return std::system(("bash " + sweep + args + " > " + (tmp / log) + " 2>&1").c_str());
  };
  auto text = [&](const std::string& name) {
    std::ifstream in(tmp / name);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  ASSERT_EQ(run("first.log"), 0) << text("first.log");
  for (const char* f : {"training_error.png", "test_error.png", "summary.csv", "summary.md"})
    EXPECT_TRUE(fs::exists(tmp / (std::string("sweep/") + f))) << f;
  std::ifstream csv(tmp / "sweep/summary.csv");
  std::string line;
  int rows = -1;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 4);

  ASSERT_EQ(run("second.log"), 0);
  const std::string second = text("second.log");
  for (const char* r : {"plain-8", "plain-14", "resnet-8", "resnet-14"})
    EXPECT_NE(second.find(std::string("skip   ") + (tmp / "sweep/") + r), std::string::npos) << second;

  // Interrupt the sweep while it retrains resnet-14 (the whole process group, as Ctrl-C does).
  fs::remove_all(tmp / "sweep/resnet-14");
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/bash", "bash", "-c", ("exec bash " + sweep + args + " > " + (tmp / "third.log") + " 2>&1").c_str(),
          static_cast<char*>(nullptr));
    _exit(99);
  }
  setpgid(pid, pid);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline && !fs::exists(tmp / "sweep/resnet-14/checkpoints/last.ckpt"))
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  kill(-pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the sweep finished before the interrupt";
  EXPECT_TRUE(fs::exists(tmp / "sweep/resnet-14/checkpoints/last.ckpt"));
  EXPECT_FALSE(fs::exists(tmp / "sweep/resnet-14/summary.json"));

  ASSERT_EQ(run("fourth.log"), 0) << text("fourth.log");
  const std::string fourth = text("fourth.log");
  EXPECT_NE(fourth.find("resume " + (tmp / "sweep/resnet-14")), std::string::npos) << fourth;
  EXPECT_NE(fourth.find("skip   " + (tmp / "sweep/resnet-8")), std::string::npos) << fourth;
  EXPECT_TRUE(fs::exists(tmp / "sweep/resnet-14/summary.json"));
}

// ARCHITECTURE.md shows a whole analysis: that copy is src/analysis/residuals.cpp itself.
TEST(Registry, ArchitectureMdShowsARealAnalysis) {
  const std::string doc = read_text_file(std::string(RESNET_SOURCE_DIR) + "/ARCHITECTURE.md");
  const std::string marker = "<!-- src/analysis/residuals.cpp -->\n```cpp\n";
  const size_t start = doc.find(marker);
  ASSERT_NE(start, std::string::npos);
  const size_t end = doc.find("```\n", start + marker.size());
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(doc.substr(start + marker.size(), end - start - marker.size()),
            read_text_file(std::string(RESNET_SOURCE_DIR) + "/src/analysis/residuals.cpp"))
      << "ARCHITECTURE.md's copy of src/analysis/residuals.cpp is stale";
  // And it is registered: resnet-analyze has it.
  ASSERT_NE(make_analysis("residuals"), nullptr);
  EXPECT_EQ(make_analysis("residuals")->name(), "residuals");
}
