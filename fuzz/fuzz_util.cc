#include "proxystore/fuzz/fuzz_util.h"

#include <cstdio>
#include <cstring>

#include "flatbuffers/flatbuffers.h"

namespace proxystore::fuzz {

void FailInvariant(const char* file, int line, const char* what,
                   const std::string& detail) {
  std::fprintf(stderr, "fuzz invariant violated at %s:%d: %s (%s)\n", file,
               line, what, detail.c_str());
  std::fflush(stderr);
  __builtin_trap();
}

bool HasCode(const absl::Status& status,
             std::initializer_list<absl::StatusCode> allowed) {
  if (status.ok()) return false;
  for (absl::StatusCode code : allowed) {
    if (status.code() == code) return true;
  }
  return false;
}

MisalignedCopy::MisalignedCopy(absl::string_view data)
    : buffer_(std::make_unique<char[]>(data.size() + 1)), size_(data.size()) {
  if (!data.empty()) std::memcpy(buffer_.get() + 1, data.data(), data.size());
}

namespace {

uint64_t Mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

uint64_t TouchString(const flatbuffers::String* s) {
  if (s == nullptr) return 1;
  uint64_t h = s->size();
  for (char c : s->string_view()) h = Mix(h, static_cast<unsigned char>(c));
  return h;
}

uint64_t TouchChild(const Child* child) {
  if (child == nullptr) return 2;
  return Mix(TouchString(child->name()), static_cast<uint64_t>(child->value()));
}

}  // namespace

uint64_t TouchSample(const Sample* sample) {
  uint64_t h = 0xcbf29ce484222325ull;
  // `next` chains are bounded by the verifier's depth limit (64); walk them
  // iteratively to keep the stack flat.
  for (int depth = 0; sample != nullptr && depth < 128; ++depth) {
    h = Mix(h, TouchString(sample->name()));
    if (const Vec2* pos = sample->pos()) {
      uint64_t bits[2];
      double xy[2] = {pos->x(), pos->y()};
      std::memcpy(bits, xy, sizeof(bits));
      h = Mix(Mix(h, bits[0]), bits[1]);
    }
    if (const auto* samples = sample->samples()) {
      for (int32_t v : *samples) h = Mix(h, static_cast<uint32_t>(v));
    }
    if (const auto* tags = sample->tags()) {
      for (const flatbuffers::String* tag : *tags) h = Mix(h, TouchString(tag));
    }
    if (const auto* children = sample->children()) {
      for (const Child* child : *children) h = Mix(h, TouchChild(child));
    }
    if (const auto* blob = sample->blob()) {
      for (uint8_t b : *blob) h = Mix(h, b);
    }
    h = Mix(h, static_cast<uint64_t>(sample->payload_type()));
    h = Mix(h, TouchChild(sample->payload_as_Child()));
    h = Mix(h, sample->flag() ? 3 : 5);
    sample = sample->next();
  }
  return h;
}

}  // namespace proxystore::fuzz
