// The model zoo against the claims of He et al. 2015/2016 and torchvision's counts.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <tuple>

#include "interop/state_dict.h"
#include "models/resnet.h"
#include "util/errors.h"

using namespace resnet;

namespace {

ModelConfig cifar(int depth, bool residual = true, std::string shortcut = "auto") {
  ModelConfig m;
  m.family = "cifar";
  m.depth = depth;
  m.residual = residual;
  m.shortcut = std::move(shortcut);
  return m;
}

ModelConfig imagenet(int depth, std::string stem, int classes) {
  ModelConfig m;
  m.family = "imagenet";
  m.depth = depth;
  m.stem = std::move(stem);
  m.num_classes = classes;
  return m;
}

int64_t params(const ModelConfig& m) { return count_parameters(*make_model(m)); }

// A block's options by name: `in` channels in, `planes` wide, stride 1, shortcut A.
BlockOptions block_options(int64_t in, int64_t planes, bool residual, bool preact) {
  BlockOptions o;
  o.in_channels = in;
  o.planes = planes;
  o.residual = residual;
  o.preact = preact;
  return o;
}

// Every family x residual/plain x shortcut A/B/C x post/pre-activation, basic and bottleneck,
// both stems: each place a BN, a projection or a ReLU can sit.
std::vector<ModelConfig> every_layout() {
  std::vector<ModelConfig> configs;
  for (bool residual : {true, false})
    for (std::string s : {"A", "B", "C"})
      for (bool preact : {false, true}) {
        ModelConfig m = cifar(20, residual, s);
        m.preact = preact;
        configs.push_back(m);
        ModelConfig bottleneck = cifar(11, residual, s);  // 9n+2, n = 1
        bottleneck.block = "bottleneck";
        bottleneck.preact = preact;
        configs.push_back(bottleneck);
        for (auto [depth, stem, classes] : {std::tuple{18, "cifar", 7}, std::tuple{50, "imagenet", 5}}) {
          ModelConfig in = imagenet(depth, stem, classes);
          in.residual = residual;
          in.shortcut = s;
          in.preact = preact;
          configs.push_back(in);
        }
      }
  return configs;
}

}  // namespace

// He et al. Table 6 lists 0.27M ... 19.4M; these are the exact counts for option A, 10 classes.
TEST(ParameterCounts, CifarResNetsMatchThePaperAndPlainTwinsMatchThem) {
  const std::vector<std::pair<int, int64_t>> expected = {{20, 269722}, {32, 464154},   {44, 658586},
                                                         {56, 853018}, {110, 1727962}, {1202, 19421274}};
  for (const auto& [depth, count] : expected) {
    EXPECT_EQ(params(cifar(depth, true)), count) << "ResNet-" << depth;
    EXPECT_EQ(params(cifar(depth, false)), count) << "plain-" << depth;
  }
}

TEST(ParameterCounts, ImageNetFamilyMatchesTorchvision) {
  const std::vector<std::pair<int, int64_t>> expected = {
      {18, 11689512}, {34, 21797672}, {50, 25557032}, {101, 44549160}, {152, 60192808}};
  for (const auto& [depth, count] : expected)
    EXPECT_EQ(params(imagenet(depth, "imagenet", 1000)), count) << "ResNet-" << depth;
}

TEST(ParameterCounts, ImageNetFamilyWithCifarStem) {
  const std::vector<std::pair<int, int64_t>> expected = {
      {18, 11173962}, {34, 21282122}, {50, 23520842}, {101, 42512970}, {152, 58156618}};
  for (const auto& [depth, count] : expected)
    EXPECT_EQ(params(imagenet(depth, "cifar", 10)), count) << "ResNet-" << depth;
}

// Zagoruyko & Komodakis 2016, Table 1: WRN-16-4 has 2.7M parameters, WRN-28-10 36.5M (exactly
// their code's counts); declared (models/layout.h) and built alike.
TEST(ParameterCounts, WideResNetsMatchZagoruykoAndKomodakis) {
  for (const auto& [depth, width, count] :
       {std::tuple{16, 4, int64_t{2748890}}, std::tuple{28, 10, int64_t{36479194}}}) {
    ModelConfig m;
    m.family = "wide";
    m.depth = depth;
    m.width = width;
    validate_model(m);
    EXPECT_EQ(m.preact, std::optional<bool>(true));  // the family's choices
    EXPECT_EQ(m.shortcut, "B");
    EXPECT_EQ(network_size(m).parameters, count) << model_name(m);
    EXPECT_EQ(params(m), count) << model_name(m);
  }
}

// The wide family's rules: depth 6n+4, basic pre-activation blocks, the cifar stem, a width only there.
TEST(Depth, TheWideFamilysRulesAreErrorsNamingTheKey) {
  auto refused = [](ModelConfig m, const std::string& key) {
    try {
      validate_model(m);
      ADD_FAILURE() << key << " accepted";
    } catch (const InputError& e) {
      EXPECT_EQ(std::string(e.what()).rfind(key, 0), 0u) << e.what();
    }
  };
  ModelConfig w;
  w.family = "wide";
  w.depth = 28;
  w.width = 10;
  for (int depth : {26, 27, 4}) {
    ModelConfig m = w;
    m.depth = depth;
    refused(m, "model.depth: " + std::to_string(depth) + " is not a WRN depth");
  }
  ModelConfig m = w;
  m.preact = false;
  refused(m, "model.preact");
  m = w;
  m.block = "bottleneck";
  refused(m, "model.block");
  m = w;
  m.stem = "imagenet";
  refused(m, "model.stem");
  ModelConfig narrow = cifar(20);
  narrow.width = 2;
  refused(narrow, "model.width");
}

TEST(Shortcuts, OptionAHasNoParametersAndBCAddExactlyTheProjections) {
  // ResNet-20: shape changes at the first block of stages 2 (16->32) and 3 (32->64).
  const int64_t a = params(cifar(20, true, "A"));
  const int64_t b = params(cifar(20, true, "B"));
  const int64_t c = params(cifar(20, true, "C"));
  auto projection = [](int64_t in, int64_t out) { return in * out + 2 * out; };  // 1x1 conv + BN
  EXPECT_EQ(b - a, projection(16, 32) + projection(32, 64));
  // C: a projection on all 9 blocks.
  EXPECT_EQ(c - a, 3 * projection(16, 16) + projection(16, 32) + 2 * projection(32, 32) + projection(32, 64) +
                       2 * projection(64, 64));
  // Plain nets have no shortcut at all, whatever the option.
  EXPECT_EQ(params(cifar(20, false, "B")), a);
  EXPECT_EQ(params(cifar(20, false, "C")), a);
  auto model = make_model(cifar(20, true, "A"));
  for (const auto& block : model->blocks()) EXPECT_FALSE(block->has_projection());
}

// Option A's zero channels after x (ours) or split around it (akamaster's code): the identity
// channels sit where the trained weights expect them.
TEST(Shortcuts, OptionAPaddingPutsTheZerosAfterOrAroundTheIdentityChannels) {
  using torch::indexing::Slice;
  const auto x = torch::randn({2, 16, 8, 8}) + 1;  // no zeros of its own
  const auto sub = x.index({Slice(), Slice(), Slice(0, c10::nullopt, 2), Slice(0, c10::nullopt, 2)});
  const auto after = option_a_shortcut(x, 2, 32, /*split=*/false);
  const auto split = option_a_shortcut(x, 2, 32, /*split=*/true);
  ASSERT_EQ(after.sizes(), (std::vector<int64_t>{2, 32, 4, 4}));
  ASSERT_EQ(split.sizes(), after.sizes());
  EXPECT_TRUE(torch::equal(after.narrow(1, 0, 16), sub));
  EXPECT_EQ(after.narrow(1, 16, 16).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(split.narrow(1, 0, 8).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(split.narrow(1, 8, 16), sub));
  EXPECT_EQ(split.narrow(1, 24, 8).abs().sum().item<float>(), 0.0f);
  // An odd number of new channels: the extra one goes after.
  const auto odd = option_a_shortcut(x, 1, 19, true);
  EXPECT_EQ(odd.narrow(1, 0, 1).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(odd.narrow(1, 1, 16), x));
  EXPECT_EQ(odd.narrow(1, 17, 2).abs().sum().item<float>(), 0.0f);

  // Same parameters, different function: a net trained with one layout is another net with the other.
  torch::NoGradGuard no_grad;
  ModelConfig m = cifar(20);
  auto a = make_model(m);
  m.option_a_padding = "split";
  auto b = make_model(m);
  EXPECT_EQ(count_parameters(*a), count_parameters(*b));
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& item : pa) pb[item.key()].copy_(item.value());
  a->eval();
  b->eval();
  const auto images = torch::randn({2, 3, 32, 32});
  EXPECT_FALSE(torch::allclose(a->forward(images), b->forward(images)));
}

TEST(Shapes, EveryFamilyAndOptionGivesLogits) {
  torch::NoGradGuard no_grad;
  for (const auto& m : every_layout()) {
    auto model = make_model(m);
    model->eval();
    const int64_t side = m.stem == "imagenet" ? 64 : 32;
    auto y = model->forward(torch::randn({2, 3, side, side}));
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, m.num_classes}))
        << m.family << m.depth << " shortcut " << m.shortcut << " preact " << m.preact.value_or(false);
  }
}

TEST(Shapes, CifarStagesHalveTheMapAndDoubleTheFilters) {
  struct StageShapes : ForwardRecorder {
    std::vector<std::vector<int64_t>> shapes;
    void on_stage(int, const at::Tensor& out) override { shapes.push_back(out.sizes().vec()); }
  } rec;
  auto model = make_model(cifar(20));
  model->forward(torch::randn({2, 3, 32, 32}), &rec);
  ASSERT_EQ(rec.shapes.size(), 4u);
  EXPECT_EQ(rec.shapes[0], (std::vector<int64_t>{2, 16, 32, 32}));
  EXPECT_EQ(rec.shapes[1], (std::vector<int64_t>{2, 16, 32, 32}));
  EXPECT_EQ(rec.shapes[2], (std::vector<int64_t>{2, 32, 16, 16}));
  EXPECT_EQ(rec.shapes[3], (std::vector<int64_t>{2, 64, 8, 8}));
}

TEST(Depth, InvalidDepthsAreErrorsNamingTheKey) {
  for (int depth : {0, 8 + 1, 21, 1000}) {
    try {
      make_model(cifar(depth));
      FAIL() << "depth " << depth << " accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("model.depth"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(make_model(imagenet(19, "imagenet", 10)), InputError);
  // Depth 164 and 1001 are 9n+2 with bottleneck blocks (He et al. 2016).
  ModelConfig m = cifar(164);
  m.block = "bottleneck";
  m.preact = true;
  EXPECT_EQ(make_model(m)->blocks().size(), 54u);
  m.depth = 1001;
  m.block = "basic";
  EXPECT_THROW(make_model(m), InputError);  // 999 is not 6n
}

TEST(ZeroBranch, PostActivationBlockReturnsReluOfInput) {
  torch::NoGradGuard no_grad;
  BlockOptions o;
  o.in_channels = o.planes = 8;
  BasicBlock block(o);
  block->bn2->weight.zero_();  // last BN gamma = 0 -> F(x) = beta = 0
  block->eval();
  auto x = torch::randn({3, 8, 6, 6});
  EXPECT_TRUE(torch::equal(block->forward(x), torch::relu(x)));

  Bottleneck bottleneck(block_options(32, 8, true, false));
  bottleneck->bn3->weight.zero_();
  bottleneck->eval();
  auto x2 = torch::randn({3, 32, 6, 6});
  EXPECT_TRUE(torch::equal(bottleneck->forward(x2), torch::relu(x2)));
}

TEST(ZeroBranch, PreActivationBlockIsTheIdentity) {
  torch::NoGradGuard no_grad;
  BasicBlock block(block_options(8, 8, true, true));
  block->bn2->weight.zero_();
  block->eval();
  auto x = torch::randn({3, 8, 6, 6});
  EXPECT_TRUE(torch::equal(block->forward(x), x));

  Bottleneck bottleneck(block_options(32, 8, true, true));
  bottleneck->bn3->weight.zero_();
  bottleneck->eval();
  auto x2 = torch::randn({3, 32, 6, 6});
  EXPECT_TRUE(torch::equal(bottleneck->forward(x2), x2));
}

TEST(ZeroBranch, ZeroInitResidualZeroesEveryBranch) {
  ModelConfig m = cifar(20);
  m.zero_init_residual = true;
  auto model = make_model(m);
  for (const auto& block : model->blocks()) EXPECT_EQ(block->last_branch_bn()->weight.abs().sum().item<float>(), 0.0f);
}

// dL/dx = dL/dy * (dF/dx + 1): with F = 0 the gradient passes the block untouched
// (masked by the final ReLU); a plain block with the same zeroed layer passes nothing.
TEST(GradientHighway, ResidualBlockPassesGradientPlainTwinBlocksIt) {
  for (bool residual : {true, false}) {
    BlockOptions o = block_options(8, 8, residual, false);
    BasicBlock block(o);
    {
      torch::NoGradGuard no_grad;
      block->bn2->weight.zero_();
    }
    block->train();
    auto x = torch::randn({4, 8, 6, 6}, torch::requires_grad());
    auto y = block->forward(x);
    auto dy = torch::randn_like(y);
    y.backward(dy);
    if (residual) {
      auto expected = dy * (x > 0).to(dy.dtype());
      EXPECT_TRUE(torch::allclose(x.grad(), expected, 1e-6, 1e-7));
    } else {
      EXPECT_EQ(x.grad().abs().max().item<float>(), 0.0f);
    }
  }
}

TEST(GradientHighway, PreActivationIdentityPathPassesGradientUnchanged) {
  BasicBlock block(block_options(8, 8, true, true));
  {
    torch::NoGradGuard no_grad;
    block->bn2->weight.zero_();
  }
  auto x = torch::randn({4, 8, 6, 6}, torch::requires_grad());
  auto y = block->forward(x);
  auto dy = torch::randn_like(y);
  y.backward(dy);
  EXPECT_TRUE(torch::allclose(x.grad(), dy, 1e-6, 1e-7));
}

TEST(Lesion, DeletedResidualBlockBecomesItsShortcut) {
  torch::NoGradGuard no_grad;
  auto model = make_model(cifar(20));
  model->eval();
  auto x = torch::randn({2, 3, 32, 32});
  auto base = model->forward(x);
  model->set_lesioned({4});
  auto lesioned = model->forward(x);
  EXPECT_EQ(lesioned.sizes(), base.sizes());
  EXPECT_FALSE(torch::equal(lesioned, base));
  model->set_lesioned({});
  EXPECT_TRUE(torch::equal(model->forward(x), base));
}

TEST(Initialisation, ConvsAreHeNormalAndBatchNormIsOneZero) {
  auto model = make_model(cifar(56));
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor& p = item.value();
    if (name.find("conv") != std::string::npos && p.dim() == 4) {
      const double fan_out = p.size(0) * p.size(2) * p.size(3);
      const double expected = std::sqrt(2.0 / fan_out);
      if (p.numel() > 4000) EXPECT_NEAR(p.std().item<double>(), expected, 0.1 * expected) << name;
    }
    if (name.find("bn") != std::string::npos && name.find("weight") != std::string::npos)
      EXPECT_TRUE(torch::all(p == 1).item<bool>()) << name;
    if (name.find("bn") != std::string::npos && name.find("bias") != std::string::npos)
      EXPECT_TRUE(torch::all(p == 0).item<bool>()) << name;
  }
}

namespace {

// Gives every BN non-trivial statistics and affine parameters, so folding has work to do.
void randomise_batchnorms(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (auto& m : model.modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2dImpl>()) {
      bn->running_mean.normal_(0, 0.5);
      bn->running_var.uniform_(0.5, 2.0);
      bn->weight.uniform_(0.5, 1.5);
      bn->bias.normal_(0, 0.5);
    }
  }
}

}  // namespace

// Evaluation folds each BN into the conv before it: same logits as the real eval-mode layers,
// for every layout that has BNs in different places; training mode never sees the folds.
TEST(FoldedEval, MatchesTheUnfoldedEvalForwardForEveryLayout) {
  // ResNet-50 would add only size (cifar-11 has the bottlenecks); a ResNet-18 brings the 7x7 stem.
  std::vector<ModelConfig> configs;
  for (const auto& m : every_layout())
    if (m.depth != 50) configs.push_back(m);
  for (bool preact : {false, true}) {
    ModelConfig stem = imagenet(18, "imagenet", 5);
    stem.preact = preact;
    configs.push_back(stem);
  }
  for (bool channels_last : {false, true}) {
    for (const auto& m : configs) {
      const std::string what = m.family + std::to_string(m.depth) + " residual " + std::to_string(m.residual) +
                               " shortcut " + m.shortcut + " preact " + std::to_string(m.preact.value_or(false)) +
                               " channels_last " + std::to_string(channels_last);
      torch::manual_seed(1);
      auto model = make_model(m);
      randomise_batchnorms(*model);
      if (channels_last) to_channels_last(*model);
      auto x = torch::randn({4, 3, 32, 32});
      if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
      torch::NoGradGuard no_grad;
      model->eval();
      const auto reference = model->forward(x);
      model->train();
      at::Tensor folded;
      {
        FoldedEval scope(*model);
        EXPECT_FALSE(model->is_training()) << what;
        folded = model->forward(x);
        model->set_lesioned({1});  // a lesioned block with a projection uses the folded one
        auto lesioned = model->forward(x);
        model->set_lesioned({});
        model->set_folded(false);
        model->set_lesioned({1});
        EXPECT_TRUE(torch::allclose(lesioned, model->forward(x), 1e-4, 1e-4)) << what << " (lesioned)";
        model->set_lesioned({});
        model->set_folded(true);
      }
      EXPECT_TRUE(model->is_training()) << what;  // the scope restores the mode
      EXPECT_TRUE(torch::allclose(folded, reference, 1e-4, 1e-4))
          << what << ": max difference " << (folded - reference).abs().max().item<double>();
      // After the scope the real BNs run again: new statistics change the eval output.
      randomise_batchnorms(*model);
      model->eval();
      EXPECT_FALSE(torch::allclose(model->forward(x), reference, 1e-3, 1e-3)) << what;
    }
  }
}

// Folds are an eval-mode device: a model put back into training mode inside the scope runs its
// real BNs (batch statistics), exactly as without folds.
TEST(FoldedEval, TrainingModeIgnoresTheFolds) {
  torch::manual_seed(2);
  auto model = make_model(cifar(20, true, "B"));
  randomise_batchnorms(*model);
  auto x = torch::randn({8, 3, 32, 32});
  torch::NoGradGuard no_grad;
  model->train();
  // Training forwards update running statistics; compare on copies of the same state.
  std::stringstream saved;
  torch::save(model, saved);
  const auto plain = model->forward(x);
  torch::load(model, saved);
  FoldedEval scope(*model);
  model->train();
  EXPECT_TRUE(torch::equal(model->forward(x), plain));
}

// The layout (models/layout.h) is the network before it exists: every family and option builds
// exactly the tensors it lists, in its order, and it counts their parameters and values.
TEST(Layout, StateShapesAreTheBuiltModelsStateEntryByEntry) {
  for (ModelConfig m : every_layout()) {
    validate_model(m);
    const std::string what = model_name(m) + " shortcut " + m.shortcut;
    auto model = make_model(m);
    const auto declared = state_shapes(network_layout(m));
    const NamedTensors built = model_state(*model);
    ASSERT_EQ(declared.size(), built.size()) << what;
    int64_t parameters = 0, values = 0;
    for (size_t i = 0; i < built.size(); ++i) {
      EXPECT_EQ(declared[i].name, built[i].first) << what;
      EXPECT_EQ(declared[i].shape, built[i].second.sizes().vec()) << what << " " << built[i].first;
      EXPECT_EQ(declared[i].integer, !built[i].second.is_floating_point()) << what << " " << built[i].first;
      if (declared[i].parameter) parameters += declared[i].numel();
      if (!declared[i].integer) values += declared[i].numel();
    }
    const NetworkSize size = network_size(m);
    EXPECT_EQ(parameters, count_parameters(*model)) << what;
    EXPECT_EQ(size.parameters, count_parameters(*model)) << what;
    EXPECT_EQ(size.state_values, values) << what;
  }
}

// The activation estimate is three values per conv output of one 32x32 image (conv, BN, ReLU):
// the recorder sees every conv's response, stem included, in the real forward pass.
TEST(Layout, ActivationEstimateCountsEveryConvOutput) {
  struct Responses : ForwardRecorder {
    int64_t values = 0;
    void on_layer(const std::string&, const at::Tensor& r) override { values += r.numel(); }
  };
  for (ModelConfig m : {cifar(20), cifar(11, true, "B"), imagenet(18, "imagenet", 10), imagenet(50, "cifar", 10)}) {
    if (m.depth == 11) m.block = "bottleneck";
    validate_model(m);
    Responses rec;
    torch::NoGradGuard no_grad;
    auto model = make_model(m);
    model->eval();
    model->forward(torch::randn({1, 3, 32, 32}), &rec);
    EXPECT_EQ(network_size(m).activation_values_per_image, 3 * rec.values) << model_name(m);
  }
}

// Sizes come from the stages, not from a list of blocks: an absurd depth is sized at once (and
// saturates instead of wrapping), so the bounds can refuse it before anything is allocated.
TEST(Layout, AbsurdNetsAreSizedWithoutBeingListed) {
  ModelConfig m = cifar(1200002);
  m.allow_large = true;
  validate_model(m);
  const NetworkSize size = network_size(m);
  EXPECT_GT(size.parameters, 200000 * int64_t{9} * 16 * 16);  // 200,000 blocks a stage
  m.width = 1;
  m.num_classes = 2000000000;
  EXPECT_GT(network_size(m).parameters, int64_t{2000000000} * 64);
}
