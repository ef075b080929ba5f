#!/bin/sh
# Runs the system flatc (Debian flatbuffers-compiler 2.0.8).
exec /usr/bin/flatc "$@"
