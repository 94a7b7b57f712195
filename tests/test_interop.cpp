// Weight files in and out (src/interop): formats that round-trip bit for bit, names that map
// onto torchvision's, loads that refuse what does not fit, readers that refuse hostile files.
// The tests against PyTorch itself are in test_interop_python.cpp.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/read_adapter_interface.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "interop/weights.h"
#include "test_support.h"
#include "util/errors.h"
#include "util/json_io.h"
#include "util/sha256.h"

using namespace resnet;
using resnet::testing::TempDir;

namespace {

ModelConfig cifar_model(int depth) {
  ModelConfig m;
  m.depth = depth;
  validate_model(m);
  return m;
}

ModelConfig imagenet_model(int depth, int classes = 10) {
  ModelConfig m;
  m.family = "imagenet";
  m.depth = depth;
  m.num_classes = classes;
  validate_model(m);
  return m;
}

// Random values in every entry, BN statistics included, so that equal logits mean equal weights.
void randomise(ResNetImpl& model, uint64_t seed) {
  at::manual_seed(seed);
  c10::NoGradGuard no_grad;
  for (auto& [name, t] : model_state(model)) {
    if (t.is_floating_point())
      t.copy_(name.find("running_var") != std::string::npos ? at::rand_like(t) + 0.5 : at::randn_like(t) * 0.1);
    else t.fill_(7);
  }
}

void expect_bit_identical(const NamedTensors& a, const NamedTensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.scalar_type(), b[i].second.scalar_type()) << a[i].first;
    EXPECT_EQ(a[i].second.sizes(), b[i].second.sizes()) << a[i].first;
    at::Tensor x = a[i].second.contiguous(), y = b[i].second.contiguous();
    ASSERT_EQ(x.nbytes(), y.nbytes());
    EXPECT_EQ(std::memcmp(x.data_ptr(), y.data_ptr(), x.nbytes()), 0) << a[i].first;
  }
}

using resnet::testing::expect_input_error;

class Bytes : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit Bytes(std::string b) : b_(std::move(b)) {}
  size_t size() const override { return b_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char*) const override {
    n = pos >= b_.size() ? 0 : std::min<size_t>(n, b_.size() - pos);
    std::memcpy(buf, b_.data() + pos, n);
    return n;
  }

 private:
  std::string b_;
};

// A .pt file with some records replaced (or added, or with "" removed).
std::string rezip(const std::string& pt, const std::map<std::string, std::string>& replace) {
  caffe2::serialize::PyTorchStreamReader in(std::make_shared<Bytes>(pt));
  std::string out;
  caffe2::serialize::PyTorchStreamWriter w([&](const void* d, size_t n) {
    out.append(static_cast<const char*>(d), n);
    return n;
  });
  std::map<std::string, std::string> records;
  for (const auto& name : in.getAllRecords()) {
    if (name == "version") continue;  // the writer adds its own
    auto [data, size] = in.getRecord(name);
    records[name] = std::string(static_cast<const char*>(data.get()), size);
  }
  for (const auto& [k, v] : replace) records[k] = v;
  for (const auto& [k, v] : records)
    if (!v.empty()) w.writeRecord(k, v.data(), v.size());
  w.writeEndOfFile();
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
  return s;
}

std::string safetensors_with_header(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  for (int k = 0; k < 8; ++k) out[k] = static_cast<char>((json.size() >> (8 * k)) & 0xff);
  return out + json + data;
}

NamedTensors sample_tensors() {
  at::manual_seed(1);
  at::Tensor big = at::randn({4, 6});
  return {{"w", at::randn({8, 3, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast)},
          {"view", big.narrow(1, 2, 3)},  // a view into a bigger storage: only its own values go out
          {"half", at::randn({5}).to(at::kHalf)},
          {"bf16", at::randn({2, 2}).to(at::kBFloat16)},
          {"count", at::tensor(std::vector<int64_t>{-3, 1ll << 40}, at::kLong)},
          {"scalar", at::scalar_tensor(2.5)},
          {"empty", at::empty({0, 4})}};
}

}  // namespace

TEST(Sha256, KnownDigests) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// A weight file as model.init_sha256 names it: the digest that `sha256sum` (coreutils' own
// implementation) prints for the same file, 100,003 bytes (no multiple of the 64-byte block).
TEST(Sha256, FileDigestIsWhatSha256sumPrints) {
  TempDir tmp;
  const std::string path = tmp / "weights.bin";
  std::string bytes(100003, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>(x >> 24);
  }
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  FILE* out = popen(("sha256sum '" + path + "'").c_str(), "r");
  ASSERT_NE(out, nullptr);
  char printed[64];
  const size_t n = std::fread(printed, 1, sizeof printed, out);
  ASSERT_EQ(pclose(out), 0);
  ASSERT_EQ(n, sizeof printed);
  EXPECT_EQ(sha256_hex(read_text_file(path)), std::string(printed, sizeof printed));
}

TEST(WeightFiles, BothFormatsRoundTripBitForBitWithMetadata) {
  TempDir tmp;
  const NamedTensors tensors = sample_tensors();
  const nlohmann::json meta = {{"step", 12}, {"note", "x"}};
  for (const char* name : {"w.pt", "w.safetensors"}) {
    const std::string path = tmp / name;
    write_weights(path, format_for(path), tensors, meta);
    WeightsFile back = read_weights(path);
    EXPECT_EQ(back.format, format_for(path));
    expect_bit_identical(tensors, back.tensors);
    EXPECT_EQ(back.metadata, meta) << name;
  }
  // The safetensors data section starts 8-byte aligned, as the reference writer does.
  const std::string st = read_text_file(tmp / "w.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, st.data(), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(WeightFiles, FormatComesFromTheNameOrTheFlag) {
  EXPECT_EQ(format_for("a.pt"), WeightsFormat::kPt);
  EXPECT_EQ(format_for("a.pth"), WeightsFormat::kPt);
  EXPECT_EQ(format_for("a.safetensors"), WeightsFormat::kSafetensors);
  EXPECT_EQ(format_for("a.weights", "safetensors"), WeightsFormat::kSafetensors);
  expect_input_error([] { format_for("a.weights"); }, "a.weights: cannot tell the format");
}

TEST(WeightNames, TorchvisionNamesForImagenetResNets) {
  auto r18 = make_model(imagenet_model(18));
  const auto names18 = torchvision_names(*r18);
  EXPECT_EQ(names18.at("stem_conv.weight"), "conv1.weight");
  EXPECT_EQ(names18.at("stem_bn.running_var"), "bn1.running_var");
  EXPECT_EQ(names18.at("block0.conv1.weight"), "layer1.0.conv1.weight");
  EXPECT_EQ(names18.at("block2.shortcut_conv.weight"), "layer2.0.downsample.0.weight");
  EXPECT_EQ(names18.at("block3.bn2.num_batches_tracked"), "layer2.1.bn2.num_batches_tracked");
  EXPECT_EQ(names18.at("block6.shortcut_bn.bias"), "layer4.0.downsample.1.bias");
  EXPECT_EQ(names18.count("block7.shortcut_bn.bias"), 0u);  // layer4.1 keeps its shape: no projection
  EXPECT_EQ(names18.at("fc.weight"), "fc.weight");
  // torchvision's resnet18 state_dict has 122 entries (62 parameters + 60 BN buffers).
  EXPECT_EQ(names18.size(), 122u);
}

TEST(WeightNames, OnlyTorchvisionsArchitecturesGetTorchvisionNames) {
  EXPECT_EQ(torchvision_mismatch(imagenet_model(50)), "");
  EXPECT_NE(torchvision_mismatch(cifar_model(20)), "");
  ModelConfig preact = imagenet_model(18);
  preact.preact = true;
  EXPECT_NE(torchvision_mismatch(preact), "");
  ModelConfig c = imagenet_model(18);
  c.shortcut = "C";
  EXPECT_NE(torchvision_mismatch(c), "");
  auto r20 = make_model(cifar_model(20));
  expect_input_error([&] { torchvision_names(*r20); }, "--names torchvision: torchvision has no cifar-family");
}

// Exported under either name, loaded into a differently initialised twin: every entry equal.
TEST(LoadWeights, ExportThenLoadRestoresEveryTensorUnderEitherNames) {
  TempDir tmp;
  for (const ModelConfig& config : {cifar_model(20), imagenet_model(50)}) {
    auto source = make_model(config);
    randomise(*source, 1);
    const bool tv = config.family == "imagenet";
    const std::string path = tmp / (tv ? "r50.safetensors" : "r20.pt");
    export_weights(*source, path, format_for(path), tv ? Names::kTorchvision : Names::kNative, {});
    auto target = make_model(config);
    const WeightsLoad load = load_weights_into(*target, path);
    EXPECT_EQ(load.scheme, tv ? "torchvision" : "native");
    EXPECT_EQ(load.loaded, static_cast<int64_t>(model_state(*source).size()));
    EXPECT_EQ(load.sha256, sha256_hex(read_text_file(path)));
    expect_bit_identical(model_state(*source), model_state(*target));
  }
}

TEST(LoadWeights, MismatchesAreListedByName) {
  TempDir tmp;
  auto r20 = make_model(cifar_model(20));
  const std::string path = tmp / "r20.pt";
  export_weights(*r20, path, WeightsFormat::kPt, Names::kNative, {});
  auto r32 = make_model(cifar_model(32));  // 5 blocks a stage, not 3: block3 is still in the first
  expect_input_error([&] { load_weights_into(*r32, path); },
                     path + ": does not fit resnet-32 (native names): 60 missing (block9.conv1.weight, ",
                     "; 51 mis-shaped (block3.conv1.weight [32, 16, 3, 3] in the file, [16, 16, 3, 3] in the model, ");
  ModelConfig wide = cifar_model(20);
  wide.num_classes = 100;
  auto r20_100 = make_model(wide);
  expect_input_error([&] { load_weights_into(*r20_100, path); }, path + ": does not fit",
                     "2 mis-shaped (fc.weight [10, 64] in the file, [100, 64] in the model, fc.bias [10]");
  // Skipping the head loads the rest and leaves the head as it was.
  const at::Tensor head = r20_100->named_parameters()["fc.weight"].clone();
  const WeightsLoad load = load_weights_into(*r20_100, path, {"fc"});
  EXPECT_EQ(load.skipped, (std::vector<std::string>{"fc.weight", "fc.bias"}));
  EXPECT_TRUE(at::equal(head, r20_100->named_parameters()["fc.weight"]));
  EXPECT_TRUE(
      at::equal(r20->named_parameters()["block3.conv2.weight"], r20_100->named_parameters()["block3.conv2.weight"]));
  // An unexpected entry, and a file that changed since its digest was recorded.
  NamedTensors extra = model_state(*r20);
  extra.emplace_back("block99.conv1.weight", at::zeros({1}));
  write_weights(tmp / "extra.pt", WeightsFormat::kPt, extra, {});
  expect_input_error([&] { load_weights_into(*r20, tmp / "extra.pt"); }, tmp / "extra.pt",
                     "1 unexpected ('block99.conv1.weight')");
  expect_input_error([&] { load_weights_into(*r20, path, {}, std::string(64, '0')); }, path + ": SHA-256");
}

// The state_dict of `model` as the code of `scheme` names it (naming.h), optionally without BN's
// num_batches_tracked (older PyTorch) and under DataParallel's "module." prefix.
NamedTensors as_scheme(const ResNetImpl& model, const std::string& scheme, bool counters = true,
                       const std::string& prefix = "") {
  const auto names = scheme_names(model, naming_scheme(scheme));
  NamedTensors out;
  for (const auto& [name, t] : model_state(model))
    if (counters || name.find("num_batches_tracked") == std::string::npos) out.emplace_back(prefix + names.at(name), t);
  return out;
}

// Every scheme of the widely used codes on every layout they name: detected, loaded bit for bit.
TEST(LoadWeights, PublishedNamingSchemesAreDetectedAndLoadEveryTensor) {
  TempDir tmp;
  ModelConfig r20b = cifar_model(20), preact, r18 = imagenet_model(18);
  r20b.shortcut = "B";
  preact.depth = 11;  // 9n+2, n = 1
  preact.block = "bottleneck";
  preact.preact = true;
  r18.stem = "cifar";
  int seed = 0;
  for (ModelConfig config : {cifar_model(20), r20b, preact, r18}) {
    validate_model(config);
    auto source = make_model(config);
    randomise(*source, ++seed);
    for (const auto& scheme : naming_schemes()) {
      // ResNet-18 (the slowest to write and load) only as kuangliu/pytorch-cifar names it.
      if (!scheme.layered() || (config.family == "imagenet" && scheme.name != "kuangliu")) continue;
      const bool counters = seed % 2 == 0;
      write_weights(tmp / "w.pt", WeightsFormat::kPt, as_scheme(*source, scheme.name, counters, "module."), {});
      auto target = make_model(config);
      const WeightsLoad load = load_weights_into(*target, tmp / "w.pt");
      // Without projections two schemes name a network alike; either is right then.
      EXPECT_EQ(scheme_names(*target, naming_scheme(load.scheme)), scheme_names(*target, scheme))
          << model_name(config) << ": " << scheme.name << " detected as " << load.scheme;
      if (config.shortcut != "A") EXPECT_EQ(load.scheme, scheme.name);
      auto expected = model_state(*source), got = model_state(*target);
      for (size_t i = 0; i < expected.size(); ++i)
        if (counters || expected[i].first.find("num_batches_tracked") == std::string::npos)
          EXPECT_TRUE(at::equal(expected[i].second, got[i].second)) << scheme.name << " " << expected[i].first;
    }
  }
  // The names themselves, as those codes write them.
  auto r20 = make_model(r20b);
  const auto kuangliu = scheme_names(*r20, naming_scheme("kuangliu"));
  EXPECT_EQ(kuangliu.at("block3.shortcut_conv.weight"), "layer2.0.shortcut.0.weight");
  EXPECT_EQ(kuangliu.at("block3.shortcut_bn.running_mean"), "layer2.0.shortcut.1.running_mean");
  EXPECT_EQ(kuangliu.at("fc.bias"), "linear.bias");
  EXPECT_EQ(kuangliu.at("stem_bn.weight"), "bn1.weight");
  EXPECT_EQ(scheme_names(*r20, naming_scheme("torchvision")).at("block8.conv2.weight"), "layer3.2.conv2.weight");
}

// A file of a known code that does not fit the config: the listing, then the options that would
// build the network its keys describe, with what the keys cannot say (padding, normaliser).
TEST(LoadWeights, MisfitsOfKnownCodesSayWhichOptionsTheyNeed) {
  TempDir tmp;
  auto write_as = [&](ModelConfig config, const std::string& scheme) {
    validate_model(config);
    auto m = make_model(config);
    write_weights(tmp / "w.pt", WeightsFormat::kPt, as_scheme(*m, scheme, false, "module."), {});
    return tmp / "w.pt";
  };
  auto r20 = make_model(cifar_model(20));
  std::string path = write_as(cifar_model(56), "kuangliu");  // akamaster's ResNet-56
  expect_input_error(
      [&] { load_weights_into(*r20, path); }, path + ": does not fit resnet-20 (kuangliu names): ",
      "; these keys look like akamaster/pytorch_resnet_cifar10's resnet-56 (option A or a plain net, zeros "
      "split around the identity channels, trained on mean [0.485,0.456,0.406] std [0.229,0.224,0.225]): "
      "try --set model.depth=56 --set model.option_a_padding=split --set 'data.mean=[0.485,0.456,0.406]' "
      "--set 'data.std=[0.229,0.224,0.225]'; model.init_skip can leave layers out");
  ModelConfig k18 = imagenet_model(18);
  k18.stem = "cifar";
  path = write_as(k18, "kuangliu");  // kuangliu's ResNet18
  expect_input_error(
      [&] { load_weights_into(*r20, path); }, path + ": does not fit resnet-20 (kuangliu names)",
      "kuangliu/pytorch-cifar's resnet-18-imagenet (option B, trained on mean [0.4914,0.4822,0.4465] std "
      "[0.2023,0.1994,0.201]): try --set model.family=imagenet --set model.depth=18 --set model.stem=cifar "
      "--set model.shortcut=B --set 'data.mean=");
  ModelConfig c20 = cifar_model(20);
  c20.shortcut = "B";
  path = write_as(c20, "torchvision");  // chenyaofo's cifar10_resnet20
  expect_input_error([&] { load_weights_into(*r20, path); }, path + ": does not fit resnet-20 (torchvision names)",
                     "chenyaofo/pytorch-cifar-models's resnet-20 (option B, trained on mean [0.4914,0.4822,0.4465] std "
                     "[0.2023,0.1994,0.201]): try --set model.shortcut=B --set 'data.mean=");
  path = write_as(imagenet_model(50, 1000), "torchvision");
  auto r18 = make_model(imagenet_model(18));
  expect_input_error(
      [&] { load_weights_into(*r18, path); }, path + ": does not fit resnet-18-imagenet (torchvision names)",
      "torchvision's resnet-50-imagenet (option B, trained on mean [0.485,0.456,0.406] std "
      "[0.229,0.224,0.225]): try --set model.depth=50 --set model.block=bottleneck --set model.num_classes=1000");
  // kuangliu's PreActResNet18: our pre-activation layout without the BN before the pool.
  ModelConfig preact = imagenet_model(18);
  preact.stem = "cifar";
  preact.preact = true;
  auto p18 = make_model(preact);
  NamedTensors no_final_bn = as_scheme(*p18, "kuangliu");
  no_final_bn.erase(std::remove_if(no_final_bn.begin(), no_final_bn.end(),
                                   [](const auto& e) { return e.first.rfind("bn.", 0) == 0; }),
                    no_final_bn.end());
  write_weights(tmp / "preact.pt", WeightsFormat::kPt, no_final_bn, {});
  expect_input_error([&] { load_weights_into(*p18, tmp / "preact.pt"); },
                     tmp / "preact.pt" +
                         ": does not fit preact-resnet-18-imagenet (kuangliu names): 4 missing (bn.weight, "
                         "bn.bias, bn.running_mean, bn.running_var)");
  // Keys of nothing we can build (a stage missing): the listing alone.
  NamedTensors odd = as_scheme(*r20, "kuangliu");
  odd.erase(std::remove_if(odd.begin(), odd.end(), [](const auto& e) { return e.first.rfind("layer2.", 0) == 0; }),
            odd.end());
  write_weights(tmp / "odd.pt", WeightsFormat::kPt, odd, {});
  try {
    load_weights_into(*r20, tmp / "odd.pt");
    ADD_FAILURE() << "accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()).find("look like"), std::string::npos) << e.what();
  }
}

// The keys come from a file the user handed us: odd names, shapes and counts make no guess (and
// no exception), they never reach the model builder unchecked.
TEST(LoadWeights, OddKeysMakeNoGuess) {
  const at::Tensor stem = at::zeros({16, 3, 3, 3}), head = at::zeros({10, 64}), v = at::zeros({1});
  const std::vector<NamedTensors> odd = {
      {},
      {{"conv1.weight", stem}},                                         // no head
      {{"conv1.weight", at::zeros({16, 3})}, {"linear.weight", head}},  // a 2-D stem
      {{"conv1.weight", stem}, {"linear.weight", at::zeros({10})}},     // a 1-D head
      {{"conv1.weight", stem}, {"linear.weight", at::zeros({0, 64})}},  // no classes
      {{"conv1.weight", stem}, {"linear.weight", head}},                // no stages
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer99999999.0.conv1.weight", v}},
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer123456789012345678901234.0.conv1.weight", v}},
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer1.99999999.conv1.weight", v}},
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer.0.conv1.weight", v}, {"layer1.", v}, {"layer1", v}},
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer2.0.conv1.weight", v}},          // stage 1 missing
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer1.1.conv1.weight", v}},          // block 0 missing
      {{"conv1.weight", stem}, {"linear.weight", head}, {"layer1.0.a", v}, {"layer2.0.a", v}},  // 2 stages
      {{"conv1.weight", stem},
       {"linear.weight", head},
       {"layer1.0.a", v},
       {"layer2.0.a", v},
       {"layer2.1.a", v},
       {"layer3.0.a", v}},  // uneven stages
  };
  for (size_t i = 0; i < odd.size(); ++i)
    EXPECT_FALSE(guess_origin(odd[i], naming_scheme("kuangliu")).has_value()) << "case " << i;
  // Ten thousand stages of one block each: contiguous, but no network of ours.
  NamedTensors many = {{"conv1.weight", stem}, {"linear.weight", head}};
  for (int s = 1; s <= 10000; ++s) many.emplace_back("layer" + std::to_string(s) + ".0.conv1.weight", v);
  EXPECT_FALSE(guess_origin(many, naming_scheme("kuangliu")).has_value());
  EXPECT_FALSE(guess_origin(many, naming_scheme("native")).has_value());  // native keys carry no guess
}

// Keys fit, but the code that wrote them pads option A (and normalises) its own way: a note says so.
TEST(LoadWeights, ALoadThatFitsStillNotesWhatTheKeysCannotShow) {
  TempDir tmp;
  auto r20 = make_model(cifar_model(20));
  write_weights(tmp / "a.pt", WeightsFormat::kPt, as_scheme(*r20, "kuangliu"), {});
  const WeightsLoad load = load_weights_into(*r20, tmp / "a.pt");
  ExperimentConfig c;
  c.model = r20->config();
  EXPECT_EQ(
      weights_note(load, c, false),
      "these keys look like akamaster/pytorch_resnet_cifar10's resnet-20 (option A or a plain net, zeros split around "
      "the identity channels, trained on mean [0.485,0.456,0.406] std [0.229,0.224,0.225]): try --set "
      "model.option_a_padding=split --set 'data.mean=[0.485,0.456,0.406]' --set 'data.std=[0.229,0.224,0.225]'");
  c.model.option_a_padding = "split";
  c.data.mean = {0.485, 0.456, 0.406};
  c.data.std = {0.229, 0.224, 0.225};
  EXPECT_EQ(weights_note(load, c, true), "");
  // Our own files say nothing: their metadata carries what they need.
  write_weights(tmp / "n.pt", WeightsFormat::kPt, model_state(*r20), {});
  EXPECT_EQ(weights_note(load_weights_into(*r20, tmp / "n.pt"), c, false), "");
}

TEST(LoadWeights, ConfigKeysAreValidated) {
  nlohmann::json user = {{"model", {{"init_skip", {"fc"}}}}};
  expect_input_error([&] { config_from_json(user); }, "model.init_skip: needs model.init_from");
  user["model"]["init_from"] = "w.pt";
  EXPECT_EQ(config_from_json(user).model.init_skip, std::vector<std::string>{"fc"});
  user["model"]["init_skip"] = {1};
  expect_input_error([&] { config_from_json(user); }, "model.init_skip[0]: expected a string");
  user["model"]["init_skip"] = {"fc."};
  expect_input_error([&] { config_from_json(user); }, "model.init_skip: 'fc.'");
  user["model"]["init_skip"] = nlohmann::json::array();
  user["model"]["init_sha256"] = "abc";
  expect_input_error([&] { config_from_json(user); }, "model.init_sha256: 'abc' is not 64");
}

// A corpus of damaged and hostile files: each is one InputError that names the file.
TEST(UntrustedWeights, DamagedAndHostileFilesAreRefusedByName) {
  TempDir tmp;
  NamedTensors one = {{"w", at::arange(6, at::kFloat).view({2, 3})}};
  const std::string pt = encode_pt(one, {});
  // What data.pkl looks like, so that the hostile variants below change only one thing.
  caffe2::serialize::PyTorchStreamReader r(std::make_shared<Bytes>(pt));
  auto [pkl_data, pkl_size] = r.getRecord("data.pkl");
  const std::string pkl(static_cast<const char*>(pkl_data.get()), pkl_size);
  ASSERT_NE(pkl.find("FloatStorage"), std::string::npos);
  // pickle protocol 2 for os.system("ls"): what a malicious __reduce__ produces.
  const std::string os_system = std::string(
      "\x80\x02"
      "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03.",
      30);

  const std::vector<std::tuple<std::string, std::string, std::string>> corpus = {
      {"empty.pt", "", "neither a PyTorch"},
      {"text.pt", "hello, world\n", "neither a PyTorch"},
      {"magic_cut.pt", std::string("\x80\x02\x8a\x0a", 4), "neither a PyTorch"},  // a legacy magic number, cut
      {"truncated_zip.pt", pt.substr(0, pt.size() / 2), "not a readable PyTorch zip"},
      {"truncated_end.pt", pt.substr(0, pt.size() - 1), "not a readable PyTorch zip"},
      {"no_pickle.pt", rezip(pt, {{"data.pkl", ""}}), "no data.pkl"},
      {"os_system.pt", rezip(pt, {{"data.pkl", os_system}}), "refers to os.system"},
      {"float64.pt", rezip(pt, {{"data.pkl", replace_all(pkl, "FloatStorage", "DoubleStorage")}}),
       "dtype Double (torch.DoubleStorage)"},
      {"other_rebuild.pt", rezip(pt, {{"data.pkl", replace_all(pkl, "_rebuild_tensor_v2", "_rebuild_tensor_v9")}}),
       "refers to torch._utils._rebuild_tensor_v9"},
      {"short_storage.pt", rezip(pt, {{"data/0", std::string(20, '\0')}}), "holds 20 bytes, not 6 Float values"},
      {"no_storage.pt", rezip(pt, {{"data/0", ""}}), "has no record data/0"},
      {"truncated_pickle.pt", rezip(pt, {{"data.pkl", pkl.substr(0, pkl.size() - 3)}}), "truncated pickle"},
      {"many_objects.pt", rezip(pt, {{"data.pkl", "\x80\x02" + std::string(1'100'000, 'N') + "."}}),
       "a pickle may take"},
      {"header_too_long.safetensors", std::string("\xe8\x03\0\0\0\0\0\0{}", 10), "runs past the end"},
      {"header_not_json.safetensors", safetensors_with_header("{nope", ""), "invalid JSON"},
      {"offsets_outside.safetensors",
       safetensors_with_header(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", std::string(4, '\0')),
       "lie outside"},
      {"offsets_overlap.safetensors",
       safetensors_with_header(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           std::string(8, '\0')),
       "overlap"},
      {"offsets_gap.safetensors",
       safetensors_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, '\0')),
       "gap"},
      {"trailing.safetensors",
       safetensors_with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(8, '\0')),
       "belong to none"},
      {"shape_lies.safetensors",
       safetensors_with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')),
       "needs 12"},
      {"float64.safetensors",
       safetensors_with_header(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0')),
       "not supported"},
      {"huge_shape.safetensors",
       safetensors_with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
                               std::string(8, '\0')),
       "too large"},
      {"name_with_newline.safetensors", encode_safetensors({{"\n", one[0].second}}, {}),
       ""},  // valid: loads, name quoted in errors
  };
  for (const auto& [name, bytes, why] : corpus) {
    const std::string path = tmp / name;
    write_file_atomic(path, bytes);
    if (name == "name_with_newline.safetensors") {
      EXPECT_EQ(read_weights(path).tensors.at(0).first, "\n");
      auto r20 = make_model(cifar_model(20));
      expect_input_error([&] { load_weights_into(*r20, path); }, path, "'\\x0a'");
      continue;
    }
    expect_input_error([&] { read_weights(path); }, path + ": ", why);
  }
  // The same through the binary: exit 2, one line on stderr naming the file, no output file.
  write_file_atomic(tmp / "cfg.json", R"({"model": {"depth": 20}})");
  for (const char* name : {"truncated_zip.pt", "os_system.pt", "offsets_outside.safetensors"}) {
    const std::string cmd = std::string(RESNET_EVAL_BIN) + " --weights " + (tmp / name) + " --config " +
                            (tmp / "cfg.json") + " --logits " + (tmp / "logits.pt") + " > " + (tmp / "out.txt") +
                            " 2> " + (tmp / "err.txt");
    EXPECT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 2) << name;
    const std::string err = read_text_file(tmp / "err.txt");
    EXPECT_EQ(err.rfind("resnet-eval: error: " + (tmp / name) + ": ", 0), 0u) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_FALSE(std::filesystem::exists(tmp / "logits.pt"));
  }
}

// Files PyTorch 1.13 wrote (committed as fuzz seeds): an OrderedDict state_dict with its
// _metadata, the same with pickle protocol 4, other dtypes, a strided view, non-tensor entries,
// and a training checkpoint that holds the state_dict one level down.
TEST(WeightFiles, FilesPythonWroteLoad) {
  const std::string dir = std::string(RESNET_SOURCE_DIR) + "/tests/fuzz/corpus/weights/";
  const std::vector<std::string> sd_names = {"0.weight",       "1.weight",      "1.bias",
                                             "1.running_mean", "1.running_var", "1.num_batches_tracked",
                                             "3.weight",       "3.bias"};
  for (const char* f : {"python_ordereddict.pt", "python_protocol4.pt"}) {
    const WeightsFile w = read_weights(dir + f);
    std::vector<std::string> names;
    for (const auto& [n, t] : w.tensors) names.push_back(n);
    EXPECT_EQ(names, sd_names) << f;
    EXPECT_EQ(w.tensors[5].second.scalar_type(), at::kLong);
    EXPECT_EQ(w.tensors[0].second.sizes(), at::IntArrayRef({2, 3, 1, 1}));
  }
  const WeightsFile d = read_weights(dir + "python_dtypes_views.pt");
  ASSERT_EQ(d.tensors.size(), 4u);  // "epoch" and "note" are not tensors
  EXPECT_EQ(d.tensors[0].second.scalar_type(), at::kHalf);
  EXPECT_EQ(d.tensors[1].second.scalar_type(), at::kBFloat16);
  EXPECT_TRUE(at::equal(d.tensors[2].second, at::arange(3, at::kLong)));
  EXPECT_EQ(d.tensors[3].first, "view");
  EXPECT_EQ(d.tensors[3].second.sizes(), at::IntArrayRef({3, 2}));  // randn(4, 4)[1:, ::2]
  const WeightsFile nested = read_weights(dir + "python_nested.pt");
  ASSERT_EQ(nested.tensors.size(), 1u);
  EXPECT_TRUE(at::equal(nested.tensors[0].second, at::ones({2})));
}

// A wide net under another code's layer names is recognised by its stages: three equal stages of
// basic blocks whose first is 16k wide. The keys say family, depth, width and pre-activation, and
// the hint names the --set options that build it.
TEST(LoadWeights, AWideNetsKeysNameItsFamilyDepthAndWidth) {
  ModelConfig wrn;
  wrn.family = "wide";
  wrn.depth = 16;
  wrn.width = 2;
  validate_model(wrn);
  auto model = make_model(wrn);
  const auto origin = guess_origin(as_scheme(*model, "kuangliu"), naming_scheme("kuangliu"));
  ASSERT_TRUE(origin.has_value());
  EXPECT_EQ(origin->model.family, "wide");
  EXPECT_EQ(origin->model.depth, 16);
  EXPECT_EQ(origin->model.width, 2);
  EXPECT_EQ(origin->model.preact, std::optional<bool>(true));
  EXPECT_EQ(origin->model.shortcut, "B");
  EXPECT_EQ(suggested_sets(*origin, cifar_model(20), nullptr),
            "--set model.family=wide --set model.depth=16 --set model.stem=cifar --set model.shortcut=B "
            "--set model.preact=true --set model.width=2");
  // Width 1 is a CIFAR ResNet's layout (pre-activation, projections): the cifar family's depth.
  ModelConfig one = wrn;
  one.width = 1;
  auto narrow = make_model(one);
  const auto as_cifar = guess_origin(as_scheme(*narrow, "kuangliu"), naming_scheme("kuangliu"));
  ASSERT_TRUE(as_cifar.has_value());
  EXPECT_EQ(as_cifar->model.family, "cifar");
  EXPECT_EQ(as_cifar->model.depth, 14);
}
