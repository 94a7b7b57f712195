// The readers every user file goes through (serialize/: the restricted unpickler, the zip reader,
// safetensors): each bound on sizes, offsets, strides, nesting and allocations (util/budgets.h) is
// crossed by one input and refused with one line before anything is allocated from it. The inputs are the fuzz seeds
// that tests/fuzz/make_bound_seeds.py writes into tests/fuzz/corpus/.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <nlohmann/json.hpp>
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
      {"bound_storage_overread.pt", "storage 0 holds 4194304 bytes for the 16 bytes of tensors read from it"},
      {"bound_memo_flood.pt", "data.pkl: more memo entries than objects"},
      {"bound_append_flood.pt", "data.pkl: more than the 64 MiB a pickle may take"},
      {"bound_mark_flood.pt", "data.pkl: more than the 64 MiB a pickle may take"},
      {"bound_dup_key.pt", "data.pkl: key 'w' appears twice in one dict"},
      {"bound_deep_shape.safetensors", "safetensors header: JSON nested deeper than 64 levels"},
      {"bound_dup_key.safetensors", "safetensors header: key \"x\" appears twice in one object"},
  };
  for (const auto& [name, needle] : weights) {
    const std::string path = kCorpus + "weights/" + name;
    expect_input_error([&] { read_weights(path); }, path + ": ", needle);
  }
  const std::string ckpt = kCorpus + "checkpoint/bound_numel_wraps.ckpt";
  expect_input_error([&] { CheckpointReader r(ckpt); }, ckpt + ": ", "is too large");
  const std::string deep = kCorpus + "checkpoint/bound_deep_metadata.ckpt";
  expect_input_error([&] { CheckpointReader r(deep); }, deep + ": ", "corrupt checkpoint metadata: JSON nested deeper");
}

// The pickle machine's budgets, opcode by opcode: an honest memo (one entry per object, keys
// reused) passes; a second entry for one object, or more items, marks or stack slots than 64 MiB
// hold, is refused where it happens.
TEST(Readers, UnpicklerCountsEveryAllocation) {
  using pickle::Rules;
  // ( N q0 N q1 BINPUT 0 again (a key reused) h0 h1 t ) .
  const pickle::Pickle p = pickle::unpickle(std::string("\x80\x02(Nq\x00Nq\x01q\x00h\x00h\x01t.", 17), Rules{});
  EXPECT_EQ(p.root().items.size(), 4u);
  auto refused = [](const std::string& bytes, const std::string& needle) {
    expect_input_error([&] { pickle::unpickle(bytes, Rules{}); }, "data.pkl: ", needle);
  };
  refused(std::string("\x80\x02N\x94\x94.", 6), "more memo entries than objects (byte 4)");
  std::string items("\x80\x02]q\x00", 5);
  for (int i = 0; i < 9'000'000; ++i) items += std::string("h\0a", 3);  // BINGET 0, APPEND
  refused(items + ".", "more than the 64 MiB a pickle may take");
  refused("\x80\x02" + std::string(9'000'000, '(') + "N.", "more than the 64 MiB a pickle may take");
  refused("\x80\x02N" + std::string(9'000'000, '\x85') + ".", "more than the 64 MiB a pickle may take");
}

// A dict whose keys repeat is refused wherever it is, by string or by integer (True is 1 to Python).
TEST(Readers, ADictWithAKeyTwiceIsRefused) {
  using pickle::Rules;
  auto str = [](const std::string& text) {  // BINUNICODE
    const auto n = static_cast<uint32_t>(text.size());
    return "X" + std::string(reinterpret_cast<const char*>(&n), 4) + text;
  };
  auto small = [](int i) { return std::string("K") + static_cast<char>(i); };  // BININT1
  auto refused = [](const std::string& bytes, const std::string& needle) {
    expect_input_error([&] { pickle::unpickle(bytes, Rules{}); }, "data.pkl: ", needle);
  };
  const std::string proto = "\x80\x02";
  refused(proto + "}(" + str("a") + small(1) + str("a") + small(2) + "u.", "key 'a' appears twice");
  refused(proto + "}(" + small(1) + small(0) + "\x88" + small(0) + "u.", "key 1 appears twice");  // {1: 0, True: 0}
  // [{}, {"k": {"a": 1, "b": 2, "a": 3}}]
  refused(proto + "](}}(" + str("k") + "}(" + str("a") + small(1) + str("b") + small(2) + str("a") + small(3) + "uue.",
          "key 'a' appears twice");
  // The same key in two dicts is fine: [{"a": 1}, {"a": 2}]
  const pickle::Pickle p =
      pickle::unpickle(proto + "](}(" + str("a") + small(1) + "u}(" + str("a") + small(2) + "ue.", Rules{});
  EXPECT_EQ(p.root().items.size(), 2u);
}

// Names and shapes come before bytes: a file's tensors are meta tensors until a caller asks for
// some, and then only their storages are read: here the other tensor's record is damaged (its
// CRC no longer matches) and the first still loads; asking for the second finds the damage.
TEST(Readers, OnlyTheTensorsAskedForAreRead) {
  const at::Tensor a = at::arange(4, at::kFloat), b = at::full({4}, 12345.0f);
  std::string bytes = encode_pt({{"a", a}, {"b", b}}, nlohmann::json::object());
  const float marker = 12345.0f;
  const size_t at = bytes.find(std::string(reinterpret_cast<const char*>(&marker), 4));
  ASSERT_NE(at, std::string::npos);
  bytes[at] ^= 1;  // b's record: stored, so its bytes are in the file as they are
  WeightsFile f = open_weights(bytes, "two.pt");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_TRUE(f.tensors[0].second.is_meta());
  EXPECT_EQ(f.tensors[1].second.sizes(), at::IntArrayRef({4}));
  f.load({0});
  EXPECT_TRUE(at::equal(f.tensors[0].second, a));
  EXPECT_TRUE(f.tensors[1].second.is_meta());
  expect_input_error([&] { f.load({1}); }, "two.pt: ", "zip record data/1 is damaged");
}

// Duplicate keys mean what PyTorch means, or are refused: torch.load and safetensors keep the last
// value of a key that appears twice (checked here on the very bytes); these readers refuse the file.
TEST(Readers, DuplicateKeysAreRefusedWherePyTorchWouldReadTheLast) {
  ASSERT_TRUE(resnet::testing::python_has("torch, safetensors"));
  const std::string pt = kCorpus + "weights/bound_dup_key.pt", st = kCorpus + "weights/bound_dup_key.safetensors";
  const std::string script = resnet::testing::kPython +
                             " -c '"
                             "import sys, torch, safetensors\n"
                             "d = torch.load(sys.argv[1], weights_only=True)\n"
                             "print(list(d), d[\"w\"].tolist())\n"
                             "with safetensors.safe_open(sys.argv[2], \"pt\") as f: print(f.metadata())\n' " +
                             pt + " " + st;
  FILE* out = ::popen(script.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  char buf[256];
  while (size_t n = std::fread(buf, 1, sizeof buf, out)) text.append(buf, n);
  ASSERT_EQ(::pclose(out), 0) << text;
  EXPECT_EQ(text, "['w'] [1.0, 2.0]\n{'x': '2'}\n");  // the last "w" (2 elements), the last "x"
  expect_input_error([&] { read_weights(pt); }, pt + ": ", "key 'w' appears twice in one dict");
  expect_input_error([&] { read_weights(st); }, st + ": ", "key \"x\" appears twice in one object");
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
  const std::string ok = std::string(
      "\x80\x02(K\x01X\x02\x00\x00\x00"
      "abtq\x00h\x00\x86.",
      19);
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
  refused(std::string("\x80\x02X\xff\x00\x00\x00"
                      "ab",
                      9),
          "truncated");
  refused(std::string("\x80\x02K\x01", 4), "truncated");
  refused(
      "\x80\x02"
      "cos\nsystem\n)R.",
      "refers to os.system");
  refused(std::string("\x80\x02(K\x01K\x02K\x03}(K\x01u.", 15), "odd number");
  refused(
      "\x80\x02"
      "c__torch__\nModule\n)\x81}b.",
      "refers to __torch__.Module");
  refused(std::string("\x80\x02\x01.", 4), "opcode 0x01");
  // TorchScript objects, only where allowed, and only built once from a dict.
  Rules ts;
  ts.torchscript_classes = {"__torch__.Module"};
  const std::string module =
      "\x80\x02"
      "c__torch__\nModule\n)\x81";
  const pickle::Pickle obj = pickle::unpickle(module + std::string("}(X\x01\x00\x00\x00"
                                                                   "aK\x07ub.",
                                                                   13),
                                              ts);
  ASSERT_EQ(obj.root().kind, pickle::Value::kObject);
  EXPECT_EQ(obj.find(obj.at(obj.root().items[0]), "a")->i, 7);
  refused(module +
              "K\x01"
              "b.",
          "an object whose state is an integer", ts);
  refused(module + "}b}b.", "an object built twice", ts);
  refused(
      "\x80\x02"
      "c__torch__\nEvil\n)\x81}b.",
      "refers to __torch__.Evil", ts);
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
