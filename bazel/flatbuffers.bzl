"""flatbuffer_cc_library: C++ code from a .fbs schema with //third_party:flatc."""

load("@rules_cc//cc:cc_library.bzl", "cc_library")

# Labels resolve against this repository, so the macro also works when a
# downstream workspace loads it as @proxystore//bazel:flatbuffers.bzl.
_FLATC = str(Label("//third_party:flatc"))
_FLATBUFFERS = str(Label("//third_party:flatbuffers"))

def flatbuffer_cc_library(name, src, visibility = None, testonly = False):
    """Generates `<schema>_generated.h` from `src` and wraps it as a cc_library.

    Args:
      name: the cc_library's name.
      src: one .fbs file in this package.
      visibility: of the cc_library.
      testonly: as usual.
    """
    out = src.replace(".fbs", "_generated.h")
    native.genrule(
        name = name + "_gen",
        srcs = [src],
        outs = [out],
        cmd = "$(location " + _FLATC + ") --cpp --scoped-enums -o $(@D) $(SRCS)",
        tools = [_FLATC],
        testonly = testonly,
    )
    cc_library(
        name = name,
        hdrs = [out],
        # Included as "proxystore/<package>/<schema>_generated.h", like every
        # header of ours (bazel/defs.bzl).
        include_prefix = "proxystore/" + native.package_name(),
        deps = [_FLATBUFFERS],
        visibility = visibility,
        testonly = testonly,
    )
