#!/usr/bin/env python3
"""qmail-smtpd-listen -p with control/dnsbl, against a real DNS server
(dnsmasq on loopback, zones under .test): a client an allowlist (a
negative weight) names is greeted at once, with no pause and no "220-"
line, while an unlisted client waits out control/pregreetdelay and a
listed one still waits and then gets its 554 greeting alone: never a
"220-" line before it (a reply's lines share one code), which smtplib and
a strict parser of ours check; the same under -t (without a certificate:
the plain session through the TLS front, whose lookup runs with the
session's ids, not root's). A session told that its greeting is open
(PREGREETED) ends it as 220 and refuses a listed client with 550."""
import os, select, smtplib, socket, subprocess, sys, time
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
    "--host-record=8.0.0.127.bl.test,127.0.0.2",
    "--txt-record=8.0.0.127.bl.test,\"listed in bl.test\"",
    "--host-record=9.0.0.127.bl.test,127.0.0.2",
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


def strict_reply(c):
    """One reply, refused unless every line has the same code and all
    but the last a "-": (code, lines)."""
    lines = [c._line()]
    while lines[-1][3:4] == "-":
        lines.append(c._line())
    codes = {l[:3] for l in lines}
    if len(codes) != 1 or not lines[-1][:3].isdigit() or lines[-1][3:4] not in (" ", ""):
        return None, lines
    return int(lines[-1][:3]), lines


def smtplib_greeting(port, source):
    """smtplib's reading of the greeting: (code, message)."""
    try:
        s = smtplib.SMTP("127.0.0.1", port, timeout=10, source_address=(source, 0))
    except smtplib.SMTPConnectError as e:
        return e.smtp_code, e.smtp_error.decode("utf-8", "replace")
    code, msg = s.docmd("QUIT")
    s.close()
    return 220, "ok"


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
    c = Client.__new__(Client)
    t0 = time.time()
    c.s = socket.create_connection(("127.0.0.1", srv.port), 10, source_address=("127.0.0.9", 0))
    c.s.settimeout(10)
    c.buf = b""
    code, lines = strict_reply(c)
    waited = time.time() - t0
    t.check("%s: a listed client's greeting is one well-formed reply: 554, after the pause" % mode,
            code == 554 and waited >= 1.9, (lines, waited))
    c.send("EHLO client.test\r\n")
    code, lines = strict_reply(c)
    t.check("%s: ... then 503 to EHLO" % mode, code == 503, lines)
    c.close()
    first, last, waited = greet(srv.port, "127.0.0.4")
    t.check("%s: a listed client waits too, then gets 554 with the list's text, one line" % mode,
            first == last and last.startswith("554 5.7.1")
            and "listed in bl.test" in last and waited >= 1.9, (first, last, waited))
    c = Client.__new__(Client)
    c.s = socket.create_connection(("127.0.0.1", srv.port), 10, source_address=("127.0.0.5", 0))
    c.s.settimeout(10)
    c.buf = b""
    code, lines = strict_reply(c)
    t.check("%s: an unlisted client's two-line greeting is well formed: 220" % mode,
            code == 220 and len(lines) == 2, lines)
    c.close()
    code, msg = smtplib_greeting(srv.port, "127.0.0.8")
    t.check("%s: smtplib reads the listed client's greeting as 554 with the list's text alone" % mode,
            code == 554 and msg.startswith("5.7.1") and "listed in bl.test" in msg
            and "mail.example.test" not in msg, (code, msg))
    log = srv.logtext()
    t.check("%s: the allowlisting is logged" % mode,
            "event=dnsbl ip=127.0.0.2 score=-5 result=allowlisted" in log, log)
    srv.stop()

# The session whose greeting the listener opened with "220-" (PREGREETED)
# and whose own lookup lists the client: a 220 end, then 550s.
user = {}
if inst.multi:
    user = dict(user=uid, group=gid, extra_groups=[])
r = subprocess.run([inst.bin("qmail-smtpd")], input=b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\nQUIT\r\n",
                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30,
                   env={"TCPREMOTEIP": "127.0.0.4", "PREGREETED": "1"}, **user)
lines = r.stdout.decode("utf-8", "replace").split("\r\n")
t.check("an open greeting and a listed client: 220 ends the greeting, then 550 with the list's text, 221",
        len(lines) >= 4 and lines[0].startswith("220 ") and lines[1].startswith("550 5.7.1")
        and "listed in bl.test" in lines[1] and lines[2].startswith("550 5.7.1") and lines[3].startswith("221"),
        lines)
t.done()
