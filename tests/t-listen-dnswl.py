#!/usr/bin/env python3
"""qmail-smtpd-listen -p with control/dnsbl, against a real DNS server
(dnsmasq on loopback, zones under .test): a client an allowlist (a
negative weight) names is greeted at once, with no pause and no "220-"
line, while an unlisted client waits out control/pregreetdelay and a
listed one still waits and then gets its 554 greeting; the same under -t
(without a certificate: the plain session through the TLS front, whose
lookup runs with the session's ids, not root's)."""
import os, select, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance
from smtpd_harness import Client
from remote_peers import Dns

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "pregreetdelay": "2000",
                            "dnsbltimeout": "2"})
dns = Dns(t, [
    "--host-record=2.0.0.127.wl.test,127.0.0.2",
    "--host-record=4.0.0.127.bl.test,127.0.0.2",
    "--txt-record=4.0.0.127.bl.test,\"listed in bl.test\"",
])
if not t.check("dnsmasq answers", dns.ok):
    t.done()
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("dnsbl", ["wl.test*-5", "bl.test*3"])
LISTEN = inst.bin("qmail-smtpd-listen")
if inst.multi:
    uid, gid = inst.uid("smtpd")[:2]
else:
    uid, gid = os.getuid(), os.getgid()
IDS = ["-u", str(uid), "-g", str(gid)]


class Srv:
    def __init__(self, name, opts=()):
        self.log = open(inst.path(name + ".log"), "w+")
        e = dict(os.environ)
        e.pop("RELAYCLIENT", None)
        self.p = inst.spawn([LISTEN, "-1", "-p", "-l", "mail.example.test"] + IDS + list(opts)
                            + ["0", "0"], stdout=subprocess.PIPE, stderr=self.log, env=e)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        line = self.p.stdout.readline() if r else b""
        self.port = int(line) if line.strip().isdigit() else 0

    def logtext(self):
        self.log.flush()
        return open(self.log.name, errors="replace").read()

    def stop(self):
        self.p.terminate()
        self.p.wait(10)


def greet(port, source):
    """The first line from the server, its whole greeting and the seconds
    until the greeting's end."""
    c = Client.__new__(Client)
    t0 = time.time()
    c.s = socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0))
    c.s.settimeout(10)
    c.buf = b""
    first = c._line()
    last = c._line() if first.startswith("220-") else first
    waited = time.time() - t0
    c.close()
    return first, last, waited


for mode, opts in (("plain", []), ("-t", ["-t", "%d:%d" % (uid, gid)])):
    srv = Srv("dnswl" + mode.replace("-", "_"), opts)
    if not t.check("%s: the listener runs" % mode, srv.port, srv.logtext()):
        continue
    first, last, waited = greet(srv.port, "127.0.0.2")
    t.check("%s: an allowlisted client is greeted at once, one line" % mode,
            first.startswith("220 mail.example.test") and waited < 1.0, (first, waited))
    first, last, waited = greet(srv.port, "127.0.0.3")
    t.check("%s: an unlisted client waits the pause, '220-' first" % mode,
            first == "220-mail.example.test" and last.startswith("220 ") and waited >= 1.9,
            (first, last, waited))
    first, last, waited = greet(srv.port, "127.0.0.4")
    t.check("%s: a listed client waits too, then gets 554 with the list's text" % mode,
            first == "220-mail.example.test" and last.startswith("554 5.7.1")
            and "listed in bl.test" in last and waited >= 1.9, (first, last, waited))
    log = srv.logtext()
    t.check("%s: the allowlisting is logged" % mode,
            "event=dnsbl ip=127.0.0.2 score=-5 result=allowlisted" in log, log)
    srv.stop()
t.done()
