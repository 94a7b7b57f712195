#include "util/pickle_check.h"

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace resnet {
namespace {

class Walker {
 public:
  Walker(const std::string& b, const std::set<std::string>& allowed) : b_(b), allowed_(allowed) {}

  std::string run() {
    while (at_ < b_.size()) {
      const size_t op_at = at_;
      const auto op = static_cast<unsigned char>(b_[at_++]);
      std::string why = step(op);
      if (!why.empty()) return "offset " + std::to_string(op_at) + ": " + why;
      if (stopped_) {
        if (at_ != b_.size()) return "offset " + std::to_string(at_) + ": data after STOP";
        return "";
      }
    }
    return "no STOP opcode (truncated)";
  }

 private:
  bool take(size_t n, std::string& out) {
    if (b_.size() - at_ < n) return false;
    out = b_.substr(at_, n);
    at_ += n;
    return true;
  }
  bool take_uint(size_t n, uint64_t& v) {
    std::string s;
    if (!take(n, s)) return false;
    v = 0;
    for (size_t i = n; i-- > 0;) v = (v << 8) | static_cast<unsigned char>(s[i]);
    return true;
  }
  bool take_line(std::string& out) {
    const size_t end = b_.find('\n', at_);
    if (end == std::string::npos) return false;
    out = b_.substr(at_, end - at_);
    at_ = end + 1;
    return true;
  }
  // Pops `n` items above the last mark is not required; plain pops.
  bool pop(size_t n) {
    if (depth_ < n || depth_ - n < mark_floor()) return false;
    depth_ -= n;
    return true;
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  // Pops everything above the last mark and the mark; returns the count (or -1).
  int64_t pop_mark() {
    if (marks_.empty()) return -1;
    const size_t m = marks_.back();
    marks_.pop_back();
    const int64_t n = static_cast<int64_t>(depth_ - m);
    depth_ = m;
    return n;
  }
  std::string memo_get(uint64_t i) {
    if (!memo_.count(i)) return "memo " + std::to_string(i) + " read before it was written";
    ++depth_;
    return "";
  }
  std::string memo_put(uint64_t i) {
    if (depth_ == mark_floor()) return "memo write with nothing on the stack";
    if (i > (1u << 26)) return "memo index " + std::to_string(i) + " out of range";
    memo_.insert(i);
    return "";
  }

  std::string step(unsigned char op) {
    const std::string truncated = "truncated argument";
    const std::string underflow = "stack underflow";
    uint64_t v = 0;
    std::string s;
    switch (op) {
      case 0x80:  // PROTO
        return take_uint(1, v) && v <= 5 ? "" : "bad PROTO";
      case 0x95:  // FRAME
        return take_uint(8, v) ? "" : truncated;
      case '.':  // STOP
        if (depth_ != 1 || !marks_.empty()) return "STOP with " + std::to_string(depth_) + " values on the stack";
        stopped_ = true;
        return "";
      case '(':  // MARK
        marks_.push_back(depth_);
        return "";
      case 't':  // TUPLE
      case 'l':  // LIST
      case 'd':  // DICT
        if (pop_mark() < 0) return "no MARK";
        ++depth_;
        return "";
      case ')':  // EMPTY_TUPLE
      case ']':  // EMPTY_LIST
      case '}':  // EMPTY_DICT
      case 'N':  // NONE
      case 0x88:  // NEWTRUE
      case 0x89:  // NEWFALSE
        ++depth_;
        return "";
      case 0x85:  // TUPLE1
        return pop(1) ? (++depth_, "") : underflow;
      case 0x86:  // TUPLE2
        return pop(2) ? (++depth_, "") : underflow;
      case 0x87:  // TUPLE3
        return pop(3) ? (++depth_, "") : underflow;
      case 'K':  // BININT1
        return take(1, s) ? (++depth_, "") : truncated;
      case 'M':  // BININT2
        return take(2, s) ? (++depth_, "") : truncated;
      case 'J':  // BININT
        return take(4, s) ? (++depth_, "") : truncated;
      case 'G':  // BINFLOAT
        return take(8, s) ? (++depth_, "") : truncated;
      case 0x8a:  // LONG1
        if (!take_uint(1, v) || !take(v, s)) return truncated;
        ++depth_;
        return "";
      case 0x8c:  // SHORT_BINUNICODE
        if (!take_uint(1, v) || !take(v, s)) return truncated;
        ++depth_;
        return "";
      case 'X':  // BINUNICODE
        if (!take_uint(4, v) || !take(v, s)) return truncated;
        ++depth_;
        return "";
      case 'a':  // APPEND
        return pop(1) && depth_ > mark_floor() ? "" : underflow;
      case 'e': {  // APPENDS
        const int64_t n = pop_mark();
        if (n < 0) return "no MARK";
        return depth_ > mark_floor() ? "" : underflow;
      }
      case 's':  // SETITEM
        return pop(2) && depth_ > mark_floor() ? "" : underflow;
      case 'u': {  // SETITEMS
        const int64_t n = pop_mark();
        if (n < 0) return "no MARK";
        if (n % 2) return "SETITEMS with an odd number of items";
        return depth_ > mark_floor() ? "" : underflow;
      }
      case 'q':  // BINPUT
        return take_uint(1, v) ? memo_put(v) : truncated;
      case 'r':  // LONG_BINPUT
        return take_uint(4, v) ? memo_put(v) : truncated;
      case 0x94:  // MEMOIZE
        return memo_put(memo_.size());
      case 'h':  // BINGET
        return take_uint(1, v) ? memo_get(v) : truncated;
      case 'j':  // LONG_BINGET
        return take_uint(4, v) ? memo_get(v) : truncated;
      case 'c': {  // GLOBAL "module\nname\n"
        std::string module, name;
        if (!take_line(module) || !take_line(name)) return truncated;
        if (!allowed_.count(module + " " + name)) return "global " + module + "." + name + " is not allowed";
        ++depth_;
        return "";
      }
      case 'R':  // REDUCE: callable, args -> result
      case 0x81:  // NEWOBJ: class, args -> object
      case 'b':  // BUILD: object, state -> object
        return pop(2) ? (++depth_, "") : underflow;
      case 'Q':  // BINPERSID: pid -> object
        return pop(1) ? (++depth_, "") : underflow;
      default: {
        static const char* hex = "0123456789abcdef";
        return std::string("opcode 0x") + hex[op >> 4] + hex[op & 15] + " is not one the TorchScript pickler writes";
      }
    }
  }

  const std::string& b_;
  const std::set<std::string>& allowed_;
  size_t at_ = 0;
  size_t depth_ = 0;
  std::vector<size_t> marks_;
  std::set<uint64_t> memo_;
  bool stopped_ = false;
};

}  // namespace

std::string check_pickle(const std::string& bytes, const std::set<std::string>& allowed_globals) {
  return Walker(bytes, allowed_globals).run();
}

const std::set<std::string>& checkpoint_globals() {
  static const std::set<std::string> globals = {
      "__torch__ Module", "collections OrderedDict", "torch._utils _rebuild_tensor_v2",
      "torch.jit._pickle restore_type_tag", "torch.jit._pickle build_tensorlist",
      "torch.jit._pickle build_intlist", "torch.jit._pickle build_doublelist", "torch.jit._pickle build_boollist",
      "torch FloatStorage", "torch LongStorage", "torch DoubleStorage", "torch IntStorage", "torch HalfStorage",
      "torch BFloat16Storage", "torch BoolStorage", "torch ByteStorage"};
  return globals;
}

}  // namespace resnet
