// CIFAR-10 reading, splits and the paper's augmentation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <algorithm>
#include <fstream>
#include <set>

#include "data/batches.h"
#include "data/cifar10.h"
#include "test_support.h"
#include "util/errors.h"

using namespace resnet;
using resnet::testing::TempDir;

namespace {

// Expects `fn` to throw a one-line InputError whose message contains `text`.
template <typename Fn>
void expect_input_error(Fn fn, const std::string& text) {
  resnet::testing::expect_input_error(fn, "", text);
}

void write_bytes(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

}  // namespace

TEST(Cifar10Reader, SyntheticFilesRoundTrip) {
  TempDir tmp;
  ImageSet a = resnet::testing::synthetic_set(7, 1), b = resnet::testing::synthetic_set(5, 2);
  write_cifar10_file(tmp / "a.bin", a);
  write_cifar10_file(tmp / "b.bin", b);
  ImageSet r = read_cifar10_files({tmp / "a.bin", tmp / "b.bin"});
  ASSERT_EQ(r.images.sizes(), (std::vector<int64_t>{12, 3, 32, 32}));
  EXPECT_EQ(r.images.scalar_type(), at::kByte);
  EXPECT_EQ(r.labels.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(r.images, at::cat({a.images, b.images})));
  EXPECT_TRUE(at::equal(r.labels, at::cat({a.labels, b.labels})));
}

TEST(Cifar10Reader, RecordLayoutIsLabelThenRedGreenBluePlanes) {
  TempDir tmp;
  std::string record(kCifarRecordBytes, '\0');
  record[0] = 7;
  record[1 + 0 * 1024 + 5 * 32 + 3] = 11;  // R, row 5, col 3
  record[1 + 1 * 1024 + 0] = 22;           // G, row 0, col 0
  record[1 + 2 * 1024 + 1023] = 33;        // B, row 31, col 31
  write_bytes(tmp / "one.bin", record);
  ImageSet r = read_cifar10_files({tmp / "one.bin"});
  EXPECT_EQ(r.labels[0].item<int64_t>(), 7);
  EXPECT_EQ(r.images[0][0][5][3].item<int>(), 11);
  EXPECT_EQ(r.images[0][1][0][0].item<int>(), 22);
  EXPECT_EQ(r.images[0][2][31][31].item<int>(), 33);
  EXPECT_EQ(r.images.sum().item<int64_t>(), 66);
}

TEST(Cifar10Reader, TruncatedFileIsRejectedNamingIt) {
  TempDir tmp;
  write_cifar10_file(tmp / "t.bin", resnet::testing::synthetic_set(3, 1));
  std::filesystem::resize_file(tmp / "t.bin", 2 * kCifarRecordBytes + 100);
  expect_input_error([&] { read_cifar10_files({tmp / "t.bin"}); }, tmp / "t.bin");
  write_bytes(tmp / "empty.bin", "");
  expect_input_error([&] { read_cifar10_files({tmp / "empty.bin"}); }, "empty.bin: empty file");
}

TEST(Cifar10Reader, LabelOutOfRangeIsRejectedNamingFileAndRecord) {
  TempDir tmp;
  std::string bytes(2 * kCifarRecordBytes, '\1');
  bytes[kCifarRecordBytes] = 10;  // record 1
  write_bytes(tmp / "bad.bin", bytes);
  expect_input_error([&] { read_cifar10_files({tmp / "bad.bin"}); }, "bad.bin: record 1 has label 10");
}

TEST(Cifar10Folder, MissingFolderSaysHowToGetTheData) {
  expect_input_error([] { load_cifar10("/nonexistent/cifar"); }, "scripts/get_cifar10.sh");
  TempDir tmp;
  expect_input_error([&] { load_cifar10(tmp.path()); }, "data_batch_1.bin: missing");
}

TEST(Cifar10Folder, FileCutOnARecordBoundaryIsCaught) {
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp.path(), 20, 10);
  std::filesystem::resize_file(tmp / "data_batch_3.bin", 15 * kCifarRecordBytes);
  expect_input_error([&] { load_cifar10(tmp.path()); }, "data_batch_3.bin: holds 15 records");
}

TEST(Cifar10Folder, LoadsTrainTestAndClassNames) {
  TempDir tmp;
  resnet::testing::write_synthetic_cifar(tmp.path(), 20, 10);
  std::ofstream(tmp / "batches.meta.txt") << "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
  Cifar10 d = load_cifar10(tmp.path());
  EXPECT_EQ(d.train.size(), 100);
  EXPECT_EQ(d.test.size(), 10);
  EXPECT_EQ(d.class_names.front(), "a");
  EXPECT_EQ(d.class_names.back(), "j");
}

TEST(Splits, ValidationSplitIsSeededDisjointAndComplete) {
  Cifar10 d;
  d.train = resnet::testing::synthetic_set(200, 3);
  d.train.labels = at::arange(200, at::kLong);  // labels as ids, to trace images
  d.test = resnet::testing::synthetic_set(10, 4);
  DataConfig c;
  c.val_size = 50;
  c.train_limit = 150;
  Splits a = make_splits(d, c), b = make_splits(d, c);
  EXPECT_EQ(a.val.size(), 50);
  EXPECT_EQ(a.train.size(), 100);
  EXPECT_TRUE(at::equal(a.val.labels, b.val.labels));  // same seed, same split
  at::Tensor all = std::get<0>(at::cat({a.train.labels, a.val.labels}).sort());
  EXPECT_TRUE(at::equal(all, at::arange(150, at::kLong)));  // disjoint, only the first 150
  c.val_seed = 1;
  EXPECT_FALSE(at::equal(make_splits(d, c).val.labels, a.val.labels));
  c.val_size = 150;
  EXPECT_THROW(make_splits(d, c), InputError);
}

TEST(Augmentation, CropsStayInsideThePaddedImage) {
  at::Tensor images = at::randint(1, 256, {64, 3, 32, 32}, at::kLong).to(at::kByte);
  at::Tensor offsets = at::randint(0, 9, {64, 2}, at::kLong);
  at::Tensor flips = at::zeros({64}, at::kBool);
  at::Tensor out = crop_flip(images, offsets, flips);
  at::Tensor padded = at::constant_pad_nd(images, {4, 4, 4, 4}, 0);
  for (int64_t i = 0; i < 64; ++i) {
    const int64_t r = offsets[i][0].item<int64_t>(), c = offsets[i][1].item<int64_t>();
    EXPECT_TRUE(at::equal(out[i], padded[i].narrow(1, r, 32).narrow(2, c, 32))) << i;
  }
  // Offset (4, 4) is the image itself; (0, 0) shifts it down-right by 4 with zeros above/left.
  at::Tensor centre = crop_flip(images.narrow(0, 0, 1), at::full({1, 2}, 4, at::kLong), at::zeros({1}, at::kBool));
  EXPECT_TRUE(at::equal(centre, images.narrow(0, 0, 1)));
  at::Tensor corner = crop_flip(images.narrow(0, 0, 1), at::zeros({1, 2}, at::kLong), at::zeros({1}, at::kBool));
  EXPECT_EQ(corner.narrow(2, 0, 4).sum().item<int64_t>(), 0);
  EXPECT_TRUE(at::equal(corner[0].narrow(1, 4, 28).narrow(2, 4, 28), images[0].narrow(1, 0, 28).narrow(2, 0, 28)));
}

TEST(Augmentation, FlipsAreExactMirrors) {
  at::Tensor images = at::randint(0, 256, {16, 3, 32, 32}, at::kLong).to(at::kByte);
  at::Tensor offsets = at::randint(0, 9, {16, 2}, at::kLong);
  at::Tensor plain = crop_flip(images, offsets, at::zeros({16}, at::kBool));
  at::Tensor flipped = crop_flip(images, offsets, at::ones({16}, at::kBool));
  EXPECT_TRUE(at::equal(flipped, plain.flip({3})));
}

TEST(Batches, SameSeedSameBatchesAndEachEpochIsAPermutation) {
  ImageSet set = resnet::testing::synthetic_set(100, 5);
  set.labels = at::arange(100, at::kLong);
  Normalizer norm = fit_normalizer(set.images, "channel");
  BatchSource a(set, norm, 32, true, 7, at::kCPU), b(set, norm, 32, true, 7, at::kCPU),
      c(set, norm, 32, true, 8, at::kCPU);
  EXPECT_EQ(a.steps_per_epoch(), 3);
  // Read b out of order: the batch of a step never depends on what was read before.
  Batch b4 = b.batch(4), b1 = b.batch(1);
  EXPECT_TRUE(at::equal(a.batch(1).images, b1.images));
  EXPECT_TRUE(at::equal(a.batch(4).images, b4.images));
  EXPECT_FALSE(at::equal(a.batch(1).images, c.batch(1).images));
  at::Tensor epoch0 = at::cat({a.batch(0).labels, a.batch(1).labels, a.batch(2).labels});
  EXPECT_EQ(std::get<0>(at::_unique(epoch0)).numel(), 96);        // no repeats within an epoch
  EXPECT_FALSE(at::equal(a.batch(0).labels, a.batch(3).labels));  // reshuffled next epoch
}

TEST(Normalizer, ChannelStatisticsGiveZeroMeanUnitStd) {
  ImageSet set = resnet::testing::synthetic_set(200, 6);
  Normalizer n = fit_normalizer(set.images, "channel");
  at::Tensor x = n(set.images);
  at::Tensor per_channel = x.transpose(0, 1).reshape({3, -1});
  EXPECT_LT(per_channel.mean(1).abs().max().item<float>(), 1e-4);
  EXPECT_LT((per_channel.std(1) - 1).abs().max().item<float>(), 1e-3);
  Normalizer p = fit_normalizer(set.images, "pixel");
  EXPECT_EQ(p.mean.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
  EXPECT_LT(p(set.images).mean(0).abs().max().item<float>(), 1e-4);  // per-pixel mean removed
}

// data.mean / data.std (e.g. ImageNet's, which most published CIFAR weights were trained with)
// replace the fitted normaliser: (x / 255 - mean) / std with the float32 values of the constants.
TEST(Normalizer, ExplicitMeanAndStdAreUsedInsteadOfFitting) {
  ImageSet set = resnet::testing::synthetic_set(50, 3);
  DataConfig d;
  d.mean = {0.485, 0.456, 0.406};
  d.std = {0.229, 0.224, 0.225};
  const Normalizer n = make_normalizer(set.images, d);
  ASSERT_EQ(n.mean.sizes(), (std::vector<int64_t>{1, 3, 1, 1}));
  EXPECT_EQ(n.mean.scalar_type(), at::kFloat);
  const at::Tensor mean = at::tensor({0.485f, 0.456f, 0.406f}).view({1, 3, 1, 1});
  const at::Tensor std = at::tensor({0.229f, 0.224f, 0.225f}).view({1, 3, 1, 1});
  EXPECT_TRUE(at::equal(n(set.images), (set.images.to(at::kFloat) / 255 - mean) / std));
  // Without them, the fitted one (and data.normalize still chooses how).
  d.mean.clear();
  d.std.clear();
  EXPECT_TRUE(at::equal(make_normalizer(set.images, d).mean, fit_normalizer(set.images, "channel").mean));
  d.normalize = "pixel";
  EXPECT_EQ(make_normalizer(set.images, d).mean.sizes(), (std::vector<int64_t>{1, 3, 32, 32}));
}

// Without augmentation a batch is exactly the normalised source images of its step, in the
// order the labels give (labels here are the images' ids).
TEST(Batches, WithoutAugmentationBatchesAreTheNormalisedSourceImages) {
  ImageSet set = resnet::testing::synthetic_set(100, 5);
  set.labels = at::arange(100, at::kLong);
  Normalizer norm = fit_normalizer(set.images, "channel");
  BatchSource source(set, norm, 32, /*augment=*/false, 7, at::kCPU);
  for (int64_t step = 0; step < 6; ++step) {  // two epochs
    Batch b = source.batch(step);
    ASSERT_EQ(b.images.sizes(), (std::vector<int64_t>{32, 3, 32, 32}));
    EXPECT_EQ(b.images.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(b.images, norm(set.images.index_select(0, b.labels)))) << "step " << step;
  }
}

// Augmentation changes the images, and each sample of a batch gets its own crop and flip: every
// sample is one of the 9 x 9 x 2 crop/flip variants of its source image, and they are not all
// the same variant.
TEST(Batches, AugmentationCropsAndFlipsEachSampleOnItsOwn) {
  ImageSet set = resnet::testing::synthetic_set(100, 5);
  set.images = at::randint(1, 256, {100, 3, 32, 32}, at::kLong).to(at::kByte);  // no symmetric images
  set.labels = at::arange(100, at::kLong);
  Normalizer norm = fit_normalizer(set.images, "channel");
  BatchSource source(set, norm, 32, /*augment=*/true, 7, at::kCPU);
  // Every variant's offsets and flip, in one batch of 162 per image.
  at::Tensor offsets = at::empty({162, 2}, at::kLong), flips = at::empty({162}, at::kBool);
  for (int64_t v = 0; v < 162; ++v) {
    offsets[v][0] = v / 18;
    offsets[v][1] = (v / 2) % 9;
    flips[v] = v % 2 == 1;
  }
  const int64_t identity = 4 * 18 + 4 * 2;  // offset (4, 4), no flip: the image itself
  for (int64_t step = 0; step < 3; ++step) {
    Batch b = source.batch(step);
    std::vector<int64_t> variants;
    for (int64_t i = 0; i < 32; ++i) {
      const int64_t id = b.labels[i].item<int64_t>();
      at::Tensor all = norm(crop_flip(set.images[id].expand({162, 3, 32, 32}), offsets, flips));
      int64_t found = -1;
      for (int64_t v = 0; v < 162 && found < 0; ++v)
        if (at::equal(all[v], b.images[i])) found = v;
      ASSERT_GE(found, 0) << "step " << step << " sample " << i << " is no crop/flip of image " << id;
      variants.push_back(found);
    }
    // 32 draws from 162 variants give ~29 distinct ones and ~0.2 unchanged images: one variant
    // for the whole batch, or images left as they were, means augmentation is broken.
    EXPECT_GE(std::set<int64_t>(variants.begin(), variants.end()).size(), 20u) << "step " << step;
    EXPECT_LE(std::count(variants.begin(), variants.end(), identity), 2) << "step " << step;
  }
}

// The shuffle moves labels with their images: each image's pixels encode its label, and every
// batch of two epochs, with and without augmentation, decodes back to its labels.
TEST(Batches, LabelsStayWithTheirImagesThroughTheShuffle) {
  const int64_t n = 200;
  ImageSet set;
  set.labels = at::randint(0, 10, {n}, at::kLong);
  // Label y paints the image 20 * y + 30 (the padding of a crop is 0, never a label's value).
  set.images = (set.labels * 20 + 30).to(at::kByte).view({n, 1, 1, 1}).expand({n, 3, 32, 32}).contiguous();
  Normalizer norm = fit_normalizer(set.images, "channel");
  for (bool augment : {false, true}) {
    BatchSource source(set, norm, 64, augment, 11, at::kCPU);
    for (int64_t step = 0; step < 2 * source.steps_per_epoch(); ++step) {
      Batch b = source.batch(step);
      // Undo the normaliser at the centre pixel, which every crop keeps.
      at::Tensor centre = b.images.select(3, 16).select(2, 16);  // [B, 3]
      at::Tensor pixels = (centre * norm.std.view({1, 3}) + norm.mean.view({1, 3})) * 255;
      at::Tensor decoded = ((pixels - 30) / 20).round().to(at::kLong);
      EXPECT_TRUE(at::equal(decoded, b.labels.unsqueeze(1).expand({64, 3})))
          << "augment " << augment << " step " << step;
    }
  }
}
