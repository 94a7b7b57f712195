#pragma once
// A structural check of a pickle before LibTorch's unpickler sees it.
//
// LibTorch 1.13's unpickler is not memory-safe on damaged input: a checkpoint whose data.pkl had
// a few bytes shuffled made it free a pointer it never allocated (tests/fuzz/libtorch_crashes/).
// This walks the opcodes the TorchScript pickler writes and simulates the stack, the marks and
// the memo, without building anything: an unknown opcode, a truncated argument, a stack or mark
// underflow, a memo read before its write, a global outside `allowed`, anything after STOP, or a
// stack that does not end with one value, is refused with a reason. It does not prove the
// pickle is what the reader expects (the reader checks that afterwards); it keeps the input
// within what the unpickler handles without touching memory it should not.
#include <set>
#include <string>

namespace resnet {

// "" if `bytes` passes, else why not ("offset 1234: BINGET of memo 17, never written").
std::string check_pickle(const std::string& bytes, const std::set<std::string>& allowed_globals);

// The globals a checkpoint's pickles (data.pkl, constants.pkl) may name: "module name" pairs.
const std::set<std::string>& checkpoint_globals();

}  // namespace resnet
