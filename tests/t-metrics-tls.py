#!/usr/bin/env python3
"""The TLS counters, the resident listener's sessions and the refusals
that need DNS (lib/metrics.h, qmail-metrics(8)): inbound STARTTLS and
implicit TLS, ok and failed,
through qmail-tlsd under tcpserver; sessions forked by qmail-smtpd-listen
(which maps the counters once, before its spares); outbound TLS by policy
and outcome from qmail-remote as the remote uid against sinks with real,
broken and no STARTTLS; a DNSBL-listed client and a sender failing SPF
(dnsmasq on loopback); a message the queue stage refuses for DMARC; a client over the
listener's session limit. Each counter moves by exactly what was done.

Root only (the counter files are the writers' uids')."""
import os, smtplib, socket, ssl, subprocess, sys, time
from harness import T, IS_ROOT, Instance, wait_for
from remote_peers import Dns, Sink
from smtpd_harness import Server
from tls_harness import TlsServer, install_cert, run_remote, self_signed
from metrics_harness import scrape as scrape_inst, values

t = T()
if not IS_ROOT:
    t.skip("metrics", "needs root: separate uids")
    t.done()

inst = Instance(t)
certdir = inst.path("certs")
os.mkdir(certdir)
cert, key = self_signed(certdir, "mail.example.test")
install_cert(inst, cert, key)


def scrape():
    return values(scrape_inst(inst)[1])


def v(vals, name, **labels):
    return vals.get((name, tuple(sorted(labels.items()))), 0)


def steady():
    """A scrape once the counters have stopped moving (the servers' port
    probes are sessions too, and end on their own time)."""
    last = scrape()
    for _ in range(40):
        time.sleep(0.5)
        now = scrape()
        if now == last:
            return now
        last = now
    return last


starttls = TlsServer(inst)
implicit = TlsServer(inst, implicit=True, name="smtps")
su, sg = inst.uid("smtpd")
listen = Server(inst, listener=["-u", str(su), "-g", str(sg)], name="listen")
# A listener for one session at a time: its parent answers the next 421.
one = Server(inst, listener=["-u", str(su), "-g", str(sg), "-c", "1"], name="one")
# A queue stage that refuses as qmail-verify does under DMARC p=reject.
dmarc_qq = inst.path("dmarc-refuses")
with open(dmarc_qq, "w") as f:
    f.write("#!/bin/sh\ncat >/dev/null; cat <&1 >/dev/null; exit 32\n")
os.chmod(dmarc_qq, 0o755)
dmarc = Server(inst, env={"QMAILQUEUE": dmarc_qq}, name="dmarc")
base = steady()

ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

# Inbound: one STARTTLS ok, one STARTTLS failed, one implicit ok.
with smtplib.SMTP("127.0.0.1", starttls.port, timeout=20) as s:
    s.ehlo("client.test")
    s.starttls(context=ctx)
    code, _ = s.ehlo("client.test")
t.check("STARTTLS through qmail-tlsd", code == 250, code)
c = starttls.connect()
c.cmd("EHLO client.test")
code, _ = c.cmd("STARTTLS")
c.send(b"\x16\x03\x01\x00\x05junk!" + b"x" * 64)
t.check("a broken handshake after STARTTLS ends the session", code == 220 and c.closed(20), code)
c.close()
raw = socket.create_connection(("127.0.0.1", implicit.port), 20)
tls = ctx.wrap_socket(raw)
tls.settimeout(20)
greeting = tls.recv(512)
tls.sendall(b"QUIT\r\n")
tls.recv(512)
tls.close()
t.check("implicit TLS greeting", greeting.startswith(b"220"), greeting)

# Three sessions forked by qmail-smtpd-listen.
for i in range(3):
    c = listen.connect()
    code, _ = c.cmd("EHLO client.test")
    c.cmd("QUIT")
    c.close()
    t.check("listener session %d" % i, code == 250, code)

# Outbound, as the remote uid: real STARTTLS, broken STARTTLS (then the
# same host again in plaintext, policy none), and no STARTTLS.
sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
sctx.load_cert_chain(cert, key)
good = Sink(t, ext=["PIPELINING", "8BITMIME", "STARTTLS"], starttls=sctx)
broken = Sink(t, ext=["PIPELINING", "8BITMIME", "STARTTLS"], starttls=b"\x15\x03\x03\x00\x02\x02\x28junk\r\n")
plain = Sink(t)
inst.control("smtproutes", ["good.test:127.0.0.1:%d" % good.port, "broken.test:127.0.0.1:%d" % broken.port,
                            "plain.test:127.0.0.1:%d" % plain.port])
inst.control("tlspolicy", [":may"])
ru, rg = inst.uid("remote")
for dom in ("good.test", "broken.test", "plain.test"):
    code, text, err = run_remote(inst, dom, "rcpt@" + dom, b"Subject: tls\n\nhello\n",
                                 user=ru, group=rg, extra_groups=[])
    t.check("qmail-remote to %s: delivered" % dom, code == "K", (code, text, err))

# Refusals that need DNS: a client on a DNSBL (from 127.0.0.4), a sender
# whose SPF fails under spfpolicy fail=reject.
dns = Dns(t, ["--host-record=4.0.0.127.bl.test,127.0.0.2", "--txt-record=spf-fail.test,v=spf1 -all"])
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("dnsbl", "bl.test")
inst.control("spfpolicy", "fail=reject")
s = socket.create_connection(("127.0.0.1", listen.port), 20, source_address=("127.0.0.4", 0))
s.settimeout(20)
greeting = s.recv(512)
s.close()
t.check("a listed client is refused at the greeting", greeting.startswith(b"554"), greeting)
c = listen.connect()
c.cmd("EHLO client.test")
code, _ = c.cmd("MAIL FROM:<a@spf-fail.test>")
c.cmd("QUIT")
c.close()
t.check("a sender failing SPF is refused", code == 550, code)

c = dmarc.connect()
c.transaction("a@example.test", ["postmaster"])
c.cmd("DATA")
code, _ = c.cmd("From: a@example.test\r\nSubject: d\r\n\r\nd\r\n.")
c.cmd("QUIT")
c.close()
t.check("a message the queue stage refuses for DMARC (exit 32): 550", code == 550, code)

c1 = one.connect()
t.check("the one session of a -c 1 listener", c1.greeting[0] == 220, c1.greeting)
c2 = one.connect()
t.check("the next client is answered 421 by the listener", c2.greeting[0] == 421, c2.greeting)
c2.close()
c1.cmd("QUIT")
c1.close()

now = steady()
expect = [
    ("qmail_smtp_refused_total", {"reason": "limits"}, 1),
    ("qmail_smtp_refused_total", {"reason": "dmarc"}, 1),
    ("qmail_smtp_messages_accepted_total", {}, 0),
    ("qmail_smtp_refused_total", {"reason": "dnsbl"}, 1),
    ("qmail_smtp_refused_total", {"reason": "spf"}, 1),
    ("qmail_tls_in_sessions_total", {"mode": "starttls", "result": "ok"}, 1),
    ("qmail_tls_in_sessions_total", {"mode": "starttls", "result": "failed"}, 1),
    ("qmail_tls_in_sessions_total", {"mode": "implicit", "result": "ok"}, 1),
    ("qmail_tls_in_sessions_total", {"mode": "implicit", "result": "failed"}, 0),
    ("qmail_smtp_sessions_total", {}, 3 + 3 + 2 + 1 + 1),
    ("qmail_tls_out_sessions_total", {"policy": "may", "result": "ok"}, 1),
    ("qmail_tls_out_sessions_total", {"policy": "may", "result": "failed"}, 1),
    ("qmail_tls_out_sessions_total", {"policy": "may", "result": "plaintext"}, 1),
    ("qmail_tls_out_sessions_total", {"policy": "none", "result": "plaintext"}, 1),
    ("qmail_tls_out_sessions_total", {"policy": "verify", "result": "ok"}, 0),
]
for name, labels, want in expect:
    got = v(now, name, **labels) - v(base, name, **labels)
    t.check("%s%s moved by %d" % (name, labels or "", want), got == want, got)
t.done()
