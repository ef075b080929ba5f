"""The C++ rules every proxystore-cpp package uses.

proxystore_cc_library makes a library's headers includable as
"proxystore/<package>/<file>.h" (so that a consumer's own "store/..." headers
can never shadow ours) and proxystore_cc_test gives tests one set of
defaults. Rules load from @rules_cc and @rules_shell, which a WORKSPACE
build gets from bazel/repositories.bzl (stand-ins forwarding to Bazel 4's
native rules) and a Bzlmod build from MODULE.bazel.

third_party_cc_library and third_party_tool are for third_party/BUILD.bazel
only: they give each //third_party target its system-library or Bazel Central
Registry form (docs/bazel.md).
"""

load("@rules_cc//cc:cc_binary.bzl", "cc_binary")
load("@rules_cc//cc:cc_library.bzl", "cc_library")
load("@rules_cc//cc:cc_test.bzl", "cc_test")
load("@rules_shell//shell:sh_binary.bzl", "sh_binary")

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

def third_party_cc_library(
        name,
        system_libs,
        system_linkopts = [],
        system_defines = [],
        bcr_deps = [],
        bcr_testonly = False,
        visibility = None):
    """One third-party library, from the system or from Bazel Central Registry.

    The choice is made when the package loads, so a label of the branch not
    taken never enters the build graph: `bazel query 'deps(...)'` works in a
    WORKSPACE build that has no BCR repositories.

    Args:
      name: the target's name.
      system_libs: SYSTEM_LIBS from @proxystore_config//:config.bzl.
      system_linkopts: how to link the Debian library.
      system_defines: defines its headers need (the BCR modules carry their own).
      bcr_deps: the BCR module targets, resolved in this repository's mapping.
      bcr_testonly: the BCR targets include testonly ones (absl hash_testing).
      visibility: as usual.
    """
    if system_libs:
        cc_library(
            name = name,
            defines = system_defines,
            linkopts = system_linkopts,
            visibility = visibility,
        )
    else:
        cc_library(
            name = name,
            testonly = bcr_testonly,
            visibility = visibility,
            deps = bcr_deps,
        )

def third_party_tool(name, system_libs, system_script, bcr_tool, visibility = None):
    """A build tool (flatc): a wrapper of the system binary, or the BCR one.

    Args:
      name: the target's name.
      system_libs: SYSTEM_LIBS from @proxystore_config//:config.bzl.
      system_script: a shell script that execs the system binary.
      bcr_tool: the BCR module's binary target.
      visibility: as usual.
    """
    if system_libs:
        sh_binary(
            name = name,
            srcs = [system_script],
            visibility = visibility,
        )
    else:
        native.alias(
            name = name,
            actual = bcr_tool,
            visibility = visibility,
        )
