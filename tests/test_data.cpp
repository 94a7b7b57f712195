// CIFAR-10 reading, splits and the paper's augmentation.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <fstream>

#include "data/batches.h"
#include "data/cifar10.h"
#include "test_support.h"
#include "util/errors.h"

using namespace resnet;
using resnet::testing::TempDir;

namespace {

// Expects `fn` to throw an InputError whose message contains `text`.
template <typename Fn>
void expect_input_error(Fn fn, const std::string& text) {
  try {
    fn();
    FAIL() << "no error; expected one mentioning " << text;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
  }
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

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
  EXPECT_EQ(std::get<0>(at::_unique(epoch0)).numel(), 96);  // no repeats within an epoch
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
