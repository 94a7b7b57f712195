// Readers of user input fail only with one-line InputErrors naming the file or key (exit 2),
// never with LibTorch's or nlohmann's exceptions (exit 1 and a backtrace). Each test here is an
// input that the fuzz targets in tests/fuzz/ found to escape in some other way.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <limits>
#include <set>
#include <string>

#include "config/config.h"
#include "damaged_checkpoint.h"
#include "models/resnet.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "train/sgd.h"
#include "util/errors.h"
#include "util/pickle_check.h"

using namespace resnet;
using nlohmann::json;
using resnet::testing::TempDir;
using resnet::testing::write_damaged_checkpoint;

namespace {

// Expects `body` to throw an InputError of one line that starts with `prefix`.
template <typename F>
void expect_input_error(F&& body, const std::string& prefix) {
  try {
    body();
    FAIL() << "accepted";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(prefix, 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

}  // namespace

// Keys and bare words are taken as they are, without the JSON parser, which is what checks
// UTF-8; nlohmann's dump() then threw type_error 316 from error messages and config.json.
TEST(UntrustedConfig, OverrideThatIsNotUtf8IsAnInputError) {
  json user = json::object();
  expect_input_error([&] { apply_override(user, "train.lr=\xff\xfe"); }, "--set \"train.lr=");
  expect_input_error([&] { apply_override(user, "name=caf\xe9"); }, "--set \"name=");
  expect_input_error([&] { apply_override(user, "train.lr.mil\xd7=[1]"); }, "--set \"train.lr.mil");
  EXPECT_EQ(user, json::object());
  apply_override(user, "name=caf\xc3\xa9");  // UTF-8 is fine
  EXPECT_EQ(config_from_json(user).name, "caf\xc3\xa9");
}

// A JSON key or string may hold a newline ("a\nb"); echoed raw, the one-line error became two.
TEST(UntrustedConfig, ControlCharactersInKeysAndValuesStayOnOneLine) {
  expect_input_error([] { config_from_json(json::parse(R"({"tra\nin": {}})")); }, "tra\\x0ain: unknown key");
  expect_input_error([] { config_from_json(json::parse(R"({"model": {"family": "a\nb"}})")); }, "model.family");
  json user = json::object();
  expect_input_error([&] { apply_override(user, "a\n.b.c"); }, "--set a\\x0a.b.c: expected key=value");
}

// total_steps() is ceil(epochs * steps per epoch) cast to int64: UB (UBSan: float-cast-overflow)
// for epochs = 1e300, and a nonsense run length in practice.
TEST(UntrustedConfig, EpochsAreBoundedSoTheStepCountFitsAnInt64) {
  expect_input_error([] { config_from_json({{"train", {{"epochs", 1e300}}}}); }, "train.epochs");
  expect_input_error([] { config_from_json({{"train", {{"epochs", 1e6 + 1}}}}); }, "train.epochs");
  EXPECT_DOUBLE_EQ(config_from_json({{"train", {{"epochs", 1e6}}}}).train.epochs, 1e6);
}

// nlohmann's get<int>() truncates and get<int64_t>() wraps: ResNet-20 was trained for
// model.depth 4294967316, and runtime.seed 18446744073709551615 became -1.
TEST(UntrustedConfig, IntegersOutOfRangeAreErrorsNotTruncated) {
  expect_input_error([] { config_from_json({{"model", {{"depth", int64_t{4294967316}}}}}); }, "model.depth");
  expect_input_error([] { config_from_json({{"model", {{"num_classes", int64_t{1} << 40}}}}); }, "model.num_classes");
  expect_input_error([] { config_from_json(json::parse(R"({"runtime": {"seed": 18446744073709551615}})")); },
                     "runtime.seed");
  expect_input_error(
      [] { config_from_json(json::parse(R"({"train": {"lr_schedule": {"milestones": [9223372036854775808]}}})")); },
      "train.lr_schedule.milestones[0]");
  EXPECT_EQ(config_from_json(json::parse(R"({"runtime": {"seed": 9223372036854775807}})")).runtime.seed,
            std::numeric_limits<int64_t>::max());
}

// The archive's values come from the file: each wrong type or shape used to reach a c10 assert
// (toInt(), toStringRef(), toTensorList()) or a broadcasting error in the first batch.
TEST(UntrustedCheckpoint, WrongTypesAndShapesNameTheFile) {
  TempDir tmp;
  const std::string path = tmp / "damaged.ckpt";
  using c10::IValue;
  const std::vector<std::map<std::string, IValue>> damages = {
      {{"version", IValue(std::string("1"))}},
      {{"config", IValue(int64_t{7})}},
      {{"state", IValue(at::zeros({2}))}},
      {{"config", IValue(std::string("[20]"))}},  // --set on resume indexed it as an object
      {{"state", IValue(std::string(R"({"step":-4,"train_loss_sum":0,"train_correct":0,"train_seen":0,)"
                                    R"("train_seconds":0,"elapsed_seconds":0,"images_trained":0,)"
                                    R"("best_val_error":-1,"best_val_step":-1})"))}},
      {{"changes", IValue(std::string("[1, 2]"))}},  // the trainer logs entry["key"] etc.
      {{"changes", IValue(std::string(R"([{"step":3,"key":"train.lr"}])"))}},
      {{"norm_mean", IValue(at::zeros({5}))}},
      {{"norm_std", IValue(at::ones({1, 3, 1, 1}, at::kInt))}},
      {{"norm_mean", IValue(at::quantize_per_tensor(at::zeros({1, 3, 1, 1}), 0.1, 0, at::kQInt8))}},
  };
  for (const auto& damage : damages) {
    write_damaged_checkpoint(path, damage);
    SCOPED_TRACE(damage.begin()->first);
    expect_input_error([&] { CheckpointReader reader(path); }, path + ": ");
  }
}

TEST(UntrustedCheckpoint, WeightsOfTheWrongTypeNameTheFile) {
  TempDir tmp;
  const std::string path = tmp / "damaged.ckpt";
  const ExperimentConfig c = resnet::testing::resnet8_config();
  ResNet model = make_model(c.model);
  c10::List<std::string> names;
  c10::List<at::Tensor> tensors;
  for (const auto& item : model->named_parameters()) names.push_back(item.key()), tensors.push_back(item.value());
  for (const auto& item : model->named_buffers()) names.push_back(item.key()), tensors.push_back(item.value());
  c10::List<at::Tensor> as_double;
  for (const at::Tensor& t : tensors) as_double.push_back(t.to(at::kDouble));
  using c10::IValue;
  const std::vector<std::map<std::string, IValue>> damages = {
      {{"model_names", IValue(c10::List<at::Tensor>{at::zeros({2})})}, {"model_tensors", IValue(std::string("w"))}},
      {{"model_names", IValue(names)}, {"model_tensors", IValue(as_double)}},  // copy_ converted silently
      {{"model_names", IValue(c10::List<int64_t>(c10::ArrayRef<int64_t>(std::vector<int64_t>(names.size(), 1))))},
       {"model_tensors", IValue(tensors)}},
  };
  for (const auto& damage : damages) {
    write_damaged_checkpoint(path, damage);
    CheckpointReader reader(path);
    expect_input_error([&] { reader.load_model(*model); }, path + ": ");
  }
  // Momentum buffers of another type or shape: nothing is copied.
  write_damaged_checkpoint(path, {{"model_names", IValue(names)}, {"model_tensors", IValue(tensors)},
                                  {"momentum", IValue(std::string("m"))}});
  Sgd sgd(model->parameters(), SgdOptions{});
  expect_input_error([&] { CheckpointReader(path).load_optimizer(sgd); }, path + ": ");
  write_damaged_checkpoint(path, {{"model_names", IValue(names)}, {"model_tensors", IValue(tensors)},
                                  {"momentum", IValue(as_double)}});
  expect_input_error([&] { CheckpointReader(path).load_optimizer(sgd); }, path + ": ");
}

// LibTorch's archive reader compiles the archive's TorchScript and unpickles its data: damage
// there throws std::runtime_error, std::out_of_range, torch::jit::ErrorReport or std::bad_alloc
// (the fuzzer found all four), not only c10::Error.
TEST(UntrustedCheckpoint, DamagedTorchScriptInsideTheArchiveNamesTheFile) {
  TempDir tmp;
  write_damaged_checkpoint(tmp / "good.ckpt", {});
  // The same records, with a syntax error in the archive's class source.
  const std::string path = tmp / "damaged.ckpt";
  {
    caffe2::serialize::PyTorchStreamReader in(tmp / "good.ckpt");
    caffe2::serialize::PyTorchStreamWriter out(path);
    for (const std::string& name : in.getAllRecords()) {
      if (name == "version") continue;  // the writer adds its own
      auto [data, size] = in.getRecord(name);
      std::string bytes(static_cast<const char*>(data.get()), size);
      if (name == "code/__torch__.py") {
        const auto at = bytes.find("__parameters__ = []");
        ASSERT_NE(at, std::string::npos) << bytes;
        bytes.replace(at, 19, "__parameters__ = [[");
      }
      out.writeRecord(name, bytes.data(), bytes.size());
    }
    out.writeEndOfFile();
  }
  expect_input_error([&] { CheckpointReader reader(path); }, path + ": not a readable checkpoint");
}

// LibTorch takes a tensor's element count from the pickle, not from the record holding its bytes:
// the fuzzer made norm_std's record empty, and the first batch read through a null pointer.
TEST(UntrustedCheckpoint, TensorWithoutDataNamesTheFile) {
  const std::string path = RESNET_SOURCE_DIR "/tests/fuzz/corpus/checkpoint/norm_std_without_data.ckpt";
  expect_input_error([&] { CheckpointReader reader(path); }, path + ": corrupt normalisation statistics");
}

// The pickle walk that guards LibTorch's unpickler: what the TorchScript pickler writes passes;
// structural damage is refused with the offset and the reason.
TEST(UntrustedCheckpoint, PickleWalkRefusesStructuralDamage) {
  const std::set<std::string>& g = checkpoint_globals();
  // (PROTO 2) MARK BININT1 1 BINUNICODE "ab" TUPLE BINPUT 0 BINGET 0 TUPLE2 STOP
  const std::string ok = std::string("\x80\x02(K\x01X\x02\x00\x00\x00" "abtq\x00h\x00\x86.", 19);
  EXPECT_EQ(check_pickle(ok, g), "");
  auto refused = [&](const std::string& bytes, const std::string& why) {
    const std::string got = check_pickle(bytes, g);
    EXPECT_NE(got.find(why), std::string::npos) << "got '" << got << "', wanted '" << why << "'";
  };
  refused(std::string("\x80\x02h\x05.", 5), "read before it was written");  // BINGET 5, never put
  refused(std::string("\x80\x02K\x01\x86.", 6), "stack underflow");          // TUPLE2 of one
  refused(std::string("\x80\x02K\x01.K", 6), "after STOP");
  refused(std::string("\x80\x02K\x01K\x02.", 7), "STOP with 2 values");
  refused(std::string("\x80\x02X\xff\x00\x00\x00" "ab", 9), "truncated");
  refused(std::string("\x80\x02K\x01", 4), "no STOP");
  refused("\x80\x02" "cos\nsystem\n.", "global os.system is not allowed");
  refused(std::string("\x80\x02\x93.", 4), "opcode 0x93");  // STACK_GLOBAL: never written by TorchScript
  refused(std::string("\x80\x02(K\x01K\x02K\x03}(K\x01u.", 15), "odd number");
}

// A checkpoint whose data.pkl had bytes shuffled made LibTorch 1.13's unpickler free a wild
// pointer (ASan); the walk stops it first, with one line naming the file.
TEST(UntrustedCheckpoint, ShuffledDataPklIsRefusedBeforeLibTorchSeesIt) {
  const std::string path =
      std::string(RESNET_SOURCE_DIR) + "/tests/fuzz/libtorch_crashes/shuffled_data_pkl_bad_free.ckpt";
  try {
    CheckpointReader r(path);
    FAIL() << "accepted";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("data.pkl"), std::string::npos) << what;
  }
}
