#!/bin/sh
# //third_party:flatc with system libraries: runs the system flatc (Debian
# flatbuffers-compiler 2.0.8, matching libflatbuffers-dev).
exec /usr/bin/flatc "$@"
