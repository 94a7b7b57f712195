// Checkpoints hold tensors and JSON, never code: version 2 is a safetensors file read by our own
// reader; version 1 (TorchScript archives of earlier builds) is read by the restricted unpickler,
// and an archive that is not exactly what the old writer made is refused.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "compat/torch_compat.h"
#include "damaged_checkpoint.h"
#include "interop/weights_file.h"
#include "models/resnet.h"
#include "run_support.h"
#include "serialize/safetensors.h"
#include "serialize/zip_reader.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/checkpoint_v1.h"
#include "train/sgd.h"
#include "train/trainer.h"
#include "util/errors.h"

using namespace resnet;
using resnet::testing::expect_input_error;
using resnet::testing::read_all;
using resnet::testing::TempDir;
using resnet::testing::write_damaged_checkpoint;
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

const std::string kFixtures = RESNET_SOURCE_DIR "/tests/fixtures";

struct Saved {
  ResNet model{nullptr};
  std::unique_ptr<Sgd> sgd;
  CheckpointContents contents;
};

// A ResNet-8 with random weights, BN statistics and momentum, saved at step 7.
Saved save_one(const std::string& path) {
  Saved s;
  const ExperimentConfig c = resnet::testing::resnet8_config();
  at::manual_seed(1);
  s.model = make_model(c.model);
  for (auto& b : s.model->buffers())
    if (b.is_floating_point()) b.uniform_(0.5, 2.0);
  s.sgd = std::make_unique<Sgd>(s.model->parameters(), SgdOptions{});
  for (auto& m : s.sgd->momentum_buffers()) m.normal_();
  s.contents.config = to_json(c);
  s.contents.state.step = 7;
  s.contents.state.train_loss_sum = 0.1 + 0.2;  // not exactly representable: must come back bit for bit
  s.contents.state.best_val_error = 1.0 / 3.0;
  s.contents.normalizer = {at::rand({1, 3, 1, 1}), at::rand({1, 3, 1, 1}) + 0.5};
  s.contents.data_fingerprint = "0123456789abcdef";
  s.contents.changes = nlohmann::json::array({{{"step", 7}, {"key", "train.lr"}, {"from", 0.1}, {"to", 0.2}}});
  save_checkpoint(path, s.contents, *s.model, s.sgd.get());
  return s;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && at::equal(a.cpu(), b.cpu());
}

// Rewrites a version-2 file: `edit` gets its header (JSON) and data section.
void edit_v2(const std::string& from, const std::string& to, const std::function<void(ojson&, std::string&)>& edit) {
  const std::string bytes = read_all(from);
  uint64_t n = 0;
  for (int k = 0; k < 8; ++k) n |= uint64_t(static_cast<unsigned char>(bytes[k])) << (8 * k);
  ojson header = ojson::parse(bytes.substr(8, n));
  std::string data = bytes.substr(8 + n);
  edit(header, data);
  const std::string json = header.dump();
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((uint64_t{json.size()} >> (8 * k)) & 0xff);
  std::ofstream(to, std::ios::binary) << out << json << data;
}

// The checkpoint's JSON document, edited.
void edit_doc(ojson& header, const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json doc = nlohmann::json::parse(header["__metadata__"]["resnet_train_checkpoint"].get<std::string>());
  edit(doc);
  header["__metadata__"]["resnet_train_checkpoint"] = doc.dump();
}

}  // namespace

TEST(Checkpoint, RoundTripIsBitExact) {
  TempDir tmp;
  const std::string path = tmp / "last.ckpt";
  Saved s = save_one(path);
  CheckpointReader r(path);
  EXPECT_EQ(r.version(), 2);
  EXPECT_EQ(r.contents().config, s.contents.config);
  EXPECT_EQ(r.contents().state.step, 7);
  EXPECT_EQ(r.contents().state.train_loss_sum, 0.1 + 0.2);
  EXPECT_EQ(r.contents().state.best_val_error, 1.0 / 3.0);
  EXPECT_EQ(r.contents().data_fingerprint, "0123456789abcdef");
  EXPECT_EQ(r.contents().changes, s.contents.changes);
  EXPECT_TRUE(same_bits(r.contents().normalizer.mean, s.contents.normalizer.mean));
  EXPECT_TRUE(same_bits(r.contents().normalizer.std, s.contents.normalizer.std));
  at::manual_seed(2);
  ResNet other = make_model(r.config().model);
  Sgd sgd(other->parameters(), SgdOptions{});
  r.load_model(*other);
  r.load_optimizer(sgd, *other);
  const auto a = s.model->named_parameters(), b = other->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i].value(), b[i].value())) << a[i].key();
  const auto ab = s.model->named_buffers(), bb = other->named_buffers();
  for (size_t i = 0; i < ab.size(); ++i) EXPECT_TRUE(same_bits(ab[i].value(), bb[i].value())) << ab[i].key();
  for (size_t i = 0; i < sgd.momentum_buffers().size(); ++i)
    EXPECT_TRUE(same_bits(sgd.momentum_buffers()[i], s.sgd->momentum_buffers()[i]));
}

// What Python (or any safetensors reader) sees: named tensors and one JSON document.
TEST(Checkpoint, IsASafetensorsFileOfNamedTensorsAndOneJsonDocument) {
  TempDir tmp;
  const std::string path = tmp / "last.ckpt";
  Saved s = save_one(path);
  const WeightsFile f = parse_weights(read_all(path), path);  // the generic safetensors reader
  std::map<std::string, at::Tensor> by_name(f.tensors.begin(), f.tensors.end());
  for (const auto& p : s.model->named_parameters()) {
    ASSERT_TRUE(by_name.count("model." + p.key())) << p.key();
    EXPECT_TRUE(same_bits(by_name["model." + p.key()], p.value()));
    ASSERT_TRUE(by_name.count("momentum." + p.key())) << p.key();
  }
  for (const auto& b : s.model->named_buffers()) EXPECT_TRUE(by_name.count("model." + b.key())) << b.key();
  EXPECT_TRUE(same_bits(by_name["normalizer.mean"], s.contents.normalizer.mean));
  EXPECT_EQ(f.tensors.size(), 2 * s.model->named_parameters().size() + s.model->named_buffers().size() + 2);
  const safetensors::FileReader file(path);
  const auto doc = nlohmann::json::parse(file.header().metadata.at("resnet_train_checkpoint"));
  EXPECT_EQ(doc["format"], "resnet-train-checkpoint");
  EXPECT_EQ(doc["version"], 2);
  EXPECT_EQ(doc["state"]["step"], 7);
  EXPECT_EQ(doc["config"], s.contents.config);
}

// Every way a version-2 file can lie is one line naming the file, before any model is touched.
TEST(Checkpoint, DamagedVersion2FilesNameTheFile) {
  TempDir tmp;
  const std::string good = tmp / "good.ckpt", bad = tmp / "bad.ckpt";
  Saved s = save_one(good);
  struct Case {
    const char* needle;
    std::function<void(ojson&, std::string&)> edit;
  };
  const std::vector<Case> cases = {
      {"without resnet-train checkpoint metadata (a weights file?",
       [](ojson& h, std::string&) { h["__metadata__"].erase("resnet_train_checkpoint"); }},
      {"corrupt checkpoint metadata",
       [](ojson& h, std::string&) { h["__metadata__"]["resnet_train_checkpoint"] = "{"; }},
      {"checkpoint format version 3",
       [](ojson& h, std::string&) { edit_doc(h, [](nlohmann::json& d) { d["version"] = 3; }); }},
      {"not a resnet-train checkpoint",
       [](ojson& h, std::string&) { edit_doc(h, [](nlohmann::json& d) { d["format"] = "x"; }); }},
      {"negative step",
       [](ojson& h, std::string&) { edit_doc(h, [](nlohmann::json& d) { d["state"]["step"] = -1; }); }},
      {"corrupt checkpoint metadata (changes)",
       [](ojson& h, std::string&) { edit_doc(h, [](nlohmann::json& d) {
                                      d["changes"] = {1, 2};
                                    }); }},
      {"config is not an object",
       [](ojson& h, std::string&) { edit_doc(h, [](nlohmann::json& d) { d["config"] = {20}; }); }},
      {"'evil' is not part of a checkpoint",
       [](ojson& h, std::string&) {
         h["evil"] = h["normalizer.mean"];
         h.erase("normalizer.mean");
       }},
      {"no normalisation statistics",
       [](ojson& h, std::string& data) {
         const uint64_t begin = h["normalizer.std"]["data_offsets"][0];
         h.erase("normalizer.std");
         data.resize(begin);  // it is the last tensor
       }},
      {"corrupt normalisation statistics", [](ojson& h, std::string&) { h["normalizer.mean"]["shape"] = {3}; }},
      // F32 [2^62] is 2^64 bytes, which wraps to 0 and matched [0, 0] before the check.
      {"is too large",
       [](ojson& h, std::string&) {
         h["zz"] = {{"dtype", "F32"}, {"shape", {uint64_t{1} << 62}}, {"data_offsets", {0, 0}}};
       }},
      {"lie outside", [](ojson&, std::string& data) { data.resize(data.size() / 2); }},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.needle);
    edit_v2(good, bad, c.edit);
    expect_input_error([&] { CheckpointReader r(bad); }, bad + ": ", c.needle);
  }
  // Tensors that are there but do not fit the model.
  ResNet model = make_model(resnet::testing::resnet8_config().model);
  Sgd sgd(model->parameters(), SgdOptions{});
  edit_v2(good, bad, [](ojson& h, std::string&) { h["model.fc.bias"]["shape"] = {5, 2}; });
  expect_input_error([&] { CheckpointReader(bad).load_model(*model); }, bad + ": ", "'fc.bias' is Float [5, 2]");
  edit_v2(good, bad, [](ojson& h, std::string&) {
    h["model.renamed"] = h["model.fc.bias"];
    h.erase("model.fc.bias");
  });
  expect_input_error([&] { CheckpointReader(bad).load_model(*model); }, bad + ": ", "no tensors 'fc.bias'");
  edit_v2(good, bad, [](ojson& h, std::string&) {
    h["momentum.fc.bias"]["dtype"] = "I64";
    h["momentum.fc.bias"]["shape"] = {5};
  });
  expect_input_error([&] { CheckpointReader(bad).load_optimizer(sgd, *model); }, bad + ": ",
                     "momentum buffers 'fc.bias'");
}

// ---- version 1: TorchScript archives, read without TorchScript ---------------------------------

// The generator of the old class source matches what LibTorch's writer produced, for the
// checkpoints of the last version-1 build (the fixture) and for those before rng_cpu was dropped.
TEST(CheckpointV1, ClassSourceIsTheOneLibTorchsWriterMade) {
  const std::string fixture = kFixtures + "/v1_run/checkpoints/last.ckpt";
  const std::string bytes = read_all(fixture);
  ZipReader zip(bytes);
  const std::vector<std::pair<std::string, std::string>> attributes = {{"format", "str"},
                                                                       {"version", "int"},
                                                                       {"config", "str"},
                                                                       {"state", "str"},
                                                                       {"data_fingerprint", "str"},
                                                                       {"changes", "str"},
                                                                       {"model_names", "List[str]"},
                                                                       {"model_tensors", "List[Tensor]"},
                                                                       {"momentum", "List[Tensor]"},
                                                                       {"norm_mean", "Tensor"},
                                                                       {"norm_std", "Tensor"}};
  EXPECT_EQ(zip.read("code/__torch__.py"), v1_class_source(attributes));
  // An archive of the oldest builds, which also stored rng_cpu: written by LibTorch itself here.
  TempDir tmp;
  write_damaged_checkpoint(tmp / "old.ckpt", {{"rng_cpu", c10::IValue(at::zeros({5056}, at::kByte))}});
  const std::string old = read_all(tmp / "old.ckpt");
  ZipReader old_zip(old);
  auto with_rng = attributes;
  with_rng.emplace_back("rng_cpu", "Tensor");
  EXPECT_EQ(old_zip.read("code/__torch__.py"), v1_class_source(with_rng));
  EXPECT_EQ(CheckpointReader(tmp / "old.ckpt").version(), 1);
}

// The values come from the file: each wrong type or shape is one line naming it.
TEST(CheckpointV1, WrongTypesAndShapesNameTheFile) {
  TempDir tmp;
  const std::string path = tmp / "damaged.ckpt";
  using c10::IValue;
  const std::vector<std::pair<std::map<std::string, IValue>, std::string>> damages = {
      {{{"version", IValue(std::string("1"))}}, "attribute 'version' is a string, not int"},
      {{{"config", IValue(int64_t{7})}}, "attribute 'config' is an integer"},
      {{{"state", IValue(at::zeros({2}))}}, "attribute 'state' is a tensor"},
      {{{"config", IValue(std::string("[20]"))}}, "config is not an object"},
      {{{"state", IValue(std::string(R"({"step":-4,"train_loss_sum":0,"train_correct":0,"train_seen":0,)"
                                     R"("train_seconds":0,"elapsed_seconds":0,"images_trained":0,)"
                                     R"("best_val_error":-1,"best_val_step":-1})"))}},
       "negative step"},
      {{{"changes", IValue(std::string("[1, 2]"))}}, "(changes)"},
      {{{"changes", IValue(std::string(R"([{"step":3,"key":"train.lr"}])"))}}, "(changes)"},
      {{{"norm_mean", IValue(at::zeros({5}))}}, "corrupt normalisation statistics"},
      {{{"norm_std", IValue(at::ones({1, 3, 1, 1}, at::kInt))}}, "dtype Int"},
      {{{"norm_mean", IValue(at::quantize_per_tensor(at::zeros({1, 3, 1, 1}), 0.1, 0, at::kQInt8))}}, "refers to"},
      {{{"model_names", IValue(c10::List<at::Tensor>{at::zeros({2})})}}, "attribute 'model_names'"},
      {{{"momentum", IValue(std::string("m"))}}, "attribute 'momentum' is a string"},
      {{{"evil", IValue(std::string("x"))}}, "attribute 'evil' is not one resnet-train's writer makes"},
      {{{"norm_std", IValue()}}, "no 'norm_std'"},
  };
  for (const auto& [damage, needle] : damages) {
    SCOPED_TRACE(needle);
    write_damaged_checkpoint(path, damage);
    expect_input_error([&] { CheckpointReader reader(path); }, path + ": ", needle);
  }
  // Weights of the wrong kind for the model: refused when loaded, nothing copied.
  ResNet model = make_model(resnet::testing::resnet8_config().model);
  write_damaged_checkpoint(path,
                           {{"model_tensors", IValue(c10::List<at::Tensor>{at::zeros({16, 3, 3, 3}, at::kHalf)})}});
  expect_input_error([&] { CheckpointReader(path).load_model(*model); }, path + ": ", "does not match the config");
  Sgd sgd(model->parameters(), SgdOptions{});
  expect_input_error([&] { CheckpointReader(path).load_optimizer(sgd, *model); }, path + ": ", "momentum buffers");
}

// Anything beyond what the old writer made is refused: other code, other records, other constants.
TEST(CheckpointV1, ArchivesOurWriterDidNotMakeAreRefused) {
  TempDir tmp;
  write_damaged_checkpoint(tmp / "good.ckpt", {});
  ASSERT_NO_THROW(CheckpointReader(tmp / "good.ckpt"));
  const std::string bytes = read_all(tmp / "good.ckpt");
  const std::string path = tmp / "bad.ckpt";
  // Copies the archive record by record through LibTorch's writer, changing what `edit` says.
  auto rewrite = [&](const std::function<void(std::string & name, std::string & data)>& edit,
                     const std::string& extra) {
    ZipReader in(bytes);
    caffe2::serialize::PyTorchStreamWriter out(path);
    for (const std::string& name : in.names()) {
      if (name == "version") continue;  // the writer adds its own
      std::string data = in.read(name), renamed = name;
      edit(renamed, data);
      out.writeRecord(renamed, data.data(), data.size());
    }
    if (!extra.empty()) out.writeRecord(extra, "x", 1);
    out.writeEndOfFile();
  };
  rewrite(
      [](std::string& name, std::string& data) {
        if (name == "code/__torch__.py") data += "  def __setstate__(self, state: str) -> None:\n    pass\n";
      },
      "");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "code/__torch__.py is not the class source");
  rewrite([](std::string&, std::string&) {}, "code/__torch__/evil.py");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "record 'code/__torch__/evil.py' is not one");
  rewrite(
      [](std::string& name, std::string& data) {
        if (name == "constants.pkl") data = std::string("\x80\x02K\x01\x85.", 6);
      },
      "");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "constants.pkl");
  rewrite(
      [](std::string& name, std::string&) {
        if (name == "code/__torch__.py") name = "code/other.py";
      },
      "");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "record 'code/other.py' is not one");
  // A storage shorter than the pickle says (LibTorch 1.13 read past its end).
  rewrite(
      [](std::string& name, std::string& data) {
        if (name == "data/1") data.resize(data.size() - 4);
      },
      "");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "record data/1 holds");
  // A pickle naming a global other than the ones the writer used.
  rewrite(
      [](std::string& name, std::string& data) {
        if (name != "data.pkl") return;
        const auto at = data.find("__torch__\nModule");
        ASSERT_NE(at, std::string::npos);
        data.replace(at, 16, "__torch__\nEvil__");
      },
      "");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "refers to __torch__.Evil__");
  // A big-endian archive (LibTorch 2.x's writer adds a byteorder record; 1.13's wrote none and
  // meant little): refused, not misread.
  const bool has_byteorder = ZipReader(bytes).has("byteorder");
  rewrite(
      [](std::string& name, std::string& data) {
        if (name == "byteorder") data = "big";
      },
      has_byteorder ? "" : "byteorder");
  expect_input_error([&] { CheckpointReader r(path); }, path + ": ", "only little-endian checkpoints are read");
}

// Inputs that made LibTorch 1.13's reader misbehave: a storage record emptied (a null-pointer
// read), a data.pkl with bytes shuffled (a wild free under ASan). Both were edited by hand, which
// left their zip directories inconsistent: libzip refuses them before any record is read.
TEST(CheckpointV1, InputsThatBrokeLibTorchAreOneLineNamingTheFile) {
  for (const std::string path : {RESNET_SOURCE_DIR "/tests/fuzz/corpus/checkpoint/norm_std_without_data.ckpt",
                                 RESNET_SOURCE_DIR "/tests/fuzz/libtorch_crashes/shuffled_data_pkl_bad_free.ckpt"})
    expect_input_error([&] { CheckpointReader reader(path); }, path + ": ", "zip file");
}

// ---- the version-1 run folder kept in tests/fixtures ------------------------------------------

class OldRun : public ::testing::Test {
 protected:
  void SetUp() override {
    // The fixture's synthetic data, made again the way it was made (tests/fixtures/README.md).
    const std::string cmd =
        "/usr/bin/python3 " RESNET_SOURCE_DIR "/tests/tools/write_synthetic_cifar.py " + data + " 16 40";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    fs::copy(kFixtures + "/v1_run", run, fs::copy_options::recursive);
  }
  TempDir tmp;
  const std::string data = tmp / "data", run = tmp / "run";
};

// The old run resumes to step 12 and ends with the weights and metrics of a straight 12-step run
// made by the old build; from then on its checkpoint is version 2. Bit for bit with the LibTorch
// that made the fixture (Debian's 1.13.1); another LibTorch (the pip build's) rounds the resumed
// steps' convolutions apart, so there it must agree to fp32 rounding instead.
TEST_F(OldRun, ResumesBitForBitAndWritesVersion2) {
  const bool same_libtorch = compat::torch_version() == "1.13.1";
  ASSERT_EQ(CheckpointReader(run + "/checkpoints/last.ckpt").version(), 1);
  TrainOptions o = resnet::testing::quiet();
  o.data_dir = data;
  ASSERT_EQ(resume(run, {"train.iterations=12"}, o), 0);
  CheckpointReader r(run + "/checkpoints/last.ckpt");
  EXPECT_EQ(r.version(), 2);
  EXPECT_EQ(r.contents().state.step, 12);
  ResNet model = make_model(r.config().model);
  r.load_model(*model);
  const WeightsFile straight = read_weights(kFixtures + "/v1_straight12.safetensors");
  std::map<std::string, at::Tensor> want(straight.tensors.begin(), straight.tensors.end());
  size_t compared = 0;
  auto agrees = [&](const at::Tensor& a, const at::Tensor& b) {
    return same_libtorch ? same_bits(a, b)
                         : a.sizes() == b.sizes() && at::allclose(a.to(at::kDouble), b.to(at::kDouble), 1e-4, 1e-6);
  };
  for (const auto& item : model->named_parameters()) compared += agrees(item.value(), want.at(item.key()));
  for (const auto& item : model->named_buffers()) compared += agrees(item.value(), want.at(item.key()));
  EXPECT_EQ(compared, want.size());
  auto rows = resnet::testing::metric_rows(run);
  std::vector<nlohmann::json> straight_rows;
  std::ifstream in(kFixtures + "/v1_straight12_metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto row = nlohmann::json::parse(line);
    row.erase("images_per_sec");
    row.erase("elapsed_s");
    straight_rows.push_back(row);
  }
  // Everything bit for bit but the test loss: since the version-1 build, evaluation sums each
  // image's loss in double (exact sharded evaluation), which moves the mean in its 7th digit.
  ASSERT_EQ(rows.size(), straight_rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const char* key :
         same_libtorch ? std::vector<const char*>{"test_loss"} : std::vector<const char*>{"test_loss", "train_loss"}) {
      const double want_value = straight_rows[i][key].get<double>();
      EXPECT_NEAR(rows[i][key].get<double>(), want_value, same_libtorch ? 1e-6 : 1e-5 * std::abs(want_value)) << key;
      rows[i].erase(key);
      straight_rows[i].erase(key);
    }
    EXPECT_EQ(rows[i], straight_rows[i]);
  }
}

// resnet-eval on the old checkpoint reports what the old build's resnet-eval did.
TEST_F(OldRun, EvaluatesToTheSameNumbers) {
  const std::string out = tmp / "eval.json";
  const std::string cmd =
      std::string(RESNET_EVAL_BIN) + " --checkpoint " + run + " --data-dir " + data + " --json " + out + " > /dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  nlohmann::json now = nlohmann::json::parse(read_all(out));
  nlohmann::json then = nlohmann::json::parse(read_all(kFixtures + "/v1_run/eval_test.json"));
  ASSERT_TRUE(then.contains("error") && then.contains("confusion"));
  // The loss to 1e-6 (summed in double since then, see above), the rest exactly.
  EXPECT_NEAR(now["loss"].get<double>(), then["loss"].get<double>(), 1e-6);
  for (auto* j : {&now, &then}) j->erase("checkpoint"), j->erase("loss");
  EXPECT_EQ(now, then);
}
