#!/usr/bin/env python3
"""Mail this host writes is signed without QMAILQUEUE: qmail-send queues
its reports, and sendmail what local users inject, through qmail-dkim
(lib/qq.h QQ_SIGN) when it is installed, so a bounce whose From: domain
(MAILER-DAEMON@me) has a key, and a local user's message from that
domain, carry a DKIM-Signature that dkimpy verifies; a domain without a
key gets its mail unsigned, and queued all the same."""
import os, re, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for
import send_harness as sh
try:
    import dkim
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

t = T()
inst = sh.setup(t)
D = sh.DOMAIN
inst.control("me", D)
inst.control("bouncehost", D)
keys = inst.path("control", "dkim", D)
subprocess.run([inst.bin("qmail-dkimkey"), D, "b1", "ed25519"], capture_output=True, check=True)
record = open(os.path.join(keys, "b1.pub"), "rb").read().strip()
with open(os.path.join(keys, "selector"), "w") as f:
    f.write("b1\n")
os.chmod(os.path.join(keys, "selector"), 0o644)
os.chown(os.path.join(keys, "selector"), *inst.uid("dkim"))
log = inst.path("send.log")
open(log, "w").close()
sh.start(inst, log)


def bounces(user):
    return [m for _, m in sh.messages(inst, user) if b"MAILER-DAEMON@" in m.split(b"\n\n", 1)[0]]


def verifies(m):
    wire = m.replace(b"\n", b"\r\n")
    n = len(re.findall(rb"^DKIM-Signature:", m, re.M))
    d = dkim.DKIM(wire)
    return n > 0 and all(d.verify(idx=i, dnsfunc=lambda name, timeout=5: record
                                  if name == b"b1._domainkey.%s." % D.encode() else None)
                         for i in range(n))


inst.inject("alice@" + D, ["nobox@" + D], "From: alice@%s\nSubject: to nobody\n\nhello\n" % D)
t.check("the bounce reaches alice", wait_for(lambda: bounces("alice"), 30), sh.read_log(log)[-600:])
b = (bounces("alice") or [b""])[0]
t.check("it carries a DKIM-Signature for d=%s" % D,
        re.search(rb"^DKIM-Signature:.*d=%s;" % re.escape(D.encode()), b, re.M | re.S) is not None, b[:500])
t.check("which dkimpy verifies", verifies(b), b[:800])

# A local user's message, injected by sendmail with no QMAILQUEUE.
env = dict(os.environ)
env.pop("QMAILQUEUE", None)
r = subprocess.run([inst.bin("sendmail"), "-f", "carol@" + D, "alice@" + D],
                   input=b"From: carol@%s\nSubject: local\n\nsigned by default\n" % D.encode(), env=env,
                   capture_output=True, timeout=30)
t.check("sendmail: queued", r.returncode == 0, r.stderr)


def local_msgs():
    return [m for _, m in sh.messages(inst, "alice") if b"signed by default" in m]


t.check("sendmail's message reaches alice", wait_for(local_msgs, 30))
m = (local_msgs() or [b""])[0]
t.check("sendmail without QMAILQUEUE: signed (d=%s) and dkimpy verifies it" % D,
        b"DKIM-Signature:" in m and verifies(m), m[:600])

# Without a key for the bounce's domain: unsigned, delivered all the same.
os.rename(keys, keys + ".off")
inst.inject("bob@" + D, ["nobox@" + D], "From: bob@%s\nSubject: to nobody\n\nhello\n" % D)
t.check("no key: the bounce still reaches bob", wait_for(lambda: bounces("bob"), 30), sh.read_log(log)[-600:])
b = (bounces("bob") or [b""])[0]
t.check("and is unsigned", b and b"DKIM-Signature:" not in b, b[:300])
t.done()
