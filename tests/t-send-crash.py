"""Crash torture: while 1,000 messages (2 recipients each, a few with a
failing one) flow in, qmail-send and the local delivery processes are
killed with SIGKILL at random moments, over and over, and qmail-start is
started again each time. In the end every recipient has its message
exactly once (Maildir names carry the qid and recipient index, so a
repeated delivery would show), every failure was reported, and the queue
is empty."""
import os, random, re, signal, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, SANITIZED
import send_harness as sh

N = 300 if SANITIZED else 1000   # sanitizer builds exec several times slower
KILLS = 24
t = T()
inst = sh.setup(t, control={"concurrencylocal": "30"})
D = sh.DOMAIN
log = inst.path("send.log")
open(log, "w").close()
rng = random.Random(int(os.environ.get("SEED", "12345")))

expect = {u: set() for u in ("alice", "bob", "carol")}
failing = set()
plan = []
for n in range(N):
    who = rng.sample(["alice", "bob", "carol"], 2)
    rcpts = ["%s@%s" % (w, D) for w in who]
    if n % 20 == 7:                     # one recipient in twenty messages fails for good
        rcpts[1] = "nobox@%s" % D
        who = who[:1]
        failing.add(n)
    plan.append((n, rcpts))
    for w in who:
        expect[w].add(n)

inject_errors = []


def injector():
    for n, rcpts in plan:
        sender = "carol@%s" % D if n in failing else "x@remote.test"
        if inst.inject(sender, rcpts, "Subject: crash %d\n\nTOKEN-%d- body\n" % (n, n)) != 0:
            inject_errors.append(n)


def delivery_procs(send_pid):
    """qmail-lspawn's children: the delivery processes."""
    out = []
    for k in sh.children(send_pid):
        if sh.comm(k) == "qmail-lspawn":
            out += sh.children(k)
    return out


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


th = threading.Thread(target=injector)
t0 = time.time()
th.start()
killed_send = killed_kids = 0
for round_ in range(KILLS):
    p = sh.start(inst, log)
    # Killed only once it has said it started (a loaded or sanitized
    # machine can take longer than the shortest pause to get there).
    wait_for(lambda: sh.read_log(log).count("qmail-send event=start") > round_, 30)
    end = time.time() + rng.uniform(0.2, 1.5)
    while time.time() < end:
        time.sleep(rng.uniform(0.02, 0.3))
        if rng.random() < 0.5:
            kids = delivery_procs(p.pid)
            for k in rng.sample(kids, min(len(kids), rng.randint(1, 5))):
                kill(k)
                killed_kids += 1
    kill(p.pid)
    killed_send += 1
    p.wait()
th.join(120)
t.check("injection finished", not th.is_alive())
t.check("every message queued", not inject_errors, inject_errors[:5])
print("kills: qmail-send %d, deliveries %d, %.1fs" % (killed_send, killed_kids, time.time() - t0),
      flush=True)

# The last start: deliveries deferred by the kills are retried on ALRM.
p = sh.start(inst, log)
end = time.time() + (180 if SANITIZED else 60)
while time.time() < end and not sh.queue_empty(inst):
    time.sleep(1)
    p.send_signal(signal.SIGALRM)
t.check("the queue drains", sh.queue_empty(inst), len(inst.queue_files()))
time.sleep(0.5)

for u in expect:
    got = {}
    for fn, body in sh.messages(inst, u):
        for tok in re.findall(rb"TOKEN-(\d+)- body", body):
            if b"Content-Type: text/rfc822-headers" not in body:
                got.setdefault(int(tok), []).append(fn)
    dups = {k: v for k, v in got.items() if len(v) > 1}
    t.check("%s: nothing lost" % u, expect[u] <= set(got), sorted(expect[u] - set(got))[:10])
    t.check("%s: nothing unexpected" % u, set(got) <= expect[u], sorted(set(got) - expect[u])[:10])
    t.check("%s: nothing delivered twice" % u, not dups, list(dups.items())[:3])

reports = {}
for fn, body in sh.messages(inst, "carol"):
    if b"multipart/report" in body:
        for tok in re.findall(rb"Subject: crash (\d+)", body):
            reports[int(tok)] = reports.get(int(tok), 0) + 1
t.check("every failure reported", failing <= set(reports), sorted(failing - set(reports))[:10])
t.check("no report for a good message", set(reports) <= failing, sorted(set(reports) - failing)[:10])
extra = sum(v - 1 for v in reports.values())
# A kill between a report's injection and the removal of its message
# repeats the report (at least once, as in qmail): each kill of qmail-send
# can repeat at most the one report it interrupted.
print("repeated reports: %d" % extra, flush=True)
t.check("reports are repeated only by kills", extra <= killed_send, extra)
t.check("bounce/ is empty", not os.listdir(inst.path("queue", "bounce")))
t.check("tmp/ is empty", not os.listdir(inst.path("queue", "tmp")))
lg = sh.read_log(log)
t.check("restarts were logged", lg.count("qmail-send event=start") >= KILLS + 1)
t.done()
