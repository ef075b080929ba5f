#include "proxystore/connectors/secret.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxystore/testing/status_matchers.h"

namespace proxystore {
namespace {

using ::proxystore::testing::IsOk;
using ::proxystore::testing::IsOkAndHolds;
using ::proxystore::testing::StatusIs;
using ::testing::HasSubstr;

std::string WriteFile(const std::string& name, const std::string& text) {
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

TEST(Secret, FromTheEnvironment) {
  ASSERT_EQ(::setenv("PROXYSTORE_TEST_SECRET", "s3cret", 1), 0);
  EXPECT_THAT(ReadSecret(SecretSource::kEnvironment, "PROXYSTORE_TEST_SECRET",
                         "option \"password_env\""),
              IsOkAndHolds("s3cret"));
  EXPECT_THAT(ReadSecret(SecretSource::kEnvironment, "PROXYSTORE_TEST_UNSET",
                         "option \"password_env\""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("PROXYSTORE_TEST_UNSET is not set")));
  for (const char* bad : {"", "1ABC", "A-B", "A B", "A=B"}) {
    EXPECT_THAT(ReadSecret(SecretSource::kEnvironment, bad, "option"),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("must name an environment variable")))
        << bad;
  }
  ASSERT_EQ(::setenv("PROXYSTORE_TEST_SECRET", "two\nlines", 1), 0);
  EXPECT_THAT(
      ReadSecret(SecretSource::kEnvironment, "PROXYSTORE_TEST_SECRET",
                 "option"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one line")));
}

TEST(Secret, FromAFile) {
  EXPECT_THAT(ReadSecret(SecretSource::kFile, WriteFile("a", "pw\n"), "opt"),
              IsOkAndHolds("pw"));
  EXPECT_THAT(ReadSecret(SecretSource::kFile, WriteFile("b", "pw\r\n"), "opt"),
              IsOkAndHolds("pw"));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile, WriteFile("c", "\n"), "opt"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is empty")));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile, WriteFile("d", "a\nb\n"), "opt"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("one line")));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile,
                 WriteFile("e", std::string(kMaxSecretFileSize + 1, 'x')),
                 "opt"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("more than the 65536 read")));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile, "relative/path", "opt"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile,
                 absl::StrCat(std::getenv("TEST_TMPDIR"), "/missing"), "opt"),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      ReadSecret(SecretSource::kFile, std::getenv("TEST_TMPDIR"), "opt"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("not a regular file")));
  // A FIFO: refused without waiting for a writer.
  const std::string fifo = absl::StrCat(std::getenv("TEST_TMPDIR"), "/fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_THAT(ReadSecret(SecretSource::kFile, fifo, "opt"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not a regular file")));
}

}  // namespace
}  // namespace proxystore
