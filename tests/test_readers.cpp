// The readers every user file goes through (serialize/: the restricted unpickler, the zip reader,
// safetensors): each bound on sizes, offsets and strides is crossed by one input and refused
// with one line before anything is allocated from it. The inputs are the fuzz seeds that
// tests/fuzz/make_bound_seeds.py writes into tests/fuzz/corpus/.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "interop/weights_file.h"
#include "serialize/unpickler.h"
#include "test_support.h"
#include "train/checkpoint.h"
#include "util/errors.h"

using namespace resnet;
using resnet::testing::expect_input_error;

namespace {

const std::string kCorpus = RESNET_SOURCE_DIR "/tests/fuzz/corpus/";

}  // namespace

TEST(Readers, EachBoundIsRefusedByName) {
  const std::vector<std::pair<std::string, std::string>> weights = {
      {"bound_view_past_end.pt", "a tensor view past the end of storage 0"},
      {"bound_negative_offset.pt", "a negative storage offset"},
      {"bound_stride_overflows.pt", "a tensor view whose strides overflow"},
      {"bound_size_overflows.pt", "a tensor size that overflows"},
      {"bound_many_views.pt", "tensors that view their storages many times over"},
      {"bound_storage_bytes_overflow.pt", "storages of more than"},
      {"bound_deflate_ratio.pt", "more than deflate can produce"},
      {"bound_numel_wraps.safetensors", "is too large"},
      {"bound_overlap.safetensors", "overlap another tensor's"},
  };
  for (const auto& [name, needle] : weights) {
    const std::string path = kCorpus + "weights/" + name;
    expect_input_error([&] { read_weights(path); }, path + ": ", needle);
  }
  const std::string ckpt = kCorpus + "checkpoint/bound_numel_wraps.ckpt";
  expect_input_error([&] { CheckpointReader r(ckpt); }, ckpt + ": ", "is too large");
}

// Deflated records are read (inflated to exactly their size, CRC checked), only not beyond bounds.
TEST(Readers, AnHonestDeflatedRecordIsRead) {
  const WeightsFile f = read_weights(kCorpus + "weights/deflated_ok.pt");
  ASSERT_EQ(f.tensors.size(), 1u);
  EXPECT_TRUE(at::equal(f.tensors[0].second, at::arange(1, 5, at::kFloat)));
}

// The pickle machine itself: what the picklers write passes; structural damage is refused with
// the byte and the reason.
TEST(Readers, UnpicklerRefusesStructuralDamage) {
  using pickle::Rules;
  // (PROTO 2) MARK BININT1 1 BINUNICODE "ab" TUPLE BINPUT 0 BINGET 0 TUPLE2 STOP
  const std::string ok = std::string("\x80\x02(K\x01X\x02\x00\x00\x00" "abtq\x00h\x00\x86.", 19);
  const pickle::Pickle p = pickle::unpickle(ok, Rules{});
  ASSERT_EQ(p.root().kind, pickle::Value::kTuple);
  EXPECT_EQ(p.root().items.size(), 2u);
  auto refused = [](const std::string& bytes, const std::string& needle, const Rules& rules = Rules{}) {
    expect_input_error([&] { pickle::unpickle(bytes, rules); }, "data.pkl: ", needle);
  };
  refused(std::string("\x80\x02h\x05.", 5), "memo key 5 was never stored");
  refused(std::string("\x80\x02K\x01\x86.", 6), "stack underflow");
  refused(std::string("\x80\x02K\x01.K", 6), "1 bytes after STOP");
  refused(std::string("\x80\x02K\x01K\x02.", 7), "objects left on the stack at STOP");
  refused(std::string("\x80\x02X\xff\x00\x00\x00" "ab", 9), "truncated");
  refused(std::string("\x80\x02K\x01", 4), "truncated");
  refused("\x80\x02" "cos\nsystem\n)R.", "refers to os.system");
  refused(std::string("\x80\x02(K\x01K\x02K\x03}(K\x01u.", 15), "odd number");
  refused("\x80\x02" "c__torch__\nModule\n)\x81}b.", "refers to __torch__.Module");
  refused(std::string("\x80\x02\x01.", 4), "opcode 0x01");
  // TorchScript objects, only where allowed, and only built once from a dict.
  Rules ts;
  ts.torchscript_classes = {"__torch__.Module"};
  const std::string module = "\x80\x02" "c__torch__\nModule\n)\x81";
  const pickle::Pickle obj = pickle::unpickle(module + std::string("}(X\x01\x00\x00\x00" "aK\x07ub.", 13), ts);
  ASSERT_EQ(obj.root().kind, pickle::Value::kObject);
  EXPECT_EQ(obj.find(obj.at(obj.root().items[0]), "a")->i, 7);
  refused(module + "K\x01" "b.", "an object whose state is an integer", ts);
  refused(module + "}b}b.", "an object built twice", ts);
  refused("\x80\x02" "c__torch__\nEvil\n)\x81}b.", "refers to __torch__.Evil", ts);
  refused(module + "K\x01\x85\x81.", "NEWOBJ of an object", ts);
}

// torch.save's legacy format (made by PyTorch itself, tests/fuzz/make_legacy_seeds.py): read by
// the restricted unpickler, with the values PyTorch saved; damage is one line naming the file.
TEST(Readers, LegacyTorchSaveFiles) {
  for (const char* name : {"legacy_ok.pt", "legacy_wrapped_ok.pt", "legacy_cuda_ok.pt"}) {
    SCOPED_TRACE(name);
    const WeightsFile f = read_weights(kCorpus + "weights/" + name);
    ASSERT_EQ(f.tensors.size(), 3u);
    EXPECT_EQ(f.tensors[0].first, "w");
    EXPECT_TRUE(at::equal(f.tensors[0].second, at::arange(6, at::kFloat).view({2, 3})));
    EXPECT_EQ(f.tensors[1].first, "b");  // a view into the middle of its storage
    EXPECT_TRUE(at::equal(f.tensors[1].second, at::arange(1, 3, at::kFloat)));
    EXPECT_EQ(f.tensors[2].second.scalar_type(), at::kLong);
    EXPECT_EQ(f.tensors[2].second.dim(), 0);
    EXPECT_EQ(f.tensors[2].second.item<int64_t>(), 5);
  }
  const std::vector<std::pair<std::string, std::string>> damaged = {
      {"legacy_truncated.pt", "truncated storages"},
      {"legacy_keys_mismatch.pt", "names no storage of the object"},
      {"legacy_count_mismatch.pt", "elements, the object says"},
      {"legacy_global.pt", "refers to builtins.eval"},
  };
  for (const auto& [name, needle] : damaged) {
    const std::string path = kCorpus + "weights/" + name;
    expect_input_error([&] { read_weights(path); }, path + ": ", needle);
  }
}
