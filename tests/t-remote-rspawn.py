#!/usr/bin/env python3
"""qmail-rspawn driven directly over a SOCK_SEQPACKET socketpair, the way
qmail-send drives it (lib/spawnproto.h): requests with a message file's
descriptor attached, replies per recipient, deliveries running in parallel,
strict validation, exit at EOF."""
import os, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, free_port
from remote_peers import Sink

t = T()
inst = Instance(t)
good = Sink(t, "127.0.0.1")
partial = Sink(t, rcpt=lambda a: "550 5.1.1 unknown" if a.startswith("bad") else "250 ok")
silent = Sink(t, silent=True)
inst.control("smtproutes", ["good.test:127.0.0.1:%d" % good.port,
                            "partial.test:127.0.0.1:%d" % partial.port,
                            "silent.test:127.0.0.1:%d" % silent.port,
                            "down.test:127.0.0.1:%d" % free_port()])
inst.control("timeoutremote", "2")
inst.control("dnsserver", "127.0.0.1:%d" % free_port())   # never the real resolver

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])

ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
proc = inst.spawn([inst.bin("qmail-rspawn")], stdin=theirs, stderr=subprocess.PIPE, **user)
theirs.close()
ours.settimeout(20)

# The message sits inside a larger file, as in a queue file.
msg = b"Subject: spawn\n\nbody\n.dot line\n"
tmp = tempfile.NamedTemporaryFile(dir="/tmp", delete=False)
tmp.write(b"HEADER--" + msg + b"ENVELOPE")
tmp.close()
os.chmod(tmp.name, 0o644)
t.cleanups.append(lambda: os.unlink(tmp.name))
msgfd = os.open(tmp.name, os.O_RDONLY)
wire = msg.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..") + b".\r\n"


def request(slot, rcpts, qid="1795420800.004211.3117", off=8, length=len(msg), sender="s@example.test",
            fd=True, raw=None):
    fields = [str(slot), qid, str(off), str(length), "0", sender]
    for i, r in enumerate(rcpts):
        fields += [str(i), r]
    data = raw if raw is not None else b"".join(f.encode() + b"\0" for f in fields)
    socket.send_fds(ours, [data], [msgfd] if fd else [])


def replies(n, timeout=20):
    """n replies as {slot: [(code, text)...]} in arrival order."""
    out = []
    end = time.time() + timeout
    while len(out) < n and time.time() < end:
        try:
            data = ours.recv(300000)
        except socket.timeout:
            break
        parts = data.split(b"\0")
        if parts[-1] != b"":
            out.append(("bad", data))
            continue
        out.append((parts[0].decode(), [(p[:1].decode(), p[1:].decode()) for p in parts[1:-1]]))
    return out


new = len(good.sessions)
request(0, ["u@good.test"])
r = replies(1)
t.check("delivery: K with the server's reply", r and r[0][0] == "0" and len(r[0][1]) == 1 and r[0][1][0][0] == "K"
        and r[0][1][0][1].startswith("ok: 127.0.0.1 said: 250"), r)
s = good.sessions[new:]
t.check("delivery: the message slice, byte for byte", len(s) == 1 and s[0].data == [wire], s and s[0].data)

request(7, ["a@partial.test", "bad@partial.test", "c@PARTIAL.test"])
r = replies(1)
t.check("per-recipient replies in request order", r and r[0][0] == "7" and [x[0] for x in r[0][1]] == ["K", "D", "K"]
        and r[0][1][1][1] == "rcpt: 127.0.0.1 said: 550 5.1.1 unknown", r)

request(3, ["u@down.test", "v@down.test"])
r = replies(1)
t.check("server down: Z for all, connect tag", r and [x[0] for x in r[0][1]] == ["Z", "Z"]
        and r[0][1][0][1].startswith("connect: 127.0.0.1: Connection refused"), r)

# Parallel: a slow destination does not hold up the others.
t0 = time.time()
request(10, ["u@silent.test"])
for k in range(20):
    request(11 + k, ["u%d@good.test" % k])
r = replies(21, timeout=30)
order = [x[0] for x in r]
fast = [x for x in r if x[0] != "10"]
t.check("parallel deliveries all answered", sorted(order, key=int) == [str(i) for i in range(10, 31)], order)
t.check("parallel: fast destinations before the silent one", order and order[-1] == "10", order)
t.check("parallel: all K", all(x[1][0][0] == "K" for x in fast), [x for x in fast if x[1][0][0] != "K"])
slow = [x for x in r if x[0] == "10"]
t.check("silent server: Z after timeoutremote", slow and slow[0][1][0][0] == "Z" and "timed out" in slow[0][1][0][1], slow)
# The order above shows the parallelism; this only guards against a hang.
t.check("parallel: no hang", time.time() - t0 < 30, time.time() - t0)

# Validation.
request(40, ["a@good.test", "b@other.test"])
r = replies(1)
t.check("recipients of two domains: refused", r and r[0][0] == "40" and r[0][1] == [("Z", "local: bad request")], r)
request(41, ["a@good.test"], fd=False)
r = replies(1)
t.check("no descriptor: refused", r and r[0][0] == "41" and r[0][1][0][0] == "Z", r)
request(42, ["a@good.test"], length=10000)
r = replies(1)
t.check("message bounds beyond the file: refused", r and r[0][0] == "42" and r[0][1][0][0] == "Z", r)
request(43, ["a@good.test"], qid="../../etc")
r = replies(1)
t.check("bad qid: refused", r and r[0][0] == "43" and r[0][1][0][0] == "Z", r)
request(44, [])
r = replies(1)
t.check("no recipient: refused", r and r[0][0] == "44" and r[0][1][0][0] == "Z", r)
request(0, ["a@good.test"], raw=b"99999\0x\0")
request(0, ["a@good.test"], raw=b"12")
request(45, ["a@good.test"])
r = replies(1)
t.check("unanswerable requests dropped, the next one served", r and r[0][0] == "45" and r[0][1][0][0] == "K", r)
t.check("still running", proc.poll() is None)

# Throughput: 200 one-recipient deliveries, 50 at a time.
t0 = time.time()
got = 0
for batch in range(4):
    for k in range(50):
        request(100 + k, ["p%d@good.test" % k])
    rs = replies(50)
    got += sum(1 for x in rs if x[1] and x[1][0][0] == "K")
    bad = [x for x in rs if not x[1] or x[1][0][0] != "K"]
secs = time.time() - t0
print("rspawn: 200 deliveries in %.2f s (%.0f/s)" % (secs, 200 / secs))
t.check("200 deliveries all K", got == 200, (got, bad[:2]))

# EOF: rspawn answers what runs, then exits 0.
request(50, ["u@silent.test"])
time.sleep(0.2)
ours.shutdown(socket.SHUT_WR)
r = replies(1)
t.check("request running at EOF still answered", r and r[0][0] == "50" and r[0][1][0][0] == "Z", r)
try:
    rc = proc.wait(10)
except subprocess.TimeoutExpired:
    rc = None
t.check("exits 0 after EOF", rc == 0, rc)
err = proc.stderr.read().decode("utf-8", "replace")
t.check("bad requests logged", "event=bad_request" in err, err[-500:])
t.done()
