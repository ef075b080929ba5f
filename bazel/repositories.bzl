"""Repository macro for proxystore-cpp.

A downstream WORKSPACE uses this project like this (gRPC and tensorstore work
the same way):

    local_repository(name = "proxystore", path = "/path/to/proxystore-cpp")
    # or http_archive(name = "proxystore", ...)
    load("@proxystore//bazel:repositories.bzl", "proxystore_dependencies")
    proxystore_dependencies()

Third-party C++ libraries are Debian -dev packages wrapped in
`@proxystore//third_party:*`; this macro only declares the repositories that
Bazel 4 itself wants and cannot download offline. Each is generated in place
by a tiny repository rule, so nothing depends on a path outside this tree, and
a repository the caller already declared is left alone.
"""

_RULES_CC_DEFS = '''
"""Offline stand-in for rules_cc: forwards to Bazel's native C++ rules."""
def cc_binary(**kwargs):
    native.cc_binary(**kwargs)

def cc_library(**kwargs):
    native.cc_library(**kwargs)

def cc_test(**kwargs):
    native.cc_test(**kwargs)

def cc_import(**kwargs):
    native.cc_import(**kwargs)

def cc_proto_library(**kwargs):
    native.cc_proto_library(**kwargs)

def cc_toolchain(**kwargs):
    native.cc_toolchain(**kwargs)

def cc_toolchain_suite(**kwargs):
    native.cc_toolchain_suite(**kwargs)

def objc_library(**kwargs):
    native.objc_library(**kwargs)
'''

_RULES_JAVA_DEFS = '''
"""Offline stand-in for rules_java: forwards to Bazel's native Java rules."""
def java_binary(**kwargs):
    native.java_binary(**kwargs)

def java_library(**kwargs):
    native.java_library(**kwargs)

def java_import(**kwargs):
    native.java_import(**kwargs)

def java_test(**kwargs):
    native.java_test(**kwargs)

def java_toolchain(**kwargs):
    native.java_toolchain(**kwargs)

def java_runtime(**kwargs):
    native.java_runtime(**kwargs)

def java_plugin(**kwargs):
    native.java_plugin(**kwargs)

def java_proto_library(**kwargs):
    native.java_proto_library(**kwargs)
'''

_COVERAGE_BUILD = '''
# Offline stand-in for remote_coverage_tools. Coverage is not collected with
# these; they exist because every test rule names them as implicit inputs.
package(default_visibility = ["//visibility:public"])

sh_binary(name = "coverage_report_generator", srcs = ["noop.sh"])

sh_binary(name = "lcov_merger", srcs = ["noop.sh"])

filegroup(name = "coverage_output_generator", srcs = ["noop.sh"])
'''

def _stub_repo_impl(ctx):
    for path, content in ctx.attr.files.items():
        ctx.file(path, content, executable = path.endswith(".sh"))

_stub_repo = repository_rule(
    implementation = _stub_repo_impl,
    attrs = {"files": attr.string_dict(mandatory = True)},
    local = True,
)

def _maybe_stub(name, files):
    if name not in native.existing_rules():
        _stub_repo(name = name, files = files)

def proxystore_dependencies():
    """Declares the repositories proxystore-cpp needs; skips ones already declared."""
    _maybe_stub("rules_cc", {
        "WORKSPACE": 'workspace(name = "rules_cc")\n',
        "BUILD": "",
        "cc/BUILD": "",
        "cc/defs.bzl": _RULES_CC_DEFS,
    })
    _maybe_stub("rules_java", {
        "WORKSPACE": 'workspace(name = "rules_java")\n',
        "BUILD": "",
        "java/BUILD": "",
        "java/defs.bzl": _RULES_JAVA_DEFS,
    })
    _maybe_stub("remote_coverage_tools", {
        "WORKSPACE": 'workspace(name = "remote_coverage_tools")\n',
        "BUILD": _COVERAGE_BUILD,
        "noop.sh": "#!/bin/sh\nexit 0\n",
    })
