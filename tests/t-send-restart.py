#!/usr/bin/env python3
"""qmail-send keeps its schedule across restarts (queue/sched/schedule):
many deferred messages to domains routed to one relay that is down (one
hold, the relay's, for all of them), then qmail-send is
stopped (TERM) and started again, then killed (KILL) and started again.
After each start the destinations get no new connection while their holds
last, where a scheduler that forgot them retried the whole queue at once.
A damaged schedule file is ignored with a log line: every message is then
due at once, nothing is lost."""
import os, signal, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, SANITIZED
import send_harness as sh
from remote_peers import Sink

N = 300 if SANITIZED else 1000
NDOM = 50
t = T()
inst = sh.setup(t, control={"backoffmin": "60", "concurrencyremote": "20"})
D = sh.DOMAIN
dead = Sink(t, greeting="421 4.3.2 down for maintenance")   # every session: a connection failure
inst.control("smtproutes", ":127.0.0.1:%d" % dead.port)
inst.control("dnsserver", "127.0.0.1:1")
log = inst.path("send.log")
open(log, "w").close()

for k in range(N):
    rc = inst.inject("alice@%s" % D, ["r%d@d%d.test" % (k, k % NDOM)], "Subject: r%d\n\nbody %d\n" % (k, k))
    if rc:
        t.check("message %d queued" % k, False, rc)
        t.done()

p = sh.start(inst, log)
seen = lambda: sh.read_log(log).count("event=message ")
t.check("every message had its first round", wait_for(lambda: seen() >= N, 60), seen())
held = lambda: len({l.split("domain=")[1].split()[0] for l in sh.read_log(log).splitlines()
                    if "event=dest" in l and "state=held" in l})
t.check("one hold: the relay's, not one per domain",
        wait_for(lambda: held() == 1, 30) and time.sleep(1) is None and held() == 1, held())
time.sleep(0.5)
first = len(dead.sessions)
print("connections in the first run: %d" % first, flush=True)


def restart(how):
    """Stops qmail-send (signal how), starts it again; the connections
    its destinations get in the next 3 seconds."""
    global p
    p.send_signal(how)
    p.wait(30)
    before = len(dead.sessions)
    mark = len(sh.read_log(log))
    p = sh.start(inst, log)
    wait_for(lambda: "event=start" in sh.read_log(log)[mark:], 10)
    time.sleep(3)
    return len(dead.sessions) - before, sh.read_log(log)[mark:]


n, lg = restart(signal.SIGTERM)
t.check("TERM then start: the schedule is loaded", "event=schedule loaded=%d" % N in lg,
        [l for l in lg.splitlines() if "schedule" in l])
t.check("... and the held destinations get no connection", n <= 1, (n, first))
t.check("... nothing is lost", len(inst.queue_files()) == N, len(inst.queue_files()))

n, lg = restart(signal.SIGKILL)
t.check("KILL then start: the schedule is loaded", "event=schedule loaded=%d" % N in lg,
        [l for l in lg.splitlines() if "schedule" in l])
t.check("... and the held destinations get no connection", n <= 1, (n, first))

# A damaged file (here: cut short, no end line) is ignored, and logged.
p.send_signal(signal.SIGTERM)
p.wait(30)
f = inst.path("queue", "sched", "schedule")
with open(f, "rb") as fh:
    body = fh.read()
with open(f, "wb") as fh:
    fh.write(body[:len(body) // 2])
n, lg = restart(signal.SIGTERM)   # p is already stopped: the signal is a no-op
t.check("a damaged schedule is ignored and logged",
        'event=error op="load schedule"' in lg and "event=schedule loaded" not in lg,
        [l for l in lg.splitlines() if "schedule" in l])
# Due at once: the relay gets several connections at once (a kept schedule
# gave it at most one), until the failures hold it, for every domain.
t.check("... then every message is due at once", n >= 2, n)
t.check("... and none is lost", len(inst.queue_files()) == N, len(inst.queue_files()))
t.done()
