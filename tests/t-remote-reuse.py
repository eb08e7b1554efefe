#!/usr/bin/env python3
"""qmail-rspawn's workers keep their SMTP connection (lib/spawnpool.h,
qmail-remote/rworker.c): driven directly over its socket as qmail-send
does, against loopback sinks that count connections. One domain's
deliveries share one connection, two domains use two; a kept connection
is QUIT after the idle time and when qmail-rspawn ends; a server that
closes the idle connection, or answers 421 to the next MAIL, still gets
the message on a fresh connection with nothing reported; a TLS policy
changed in between is never met by the old connection; a worker killed
mid-delivery costs that delivery a 'Z' and the next one gets a new one."""
import os, signal, socket, socketserver, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from remote_peers import Sink
import send_harness as sh

t = T()
inst = Instance(t)


class Peer:
    """A small SMTP server: per connection, the commands received in
    .conns; mail(conn, n) gives the reply to the n-th MAIL of a connection
    (None: hang up instead), close_after_data hangs up after each
    message's reply, hold_data waits that many seconds before it."""

    def __init__(self, mail=lambda c, n: "250 ok", close_after_data=False, hold_data=0):
        self.conns = []
        peer = self

        class H(socketserver.StreamRequestHandler):
            def handle(self):
                cmds = []
                peer.conns.append(cmds)
                nmail = 0

                def say(x):
                    self.wfile.write(x.encode() + b"\r\n")
                    self.wfile.flush()
                self.request.settimeout(20)
                try:
                    say("220 peer ESMTP")
                    while True:
                        line = self.rfile.readline(4096).rstrip(b"\r\n").decode()
                        if not line:
                            cmds.append("EOF")
                            return
                        cmds.append(line)
                        v = line[:4].upper()
                        if v == "EHLO":
                            say("250-peer\r\n250 PIPELINING")
                        elif v == "MAIL":
                            nmail += 1
                            r = mail(len(peer.conns) - 1, nmail)
                            if r is None:
                                return
                            say(r)
                            if r.startswith("421"):
                                return
                        elif v == "DATA":
                            say("354 go")
                            while self.rfile.readline(1 << 20) not in (b".\r\n", b""):
                                pass
                            time.sleep(hold_data)
                            say("250 ok queued")
                            if close_after_data:
                                return
                        elif v == "QUIT":
                            say("221 bye")
                            return
                        else:
                            say("250 ok")
                except OSError:
                    cmds.append("EOF")

        class S(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = S(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        t.cleanups.append(self.close)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def mails(self):
        return [sum(1 for c in cmds if c.startswith("MAIL")) for cmds in self.conns]


plain = Peer()
other = Peer()
closer = Peer(close_after_data=True)
p421 = Peer(mail=lambda c, n: "421 4.4.2 idle too long" if n > 1 else "250 ok")
hangup = Peer(mail=lambda c, n: None if n > 1 else "250 ok")
slow = Peer(hold_data=3)
tlsp = Peer()
inst.control("smtproutes", ["one.test:127.0.0.1:%d" % plain.port, "two.test:127.0.0.1:%d" % other.port,
                            "alias.test:127.0.0.1:%d" % plain.port,
                            "closer.test:127.0.0.1:%d" % closer.port, "p421.test:127.0.0.1:%d" % p421.port,
                            "hangup.test:127.0.0.1:%d" % hangup.port, "slow.test:127.0.0.1:%d" % slow.port,
                            "tls.test:127.0.0.1:%d" % tlsp.port])
inst.control("timeoutremote", "10")
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])
errlog = open(inst.path("rspawn.log"), "wb")
ours, proc = sh.run_spawner(inst, [inst.bin("qmail-rspawn")], errlog, 20, **user)

msg = b"Subject: reuse\n\nbody\n"
tmp = tempfile.NamedTemporaryFile(dir="/tmp", delete=False)
tmp.write(msg)
tmp.close()
os.chmod(tmp.name, 0o644)
t.cleanups.append(lambda: os.unlink(tmp.name))
msgfd = os.open(tmp.name, os.O_RDONLY)


def request(slot, rcpts):
    fields = [str(slot), "1795420800.004211.3117", "0", str(len(msg)), "0", "s@example.test"]
    for i, r in enumerate(rcpts):
        fields += [str(i), r]
    socket.send_fds(ours, [b"".join(f.encode() + b"\0" for f in fields)], [msgfd])


def reply():
    try:
        parts = ours.recv(300000).split(b"\0")
    except socket.timeout:
        return None
    return parts[0].decode(), [(p[:1].decode(), p[1:].decode()) for p in parts[1:-1]]


def deliver(rcpt, slot=0):
    request(slot, [rcpt])
    return reply()


def workers():
    with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
        return [int(x) for x in f.read().split()]


def log():
    with open(inst.path("rspawn.log"), "rb") as f:
        return f.read().decode("utf-8", "replace")


# One domain: five deliveries, one connection, MAIL after MAIL.
rs = [deliver("u%d@one.test" % k) for k in range(5)]
t.check("one domain: every delivery K", all(r and r[1][0][0] == "K" for r in rs), rs)
t.check("one domain: one connection for five", plain.mails() == [5], plain.conns)
c = plain.conns[0] if plain.conns else []
t.check("no QUIT, no RSET between transactions", not any(x in ("QUIT", "RSET") for x in c), c)
t.check("no second EHLO on the kept connection", sum(1 for x in c if x.startswith("EHLO")) == 1, c)

# Two domains, even through the same server: a connection each.
rs = [deliver("a@two.test"), deliver("b@alias.test"), deliver("c@two.test"), deliver("d@alias.test")]
t.check("two domains: every delivery K", all(r and r[1][0][0] == "K" for r in rs), rs)
t.check("two domains: each its own connection", other.mails() == [2] and plain.mails() == [5, 2],
        (other.mails(), plain.mails()))

# Idle: QUIT after SMTP_KEEP_IDLE_MS (5 s); the worker stays.
t0 = time.time()
ok = wait_for(lambda: other.conns and other.conns[0][-1:] == ["QUIT"], 12)
t.check("idle connection QUIT after 5 s, not before", ok and 4 <= time.time() - t0 + 0.1,
        (time.time() - t0, other.conns))
r = deliver("e@two.test")
t.check("after the idle QUIT: a new connection", r and r[1][0][0] == "K" and other.mails() == [2, 1],
        (r, other.mails()))

# The server hangs up after each message: the next goes on a fresh connection.
rs = [deliver("a@closer.test"), deliver("b@closer.test")]
t.check("server closed the kept connection: both K", all(r and r[1][0][0] == "K" for r in rs), rs)
t.check("server closed the kept connection: two connections", closer.mails() == [1, 1], closer.conns)

# 421 to the second MAIL: retried at once on a fresh connection, K.
rs = [deliver("a@p421.test"), deliver("b@p421.test")]
t.check("421 on the reused connection: K, not a failure", all(r and r[1][0][0] == "K" for r in rs), rs)
t.check("421 on the reused connection: retried on a new one", p421.mails() == [2, 1], p421.conns)
t.check("the stale connection is logged", "event=reuse_failed" in log(), log()[-400:])
rs = [deliver("a@hangup.test"), deliver("b@hangup.test")]
t.check("hang-up at MAIL on the reused connection: K", all(r and r[1][0][0] == "K" for r in rs), rs)
t.check("hang-up at MAIL: retried on a new connection", hangup.mails() == [2, 1], hangup.conns)

# TLS policy changed between two deliveries: the plaintext connection kept
# under "may" must not carry mail that now requires TLS.
r1 = deliver("a@tls.test")
inst.control("tlspolicy", "tls.test:encrypt")
r2 = deliver("b@tls.test")
inst.control("tlspolicy", "")
t.check("tls: first delivery in plaintext under may", r1 and r1[1][0][0] == "K", r1)
t.check("tls: encrypt required, no STARTTLS: connect Z", r2 and r2[1][0][0] == "Z"
        and r2[1][0][1].startswith("connect:") and "STARTTLS" in r2[1][0][1], r2)
t.check("tls: the kept plaintext connection carried one MAIL, then QUIT",
        tlsp.mails()[:1] == [1] and "QUIT" in tlsp.conns[0], tlsp.conns)

# kill -9 of a worker in the middle of a delivery.
before = set(workers())
request(5, ["a@slow.test"])
new = []
wait_for(lambda: new.extend(set(workers()) - before) or new, 5)
time.sleep(0.5)
if new:
    os.kill(new[0], signal.SIGKILL)
r = reply()
t.check("killed worker: Z for its delivery", new and r and r[0] == "5" and r[1][0][0] == "Z"
        and r[1][0][1].startswith("local:"), (new, r))
r = deliver("b@slow.test", slot=6)
t.check("killed worker: the next delivery K with a new worker", r and r[0] == "6" and r[1][0][0] == "K", r)

# EOF: qmail-rspawn exits, and so does every worker, saying QUIT first.
kids = workers()
n = len(plain.conns)
deliver("z@one.test")
ours.shutdown(socket.SHUT_WR)
try:
    rc = proc.wait(15)
except subprocess.TimeoutExpired:
    rc = None
t.check("exits 0 at EOF", rc == 0, rc)
alive = [k for k in kids if os.path.exists("/proc/%d" % k) and open("/proc/%d/stat" % k).read().split()[2] != "Z"]
t.check("no worker outlives qmail-rspawn", not alive, alive)
t.check("the kept connection is QUIT at the end", wait_for(lambda: plain.conns[-1][-1:] == ["QUIT"], 5)
        and len(plain.conns) == n + 1, plain.conns[-1:])
t.done()
