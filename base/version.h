// The version of proxystore-cpp (semantic versioning; see CHANGELOG.md and
// docs/releasing.md).
#ifndef PROXYSTORE_BASE_VERSION_H_
#define PROXYSTORE_BASE_VERSION_H_

#define PROXYSTORE_VERSION_MAJOR 0
#define PROXYSTORE_VERSION_MINOR 1
#define PROXYSTORE_VERSION_PATCH 0
#define PROXYSTORE_VERSION_STRING "0.1.0"

#endif  // PROXYSTORE_BASE_VERSION_H_
