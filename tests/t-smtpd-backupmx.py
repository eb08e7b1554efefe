#!/usr/bin/env python3
"""A backup MX refuses unknown recipients at RCPT time.

qmail-smtpd relays for primary.test and other.test (control/rcpthosts, not
local), as a backup MX does; control/validrcptto.cdb, copied from the
primary, lists primary.test's addresses (and a catch-all for
catchall.test). An unknown recipient of primary.test gets 550 5.1.1 at
RCPT, from any client, instead of being queued and bounced later; known
ones are taken, case ignored; other.test, which has no key in the cdb, is
not checked; local recipients are checked as before."""
import os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance
from smtpd_harness import Server, Queue

t = T()
inst = Instance(t, control={
    "rcpthosts": ["primary.test", "other.test", ".sub.primary.test", "catchall.test"],
    "locals": ["mail.example.test"],
    "timeoutsmtpd": "10"})
vr = inst.path("control", "validrcptto")
with open(vr, "w") as f:
    # A few hundred keys, the domain's among them, so that finding out
    # whether a domain has keys is a pass over many records.
    f.write("".join("user%d@unrelated%d.test\n" % (i, i % 7) for i in range(300)))
    f.write("bob@primary.test\nalice.smith@primary.test\n@catchall.test\nx@mail.example.test\n")
subprocess.run("cdb -c -m %s.cdb < %s" % (vr, vr), shell=True, check=True)
os.chmod(vr + ".cdb", 0o644)

srv = Server(inst)
relay = Server(inst, relay=True, name="relay")
q = Queue(inst)


def one(server, rcpt):
    """A fresh session: EHLO, MAIL, one RCPT; (code, enhanced code)."""
    c = server.connect()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<s@client.test>")
    code, text = c.cmd("RCPT TO:" + rcpt)
    c.close()
    return code, text[:5]


CASES = [
    ("<nosuch@primary.test>", 550, "5.1.1", "unknown recipient of the relayed domain"),
    ("<bob@primary.test>", 250, "2.1.5", "known recipient"),
    ("<BOB@Primary.TEST>", 250, "2.1.5", "known recipient, case ignored"),
    ("<alice.smith@primary.test>", 250, "2.1.5", "another known recipient"),
    ("<smith@primary.test>", 550, "5.1.1", "a suffix of a known one is not known"),
    ("<anyone@catchall.test>", 250, "2.1.5", "@domain takes every address"),
    ("<anyone@other.test>", 250, "2.1.5", "a relayed domain without keys is unaffected"),
    ("<bob@x.sub.primary.test>", 250, "2.1.5", "a subdomain (.sub.primary.test) has no keys of its own"),
    ("<x@evil.test>", 553, "5.7.1", "relaying is still refused"),
    ("<nosuch@mail.example.test>", 550, "5.1.1", "a local unknown recipient, as before"),
    ("<x@mail.example.test>", 250, "2.1.5", "a local one in validrcptto.cdb, as before"),
]
for rcpt, code, enh, why in CASES:
    got = one(srv, rcpt)
    t.check("RCPT %s (%s) -> %d %s" % (rcpt, why, code, enh), got == (code, enh), got)

# A relay client (RELAYCLIENT) is refused the unknown recipient too: the
# primary would bounce it; other destinations are not looked up at all.
t.check("relay client: unknown recipient of primary.test -> 550",
        one(relay, "<nosuch@primary.test>") == (550, "5.1.1"))
t.check("relay client: known recipient -> 250", one(relay, "<bob@primary.test>") == (250, "2.1.5"))
t.check("relay client: a domain outside rcpthosts is relayed", one(relay, "<x@evil.test>") == (250, "2.1.5"))

# Several recipients in one session: only the unknown one is refused, the
# message is queued for the others.
c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
codes = [c.cmd("RCPT TO:<%s>" % r)[0] for r in ("bob@primary.test", "ghost@primary.test", "z@other.test")]
t.check("one session: 250, 550, 250", codes == [250, 550, 250], codes)
t.check("DATA", c.cmd("DATA")[0] == 354)
c.send(b"Subject: backup\r\n\r\nbody\r\n.\r\n")
t.check("message accepted", c.reply()[0] == 250)
c.close()
files = q.new(1)
t.check("one message queued", len(files) == 1, files)
if files:
    rcpts = sorted(r.decode() for _, r in q.read(files[0])[3])
    t.check("queued for the two known recipients only", rcpts == ["bob@primary.test", "z@other.test"], rcpts)

# Without the cdb a backup MX takes every recipient, as before.
os.unlink(vr + ".cdb")
t.check("without validrcptto.cdb an unknown recipient of primary.test is taken",
        one(srv, "<nosuch@primary.test>") == (250, "2.1.5"))
t.done()
