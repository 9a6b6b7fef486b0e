#!/usr/bin/env python3
"""Tables (stdout, markdown) and a plot (OUTDIR/bottleneck.png) from bottleneck.sh's
results.txt: one row per cell and candidate, medians over runs with their range
(min-max) when there is more than one; the fairness runs in a
table of their own; the plot is goodput against loss for each candidate, one panel per
link (rate and delay) that has more than one loss rate."""
import os
import statistics
import sys

import gplot

STYLES = {"tcp-cubic": "lc rgb '#555555' dt 2", "tcp-bbr": "lc rgb '#000000'",
          "kcptun": "lc rgb '#1f77b4'", "kcpx-off": "lc rgb '#ff7f0e' dt 3",
          "kcpx": "lc rgb '#d62728'", "kcpx-kdef": "lc rgb '#9467bd' dt 4"}


def load(path):
    rows, fair = {}, {}
    for line in open(path):
        kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if "reason=" in line:
            kv["reason"] = line.split("reason=", 1)[1].strip()
        if kv.get("kind") == "fair":
            fair.setdefault((kv["rate"], kv["delay"], kv["loss"], kv["pair"]), []).append(kv)
        elif "cand" in kv:
            rows.setdefault((kv["rate"], kv["delay"], kv["loss"], kv["cand"]), []).append(kv)
    return rows, fair


def spread(v, fmt, rng=True, unit=""):
    """The median of the values and, when they differ, their range: "M (MIN-MAX)"."""
    if not v:
        return "n/a"
    m = fmt % statistics.median(v) + unit
    lo, hi = fmt % min(v), fmt % max(v)
    if rng and lo != hi:
        m += " (%s-%s)" % (lo, hi)
    return m


def med(rs, k, fmt, rng=True):
    return spread([float(r[k]) for r in rs if r.get("status") == "ok" and k in r], fmt, rng)


def qdrop_pct(r):
    f = int(r["frames"])
    return 100 * int(r["qdrop"]) / f if f else 0.0


def cell_table(rows):
    if not rows:
        return
    print("| link | candidate | runs | goodput Mbit/s | queue drops / frames | RPC p50 / p99 ms "
          "| CPU s/GB |")
    print("|---|---|---|---|---|---|---|")
    for (rate, d, loss, cand), rs in rows.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        qd = "n/a"
        if ok:
            q = statistics.median(int(r["qdrop"]) for r in ok)
            f = statistics.median(int(r["frames"]) for r in ok)
            qd = "%d / %d, %s" % (q, f, spread([qdrop_pct(r) for r in ok], "%.2f", unit=" %"))
        else:
            why = sorted({r.get("reason", "") for r in rs} - {""})
            qd = "n/a (%s)" % ", ".join(why) if why else qd
        print("| %s Mbit/s, %s ms, %s %% | %s | %d | %s | %s | %s / %s | %s |" % (
            rate, d, loss, cand, len(ok), med(rs, "mbps", "%.1f"), qd,
            med(rs, "rpc_p50_ms", "%.0f", False),
            med(rs, "rpc_p99_ms", "%.0f"),
            med(rs, "cpu_s_per_gb", "%.1f")))


def fair_table(fair):
    if not fair:
        return
    print()
    print("Fairness: two bulks at once through the same bottleneck, each its own tunnel (or TCP")
    print("connection) to its own server; the first 2 s of each are left out. Jain's index: 1 is")
    print("an even split, 0.5 one flow taking everything.")
    print()
    print("| link | flow 1 + flow 2 | runs | flow 1 Mbit/s | flow 2 Mbit/s | flow 1's share "
          "| Jain's index | queue drops / frames |")
    print("|---|---|---|---|---|---|---|---|")
    for (rate, d, loss, pair), rs in fair.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        link = "%s Mbit/s, %s ms, %s %%" % (rate, d, loss)
        if not ok:
            print("| %s | %s | 0 | n/a | n/a | n/a | n/a | n/a |" % (link, pair.replace("+", " + ")))
            continue
        ab = [(float(r["mbps1"]), float(r["mbps2"])) for r in ok]
        share = [100 * x / max(x + y, 1e-9) for x, y in ab]
        jain = [(x + y) ** 2 / max(2 * (x * x + y * y), 1e-9) for x, y in ab]
        q = statistics.median(int(r["qdrop"]) for r in ok)
        f = statistics.median(int(r["frames"]) for r in ok)
        print("| %s | %s | %d | %s | %s | %s | %s | %d / %d, %s |" % (
            link, pair.replace("+", " + "), len(ok), spread([x for x, _ in ab], "%.1f"),
            spread([y for _, y in ab], "%.1f"), spread(share, "%.0f", unit=" %"), spread(jain, "%.2f"),
            q, f, spread([qdrop_pct(r) for r in ok], "%.2f", unit=" %")))


def plot(rows, outdir):
    links = {}
    for (rate, d, loss, cand), rs in rows.items():
        v = [float(r["mbps"]) for r in rs if r.get("status") == "ok" and "mbps" in r]
        if v:
            links.setdefault((int(rate), int(d)), {}).setdefault(cand, []).append(
                (float(loss), statistics.median(v)))
    panels = sorted(k for k, c in links.items()
                    if len({x for pts in c.values() for x, _ in pts}) > 1)
    if not panels:
        return False
    return gplot.panels_png(
        "bottleneck", os.path.join(outdir, "bottleneck.dat"), os.path.join(outdir, "bottleneck.gp"),
        os.path.join(outdir, "bottleneck.png"),
        "Goodput through a bottleneck (linkem, 50 ms tail-drop queue), iperf3 A->B", 480,
        ["set xlabel 'random loss %'", "set ylabel 'Mbit/s'", "set grid", "set key top right",
         "set xrange [-0.5:21]", "set yrange [0:*]"],
        [("%d Mbit/s, %d ms one way" % k, "%s" % (k,), sorted(links[k].items())) for k in panels],
        STYLES)


def main():
    rows, fair = load(sys.argv[1])
    cell_table(rows)
    fair_table(fair)
    if len(sys.argv) > 2 and plot(rows, sys.argv[2]):
        print()
        print("![goodput against loss through the bottleneck](bottleneck.png)")


if __name__ == "__main__":
    main()
