#!/usr/bin/env python3
"""CPU per relayed message and SMTP connections used: N messages through
qmail-start (qmail-send, qmail-rspawn and its workers) to one loopback
sink. The CPU is utime+stime+cutime+cstime from /proc, summed over every
process of the instance, before the first message and after the last one
has left the queue (a delivery process that ended is counted in its
parent's cutime). Injection (qmail-queue) is not counted.

A measurement, not a test: prints the CPU per message, the connections,
and the median wait of the sink for a message's final dot (sent alone
after the body, Nagle's algorithm would hold it for the delayed ACK,
40 ms); checks only that every message arrived. make check has the
deterministic part (t-remote-reuse-send). Run it from a checkout built by
make check (BUILD, PREFIX as for tests/run), e.g. make bench-cpu. N is
300 (60 under ASan); set REUSE_CPU_N for another run."""
import os, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import T, SANITIZED, processes_under, wait_for
import send_harness as sh
from remote_peers import Sink

t = T()
N = int(os.environ.get("REUSE_CPU_N", "60" if SANITIZED else "300"))
HZ = os.sysconf("SC_CLK_TCK")
inst = sh.setup(t)
sink = Sink(t)
inst.control("smtproutes", "far.test:127.0.0.1:%d" % sink.port)
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
log = inst.path("send.log")
sh.start(inst, log)


def cpu(pid):
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in f[11:15]) / HZ


def tree_cpu():
    return sum(cpu(p) for p in processes_under(inst.prefix))


t.check("qmail-send is up", wait_for(lambda: "qmail-send" in sh.read_log(log) or len(processes_under(inst.prefix)) >= 4, 10))
time.sleep(0.5)
before = tree_cpu()
t0 = time.time()
for k in range(N):
    inst.inject("alice@%s" % sh.DOMAIN, ["x%d@far.test" % k], "Subject: m%d\n\nTOKEN-cpu-%d- body\n" % (k, k))
ok = wait_for(lambda: len(sh.tokens(sink)) >= N and sh.queue_empty(inst), 120)
secs = time.time() - t0
time.sleep(0.3)
after = tree_cpu()
conns = len(sink.sessions)
print("remote: %d messages, %d connections, %.2f ms CPU per message, %.1f s" % (
    N, conns, (after - before) * 1000 / N, secs))
t.check("every message arrived", ok and len(set(sh.tokens(sink))) == N, len(sh.tokens(sink)))
waits = sorted(w for sess in sink.sessions for w in sess.data_secs)
if waits:
    print("remote: the sink waited %.1f ms (median) for a message's final dot"
          % (1000 * waits[len(waits) // 2]))
t.done()
