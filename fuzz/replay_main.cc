// Replays a fuzz target as a normal test: every file of its seed corpus
// (fuzz/corpus/<target>/, given as the only argument), every truncation and
// every single-bit flip of each, and a fixed set of nasty inputs (empty,
// every single byte, 4 KiB of 0xff and of 0x00, forged huge length fields).
// Linked with one *_fuzzer.cc, which provides LLVMFuzzerTestOneInput; a
// crash or a broken invariant (a trap) fails the test, and the sanitizer
// configs (--config=asan, --config=tsan) check every replayed input.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::string* corpus_dir = nullptr;

// Runs the target on a buffer of exactly input.size() bytes (a std::vector,
// not a std::string: no terminator, no small-string buffer), so a read past
// the end is a heap overflow under AddressSanitizer.
void Feed(const std::string& input) {
  std::vector<uint8_t> exact(input.begin(), input.end());
  ASSERT_EQ(LLVMFuzzerTestOneInput(exact.data(), exact.size()), 0);
}

std::vector<std::pair<std::string, std::string>> ReadCorpus() {
  std::vector<std::pair<std::string, std::string>> files;
  for (const auto& entry :
       std::filesystem::recursive_directory_iterator(*corpus_dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)),
                      std::istreambuf_iterator<char>());
    files.emplace_back(entry.path().filename().string(), std::move(bytes));
  }
  return files;
}

std::string Le(uint64_t v, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

// A native envelope header (serializer/serializer.h) with chosen length fields.
std::string EnvelopeHeader(bool compressed, uint64_t stored, uint64_t payload) {
  std::string h("\x89PSC\x01", 5);
  h.push_back(compressed ? '\x01' : '\x00');
  h += Le(48, 2) + Le(6, 2) + Le(11, 2) + Le(0, 4) + Le(stored, 8) +
       Le(payload, 8) + "stringstd::string";
  h.resize(48, '\0');
  return h;
}

TEST(Replay, EveryCorpusFile) {
  const auto files = ReadCorpus();
  // An empty or missing corpus would make every test here vacuous.
  ASSERT_GE(files.size(), 3u) << "no corpus in " << *corpus_dir;
  for (const auto& [name, bytes] : files) {
    SCOPED_TRACE(name);
    Feed(bytes);
  }
  std::cout << "replayed " << files.size() << " corpus files from "
            << *corpus_dir << "\n";
}

TEST(Replay, EveryTruncationOfEveryCorpusFile) {
  for (const auto& [name, bytes] : ReadCorpus()) {
    SCOPED_TRACE(name);
    for (size_t n = 0; n < bytes.size(); ++n) Feed(bytes.substr(0, n));
  }
}

TEST(Replay, EverySingleBitFlipOfEveryCorpusFile) {
  for (const auto& [name, bytes] : ReadCorpus()) {
    SCOPED_TRACE(name);
    for (size_t i = 0; i < bytes.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string flipped = bytes;
        flipped[i] = static_cast<char>(flipped[i] ^ (1 << bit));
        Feed(flipped);
      }
    }
  }
}

TEST(Replay, NastyInputs) {
  Feed("");
  for (int b = 0; b < 256; ++b) Feed(std::string(1, static_cast<char>(b)));
  Feed(std::string(4096, '\xff'));
  Feed(std::string(4096, '\0'));
  // Envelopes whose length fields claim far more than is there, and lz4
  // size claims of a decompression bomb.
  Feed(EnvelopeHeader(false, ~uint64_t{0}, ~uint64_t{0}));
  Feed(EnvelopeHeader(false, 1ull << 62, 1ull << 62) + "abc");
  Feed(EnvelopeHeader(true, 16, ~uint64_t{0}) + std::string(16, 'A'));
  Feed(EnvelopeHeader(true, 16, 0x7E000000) + std::string(16, 'A'));
  Feed(EnvelopeHeader(true, 16, 255 * 16 + 16) + std::string(16, '\xff'));
  // FlatBuffers: a size prefix of 4 GiB, a root offset far past the end, a
  // string whose length field is 0xffffffff.
  Feed(Le(0xffffffff, 4) + Le(8, 4) + std::string(24, '\0'));
  Feed(Le(0xfffffff0, 4) + std::string(28, '\0'));
  Feed(Le(12, 4) + Le(0, 4) + Le(0xffffffff, 4) + std::string(20, 'x'));
  // Text every target may see: multi keys with numbers beyond 64 bits and
  // names longer than any limit, host patterns with unbalanced groups, and
  // config-like text with unterminated strings and escapes.
  Feed("99999999999999999999999:a:b");
  Feed("255:" + std::string(300, 'n') + ":k");
  Feed("{priority: 99999999999999999999999}");
  Feed("{max_size_bytes: 18446744073709551616}");
  Feed("{host_patterns: [\"" + std::string(2000, '(') + "\"]}");
  Feed("\"file\" {\"directory\": \"\\x" + std::string(100, 'f') + "\"}");
  Feed("\"file\" {\"directory\": \"unterminated\\\"}");
  Feed("BS\n");
  Feed("US\n\xff\xfe");
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc != 2) {
    std::cerr << "usage: " << argv[0] << " CORPUS_DIR [gtest flags]\n";
    return 2;
  }
  std::string dir = argv[1];
  corpus_dir = &dir;
  return RUN_ALL_TESTS();
}
