#!/usr/bin/env python3
"""A crashed scheduler does not repeat finished remote deliveries:
qmail-send is killed (SIGKILL) twice during a burst of remote deliveries
to a slow sink that counts copies; qmail-rspawn, still finishing the
deliveries it had, journals each result in rjournal/ before reporting it,
and the next qmail-send replays the journal before it hands anything out.
Every message reaches the sink exactly once. The journal directory
belongs to the remote uid, readable by qmail-send's group only, and the
files of earlier runs are removed once replayed."""
import os, re, signal, stat, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, SANITIZED, IS_ROOT
import send_harness as sh
from remote_peers import Sink

N = 60 if SANITIZED else 100
t = T()
inst = sh.setup(t, control={"concurrencyremote": "20", "concurrencyperdest": "20"})
D = sh.DOMAIN


def slow(a):
    time.sleep(0.3)
    return "250 ok"


sink = Sink(t, rcpt=slow)
inst.control("smtproutes", "sink.test:127.0.0.1:%d" % sink.port)
inst.control("dnsserver", "127.0.0.1:1")
log = inst.path("send.log")
open(log, "w").close()

for k in range(N):
    inst.inject("alice@%s" % D, ["r%d@sink.test" % k], "Subject: j%d\n\nTOKEN-j-%d- body\n" % (k, k))

p = sh.start(inst, log)
got = lambda: len(sh.tokens(sink))
for at in (N // 5, N // 2):
    t.check("deliveries under way (%d)" % at, wait_for(lambda: got() >= at, 60), got())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    p = sh.start(inst, log)

end = time.time() + 60
while time.time() < end and not sh.queue_empty(inst):
    time.sleep(0.5)
    p.send_signal(signal.SIGALRM)
t.check("the queue drains", sh.queue_empty(inst), inst.queue_files()[:5])
time.sleep(0.5)

toks = sh.tokens(sink)
count = {}
for x in toks:
    count[x] = count.get(x, 0) + 1
dups = sorted(k for k, v in count.items() if v > 1)
want = {b"TOKEN-j-%d-" % k for k in range(N)}
t.check("every message arrived", set(count) == want, sorted(want - set(count))[:5])
t.check("none arrived twice", not dups, (len(dups), dups[:5]))
lg = sh.read_log(log)
replayed = sum(int(x) for x in re.findall(r"event=journal file=\S+ delivered=(\d+)", lg))
print("replayed from the journal: %d" % replayed, flush=True)
t.check("the journal was replayed (deliveries finished while qmail-send was down)", replayed > 0, replayed)

# The journal's writer is trusted with remote deliveries only: a line
# naming a local recipient (or garbage) changes nothing.
p.send_signal(signal.SIGTERM)
p.wait(30)
inst.inject("alice@%s" % D, ["bob@%s" % D], "Subject: local\n\nTOKEN-local-0- body\n")
qid = inst.queue_files()[0]
with open(inst.path("rjournal", "1.2.0"), "w") as f:
    f.write("K %s 0\nK ../../etc 0\nX %s 0\nK %s\nK %s 99\n" % (qid, qid, qid, qid))
p = sh.start(inst, log)
t.check("a forged journal line for a local recipient is ignored: it is delivered",
        wait_for(lambda: len(sh.messages(inst, "bob")) == 1 and sh.queue_empty(inst), 20),
        (len(sh.messages(inst, "bob")), inst.queue_files()))

# The first remote request of a run lets qmail-rspawn remove the files of
# earlier runs, which qmail-send has read by then.
inst.inject("alice@%s" % D, ["last@sink.test"], "Subject: last\n\nTOKEN-last-0- body\n")
t.check("a remote delivery in this run", wait_for(lambda: b"TOKEN-last-0-" in sh.tokens(sink), 20))
jd = inst.path("rjournal")
st = os.stat(jd)
mine = lambda: [f for f in os.listdir(jd) if f.startswith("%d." % p.pid)]
t.check("earlier runs' journal files are removed once read",
        wait_for(lambda: sorted(os.listdir(jd)) == sorted(mine()) and mine(), 5), (os.listdir(jd), p.pid))
files = sorted(os.listdir(jd))
if IS_ROOT:
    ru, rg = inst.uid("remote")
    su, sg = inst.uid("send")
    t.check("rjournal/ is the remote uid's, group qmail, 2750",
            (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (ru, sg, 0o2750),
            (st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode))))
    fs = os.stat(os.path.join(jd, files[0])) if files else None
    t.check("its files: remote uid, group qmail, 0640",
            fs and (fs.st_uid, fs.st_gid, stat.S_IMODE(fs.st_mode)) == (ru, sg, 0o640),
            fs and (fs.st_uid, fs.st_gid, oct(stat.S_IMODE(fs.st_mode))))
else:
    t.skip("journal ownership", "needs root")
t.done()
