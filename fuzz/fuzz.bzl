"""proxystore_fuzz_target: one libFuzzer target, its replay test and binary."""

load("//bazel:defs.bzl", "proxystore_cc_binary", "proxystore_cc_library", "proxystore_cc_test")

def proxystore_fuzz_target(name, deps):
    """Declares the targets of `<name>_fuzzer.cc` (an LLVMFuzzerTestOneInput).

    - `<name>_fuzzer_lib`: the target's code (alwayslink).
    - `<name>_replay_test`: a cc_test replaying `corpus/<name>/` and fixed
      nasty inputs through it (replay_main.cc) with the normal toolchain, so
      `bazel test //fuzz/...` and the sanitizer configs run it.
    - `fuzz_<name>`: the libFuzzer binary. Needs clang (-fsanitize=fuzzer),
      so it is tagged manual; tools/fuzz.sh builds it with --config=fuzz in
      a separate output base.

    Args:
      name: the target's name; the source is `<name>_fuzzer.cc` and the seed
        corpus `corpus/<name>/`.
      deps: what the source needs besides :fuzz_util.
    """
    lib = name + "_fuzzer_lib"
    proxystore_cc_library(
        name = lib,
        srcs = [name + "_fuzzer.cc"],
        deps = deps + [":fuzz_util"],
        alwayslink = True,
    )
    proxystore_cc_test(
        name = name + "_replay_test",
        # Replays take up to a minute under TSan on a loaded 2-core machine.
        size = "medium",
        srcs = ["replay_main.cc"],
        args = ["fuzz/corpus/" + name],
        data = native.glob(["corpus/" + name + "/**"]),
        linkstatic = True,
        deps = [
            ":" + lib,
            "//third_party:gtest",
        ],
    )
    proxystore_cc_binary(
        name = "fuzz_" + name,
        linkopts = ["-fsanitize=fuzzer"],
        linkstatic = True,
        tags = ["manual"],
        deps = [":" + lib],
    )
