#!/usr/bin/env python3
"""Outbound TLS: qmail-remote's STARTTLS and control/tlspolicy against this
MTA's own qmail-tlsd + qmail-smtpd (certificates from a CA made here,
trusted through control/tlsca) and a plaintext sink without STARTTLS.
Names come from a dnsmasq zone; routes in control/smtproutes."""
import os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from remote_peers import Dns, Sink
from smtpd_harness import Queue
from tls_harness import CA, TlsServer, install_cert, received_header, run_remote, self_signed

t = T()
inst = Instance(t)
ca = CA(t)
good = ca.issue("mx.good.test", "rsa")
expired = ca.issue("mx.good.test", "ec", start="20200101000000Z", end="20200201000000Z")
selfsigned = self_signed(ca.dir, "mx.good.test")
install_cert(inst, *good)
srv = TlsServer(inst)
sink = Sink(t)                       # no STARTTLS
# Offers STARTTLS, answers the ClientHello with garbage (broken TLS).
broken = Sink(t, ext=["PIPELINING", "8BITMIME", "STARTTLS"], starttls=b"\x15\x03\x03\x00\x02\x02\x28junk\r\n")
q = Queue(inst)

dns = Dns(t, ["--host-record=mx.good.test,127.0.0.1", "--host-record=other.test,127.0.0.1",
              "--host-record=sink.test,127.0.0.1"])
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("helohost", "client.example.test")
inst.control("tlsca", open(ca.cert).read())
os.chmod(inst.path("control", "tlsca"), 0o644)
tls = "mx.good.test:%d" % srv.port
inst.control("smtproutes", [
    "may-tls.test:" + tls, "may-plain.test:sink.test:%d" % sink.port,
    "verify.test:" + tls, "badname.test:other.test:%d" % srv.port,
    "encrypt.test:" + tls, "encrypt-plain.test:sink.test:%d" % sink.port,
    "none.test:" + tls, "dane.test:" + tls, "may-broken.test:sink.test:%d" % broken.port,
    "encrypt-broken.test:sink.test:%d" % broken.port, "verify-broken.test:sink.test:%d" % broken.port])
inst.control("tlspolicy", ["verify.test:verify", "badname.test:verify", "encrypt.test:encrypt",
                           "encrypt-plain.test:encrypt", "none.test:none", "dane.test:dane",
                           "encrypt-broken.test:encrypt", "verify-broken.test:verify", ":may"])

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain):
    return run_remote(inst, domain, "rcpt@" + domain, b"Subject: tls\n\nhello\n", **user)


def received():
    return received_header(q)


code, text, err = remote("may-tls.test")
t.check("may, STARTTLS offered: delivered", code == "K", (code, text, err))
t.check("may: logged with version, suite and subject",
        re.search(r"qmail-remote event=tls ip=127\.0\.0\.1 host=mx\.good\.test policy=may result=ok "
                  r"version=TLS1\.2 cipher=ECDHE-RSA-\S+ subject=mx\.good\.test chain=unchecked", err), err)
t.check("may: the server saw TLS", "with ESMTPS (TLS1.2 cipher" in received())

n = len(sink.sessions)
code, text, err = remote("may-plain.test")
t.check("may, no STARTTLS: delivered in plaintext", code == "K" and len(sink.sessions) == n + 1
        and len(sink.sessions[-1].data) == 1, (code, text, err))
t.check("may, no STARTTLS: no TLS attempted", "event=tls " not in err, err)

# may, STARTTLS offered but broken: at once again in plaintext, on a new
# connection, and logged; never under encrypt or verify.
n = len(broken.sessions)
code, text, err = remote("may-broken.test")
s = broken.sessions[n:]
t.check("may, broken STARTTLS: delivered", code == "K", (code, text, err))
t.check("may, broken STARTTLS: a second connection, in plaintext, carried the mail",
        len(s) == 2 and "STARTTLS" in s[0].commands and not s[0].data
        and "STARTTLS" not in s[1].commands and len(s[1].data) == 1, [x.commands for x in s])
t.check("may, broken STARTTLS: the fallback logged",
        re.search(r"qmail-remote event=tls_fallback ip=127\.0\.0\.1 host=sink\.test reason=", err), err)
for pol in ("encrypt", "verify"):
    n = len(broken.sessions)
    code, text, err = remote(pol + "-broken.test")
    s = broken.sessions[n:]
    t.check("%s, broken STARTTLS: deferred, never plaintext" % pol,
            code == "Z" and len(s) == 1 and not s[0].data and "tls_fallback" not in err, (code, text, err))

code, text, err = remote("verify.test")
t.check("verify, good chain and name: delivered", code == "K", (code, text, err))
t.check("verify: chain verified in the log", "policy=verify result=ok" in err and "chain=verified" in err, err)
received()

code, text, err = remote("badname.test")
t.check("verify, wrong name: deferred", code == "Z" and "does not match the host name" in text, (code, text))
t.check("verify, wrong name: nothing delivered", q.new() == [])

code, text, err = remote("none.test")
t.check("none: delivered without TLS", code == "K" and "event=tls " not in err, (code, text, err))
r = received()
t.check("none: the server saw plaintext ESMTP", "with ESMTP;" in r, r)

code, text, err = remote("dane.test")
t.check("dane, no signed answer (dnsmasq): may, delivered", code == "K", (code, text, err))
t.check("dane, no signed answer: why logged",
        re.search(r"event=tls_policy host=mx\.good\.test policy=dane tls=may why=addr-insecure", err), err)
received()

n = len(sink.sessions)
code, text, err = remote("encrypt-plain.test")
t.check("encrypt, no STARTTLS offered: deferred", code == "Z" and "STARTTLS not offered" in text, (code, text))
t.check("encrypt, no STARTTLS: no MAIL sent in plaintext",
        len(sink.sessions) == n + 1 and not any(c.upper().startswith("MAIL") for c in sink.sessions[-1].commands),
        sink.sessions[-1].commands if len(sink.sessions) > n else "no session")

install_cert(inst, *expired)
code, text, err = remote("verify.test")
t.check("verify, expired certificate: deferred", code == "Z" and "expired" in text, (code, text))
code, text, err = remote("encrypt.test")
t.check("encrypt, expired certificate: delivered (not checked)", code == "K", (code, text, err))
received()

install_cert(inst, *selfsigned)
code, text, err = remote("verify.test")
t.check("verify, self-signed certificate: deferred", code == "Z" and "not trusted" in text, (code, text))
code, text, err = remote("may-tls.test")
t.check("may, self-signed certificate: delivered over TLS", code == "K" and "result=ok" in err, (code, text, err))
received()
install_cert(inst, *good)

inst.control("tlspolicy", ["verify.test:bogus"])
code, text, err = remote("verify.test")
t.check("a malformed tlspolicy defers", code == "Z" and "tlspolicy" in text, (code, text))

t.done()
