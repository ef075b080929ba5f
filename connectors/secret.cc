#include "proxystore/connectors/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "proxystore/base/status.h"

namespace proxystore {
namespace {

bool IsEnvName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxSecretEnvNameSize) return false;
  if (absl::ascii_isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

std::string QuotePath(absl::string_view path) {
  return QuoteForMessage(path, kMaxSecretPathSize);
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path,
                                           absl::string_view what) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int fd =
      ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat(what, ": cannot open ", QuotePath(path)));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return absl::ErrnoToStatus(
        errno, absl::StrCat(what, ": cannot stat ", QuotePath(path)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", QuotePath(path), " is not a regular file"));
  }
  auto too_large = [&](uint64_t size) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", QuotePath(path), " is ", size,
                     " bytes, more than the ", kMaxSecretFileSize, " read"));
  };
  if (static_cast<uint64_t>(st.st_size) > kMaxSecretFileSize) {
    return too_large(static_cast<uint64_t>(st.st_size));
  }
  std::string text;
  char buffer[8192];
  // Up to one byte more than allowed: a file that grew since fstat is
  // refused, not truncated.
  for (;;) {
    const size_t want =
        std::min(sizeof(buffer), kMaxSecretFileSize + 1 - text.size());
    const ssize_t n = ::read(fd, buffer, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(
          errno, absl::StrCat(what, ": cannot read ", QuotePath(path)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxSecretFileSize) return too_large(text.size());
  }
  return text;
}

}  // namespace

absl::Status CheckSecretReference(SecretSource source, absl::string_view value,
                                  absl::string_view what) {
  if (source == SecretSource::kEnvironment) {
    if (!IsEnvName(value)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what,
          " must name an environment variable ([A-Za-z_][A-Za-z0-9_]*, at "
          "most ",
          kMaxSecretEnvNameSize, " characters), got ",
          QuoteForMessage(value, 100)));
    }
    return absl::OkStatus();
  }
  if (value.empty() || value.front() != '/' ||
      value.size() > kMaxSecretPathSize ||
      value.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be an absolute path of at most ",
                     kMaxSecretPathSize, " bytes, got ", QuotePath(value)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadSecret(SecretSource source_kind,
                                       absl::string_view value,
                                       absl::string_view what) {
  PROXYSTORE_RETURN_IF_ERROR(CheckSecretReference(source_kind, value, what));
  std::string secret;
  if (source_kind == SecretSource::kEnvironment) {
    const char* set = std::getenv(std::string(value).c_str());
    if (set == nullptr) {
      return absl::NotFoundError(
          absl::StrCat(what, ": environment variable ", value, " is not set"));
    }
    secret = set;
  } else {
    PROXYSTORE_ASSIGN_OR_RETURN(secret,
                                ReadSecretFile(std::string(value), what));
    // One trailing line break, as `echo` and editors leave it.
    if (absl::EndsWith(secret, "\r\n")) {
      secret.resize(secret.size() - 2);
    } else if (absl::EndsWith(secret, "\n")) {
      secret.resize(secret.size() - 1);
    }
  }
  // Where it came from, for messages (never the secret itself).
  const std::string source = source_kind == SecretSource::kEnvironment
                                 ? absl::StrCat("environment variable ", value)
                                 : absl::StrCat("file ", QuotePath(value));
  if (secret.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the secret in ", source, " is empty"));
  }
  if (secret.find_first_of(std::string("\0\r\n", 3)) != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": the secret in ", source,
                     " holds a NUL, CR or LF (a secret is one line)"));
  }
  return secret;
}

}  // namespace proxystore
