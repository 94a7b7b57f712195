#pragma once
// Training batches from a dataset resident on the training device, made with whole-batch
// tensor ops: no per-sample loops, no DataLoader, no worker threads fighting the model for cores.
//
// Everything random is a pure function of (seed, epoch): the epoch's permutation, each image's
// crop offset and flip. So the data order needs no saved state: resuming at step s replays
// exactly the batches a straight run would have seen.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <string>

#include "data/cifar10.h"

namespace resnet {

// x_normalised = (x / 255 - mean) / std
struct Normalizer {
  at::Tensor mean;  // float [1, 3, 1, 1] (per channel) or [1, 3, 32, 32] (per pixel)
  at::Tensor std;   // float [1, 3, 1, 1] (per channel) or ones [1, 1, 1, 1] (per pixel)

  // images: uint8 [B, 3, 32, 32] -> float [B, 3, 32, 32] on the images' device
  at::Tensor operator()(const at::Tensor& images) const;
  Normalizer to(const c10::Device& device) const;
};

// "channel": mean/std per channel (the usual choice); "pixel": the paper's per-pixel mean
// subtraction (He et al. §4.2), no scaling.
Normalizer fit_normalizer(const at::Tensor& images, const std::string& mode);

// data.mean / data.std (validated: three values each) as a per-channel Normalizer.
Normalizer explicit_normalizer(const DataConfig& data);
// What a new run normalises with: data.mean / data.std when set, else fitted on `train_images`
// (uint8 [N, 3, 32, 32]) per data.normalize.
Normalizer make_normalizer(const at::Tensor& train_images, const DataConfig& data);

// The paper's augmentation (§4.2, after Lee et al.): pad 4 zero pixels on each side, take the
// 32x32 crop at `offsets` (int64 [B, 2]: row, col in 0..8), mirror where `flips` (bool [B]).
// One gather over the padded batch does crop and flip together.
// images: uint8 [B, 3, 32, 32] -> uint8 [B, 3, 32, 32]
at::Tensor crop_flip(const at::Tensor& images, const at::Tensor& offsets, const at::Tensor& flips);

struct Batch {
  at::Tensor images;  // float [B, 3, 32, 32], normalised, on the device
  at::Tensor labels;  // int64 [B]
};

// Which part of every batch this process takes in data-parallel training: rank r of n takes
// positions [r * B/n, (r+1) * B/n) of the global batch B. The epoch's plan (order, crops, flips)
// is the same on every rank, so the ranks' parts of step k together are exactly the batch a single
// process trains on at step k.
struct Shard {
  int rank = 0;
  int count = 1;
};

class BatchSource {
 public:
  // `set` is moved to `device` once. Each epoch uses floor(N / batch) full batches of the global
  // `batch_size`; this process gets its shard of each (InputError unless the ranks divide it).
  BatchSource(const ImageSet& set, Normalizer normalizer, int64_t batch_size, bool augment, uint64_t seed,
              const c10::Device& device, Shard shard = {});

  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  int64_t size() const { return images_.size(0); }
  int64_t batch_size() const { return batch_size_ / shard_.count; }  // this process's part
  int64_t global_batch_size() const { return batch_size_; }
  // The batch of global step `step` (0-based).
  Batch batch(int64_t step);
  // Writes the batch of `step` into existing tensors (the captured inputs of a CUDA graph).
  void batch_into(int64_t step, at::Tensor& images, at::Tensor& labels);

 private:
  void plan_epoch(int64_t epoch);
  // Where this process's part of `step`'s batch starts in the epoch's plan (plans the epoch).
  int64_t start_of(int64_t step);
  at::Tensor images_u8(int64_t step);

  at::Tensor images_;  // uint8 [N, 3, 32, 32] on device
  at::Tensor labels_;  // int64 [N] on device
  Normalizer normalizer_;
  int64_t batch_size_;
  bool augment_;
  uint64_t seed_;
  c10::Device device_;
  Shard shard_;
  int64_t steps_per_epoch_;
  int64_t planned_epoch_ = -1;
  at::Tensor order_;    // int64 [steps_per_epoch * B]: this epoch's permutation
  at::Tensor offsets_;  // int64 [steps_per_epoch * B, 2]
  at::Tensor flips_;    // bool  [steps_per_epoch * B]
};

}  // namespace resnet
