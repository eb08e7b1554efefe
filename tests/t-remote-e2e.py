#!/usr/bin/env python3
"""The whole outbound path: qmail-queue -> qmail-send -> qmail-rspawn ->
an SMTP sink on loopback, with qmail-send and the spawners started by
qmail-start. Accepted mail leaves the queue; a refused recipient comes back
to the local sender as a report naming the remote host and its reply. A
message flagged SMTPUTF8 with a long line and an 8-bit body reaches a
server with neither SMTPUTF8 nor 8BITMIME converted, without the flag."""
import email, os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for
import send_harness as sh
from remote_peers import Sink

t = T()
inst = sh.setup(t)
D = sh.DOMAIN
sink = Sink(t, rcpt=lambda a: "550 5.1.1 <%s> no such user here" % a if a.startswith("nobody") else "250 ok")
old = Sink(t, ext=["PIPELINING"])          # no 8BITMIME, no SMTPUTF8
inst.control("smtproutes", ["far.test:127.0.0.1:%d" % sink.port, "old.test:127.0.0.1:%d" % old.port])
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
log = inst.path("send.log")
p = sh.start(inst, log)

inst.inject("alice@%s" % D, ["x@far.test", "y@far.test"], "Subject: out\n\nTOKEN-1- body\n.dot\n")
ok = wait_for(lambda: any(s.data for s in sink.sessions) and sh.queue_empty(inst), 20)
t.check("delivered to the sink and gone from the queue", ok)
s = [s for s in sink.sessions if s.data]
t.check("both recipients in one transaction", len(s) == 1 and
        [c for c in s[0].commands if c.startswith("RCPT")] == ["RCPT TO:<x@far.test>", "RCPT TO:<y@far.test>"],
        s and s[0].commands)
t.check("dot-stuffed body", s and s[0].data[0].endswith(b"TOKEN-1- body\r\n..dot\r\n.\r\n"), s and s[0].data)

before = len(sh.messages(inst, "alice"))
inst.inject("alice@%s" % D, ["nobody@far.test"], "Subject: refused\n\nTOKEN-2- body\n")
ok = wait_for(lambda: len(sh.messages(inst, "alice")) > before and sh.queue_empty(inst), 20)
t.check("a report reaches the sender", ok)
dsn = [b for _, b in sh.messages(inst, "alice") if b"Subject: refused" in b]
t.check("the report carries the remote's reply", dsn and b"550 5.1.1 <nobody@far.test> no such user here" in dsn[0],
        dsn and dsn[0][:2000])
t.check("the report names the remote host", dsn and b"127.0.0.1" in dsn[0], dsn and dsn[0][:2000])

body = "TOKEN-3 é\n" + "x" * 2000 + "\n"
env = dict(os.environ, SMTPUTF8="1")
inst.inject("alice@%s" % D, ["z@old.test"], "Subject: old\n\n" + body, env=env)
ok = wait_for(lambda: any(s.data for s in old.sessions) and sh.queue_empty(inst), 20)
s = [s for s in old.sessions if s.data]
wire = s[0].data[0] if s else b""
t.check("SMTPUTF8-flagged, ASCII header, to an old server: delivered without the flag",
        ok and len(s) == 1 and s[0].commands[1] == "MAIL FROM:<alice@%s>" % D, s and s[0].commands)
t.check("  ... 7-bit, no line over 998 octets, decoding to the body sent",
        wire and all(len(l) <= 998 and max(l, default=0) < 128 for l in wire.split(b"\r\n"))
        and email.message_from_bytes(wire[:-3].replace(b"\r\n", b"\n")).get_payload(decode=True) == body.encode(),
        wire[:400])
t.done()
