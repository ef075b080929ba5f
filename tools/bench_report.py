#!/usr/bin/env python3
"""Turns the benchmark suite's Google Benchmark JSON into a report.

  tools/bench_report.py bench-out/proxystore_bench.json bench-out/

writes bench-out/report.md (connector x operation x size: p50, p99, faults
and heap bytes per op, the floor each row is compared with, the ratio, and the
speed-target verdicts) and bench-out/latency.png (p50 latency vs size per
connector, log-log, drawn by gnuplot), plus latency.dat/latency.gp.
Exit status 0 whatever the verdicts: the report states them.
"""
import json
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict

SIZES = ["100B", "10KB", "1MB", "100MB"]
SIZE_BYTES = {"100B": 100, "10KB": 10_000, "1MB": 1_000_000, "100MB": 100_000_000}


def load(path):
    with open(path) as f:
        data = json.load(f)
    rows = {}
    for b in data.get("benchmarks", []):
        if b.get("error_occurred"):
            rows["/".join(b["run_name"].split("/")[:4])] = {
                "error": b.get("error_message", "error")}
            continue
        agg = b.get("aggregate_name")
        if agg not in (None, "median"):
            continue
        # "store/get/local/100B/min_time:0.020/manual_time" -> first 4 parts.
        name = "/".join(b.get("run_name", b["name"]).split("/")[:4])
        row = {
            "p50": b.get("p50_us"),
            "p99": b.get("p99_us"),
            "faults": b.get("faults_per_op"),
            "alloc": b.get("alloc_bytes_per_op"),
            "batch": b.get("batch"),
            "wire": b.get("wire_bytes"),
            "stored_ratio": b.get("stored_ratio"),
        }
        if row["p50"] is None:  # Fall back to the mean per-op time.
            row["p50"] = b.get("us_per_op")
        rows[name] = row
    return data.get("context", {}), rows


def p50(rows, name):
    r = rows.get(name)
    if not r or "error" in r:
        return None
    return r["p50"]


FLOORS = {
    # (op, connector) -> floor op used for the ratio column
    "put": {"local": "map_put", "file": "file_write", "redis": "redis_set",
            "redis_unix": "redis_set", "shm": "memcpy", "multi": "memcpy"},
    "put_moved": {"local": "map_put", "file": "file_write", "redis": "redis_set",
                  "redis_unix": "redis_set", "shm": "memcpy", "multi": "memcpy"},
    "get": {"local": "map_get", "file": "file_read", "redis": "redis_get",
            "redis_unix": "redis_get", "shm": "shm_mmap", "multi": "shm_mmap"},
    "get_view": {"local": "map_lookup", "file": "file_read", "redis": "redis_get",
                 "redis_unix": "redis_get", "shm": "shm_mmap", "multi": "shm_mmap"},
    "get_hit": {c: "map_lookup" for c in
                ["local", "file", "redis", "redis_unix", "shm", "multi"]},
    "proxy_resolve": {"local": "map_get", "file": "file_read", "redis": "redis_get",
                      "redis_unix": "redis_get", "shm": "shm_mmap", "multi": "shm_mmap"},
    "proxy_resolve_remote": {"file": "file_read", "redis": "redis_get",
                             "redis_unix": "redis_get", "shm": "shm_mmap",
                             "multi": "shm_mmap"},
    "proxy_resolve_remote_view": {"file": "file_read", "redis": "redis_get",
                                  "redis_unix": "redis_get", "shm": "shm_mmap",
                                  "multi": "shm_mmap"},
    "flatbuffer_read": {"local": "map_lookup", "file": "file_read",
                        "redis": "redis_get", "redis_unix": "redis_get",
                        "shm": "shm_mmap", "multi": "shm_mmap"},
}


def floor_of(rows, op, connector, size):
    f = FLOORS.get(op, {}).get(connector)
    if f is None:
        return None, None
    fsize = "100B" if f == "map_lookup" else size
    name = f"floor/{f}/-/{fsize}"
    return name, p50(rows, name)


def targets(rows):
    """Yields (target text, measured text, verdict) for every issue target."""
    out = []

    def ratio_target(desc, num_name, den_names, limit, den_text=None):
        num = p50(rows, num_name)
        dens = [p50(rows, d) for d in den_names]
        if num is None or any(d is None for d in dens):
            out.append((desc, "not measured in this run", "n/a"))
            return
        den = sum(dens)
        r = num / den if den > 0 else math.inf
        measured = f"{num:.3f} us / {den:.3f} us = {r:.2f}x"
        out.append((desc, measured, "MET" if r <= limit else "MISSED"))

    for size in SIZES:
        lim = 4.0 if size == "100B" else 1.2
        ratio_target(f"local get (uncached) {size} <= {lim}x map copy-out",
                     f"store/get/local/{size}", [f"floor/map_get/-/{size}"], lim)
    for size in SIZES:
        ratio_target(f"local get (cache hit) {size} <= 3x map lookup",
                     f"store/get_hit/local/{size}", ["floor/map_lookup/-/100B"], 3.0)
    for size in SIZES[1:]:
        ratio_target(f"local put {size} <= 1.2x map copy-in",
                     f"store/put/local/{size}", [f"floor/map_put/-/{size}"], 1.2)
    for size in SIZES[1:]:
        r = rows.get(f"store/put_moved/local/{size}")
        if not r or "error" in r or r.get("alloc") is None:
            out.append((f"local put of a moved-in buffer {size} copies nothing",
                        "not measured in this run", "n/a"))
        else:
            frac = r["alloc"] / SIZE_BYTES[size]
            out.append((f"local put of a moved-in buffer {size} copies nothing",
                        f"{r['alloc']:.0f} heap bytes/op ({frac:.4f} of the object)",
                        "MET" if frac < 0.01 else "MISSED"))
    ratio_target("proxy create (local, 100B) <= 2x (map put + factory build)",
                 "store/proxy_create/local/100B",
                 ["floor/map_put/-/100B", "floor/factory_build/-/-"], 2.0)
    ratio_target("proxy serialize+deserialize <= 3x (factory build + verify)",
                 "store/proxy_serde/local/100B",
                 ["floor/factory_build/-/-", "floor/factory_verify/-/-"], 3.0)
    r = rows.get("store/proxy_serde/local/100B")
    if r and r.get("wire"):
        out.append(("serialized proxy < 512 bytes", f"{r['wire']:.0f} bytes",
                    "MET" if r["wire"] < 512 else "MISSED"))
    for size in SIZES:
        lim = 1.10 if size in ("100B", "10KB") else 1.25
        ratio_target(f"redis put {size} <= {lim}x raw hiredis SET",
                     f"store/put/redis/{size}", [f"floor/redis_set/-/{size}"], lim)
        ratio_target(f"redis get {size} <= {lim}x raw hiredis GET (byte view)",
                     f"store/get_view/redis/{size}", [f"floor/redis_get/-/{size}"], lim)
    ratio_target("redis put_batch 100x10KB <= 1.2x pipelined SET",
                 "store/put_batch/redis/100x10KB",
                 ["floor/redis_pipeline_set/-/100x10KB"], 1.2)
    ratio_target("redis get_batch 100x10KB <= 1.2x pipelined GET",
                 "store/get_batch/redis/100x10KB",
                 ["floor/redis_pipeline_get/-/100x10KB"], 1.2)
    for size in SIZES:
        ratio_target(f"file put {size} <= 1.3x raw file write",
                     f"store/put/file/{size}", [f"floor/file_write/-/{size}"], 1.3)
        ratio_target(f"file get {size} <= 1.3x raw file read",
                     f"store/get/file/{size}", [f"floor/file_read/-/{size}"], 1.3)
    for op, what in [("flatbuffer_read", "FlatBuffers, same process"),
                     ("get_view", "byte view, same process"),
                     ("proxy_resolve_remote_view", "byte view, another process")]:
        ratio_target(f"shm 100MB read in place ({what}) <= 3x mmap-only",
                     f"store/{op}/shm/100MB", ["floor/shm_mmap/-/100MB"], 3.0)
    return out


def fmt(x, digits=3):
    if x is None:
        return "-"
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    context, rows = load(sys.argv[1])
    outdir = sys.argv[2]
    os.makedirs(outdir, exist_ok=True)

    by_conn = defaultdict(list)
    floors = []
    for name in rows:
        parts = name.split("/")
        if len(parts) != 4:
            continue
        group, op, conn, size = parts
        (floors if group == "floor" else by_conn[conn]).append((op, size, name))

    lines = ["# proxystore-cpp benchmark report", ""]
    lines.append(f"Machine: {context.get('num_cpus', '?')} CPUs, "
                 f"{context.get('mhz_per_cpu', '?')} MHz; run {context.get('date', '')}. "
                 "Suite built with -c opt -O2 (tools/bench.sh).")
    lines.append("")
    lines.append("Times are per operation in microseconds (p50/p99 from the "
                 "suite's own per-op samples; fast ops are timed in batches, so "
                 "their p99 is a p99 of batch averages). faults = page faults "
                 "per op; heap = bytes requested from malloc per op. ratio = "
                 "p50 / p50 of the floor named, measured in the same run.")
    lines.append("")
    lines.append("## Speed targets")
    lines.append("")
    lines.append("| target | measured (p50) | verdict |")
    lines.append("|---|---|---|")
    verdicts = targets(rows)
    for desc, measured, verdict in verdicts:
        lines.append(f"| {desc} | {measured} | {verdict} |")
    met = sum(1 for v in verdicts if v[2] == "MET")
    missed = sum(1 for v in verdicts if v[2] == "MISSED")
    lines.append("")
    lines.append(f"{met} met, {missed} missed, "
                 f"{len(verdicts) - met - missed} not measured.")
    lines.append("")

    def table(title, entries, with_floor):
        lines.append(f"## {title}")
        lines.append("")
        head = "| operation | size | p50 us | p99 us | faults | heap B |"
        sep = "|---|---|---:|---:|---:|---:|"
        if with_floor:
            head += " floor | ratio |"
            sep += "---|---:|"
        lines.append(head)
        lines.append(sep)
        order = {s: i for i, s in enumerate(SIZES)}
        for op, size, name in sorted(entries, key=lambda e: (e[0], order.get(e[1], 99), e[1])):
            r = rows[name]
            if "error" in r:
                lines.append(f"| {op} | {size} | error: {r['error']} | | | |" +
                             (" | |" if with_floor else ""))
                continue
            row = (f"| {op} | {size} | {fmt(r['p50'])} | {fmt(r['p99'])} | "
                   f"{fmt(r['faults'], 1)} | {fmt(r['alloc'], 0)} |")
            if with_floor:
                fname, fval = floor_of(rows, op, name.split('/')[2], size)
                if fval:
                    row += f" {fname.split('/')[1]} | {r['p50'] / fval:.2f} |"
                else:
                    row += " - | - |"
            lines.append(row)
        lines.append("")

    table("Floors", floors, False)
    for conn in sorted(by_conn):
        table(f"Connector: {conn}", by_conn[conn], True)

    # Plot: p50 of uncached get and of put vs size, per connector.
    dat = os.path.join(outdir, "latency.dat")
    series = []
    with open(dat, "w") as f:
        for conn in sorted(by_conn):
            for op in ("get", "put"):
                pts = [(SIZE_BYTES[s], p50(rows, f"store/{op}/{conn}/{s}")) for s in SIZES]
                pts = [(x, y) for x, y in pts if y]
                if len(pts) < 2:
                    continue
                f.write(f"# {conn} {op}\n")
                for x, y in pts:
                    f.write(f"{x} {y}\n")
                f.write("\n\n")
                series.append(f"{conn} {op}")
        for fl in ("memcpy", "map_get"):
            pts = [(SIZE_BYTES[s], p50(rows, f"floor/{fl}/-/{s}")) for s in SIZES]
            pts = [(x, y) for x, y in pts if y]
            if len(pts) >= 2:
                f.write(f"# floor {fl}\n")
                for x, y in pts:
                    f.write(f"{x} {y}\n")
                f.write("\n\n")
                series.append(f"floor {fl}")
    png = os.path.join(outdir, "latency.png")
    gp = os.path.join(outdir, "latency.gp")
    with open(gp, "w") as f:
        f.write("set terminal png size 1100,750 noenhanced\n")
        f.write(f"set output '{png}'\n")
        f.write("set logscale xy\nset grid\nset key outside right\n")
        f.write("set xlabel 'object size (bytes)'\nset ylabel 'p50 latency (us)'\n")
        f.write("set title 'proxystore-cpp: p50 latency vs object size'\n")
        plots = []
        for i, s in enumerate(series):
            dash = " dt 2" if s.endswith("put") else (" dt 3" if s.startswith("floor") else "")
            plots.append(f"'{dat}' index {i} with linespoints lw 2{dash} title '{s}'")
        f.write("plot " + ", \\\n     ".join(plots) + "\n")
    plotted = False
    if series and shutil.which("gnuplot"):
        plotted = subprocess.run(["gnuplot", gp]).returncode == 0
    lines.append("## Plot")
    lines.append("")
    lines.append("![p50 latency vs size](latency.png)" if plotted else
                 "(gnuplot not available or failed: see latency.gp/latency.dat)")
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"report: {os.path.join(outdir, 'report.md')} "
          f"({met} targets met, {missed} missed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
