"""make bench-scale: the scale row at a million queued messages (bench/run
with BENCH_PY=bench/scale.py; root). It takes long, so it is not part of
`make bench`.

The same throwaway instances as bench/bench.py (its classes and its
scale()): N messages to a destination that is down, queued by
smtp-source over 20 sessions into each MTA in turn. Figures: time to
queue, time until the scheduler has taken every message in, the
scheduler's RSS then (qmail-send against qmgr), and for qmail-send the
largest count of messages it logged holding in memory (event=spill,
refill, scan and pickup lines: a deterministic figure, bounded by
control/queuewindow) and the lines of queue/sched/later at the end. The
section between the bench-scale markers of bench/RESULTS.md is replaced;
the raw figures, with the machine they were measured on, are kept in
BASE/scale.json, from which --report-only writes the section again.
"""
import argparse, json, os, re, signal, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402

BEGIN, END = b.SCALE_BEGIN, b.SCALE_END


def held_in_memory(this):
    """The largest count of messages qmail-send logged holding in memory,
    and the last count of lines it logged outside."""
    most, out = 0, 0
    with open(this.logfile, "rb") as f:
        for line in f:
            if not line.startswith(b"qmail-send event="):
                continue
            for v in re.findall(rb" (?:memory|queued)=(\d+)", line):
                most = max(most, int(v))
            m = re.search(rb" later=(\d+)", line)
            if m:
                out = int(m.group(1))
    return most, out


def wipe_sched(this):
    d = this.path("queue", "sched")
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))


def scale_row(this, pf, n):
    """One scale run of n messages per MTA: {figure: (this, Postfix)}."""
    res = {}
    for m in (this, pf):
        m.stop()
        m.wipe_queue()
        if m is this:
            wipe_sched(this)
        m.start()
        t0 = time.monotonic()
        tq, ts, rss = b.scale(m, n, 600 + n * 0.02)
        b.log("%s scale %d: queue %.0fs taken in %s rss %d KB (%.0fs)" % (
            m.name, n, tq, ts, rss, time.monotonic() - t0))
        res.setdefault("time to queue (s)", []).append(tq)
        res.setdefault("time until the scheduler has taken in all (s)", []).append(ts)
        res.setdefault("scheduler RSS (KB; qmail-send / qmgr)", []).append(rss)
        if m is this:
            most, out = held_in_memory(this)
            res["qmail-send: most messages held in memory (log)"] = [most, None]
            res["qmail-send: lines in queue/sched/later at the end (log)"] = [out, None]
        m.stop()
        m.wipe_queue()
        if m is this:
            wipe_sched(this)
        m.start()
    return res


def section(n, res, mach, started, load0, load1, window, quiet):
    def f(v):
        if v is None:
            return "n/a"
        return ("%.0f" % v) if abs(v) >= 100 else ("%.1f" % v) if abs(v) >= 10 else ("%.2f" % v)
    out = [BEGIN, "", "### Scale row: %s queued messages (make bench-scale)" % format(n, ","), "",
           "One run, %s, on a %s (%d CPUs, %s, %d MB, %s; load %s before, "
           "%s after)%s. "
           "qmail-send with control/queuewindow %s; qmgr with its default "
           "qmgr_message_active_limit (20,000)." % (
               started, "quiet machine" if quiet else "machine SHARED with other jobs",
               mach["nproc"], mach["cpu"], mach["mem_mb"], mach["disk"],
               " ".join(load0), " ".join(load1),
               "" if quiet else ": timings are noisy, the RSS and the counts are the figures to trust",
               "%s (set for this run)" % format(window, ",") if window else "at its default (20,000)"), "",
           "| figure | this | Postfix | this/Postfix |", "|---|---|---|---|"]
    for k, (a, p) in res.items():
        ratio = "%.2f" % (a / p) if a is not None and p else "n/a"
        out.append("| scale %d: %s | %s | %s | %s |" % (n, k, f(a), f(p), ratio))
    out += ["", END]
    return "\n".join(out)


def write(path, text):
    try:
        with open(path) as fh:
            old = fh.read()
    except FileNotFoundError:
        old = ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    with open(path, "w") as fh:
        fh.write(new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--count", type=int, default=1000000)
    ap.add_argument("--window", type=int,
                    help="control/queuewindow for this MTA (default: its own, 20000): a smaller "
                         "window shows the bound with a shorter queue")
    ap.add_argument("--shared", action="store_true",
                    help="say in RESULTS.md that the run shared the machine with other jobs")
    ap.add_argument("--report-only", action="store_true",
                    help="write the section again from BASE/scale.json, measuring nothing")
    ap.add_argument("--out", default=os.path.join(b.ROOT, "bench", "RESULTS.md"))
    a = ap.parse_args()
    raw = os.path.join(a.base, "scale.json")
    if a.report_only:
        with open(raw) as fh:
            j = json.load(fh)
        write(a.out, section(j["count"], j["results"], j.get("machine") or b.machine(), j["started"],
                             j["load"][0], j["load"][1], j["window"], not (a.shared or j.get("shared"))))
        return
    load0 = open("/proc/loadavg").read().split()[:3]
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    mtas = []
    try:
        sink = b.Sink(a.base)
        down_port = b.free_port()
        this = b.This(a.base, sink.port, down_port)
        qw = this.path("control", "queuewindow")
        if a.window:
            with open(qw, "w") as fh:
                fh.write("%d\n" % a.window)
        elif os.path.exists(qw):     # left by an earlier run in the same BASE
            os.unlink(qw)
        mtas.append(this)
        pf = b.Postfix(a.base, sink.port, down_port, *this.alias)
        pf.use_tls_files(this.path("control", "tls", "cert.pem"), this.path("control", "tls", "key.pem"))
        mtas.append(pf)
        for m in mtas:
            m.start()
        res = scale_row(this, pf, a.count)
    finally:
        for m in mtas:
            try:
                m.stop()
            except Exception as e:   # cleanup goes on for the others
                b.log("stop %s: %s" % (m.name, e))
        for p in list(b.PROCS):
            b.end(p)
    load1 = open("/proc/loadavg").read().split()[:3]
    mach = b.machine()
    with open(raw, "w") as fh:   # the raw figures, kept for --report-only
        json.dump({"count": a.count, "started": started, "load": [load0, load1], "machine": mach,
                   "window": a.window, "shared": a.shared, "results": res}, fh, indent=1)
    write(a.out, section(a.count, res, mach, started, load0, load1, a.window, not a.shared))
    b.log("wrote %s" % a.out)


if __name__ == "__main__":
    def bye(sig, frame):
        raise SystemExit(128 + sig)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, bye)
    main()
