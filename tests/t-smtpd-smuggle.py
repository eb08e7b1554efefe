"""qmail-smtpd and bad input: the SMTP smuggling battery (bare LF, bare CR,
"\\n.\\n", "\\r.\\n", "\\n.\\r\\n", NUL, overlong lines), command-line
limits, databytes, timeouts, the session cap, disconnects mid-DATA and
mid-BDAT, and the bad-command limit. Each case asserts the exact reply,
that the session stays in step, and that nothing reached the queue."""
import os, socket, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for
from smtpd_harness import Server, Queue

t = T()
inst = Instance(t, control={"rcpthosts": "example.test", "databytes": "5000",
                            "timeoutsmtpd": "10"})
srv = Server(inst)
q = Queue(inst)


def session():
    c = srv.connect()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<s@client.test>")
    c.cmd("RCPT TO:<u@example.test>")
    return c


def quiet(c, wait=0.3):
    """True when the server sent nothing more."""
    c.s.settimeout(wait)
    try:
        d = c.s.recv(1024)
        return not d and not c.buf
    except socket.timeout:
        return not c.buf


SMUGGLE = [
    ("\\n.\\n", b"a\n.\nMAIL FROM:<x@evil.test>\nRCPT TO:<y@evil.test>\nDATA\nsmuggled\n.\n"),
    ("\\r\\n.\\n", b"a\r\n.\nRCPT TO:<y@evil.test>\r\n"),
    ("\\n.\\r\\n", b"a\n.\r\nRCPT TO:<y@evil.test>\r\n"),
    ("\\r.\\r\\n", b"a\r.\r\nRCPT TO:<y@evil.test>\r\n"),
    ("\\r\\n.\\r", b"a\r\n.\rRCPT TO:<y@evil.test>\r\n"),
    ("\\r.\\r", b"a\r.\rRCPT TO:<y@evil.test>\r\n"),
    ("\\r.\\n", b"a\r.\nRCPT TO:<y@evil.test>\r\n"),
    ("\\n\\n.\\n\\n", b"a\n\n.\n\nRCPT TO:<y@evil.test>\r\n"),
    ("bare LF in a header", b"Subject: x\nBcc: y@evil.test\r\n\r\nbody\r\n"),
    ("bare CR in a header", b"Subject: x\rBcc: y@evil.test\r\n\r\nbody\r\n"),
    ("bare CR before CRLF", b"a\r\r\nb\r\n"),
    ("NUL", b"a\0b\r\n"),
    ("line of 1001 octets", b"x" * 999 + b"\r\n"),
    ("line of 5000 octets", b"y" * 4990 + b"\r\n"),
]
for name, payload, in SMUGGLE:
    c = session()
    c.cmd("DATA")
    c.send(payload + b"\r\n.\r\nNOOP\r\n")
    r1 = c.reply()
    r2 = c.reply()
    ok = r1[0] == 554 and r1[1].startswith("5.6.0") and r2[0] == 250 and quiet(c)
    t.check("smuggling %s: one 554 5.6.0, then in step" % name, ok, (r1, r2))
    c.close()
t.check("smuggling battery: nothing reached the queue", q.new() == [])

# The same through BDAT: refused, nothing queued.
for name, payload in (("bare LF", b"a\nb\r\n"), ("bare CR", b"a\rb\r\n"), ("NUL", b"a\0\r\n"),
                      ("CR at the very end", b"a\r")):
    c = session()
    c.send(b"BDAT %d LAST\r\n" % len(payload) + payload)
    r = c.reply()
    t.check("BDAT with %s: 554 5.6.0" % name, r[0] == 554 and r[1].startswith("5.6.0"), r)
    c.close()
t.check("BDAT smuggling: nothing reached the queue", q.new() == [])

# Controls: what is fine stays fine.
c = session()
c.cmd("DATA")
c.send(b"x" * 998 + b"\r\n" + b"." + b"y" * 998 + b"\r\n.\r\n")
r = c.reply()
t.check("lines of exactly 1000 octets (one dot-stuffed) accepted", r[0] == 250, r)
c.close()
new = q.new(expect=1)
t.check("... and queued unstuffed", len(new) == 1 and
        q.read(new[0])[0].endswith(b"x" * 998 + b"\n" + b"y" * 998 + b"\n"))

# --- command lines ------------------------------------------------------------
c = srv.connect()
r = c.cmd("NOOP " + "a" * 505)
t.check("command line of 512 octets accepted", r[0] == 250, r)
r = c.cmd("NOOP " + "a" * 506)
t.check("command line of 513 octets: 500 5.5.2", r == (500, "5.5.2 line too long"), r)
r = c.cmd("NOOP " + "a" * 100000)
t.check("command line of 100 kB: 500 5.5.2, session goes on", r[0] == 500 and c.cmd("NOOP")[0] == 250, r)
c.send("NOOP\n")
r = c.reply()
t.check("bare LF command: 500 5.5.2", r[0] == 500 and r[1].startswith("5.5.2"), r)
c.send("NOOP\rNOOP\r\n")
r = c.reply()
t.check("bare CR in a command: one 500 5.5.2", r[0] == 500 and r[1].startswith("5.5.2") and quiet(c), r)
c.send(b"NO\0OP\r\n")
r = c.reply()
t.check("NUL in a command: 500 5.5.2", r[0] == 500 and r[1].startswith("5.5.2"), r)
c.close()

# --- databytes ------------------------------------------------------------------
c = session()
c.cmd("DATA")
c.send(b"z" * 900 + b"\r\n")
c.send((b"z" * 900 + b"\r\n") * 6 + b".\r\n")
r = c.reply()
t.check("over databytes: 552 5.3.4 after the end", r[0] == 552 and r[1].startswith("5.3.4"), r)
t.check("session goes on after 552", c.cmd("NOOP")[0] == 250)
c.cmd("MAIL FROM:<s@client.test>")
c.cmd("RCPT TO:<u@example.test>")
c.send(b"BDAT 6000 LAST\r\n" + (b"w" * 98 + b"\r\n") * 60)
r = c.reply()
t.check("BDAT over databytes: 552 5.3.4", r[0] == 552 and r[1].startswith("5.3.4"), r)
c.close()
t.check("over databytes: nothing queued", q.new() == [])

# --- disconnects --------------------------------------------------------------------
for name, first in (("DATA", b"DATA\r\n"), ("BDAT", b"BDAT 100000 LAST\r\n")):
    c = session()
    c.send(first)
    if name == "DATA":
        c.reply()
    c.send(b"Subject: cut\r\n\r\n" + b"half a message\r\n" * 200)
    time.sleep(0.2)
    c.close()
    time.sleep(0.3)
    t.check("disconnect mid-%s: nothing queued" % name, q.new() == [])
t.check("disconnects leave nothing in queue/tmp",
        wait_for(lambda: os.listdir(inst.path("queue", "tmp")) == [], 5), os.listdir(inst.path("queue", "tmp")))

# --- bad-command limit ------------------------------------------------------------
c = srv.connect()
codes = [c.cmd("FROB%d" % i)[0] for i in range(9)]
c.send("FROB9\r\n")
last = [c.reply(), c.reply()]
t.check("nine bad commands: 500 each", codes == [500] * 9, codes)
t.check("tenth bad command: 500 then 421 4.7.0 and close",
        last[0][0] == 500 and last[1][0] == 421 and last[1][1].startswith("4.7.0") and c.closed(), last)

# --- timeouts --------------------------------------------------------------------------
inst.control("timeoutsmtpd", "2")
inst.control("timeoutidle", "2")
c = srv.connect()
t0 = time.time()
r = c.reply()
dt = time.time() - t0
inst.control("timeoutidle", "60")
t.check("idle client: 421 4.4.2 after timeoutidle", r[0] == 421 and r[1].startswith("4.4.2") and 1.5 < dt < 6, (r, dt))
t.check("... and the connection is closed", c.closed())

c = session()
c.cmd("DATA")
c.send(b"Subject: slow\r\n\r\nwaiting")
t0 = time.time()
r = c.reply()
t.check("silent mid-DATA: 421 4.4.2", r[0] == 421 and r[1].startswith("4.4.2"), r)
c.close()
t.check("timeout mid-DATA: nothing queued", q.new() == [])

inst.control("timeoutsmtpd", "10")
inst.control("timeoutsession", "3")
t0 = time.time()   # the cap runs from the connection, greeting included
c = srv.connect()
codes = []
while time.time() - t0 < 8:
    r = c.cmd("NOOP")
    codes.append(r[0])
    if r[0] != 250:
        break
    time.sleep(0.5)
dt = time.time() - t0
t.check("busy client: 421 4.4.2 at the session cap", codes[-1] == 421 and 2.5 < dt < 6, (codes, dt))
t.check("... connection closed", c.closed())
inst.control("timeoutsession", "3600")

log = srv.logtext()
t.check("log: refused messages and timeouts",
        "result=refused-content" in log and "result=refused-size" in log and "reason=timeout" in log
        and "reason=badcmds" in log, log[-1500:])
t.done()
