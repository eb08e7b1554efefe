#!/usr/bin/env python3
"""Per-destination scheduling in qmail-send, end to end through
qmail-rspawn and qmail-remote to SMTP sinks on loopback: a destination
that refuses connections is held with growing delays and marked dead while
a healthy one's mail flows; the healthy one never sees more simultaneous
sessions than control/concurrencyperdest; a 4xx to RCPT holds nothing;
and after the dead one comes back and SIGALRM clears the holds, each of
its recipients is delivered exactly once."""
import os, re, signal, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, free_port
import send_harness as sh
from remote_peers import Sink


class CountingSink(Sink):
    """A sink that records the most sessions it had at once. A session
    ends just before the sink answers QUIT: after that answer the client
    may already have reported and its successor connected, while this
    thread has not yet run on."""

    def __init__(self, t, **kw):
        self.lock = threading.Lock()
        self.cur = self.max = 0
        Sink.__init__(self, t, **kw)

    def converse(self, h):
        sink, w, done = self, h.wfile, [False]

        class Out:
            def write(self, b):
                if b.startswith(b"221") and not done[0]:
                    end()
                return w.write(b)

            def flush(self):
                return w.flush()

        def end():
            done[0] = True
            with sink.lock:
                sink.cur -= 1

        with self.lock:
            self.cur += 1
            self.max = max(self.max, self.cur)
        h.wfile = Out()
        try:
            Sink.converse(self, h)
        finally:
            h.wfile = w                  # socketserver's finish() closes it
            if not done[0]:
                end()


def slow_ok(a):
    time.sleep(0.15)
    return "250 ok"


t = T()
inst = sh.setup(t, control={"concurrencyperdest": "2", "concurrencyremote": "20",
                            "backoffmin": "1", "backoffmax": "4",
                            "deadthreshold": "3", "deadtime": "3"})
D = sh.DOMAIN
up = CountingSink(t, rcpt=slow_ok)
soft = Sink(t, rcpt=lambda a: "451 4.3.0 <%s> try later" % a if a.startswith("busy") else "250 ok")
down_port = free_port()   # nothing listens: connection refused
inst.control("smtproutes", "up.test:127.0.0.1:%d\ndown.test:127.0.0.1:%d\nsoft.test:127.0.0.1:%d"
             % (up.port, down_port, soft.port))
inst.control("dnsserver", "127.0.0.1:1")
log = inst.path("send.log")
p = sh.start(inst, log)

NDOWN, NUP = 10, 16
for k in range(NDOWN):
    inst.inject("alice@%s" % D, ["r%d@down.test" % k], "Subject: d%d\n\nTOKEN-down-%d- body\n" % (k, k))
inst.inject("alice@%s" % D, ["busy@soft.test"], "Subject: busy\n\nTOKEN-busy-0- body\n")
t0 = time.time()
for k in range(NUP):
    inst.inject("alice@%s" % D, ["r%d@up.test" % k], "Subject: u%d\n\nTOKEN-up-%d- body\n" % (k, k))
    if k % 4 == 0:
        inst.inject("alice@%s" % D, ["ok%d@soft.test" % k], "Subject: s%d\n\nTOKEN-soft-%d- body\n" % (k, k))

ok = wait_for(lambda: len(sh.tokens(up)) >= NUP, 30)
t.check("the healthy destination's mail flows while the other is down", ok, (len(sh.tokens(up)), time.time() - t0))
t.check("... promptly", time.time() - t0 < 20, time.time() - t0)
t.check("... each message once", sorted(sh.tokens(up)) == sorted(b"TOKEN-up-%d-" % k for k in range(NUP)),
        sh.tokens(up))
t.check("per-destination concurrency respected", up.max <= 2, up.max)
t.check("... and used", up.max == 2, up.max)

ok = wait_for(lambda: any("state=dead" in l for l in sh.dest_lines(log, "127.0.0.1:%d" % down_port)), 30)
lines = sh.dest_lines(log, "127.0.0.1:%d" % down_port)
t.check("the down destination is marked dead", ok, lines)
held = [int(re.search(r"delay=(\d+)", l).group(1)) for l in lines if "state=held" in l]
t.check("held with growing delays before", held[:2] == [1, 2], lines)
dead = [l for l in lines if "state=dead" in l]
t.check("dead for control/deadtime", dead and "delay=3" in dead[0], dead)
t.check("its messages are parked, not tried", dead and re.search(r"parked=\d+", sh.read_log(log)), lines)
# Connections while held: at most one probe per hold, beyond the first
# concurrent attempts.
refused = len([l for l in sh.read_log(log).splitlines()
               if "event=delivery" in l and "@down.test" in l and "result=deferred" in l])
t.check("no busy loop on the held destination", refused <= 8, refused)

soft_ok = lambda: sorted(x for x in sh.tokens(soft) if b"soft" in x)
t.check("a 4xx to RCPT does not hold the destination",
        wait_for(lambda: len(soft_ok()) == 4, 20) and not sh.dest_lines(log, "127.0.0.1:%d" % soft.port),
        (soft_ok(), sh.dest_lines(log, "127.0.0.1:%d" % soft.port)))
t.check("the other recipients of that destination are delivered", len(soft_ok()) == 4, soft_ok())

# The destination comes back; SIGALRM clears every hold.
down = CountingSink(t, port=down_port)
os.kill(p.pid, signal.SIGALRM)
want = sorted(b"TOKEN-down-%d-" % k for k in range(NDOWN))
ok = wait_for(lambda: sorted(sh.tokens(down)) == want, 30)
t.check("after SIGALRM the revived destination gets every message", ok, (sh.tokens(down), len(want)))
time.sleep(1)
t.check("... exactly once", sorted(sh.tokens(down)) == want, sh.tokens(down))
t.check("... within its concurrency limit", down.max <= 2, down.max)
t.check("recovery is logged", any("state=recovered" in l for l in sh.dest_lines(log, "127.0.0.1:%d" % down_port)),
        sh.dest_lines(log, "127.0.0.1:%d" % down_port))
t.check("the 4xx recipient is still queued, nothing else",
        wait_for(lambda: len(inst.queue_files()) == 1, 10), inst.queue_files())
t.check("the refused recipient was never bounced",
        not any(b"busy@soft.test" in b for _, b in sh.messages(inst, "alice")))

# qmail-qread shows why the one left waits: the last deferral reason
# qmail-send kept in queue/sched/why.<qid>; the files of the messages
# delivered since are gone.
qr = subprocess.run([inst.bin("qmail-qread")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
out = qr.stdout.decode("utf-8", "replace")
t.check("qmail-qread shows a pending recipient's last deferral reason",
        qr.returncode == 0 and re.search(r"(?m)^  remote  pending  busy@soft\.test: deferred \d+s ago: .*451 4\.3\.0 <busy@soft\.test> try later", out),
        (out, qr.stderr))
whys = [n for n in os.listdir(inst.path("queue", "sched")) if "why." in n]
t.check("... kept for the queued message only", whys == ["why." + q for q in inst.queue_files()],
        (whys, inst.queue_files()))
t.done()
