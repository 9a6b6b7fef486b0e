"""Goodput against loss, one panel per link side by side in one PNG, through gnuplot:
report.py's bench.png and bnreport.py's bottleneck.png."""
import subprocess
import sys


def panels_png(who, dat, script, png, title, width, settings, panels, styles):
    """panels: [(panel title, tag, [(candidate, [(x, y), ...]), ...]), ...]. Writes a data
    block per candidate of each panel into dat (headed `# TAG CANDIDATE`; NaN NaN when it
    has no point, so that block indexes keep counting), a gnuplot script into script
    (settings: its `set` lines; styles: candidate -> line style), and runs it, each panel
    `width` pixels wide. True when gnuplot made png; False, with why on stderr after
    `WHO: `, when gnuplot is missing or failed."""
    gp = ["set terminal pngcairo size %d,420 font 'sans,9'" % (width * len(panels)),
          "set output '%s'" % png,
          "set multiplot layout 1,%d title '%s'" % (len(panels), title)] + settings
    i = 0
    with open(dat, "w") as f:
        for ptitle, tag, curves in panels:
            parts = []
            for cand, pts in curves:
                f.write("# %s %s\n" % (tag, cand))
                for x, y in sorted(pts):
                    f.write("%g %g\n" % (x, y))
                if not pts:
                    f.write("NaN NaN\n")
                f.write("\n\n")
                parts.append("'%s' index %d using 1:2 with linespoints lw 2 %s title '%s'" % (
                    dat, i, styles.get(cand, ""), cand))
                i += 1
            gp.append("set title '%s'" % ptitle)
            gp.append("plot " + ", ".join(parts))
    gp.append("unset multiplot")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    try:
        r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    except OSError as e:
        print("%s: no plot (%s)" % (who, e), file=sys.stderr)
        return False
    if r.returncode:
        print("%s: gnuplot failed: %s" % (who, r.stderr.strip()[:300]), file=sys.stderr)
        return False
    return True
