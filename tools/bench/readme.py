#!/usr/bin/env python3
"""Fill README.md's measured comparisons from docs/BENCH.md and docs/BENCH-BOTTLENECK.md.

usage: readme.py [--check] [README [BENCH.md [BENCH-BOTTLENECK.md]]]
       (defaults: README.md, docs/BENCH.md, docs/BENCH-BOTTLENECK.md)

README.md marks each generated block with a pair of HTML comments, invisible on GitHub:

    <!-- bench:NAME begin -->
    ...text this tool writes...
    <!-- bench:NAME end -->

(a block may also sit inside a paragraph, markers and text on one line). Everything
outside the markers is hand-written and left alone. Each NAME has a function below that
reads the figures from the two reports (their markdown tables and BENCH.md's summary) and
returns the block's text. A block whose figures are missing from the reports (a quick run,
a failed stage) keeps its old text, and the tool names it and exits 1; a marker missing
from README.md is an error too. --check writes nothing: exit 1 when README.md differs
from what the reports say (it names the blocks), 0 when it is up to date.
"""
import re
import statistics
import sys
import textwrap

WIDTH = 90  # README's prose is wrapped near 90 columns


class Missing(Exception):
    """A figure the block needs is not in the reports."""


# ---- reading the reports ---------------------------------------------------------------

def tables(md):
    """Every markdown table of md: a list of (heading, header cells, rows of cells); the
    heading is the last `#` line above the table."""
    out, heading, cur = [], "", None
    for line in md.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cur is None:
                cur = (heading, cells, [])
                out.append(cur)
            elif not all(set(c) <= set("-:") for c in cells):
                cur[2].append(cells)
        else:
            cur = None
    return out


class Table:
    def __init__(self, found, what):
        if not found:
            raise Missing(what)
        self.heading, self.hdr, self.rows = found
        self.what = what

    def col(self, name, nth=1):
        """Index of the nth column called name (some tables repeat a header)."""
        idx = [i for i, h in enumerate(self.hdr) if h == name]
        if len(idx) < nth:
            raise Missing("%s: no column '%s'" % (self.what, name))
        return idx[nth - 1]

    def row(self, first):
        for r in self.rows:
            if r and r[0] == first:
                return r
        raise Missing("%s: no row '%s'" % (self.what, first))

    def get(self, first, name, nth=1):
        v = self.row(first)[self.col(name, nth)]
        if v in ("", "—", "n/a") or v.startswith("n/a"):
            raise Missing("%s: '%s' / '%s' is %s" % (self.what, first, name, v or "empty"))
        return v


def find(md, what, heading=None, first_hdr=None, has_col=None):
    for t in tables(md):
        if heading and not t[0].startswith(heading):
            continue
        if first_hdr and t[1][0] != first_hdr:
            continue
        if has_col and has_col not in t[1]:
            continue
        return Table(t, what)
    raise Missing(what)


def summary_line(md, prefix):
    m = re.search(r"^%s.*$" % re.escape(prefix), md, re.M)
    if not m:
        raise Missing("BENCH.md summary: no line '%s'" % prefix)
    return m.group(0)


def num(s):
    """The first number in a cell: '2050' -> 2050.0, '4.40x' -> 4.4, '80.4 (78-82)' -> 80.4."""
    m = re.search(r"-?\d+(\.\d+)?", s)
    if not m:
        raise Missing("no number in '%s'" % s)
    return float(m.group(0))


def fig(x):
    """A figure written as the reports write them (report.py's fnum)."""
    return "%.0f" % x if x >= 100 else "%.1f" % x


def first(s):
    """The first number of a cell as the report wrote it: '80.4 (78.1-82.0)' -> '80.4'."""
    m = re.search(r"-?\d+(\.\d+)?", s)
    if not m:
        raise Missing("no number in '%s'" % s)
    return m.group(0)


def strip_n(cell):
    """'50.7 / 60.9 / 70.4 (1000)' -> '50.7 / 60.9 / 70.4'"""
    return re.sub(r"\s*\(.*\)$", "", cell)


class Reports:
    def __init__(self, bench, bn):
        self.bench, self.bn = bench, bn
        self._cache = {}

    def t(self, key, **kw):
        if key not in self._cache:
            src = self.bn if key.startswith("bn-") else self.bench
            self._cache[key] = find(src, key, **kw)
        return self._cache[key]

    def goodput(self):
        return self.t("goodput", heading="Goodput")

    def latency(self):
        return self.t("latency", heading="Latency of small exchanges")

    def cpu(self):
        return self.t("cpu", heading="CPU seconds per GB")

    def run_date(self):
        m = re.search(r"on (\d{4}-\d\d-\d\d) \d\d:\d\d UTC", self.bench)
        if not m:
            raise Missing("BENCH.md: no run date")
        return m.group(1)

    def bn_cells(self):
        return self.t("bn-cells", first_hdr="link", has_col="candidate")

    def bn_fair(self):
        return self.t("bn-fair", first_hdr="link", has_col="flow 1 + flow 2")

    def bn_get(self, link, cand, name):
        t = self.bn_cells()
        for r in t.rows:
            if r[0] == link and r[t.col("candidate")] == cand:
                v = r[t.col(name)]
                if v.startswith("n/a"):
                    raise Missing("BENCH-BOTTLENECK.md: %s %s is n/a" % (link, cand))
                return v
        raise Missing("BENCH-BOTTLENECK.md: no row %s / %s" % (link, cand))


# ---- the blocks ------------------------------------------------------------------------

def link_count(line):
    m = re.search(r"over (\d+) links", line)
    return int(m.group(1)) if m else 0


def median_of(line):
    m = re.search(r"median ([\d.]+)x", line)
    if not m:
        raise Missing("no median in '%s'" % line)
    return m.group(1) + "x"


def block_kcptun_table(r):
    g, c, lat = r.goodput(), r.cpu(), r.latency()
    clean, mid = "0 ms / 0 %", "25 ms / 5 %"
    sd = summary_line(r.bench, "goodput kcpx/kcptun (default):")
    st = summary_line(r.bench, "goodput kcpx/kcptun (tuned):")
    sx = summary_line(r.bench, "goodput kcpx/kcptun (tuned, XDP):")
    # the worst tuned ratio and where
    ti = g.col("kcpx/kcptun", 2)
    worst = min((num(row[ti]), row[0]) for row in g.rows if row[ti] not in ("—", ""))
    delays, losses = set(), set()
    for row in g.rows:
        m = re.match(r"(\d+) ms / (\d+) %$", row[0])
        if m:
            delays.add(int(m.group(1)))
            losses.add(int(m.group(2)))
    if not delays:
        raise Missing("BENCH.md: no links in the goodput table")
    out = []
    w = out.append
    w("Measured by `make bench` (docs/BENCH.md has every table and how they were taken): the "
      "same iperf3 transfer through kcpx and through Debian's kcptun 20210922 with identical "
      "flags, on emulated links (tools/linkem) of %s ms one-way delay and %d-%d %% loss, side "
      "by side in one run on a 2-core VM. Ratios are kcpx/kcptun from that run. Every row is "
      "from the run of %s (`make readme-bench` copies them from docs/)." % (
          "/".join(str(d) for d in sorted(delays)), min(losses), max(losses), r.run_date()))
    w("")
    w("| | kcptun's defaults (aes, FEC 10/3, compression) | tuned (fast3, windows 2048, no "
      "crypt/FEC/compression) |")
    w("|---|---|---|")
    w("| goodput, clean link (0 ms) | %s vs %s Mbit/s (%s) | %s vs %s Mbit/s (%s); XDP backend "
      "%s (%s) |" % (
          g.get(clean, "kcpx default"), g.get(clean, "kcptun default"),
          g.get(clean, "kcpx/kcptun", 1), g.get(clean, "kcpx tuned"),
          g.get(clean, "kcptun tuned"), g.get(clean, "kcpx/kcptun", 2),
          g.get(clean, "kcpx-xdp/tuned"), g.get(clean, "kcpx-xdp/kcptun tuned")))
    w("| goodput, median of %d links | %s | %s (XDP backend %s); worst %.2fx at %s |" % (
        link_count(sd), median_of(sd), median_of(st), median_of(sx), worst[0], worst[1]))
    w("| goodput, %s loss | %s vs %s Mbit/s (%s) | %s vs %s Mbit/s (%s) |" % (
        mid, g.get(mid, "kcpx default"), g.get(mid, "kcptun default"),
        g.get(mid, "kcpx/kcptun", 1), g.get(mid, "kcpx tuned"), g.get(mid, "kcptun tuned"),
        g.get(mid, "kcpx/kcptun", 2)))
    w("| CPU s/GB (client + server), clean link | %s vs %s (%s) | %s vs %s (%s); XDP backend "
      "%s |" % (
          c.get(clean, "kcpx default s/GB"), c.get(clean, "kcptun default s/GB"),
          c.get(clean, "kcpx/kcptun", 1), c.get(clean, "kcpx tuned s/GB"),
          c.get(clean, "kcptun tuned s/GB"), c.get(clean, "kcpx/kcptun", 2),
          c.get(clean, "kcpx-xdp/tuned s/GB")))
    w("| p50 / p99 / p99.9 RTT of 64-byte exchanges, %s | %s vs %s ms | %s vs %s ms |" % (
        mid, strip_n(lat.get(mid, "kcpx/default")), strip_n(lat.get(mid, "kcptun/default")),
        strip_n(lat.get(mid, "kcpx/tuned")), strip_n(lat.get(mid, "kcptun/tuned"))))
    w("| peak RSS, client + server, clean link | %s vs %s MB | %s vs %s MB |" % (
        c.get(clean, "kcpx default RSS"), c.get(clean, "kcptun default RSS"),
        c.get(clean, "kcpx tuned RSS"), c.get(clean, "kcptun tuned RSS")))
    return "\n".join(out)


def block_compat_flood(r):
    cg = summary_line(r.bench, "goodput kcpx-compat/kcptun (default):")
    cc = summary_line(r.bench, "CPU s/GB kcpx-compat/kcptun (default):")
    ng = summary_line(r.bench, "goodput kcpx native/compat (default):")
    nc = summary_line(r.bench, "CPU s/GB kcpx native/compat (default):")
    g = r.goodput()
    tcp, losses = [], []
    for row in g.rows:
        m = re.match(r"(\d+) ms / (\d+) %$", row[0])
        cell = row[g.col("TCP cubic")]
        if m and m.group(1) != "0" and 1 <= int(m.group(2)) <= 10 and cell[:1].isdigit():
            tcp.append(num(cell))
            losses.append(int(m.group(2)))
    if not tcp:
        raise Missing("BENCH.md: no TCP cubic goodput at 1-10 % loss")
    lrange = ("%d-%d" % (min(losses), max(losses)) if min(losses) != max(losses)
              else "%d" % losses[0])
    out = ["kcptun's format between kcpx ends (`--proto kcptun`) moved %s kcptun's goodput at "
           "%s its CPU per GB (median of %d links; the native protocol moved %s the "
           "compatible format's there, at %s its CPU per GB). TCP (cubic) over the same "
           "links at 25 and 75 ms fell to %s-%s Mbit/s at %s %% loss." % (
               median_of(cg), median_of(cc), link_count(cg), median_of(ng), median_of(nc),
               fig(min(tcp)), fig(max(tcp)), lrange)]
    fl = {}
    for name in ("kcpx", "kcptun"):
        line = summary_line(r.bench, "flood: goodput during/without, %s:" % name)
        m = re.search(r"median ([\d.]+) of (\d+) runs \(([^;]*); flood of ([\d, ]+) "
                      r"datagrams/s\)", line)
        if not m:
            raise Missing("BENCH.md: flood line for %s unreadable" % name)
        ratios = [float(x) for x in m.group(3).split(",")]
        pps = [float(x) for x in m.group(4).split(",")]
        fl[name] = (float(m.group(1)), int(m.group(2)), min(ratios), max(ratios),
                    statistics.median(pps))
    k, t = fl["kcpx"], fl["kcptun"]

    def spread(f):  # ", median of N runs: lo-hi" / " (lo-hi)", or nothing for one run
        if f[1] < 2:
            return ("", "")
        return (", median of %d runs: %.2f-%.2f" % (f[1], f[2], f[3]),
                " (%.2f-%.2f)" % (f[2], f[3]))
    out.append("Under a 10 s spoofed flood (random bytes, forged tags, replays; about %.0fk "
               "datagrams/s) `kcpx up --proto kcpx` kept %s of its goodput (during/without "
               "%.2f%s); kcptun kept %.2f%s under a flood %.1fx lighter (%sa Python flooder "
               "sharing the 2 cores, so read these as rough)." % (
                   k[4] / 1000, "all" if k[0] >= 1 else "%.0f %%" % (100 * k[0]), k[0],
                   spread(k)[0], t[0], spread(t)[1], k[4] / t[4] if t[4] else 0,
                   "one run each, " if k[1] < 2 and t[1] < 2 else ""))
    return "\n".join(out)


def block_bottleneck(r):
    path = ["1", "5", "10", "20"]
    link = "100 Mbit/s, 25 ms, %s %%"
    runs = re.search(r"(\d+) run\(s\) per cell", r.bn)
    runs = int(runs.group(1)) if runs else 1

    def gp(cand, ls):
        return first(r.bn_get(link % ls, cand, "goodput Mbit/s"))

    def p99(cand, ls):
        return "%.0f" % num(r.bn_get(link % ls, cand, "RPC p50 / p99 ms").split("/")[1])

    def qpct(cand, ls):
        v = r.bn_get(link % ls, cand, "queue drops / frames")
        m = re.search(r"[(,] ?([\d.]+) ?%", v)  # "n / m (x %)" or "n / m, x % (range)"
        if not m:
            raise Missing("BENCH-BOTTLENECK.md: queue drops of %s unreadable" % cand)
        return float(m.group(1))

    def series(cand, f=gp):
        return " / ".join(f(cand, ls) for ls in path)

    out = []
    w = out.append
    w("On a real bottleneck (tools/linkem: 100 Mbit/s, 25 ms one way, a 50 ms tail-drop queue;")
    w("docs/BENCH-BOTTLENECK.md and docs/bottleneck.png, %s) at 1 / 5 / 10 / 20 %%" % (
        "median of %d runs per cell, their range in the table" % runs if runs > 1
        else "one run per cell"))
    w("random loss, with `--mode fast3 --sndwnd 1024 --rcvwnd 1024` and FEC 10/3: kcpx %s "
      "Mbit/s, TCP BBR %s, kcptun %s, TCP cubic %s." % (
          series("kcpx"), series("tcp-bbr"), series("kcptun"), series("tcp-cubic")))
    w("kcpx lost %.2f %% of its frames at the queue at 1 %% (kcptun %.0f %%), and 64-byte "
      "exchanges through a second tunnel during the bulk had a p99 of %s ms (kcptun %s). "
      "kcpx with kcptun's default flags made %s at 1 %%." % (
          qpct("kcpx", "1"), qpct("kcptun", "1"), series("kcpx", p99), series("kcptun", p99),
          gp("kcpx-kdef", "1")))
    grid = []
    seen = set()
    t = r.bn_cells()
    for row in t.rows:
        lk = row[0]
        if lk.startswith("100 Mbit/s, 25 ms,") or lk in seen:
            continue
        seen.add(lk)
        try:
            grid.append("%s: kcpx %s, BBR %s, kcptun %s" % (
                lk.replace(" Mbit/s,", " Mbit/s").replace(", 0 %", ", clean"),
                first(r.bn_get(lk, "kcpx", "goodput Mbit/s")),
                first(r.bn_get(lk, "tcp-bbr", "goodput Mbit/s")),
                first(r.bn_get(lk, "kcptun", "goodput Mbit/s"))))
        except Missing:
            continue
    if grid:
        w("Elsewhere on the grid: %s." % "; ".join(grid))
    f = r.bn_fair()
    fr = []
    for row in f.rows:
        share = row[f.col("flow 1's share")]
        if share.startswith("n/a"):
            continue
        a = num(share)
        fr.append("%s at %s: %.0f/%.0f %%" % (
            row[f.col("flow 1 + flow 2")].replace("tcp-bbr", "TCP BBR").replace(
                "tcp-cubic", "TCP cubic"), row[0].split(", ")[-1], a, 100 - a))
    if fr:
        w("Two flows through one bottleneck (100 Mbit/s, 25 ms; flow 1's share / flow 2's): "
          "%s." % "; ".join(fr))
    return "\n".join(out)


def block_rss(r):
    t = r.t("rss", heading="Memory:")
    k, c = t.row("kcpx"), t.row("kcptun")
    n = re.search(r"Memory: (\d+) connections", t.heading)
    ksum, csum = num(k[t.col("sum MiB")]), num(c[t.col("sum MiB")])
    return ("%s connections of 64 KiB each way through one tunnel peaked at %.1f MiB for "
            "kcpx's client and server together against %.1f MiB for kcptun's (%.2fx, medians "
            "of %s runs; docs/SCALE.md)." % (
                "{:,}".format(int(n.group(1))) if n else "1,000", ksum, csum, ksum / csum,
                k[t.col("runs")]))


def bare_backends(r):
    t = r.t("backends", heading="On a bare veth pair")
    rows = {}
    for key, label in (("udp", "UDP backend"), ("xdp", "XDP backend (`kcpx up`"),
                       ("thr", "XDP backend, `--napi threaded`")):
        row = next((x for x in t.rows if x[0].startswith(label)), None)
        if not row or row[t.col("runs")] == "0":
            raise Missing("BENCH.md: no bare veth pair row '%s'" % label)
        rows[key] = {h: row[t.col(h)] for h in ("runs", "Mbit/s", "CPU s/GB", "packets/s",
                                                 "goodput vs UDP", "CPU vs UDP")}
    m = re.search(r"Median over (\d+) links: goodput ([\d.]+x), CPU per GB ([\d.]+x)",
                  r.bench)
    if not m:
        raise Missing("BENCH.md: no median of the XDP backend over the lanes")
    return rows, m


def block_backends(r):
    rows, m = bare_backends(r)
    runs = rows["udp"]["runs"]

    def kpps(x):
        return "%.0fk" % (num(x["packets/s"]) / 1000)

    out = ["| tuned flags, medians of %s runs | Mbit/s | CPU s/GB | datagrams/s | vs UDP: "
           "goodput, CPU |" % runs, "|---|---|---|---|---|"]
    for key, label in (("udp", "bare veth pair, UDP backend"),
                       ("xdp", "bare veth pair, XDP backend (default `--napi keep`)"),
                       ("thr", "bare veth pair, XDP backend, `--napi threaded`")):
        x = rows[key]
        vs = "" if key == "udp" else "%s, %s" % (x["goodput vs UDP"], x["CPU vs UDP"])
        out.append("| %s | %s | %s | %s | %s |" % (label, x["Mbit/s"], x["CPU s/GB"],
                                                   kpps(x), vs))
    out.append("| %s emulated links (linkem), XDP backend | link-bound | | | median %s, %s |"
               % (m.group(1), m.group(2), m.group(3)))
    return "\n".join(out)


def block_xdp_status(r):
    rows, m = bare_backends(r)
    return ("with its defaults the XDP backend is %s the UDP backend's goodput at %s its CPU "
            "per GB on a bare veth pair (run of %s, medians of %s runs; the aim was 1.5x or "
            "0.5x), and %s the CPU per GB across the emulated links" % (
                rows["xdp"]["goodput vs UDP"], rows["xdp"]["CPU vs UDP"], r.run_date(),
                rows["udp"]["runs"], m.group(3)))


def block_faketcp(r):
    bare = r.t("faketcp-bare", heading="bare veth pair")
    link = r.t("faketcp-link", heading="linkem delay=25,loss=1")

    def med(t, label):
        row = next((x for x in t.rows if x[0] == label), None)
        if not row or row[t.col("runs")] == "0":
            raise Missing("BENCH.md: fake TCP row '%s' in '%s'" % (label, t.heading))
        return num(row[t.col("Mbit/s (median)")]), num(row[t.col("CPU s/GB (median)")]), \
            row[t.col("runs")]

    bu, bt, bk = (med(bare, x) for x in ("kcpx UDP mode", "kcpx `--tcp`", "kcptun `--tcp`"))
    lu, lt, lk = (med(link, x) for x in ("kcpx UDP mode", "kcpx `--tcp`", "kcptun `--tcp`"))
    # the linkem lane may run fewer rounds than the bare pair (bench.sh FAKETCP_LINK_RUNS)
    lruns = "" if lt[2] == bt[2] else (" (one run)" if lt[2] == "1" else
                                       " (medians of %s runs)" % lt[2])
    return ("Speed (docs/BENCH.md, tuned flags, run of %s, medians of %s runs): on a bare "
            "veth pair `--tcp` moved %.2fx the goodput of kcpx's UDP mode (%.0f vs %.0f "
            "Mbit/s) and %.1fx kcptun `--tcp`'s (%.0f), at %.2fx kcptun `--tcp`'s CPU per GB; "
            "over linkem at 25 ms with 1 %% loss%s %.2fx UDP mode and %.2fx kcptun `--tcp`, "
            "at %.2fx its CPU per GB." % (
                r.run_date(), bt[2], bt[0] / bu[0], bt[0], bu[0], bt[0] / bk[0], bk[0],
                bt[1] / bk[1], lruns, lt[0] / lu[0], lt[0] / lk[0], lt[1] / lk[1]))


BLOCKS = {
    "kcptun-table": block_kcptun_table,
    "compat-flood": block_compat_flood,
    "bottleneck": block_bottleneck,
    "rss": block_rss,
    "backends": block_backends,
    "xdp-status": block_xdp_status,
    "faketcp": block_faketcp,
}


def wrap_block(text):
    """Prose lines wrapped at WIDTH; table rows, blank lines and markup as they are."""
    out = []
    for line in text.split("\n"):
        if line.startswith("|") or not line.strip():
            out.append(line)
        else:
            out.append(textwrap.fill(line, WIDTH))
    return "\n".join(out)


def marker_re(name):
    return re.compile(r"(<!-- bench:%s begin -->)(.*?)(<!-- bench:%s end -->)" % (
        re.escape(name), re.escape(name)), re.S)


def block_text(readme, name):
    m = marker_re(name).search(readme)
    return m.group(2) if m else None


def fill(readme, reports):
    """README's text with every block filled: (text, names that could not be filled,
    names whose markers are missing)."""
    failed, absent = [], []
    for name, fn in BLOCKS.items():
        m = marker_re(name).search(readme)
        if not m:
            absent.append(name)
            continue
        try:
            text = fn(reports)
        except Missing as e:
            failed.append("%s (%s)" % (name, e))
            continue
        if m.group(2).startswith("\n"):  # a block on lines of its own
            text = "\n" + wrap_block(text) + "\n"
        else:  # inside a paragraph (or a list item): wrapped as its line is indented
            line0 = readme.rfind("\n", 0, m.start(1)) + 1
            indent = re.match(r"[ -]*", readme[line0:m.start(1)]).group(0)
            lead = m.start(1) - line0 + len(m.group(1))
            text = textwrap.fill(text, WIDTH, initial_indent="x" * lead,
                                 subsequent_indent=" " * len(indent))[lead:]
        readme = readme[:m.start(2)] + text + readme[m.end(2):]
    return readme, failed, absent


def main(argv):
    check = "--check" in argv
    args = [a for a in argv if a != "--check"]
    paths = args + ["README.md", "docs/BENCH.md", "docs/BENCH-BOTTLENECK.md"][len(args):]
    readme_p, bench_p, bn_p = paths[:3]
    readme = open(readme_p).read()
    reports = Reports(open(bench_p).read(), open(bn_p).read())
    new, failed, absent = fill(readme, reports)
    rc = 0
    for n in absent:
        print("readme: %s has no <!-- bench:%s begin/end --> markers" % (readme_p, n),
              file=sys.stderr)
        rc = 1
    for n in failed:
        print("readme: block %s left as it was" % n, file=sys.stderr)
        rc = 1
    if check:
        stale = [n for n in BLOCKS if block_text(new, n) != block_text(readme, n)]
        if stale:
            print("readme: blocks %s of %s differ from %s and %s; run `make readme-bench`" % (
                ", ".join(stale), readme_p, bench_p, bn_p), file=sys.stderr)
            return 1
        return rc
    if new != readme:
        with open(readme_p, "w") as f:
            f.write(new)
        print("readme: %s updated from %s and %s" % (readme_p, bench_p, bn_p))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
