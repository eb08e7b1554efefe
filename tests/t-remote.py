#!/usr/bin/env python3
"""qmail-remote against real peers on loopback: a dnsmasq serving a
generated zone (MX preferences, null MX, AAAA-only host, CNAME chain,
SERVFAIL, NXDOMAIN) and Python SMTP sinks that accept, defer, reject, drop
or never answer. The DATA that reaches a sink is checked byte for byte.

MX deliveries go to control/smtpport (default 25; the test sets the sinks'
port), routes in control/smtproutes carry their own ports."""
import os, socket, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, free_port
from remote_peers import Dns, Sink, remote_reports, sessions

t = T()
inst = Instance(t)
port = free_port()

# Two sinks on the same port, on 127.0.0.1 and ::1; 127.0.0.2 refuses.
good = Sink(t, "127.0.0.1", port)
good6 = Sink(t, "::1", port)

dns = Dns(t, [
    "--mx-host=multi.test,mx1.multi.test,10",
    "--mx-host=multi.test,mx2.multi.test,20",
    "--host-record=mx1.multi.test,127.0.0.2",       # nothing listens there
    "--host-record=mx2.multi.test,127.0.0.1",
    "--mx-host=nullmx.test,.,0",
    "--host-record=v6only.test,::1",                  # implicit MX, AAAA only
    "--host-record=plain.test,127.0.0.1",             # implicit MX, A only
    "--cname=alias.test,alias2.test",
    "--cname=alias2.test,mx2.multi.test",             # CNAME chain
    "--mx-host=ghostmx.test,ghost.test,10",           # MX without an address
    "--mx-host=eq.test,a.eq.test,10",
    "--mx-host=eq.test,b.eq.test,10",
    "--host-record=a.eq.test,127.0.0.1",
    "--host-record=b.eq.test,::1",
], forward=["fail.test"])
t.check("dnsmasq answers", dns.ok)

inst.control("smtpport", str(port))
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("dnsloopback", "1")    # the MX hosts here are on loopback
inst.control("helohost", "client.example.test")

def remote(domain, rcpts, **kw):
    """remote_reports for this instance."""
    return remote_reports(inst, domain, rcpts, **kw)


# --- delivery, fallback to the next MX --------------------------------------
new = sessions(good)
r, m, _ = remote("multi.test", ["u@multi.test"])
t.check("MX delivery: accepted", r == [("r", r[0][1])] and m[0] == "K" and r[0][1].startswith("ok: 127.0.0.1 said: 250"), (r, m))
s = new()
t.check("MX delivery: the second MX got it after the first refused", len(s) == 1 and len(s[0].data) == 1, s)
t.check("MX delivery: EHLO with helohost", s and s[0].commands[0] == "EHLO client.example.test", s and s[0].commands)
t.check("MX delivery: wire data", s and s[0].data == [b"Subject: hi\r\n\r\nhello\r\n.\r\n"], s and s[0].data)
t.check("MX delivery: SIZE, no BODY for 7-bit", s and s[0].commands[1] == "MAIL FROM:<a@example.test> SIZE=22", s and s[0].commands)

# --- CNAME chain, implicit MX, AAAA only ------------------------------------
new = sessions(good)
r, m, _ = remote("alias.test", ["u@alias.test"])
t.check("CNAME chain followed", m[0] == "K" and len(new()) == 1, (r, m))
new = sessions(good)
r, m, _ = remote("plain.test", ["u@plain.test"])
t.check("implicit MX (A record)", m[0] == "K" and len(new()) == 1, (r, m))
new6 = sessions(good6)
r, m, _ = remote("v6only.test", ["u@v6only.test"])
t.check("implicit MX, AAAA-only host over IPv6", m[0] == "K" and len(new6()) == 1 and "::1" in r[0][1], (r, m))

# Equal preferences: both hosts get used over a few deliveries.
n4, n6 = sessions(good), sessions(good6)
for i in range(16):
    remote("eq.test", ["u@eq.test"])
t.check("equal MX preferences are shuffled", len(n4()) > 0 and len(n6()) > 0, (len(n4()), len(n6())))

# --- DNS failures -------------------------------------------------------------
r, m, _ = remote("nullmx.test", ["u@nullmx.test"])
t.check("null MX: permanent", r[0][0] == "h" and m[0] == "D" and "5.1.10" in r[0][1] and r[0][1].startswith("dns:"), (r, m))
r, m, _ = remote("nosuch.test", ["u@nosuch.test"])
t.check("NXDOMAIN: permanent", r[0][0] == "h" and m[0] == "D" and r[0][1].startswith("dns:"), (r, m))
r, m, _ = remote("fail.test", ["u@fail.test"])
t.check("SERVFAIL: temporary, never permanent", r[0][0] == "s" and m[0] == "Z" and r[0][1].startswith("dns:"), (r, m))
r, m, _ = remote("ghostmx.test", ["u@ghostmx.test"])
t.check("MX host without address: permanent", r[0][0] == "h" and r[0][1].startswith("dns:"), (r, m))

# --- SMTP replies ---------------------------------------------------------------
def route(sink, host="127.0.0.1"):
    inst.control("smtproutes", "routed.test:%s:%d" % (host, sink.port))


defer = Sink(t, mail="451 4.3.0 try later")
route(defer)
r, m, _ = remote("routed.test", ["u@routed.test", "v@routed.test"])
t.check("4xx on MAIL: temporary for all, with text",
        [x[0] for x in r] == ["s", "s"] and m[0] == "Z" and "451 4.3.0 try later" in r[1][1] and r[0][1].startswith("mail:"), (r, m))

reject = Sink(t, rcpt=lambda a: "550 5.1.1 <%s> unknown" % a if a.startswith("bad") else "250 ok")
route(reject)
new = sessions(reject)
r, m, _ = remote("routed.test", ["good@routed.test", "bad@routed.test", "good2@routed.test"])
t.check("one recipient refused, others accepted",
        [x[0] for x in r] == ["r", "h", "r"] and m[0] == "K" and r[1][1] == "rcpt: 127.0.0.1 said: 550 5.1.1 <bad@routed.test> unknown", (r, m))
s = new()
t.check("all recipients in one transaction, pipelined", len(s) == 1 and len(s[0].data) == 1 and
        [c[:4] for c in s[0].commands] == ["EHLO", "MAIL", "RCPT", "RCPT", "RCPT", "DATA", "QUIT"], s and s[0].commands)

multi = Sink(t, rcpt=lambda a: "550-5.7.1 first line\r\n550-second line\r\n550 5.7.1 last line")
route(multi)
r, m, _ = remote("routed.test", ["u@routed.test"])
t.check("5xx with multi-line text: permanent, all lines kept",
        r[0][0] == "h" and r[0][1] == "rcpt: 127.0.0.1 said: 550-5.7.1 first line\n550-second line\n550 5.7.1 last line", r)

perm = Sink(t, end="554 5.6.0 content rejected")
route(perm)
r, m, _ = remote("routed.test", ["u@routed.test"])
t.check("5xx after the message: permanent", r[0][0] == "h" and "554 5.6.0 content rejected" in r[0][1] and r[0][1].startswith("data:"), r)

f421 = Sink(t, rcpt=lambda a: "421 4.3.2 shutting down" if a.startswith("b") else "250 ok")
route(f421)
r, m, _ = remote("routed.test", ["a@routed.test", "b@routed.test", "c@routed.test"])
t.check("421 anywhere: temporary for all", [x[0] for x in r] == ["s", "s", "s"] and m[0] == "Z", r)

g421 = Sink(t, greeting="421 too busy")
route(g421)
r, m, _ = remote("routed.test", ["a@routed.test"])
t.check("421 greeting: temporary, tagged connect", r[0][0] == "s" and r[0][1].startswith("connect: 127.0.0.1 said: 421 too busy"), r)

helo = Sink(t, ehlo=False)
route(helo)
new = sessions(helo)
r, m, _ = remote("routed.test", ["u@routed.test"])
s = new()
t.check("HELO fallback, no pipelining without EHLO", m[0] == "K" and s and
        [c[:4] for c in s[0].commands] == ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT"] and
        s[0].commands[2] == "MAIL FROM:<a@example.test>", s and s[0].commands)

drop = Sink(t, drop_data=10)
route(drop)
r, m, _ = remote("routed.test", ["u@routed.test"], message=b"x" * 5000 + b"\n")
t.check("connection dropped mid-DATA: temporary", r[0][0] == "s" and m[0] == "Z" and r[0][1].startswith("data:"), r)

silent = Sink(t, silent=True)
route(silent)
inst.control("timeoutremote", "1")
r, m, secs = remote("routed.test", ["u@routed.test"])
t.check("server that never answers: timeout, temporary, connect tag",
        r[0][0] == "s" and "timed out" in r[0][1] and r[0][1].startswith("connect:") and secs < 10, (r, secs))
os.unlink(inst.path("control", "timeoutremote"))

down = free_port()
inst.control("smtproutes", "routed.test:127.0.0.1:%d" % down)
r, m, _ = remote("routed.test", ["u@routed.test"])
t.check("server down: temporary, connect tag", r[0][0] == "s" and r[0][1].startswith("connect: 127.0.0.1: Connection refused"), r)

# --- routes ---------------------------------------------------------------------
smart = Sink(t, "::1")
inst.control("smtproutes", ["nosuch.test:", ":[::1]:%d" % smart.port])
new = sessions(smart)
r, m, _ = remote("anything.test", ["u@anything.test"])
t.check("default route to an IPv6 smarthost", m[0] == "K" and len(new()) == 1, r)
r, m, _ = remote("nosuch.test", ["u@nosuch.test"])
t.check("empty relay is an exception that uses the MX", m[0] == "D" and r[0][1].startswith("dns:"), r)
inst.control("smtproutes", [".sub.test:127.0.0.1:%d" % good.port, ":127.0.0.1:%d" % down])
new = sessions(good)
r, m, _ = remote("deep.sub.test", ["u@deep.sub.test"])
t.check("wildcard route", m[0] == "K" and len(new()) == 1, r)
inst.control("smtproutes", ":nosuch.test:%d" % good.port)
r, m, _ = remote("x.test", ["u@x.test"])
t.check("smarthost without address: temporary, never permanent", r[0][0] == "s", r)
inst.control("smtproutes", "")

# --- DATA transparency, byte for byte ---------------------------------------------
route(good)
cases = [
    (b"a\r.\nQUIT\n", b"a\r\n..\r\nQUIT\r\n.\r\n"),          # lone CR then dot
    (b"x\r.\r\nRSET\r\n", b"x\r\n..\r\nRSET\r\n.\r\n"),
    (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"..two\n.\n", b"...two\r\n..\r\n.\r\n"),
    (b"no final newline", b"no final newline\r\n.\r\n"),
    (b"ends with CR\r", b"ends with CR\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"", b".\r\n"),
]
for i, (msg, want) in enumerate(cases):
    new = sessions(good)
    r, m, _ = remote("routed.test", ["u@routed.test"], message=msg)
    s = new()
    t.check("wire bytes %d %r" % (i, msg), m[0] == "K" and len(s) == 1 and s[0].data == [want],
            (r, s and s[0].data))

new = sessions(good)
msg = b"Subject: caf\xc3\xa9\n\n\xe9t\xe9\n"
r, m, _ = remote("routed.test", ["u@routed.test"], message=msg)
s = new()
t.check("8-bit message: BODY=8BITMIME and bytes intact",
        m[0] == "K" and s and s[0].commands[1] == "MAIL FROM:<a@example.test> SIZE=%d BODY=8BITMIME" % (len(msg) + 3) and
        s[0].data == [msg.replace(b"\n", b"\r\n") + b".\r\n"], s and (s[0].commands, s[0].data))

big = b"".join(b"line %d %s\n" % (i, b"." * (i % 3)) for i in range(20000))
big += b".starts with a dot\n"
new = sessions(good)
r, m, _ = remote("routed.test", ["u@routed.test"], message=big)
s = new()
want = big.replace(b"\n", b"\r\n").replace(b"\r\n.", b"\r\n..") + b".\r\n"
t.check("large message (several chunks) intact", m[0] == "K" and s and s[0].data == [want], len(s and s[0].data[0] or b""))

new = sessions(good)
r, m, _ = remote("routed.test", ["u@routed.test"], sender="")
s = new()
t.check("null sender", m[0] == "K" and s and s[0].commands[1].startswith("MAIL FROM:<> "), s and s[0].commands)

# --- outgoingip, SMTPUTF8, connect timeout -------------------------------------------
inst.control("outgoingip", "127.0.0.5")
new = sessions(good)
r, m, _ = remote("routed.test", ["u@routed.test"])
s = new()
t.check("outgoingip: connects from that address", m[0] == "K" and s and s[0].peer == "127.0.0.5", s and s[0].peer)
os.unlink(inst.path("control", "outgoingip"))

r, m, _ = remote("routed.test", ["j\u00fcrgen@routed.test"])
t.check("UTF-8 address to a server without SMTPUTF8: permanent, 5.6.7",
        r[0][0] == "h" and "5.6.7" in r[0][1] and r[0][1].startswith("mail:"), r)
utf = Sink(t, ext=["PIPELINING", "8BITMIME", "SMTPUTF8"])
route(utf)
new = sessions(utf)
r, m, _ = remote("routed.test", ["j\u00fcrgen@routed.test"])
s = new()
t.check("UTF-8 address with SMTPUTF8", m[0] == "K" and s and s[0].commands[1] == "MAIL FROM:<a@example.test> SMTPUTF8"
        and s[0].commands[2] == "RCPT TO:<j\u00fcrgen@routed.test>", s and s[0].commands)

# A listener whose accept queue is full drops new connections' SYNs.
full = socket.socket()
full.bind(("127.0.0.1", 0))
full.listen(0)
fillers = []
for i in range(4):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(full.getsockname())
    except BlockingIOError:
        pass
    fillers.append(c)
t.cleanups.append(lambda: [c.close() for c in fillers + [full]])
time.sleep(0.2)
inst.control("smtproutes", "routed.test:127.0.0.1:%d" % full.getsockname()[1])
inst.control("timeoutconnect", "1")
r, m, secs = remote("routed.test", ["u@routed.test"])
t.check("connect timeout: temporary, connect tag, prompt",
        r[0][0] == "s" and r[0][1] == "connect: 127.0.0.1: connection timed out" and secs < 5, (r, secs))
os.unlink(inst.path("control", "timeoutconnect"))

t.done()
