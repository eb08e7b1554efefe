#!/usr/bin/env python3
"""qmail-remote against hostile peers and configurations: envelope
addresses that would break the SMTP path (parameter injection), a DNS
server whose every answer is truncated, TLS verify to an address literal,
MX records pointing at this host or at loopback, a mail loop, and a
tarpit server (stage deadlines)."""
import os, re, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, free_port
from remote_peers import Dns, Sink, TruncatingDns, remote_reports, sessions
from tls_harness import CA

t = T()
inst = Instance(t)
inst.control("helohost", "client.example.test")

def remote(domain, rcpts, **kw):
    """remote_reports for this instance."""
    return remote_reports(inst, domain, rcpts, **kw)


# --- ESMTP parameter injection through the envelope -----------------------------
sink = Sink(t, ext=["PIPELINING", "SIZE 1000000", "8BITMIME", "DSN"])
inst.control("smtproutes", "inject.test:127.0.0.1:%d" % sink.port)
new = sessions(sink)
r, m, _ = remote("inject.test", ["u@inject.test> NOTIFY=NEVER", "ok@inject.test", "v@inject.test\r\nRSET"])
s = new()
t.check("recipient with ' ' or '>': permanent, with the reason, never sent",
        r[0][0] == "h" and r[0][1].startswith("rcpt: u@inject.test> NOTIFY=NEVER: cannot be sent") and
        "5.1.3" in r[0][1], r)
t.check("recipient with CR LF: permanent", r[2][0] == "h" and "5.1.3" in r[2][1], r)
t.check("the good recipient still delivered", r[1][0] == "r" and m[0] == "K", (r, m))
cmds = [c for x in s for c in x.commands]
t.check("only the good recipient on the wire", [c for c in cmds if c.startswith("RCPT")] == ["RCPT TO:<ok@inject.test>"]
        and not any("NOTIFY" in c or c == "RSET" for c in cmds), cmds)
new = sessions(sink)
r, m, _ = remote("inject.test", ["u@inject.test"], sender="a@example.test> RET=FULL ENVID=x")
t.check("sender with ' ' or '>': permanent for all, nothing sent",
        r[0][0] == "h" and m[0] == "D" and r[0][1].startswith("mail: a@example.test> RET=FULL ENVID=x: cannot be sent")
        and new() == [], (r, m))
new = sessions(sink)
r, m, _ = remote("inject.test", ["<u@inject.test"])
t.check("recipient with '<': permanent, no session", r[0][0] == "h" and new() == [], r)

# --- a DNS server whose answers are always truncated ------------------------------
inst.control("smtproutes", "")
for rcode, what in ((3, "NXDOMAIN"), (0, "no records")):
    tdns = TruncatingDns(t, rcode=rcode)
    inst.control("dnsserver", "127.0.0.1:%d" % tdns.port)
    r, m, _ = remote("trunc.test", ["u@trunc.test"])
    t.check("truncated %s over UDP and TCP: the resolver tried TCP" % what,
            any(p == "tcp" for p, _ in tdns.queries), tdns.queries)
    t.check("truncated %s over UDP and TCP: deferred, never bounced" % what,
            r[0][0] == "s" and m[0] == "Z" and r[0][1].startswith("dns:"), (r, m))
    tdns.close()
os.unlink(inst.path("control", "dnsserver"))

# --- TLS verify to an address literal ----------------------------------------------
ca = CA(t)
cert, key = ca.issue("somebody-else.test", "ec")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
PW = "literal-secret"
tls = Sink(t, tls=ctx, ext=["PIPELINING", "AUTH PLAIN LOGIN"], auth={"app": PW})
inst.control("tlsca", open(ca.cert).read())
os.chmod(inst.path("control", "tlsca"), 0o644)
inst.control("smtpauth", "*:app:" + PW)
if IS_ROOT and inst.multi:
    os.chown(inst.path("control", "smtpauth"), *inst.uid("remote"))
os.chmod(inst.path("control", "smtpauth"), 0o400)
inst.control("smtproutes", ":[127.0.0.1]:%d tls=implicit" % tls.port)
new = sessions(tls)
r, m, _ = remote("far.test", ["u@far.test"])
t.check("AUTH over verify to [127.0.0.1]: deferred with the reason",
        r[0][0] == "s" and "needs a host name" in r[0][1] and r[0][1].startswith("auth:"), r)
t.check("AUTH over verify to [127.0.0.1]: no connection, no password", new() == [] and tls.sessions == [],
        [x.auth for x in tls.sessions])
os.unlink(inst.path("control", "smtpauth"))
inst.control("tlspolicy", ":verify")
inst.control("smtproutes", ":127.0.0.1:%d tls=implicit" % tls.port)
r, m, _ = remote("far.test", ["u@far.test"])
t.check("tlspolicy verify to a literal relay: deferred", r[0][0] == "s" and "needs a host name" in r[0][1], r)
inst.control("smtproutes", ":127.0.0.1:%d tls=implicit verify=no" % tls.port)
r, m, _ = remote("far.test", ["u@far.test"])
t.check("verify=no to a literal relay: encrypted, delivered", m[0] == "K", (r, m))
os.unlink(inst.path("control", "tlspolicy"))
inst.control("smtproutes", "")

# --- MX or A pointing at this host or at loopback --------------------------------
def my_address():
    """A global IPv4 address of one of this host's interfaces, or None."""
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=10).stdout.decode()
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else None


port = free_port()
mxsink = Sink(t, "127.0.0.1", port)
me = my_address()
records = [
    "--mx-host=loop.test,mx.loop.test,10",
    "--host-record=mx.loop.test,127.0.0.1",
    "--host-record=zero.test,0.0.0.0",                   # implicit MX, unspecified
    "--mx-host=v6loop.test,mx.v6loop.test,10",
    "--host-record=mx.v6loop.test,::1",
]
if me:
    records += [
        "--mx-host=backup.test,peer.backup.test,10",     # a peer, then this host
        "--mx-host=backup.test,me.backup.test,20",
        "--host-record=peer.backup.test,127.0.0.1",
        "--host-record=me.backup.test,%s" % me,
        "--mx-host=best.test,me.best.test,10",           # this host first, a peer behind it
        "--mx-host=best.test,peer.best.test,20",
        "--host-record=me.best.test,%s" % me,
        "--host-record=peer.best.test,127.0.0.1",
    ]
dns = Dns(t, records)
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("smtpport", str(port))
for dom in ("loop.test", "zero.test", "v6loop.test"):
    new = sessions(mxsink)
    r, m, _ = remote(dom, ["u@" + dom])
    t.check("%s: MX/A at loopback or unspecified: permanent 5.4.6, no connection" % dom,
            r[0][0] == "h" and "5.4.6" in r[0][1] and r[0][1].startswith("dns: " + dom) and new() == [], (r, m))
new = sessions(mxsink)
r, m, _ = remote("[127.0.0.1]", ["u@[127.0.0.1]"])
t.check("domain literal [127.0.0.1]: permanent 5.4.6, no connection",
        r[0][0] == "h" and "5.4.6" in r[0][1] and new() == [], (r, m))
inst.control("dnsloopback", "1")
new = sessions(mxsink)
r, m, _ = remote("[127.0.0.1]", ["u@[127.0.0.1]"])
t.check("control/dnsloopback 1: domain literal [127.0.0.1] delivered", m[0] == "K" and len(new()) == 1, (r, m))
new = sessions(mxsink)
r, m, _ = remote("loop.test", ["u@loop.test"])
t.check("control/dnsloopback 1: loopback MX used (tests)", m[0] == "K" and len(new()) == 1, (r, m))
if me:
    new = sessions(mxsink)
    r, m, _ = remote("best.test", ["u@best.test"])
    t.check("best MX is this host (%s): permanent 5.4.6, the worse peer not tried" % me,
            r[0][0] == "h" and "5.4.6" in r[0][1] and new() == [], (r, m))
    inst.control("smtproutes", "backup.test:")
    new = sessions(mxsink)
    r, m, _ = remote("backup.test", ["u@backup.test"])
    t.check("a better peer than this host: delivered to it", m[0] == "K" and len(new()) == 1, (r, m))
    mxsink.close()
    r, m, _ = remote("backup.test", ["u@backup.test"])
    t.check("the better peer down: deferred, this host (worse MX) never tried",
            r[0][0] == "s" and "127.0.0.1" in r[0][1] and me not in r[0][1], (r, m))
    inst.control("smtproutes", "")
else:
    t.skip("MX naming this host's interface address", "no global IPv4 address")
os.unlink(inst.path("control", "dnsloopback"))

# --- a mail loop: the hop count --------------------------------------------------
hopsink = Sink(t)
inst.control("smtproutes", "hops.test:127.0.0.1:%d" % hopsink.port)
for n, want in ((49, "r"), (50, "h")):
    new = sessions(hopsink)
    msg = b"".join(b"Received: from hop%d\n" % i for i in range(n - 1)) + b"Delivered-To: x@hops.test\nSubject: loop\n\nbody\n"
    r, m, _ = remote("hops.test", ["u@hops.test"], message=msg)
    t.check("%d Received:/Delivered-To: lines: %s" % (n, "sent" if want == "r" else "permanent 5.4.6, not sent"),
            r[0][0] == want and (want == "r" and len(new()) == 1 or
                                 "5.4.6" in r[0][1] and "loop" in r[0][1] and new() == []), r)
inst.control("smtproutes", "")

t.done()
