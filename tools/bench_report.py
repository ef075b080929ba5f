#!/usr/bin/env python3
"""Turns the benchmark suite's JSON into its report, verdicts and pictures.

  tools/bench_report.py bench-out/proxystore_bench.json bench-out/ [--elapsed=S]
  tools/bench_report.py --compare A.json B.json

The first form writes into the output folder:
  report.md       the speed-target verdicts, then per connector its floors and
                  operations: p50, range over repetitions, p99, page faults and
                  heap bytes per op, the floor each row is compared with, ratio;
                  then the thread scaling (threads/... rows): per connector,
                  aggregate ops/s of 1-8 threads sharing one store beside the
                  same floors run with the same threads
  connectors.png  one panel per connector: p50 vs object size of its main
                  operations and their floors, with the repetition range
  verdicts.png    each target's measured ratio against its limit
  threads.png     one panel per connector: ops/s vs threads (1, 2, 4, 8) of
                  each operation (solid) and its floor (dashed)
  workflow_memory.png
                  bytes held by the store after each task of the
                  workflow-memory benchmark, one line per variant (when the
                  output folder holds its workflow_memory.json)
  pipelining.png  the task-pipelining benchmark's median makespan per variant
                  (bars, range over repetitions) with its floor as a line
                  (when the output folder holds its task_pipelining.json)
and, in report.md, the stream-throughput and the Redis Cluster vs one server
sections (when the output folder holds stream_throughput.json and
redis_cluster.json)
and prints the verdict table. A JSON from an interrupted run gives the report
of the rows it holds (targets whose rows are missing say "not measured").
The second form prints, per target, how the verdict and ratio moved from run
A to run B (tools/bench.sh --compare also runs Google Benchmark's compare.py).

Statistics. A row's p50 is the median over its repetitions of each
repetition's p50; its range is the lowest and highest repetition p50. A
target's ratio is row p50 / floor p50 (unrounded); its range is a 90%
confidence interval of that ratio, distribution-free: of the ratios of every
repetition of the row to every repetition of the floor (m x n of them), it
drops the k lowest and the k highest, k from the exact Mann-Whitney
distribution (Hodges-Lehmann's interval for a shift, taken on log times).
With 7 repetitions each (the default form's rows with a target), k = 11 of
49; with 9 (--full), 21 of 81; with 3 each (100 MB), k = 0 (the lowest to
the highest ratio). One disturbed repetition of the row or of the floor (a
busy SMT sibling, a migration: interference only slows a repetition down)
then leaves the range where the others put it instead of deciding it. The
verdict is MET when the whole range is within the limit, MISSED when the
whole range is beyond it, and UNSURE when the range straddles it, or when a
redis row and its floor ran in different loopback modes (their raw PING round
trips differ more than 2x).
Exit status 0 whatever the verdicts: the report states them.
"""
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from collections import OrderedDict

SIZES = ["100B", "10KB", "1MB", "100MB"]
SIZE_BYTES = {"100B": 100, "10KB": 10_000, "1MB": 1_000_000,
              "100MB": 100_000_000}
SIZE_LABEL = {"100B": "100 B", "10KB": "10 KB", "1MB": "1 MB",
              "100MB": "100 MB"}
MODE_GAP = 2.0  # PING round trips further apart than this: different modes.


# --- Loading ------------------------------------------------------------------

class Row:
    def __init__(self, name):
        self.name = name
        parts = name.split("/")
        self.group, self.op, self.conn, self.size = (parts + ["", "", "", ""])[:4]
        self.p50 = self.lo = self.hi = None
        self.p50s = []  # each repetition's p50
        self.p99 = self.faults = self.alloc = self.alloc_max = None
        self.wire = self.stored_ratio = None
        # Thread rows: aggregate operations per second (median over the
        # repetitions, lowest and highest).
        self.ops = self.ops_lo = self.ops_hi = None
        self.cpu = None  # CPU time per op (thread rows: all threads')
        self.reps = 0
        self.pings = []
        self.error = None

    @property
    def ok(self):
        return self.error is None and self.p50 is not None


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def load(path):
    """Returns (context, OrderedDict name -> Row) in the order rows ran."""
    with open(path) as f:
        data = json.load(f)
    reps = OrderedDict()
    medians = {}
    errors = {}
    for b in data.get("benchmarks", []):
        name = "/".join(b.get("run_name", b["name"]).split("/")[:4])
        reps.setdefault(name, [])
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
        elif b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
        else:
            reps[name].append(b)
    rows = OrderedDict()
    for name, runs in reps.items():
        r = Row(name)
        if not runs and name in medians:  # A JSON with aggregates only.
            runs = [medians[name]]
        p50s = [b.get("p50_us", b.get("us_per_op")) for b in runs]
        p50s = [x for x in p50s if x is not None]
        if p50s:
            r.p50, r.lo, r.hi = _median(p50s), min(p50s), max(p50s)
            r.p50s = p50s
            r.reps = len(p50s)
            r.p99 = _median([b.get("p99_us") for b in runs])
            r.faults = _median([b.get("faults_per_op") for b in runs])
            r.alloc = _median([b.get("alloc_bytes_per_op") for b in runs])
            allocs = [b.get("alloc_bytes_per_op") for b in runs
                      if b.get("alloc_bytes_per_op") is not None]
            r.alloc_max = max(allocs) if allocs else None
            r.wire = _median([b.get("wire_bytes") for b in runs])
            r.stored_ratio = _median([b.get("stored_ratio") for b in runs])
            r.cpu = _median([b.get("cpu_us_per_op") for b in runs])
            ops = [b["ops_per_s"] for b in runs if b.get("ops_per_s")]
            if ops:
                r.ops, r.ops_lo, r.ops_hi = _median(ops), min(ops), max(ops)
            for b in runs:
                r.pings += [b[k] for k in ("ping_us", "ping_after_us") if k in b]
        elif name in errors:
            r.error = errors[name]
        else:
            continue
        rows[name] = r
    return data.get("context", {}), rows


# --- Floors and targets ---------------------------------------------------------

def find_row(rows, name):
    """rows[name]; a sized lookup floor falls back to the sizeless one that
    runs made before the lookup floors were measured beside each size."""
    r = rows.get(name)
    if r is None and name.startswith("floor/") and "_lookup/" in name:
        r = rows.get(name.rsplit("/", 1)[0] + "/-")
    return r


def _by_kind(conn, size, shm, file_):
    """multi puts objects up to 1 MB in shm, larger ones in files."""
    if conn == "multi":
        return shm if SIZE_BYTES.get(size, 0) <= 1_000_000 else file_
    return {"shm": shm, "file": file_}.get(conn)


def floor_name(op, conn, size):
    """The floor row a store row is compared with, or None."""
    redis = conn in ("redis", "redis_unix")
    if op in ("put", "put_moved"):
        f = ("shared_map_put" if conn == "local" else "redis_set" if redis
             else _by_kind(conn, size, "shm_write", "file_publish"))
    elif op in ("get", "proxy_resolve", "proxy_resolve_remote"):
        f = ("shared_map_get" if conn == "local" else "redis_get" if redis
             else _by_kind(conn, size, "shm_mmap", "file_read"))
    elif op in ("get_view", "flatbuffer_read", "proxy_resolve_remote_view"):
        if conn == "local":
            return f"floor/shared_map_lookup/local/{size}"
        f = "redis_get" if redis else _by_kind(conn, size, "shm_mmap", "file_read")
    elif op == "get_hit":
        return f"floor/shared_map_lookup/local/{size}"
    elif op in ("put_batch", "get_batch") and redis:
        f = "redis_pipeline_" + ("set" if op == "put_batch" else "get")
    else:
        return None
    return f"floor/{f}/{conn}/{size}" if f else None


def fmt_ratio(r, limit=None):
    """Enough decimals that the printed ratio is on the same side of the
    limit as the exact one (never "1.30x" for 1.3004 against 1.3)."""
    if r is None or not math.isfinite(r):
        return "-"
    for d in range(2, 8):
        s = f"{r:.{d}f}"
        if limit is None or r == limit:
            return s
        if (float(s) > limit) == (r > limit) and float(s) != limit:
            return s
    return f"{r:.8f}"


class Verdict:
    def __init__(self, desc, limit=None):
        self.desc = desc
        self.limit = limit
        self.ratio = self.lo = self.hi = None
        self.measured = "not measured in this run"
        self.verdict = "n/a"
        self.note = ""


def _mann_whitney_cdf(m, n):
    """P(U <= u) for u = 0..m*n under the null hypothesis (exact)."""
    # counts[i][j][u]: arrangements of i and j items with U = u, built up
    # one item at a time.
    counts = [[None] * (n + 1) for _ in range(m + 1)]
    for i in range(m + 1):
        for j in range(n + 1):
            if i == 0 or j == 0:
                counts[i][j] = [1] + [0] * (i * j)
                continue
            c = [0] * (i * j + 1)
            # The largest item is from the first sample (adds j to U) or not.
            for u, w in enumerate(counts[i - 1][j]):
                c[u + j] += w
            for u, w in enumerate(counts[i][j - 1]):
                c[u] += w
            counts[i][j] = c
    total = sum(counts[m][n])
    cdf, acc = [], 0
    for w in counts[m][n]:
        acc += w
        cdf.append(acc / total)
    return cdf


def ratio_interval(nums, dens, confidence=0.90):
    """Distribution-free confidence interval of nums/dens (times): the
    Hodges-Lehmann interval of the shift of log times, from the m*n pairwise
    ratios without the k lowest and k highest."""
    nums = [x for x in nums if x and x > 0]
    dens = [x for x in dens if x and x > 0]
    if not nums or not dens:
        return math.inf, math.inf
    ratios = sorted(a / b for a in nums for b in dens)
    cdf = _mann_whitney_cdf(len(nums), len(dens))
    tail = (1 - confidence) / 2
    # c = the largest u with P(U <= u) <= tail; the interval runs from the
    # (c+1)-th lowest to the (c+1)-th highest ratio (the whole span when even
    # U = 0 is likelier than the tail).
    c = -1
    for u, p in enumerate(cdf):
        if p > tail + 1e-12:
            break
        c = u
    k = max(c, 0)
    return ratios[k], ratios[len(ratios) - 1 - k]


def _mode_note(num, dens):
    """A note if a redis row and its floor ran in different loopback modes:
    their median raw PING round trips differ more than MODE_GAP times."""
    rtts = [(r, _median(r.pings)) for r in [num] + dens if r.pings]
    if len(rtts) < 2:
        return None
    vals = [v for _, v in rtts]
    if max(vals) <= MODE_GAP * min(vals):
        return None
    return ("row and floor ran in different loopback modes (PING " +
            ", ".join(f"{r.group} {human_us(v)}" for r, v in rtts) + ")")


def ratio_target(rows, desc, num_name, den_names, limit):
    v = Verdict(desc, limit)
    num = rows.get(num_name)
    dens = [find_row(rows, d) for d in den_names]
    missing = [n for n, r in zip([num_name] + den_names, [num] + dens)
               if r is None or not r.ok]
    if missing:
        errs = [rows[n].error for n in missing if n in rows and rows[n].error]
        v.note = ("error: " + errs[0]) if errs else "missing: " + ", ".join(missing)
        return v
    den = sum(d.p50 for d in dens)
    v.ratio = num.p50 / den if den > 0 else math.inf
    # Several floors add up repetition by repetition.
    den_samples = [sum(xs) for xs in zip(*(d.p50s for d in dens))]
    v.lo, v.hi = ratio_interval(num.p50s, den_samples)
    v.lo, v.hi = min(v.lo, v.ratio), max(v.hi, v.ratio)
    v.measured = f"{human_us(num.p50)} / {human_us(den)}"
    if v.hi <= limit:
        v.verdict = "MET"
    elif v.lo > limit:
        v.verdict = "MISSED"
    else:
        v.verdict = "UNSURE"
        v.note = "range straddles the limit"
    if min([num.reps] + [d.reps for d in dens]) < 2:
        v.note = "1 repetition: no range"
    mode = _mode_note(num, dens)
    if mode:
        v.verdict = "UNSURE"
        v.note = mode
    return v


def targets(rows):
    """The speed targets, in a fixed order."""
    out = []
    for size in SIZES:
        lim = {"100B": 3.0, "10KB": 1.3}.get(size, 1.2)
        out.append(ratio_target(
            rows, f"local get (uncached) {size} vs shared map copy-out",
            f"store/get/local/{size}", [f"floor/shared_map_get/local/{size}"],
            lim))
    for size in SIZES:
        out.append(ratio_target(
            rows, f"local get (cache hit) {size} vs locked map lookup",
            f"store/get_hit/local/{size}",
            [f"floor/shared_map_lookup/local/{size}"],
            1.5))
    for size in SIZES:
        lim = {"100B": 3.0, "10KB": 1.3}.get(size, 1.2)
        out.append(ratio_target(
            rows, f"local put {size} vs shared map copy-in",
            f"store/put/local/{size}", [f"floor/shared_map_put/local/{size}"],
            lim))
    for size in SIZES[1:]:
        v = Verdict(f"local put of a moved-in buffer {size} copies nothing")
        r = rows.get(f"store/put_moved/local/{size}")
        if r and r.ok and r.alloc_max is not None:
            # A copy would allocate the whole object; the store's own
            # bookkeeping (key, envelope, index) is ~100-200 bytes.
            frac = r.alloc_max / SIZE_BYTES[size]
            v.measured = (f"{r.alloc_max:.0f} heap bytes/op "
                          f"({frac:.2%} of the object)")
            v.verdict = "MET" if frac < 0.1 else "MISSED"
            v.note = ("heap bytes/op < 10% of the object in every "
                      "repetition")
        out.append(v)
    out.append(ratio_target(
        rows, "proxy create (local, 100B) vs shared map put + factory build",
        "store/proxy_create/local/100B",
        ["floor/shared_map_put/local/100B", "floor/factory_build/local/-"],
        2.0))
    out.append(ratio_target(
        rows, "proxy serialize+deserialize vs factory build + verify",
        "store/proxy_serde/local/100B",
        ["floor/factory_build/local/-", "floor/factory_verify/local/-"], 3.0))
    v = Verdict("serialized proxy < 512 bytes")
    r = rows.get("store/proxy_serde/local/100B")
    if r and r.ok and r.wire:
        v.measured = f"{r.wire:.0f} bytes"
        v.verdict = "MET" if r.wire < 512 else "MISSED"
    out.append(v)
    for size in SIZES:
        lim = 1.10 if size in ("100B", "10KB") else 1.25
        out.append(ratio_target(
            rows, f"redis put {size} vs raw hiredis SET",
            f"store/put/redis/{size}", [f"floor/redis_set/redis/{size}"], lim))
        out.append(ratio_target(
            rows, f"redis get {size} (byte view) vs raw hiredis GET",
            f"store/get_view/redis/{size}", [f"floor/redis_get/redis/{size}"],
            lim))
    out.append(ratio_target(
        rows, "redis put_batch 100x10KB vs pipelined SET",
        "store/put_batch/redis/100x10KB",
        ["floor/redis_pipeline_set/redis/100x10KB"], 1.2))
    out.append(ratio_target(
        rows, "redis get_batch 100x10KB vs pipelined GET",
        "store/get_batch/redis/100x10KB",
        ["floor/redis_pipeline_get/redis/100x10KB"], 1.2))
    for size in SIZES:
        out.append(ratio_target(
            rows, f"file put {size} vs atomic file publish (write + rename)",
            f"store/put/file/{size}", [f"floor/file_publish/file/{size}"], 1.3))
        out.append(ratio_target(
            rows, f"file get {size} vs raw file read",
            f"store/get/file/{size}", [f"floor/file_read/file/{size}"], 1.3))
    for op, what in [("flatbuffer_read", "FlatBuffers"),
                     ("get_view", "byte view"),
                     ("proxy_resolve_remote_view", "byte view, other process")]:
        out.append(ratio_target(
            rows, f"shm 100MB read in place ({what}) vs mmap + first read",
            f"store/{op}/shm/100MB", ["floor/shm_mmap/shm/100MB"], 3.0))
    return out


# --- Formatting -----------------------------------------------------------------

def human_us(us):
    """Three significant digits in ns, µs, ms or s."""
    if us is None or not math.isfinite(us) or us < 0:
        return "-"
    for scale, unit in ((1e-3, "ns"), (1, "µs"), (1e3, "ms"), (1e6, "s")):
        if us < scale * 1000 or unit == "s":
            v = us / scale
            return (f"{v:.0f}" if v >= 99.95 else f"{v:.1f}" if v >= 9.995
                    else f"{v:.2f}") + " " + unit
    return "-"


def human_range(lo, hi, reps):
    if lo is None or reps < 2:
        return "-"
    a, b = human_us(lo), human_us(hi)
    ua, ub = a.split(" ")[1], b.split(" ")[1]
    return f"{a.split(' ')[0]}-{b}" if ua == ub else f"{a}-{b}"


def human_bytes(n):
    if n is None:
        return "-"
    for scale, unit in ((1, "B"), (1e3, "KB"), (1e6, "MB"), (1e9, "GB")):
        if n < scale * 1000 or unit == "GB":
            v = n / scale
            if unit == "B":
                return f"{v:.0f} B"
            return (f"{v:.0f}" if v >= 99.95 else f"{v:.1f}" if v >= 9.995
                    else f"{v:.2f}") + " " + unit
    return "-"


def verdict_line(v):
    lim = f"<= {v.limit:g}x" if v.limit is not None else ""
    ratio = f"{fmt_ratio(v.ratio, v.limit)}x" if v.ratio is not None else ""
    rng = (f"{fmt_ratio(v.lo, v.limit)}-{fmt_ratio(v.hi, v.limit)}x"
           if v.lo is not None and v.lo != v.hi else "")
    return lim, ratio, rng


def planned_rows(context):
    try:
        return int(context.get("proxystore_rows_planned", "0"))
    except ValueError:
        return 0


# --- Pictures (gnuplot) -----------------------------------------------------------

COLORS = {"put": "#1f77b4", "get": "#d62728", "get_view": "#2ca02c",
          "proxy_resolve_remote": "#9467bd"}
PANEL_OPS = [("put", "put"), ("get", "get (copy)"),
             ("get_view", "get (byte view)"),
             ("proxy_resolve_remote", "resolve in another process")]
# The floors drawn under the operations: the put floor and the read floor
# (what get, get_view and remote resolves are compared with; for local,
# get_view's floor is a map lookup, which is not drawn).
PANEL_FLOORS = [("put", "put", "#1f77b4"), ("get", "reads", "#d62728")]
US_TICS = ('("10 ns" 0.01, "100 ns" 0.1, "1 µs" 1, "10 µs" 10, '
           '"100 µs" 100, "1 ms" 1000, "10 ms" 1e4, "100 ms" 1e5, "1 s" 1e6, '
           '"10 s" 1e7)')
SIZE_TICS = '("100 B" 100, "10 KB" 1e4, "1 MB" 1e6, "100 MB" 1e8)'


def _gp_quote(s):
    return "'" + s.replace("'", "''") + "'"


def plot_connectors(rows, outdir):
    conns = []
    for r in rows.values():
        if r.group == "store" and r.conn not in conns:
            conns.append(r.conn)
    if not conns:
        return None
    cols = min(3, len(conns))
    nrows = (len(conns) + cols - 1) // cols
    png = os.path.join(outdir, "connectors.png")
    gp = [f"set terminal pngcairo size {430 * cols},{380 * nrows + 40} "
          "font 'DejaVu Sans,9' noenhanced",
          f"set output {_gp_quote(png)}",
          f"set multiplot layout {nrows},{cols} title "
          "'p50 latency per operation vs object size (bars: range over "
          "repetitions; dashed: the floor it is compared with)' font ',11'",
          "set logscale xy", "set grid", f"set xtics {SIZE_TICS}",
          f"set ytics {US_TICS}", "set xrange [50:2e8]",
          "set key top left font ',8' spacing 0.9 box opaque",
          "set bars small"]
    blocks = []
    for i, conn in enumerate(conns):
        plots = []
        first_block = len(blocks)

        def series(name, pts):
            blocks.append(f"{name} << EOD\n" + "\n".join(
                f"{x} {y} {lo} {hi}" for x, y, lo, hi in pts) + "\nEOD")

        for op, label in PANEL_OPS:
            pts = [(SIZE_BYTES[z], r.p50, r.lo, r.hi) for z in SIZES
                   for r in [rows.get(f"store/{op}/{conn}/{z}")] if r and r.ok]
            if not pts:
                continue
            series(f"$d{i}_{op}", pts)
            plots.append(f"$d{i}_{op} using 1:2:3:4 with yerrorlines lw 2 "
                         f"pt 7 ps 0.8 lc rgb '{COLORS[op]}' "
                         f"title {_gp_quote(label)}")
        for op, role, color in PANEL_FLOORS:
            pts, names = [], []
            for z in SIZES:
                fn = floor_name(op, conn, z)
                f = find_row(rows, fn) if fn else None
                if f and f.ok:
                    pts.append((SIZE_BYTES[z], f.p50, f.lo, f.hi))
                    if fn.split("/")[1] not in names:
                        names.append(fn.split("/")[1])
            if not pts:
                continue
            series(f"$f{i}_{op}", pts)
            plots.append(f"$f{i}_{op} using 1:2 with linespoints lw 1.5 dt 2 "
                         f"pt 6 ps 0.9 lc rgb '{color}' title "
                         f"{_gp_quote('floor for ' + role + ': ' + ', '.join(names))}")
        if not plots:
            continue
        ys = [float(v) for b in blocks[first_block:]
              for line in b.splitlines()[1:-1] for v in line.split()[1:]]
        ys = [y for y in ys if y > 0]
        lo = 10 ** math.floor(math.log10(min(ys)))
        hi = 10 ** math.ceil(math.log10(max(ys)))
        hi = hi if hi > lo else lo * 10
        gp.append(f"set yrange [{lo * 0.98}:{hi * 1.02}]")
        gp.append(f"set title {_gp_quote(conn)} font ',11'")
        gp.append("set xlabel 'object size'" if i // cols == nrows - 1
                  else "unset xlabel")
        gp.append("set ylabel 'p50 per op'" if i % cols == 0
                  else "unset ylabel")
        gp.append("plot " + ", \\\n     ".join(plots))
    gp.append("unset multiplot")
    script = "\n".join(blocks + gp) + "\n"
    return _run_gnuplot(script, os.path.join(outdir, "connectors.gp"), png)


def plot_verdicts(verdicts, outdir):
    vs = [v for v in verdicts if v.limit is not None]
    if not vs:
        return None
    png = os.path.join(outdir, "verdicts.png")
    n = len(vs)
    colors = {"MET": "#2ca02c", "MISSED": "#d62728", "UNSURE": "#ff7f0e",
              "n/a": "#999999"}
    data = {k: [] for k in colors}
    ytics, labels = [], []
    xs = [x for v in vs if v.ratio is not None
          for x in (v.lo / v.limit, v.hi / v.limit) if x > 0]
    xmin = min([0.5] + xs) / 1.3
    xmax = max([2.0] + xs) * 1.3
    for i, v in enumerate(vs):
        y = n - i
        lim, ratio, rng = verdict_line(v)
        desc = v.desc.replace('"', "")
        ytics.append(f'"{desc}  {lim}" {y}')
        if v.ratio is None:
            text = "not measured"
        else:
            text = f"{ratio}" + (f" ({rng})" if rng else "") + f"  {v.verdict}"
            data[v.verdict].append(
                f"{v.ratio / v.limit} {y} {v.lo / v.limit} {v.hi / v.limit}")
        labels.append(f"set label {_gp_quote(text)} at graph 1.02, first {y} "
                      f"left font ',8' tc rgb '{colors[v.verdict]}'")
    blocks, plots = [], []
    for k, lines in data.items():
        if not lines:
            continue
        name = "$" + k.replace("/", "")
        blocks.append(f"{name} << EOD\n" + "\n".join(lines) + "\nEOD")
        plots.append(f"{name} using 1:2:3:4 with xerrorbars pt 7 ps 1.2 lw 2 "
                     f"lc rgb '{colors[k]}' title '{k}'")
    if not plots:  # Nothing measured: an empty frame with the targets.
        plots.append("NaN notitle")
    # Room on the left for the longest target name (in characters of the
    # 9-point font; the names are set at 8 points), and as much more canvas.
    longest = max((len(f"{v.desc}  {verdict_line(v)[0]}") for v in vs),
                  default=0)
    lmargin = max(50, int(longest * 0.9) + 3)
    gp = [f"set terminal pngcairo size {1300 + 7 * (lmargin - 50)},"
          f"{22 * n + 150} "
          "font 'DejaVu Sans,9' noenhanced",
          f"set output {_gp_quote(png)}",
          "set title 'Speed targets: measured ratio to the floor, divided by "
          "the limit (log scale; left of the line: within the limit). Bars: "
          "90% confidence interval.' font ',11'",
          "set logscale x", f"set xrange [{xmin}:{xmax}]",
          f"set yrange [0.3:{n + 0.7}]",
          "set ytics (" + ", ".join(ytics) + ") font ',8'",
          "set xtics ('0.1' 0.1, '0.25' 0.25, '0.5' 0.5, 'limit' 1, '2' 2, "
          "'4' 4, '10' 10, '100' 100)",
          "set grid xtics ytics lc rgb '#dddddd'",
          "set arrow from 1, graph 0 to 1, graph 1 nohead lw 2 "
          "lc rgb '#444444'",
          "set key below horizontal",
          f"set lmargin {lmargin}", "set rmargin 34"] + labels + [
          "plot " + ", \\\n     ".join(plots)]
    script = "\n".join(blocks + gp) + "\n"
    return _run_gnuplot(script, os.path.join(outdir, "verdicts.gp"), png)


def _run_gnuplot(script, gp_path, png):
    with open(gp_path, "w") as f:
        f.write(script)
    if not shutil.which("gnuplot"):
        return None
    r = subprocess.run(["gnuplot", gp_path], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(f"gnuplot {gp_path} failed:\n{r.stderr}\n")
        return None
    return os.path.basename(png)


# --- Workflow memory ----------------------------------------------------------

# Owned proxies and lifetimes end with nothing in the store, and peak within
# this factor of hand-written eviction.
MEMORY_PEAK_LIMIT = 1.1
VARIANT_LABEL = {"plain": "plain proxies (never evicted)",
                 "evicted": "hand-written eviction",
                 "owned": "owned proxies",
                 "lifetime": "context lifetimes"}
VARIANT_COLOR = {"plain": "#d62728", "evicted": "#7f7f7f",
                 "owned": "#1f77b4", "lifetime": "#2ca02c"}
# Eviction, owners and lifetimes usually draw the same steps: wide to thin,
# so that each stays visible on top of the other.
VARIANT_LINE = {"plain": "lw 2", "evicted": "lw 7", "owned": "lw 3.5",
                "lifetime": "lw 1.5 dt 2"}


def load_workflow(outdir):
    path = os.path.join(outdir, "workflow_memory.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _mb(n):
    return f"{n / 1e6:.1f}"


def workflow_verdicts(wf):
    """[(description, measured, verdict)] of the memory targets."""
    by = {v["variant"]: v for v in wf["variants"]}
    out = []
    hand = by.get("evicted")
    for name in ("owned", "lifetime"):
        v = by.get(name)
        if v is None:
            continue
        label = VARIANT_LABEL[name]
        out.append((f"{label}: final store bytes = 0",
                    f"{v['final_store_bytes']} B",
                    "MET" if v["final_store_bytes"] == 0 else "MISSED"))
        if hand and hand["peak_store_bytes"] > 0:
            r = v["peak_store_bytes"] / hand["peak_store_bytes"]
            out.append((f"{label}: peak store bytes <= "
                        f"{MEMORY_PEAK_LIMIT}x hand-written eviction's",
                        f"{r:.3f}x",
                        "MET" if r <= MEMORY_PEAK_LIMIT else "MISSED"))
    return out


def plot_workflow(wf, outdir):
    png = os.path.join(outdir, "workflow_memory.png")
    blocks, plots = [], []
    for v in wf["variants"]:
        name = v["variant"]
        pts = v["store_bytes_after_task"]
        blocks.append(f"${name} << EOD\n0 0\n" + "\n".join(
            f"{i + 1} {b / 1e6}" for i, b in enumerate(pts)) + "\nEOD")
        plots.append(f"${name} using 1:2 with steps "
                     f"{VARIANT_LINE.get(name, 'lw 2')} lc rgb "
                     f"'{VARIANT_COLOR.get(name, '#000000')}' title "
                     f"{_gp_quote(VARIANT_LABEL.get(name, name))}")
    sizes = ", ".join(human_bytes(n) for n in wf.get("sizes", []))
    tasks = len(wf["variants"][0]["store_bytes_after_task"]) - 1
    title = ("Workflow memory: bytes held by the store after each task "
             f"(fan-in {wf.get('first_stage', '?')} -> 1, objects of {sizes})")
    gp = ["set terminal pngcairo size 1000,520 font 'DejaVu Sans,10' "
          "noenhanced",
          f"set output {_gp_quote(png)}",
          f"set title {_gp_quote(title)} font ',11'",
          "set xlabel 'tasks done (the last step: the driver has used the "
          "result)'",
          "set ylabel 'store MB'",
          f"set xrange [0:{tasks + 2}]",
          "set yrange [0:*]",
          "set grid lc rgb '#dddddd'",
          "set key top left"]
    script = "\n".join(blocks + gp + ["plot " + ", \\\n     ".join(plots)]) + "\n"
    return _run_gnuplot(script, os.path.join(outdir, "workflow_memory.gp"), png)


def workflow_section(wf, outdir):
    sizes = ", ".join(human_bytes(s) for s in wf.get("sizes", []))
    lines = ["## Workflow memory", "",
             f"bench/workflow_memory ({wf.get('form', '?')} form): a fan-in "
             f"tree of tasks, {wf.get('first_stage', '?')} -> 1 (63 tasks), "
             f"objects of {sizes} cycled, run one task at a time on a local "
             "connector without cache, each variant in a fresh process. "
             "Store bytes are what the connector holds; RSS is the "
             "process's.", "",
             "| variant | peak store MB | final store MB | made MB | "
             "start RSS MB | peak RSS MB | final RSS MB | seconds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in wf["variants"]:
        lines.append(
            f"| {VARIANT_LABEL.get(v['variant'], v['variant'])} | "
            f"{_mb(v['peak_store_bytes'])} | {_mb(v['final_store_bytes'])} | "
            f"{_mb(v['made_bytes'])} | {_mb(v['start_rss_bytes'])} | "
            f"{_mb(v['peak_rss_bytes'])} | {_mb(v['final_rss_bytes'])} | "
            f"{v['seconds']:.2f} |")
    lines += ["", "| memory target | measured | verdict |", "|---|---|---|"]
    for desc, measured, verdict in workflow_verdicts(wf):
        lines.append(f"| {desc} | {measured} | **{verdict}** |")
    lines.append("")
    png = plot_workflow(wf, outdir)
    if png:
        lines += [f"![workflow memory]({png})", ""]
    return lines


# --- Task pipelining ---------------------------------------------------------

PIPELINING_LABEL = {"sequential": "sequential, no proxies",
                    "sequential_proxies": "sequential, proxies",
                    "pipelined": "pipelined, proxy futures"}
PIPELINING_COLOR = {"sequential": "#d62728", "sequential_proxies": "#ff7f0e",
                    "pipelined": "#1f77b4"}
PAPER_CITE = ('TPDS\'24 "Object Proxy Patterns for Accelerating Distributed '
              'Applications"')


def load_pipelining(outdir):
    path = os.path.join(outdir, "task_pipelining.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _pipelining_by(tp):
    return {v["variant"]: v for v in tp["variants"]}


def plot_pipelining(tp, outdir):
    """Median makespan per variant as bars (range over the repetitions as
    error bars), the floor as a line, and where the paper's reduction from
    the sequential baseline would land as a dotted line."""
    png = os.path.join(outdir, "pipelining.png")
    rows = []
    for i, v in enumerate(tp["variants"]):
        label = PIPELINING_LABEL.get(v["variant"], v["variant"])
        color = int(PIPELINING_COLOR.get(v["variant"], "#7f7f7f")[1:], 16)
        rows.append(f'{i} "{label}" {v["median_ms"]} {v["min_ms"]} '
                    f'{v["max_ms"]} {color}')
    n = len(rows)
    floor = tp["floor_ms"]
    seq = _pipelining_by(tp).get("sequential")
    paper = (seq["median_ms"] * (1 - tp["paper_reduction_pct"] / 100)
             if seq else None)
    top = max([v["max_ms"] for v in tp["variants"]] + [floor]) * 1.18
    title = (f"Task pipelining: makespan of {tp['tasks']} chained task "
             f"processes ({human_bytes(tp['object_bytes'])} results, start "
             f"{tp['startup_ms']:g} ms, compute {tp['compute_ms']:.0f} ms)\\n"
             f"median of {tp['repetitions']} repetitions; whiskers: range")
    plots = ["$pipelining using 1:3:6:xtic(2) with boxes lc rgb variable "
             "notitle",
             "$pipelining using 1:3:4:5 with yerrorbars lc rgb '#000000' "
             "pt 7 ps 0.4 lw 1.5 notitle",
             "$pipelining using 1:($3 / 2):(sprintf('%.0f ms', $3)) with "
             "labels font ',12' tc rgb '#ffffff' notitle",
             f"{floor} with lines lw 2.5 lc rgb '#2ca02c' title "
             + _gp_quote(f"floor: start + {tp['tasks']} x (compute + "
                         f"hand-over) = {floor:.0f} ms")]
    if paper:
        plots.append(f"{paper} with lines lw 1.5 dt 3 lc rgb '#555555' title "
                     + _gp_quote(f"the paper's reduction "
                                 f"(-{tp['paper_reduction_pct']:g}%) from "
                                 f"sequential = {paper:.0f} ms"))
    gp = ["$pipelining << EOD"] + rows + ["EOD",
          "set terminal pngcairo size 900,520 font 'DejaVu Sans,10' "
          "noenhanced",
          f"set output {_gp_quote(png)}",
          f"set title \"{title}\" font ',10'",
          "set style fill solid 0.85 border -1",
          "set boxwidth 0.6",
          f"set xrange [-0.6:{n - 0.4}]",
          f"set yrange [0:{top}]",
          "set ylabel 'makespan (ms)'",
          "set grid ytics lc rgb '#dddddd'",
          "set key top right",
          "plot " + ", \\\n     ".join(plots)]
    script = "\n".join(gp) + "\n"
    return _run_gnuplot(script, os.path.join(outdir, "pipelining.gp"), png)


def pipelining_summary(tp):
    """One line: the reduction next to the paper's, and the floor."""
    by = _pipelining_by(tp)
    seq, pipe = by.get("sequential"), by.get("pipelined")
    if not seq or not pipe:
        return "not measured"
    return (f"pipelined {pipe['median_ms']:.0f} ms vs sequential without "
            f"proxies {seq['median_ms']:.0f} ms: {tp['reduction_pct']:.1f}% "
            f"shorter (the paper: ~{tp['paper_reduction_pct']:g}%); floor "
            f"{tp['floor_ms']:.0f} ms, pipelined at "
            f"{pipe['median_ms'] / tp['floor_ms']:.2f}x the floor")


def pipelining_section(tp, outdir):
    by = _pipelining_by(tp)
    seq = by.get("sequential")
    poll = tp.get("polling", {})
    load = ""
    if tp.get("load_avg_start", -1) >= 0:
        load = (f" Load average {tp['load_avg_start']:.2f} at the start, "
                f"{tp.get('load_avg_end', -1):.2f} at the end.")
    lines = ["## Task pipelining", "",
             f"bench/task_pipelining ({tp.get('form', '?')} form): a chain of "
             f"{tp['tasks']} tasks, each a process of its own that starts "
             f"({tp['startup_ms']:g} ms, a sleep standing for an interpreter "
             "or container start), gets its input (the previous task's "
             f"{human_bytes(tp['object_bytes'])} result), computes "
             f"({tp['compute_passes']} hash passes calibrated to "
             f"{tp['compute_target_ms']:g} ms) and hands its result on. "
             "Sequential: a task starts when the previous one has ended; "
             "without proxies the driver moves the result through pipes, "
             "with proxies only the serialized proxy travels. Pipelined: "
             "the driver makes one future per task and starts every task at "
             "once; task i resolves future i-1's proxy (the connector's "
             "WaitFor wakes it when the key is set; re-read every "
             f"{poll.get('interval_us', '?')} µs) and sets future i. Store: "
             f"{tp.get('connector', '?')} connector, no cache. Makespan: "
             "first fork to the driver holding the last result; "
             f"{tp['repetitions']} repetitions, the variants interleaved."
             + load, "",
             "| variant | median makespan | range | vs no proxies | / floor |",
             "|---|---:|---|---:|---:|"]
    for v in tp["variants"]:
        vs = (f"{(v['median_ms'] / seq['median_ms'] - 1) * 100:+.1f}%"
              if seq else "-")
        lines.append(
            f"| {PIPELINING_LABEL.get(v['variant'], v['variant'])} | "
            f"{v['median_ms']:.0f} ms | {v['min_ms']:.0f}-{v['max_ms']:.0f} "
            f"ms | {vs} | {v['median_ms'] / tp['floor_ms']:.2f} |")
    below = [v for v in tp["variants"] if v["median_ms"] < tp["floor_ms"]]
    if below:
        lines += ["", "**A median makespan is below the floor**: the "
                  "floor's measurements ran slower than the tasks did (the "
                  "machine was busy: see the load average), so this run's "
                  "floor is no lower bound."]
    lines += ["",
              f"Floor = start + {tp['tasks']} x (compute + hand-over) = "
              f"{tp['startup_ms']:g} + {tp['tasks']} x "
              f"({tp['compute_ms']:.1f} + {tp['handover_ms']:.1f}) = "
              f"**{tp['floor_ms']:.0f} ms**: a perfect pipeline pays one "
              "start, then per task its compute and one hand-over through "
              "the store. Compute and hand-over (Store::Set of the result "
              f"{tp['handover_set_ms']:.1f} ms + resolving a proxy of it "
              f"{tp['handover_resolve_ms']:.1f} ms) are measured in fresh "
              "task processes, as the chain's tasks pay them, each the "
              f"fastest of {tp.get('probe_rounds', '?')}; the driver's own "
              f"process runs the same compute in "
              f"{tp['compute_driver_ms']:.1f} ms. Left out: forks, task 0 "
              "making its input, polling delay.", "",
              f"Pipelined vs sequential without proxies: "
              f"**{tp['reduction_pct']:.1f}% shorter**, against ~"
              f"{tp['paper_reduction_pct']:g}% in {PAPER_CITE}. The gain is "
              "the starts that overlap earlier tasks' work (N-1 of N), so "
              "its size follows the ratio of start to compute + hand-over "
              "(--startup_ms, --compute_ms), not the store alone.", "",
              "Inside the tasks (ms; median over tasks 1 to "
              f"{tp['tasks'] - 1} of each variant's median run). get input: "
              "from when the task could use its input (started, producer "
              "done) to holding it; hand on: pipe write, put + proxy, or "
              "Set; driver gap: producer done to consumer running.", "",
              "| variant | get input | compute | hand on | driver gap |",
              "|---|---:|---:|---:|---:|"]
    for v in tp["variants"]:
        ph = v.get("median_run_phases_ms", {})
        gap = ph.get("driver_gap")
        lines.append(
            f"| {PIPELINING_LABEL.get(v['variant'], v['variant'])} | "
            f"{ph.get('get_input', 0):.1f} | {ph.get('compute', 0):.1f} | "
            f"{ph.get('hand_on', 0):.1f} | "
            + (f"{gap:.1f}" if gap is not None and gap >= 0 else "overlap")
            + " |")
    pipe = by.get("pipelined")
    if pipe and pipe.get("median_run_tasks"):
        waits = [f"{i}: {t['input_ms'] - t['ready_ms']:.0f} ms / "
                 f"{t['polls']} polls"
                 for i, t in enumerate(pipe["median_run_tasks"]) if i > 0]
        lines += ["", "Pipelined, each task's wait for its input after its "
                  "start (median run): " + ", ".join(waits) + "."]
    lines.append("")
    png = plot_pipelining(tp, outdir)
    if png:
        lines += [f"![task pipelining]({png})", ""]
    return lines


# --- Stream throughput -------------------------------------------------------------

def load_streams(outdir):
    path = os.path.join(outdir, "stream_throughput.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _stream_runs(st):
    """{(mode, size, consumers): items per second}."""
    return {(r["mode"], r["size"], r["consumers"]): r["items"] / r["seconds"]
            for r in st["runs"] if r["seconds"] > 0}


def plot_streams(st, outdir):
    """MB/s against item size, one line per mode and consumer count."""
    png = os.path.join(outdir, "streams.png")
    runs = _stream_runs(st)
    sizes = sorted({r["size"] for r in st["runs"]})
    counts = sorted({r["consumers"] for r in st["runs"]})
    blocks, plots = [], []
    colors = {"broker": ["#f4a582", "#d6604d", "#b2182b"],
              "proxy": ["#92c5de", "#4393c3", "#2166ac"]}
    for mode in ("broker", "proxy"):
        for i, c in enumerate(counts):
            pts = [f"{z} {runs[(mode, z, c)] * z / 1e6}" for z in sizes
                   if (mode, z, c) in runs]
            if not pts:
                continue
            name = f"${mode}{c}"
            blocks += [f"{name} << EOD"] + pts + ["EOD"]
            label = ("inside the events" if mode == "broker"
                     else "proxies, objects in the store")
            plots.append(
                f"{name} using 1:2 with linespoints lw 2 pt 7 lc rgb "
                f"'{colors[mode][i % 3]}' title "
                + _gp_quote(f"{label}, {c} consumer{'s' if c > 1 else ''}"))
    if not plots:
        return None
    gp = blocks + [
        "set terminal pngcairo size 900,520 font 'DejaVu Sans,10' noenhanced",
        f"set output {_gp_quote(png)}",
        "set title 'Stream throughput: one producer, consumer processes of "
        "one group, every byte read' font ',11'",
        "set logscale xy", "set grid",
        f"set xrange [{sizes[0] / 2}:{sizes[-1] * 2}]",
        f"set xtics ({', '.join(_gp_quote(human_bytes(z)) + f' {z}' for z in sizes)})",
        "set xlabel 'item size'", "set ylabel 'MB/s delivered'",
        "set key top left",
        "plot " + ", \\\n     ".join(plots)]
    return _run_gnuplot("\n".join(gp) + "\n",
                        os.path.join(outdir, "streams.gp"), png)


def stream_summary(st):
    runs = _stream_runs(st)
    sizes = sorted({r["size"] for r in st["runs"]})
    parts = []
    for z in sizes:
        ratios = [runs[("proxy", z, c)] / runs[("broker", z, c)]
                  for (m, zz, c) in runs if m == "proxy" and zz == z
                  and ("broker", z, c) in runs]
        if ratios:
            parts.append(f"{human_bytes(z)} {min(ratios):.2f}-"
                         f"{max(ratios):.2f}x")
    return ("proxies vs inside the events (items/s, over consumer counts): "
            + ", ".join(parts) + " (the paper: ~6x at 10 MB, below 1x at "
            "10 KB)")


def stream_section(st, outdir):
    runs = _stream_runs(st)
    sizes = sorted({r["size"] for r in st["runs"]})
    counts = sorted({r["consumers"] for r in st["runs"]})
    lines = ["## Stream throughput", "",
             f"bench/stream_throughput ({st.get('form', '?')} form): one "
             "producer sends items to one topic of a Redis Streams broker "
             "(a private redis-server, stream/redis_broker.h); consumer "
             "processes of one group take them until the end of the stream "
             "and read every byte. Inside the events: the objects travel "
             "through the broker. Proxies: the objects go to a shm store, "
             "the events carry proxies, and each consumer resolves (maps, "
             "then evicts) what it takes. Consumers are connected before "
             "the clock starts and is read again when the last one has read the "
             "end.", "",
             "| item size | consumers | inside the events | proxies | "
             "proxies / events |", "|---|---:|---:|---:|---:|"]
    for z in sizes:
        for c in counts:
            b, p = runs.get(("broker", z, c)), runs.get(("proxy", z, c))
            if b is None or p is None:
                continue
            lines.append(
                f"| {human_bytes(z)} | {c} | {b:,.0f} items/s "
                f"({b * z / 1e6:,.0f} MB/s) | {p:,.0f} items/s "
                f"({p * z / 1e6:,.0f} MB/s) | {p / b:.2f}x |")
    cross = []
    for c in counts:
        prev = None
        for z in sizes:
            b, p = runs.get(("broker", z, c)), runs.get(("proxy", z, c))
            if b is None or p is None:
                continue
            r = p / b
            if prev is not None and (prev[1] < 1) != (r < 1):
                cross.append(f"{c} consumer{'s' if c > 1 else ''}: between "
                             f"{human_bytes(prev[0])} and {human_bytes(z)}")
            prev = (z, r)
    lines += ["", stream_summary(st) + ".", "",
              "Why the lines cross: an event that carries its object costs "
              "the broker a copy in, a copy out and the memory it keeps, all "
              "on its one thread, so the broker's bandwidth caps the stream "
              "as items grow. A proxy costs a fixed amount per item instead "
              "(a store put, a ~400-byte event, a proxy parse, a segment "
              "open and map, an evict), which dominates for small items and "
              "vanishes next to a large object's copy. Small items are "
              "bound by the round trips each event takes (the producer's "
              "XADD, the consumer's XREADGROUP and XACK) in both modes; on "
              "these VMs a loopback round trip takes ~5 or ~50 µs depending "
              "on whether the other vCPU is busy, so the 10 KB ratio moves "
              "from run to run. "
              + ("Crossover: " + "; ".join(cross) + "."
                 if cross else "No crossover within the measured sizes.")
              + " One producer feeds every consumer here, and on a 2-core "
              "machine consumers beyond the cores mostly take turns: the "
              "consumer counts show how each mode behaves when consumers "
              "compete, not how it scales on more cores.",
              ""]
    png = plot_streams(st, outdir)
    if png:
        lines += [f"![stream throughput]({png})", ""]
    return lines


# --- Redis Cluster vs one server ------------------------------------------------

CLUSTER_OPS = ["put", "get", "put_batch", "get_batch"]


def load_cluster(outdir):
    path = os.path.join(outdir, "redis_cluster.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _cluster_rows(rc):
    """{(target, op, threads): row} of the rows that measured something."""
    return {(r["target"], r["op"], r["threads"]): r for r in rc["rows"]
            if r["objects"] > 0 and r["seconds"] > 0}


def _cluster_op_label(rc, op):
    obj = human_bytes(rc.get("object_bytes", 1000))
    if op.endswith("_batch"):
        return f"{op} {rc.get('batch', 100)}x{obj}"
    return f"{op} {obj}"


def _cpu_per_object(rows, target, op):
    """Server and client CPU microseconds per object of `target`'s `op` rows,
    pooled over the thread counts; (None, None) if none ran."""
    sel = [r for (t, o, _), r in rows.items() if t == target and o == op]
    objects = sum(r["objects"] for r in sel)
    if not objects:
        return None, None
    return (sum(r["server_cpu_s"] for r in sel) * 1e6 / objects,
            sum(r["client_cpu_s"] for r in sel) * 1e6 / objects)


def _busiest(rows, target, key):
    """Most cores `target`'s rows kept busy (key: server_cpu_s or
    client_cpu_s per second of wall time)."""
    xs = [r[key] / r["seconds"] for (t, _, _), r in rows.items()
          if t == target]
    return max(xs) if xs else None


def cluster_summary(rc):
    rows = _cluster_rows(rc)
    parts = []
    for op in CLUSTER_OPS:
        ratios = [rows[("cluster", op, n)]["objects_per_s"]
                  / rows[("single", op, n)]["objects_per_s"]
                  for (t, o, n) in rows if t == "single" and o == op
                  and ("cluster", op, n) in rows]
        if ratios:
            parts.append(f"{op} {min(ratios):.2f}-{max(ratios):.2f}x")
    return ("cluster / one server (objects/s, over thread counts): "
            + ", ".join(parts))


def cluster_section(rc):
    rows = _cluster_rows(rc)
    counts = sorted({n for (_, _, n) in rows})
    masters = rc.get("targets", {}).get("cluster", {}).get("masters", 3)
    load = ""
    if rc.get("load_avg_start", -1) >= 0:
        load = (f", load average {rc['load_avg_start']:.2f} at the start and "
                f"{rc.get('load_avg_end', -1):.2f} at the end")
    lines = ["## Redis Cluster vs one server", "",
             f"bench/redis_cluster_scaling ({rc.get('form', '?')} form, "
             f"{rc.get('date', '?')}; {rc.get('cpus', '?')} CPUs, "
             f"{rc.get('cpu_model', '?')}; redis {rc.get('redis_version', '?')}"
             f"{load}): the redis connector against one private "
             f"redis-server and against a private {masters}-master Redis "
             "Cluster without replicas, all on this machine; 1-8 threads "
             "share one connector. Each row: a warm-up, then "
             f"{rc.get('reps', '?')} repetitions of {rc.get('rep_s', '?')} s "
             "alternating with the other target's. /s = objects per second "
             "(operations for put and get), median over the repetitions; "
             "p50/p99 = one call (a whole batch for batch rows); server CPU "
             "= used_cpu_user + used_cpu_sys of every node (INFO cpu) per "
             "object; client CPU = this process's (getrusage) per object. "
             "Every get was checked against the bytes put, and every put "
             "read back.", ""]
    if not rc.get("complete", True):
        lines += ["**INCOMPLETE: the run ended before all its rows were "
                  "measured.**", ""]
    lines += ["| op | threads | single /s | cluster /s | cluster / single | "
              "single p50 / p99 | cluster p50 / p99 | server CPU/object "
              "single | server CPU/object cluster |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for op in CLUSTER_OPS:
        for n in counts:
            s, c = rows.get(("single", op, n)), rows.get(("cluster", op, n))
            if s is None or c is None:
                continue
            lines.append(
                f"| {_cluster_op_label(rc, op)} | {n} | "
                f"{human_rate(s['objects_per_s'])} | "
                f"{human_rate(c['objects_per_s'])} | "
                f"{c['objects_per_s'] / s['objects_per_s']:.2f}x | "
                f"{human_us(s['p50_us'])} / {human_us(s['p99_us'])} | "
                f"{human_us(c['p50_us'])} / {human_us(c['p99_us'])} | "
                f"{human_us(s['server_cpu_s'] * 1e6 / s['objects'])} | "
                f"{human_us(c['server_cpu_s'] * 1e6 / c['objects'])} |")
    cpu = {(t, op): _cpu_per_object(rows, t, op)
           for t in ("single", "cluster") for op in CLUSTER_OPS}
    text = [cluster_summary(rc) + "."]
    cmds = None
    batch_rows = [r for (_, o, _), r in rows.items() if o.endswith("_batch")]
    if batch_rows and "server_commands" in batch_rows[0]:
        def per_object(target):
            sel = [r for r in batch_rows if r["target"] == target]
            n = sum(r["objects"] for r in sel)
            return sum(r["server_commands"] for r in sel) / n if n else None
        cmds = (per_object("single"), per_object("cluster"))
        if None in cmds:
            cmds = None
    single_ops = [op for op in ("put", "get")
                  if cpu[("single", op)][0] and cpu[("cluster", op)][0]]
    if single_ops:
        text.append(
            "Server CPU per object, pooled over the thread counts: "
            + "; ".join(
                f"{op} {human_us(cpu[('single', op)][0])} on one server, "
                f"{human_us(cpu[('cluster', op)][0])} on the cluster"
                for op in single_ops + [o for o in ("put_batch", "get_batch")
                                        if cpu[("single", o)][0]
                                        and cpu[("cluster", o)][0]])
            + ". A batch costs one server one MSET or MGET per "
            f"{rc.get('batch', 100)} objects; the cluster's connector sends "
            "one SET or GET per object, pipelined per node"
            + (f" (measured: {cmds[0]:.2f} commands per batched object on "
               f"one server, {cmds[1]:.2f} on the cluster)" if cmds else "")
            + ", so batches cost the cluster's nodes more per object.")
    sb = _busiest(rows, "single", "server_cpu_s")
    cb = _busiest(rows, "cluster", "server_cpu_s")
    cl = max(filter(None, [_busiest(rows, "single", "client_cpu_s"),
                           _busiest(rows, "cluster", "client_cpu_s")]),
             default=None)
    client_put = cpu[("single", "put")][1]
    if sb is not None and cb is not None and cl is not None:
        text.append(
            f"The one server used at most {sb:.2f} cores and the {masters} "
            f"nodes together at most {cb:.2f}, while this process used up "
            f"to {cl:.2f}"
            + (f" (client CPU per put: {client_put:.1f} µs)"
               if client_put else "")
            + f": the client threads and every node share the machine's "
            f"{rc.get('cpus', '?')} cores, so the cores, not one server's "
            "event loop, bound these rows, and the cluster cannot show the "
            "gain that masters on hosts of their own would give. Rows whose "
            "repetitions differ widely (objects_per_s_min/max in the JSON) "
            "met other load on the machine.")
    put_cpu = cpu[("single", "put")][0]
    cput = cpu[("cluster", "put")][0]
    if put_cpu and cput:
        text.append(
            f"What that means on real hosts: one event loop saturates at "
            f"about 1 / server CPU per object, {1e6 / put_cpu / 1e3:,.0f}k "
            f"puts/s for one server here, and {masters} masters on "
            f"{masters} hosts at up to {masters} x {1e6 / cput / 1e3:,.0f}k "
            f"= {masters * 1e6 / cput / 1e3:,.0f}k puts/s for keys spread "
            "over the slots, until clients or the network bound it; "
            "docs/redis_cluster_scaling.md derives this from these figures.")
    lines += ["", " ".join(text), ""]
    return lines


# --- Thread scaling ---------------------------------------------------------------

THREAD_COUNTS = [1, 2, 4, 8]
THREAD_OPS = ["get_hit", "get", "put", "proxy_resolve"]
THREAD_OP_LABEL = {"get_hit": "get (cache hit)", "get": "get (uncached)",
                   "put": "put", "proxy_resolve": "proxy resolve"}
# The floor each thread row is compared with, by connector (bench/
# proxystore_bench.cc, "Thread rows", says what each one does).
THREAD_FLOORS = {
    "local": {"get_hit": "map_lookup", "get": "map_get", "put": "map_put",
              "proxy_resolve": "map_get"},
    "shm": {"get_hit": "map_lookup", "get": "shm_read", "put": "shm_write",
            "proxy_resolve": "shm_read"},
    "redis": {"get_hit": "map_lookup", "get": "redis_get", "put": "redis_set",
              "proxy_resolve": "redis_get"},
}
THREAD_COLORS = {"get_hit": "#2ca02c", "get": "#d62728", "put": "#1f77b4",
                 "proxy_resolve": "#9467bd"}
# A row whose scaling from 1 thread falls below this share of its floor's
# scaling, even at the ends of their ranges most favorable to the store, is
# marked: the store adds contention the floor does not have.
CONTENTION_SHARE = 0.7


def human_rate(x):
    """Operations per second: three significant digits with k or M."""
    if x is None or not math.isfinite(x):
        return "-"
    for scale, unit in ((1e6, "M"), (1e3, "k"), (1, "")):
        if x >= scale or unit == "":
            v = x / scale
            return (f"{v:.0f}" if v >= 99.95 else f"{v:.1f}" if v >= 9.995
                    else f"{v:.2f}") + unit
    return "-"


def thread_row(rows, conn, op, n):
    r = rows.get(f"threads/{op}/{conn}/{n}t")
    return r if r is not None and r.ok and r.ops else None


def thread_conns(rows):
    out = []
    for r in rows.values():
        if r.group == "threads" and r.conn not in out:
            out.append(r.conn)
    return out


def plot_threads(rows, outdir, cpus=None):
    conns = [c for c in thread_conns(rows) if c in THREAD_FLOORS]
    if not conns:
        return None
    png = os.path.join(outdir, "threads.png")
    cols = len(conns)
    gp = [f"set terminal pngcairo size {480 * cols},600 "
          "font 'DejaVu Sans,9' noenhanced",
          f"set output {_gp_quote(png)}",
          f"set multiplot layout 1,{cols} title 'Throughput vs threads, "
          "1 KB objects, all threads sharing one store" +
          (f", on {cpus} CPUs" if cpus else "") +
          " (solid: the store; dashed: its floor with the same threads; "
          "bars: range over repetitions)' font ',11'",
          "set logscale x 2", "set logscale y",
          "set xrange [0.8:10]", "set xtics ('1' 1, '2' 2, '4' 4, '8' 8)",
          "set grid", "set bars small",
          "set xlabel 'threads'",
          "set key outside below left Left reverse font ',8' spacing 1.1 "
          "maxcols 1",
          "set bmargin 13"]
    blocks = []
    for i, conn in enumerate(conns):
        plots, ys = [], []

        def series(name, pts):
            blocks.append(f"{name} << EOD\n" + "\n".join(
                f"{x} {y} {lo} {hi}" for x, y, lo, hi in pts) + "\nEOD")
            ys.extend(v for p in pts for v in p[1:] if v and v > 0)

        for op in THREAD_OPS:
            pts = [(n, r.ops, r.ops_lo, r.ops_hi) for n in THREAD_COUNTS
                   for r in [thread_row(rows, conn, op, n)] if r]
            if not pts:
                continue
            series(f"$t{i}_{op}", pts)
            plots.append(f"$t{i}_{op} using 1:2:3:4 with yerrorlines lw 2 "
                         f"pt 7 ps 0.9 lc rgb '{THREAD_COLORS[op]}' "
                         f"title {_gp_quote(THREAD_OP_LABEL[op])}")
        floors = OrderedDict()
        for op in THREAD_OPS:
            floors.setdefault(THREAD_FLOORS[conn][op], []).append(op)
        for fop, users in floors.items():
            pts = [(n, r.ops, r.ops_lo, r.ops_hi) for n in THREAD_COUNTS
                   for r in [thread_row(rows, conn, fop, n)] if r]
            if not pts:
                continue
            series(f"$f{i}_{fop}", pts)
            label = (f"floor {fop} (for " +
                     ", ".join(THREAD_OP_LABEL[u] for u in users) + ")")
            plots.append(f"$f{i}_{fop} using 1:2 with linespoints lw 1.5 "
                         f"dt 2 pt 6 ps 1.0 lc rgb "
                         f"'{THREAD_COLORS[users[0]]}' title {_gp_quote(label)}")
        if not plots:
            continue
        lo = 10 ** math.floor(math.log10(min(ys)))
        hi = 10 ** math.ceil(math.log10(max(ys)))
        hi = hi if hi > lo else lo * 10
        gp.append(f"set yrange [{lo}:{hi}]")
        gp.append(f"set title {_gp_quote(conn)} font ',11'")
        gp.append("set ylabel 'operations per second (all threads)'"
                  if i == 0 else "unset ylabel")
        gp.append("set format y '%.0s%c'")
        gp.append("plot " + ", \\\n     ".join(plots))
    gp.append("unset multiplot")
    script = "\n".join(blocks + gp) + "\n"
    return _run_gnuplot(script, os.path.join(outdir, "threads.gp"), png)


def thread_section(context, rows, outdir):
    conns = thread_conns(rows)
    if not conns:
        return []
    cpus = context.get("num_cpus")
    lines = ["## Thread scaling", "",
             "Rows `threads/<op>/<connector>/<n>t`: n threads share ONE "
             "store (workflow workers share a store) and repeat one "
             "operation on a **1 KB object**, all started together at a "
             "barrier. ops/s = all threads' operations / wall time of the "
             "timed rounds (median over the repetitions; range = lowest and "
             "highest). get (cache hit): a cached store with the object "
             "warm in its cache; get (uncached): a store without cache, so "
             "every get reads the connector; put: a new object per op; proxy "
             "resolve: a fresh Proxy<std::string> resolved per op, as "
             "store/proxy_resolve does (the proxies are parsed from their "
             "wire form and find their store through the process-wide "
             "registry, in a receiver store with a cache: after the first "
             "resolve an op is a registry lookup and a cache hit, which is "
             "why it can beat the shm and redis read floors). Each "
             "floor runs with the same threads, in turns with the rows: "
             "map_lookup (shared_ptr copied out of a shared "
             "absl::flat_hash_map read without a lock), map_get (1 KB copied "
             "out of the same kind of map), map_put (16 shards, a std::mutex "
             "each, a fresh key + 1 KB copied in), shm_read "
             "(shm_open+mmap+copy+munmap), shm_write "
             "(shm_open(O_CREAT|O_EXCL)+write), redis_get/redis_set (raw "
             "hiredis, one connection per thread).", "",
             "ratio = floor ops/s / store ops/s at the same thread count "
             "(the per-op time ratio, in the same sense as the tables "
             "above: 2.00 = half the floor's throughput). scaling = ops/s / "
             "ops/s of the same row with 1 thread. p50 = the time one "
             "thread waits for one op (batch averages, preemption "
             "included). CPU = all threads' CPU time per op: when it grows "
             "with the threads while ops/s does not, the threads spend it "
             "on contention (lock hand-offs, cache lines moving between "
             "cores). A row marked *contention* scales less than "
             f"{CONTENTION_SHARE:g}x as well as its floor, even comparing "
             "the store's best repetitions with the floor's worst. Redis "
             "rows note when they and their floor ran in different "
             "loopback modes (PING round trips more than "
             f"{MODE_GAP:g}x apart): their ratio then means little.", ""]
    if cpus:
        over = [n for n in THREAD_COUNTS if n > cpus]
        lines.append(
            f"This machine has {cpus} CPUs" +
            (f": {' and '.join(map(str, over))} threads oversubscribe it, "
             f"so ideal scaling stops at {cpus}x and more threads can "
             "at best hold the throughput level (they add context "
             "switches)" if over else "") +
            ". The redis rows share the CPUs with the suite's "
            "redis-server, which serves every connection on one thread.")
        lines.append("")
    png = plot_threads(rows, outdir, cpus)
    if png:
        lines += [f"![throughput vs threads]({png})", ""]
    for conn in conns:
        floors = THREAD_FLOORS.get(conn, {})
        lines += [f"### {conn} (1 KB)", "",
                  "| threads | op | ops/s | range | scaling | p50 per op | "
                  "CPU per op | floor | floor ops/s | floor scaling | "
                  "floor CPU per op | ratio | note |",
                  "|---:|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|"
                  "---|"]
        for op in THREAD_OPS:
            fop = floors.get(op)
            base = thread_row(rows, conn, op, 1)
            fbase = thread_row(rows, conn, fop, 1) if fop else None
            for n in THREAD_COUNTS:
                name = f"threads/{op}/{conn}/{n}t"
                r = rows.get(name)
                if r is None:
                    continue
                if not r.ok or not r.ops:
                    lines.append(f"| {n} | {THREAD_OP_LABEL[op]} | error: "
                                 f"{r.error} | | | | | | | | | | |")
                    continue
                f = thread_row(rows, conn, fop, n) if fop else None
                scale = r.ops / base.ops if base else None
                fscale = f.ops / fbase.ops if f and fbase else None
                rng = (f"{human_rate(r.ops_lo)}-{human_rate(r.ops_hi)}"
                       if r.reps > 1 else "-")
                notes = []
                if n > 1 and base and f and fbase:
                    # Best case for the store, worst for the floor.
                    best = r.ops_hi / base.ops_lo
                    worst = f.ops_lo / fbase.ops_hi
                    if best < CONTENTION_SHARE * worst:
                        notes.append("*contention*")
                # (A cache hit never reaches redis: its mode does not matter.)
                if f and op != "get_hit" and r.pings and f.pings:
                    here, there = _median(r.pings), _median(f.pings)
                    if max(here, there) > MODE_GAP * min(here, there):
                        notes.append(
                            f"loopback modes differ (PING {human_us(here)}, "
                            f"floor's {human_us(there)})")
                note = "; ".join(notes)
                lines.append(
                    f"| {n} | {THREAD_OP_LABEL[op]} | {human_rate(r.ops)} | "
                    f"{rng} | {'-' if scale is None else f'{scale:.2f}x'} | "
                    f"{human_us(r.p50)} | {human_us(r.cpu)} | "
                    f"{fop if f else '-'} | "
                    f"{human_rate(f.ops) if f else '-'} | "
                    f"{'-' if fscale is None else f'{fscale:.2f}x'} | "
                    f"{human_us(f.cpu) if f else '-'} | "
                    f"{f'{f.ops / r.ops:.2f}' if f else '-'} | {note} |")
        lines.append("")
    return lines


# --- Report -----------------------------------------------------------------------

# The local rows' bare floors: the same map operation without the lock and
# without the shared result (bench/proxystore_bench.cc, "contract floors").
BARE_FLOORS = [("get", "map_get", "shared_map_get"),
               ("get_hit", "map_lookup", "shared_map_lookup"),
               ("put", "map_put", "shared_map_put")]


def bare_map_section(rows):
    """The local rows against the bare map and against the contract floor
    (the one the verdicts use), side by side: what the lock and the shared
    result cost, and what the store adds on top of them."""
    out = []
    for op, bare, shared in BARE_FLOORS:
        for size in SIZES:
            r = rows.get(f"store/{op}/local/{size}")
            b = find_row(rows, f"floor/{bare}/local/{size}")
            c = find_row(rows, f"floor/{shared}/local/{size}")
            if not (r and r.ok and b and b.ok and c and c.ok):
                continue
            out.append(f"| {op} | {size} | {human_us(r.p50)} | "
                       f"{human_us(b.p50)} | {r.p50 / b.p50:.2f}x | "
                       f"{human_us(c.p50)} | {r.p50 / c.p50:.2f}x |")
    if not out:
        return []
    return ["### Local rows against the bare map", "",
            "The local targets compare with contract floors: the same "
            "absl::flat_hash_map behind a lock (a reader lock for get, the "
            "writer lock for put, one lock around the lookup for a cache hit, "
            "whose LruCache holds one lock per CPU) handing out a freshly "
            "allocated shared object (get) or publishing a shared buffer (put), as any map "
            "shared by threads must to keep Store's promises. The bare map "
            "(no lock, a plain std::string) is shown for reference.", "",
            "| op | size | store p50 | bare map | ratio | contract floor "
            "| ratio |", "|---|---|---:|---:|---:|---:|---:|"] + out + [""]


def verdict_table_text(verdicts):
    """Plain-text verdict table for the console."""
    w = max(len(v.desc) for v in verdicts)
    out = []
    for v in verdicts:
        lim, ratio, rng = verdict_line(v)
        if v.ratio is not None:
            value = f"{ratio:>9}  {rng:<15}"
        elif v.verdict != "n/a":
            value = f"{v.measured:<26}"
        else:
            value = f"{'not measured':<26}"
        out.append(f"  {v.desc:<{w}}  {lim:>8}  {value}  {v.verdict:<6}  "
                   f"{v.note}".rstrip())
    return "\n".join(out)


def counts(verdicts):
    c = {k: sum(1 for v in verdicts if v.verdict == k)
         for k in ("MET", "MISSED", "UNSURE", "n/a")}
    return (f"{c['MET']} met, {c['MISSED']} missed, {c['UNSURE']} unsure, "
            f"{c['n/a']} not measured")


def write_report(context, rows, outdir, elapsed):
    verdicts = targets(rows)
    planned = planned_rows(context)
    measured = sum(1 for r in rows.values() if r.ok)
    lines = ["# proxystore-cpp benchmark report", ""]
    form = context.get("proxystore_form", "?")
    lines.append(
        f"Run {context.get('date', '')}, {form} form, "
        f"connectors {context.get('proxystore_connectors', '?')}, "
        f"sizes {context.get('proxystore_sizes', '?')}"
        + (f", {int(elapsed) // 60}m{int(elapsed) % 60:02d}s" if elapsed else "")
        + ".")
    load_avg = context.get("load_avg") or []
    lines.append(
        f"Machine: {context.get('num_cpus', '?')} CPUs at "
        f"{context.get('mhz_per_cpu', '?')} MHz"
        + (f", load average {load_avg[0]:.2f} at the start" if load_avg else "")
        + f"; suite build: {context.get('proxystore_build', '?')}.")
    if context.get("library_build_type") == "debug":
        lines.append("(Google Benchmark calls itself a debug build because "
                     "Debian compiles libbenchmark without NDEBUG; the suite "
                     "times every operation with its own clock reads.)")
    lines.append("")
    if planned and measured < planned:
        lines.append(f"**INCOMPLETE: {measured} of {planned} planned rows "
                     "were measured** (the run was interrupted or rows "
                     "failed); targets whose rows are missing say n/a.")
    else:
        lines.append(f"Complete: {measured} rows"
                     + (f" of {planned} planned." if planned else "."))
    errs = [r for r in rows.values() if r.error]
    if errs:
        lines.append("")
        lines.append(f"{len(errs)} rows failed: " + "; ".join(
            f"`{r.name}`: {r.error[:200]}" for r in errs))
    lines += ["",
              "Times are per operation. p50 = median over the repetitions of "
              "each repetition's p50; range = lowest and highest repetition "
              "p50; p99 is over batch averages for fast operations (timed in "
              "batches). faults = page faults per op, heap = bytes requested "
              "from malloc per op. ratio = p50 / p50 of the floor named, "
              "measured in the same run in turns with the rows of its size "
              "(one repetition each per round).",
              "", "## Speed targets", "",
              "range = 90% confidence interval of the ratio, "
              "distribution-free (every repetition of the row against every "
              "repetition of the floor, the k lowest and k highest of these "
              "ratios dropped, k from the exact Mann-Whitney distribution: "
              "11 of 49 with 7 repetitions each, none with 3). "
              "A verdict is MET when the whole ratio range is within the "
              "limit, MISSED when it is all beyond, UNSURE when the range "
              "straddles the limit or a redis row and its floor ran in "
              "different loopback modes (raw PING round trips more than "
              f"{MODE_GAP:g}x apart; loopback on small VMs is bimodal).", "",
              "| target | limit | measured (p50) | ratio | range | verdict | note |",
              "|---|---|---|---:|---|---|---|"]
    for v in verdicts:
        lim, ratio, rng = verdict_line(v)
        lines.append(f"| {v.desc} | {lim} | {v.measured} | {ratio} | {rng} | "
                     f"**{v.verdict}** | {v.note} |")
    lines += ["", counts(verdicts) + ".", ""]
    lines += bare_map_section(rows)

    pics = []
    vp = plot_verdicts(verdicts, outdir)
    cp = plot_connectors(rows, outdir)
    if vp:
        pics.append(f"![verdicts]({vp})")
    if cp:
        pics.append(f"![p50 per connector]({cp})")
    if pics:
        lines += ["## Pictures", ""] + [p + "\n" for p in pics]
    elif shutil.which("gnuplot") is None:
        lines += ["(gnuplot is not installed: no pictures; see *.gp)", ""]

    conns = []
    for r in rows.values():
        if r.conn not in conns and r.conn and r.group in ("floor", "store"):
            conns.append(r.conn)
    order = {s: i for i, s in enumerate(SIZES)}
    for conn in conns:
        lines += [f"## {conn}", "",
                  "| row | size | p50 | range | p99 | faults | heap | floor | ratio |",
                  "|---|---|---:|---|---:|---:|---:|---|---:|"]
        entries = [r for r in rows.values()
                   if r.conn == conn and r.group in ("floor", "store")]
        entries.sort(key=lambda r: (r.group != "floor", r.op,
                                    order.get(r.size, 99), r.size))
        for r in entries:
            label = ("floor: " if r.group == "floor" else "") + r.op
            if not r.ok:
                lines.append(f"| {label} | {r.size} | error: {r.error} "
                             "| | | | | | |")
                continue
            fname = floor_name(r.op, r.conn, r.size) if r.group == "store" else None
            f = find_row(rows, fname) if fname else None
            ratio = (f"{r.p50 / f.p50:.2f}" if f and f.ok and f.p50 > 0 else "-")
            faults = "-" if r.faults is None else f"{r.faults:.1f}"
            extra = []
            if r.pings:
                extra.append(f"RTT {human_us(_median(r.pings))}")
            if r.stored_ratio:
                extra.append(f"stored {r.stored_ratio:.2f}x")
            if r.wire:
                extra.append(f"{r.wire:.0f} B on the wire")
            size = r.size + (" (" + ", ".join(extra) + ")" if extra else "")
            lines.append(
                f"| {label} | {size} | {human_us(r.p50)} | "
                f"{human_range(r.lo, r.hi, r.reps)} | {human_us(r.p99)} | "
                f"{faults} | {human_bytes(r.alloc)} | "
                f"{fname.split('/')[1] if f else '-'} | {ratio} |")
        lines.append("")
    lines += thread_section(context, rows, outdir)
    wf = load_workflow(outdir)
    if wf:
        lines += workflow_section(wf, outdir)
    tp = load_pipelining(outdir)
    if tp:
        lines += pipelining_section(tp, outdir)
    st = load_streams(outdir)
    if st:
        lines += stream_section(st, outdir)
    rc = load_cluster(outdir)
    if rc:
        lines += cluster_section(rc)
    path = os.path.join(outdir, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return verdicts, planned, measured


def compare(a_path, b_path):
    _, a = load(a_path)
    _, b = load(b_path)
    va, vb = targets(a), targets(b)
    w = max(len(v.desc) for v in va)
    print(f"Speed targets: {a_path} -> {b_path}")
    changed = 0
    for x, y in zip(va, vb):
        _, ra, _ = verdict_line(x)
        _, rb, _ = verdict_line(y)
        mark = "  " if x.verdict == y.verdict else "->"
        changed += x.verdict != y.verdict
        print(f" {mark} {x.desc:<{w}}  {ra or '-':>9} {x.verdict:<6} -> "
              f"{rb or '-':>9} {y.verdict:<6}")
    print(f"{changed} verdicts changed. A: {counts(va)}. B: {counts(vb)}.")
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "--compare":
        return compare(argv[2], argv[3])
    elapsed = None
    args = []
    for a in argv[1:]:
        if a.startswith("--elapsed="):
            elapsed = float(a.split("=", 1)[1])
        else:
            args.append(a)
    if len(args) != 2:
        print(__doc__)
        return 2
    context, rows = load(args[0])
    outdir = args[1]
    os.makedirs(outdir, exist_ok=True)
    verdicts, planned, measured = write_report(context, rows, outdir, elapsed)
    print("\nSpeed targets (ratio = p50 / floor p50; range = 90% confidence "
          "interval):")
    print(verdict_table_text(verdicts))
    print(f"\n{counts(verdicts)}."
          + (f" INCOMPLETE: {measured} of {planned} rows measured."
             if planned and measured < planned else ""))
    wf = load_workflow(outdir)
    if wf:
        print("\nWorkflow memory targets:")
        for desc, measured, verdict in workflow_verdicts(wf):
            print(f"  {desc:<62}  {measured:>10}  {verdict}")
    tp = load_pipelining(outdir)
    if tp:
        print(f"\nTask pipelining: {pipelining_summary(tp)}")
    st = load_streams(outdir)
    if st:
        print(f"\nStream throughput: {stream_summary(st)}")
    rc = load_cluster(outdir)
    if rc:
        print(f"\nRedis Cluster vs one server: {cluster_summary(rc)}")
    print(f"report: {os.path.join(outdir, 'report.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
