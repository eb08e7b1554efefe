#!/usr/bin/env python3
"""Tarpits: servers that answer or read one byte at a time, which no
per-read timeout ever stops. qmail-remote gives up on a reply, a command
or the message once its deadline (control/timeoutreply, control/datarate)
has passed; and with qmail-send's default concurrency a tarpit destination
holds only its per-destination share of the remote slots, so mail to other
domains keeps flowing while it holds them."""
import os, socket, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, IS_ROOT, wait_for
import send_harness as sh
from remote_peers import Sink


class Tarpit:
    """An SMTP server on 127.0.0.1 that says the lines of script (CRLF
    added) after reading one line each, except that the line where drip
    is due is sent one byte every `every` seconds, never finished. With
    slow_data, after the 354 it reads the message `rate` bytes a second."""

    def __init__(self, t, script, drip, every=0.3, slow_data=None):
        self.script, self.drip, self.every, self.slow_data = script, drip, every, slow_data
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A small receive buffer, so that a slow reader is felt at once.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.stop = False
        threading.Thread(target=self.run, daemon=True).start()
        t.cleanups.append(self.close)

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rb")
        try:
            for i, line in enumerate(self.script):
                if i == self.drip:
                    while not self.stop:
                        c.send(b"2")
                        time.sleep(self.every)
                    return
                c.sendall(line.encode() + b"\r\n")
                if line.startswith("354") and self.slow_data:
                    while not self.stop:
                        if not c.recv(self.slow_data // 4):
                            return
                        time.sleep(0.25)
                    return
                if not f.readline():
                    return
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop = True
        self.sock.close()


t = T()
inst = sh.setup(t)
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain, message=b"Subject: hi\n\nhello\n", timeout=30):
    """qmail-remote to u@domain: (code, text, seconds); ("?", why, s) if it hung."""
    t0 = time.time()
    try:
        p = subprocess.run([inst.bin("qmail-remote"), domain, "a@example.test", "u@" + domain], input=message,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **user)
    except subprocess.TimeoutExpired:
        return "?", "still running after %d s" % timeout, time.time() - t0
    parts = p.stdout.split(b"\0")
    if len(parts) < 3:
        return "?", repr(p), time.time() - t0
    return parts[1][:1].decode(), parts[1][1:].decode("utf-8", "replace"), time.time() - t0


EHLO = ["220 tarpit", "250 tarpit", "250 ok", "250 ok", "354 go", "250 queued"]
greet = Tarpit(t, EHLO, drip=0)
mail = Tarpit(t, EHLO, drip=2)
slow = Tarpit(t, EHLO, drip=None, slow_data=64 * 1024)
inst.control("smtproutes", ["greet.test:127.0.0.1:%d" % greet.port, "mail.test:127.0.0.1:%d" % mail.port,
                            "slow.test:127.0.0.1:%d" % slow.port])
inst.control("timeoutremote", "5")     # never reached: a byte comes every 0.3 s
inst.control("timeoutreply", "2")
code, text, secs = remote("greet.test")
t.check("greeting dripped a byte at a time: deferred at timeoutreply",
        code == "Z" and "timed out" in text and text.startswith("connect:") and secs < 10, (code, text, secs))
print("greeting gave up after %.1f s" % secs)
code, text, secs = remote("mail.test")
t.check("MAIL reply dripped: deferred at timeoutreply", code == "Z" and "timed out" in text and secs < 10,
        (code, text, secs))
inst.control("timeoutreply", "1")
inst.control("datarate", "4000000")    # 8 MB: 1 + 2 seconds at most
big = (b"x" * 999 + b"\n") * 8000
code, text, secs = remote("slow.test", message=big)
t.check("server reading the message slowly: deferred past timeoutreply + size/datarate",
        code == "Z" and "timed out sending" in text and text.startswith("data:") and secs < 15, (code, text, secs))
for f in ("timeoutremote", "timeoutreply", "datarate"):
    os.unlink(inst.path("control", f))

# --- qmail-send's defaults: a tarpit destination takes only its share ------------
pit = Tarpit(t, EHLO, drip=0, every=1)
good = Sink(t)
inst.control("smtproutes", ["pit.test:127.0.0.1:%d" % pit.port, "good.test:127.0.0.1:%d" % good.port])
log = inst.path("send.log")
p = sh.start(inst, log)
NPIT = 30
for k in range(NPIT):
    inst.inject("alice@%s" % sh.DOMAIN, ["r%d@pit.test" % k], "Subject: p%d\n\nTOKEN-pit-%d- body\n" % (k, k))
t.check("the tarpit holds its share of connections", wait_for(lambda: pit.conns >= 20, 20), pit.conns)
t0 = time.time()
for k in range(5):
    inst.inject("alice@%s" % sh.DOMAIN, ["r%d@good.test" % k], "Subject: g%d\n\nTOKEN-good-%d- body\n" % (k, k))
ok = wait_for(lambda: len(sh.tokens(good)) >= 5, 30)
t.check("mail to another domain flows while the tarpit holds its slots", ok,
        (len(sh.tokens(good)), time.time() - t0, pit.conns))
t.check("the tarpit never got more than concurrencyperdest (20) connections", pit.conns == 20, pit.conns)
t.done()
