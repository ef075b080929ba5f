// SharedBytes: an immutable, reference-counted view of bytes.
//
// Connectors hand out reads as SharedBytes so that memory they do not copy
// (a moved-in std::string, an mmap'd shared-memory segment, a network reply)
// can travel up to the caller while the owner keeps it alive. Copying a
// SharedBytes copies a pointer and bumps a reference count, never the bytes.
//
//   SharedBytes b = SharedBytes::FromString(std::move(payload));  // no copy
//   SharedBytes head = *b.Slice(0, 16);                            // no copy
//   absl::string_view v = b.view();
//
// Thread-safety: a SharedBytes value may be read from any number of threads;
// distinct copies may be used and destroyed concurrently (shared_ptr rules).
// The bytes themselves are never written through a SharedBytes.
#ifndef PROXYSTORE_BASE_BYTES_H_
#define PROXYSTORE_BASE_BYTES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace proxystore {

class SharedBytes {
 public:
  // Empty: size() == 0.
  SharedBytes() = default;

  // Takes ownership of `s` without copying its heap buffer.
  static SharedBytes FromString(std::string&& s) {
    auto owner = std::make_shared<const std::string>(std::move(s));
    absl::string_view view(*owner);
    return SharedBytes(std::move(owner), view);
  }
  // Takes ownership of `v` without copying its buffer.
  static SharedBytes FromVector(std::vector<uint8_t>&& v) {
    auto owner = std::make_shared<const std::vector<uint8_t>>(std::move(v));
    absl::string_view view(reinterpret_cast<const char*>(owner->data()),
                           owner->size());
    return SharedBytes(std::move(owner), view);
  }
  // Copies `data` into a new buffer.
  static SharedBytes Copy(absl::string_view data) {
    return FromString(std::string(data));
  }
  // Copies byte data (std::vector<uint8_t>, std::array, a span) into a new
  // buffer.
  static SharedBytes Copy(absl::Span<const uint8_t> data) {
    return Copy(absl::string_view(reinterpret_cast<const char*>(data.data()),
                                  data.size()));
  }
  // Views `view`, which `owner` keeps alive (e.g. an mmap with a deleter that
  // unmaps it). `view` must stay valid and unchanged while `owner` lives.
  static SharedBytes FromOwner(std::shared_ptr<const void> owner,
                               absl::string_view view) {
    return SharedBytes(std::move(owner), view);
  }

  const char* data() const { return view_.data(); }
  size_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }
  absl::string_view view() const { return view_; }
  absl::Span<const uint8_t> span() const {
    return {reinterpret_cast<const uint8_t*>(view_.data()), view_.size()};
  }
  std::string ToString() const { return std::string(view_); }

  // A view of [offset, offset + length) sharing this buffer's owner.
  // OutOfRange if the range does not lie inside the buffer.
  absl::StatusOr<SharedBytes> Slice(size_t offset, size_t length) const {
    if (offset > view_.size() || length > view_.size() - offset) {
      return absl::OutOfRangeError(
          absl::StrCat("SharedBytes::Slice(", offset, ", ", length,
                       ") is outside a buffer of ", view_.size(), " bytes"));
    }
    return SharedBytes(owner_, view_.substr(offset, length));
  }
  // The tail starting at `offset`; OutOfRange if offset > size().
  absl::StatusOr<SharedBytes> Suffix(size_t offset) const {
    if (offset > view_.size()) {
      return absl::OutOfRangeError(absl::StrCat("SharedBytes::Suffix(", offset,
                                                ") is outside a buffer of ",
                                                view_.size(), " bytes"));
    }
    return SharedBytes(owner_, view_.substr(offset));
  }

  // The owner keeping the bytes alive (null for an empty value).
  const std::shared_ptr<const void>& owner() const { return owner_; }

  friend bool operator==(const SharedBytes& a, const SharedBytes& b) {
    return a.view_ == b.view_;
  }

 private:
  SharedBytes(std::shared_ptr<const void> owner, absl::string_view view)
      : owner_(std::move(owner)), view_(view) {}

  std::shared_ptr<const void> owner_;
  absl::string_view view_;
};

// A view of `in` whose data is `alignment`-aligned: `in` itself when it
// already is, else a private copy. FlatBuffers verification requires aligned
// scalars, and bytes from outside (a file, a socket, a sub-range of another
// buffer) need not be aligned.
class AlignedView {
 public:
  explicit AlignedView(absl::string_view in, size_t alignment = 8) {
    if (reinterpret_cast<uintptr_t>(in.data()) % alignment == 0) {
      view_ = in;
    } else {
      // Past the small-string buffer, so the copy is on the heap, which
      // malloc aligns to alignof(max_align_t) (16 here).
      copy_.reserve(std::max<size_t>(in.size(), 16));
      copy_.assign(in.data(), in.size());
      view_ = copy_;
    }
  }
  AlignedView(const AlignedView&) = delete;
  AlignedView& operator=(const AlignedView&) = delete;

  absl::string_view view() const { return view_; }
  const uint8_t* data() const {
    return reinterpret_cast<const uint8_t*>(view_.data());
  }
  size_t size() const { return view_.size(); }

 private:
  std::string copy_;
  absl::string_view view_;
};

}  // namespace proxystore

#endif  // PROXYSTORE_BASE_BYTES_H_
