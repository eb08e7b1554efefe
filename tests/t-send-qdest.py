#!/usr/bin/env python3
"""qmail-qdest resets the backoff of one destination, and qmail-send
reports readiness on qmail-start's -dFD.

Two destinations refuse connections and are marked dead for a long time
(deadthreshold 1, deadtime 300); sinks then come up for both. qmail-qdest
checks its arguments strictly, writes queue/flushdest/<domain> (lowercased)
and, with no s6-supervise for qmail-send here, says that it could not wake
it; SIGUSR1 makes qmail-send read the request: the one destination's mail,
the messages parked on it and those deferred by their first attempt alike,
is delivered at once and exactly once, while the other stays dead and its
sink sees nothing. Requests for an unknown domain and junk names are
logged and removed. Readiness: a newline on fd 5 once qmail-send is up,
then EOF (no spawner holds the pipe)."""
import os, re, select, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, free_port
import send_harness as sh
from remote_peers import Sink


def qdest(*args):
    return subprocess.run([inst.bin("qmail-qdest")] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=30)


t = T()
if not os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qmail-send",
                                   "qmail-qdest.c")):
    t.skip("qmail-qdest", "not there")
    t.done()
inst = sh.setup(t, control={"concurrencyperdest": "2", "concurrencyremote": "20",
                            "backoffmin": "300", "backoffmax": "300",
                            "deadthreshold": "1", "deadtime": "300"})
D = sh.DOMAIN
fd_dir = inst.path("queue", "flushdest")
st = os.stat(fd_dir)
t.check("install makes queue/flushdest, mode 0700",
        st.st_mode & 0o7777 == 0o700, oct(st.st_mode))
t.check("... owned by the send uid, group qmail", (st.st_uid, st.st_gid) == inst.uid("send"),
        (st.st_uid, st.st_gid))

# --- readiness: qmail-start -d5 --------------------------------------------
pa, pb = os.pipe()
log = inst.path("send.log")
f = open(log, "ab")


def on_fd5():
    """In the child: the write end on fd 5 only (subprocess keeps 5)."""
    if pb != 5:
        os.dup2(pb, 5)
        os.close(pb)


p = inst.spawn([inst.bin("qmail-start"), "-d5", "%d:%d" % inst.uid("send"),
                "%d:%d" % inst.uid("remote"), "./Maildir/"],
               stderr=f, stdout=f, pass_fds=(5,), preexec_fn=on_fd5)
f.close()
os.close(pb)
got = b""
end = time.time() + 20
while time.time() < end:
    r, _, _ = select.select([pa], [], [], max(0.0, end - time.time()))
    if not r:
        break
    b = os.read(pa, 16)
    if not b:
        got += b"<eof>"
        break
    got += b
os.close(pa)
t.check("qmail-send writes a newline to the readiness fd, then nobody holds it",
        got == b"\n<eof>", got)
t.check("... after its start line", "qmail-send event=start" in sh.read_log(log))

# --- two dead destinations ---------------------------------------------------
a_port, b_port = free_port(), free_port()
inst.control("smtproutes", "a.test:127.0.0.1:%d\nb.test:127.0.0.1:%d" % (a_port, b_port))
# A routed domain's destination is its relay (qmail-send keys holds by next hop).
HOP = {"a.test": "127.0.0.1:%d" % a_port, "b.test": "127.0.0.1:%d" % b_port}
inst.control("dnsserver", "127.0.0.1:1")
os.kill(p.pid, signal.SIGHUP)
wait_for(lambda: "event=reload" in sh.read_log(log), 10)
N = 6
for k in range(N):
    inst.inject("alice@%s" % D, ["r%d@a.test" % k], "Subject: a%d\n\nTOKEN-a-%d- body\n" % (k, k))
    inst.inject("alice@%s" % D, ["r%d@b.test" % k], "Subject: b%d\n\nTOKEN-b-%d- body\n" % (k, k))
for dom in ("a.test", "b.test"):
    t.check("%s is marked dead" % dom,
            wait_for(lambda: any("state=dead" in l for l in sh.dest_lines(log, HOP[dom])), 30),
            sh.dest_lines(log, HOP[dom]))
parked = lambda dom: [int(x) for x in re.findall(r"parked=(\d+)", "\n".join(sh.dest_lines(log, HOP[dom])))]
t.check("messages are parked on a.test",
        wait_for(lambda: sum(1 for l in sh.read_log(log).splitlines()
                             if "@a.test" in l and "event=delivery" in l) >= 1, 10))
sink_a = Sink(t, port=a_port)
sink_b = Sink(t, port=b_port)
time.sleep(1)
t.check("nothing is tried while dead", not sh.tokens(sink_a) and not sh.tokens(sink_b))

# --- the tool's checks ---------------------------------------------------------
for bad in ["", "../etc", "a..b", ".", "..", "x/y", "a_b.test", "-n\n", "a" * 256, "a.test."]:
    r = qdest(bad)
    t.check("qmail-qdest refuses %r (exit 100)" % bad[:20], r.returncode == 100, r.stdout)
r = qdest("good.test", "bad..test")
t.check("one bad name: no request at all", r.returncode == 100 and not os.listdir(fd_dir),
        (r.stdout, os.listdir(fd_dir)))
r = subprocess.run([inst.bin("qmail-qdest")], stderr=subprocess.PIPE, timeout=10)
t.check("no argument: usage, exit 100", r.returncode == 100 and b"usage" in r.stderr, r.stderr)

r = qdest("A.Test", "nowhere.test")
t.check("qmail-qdest A.Test nowhere.test: exit 0", r.returncode == 0, r.stdout)
t.check("... lowercased requests in queue/flushdest",
        sorted(os.listdir(fd_dir)) in (["a.test", "nowhere.test"], []), os.listdir(fd_dir))
t.check("... says qmail-send was not woken (no s6-supervise here)",
        b"event=wake via=none" in r.stdout, r.stdout)
# A name qmail-send must not trust, planted directly.
open(os.path.join(fd_dir, "bad_name"), "w").close()
t0 = time.time()
os.kill(p.pid, signal.SIGUSR1)

t.check("SIGUSR1: a.test is reset",
        wait_for(lambda: any("state=reset" in l for l in sh.dest_lines(log, HOP["a.test"])), 10),
        sh.dest_lines(log, HOP["a.test"]))
want = sorted(b"TOKEN-a-%d-" % k for k in range(N))
ok = wait_for(lambda: sorted(sh.tokens(sink_a)) == want, 20)
t.check("every a.test message is delivered at once", ok, (sh.tokens(sink_a), time.time() - t0))
t.check("... promptly", time.time() - t0 < 15, time.time() - t0)
time.sleep(1)
t.check("... exactly once", sorted(sh.tokens(sink_a)) == want, sh.tokens(sink_a))
t.check("a.test recovers", any("state=recovered" in l for l in sh.dest_lines(log, HOP["a.test"])),
        sh.dest_lines(log, HOP["a.test"]))
t.check("b.test stays dead: its sink saw nothing", not sh.tokens(sink_b), sh.tokens(sink_b))
t.check("... and it was not reset", not any("state=reset" in l or "state=retry" in l
                                             for l in sh.dest_lines(log, HOP["b.test"])),
        sh.dest_lines(log, HOP["b.test"]))
t.check("b.test's messages are still queued",
        wait_for(lambda: len(inst.queue_files()) == N, 10), inst.queue_files())
text = sh.read_log(log)
t.check("the unknown domain is logged as such",
        "event=dest domain=nowhere.test state=unknown" in text, text[-2000:])
t.check("the junk name is refused", re.search(r"op=flushdest name=bad_name error=", text), text[-2000:])
t.check("every request is removed", wait_for(lambda: not os.listdir(fd_dir), 5), os.listdir(fd_dir))

# --- SIGALRM still flushes everything (and reads requests) ----------------
os.kill(p.pid, signal.SIGALRM)
want_b = sorted(b"TOKEN-b-%d-" % k for k in range(N))
t.check("SIGALRM then delivers b.test's messages",
        wait_for(lambda: sorted(sh.tokens(sink_b)) == want_b, 30), sh.tokens(sink_b))
t.check("the queue empties", wait_for(lambda: not inst.queue_files(), 10), inst.queue_files())
t.done()
