#!/usr/bin/env python3
"""Turn bench.sh's results into BENCH.md and bench.png, and print a short summary.

usage: report.py WORKDIR OUTDIR
WORKDIR holds results.txt (one `key=value ... [reason=free text]` line per measurement),
meta.txt and, for full runs, micro.txt. OUTDIR receives BENCH.md and bench.png.
"""
import os
import statistics
import sys

import gplot

LOSS_ORDER = ["0", "1", "5", "10", "20", "burst"]


def parse_line(line):
    rec = {}
    line = line.strip()
    if not line:
        return None
    reason = None
    if " reason=" in line:
        line, reason = line.split(" reason=", 1)
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            rec[k] = v
    if reason is not None:
        rec["reason"] = reason.strip()
    return rec


def load(workdir):
    recs = []
    with open(os.path.join(workdir, "results.txt")) as f:
        for line in f:
            r = parse_line(line)
            if r:
                recs.append(r)
    meta = {}
    with open(os.path.join(workdir, "meta.txt")) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                meta[k] = v
    flood = []
    p = os.path.join(workdir, "flood.txt")
    if os.path.exists(p):
        with open(p) as f:
            flood = [r for r in (parse_line(x) for x in f) if r]
    for name in ("backend.txt", "rss.txt", "faketcp.txt", "queues.txt"):
        p = os.path.join(workdir, name)
        if not os.path.exists(p):
            continue
        with open(p) as f:
            flood += [r for r in (parse_line(x) for x in f) if r]
    micro = ""
    p = os.path.join(workdir, "micro.txt")
    if os.path.exists(p):
        micro = open(p, errors="replace").read().strip()
    return recs, meta, micro, flood


def link_key(r):
    loss = r["loss"]
    return (int(r["delay"]), LOSS_ORDER.index(loss) if loss in LOSS_ORDER else 99)


def link_name(delay, loss, burst):
    ls = "burst (%s)" % burst if loss == "burst" else loss + " %"
    return "%s ms / %s" % (delay, ls)


class Notes:
    """n/a reasons, numbered once each."""

    def __init__(self):
        self.reasons = []

    def mark(self, reason):
        reason = reason or "no reason given"
        if reason not in self.reasons:
            self.reasons.append(reason)
        return "n/a[%d]" % (self.reasons.index(reason) + 1)

    def render(self):
        return "\n".join("- n/a[%d]: %s" % (i + 1, r) for i, r in enumerate(self.reasons))


def fnum(x, nd=1):
    if x is None:
        return "—"
    if x >= 100:
        return "%.0f" % x
    return ("%%.%df" % nd) % x


def backend_section(w, links, val, cell, xdp, bare):
    """Issue 5's comparison: the XDP/AF_XDP backend against the UDP-socket backend, the
    same binary and flags, on the bench's lanes and on a bare veth pair."""
    pairs = [(c, "kcpx/" + c.split("/")[1]) for c in xdp]
    if not pairs and not bare:
        return
    w("## XDP backend against UDP backend")
    w("")
    if bare:
        bare_table(w, bare)
    if not pairs:
        return
    w("### On the bench's lanes (through linkem)")
    w("")
    w("`kcpx up IFACE` (XDP + AF_XDP, default `--napi keep`) against `kcpx client|server` "
      "(UDP sockets), same flags, each on its own lane. CPU per GB is the two daemons' (plus "
      "NAPI threads, had there been any); packets/s are the datagrams linkem delivered to the "
      "two ends. Goodput here is bounded by the emulated link and by linkem, which forwards "
      "every frame on the same two cores, so its ratio sits near 1x; CPU per GB is the figure "
      "that compares the backends on the lanes.")
    w("")
    for num, den in pairs:
        w("| link | %s Mbit/s | %s Mbit/s | goodput ratio | %s s/GB | %s s/GB | CPU ratio "
          "| %s pkt/s | %s pkt/s |" % (num, den, num, den, num, den))
        w("|---|---|---|---|---|---|---|---|---|")
        gr, cr = [], []
        for d, l in links:
            g = ratio(val("bulk", d, l, num, "mbps"), val("bulk", d, l, den, "mbps"))
            c = ratio(val("bulk", d, l, num, "cpu_s_per_gb"), val("bulk", d, l, den, "cpu_s_per_gb"))
            if g is not None:
                gr.append(g)
            if c is not None:
                cr.append(c)
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                link_name(d, l, "GE"), cell("bulk", d, l, num, "mbps"), cell("bulk", d, l, den, "mbps"),
                fratio(g), cell("bulk", d, l, num, "cpu_s_per_gb", 2),
                cell("bulk", d, l, den, "cpu_s_per_gb", 2), fratio(c),
                cell("bulk", d, l, num, "pps", 0), cell("bulk", d, l, den, "pps", 0)))
        w("")
        if gr and cr:
            w("Median over %d links: goodput %.2fx, CPU per GB %.2fx (issue 5's target: 1.5x "
              "goodput or 0.5x CPU per GB)." % (len(gr), statistics.median(gr), statistics.median(cr)))
            w("")


def backend_medians(recs):
    """backends.sh's runs: per candidate, the medians and how many runs were ok."""
    med = {}
    for cand in ("udp", "xdp", "xdp-threaded"):
        ok = [r for r in recs if r.get("kind") == "backend" and r.get("cand") == cand
              and r.get("status") == "ok"]
        if ok:
            med[cand] = {k: statistics.median(float(r[k]) for r in ok)
                         for k in ("mbps", "cpu_s_per_gb", "pps")}
            med[cand]["runs"] = len(ok)
    return med


def bare_table(w, recs):
    """backends.sh: interleaved runs on a bare veth pair; medians per candidate."""
    w("### On a bare veth pair (tools/bench/backends.sh)")
    w("")
    w("Two namespaces joined by one veth pair, no emulator: each daemon pays for what it "
      "sends, its peer's receive path included (the kernel receives a veth's packet in the "
      "sender's context unless NAPI polls in threads). Tuned flags, one 4 s iperf3 transfer "
      "per run, the candidates interleaved; medians of the runs. CPU per GB counts the two "
      "daemons and, with `--napi threaded`, the veths' NAPI threads; packets/s are what the "
      "two veth ends received.")
    w("")
    names = [("udp", "UDP backend (`kcpx client/server`)"),
             ("xdp", "XDP backend (`kcpx up`, default `--napi keep`)"),
             ("xdp-threaded", "XDP backend, `--napi threaded`")]
    med = backend_medians(recs)
    w("| backend | runs | Mbit/s | CPU s/GB | packets/s | goodput vs UDP | CPU vs UDP |")
    w("|---|---|---|---|---|---|---|")
    for cand, label in names:
        if cand not in med:
            why = [r.get("reason", "") for r in recs if r.get("cand") == cand]
            w("| %s | 0 | n/a | n/a | n/a | | | %s" % (label, "; ".join(why)[:160]))
            continue
        m, u = med[cand], med.get("udp")
        w("| %s | %d | %.0f | %.2f | %.0f | %s | %s |" % (
            label, m["runs"], m["mbps"], m["cpu_s_per_gb"], m["pps"],
            fratio(ratio(m["mbps"], u["mbps"])) if u else "—",
            fratio(ratio(m["cpu_s_per_gb"], u["cpu_s_per_gb"])) if u else "—"))
    w("")
    w("Runs: " + "; ".join("%s run %s %s Mbit/s %s s/GB" % (r.get("cand"), r.get("run"),
                                                           r.get("mbps", "n/a"),
                                                           r.get("cpu_s_per_gb", "n/a"))
                          for r in recs) + ".")
    w("")



def queues_medians(recs):
    """queues.sh's runs: per candidate (q1, q2), the medians, the runs and the machine's
    busy share over each run (min and max)."""
    med = {}
    for cand in ("q1", "q2"):
        ok = [r for r in recs if r.get("kind") == "queues" and r.get("cand") == cand
              and r.get("status") == "ok"]
        busy = [int(r["busy_pct"]) for r in recs if r.get("kind") == "queues-machine"
                and r.get("cand") == cand and r.get("busy_pct", "").isdigit()]
        if ok:
            med[cand] = {k: statistics.median(float(r[k]) for r in ok)
                         for k in ("mbps", "cpu_s_per_gb")}
            med[cand]["runs"] = len(ok)
            med[cand]["mbps_all"] = [float(r["mbps"]) for r in ok]
            med[cand]["busy"] = (min(busy), max(busy)) if busy else None
    return med


def queues_section(w, recs):
    """queues.sh: `kcpx up` with one engine against two on a 2-queue veth pair."""
    if not any(r.get("kind") == "queues" for r in recs):
        return
    w("## One engine against two under `kcpx up` (tools/bench/queues.sh)")
    w("")
    w("A 2-queue bare veth pair, no emulator: a `kcpx up --xdp-mode native` server with "
      "`--threads 1` (q1) and `--threads 2` (q2, the default on 2 queues and 2 cores), the "
      "same UDP client (`--threads 2 --conn 8`), 4 iperf3 streams for 5 s per run, tuned "
      "flags, the candidates interleaved; medians of the runs. CPU per GB counts both "
      "daemons (every thread). \"cores busy\" is the share of the machine's cores that was "
      "busy over each run (daemons, iperf3, the veths' receive work and anything else "
      "running): near 100 % means the cores, not the engines, set the pace.")
    w("")
    med = queues_medians(recs)
    w("| server engines | runs | Mbit/s (each run) | Mbit/s | CPU s/GB | cores busy | "
      "goodput vs 1 engine |")
    w("|---|---|---|---|---|---|---|")
    for cand, label in (("q1", "1 (q1)"), ("q2", "2 (q2)")):
        if cand not in med:
            why = [r.get("reason", "") for r in recs if r.get("kind") == "queues"
                   and r.get("cand") == cand]
            w("| %s | 0 | n/a | n/a | n/a | | | %s" % (label, "; ".join(why)[:160]))
            continue
        m, one = med[cand], med.get("q1")
        busy = ("%d-%d %%" % m["busy"] if m["busy"][0] != m["busy"][1]
                else "%d %%" % m["busy"][0]) if m["busy"] else "n/a"
        w("| %s | %d | %s | %.0f | %.2f | %s | %s |" % (
            label, m["runs"], ", ".join("%.0f" % x for x in m["mbps_all"]), m["mbps"],
            m["cpu_s_per_gb"], busy,
            fratio(ratio(m["mbps"], one["mbps"])) if one else "—"))
    w("")
    if "q1" in med and "q2" in med:
        busy = [b for c in ("q1", "q2") if med[c]["busy"] for b in med[c]["busy"]]
        w("Two engines moved %s the goodput of one (issue 16 aims at >= 1.7x)%s" % (
            fratio(ratio(med["q2"]["mbps"], med["q1"]["mbps"])),
            ("; the cores were %s busy, so the client, iperf3 and the veths' receive "
             "work share the same cores as the engines: a second engine has no core of "
             "its own here." % ("%d %%" % min(busy) if min(busy) == max(busy) else
                                "%d-%d %%" % (min(busy), max(busy))))
            if busy and min(busy) >= 85 else "."))
        w("")


def faketcp_section(w, recs):
    """faketcp.sh: `--tcp` against kcpx's UDP mode and kcptun (with and without --tcp) on a
    bare veth pair and on linkem lanes, interleaved runs; one table per link, medians, and
    issue 15's three ratios (its targets are set on the bare pair)."""
    if not recs:
        return
    names = [("udp", "kcpx UDP mode"), ("tcp", "kcpx `--tcp`"), ("kcptun", "kcptun"),
             ("kcptun-tcp", "kcptun `--tcp`")]
    links = []
    for r in recs:
        if r.get("link", "bare") not in links:
            links.append(r.get("link", "bare"))
    secs = next((r.get("secs") for r in recs if r.get("status") == "ok"), None)
    secs = "%.0f" % float(secs) if secs else "?"
    w("## Fake TCP (`--tcp`) against UDP mode and kcptun `--tcp`")
    w("")
    w("tools/bench/faketcp.sh on a bare veth pair (no emulator), then on linkem lanes (the "
      "same namespaces with linkem in a middle one, both directions impaired alike), tuned "
      "flags on both ends of every candidate, the four candidates interleaved, one iperf3 "
      "transfer of about %s s per run; medians of the runs. `tcp` is `kcpx client|server "
      "--tcp` (TC egress and TC ingress translation: TCX, not XDP, on a veth), `kcptun-tcp` stock kcptun's tcpraw "
      "(raw sockets). CPU per GB is the two daemons' (on a veth the kernel's receive work, "
      "the translation included, runs in the sender's context)." % secs)
    w("")
    for link in links:
        lrecs = [r for r in recs if r.get("link", "bare") == link]
        med = {}
        for cand, _ in names:
            ok = [r for r in lrecs if r.get("cand") == cand and r.get("status") == "ok"]
            if ok:
                med[cand] = {k: statistics.median(float(r[k]) for r in ok)
                             for k in ("mbps", "cpu_s_per_gb")}
                med[cand]["runs"] = ok
        w("### %s" % ("bare veth pair" if link == "bare" else "linkem " + link))
        w("")
        w("| candidate | runs | Mbit/s (median) | runs (Mbit/s) | CPU s/GB (median) |")
        w("|---|---|---|---|---|")
        for cand, label in names:
            rs = [r for r in lrecs if r.get("cand") == cand]
            if cand not in med:
                why = "; ".join(r.get("reason", "") for r in rs)[:160]
                w("| %s | 0 | n/a | | n/a %s |" % (label, why))
                continue
            m = med[cand]
            w("| %s | %d | %.0f | %s | %.2f |" % (
                label, len(m["runs"]), m["mbps"], ", ".join(r["mbps"] for r in m["runs"]),
                m["cpu_s_per_gb"]))
        w("")
        t, u, k = med.get("tcp"), med.get("udp"), med.get("kcptun-tcp")
        if t and u and k:
            w("%s: `--tcp` goodput %s UDP mode's%s, %s kcptun `--tcp`'s%s, CPU per GB %s "
              "kcptun `--tcp`'s%s." % (
                  "Issue 15's targets" if link == "bare" else "Ratios on this link",
                  fratio(ratio(t["mbps"], u["mbps"])), " (>= 0.8x)" if link == "bare" else "",
                  fratio(ratio(t["mbps"], k["mbps"])), " (>= 3x)" if link == "bare" else "",
                  fratio(ratio(t["cpu_s_per_gb"], k["cpu_s_per_gb"])),
                  " (<= 0.33x)" if link == "bare" else ""))
            w("")

def rss_section(w, recs):
    """rss.sh: peak RSS of both tunnel processes under 1,000 connections, kcpx and kcptun
    in the same run; medians of the runs and the ratio the issue sets (<= 0.25x)."""
    recs = [r for r in recs if r.get("kind") == "rss"]
    if not recs:
        return
    n = recs[0].get("n", "?")
    size = int(recs[0].get("size", "0") or 0)
    w("## Memory: %s connections through one tunnel" % n)
    w("")
    w("tools/bench/rss.sh: %s connections opened at once through one tunnel (UDP backend, "
      "each tunnel's default flags and a key, an echo target), %d KiB each way on every "
      "one, every byte checked. Peak RSS of the server and the client and of their sum, "
      "sampled every 50 ms while the connections run; idle is the sum with one session up "
      "before the run. Medians of the runs; kcpx and kcptun take turns in each run. "
      "docs/SCALE.md says where the memory goes." % (n, size // 1024))
    w("")
    w("| tunnel | runs | server MiB | client MiB | sum MiB | idle MiB | seconds | sum vs kcptun |")
    w("|---|---|---|---|---|---|---|---|")
    med = {}
    for cand in ("kcpx", "kcptun"):
        ok = [r for r in recs if r.get("cand") == cand and r.get("status") == "ok"]
        if not ok:
            why = [r.get("reason", "") for r in recs if r.get("cand") == cand]
            w("| %s | 0 | n/a | n/a | n/a | n/a | n/a | %s |" % (cand, "; ".join(why)[:160]))
            continue
        m = {k: statistics.median(float(r[k]) for r in ok)
             for k in ("server_kb", "client_kb", "sum_kb", "idle_kb", "xfer_s")}
        med[cand] = m
    for cand, m in med.items():
        k = med.get("kcptun")
        w("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %s |" % (
            cand, len([r for r in recs if r.get("cand") == cand and r.get("status") == "ok"]),
            m["server_kb"] / 1024, m["client_kb"] / 1024, m["sum_kb"] / 1024,
            m["idle_kb"] / 1024, m["xfer_s"],
            fratio(ratio(m["sum_kb"], k["sum_kb"])) if k else "—"))
    w("")
    w("Runs: " + "; ".join("%s run %s sum %s kB" % (r.get("cand"), r.get("run"),
                                                  r.get("sum_kb", "n/a")) for r in recs) + ".")
    w("")


def load_parts(workdir):
    """bench.sh's parts.txt: wall seconds per part, summed over its lines, in the order
    the parts first ran, each with what it covers (the last line's text)."""
    parts = {}
    p = os.path.join(workdir, "parts.txt")
    if not os.path.exists(p):
        return parts
    for line in open(p):
        r = parse_line(line.replace(" what=", " reason=", 1))
        if not r or "part" not in r:
            continue
        e = parts.setdefault(r["part"], {"secs": 0.0, "what": ""})
        e["secs"] += float(r.get("secs", 0))
        e["what"] = r.get("reason", "")
    return parts


def bottleneck_section(w, workdir):
    """tools/bench/bottleneck.sh's tables and plot, as it wrote them (bnreport.py), when
    this run ran it; docs/BENCH-BOTTLENECK.md has them with the run's details."""
    p = os.path.join(workdir, "bottleneck.md")
    if not os.path.exists(p):
        return
    w("## Through a bottleneck (tools/bench/bottleneck.sh, issue 11)")
    w("")
    w("linkem with a rate limit and its 50 ms tail-drop queue; per cell a bulk through one "
      "tunnel and 64-byte exchanges through a second one during it; the runs of every cell "
      "in rounds, median (min-max). docs/BENCH-BOTTLENECK.md has the same tables with the "
      "run's details, docs/CONGESTION.md what the columns mean and the targets.")
    w("")
    w(open(p).read().strip())
    w("")


def mmss(secs):
    s = int(round(secs))
    return "%d:%02d" % (s // 60, s % 60)


def parts_section(w, parts, meta):
    """Where the bench's wall time went, so that the next change to its length knows
    which part to cut."""
    if not parts:
        return
    total = int(meta.get("elapsed", "0")) + int(meta.get("build_s") or 0)
    w("## Time per part")
    w("")
    w("Wall time of each part of this run (min:s), in the order they ran; `bottleneck-*` "
      "are tools/bench/bottleneck.sh's. The rest of the total is harness overhead between "
      "parts and writing this report.")
    w("")
    w("| part | what | min:s | share |")
    w("|---|---|---|---|")
    for name, e in parts.items():
        w("| %s | %s | %s | %s |" % (name, e["what"], mmss(e["secs"]),
                                     "%.0f %%" % (100 * e["secs"] / total) if total else "—"))
    w("| total | build and bench.sh | %s | |" % mmss(total))
    w("")


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fratio(x):
    return "—" if x is None else "%.2fx" % x


def main():
    workdir, outdir = sys.argv[1], sys.argv[2]
    recs, meta, micro, flood = load(workdir)
    tparts = load_parts(workdir)
    burst = meta.get("burst", "")
    notes = Notes()
    cands = []
    for r in recs:
        if r["cand"] not in cands:
            cands.append(r["cand"])
    links = sorted({(r["delay"], r["loss"]) for r in recs}, key=lambda x: link_key({"delay": x[0], "loss": x[1]}))
    idx = {(r["kind"], r["delay"], r["loss"], r["cand"]): r for r in recs}
    sets = [s for s in ("default", "tuned") if any(c.endswith("/" + s) for c in cands)]

    def get(kind, d, l, c):
        return idx.get((kind, d, l, c))

    def val(kind, d, l, c, field):
        r = get(kind, d, l, c)
        if not r or r.get("status") != "ok" or field not in r:
            return None
        try:
            return float(r[field])
        except ValueError:
            return None

    def cell(kind, d, l, c, field, nd=1):
        r = get(kind, d, l, c)
        if not r:
            return "—"
        if r.get("status") != "ok":
            return notes.mark(r.get("reason"))
        return fnum(val(kind, d, l, c, field), nd)

    md = []
    w = md.append
    w("# kcpx benchmark: kcpx vs kcptun vs TCP over emulated WAN links")
    w("")
    total = int(meta.get("elapsed", "0")) + int(meta.get("build_s") or 0)
    w("Generated by `make bench` (tools/bench/bench.sh, mode `%s`) on %s, %.1f min%s." % (
        meta.get("mode"), meta.get("date"), total / 60,
        " (\"Time per part\" below)" if tparts else ""))
    w("Machine: %s, kernel %s; kcptun %s (Debian); kcpx at git %s (binary %s)." % (
        meta.get("cpu"), meta.get("kernel"), meta.get("kcptun"), meta.get("git"),
        meta.get("kcpx_bin") or "n/a"))
    w("")
    w("**How it is measured.** Each candidate has its own lane, host A — linkem — host B in "
      "three network namespaces, all lanes impaired the same way by tools/linkem (userspace, "
      "AF_PACKET; this kernel has no netem), with the same seed (%s). Delay and loss apply to "
      "both directions; `burst` is Gilbert-Elliott `%s` (p=1 %%, r=25 %%: 3.8 %% mean loss in "
      "bursts of 4 frames on average). TSO/GSO are off on the endpoints, so a loss is one "
      "wire packet." % (meta.get("seed"), burst))
    w("")
    w("- **Goodput**: one iperf3 TCP transfer A→B bounded to %s s, bytes the receiver got "
      "divided by the time. TCP is `iperf3 -C cubic` straight over the link; the tunnels "
      "carry iperf3 from 127.0.0.1 in A to 127.0.0.1 in B." % meta.get("bulk_t"))
    w("- **Latency**: `rr`, 64-byte requests and 64-byte responses one after another on one "
      "connection (through the tunnel), RTT percentiles by nearest rank; all lanes at once.")
    w("- **CPU s/GB**: utime+stime of the tunnel's client and server processes over the "
      "transfer, per 10^9 goodput bytes. **RSS**: VmHWM of both, summed.")
    w("- **Wire/goodput**: bytes linkem forwarded (both directions, Ethernet frames) per goodput "
      "byte.")
    compat = "kcpx-compat/default" if "kcpx-compat/default" in cands else None
    w("- **Native and compatible protocol.** `kcpx/*` and `kcpx-xdp/*` run kcpx against kcpx, "
      "so the client's default `--proto auto` settles on kcpx's **native protocol** (X25519 "
      "handshake, AEAD per datagram, replay window; the KCP and FEC flags are the same). "
      "`kcptun/*` is stock kcptun against stock kcptun. `kcpx-compat/default` is kcpx "
      "against kcpx in **kcptun's wire format** (`--proto kcptun` on both sides: kcp-go's "
      "AES-CFB, no handshake) with kcptun's default flags: it separates what the native "
      "protocol costs or gains from what kcpx's engine does.")
    protos = {}
    for r in recs:
        if r["kind"] == "bulk" and "proto" in r:
            protos.setdefault(r["cand"], set()).add(r["proto"])
    if protos:
        w("  Checked in this run from each kcpx client's log (it says `kcpx protocol` for the "
          "native one): %s." % "; ".join("%s ran %s" % (c, " and ".join(
              "native" if p == "kcpx" else "kcptun format" for p in sorted(ps)))
              for c, ps in protos.items()))
    allp = meta.get("all_points", "").split()
    for c, key in ((compat, "compat_points"),
                   (next((x for x in cands if x.startswith("kcpx-xdp")), None), "xdp_points"),
                   ("tcp" if "tcp" in cands else None, "tcp_points")):
        cp = meta.get(key, "").split()
        if c and cp and set(cp) != set(allp):
            w("  To keep `make bench` short, %s runs only on the links %s (delay ms:loss "
              "%%); its cells elsewhere are —." % (
                  "`tcp`'s bulk transfer" if c == "tcp" else "`%s`" % c,
                  ", ".join("`%s`" % x for x in cp)))
    w("- `kcpx-xdp` is `kcpx up IFACE client|server` on the lane's endpoint interfaces (XDP "
      "and AF_XDP, copy mode on veth) with the tuned flags; `kcpx` is its UDP-socket mode.")
    w("- Flag sets, the same for kcpx and kcptun: `default` = kcptun's defaults spelled out "
      "(client `%s`, server `%s`, compression on); `tuned` = `%s` on both sides." % (
          meta.get("default_c"), meta.get("default_s"), meta.get("tuned")))
    w("- Transfers are short (%s s) to keep `make bench` near 25 minutes, so at 75 ms a "
      "large part of each is slow start (TCP) or window ramp-up." % meta.get("bulk_t"))
    w("- Ratios kcpx/kcptun come from the same run, side by side; they are the figures that "
      "count. Absolute numbers on this shared 2-core VM are noisy: other engineers' builds "
      "and tests run beside it, and a p99 of a few hundred exchanges at 0 % loss mostly shows "
      "CPU scheduling (the load average at the start of each latency run is in the raw "
      "lines).")
    if meta.get("kcpx_na"):
        w("- kcpx could not run in this run: %s." % meta["kcpx_na"])
    w("")

    # ---- summary
    summary = []
    pairs = [("kcpx/" + s, "kcptun/" + s, s) for s in sets]
    pairs += [(c, "kcptun/" + c.split("/")[1], c.split("/")[1] + ", XDP") for c in cands
              if c.startswith("kcpx-xdp")]
    labels = {}
    for c in cands:
        if c.startswith("kcpx-xdp") and "kcpx/" + c.split("/")[1] in cands:
            pairs.append((c, "kcpx/" + c.split("/")[1], c.split("/")[1]))
            labels[(c, "kcpx/" + c.split("/")[1])] = "XDP backend/UDP backend"
    if compat:
        pairs.append((compat, "kcptun/default", "default"))
        pairs.append(("kcpx/default", compat, "default"))
        labels[(compat, "kcptun/default")] = "kcpx-compat/kcptun"
        labels[("kcpx/default", compat)] = "kcpx native/compat"
    for num, den, s in pairs:
        what = labels.get((num, den), "kcpx/kcptun")
        for field, name in (("mbps", "goodput"), ("cpu_s_per_gb", "CPU s/GB")):
            if field != "mbps" and not (num, den) in labels:
                continue
            rs = [ratio(val("bulk", d, l, num, field), val("bulk", d, l, den, field))
                  for d, l in links]
            rs = [x for x in rs if x is not None]
            if rs:
                summary.append("%s %s (%s): median %.2fx over %d links (min %.2fx, max %.2fx)" % (
                    name, what, s, statistics.median(rs), len(rs), min(rs), max(rs)))
            else:
                summary.append("%s %s (%s): n/a (no kcpx result)" % (name, what, s))
    rr_links = [(d, l) for d, l in links if any(get("rr", d, l, c) for c in cands)]
    for d, l in rr_links:
        parts = []
        for c in cands:
            v = val("rr", d, l, c, "p99_ms")
            parts.append("%s %s" % (c, fnum(v) if v is not None else "n/a"))
        summary.append("p99 RTT ms @ %s: %s" % (link_name(d, l, "GE"), ", ".join(parts)))
    bmed = backend_medians(flood)
    u = bmed.get("udp")
    for cand in ("xdp", "xdp-threaded"):
        m = bmed.get(cand)
        if m and u:
            summary.append("bare veth pair, %s/udp backend: goodput %.2fx (%.0f/%.0f Mbit/s), CPU "
                           "per GB %.2fx (%.2f/%.2f s), medians of %d runs" % (
                               cand, m["mbps"] / u["mbps"], m["mbps"], u["mbps"],
                               m["cpu_s_per_gb"] / u["cpu_s_per_gb"], m["cpu_s_per_gb"],
                               u["cpu_s_per_gb"], m["runs"]))
    for name in ("kcpx", "kcptun"):
        fr = [r for r in flood if r.get("kind") == "flood" and r.get("name") == name
              and r.get("status") == "ok"]
        if fr:
            summary.append("flood: goodput during/without, %s: median %.2f of %d runs (%s; "
                           "flood of %s datagrams/s)" % (
                               name, statistics.median(float(r["ratio"]) for r in fr), len(fr),
                               ", ".join(r["ratio"] for r in fr),
                               ", ".join(r["flood_pps"] for r in fr)))
    w("## Summary")
    w("")
    w("```")
    w("\n".join(summary))
    w("```")
    w("")
    parts_section(w, tparts, meta)
    bottleneck_section(w, workdir)

    # ---- goodput
    w("## Goodput (Mbit/s)")
    w("")
    hdr = ["link"]
    cols = []
    if "tcp" in cands:
        hdr.append("TCP cubic")
        cols.append(("c", "tcp"))
    for s in sets:
        hdr += ["kcptun %s" % s, "kcpx %s" % s, "kcpx/kcptun"]
        cols += [("c", "kcptun/" + s), ("c", "kcpx/" + s), ("r", s)]
    xdp = [c for c in cands if c.startswith("kcpx-xdp")]
    for c in xdp:
        hdr += [c, "kcpx-xdp/kcptun %s" % c.split("/")[1]]
        cols += [("c", c), ("x", c)]
    if compat:
        hdr += ["kcpx-compat default", "kcpx native/compat default"]
        cols += [("c", compat), ("n", compat)]
    w("| " + " | ".join(hdr) + " |")
    w("|" + "---|" * len(hdr))
    for d, l in links:
        row = [link_name(d, l, "GE")]
        for kind, c in cols:
            if kind == "c":
                row.append(cell("bulk", d, l, c, "mbps"))
            elif kind == "x":
                row.append(fratio(ratio(val("bulk", d, l, c, "mbps"),
                                        val("bulk", d, l, "kcptun/" + c.split("/")[1], "mbps"))))
            elif kind == "n":
                row.append(fratio(ratio(val("bulk", d, l, "kcpx/default", "mbps"),
                                        val("bulk", d, l, c, "mbps"))))
            else:
                row.append(fratio(ratio(val("bulk", d, l, "kcpx/" + c, "mbps"),
                                        val("bulk", d, l, "kcptun/" + c, "mbps"))))
        w("| " + " | ".join(row) + " |")
    w("")
    w("![goodput against loss](bench.png)")
    w("")

    # ---- latency
    w("## Latency of small exchanges: p50 / p99 / p99.9 RTT (ms), exchanges")
    w("")
    if len(rr_links) < len(links):
        w("To keep `make bench` short, the exchanges run on %d of the %d links." % (
            len(rr_links), len(links)))
        w("")
    w("| link | " + " | ".join(cands) + " |")
    w("|---|" + "---|" * len(cands))
    for d, l in rr_links:
        row = [link_name(d, l, "GE")]
        for c in cands:
            r = get("rr", d, l, c)
            if not r:
                row.append("—")
            elif r.get("status") != "ok":
                row.append(notes.mark(r.get("reason")))
            else:
                row.append("%s / %s / %s (%s%s)" % (
                    fnum(float(r["p50_ms"])), fnum(float(r["p99_ms"])), fnum(float(r["p999_ms"])),
                    r["n"], "" if r.get("complete") == "1" else ", time-bounded"))
        w("| " + " | ".join(row) + " |")
    w("")
    focus = [(d, l) for d, l in links if d == "25" and l in ("1", "5", "10")]
    if focus:
        w("### Issue 7's points: 25 ms one way, 1/5/10 % loss each way")
        w("")
        w("| link | candidate | n | p50 | p99 | p99.9 | max | wire bytes per exchange |")
        w("|---|---|---|---|---|---|---|---|")
        for d, l in focus:
            for c in cands:
                r = get("rr", d, l, c)
                if not r:
                    continue
                if r.get("status") != "ok":
                    w("| %s | %s | %s |  |  |  |  |  |" % (link_name(d, l, "GE"), c, notes.mark(r.get("reason"))))
                    continue
                w("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    link_name(d, l, "GE"), c, r["n"], r["p50_ms"], r["p99_ms"], r["p999_ms"],
                    r["max_ms"], r.get("wire_per_ex", "—")))
        w("")
        w("Wire bytes per exchange: everything linkem forwarded in both directions during the "
          "run (3 warm-up exchanges included) divided by the exchanges; 128 payload bytes each.")
        w("")

    # ---- cpu and rss
    tun = [c for c in cands if c != "tcp"]
    if tun:
        w("## CPU seconds per GB of goodput (client + server) and peak RSS (MB, client + server)")
        w("")
        hdr = ["link"]
        for s in sets:
            hdr += ["kcptun %s s/GB" % s, "kcpx %s s/GB" % s, "kcpx/kcptun"]
        for c in xdp:
            hdr += ["%s s/GB" % c]
        if compat:
            hdr += ["kcpx-compat default s/GB", "kcpx native/compat"]
        for s in sets:
            hdr += ["kcptun %s RSS" % s, "kcpx %s RSS" % s]
        for c in xdp + ([compat] if compat else []):
            hdr += ["%s RSS" % c]
        w("| " + " | ".join(hdr) + " |")
        w("|" + "---|" * len(hdr))
        for d, l in links:
            row = [link_name(d, l, "GE")]
            for s in sets:
                a = val("bulk", d, l, "kcptun/" + s, "cpu_s_per_gb")
                b = val("bulk", d, l, "kcpx/" + s, "cpu_s_per_gb")
                row += [cell("bulk", d, l, "kcptun/" + s, "cpu_s_per_gb", 2),
                        cell("bulk", d, l, "kcpx/" + s, "cpu_s_per_gb", 2), fratio(ratio(b, a))]
            for c in xdp:
                row.append(cell("bulk", d, l, c, "cpu_s_per_gb", 2))
            if compat:
                row += [cell("bulk", d, l, compat, "cpu_s_per_gb", 2),
                        fratio(ratio(val("bulk", d, l, "kcpx/default", "cpu_s_per_gb"),
                                     val("bulk", d, l, compat, "cpu_s_per_gb")))]
            for c in [x for s in sets for x in ("kcptun/" + s, "kcpx/" + s)] + xdp + (
                    [compat] if compat else []):
                rc, rs_ = val("bulk", d, l, c, "rss_c_kb"), val("bulk", d, l, c, "rss_s_kb")
                row.append(fnum((rc + rs_) / 1024) if rc is not None and rs_ is not None
                           else cell("bulk", d, l, c, "rss_c_kb"))
            w("| " + " | ".join(row) + " |")
        w("")

    backend_section(w, links, val, cell, xdp, [r for r in flood if r.get("kind") == "backend"])
    rss_section(w, flood)
    queues_section(w, flood)
    flood_section(w, flood, meta)

    # ---- wire overhead
    w("## Wire bytes per goodput byte (bulk transfer, both directions)")
    w("")
    w("| link | " + " | ".join(cands) + " |")
    w("|---|" + "---|" * len(cands))
    for d, l in links:
        w("| " + " | ".join([link_name(d, l, "GE")] + [cell("bulk", d, l, c, "wire_ratio", 3) for c in cands]) + " |")
    w("")

    emu = [r for r in recs if int(r.get("emu_drops", "0") or 0) > 0]
    w("## Emulator health")
    w("")
    if emu:
        w("linkem lost frames by itself (socket overflow or send error, not configured loss) "
          "in these runs; treat their numbers with care:")
        w("")
        for r in emu:
            w("- %s %s %s: %s frames" % (r["kind"], link_name(r["delay"], r["loss"], "GE"),
                                        r["cand"], r["emu_drops"]))
    else:
        w("linkem dropped no frame by itself (socket overflow or send error) in any run: "
          "every loss above was configured.")
    w("")
    if notes.reasons:
        w("## Why some cells are n/a")
        w("")
        w(notes.render())
        w("")
    faketcp_section(w, [r for r in flood if r.get("kind") == "faketcp"])
    if micro:
        w("## Microbenchmarks (tools/microbench, quoted as printed)")
        w("")
        w("```")
        w(micro)
        w("```")
        w("")
    w("## Raw results")
    w("")
    w("<details><summary>bench.sh result lines</summary>")
    w("")
    w("```")
    with open(os.path.join(workdir, "results.txt")) as f:
        w(f.read().strip())
    w("```")
    w("")
    w("</details>")
    w("")

    with open(os.path.join(outdir, "BENCH.md"), "w") as f:
        f.write("\n".join(md))

    plot(workdir, outdir, recs, cands, links)
    print("bench: wrote %s/BENCH.md" % outdir)
    for s in summary:
        print("  " + s)


def flood_section(w, flood, meta):
    """The flood-resilience figures of test-xdp-flood.sh (FLOOD_RESULTS lines)."""
    if meta.get("flood", "0") == "0":
        return
    w("## Flood resilience: goodput during a spoofed flood / goodput without")
    w("")
    ph = {r.get("name"): r for r in flood if r.get("kind") == "flood"}
    runs = [r for r in flood if r.get("kind") == "flood"]
    xdps = [r for r in flood if r.get("kind") == "flood_xdp"]
    w("From tests/selftests/test-xdp-flood.sh (run by bench.sh with `FLOOD_RESULTS`; the "
      "same script is a test in `make check`). Client and server are in two namespaces on "
      "a bridge, no emulated delay or loss; a third namespace floods the server's UDP port "
      "from an ordinary socket for %s s, cycling through random bytes, captured tunnel "
      "datagrams with their tag bytes randomised, and captured datagrams replayed unchanged "
      "(the newest are inside the replay window). Each figure: two uploads of %s MiB "
      "through the tunnel (sha256 checked) without the flood, then two more while it runs; "
      "the ratio is the first time over the second, i.e. goodput during the flood / goodput "
      "without." % (
          next((r.get("flood_secs") for r in ph.values() if r.get("flood_secs")), "?"),
          next((int(r["bytes"]) // 2 // (1 << 20) for r in ph.values() if r.get("bytes")), "?")))
    w("")
    w("- **kcpx**: `kcpx up IFACE client|server --proto kcpx` (native protocol; the "
      "server's XDP program checks version, session id, AEAD tag and replay window and "
      "drops what fails before userspace), flags `--nocomp --mode fast3 --sndwnd 1024 "
      "--rcvwnd 1024 --ds 10 --ps 3`.")
    w("- **kcptun**: stock kcptun-server (UDP sockets, `--crypt aes`, the same flags), "
      "kcpx client in kcptun's format (`--proto kcptun`); every flood datagram reaches the "
      "server's process, which decrypts it and discards it.")
    w("- **Caveat**: the flooder is one Python process, and it competes for this VM's 2 "
      "cores with the tunnel's client, server and the upload/sink processes (also Python). "
      "So the flood rate is whatever Python reaches beside the transfer (it differs between "
      "the two runs: the lighter the receiver, the more CPU the flooder gets), and part of "
      "the goodput loss under the flood is CPU taken by the flooder, not work the tunnel did "
      "for the flood. Read the ratios as a lower bound of resilience on this machine, not "
      "as a line-rate figure.")
    w("")
    w("| tunnel | run | goodput without (Mbit/s) | goodput during the flood (Mbit/s) "
      "| during/without | flood datagrams sent | flood rate (datagrams/s) |")
    w("|---|---|---|---|---|---|---|")
    for name in ("kcpx", "kcptun"):
        mine = [r for r in runs if r.get("name") == name]
        if not mine:
            w("| %s | — | — | — | — | — | — |" % name)
            continue
        for r in mine:
            if r.get("status") != "ok":
                w("| %s | %s | n/a: %s |  |  |  |  |" % (name, r.get("run", "1"), r.get("reason", "")))
                continue
            w("| %s | %s | %s | %s | **%.2f** | %s (%s random, %s bad tag, %s replayed) | %s |" % (
                name, r.get("run", "1"), r["base_mbps"], r["flood_mbps"], float(r["ratio"]),
                r["sent"], r["random"], r["badtag"], r["replay"], r["flood_pps"]))
    w("")
    for xdp in xdps:
        parts = ", ".join("%s %s" % (k, v) for k, v in xdp.items()
                          if k.startswith("drop_"))
        w("Run %s: kcpx's server XDP program dropped %s of the %s flood datagrams (%s); it passed %s "
          "good datagrams, and the daemon's InErrs grew by %s: the flood did not reach "
          "userspace." % (xdp.get("run", "1"), xdp.get("dropped"), xdp.get("flooded"), parts,
                          xdp.get("passed"), xdp.get("inerrs")))
        w("")
    if meta.get("flood_test"):
        w("test-xdp-flood.sh's verdicts in this bench (one per run): %s(exit status%s)." % (
            meta.get("flood_test"), meta.get("flood_rc") or " ?"))
        w("")


def plot(workdir, outdir, recs, cands, links):
    delays = sorted({int(d) for d, _ in links})
    styles = {"tcp": "lc rgb '#555555' dt 2", "kcpx-compat/default": "lc rgb '#ff7f0e' dt 4", "kcptun/default": "lc rgb '#1f77b4' dt 3",
              "kcpx/default": "lc rgb '#d62728' dt 3", "kcptun/tuned": "lc rgb '#1f77b4'",
              "kcpx/tuned": "lc rgb '#d62728'", "kcpx-xdp/tuned": "lc rgb '#2ca02c'"}
    # numeric losses only (burst has no x); floored at 0.01 for the log scale
    panels = []
    for d in delays:
        curves = []
        for c in cands:
            pts = [(float(r["loss"]), max(float(r["mbps"]), 0.01)) for r in recs
                   if r["kind"] == "bulk" and int(r["delay"]) == d and r["cand"] == c
                   and r.get("status") == "ok" and r["loss"] != "burst"]
            curves.append((c, pts))
        panels.append(("%d ms one way" % d, "delay %d" % d, curves))
    gplot.panels_png(
        "bench", os.path.join(workdir, "plot.dat"), os.path.join(workdir, "plot.gp"),
        os.path.join(outdir, "bench.png"), "Goodput against loss (both directions), iperf3 A->B",
        420, ["set logscale y", "set xlabel 'loss %'", "set ylabel 'Mbit/s'", "set grid",
              "set key top right", "set xrange [-0.5:21]"], panels, styles)


if __name__ == "__main__":
    main()
