"""Repository macro for proxystore-cpp (WORKSPACE builds).

A downstream WORKSPACE uses this project like this (gRPC and tensorstore work
the same way):

    local_repository(name = "proxystore", path = "/path/to/proxystore-cpp")
    # or http_archive(name = "proxystore", ...)
    load("@proxystore//bazel:repositories.bzl", "proxystore_dependencies")
    proxystore_dependencies()

Third-party C++ libraries are Debian -dev packages wrapped in
`@proxystore//third_party:*` (or, with PROXYSTORE_SYSTEM_LIBS=0, Bazel
Central Registry modules: see docs/bazel.md). This macro declares the
repositories that Bazel 4 itself wants and cannot download offline, the
rules_cc and rules_shell that every BUILD file loads its rules from, and
@proxystore_config, which tells third_party/BUILD.bazel where the libraries
come from. Each is generated in place by a tiny repository rule, so nothing
depends on a path outside this tree, and a repository the caller already
declared is left alone (a caller's own rules_cc must be 0.0.10 or newer and
its rules_shell 0.1.0 or newer: they have the per-rule .bzl files).

With Bzlmod (MODULE.bazel) this macro is not used; MODULE.bazel declares
@proxystore_config with the same repository rule.
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

_FORWARD = '''
"""Offline stand-in for {repo}: forwards to Bazel's native {rule}."""

def {rule}(**kwargs):
    native.{rule}(**kwargs)
'''

def _forward(repo, rule):
    return _FORWARD.format(repo = repo, rule = rule)

# The per-rule files rules_cc 0.0.10+ and rules_shell 0.1.0+ have, which
# buildifier's native-* lint asks every BUILD file to load from.
_RULES_CC_FILES = {
    "cc/%s.bzl" % rule: _forward("rules_cc", rule)
    for rule in [
        "cc_binary",
        "cc_import",
        "cc_library",
        "cc_test",
        "objc_library",
    ]
}

_RULES_SHELL_FILES = {
    "shell/%s.bzl" % rule: _forward("rules_shell", rule)
    for rule in [
        "sh_binary",
        "sh_library",
        "sh_test",
    ]
}

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

_SYSTEM_LIBS_ENV = "PROXYSTORE_SYSTEM_LIBS"

def _proxystore_config_impl(ctx):
    # ctx.getenv (Bazel 7.1+) records the dependency on the variable; Bazel 4
    # has only ctx.os.environ, with `environ` below doing the recording.
    if hasattr(ctx, "getenv"):
        value = ctx.getenv(_SYSTEM_LIBS_ENV, "")
    else:
        value = ctx.os.environ.get(_SYSTEM_LIBS_ENV, "")
    value = value.strip().lower()
    if value in ["", "default"]:
        system_libs = ctx.attr.system_libs
    elif value in ["1", "true", "yes", "on", "system"]:
        system_libs = True
    elif value in ["0", "false", "no", "off", "bcr", "source"]:
        system_libs = False
    else:
        fail("%s=%s: use 1 (Debian system libraries) or 0 (Bazel Central Registry modules)" % (_SYSTEM_LIBS_ENV, value))
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "")
    ctx.file("config.bzl", "\n".join([
        '"""Where proxystore-cpp\'s third-party libraries come from (generated)."""',
        "",
        "# True: Debian -dev packages, linked by name. False: the Bazel Central",
        "# Registry modules MODULE.bazel names (Bzlmod only).",
        "SYSTEM_LIBS = %s" % system_libs,
        "",
    ]))

proxystore_config = repository_rule(
    doc = """Generates @proxystore_config//:config.bzl with SYSTEM_LIBS.

The one switch between Debian system libraries and Bazel Central Registry
modules for every //third_party target. The environment variable
PROXYSTORE_SYSTEM_LIBS (pass it with --repo_env=PROXYSTORE_SYSTEM_LIBS=0 or 1)
overrides `system_libs`.
""",
    implementation = _proxystore_config_impl,
    attrs = {
        "system_libs": attr.bool(
            default = True,
            doc = "Use Debian system libraries unless PROXYSTORE_SYSTEM_LIBS says otherwise.",
        ),
    },
    environ = [_SYSTEM_LIBS_ENV],
)

def _maybe_stub(name, files):
    if name not in native.existing_rules():
        _stub_repo(name = name, files = files)

def proxystore_dependencies(system_libs = True):
    """Declares the repositories proxystore-cpp needs; skips ones already declared.

    Args:
      system_libs: link the Debian system libraries (the default and the only
        tested setup). False points //third_party at Bazel Central Registry
        repository names (@abseil-cpp, @flatbuffers, ...), which a WORKSPACE
        must then declare itself. PROXYSTORE_SYSTEM_LIBS overrides it.
    """
    if "proxystore_config" not in native.existing_rules():
        proxystore_config(name = "proxystore_config", system_libs = system_libs)
    _maybe_stub("rules_cc", dict(
        {
            "WORKSPACE": 'workspace(name = "rules_cc")\n',
            "BUILD": "",
            "cc/BUILD": "",
            "cc/defs.bzl": _RULES_CC_DEFS,
        },
        **_RULES_CC_FILES
    ))
    _maybe_stub("rules_shell", dict(
        {
            "WORKSPACE": 'workspace(name = "rules_shell")\n',
            "BUILD": "",
            "shell/BUILD": "",
        },
        **_RULES_SHELL_FILES
    ))
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
