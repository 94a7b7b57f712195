#include "data/batches.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "util/errors.h"

namespace resnet {

namespace {
constexpr int64_t kPad = 4;
constexpr int64_t kSide = 32;
constexpr int64_t kPadded = kSide + 2 * kPad;
}  // namespace

at::Tensor Normalizer::operator()(const at::Tensor& images) const {
  return (images.to(at::kFloat).div_(255.0f).sub_(mean)).div_(std);
}

Normalizer Normalizer::to(const c10::Device& device) const { return {mean.to(device), std.to(device)}; }

Normalizer fit_normalizer(const at::Tensor& images, const std::string& mode) {
  // Sums in double over chunks: a float copy of all 50,000 images would be 600 MB.
  constexpr int64_t kChunk = 4096;
  const int64_t n = images.size(0);
  at::Tensor sum = at::zeros({3, 32, 32}, at::kDouble), sum_sq = at::zeros({3, 32, 32}, at::kDouble);
  for (int64_t start = 0; start < n; start += kChunk) {
    at::Tensor x = images.narrow(0, start, std::min(kChunk, n - start)).to(at::kDouble).div_(255.0);
    sum += x.sum(0);
    sum_sq += x.mul_(x).sum(0);
  }
  if (mode == "pixel") return {(sum / n).to(at::kFloat).unsqueeze(0), at::ones({1, 1, 1, 1})};
  // Per channel over all images and pixels: [1, 3, 1, 1].
  const double count = static_cast<double>(n) * 32 * 32;
  at::Tensor mean = sum.sum({1, 2}) / count;
  at::Tensor var = (sum_sq.sum({1, 2}) - mean * mean * count) / (count - 1);  // unbiased, like std()
  return {mean.to(at::kFloat).view({1, 3, 1, 1}), var.sqrt().to(at::kFloat).view({1, 3, 1, 1})};
}

at::Tensor crop_flip(const at::Tensor& images, const at::Tensor& offsets, const at::Tensor& flips) {
  const int64_t b = images.size(0);
  const auto opts = offsets.options();
  at::Tensor padded = at::constant_pad_nd(images, {kPad, kPad, kPad, kPad}, 0);  // [B, 3, 40, 40]
  at::Tensor ramp = at::arange(kSide, opts);                                     // [32]
  at::Tensor rows = offsets.select(1, 0).unsqueeze(1) + ramp;                    // [B, 32]
  at::Tensor cols =
      offsets.select(1, 1).unsqueeze(1) + at::where(flips.unsqueeze(1), (kSide - 1) - ramp, ramp);  // [B, 32], mirrored
  // Flat index into padded: ((b * 3 + c) * 40 + row) * 40 + col, broadcast to [B, 3, 32, 32].
  at::Tensor plane = (at::arange(b, opts).unsqueeze(1) * 3 + at::arange(3, opts)) * (kPadded * kPadded);
  at::Tensor index = plane.view({b, 3, 1, 1}) + rows.view({b, 1, kSide, 1}) * kPadded + cols.view({b, 1, 1, kSide});
  return padded.take(index);
}

Normalizer explicit_normalizer(const DataConfig& data) {
  if (data.mean.size() != 3 || data.std.size() != 3)
    throw std::invalid_argument("explicit_normalizer: data.mean/data.std need 3 values each");
  // float32 values of the decimal constants, as torchvision's Normalize holds them.
  return {at::tensor(data.mean, at::kDouble).to(at::kFloat).view({1, 3, 1, 1}),
          at::tensor(data.std, at::kDouble).to(at::kFloat).view({1, 3, 1, 1})};
}

Normalizer make_normalizer(const at::Tensor& train_images, const DataConfig& data) {
  if (!data.mean.empty()) return explicit_normalizer(data);
  return fit_normalizer(train_images, data.normalize);
}

BatchSource::BatchSource(const ImageSet& set, Normalizer normalizer, int64_t batch_size, bool augment, uint64_t seed,
                         const c10::Device& device, Shard shard)
    : images_(set.images.to(device)),
      labels_(set.labels.to(device)),
      normalizer_(normalizer.to(device)),
      batch_size_(batch_size),
      augment_(augment),
      seed_(seed),
      device_(device),
      shard_(shard),
      steps_per_epoch_(set.size() / batch_size) {
  if (shard_.count < 1 || shard_.rank < 0 || shard_.rank >= shard_.count)
    throw std::invalid_argument("BatchSource: bad shard");
  if (batch_size % shard_.count != 0)
    throw InputError("train.batch_size: " + std::to_string(batch_size) +
                     " is the global batch and must divide "
                     "evenly among the " +
                     std::to_string(shard_.count) + " ranks");
  if (steps_per_epoch_ == 0)
    throw InputError("train.batch_size: " + std::to_string(batch_size) + " is larger than the " +
                     std::to_string(set.size()) + " training images");
}

void BatchSource::plan_epoch(int64_t epoch) {
  if (epoch == planned_epoch_) return;
  // One generator per epoch, seeded from (seed, epoch): random numbers are drawn on the CPU
  // (identical on every device) and moved in one copy per epoch.
  at::Generator gen = at::detail::createCPUGenerator(seed_ * 1000003ULL + static_cast<uint64_t>(epoch) + 1);
  const int64_t n = images_.size(0);
  const int64_t used = steps_per_epoch_ * batch_size_;
  order_ = at::randperm(n, gen, at::kLong).narrow(0, 0, used).to(device_);
  offsets_ = at::randint(0, 2 * kPad + 1, {used, 2}, gen, at::kLong).to(device_);
  flips_ = (at::randint(0, 2, {used}, gen, at::kLong) == 1).to(device_);
  planned_epoch_ = epoch;
}

int64_t BatchSource::start_of(int64_t step) {
  plan_epoch(step / steps_per_epoch_);
  return (step % steps_per_epoch_) * batch_size_ + shard_.rank * batch_size();
}

at::Tensor BatchSource::images_u8(int64_t step) {
  const int64_t start = start_of(step), n = batch_size();
  at::Tensor images = images_.index_select(0, order_.narrow(0, start, n));
  if (!augment_) return images;
  return crop_flip(images, offsets_.narrow(0, start, n), flips_.narrow(0, start, n));
}

Batch BatchSource::batch(int64_t step) {
  at::Tensor images = normalizer_(images_u8(step));
  return {images, labels_.index_select(0, order_.narrow(0, start_of(step), batch_size()))};
}

void BatchSource::batch_into(int64_t step, at::Tensor& images, at::Tensor& labels) {
  Batch b = batch(step);
  images.copy_(b.images);
  labels.copy_(b.labels);
}

}  // namespace resnet
