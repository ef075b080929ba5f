// Shared pieces of proxystore-cpp's fuzz targets (//fuzz).
//
// Every fuzz target is an `LLVMFuzzerTestOneInput` that feeds bytes from
// outside to our decoders. A decoder may refuse any input (with the status
// codes its header documents) but must never crash, and whatever it accepts
// must survive a round trip. A broken invariant calls PROXYSTORE_FUZZ_CHECK's
// failure path, which prints what broke and executes a trap instruction: the
// fuzzer records the input as a crash, and the replay test (replay_main.cc)
// dies with it.
//
// Also here: the value types the serializer target decodes (a padding-free
// POD struct and FlatBuffer<Sample> from sample.fbs), shared with the corpus
// generator so that seeds and fuzzer agree on type names.
//
//   PROXYSTORE_FUZZ_CHECK(again.ok(), again.status().ToString());
//   MisalignedCopy odd(input);  // the same bytes at an odd address
//
// Thread-safety: stateless functions; MisalignedCopy is a plain value.
#ifndef PROXYSTORE_FUZZ_FUZZ_UTIL_H_
#define PROXYSTORE_FUZZ_FUZZ_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "proxystore/base/bytes.h"
#include "proxystore/fuzz/sample_generated.h"
#include "proxystore/serializer/serializer.h"

namespace proxystore::fuzz {

// The "pod" codec's test type. No padding, so its bytes round-trip exactly
// and memcmp is equality.
struct Pod {
  int32_t id;
  int32_t flags;
  double weight;
  uint8_t tag[8];
};
static_assert(sizeof(Pod) == 24, "Pod must have no padding");

// The "flatbuffer" codec's test type.
using SampleBuffer = FlatBuffer<Sample>;

// Prints "fuzz invariant violated at file:line: what (detail)" to stderr and
// traps.
[[noreturn]] void FailInvariant(const char* file, int line, const char* what,
                                const std::string& detail);

// True if `status` is not OK and its code is one of `allowed`.
bool HasCode(const absl::Status& status,
             std::initializer_list<absl::StatusCode> allowed);

// The same bytes as `data`, copied into a buffer of exactly data.size() + 1
// bytes and viewed from its second byte: an odd address (decoders must copy
// or read unaligned), and any read past the end is a heap overflow that
// AddressSanitizer reports.
class MisalignedCopy {
 public:
  explicit MisalignedCopy(absl::string_view data);
  MisalignedCopy(const MisalignedCopy&) = delete;
  MisalignedCopy& operator=(const MisalignedCopy&) = delete;

  absl::string_view view() const { return {buffer_.get() + 1, size_}; }
  // A SharedBytes over view(), valid while this object lives.
  SharedBytes bytes() const { return SharedBytes::FromOwner(nullptr, view()); }

 private:
  std::unique_ptr<char[]> buffer_;
  size_t size_;
};

// Reads every field of a verified Sample, its sub-tables and nested buffer
// (recursively), so that a verifier gap becomes an AddressSanitizer report.
// Returns a checksum so that the reads are not optimized away.
uint64_t TouchSample(const Sample* sample);

}  // namespace proxystore::fuzz

// Aborts the fuzz run (see FailInvariant) unless `cond` holds. `detail` is
// evaluated only on failure.
#define PROXYSTORE_FUZZ_CHECK(cond, detail)                                   \
  do {                                                                        \
    if (!(cond)) {                                                            \
      ::proxystore::fuzz::FailInvariant(__FILE__, __LINE__, #cond, (detail)); \
    }                                                                         \
  } while (false)

#endif  // PROXYSTORE_FUZZ_FUZZ_UTIL_H_
