// Linked into every fuzz target: sanitizer defaults, and an operator new that fails the way a
// real machine's does.
//
// A checkpoint can claim sizes it does not hold (a 4 GB string, a 4-billion-entry memo table in
// its pickle), and LibTorch's unpickler allocates them before finding out. Without sanitizers
// the allocation either succeeds for a moment or throws std::bad_alloc, which the reader must
// turn into an InputError. ASan's own operator new aborts instead of throwing, so here:
// allocations above 2 GB fail (max_allocation_size_mb, like a machine without that much memory),
// malloc returns null (allocator_may_return_null) and operator new throws std::bad_alloc.
#include <cstdlib>
#include <new>

extern "C" const char* __asan_default_options() {
  // LibTorch is not instrumented and keeps per-process caches: leaks are not checked. A 32 MB
  // quarantine (256 by default) keeps RSS close to what the readers allocate, so that
  // scripts/fuzz.sh's -rss_limit_mb can sit a few hundred MB above a target's baseline and a
  // reader that allocates more from an input is a finding.
  return "allocator_may_return_null=1:max_allocation_size_mb=2048:detect_leaks=0:quarantine_size_mb=32";
}

extern "C" const char* __ubsan_default_options() { return "halt_on_error=1:print_stacktrace=1"; }

void* operator new(std::size_t n) {
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return std::malloc(n ? n : 1); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
