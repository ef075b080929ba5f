"""The C++ rules every proxystore-cpp package uses.

proxystore_cc_library makes a library's headers includable as
"proxystore/<package>/<file>.h" (so that a consumer's own "store/..." headers
can never shadow ours) and proxystore_cc_test gives tests one set of
defaults. Rules load from @rules_cc, which Bazel 4's WORKSPACE gets from
bazel/repositories.bzl and Bazel 7+ from MODULE.bazel.
"""

load("@rules_cc//cc:defs.bzl", "cc_binary", "cc_library", "cc_test")

INCLUDE_PREFIX = "proxystore"

def include_prefix():
    """The include prefix of the calling package: proxystore/<package>."""
    return INCLUDE_PREFIX + "/" + native.package_name()

def proxystore_cc_library(name, visibility = None, **kwargs):
    """A cc_library whose headers are included as proxystore/<package>/<file>.

    Args:
      name: the target's name.
      visibility: as usual; packages are private unless they say otherwise.
      **kwargs: any cc_library attribute.
    """
    cc_library(
        name = name,
        # Bazel strips the package from a header's path before it adds the
        # prefix, so the prefix carries the package.
        include_prefix = include_prefix(),
        visibility = visibility,
        **kwargs
    )

def proxystore_cc_test(name, size = "small", linkstatic = True, **kwargs):
    """A cc_test with the project's defaults.

    Tests link our libraries statically: linked dynamically, gold's
    --as-needed drops Abseil libraries that only our _solib .so files
    reference, and the test dies with "undefined symbol" when it loads.

    Args:
      name: the target's name.
      size: Bazel's test size (small unless the test says otherwise).
      linkstatic: see above.
      **kwargs: any cc_test attribute.
    """
    cc_test(name = name, size = size, linkstatic = linkstatic, **kwargs)

def proxystore_cc_binary(name, **kwargs):
    """A cc_binary (benchmarks, fuzzers' helpers, examples).

    Args:
      name: the target's name.
      **kwargs: any cc_binary attribute.
    """
    cc_binary(name = name, **kwargs)
