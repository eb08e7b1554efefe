#!/usr/bin/env python3
"""qmail-smtpd's limits against abuse: the default databytes, one meaning
of the size limit at MAIL SIZE=, DATA and BDAT (RFC 1870 octets: CRLF
counted, dot-stuffing not), timeouts by phase (idle connections cannot
hold the listener's slots, nor the TLS relay's handshake), refused recipients counted, slowed and
ended, failed AUTH slowed more each time, and log lines that keep their
verdict whatever the client sent."""
import base64, os, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance
from smtpd_harness import Server, Client, Queue
from tls_harness import CA, TlsServer, install_cert

t = T()
inst = Instance(t, control={"rcpthosts": "example.test", "timeoutsmtpd": "20",
                            "timeoutcommand": "20"})
srv = Server(inst)
q = Queue(inst)
DEFAULT = 36700160                       # 35 MiB


def session(size=None):
    c = srv.connect()
    c.cmd("EHLO client.test")
    r = c.cmd("MAIL FROM:<s@client.test>" + (" SIZE=%d" % size if size is not None else ""))
    if r[0] == 250:
        c.cmd("RCPT TO:<u@example.test>")
    return c, r


def message(total):
    """A message of exactly total octets as SIZE counts them (CRLF line
    ends, no dot-stuffing), with a line that starts with a dot."""
    head = b"Subject: size\r\n\r\n.dot line\r\n"
    body = b""
    while len(head) + len(body) + 40 <= total:
        body += b"y" * 38 + b"\r\n"
    rest = total - len(head) - len(body) - 2
    return head + body + b"z" * rest + b"\r\n"


def stuffed(m):
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in m.split(b"\r\n"))


# --- the default limit --------------------------------------------------------
c = srv.connect()
code, text = c.cmd("EHLO client.test")
t.check("without control/databytes EHLO announces SIZE %d" % DEFAULT,
        "SIZE %d" % DEFAULT in text.split("\n"), text)
c.close()
c, r = session(DEFAULT)
t.check("MAIL SIZE= the default limit: 250", r[0] == 250, r)
c.close()
c, r = session(DEFAULT + 1)
t.check("MAIL SIZE= one over the default limit: 552 5.3.4", r[0] == 552 and r[1].startswith("5.3.4"), r)
c.close()
c, r = session()
line = b"x" * 998 + b"\r\n"
n = DEFAULT // len(line) + 1             # just over the limit
c.send(b"BDAT %d LAST\r\n" % (n * len(line)) + line * n)
r = c.reply()
t.check("a message over the default limit, sent without SIZE=: 552 5.3.4",
        r[0] == 552 and r[1].startswith("5.3.4"), r)
c.close()
t.check("... nothing queued", q.new() == [])

# --- one limit, one meaning: at the limit and one over, every way -------------
inst.control("databytes", "1000")
for size, want in ((1000, 250), (1001, 552)):
    c, r = session(size)
    t.check("MAIL SIZE=%d with databytes 1000: %d" % (size, want), r[0] == want, r)
    c.close()
for size, want in ((1000, 250), (1001, 552)):
    m = message(size)
    assert len(m) == size
    c, r = session()
    c.cmd("DATA")
    c.send(stuffed(m) + b".\r\n")
    r = c.reply()
    t.check("DATA of %d octets with databytes 1000: %d" % (size, want), r[0] == want, r)
    c.close()
    c, r = session()
    c.send(b"BDAT %d LAST\r\n" % len(m) + m)
    r = c.reply()
    t.check("BDAT of %d octets with databytes 1000: %d" % (size, want), r[0] == want, r)
    c.close()
    c, r = session()
    c.send(b"BDAT 600\r\n" + m[:600])
    c.reply()
    c.send(b"BDAT %d LAST\r\n" % (len(m) - 600) + m[600:])
    r = c.reply()
    t.check("two BDAT chunks of %d octets in all: %d" % (size, want), r[0] == want, r)
    c.close()
new = q.new(expect=3)
t.check("the three messages at the limit were queued", len(new) == 3, new)
if new:
    msg = q.read(new[0])[0]
    t.check("... whole, dot unstuffed", msg.endswith(b"\n" + message(1000).replace(b"\r\n", b"\n")), msg[-80:])
log = srv.logtext()
t.check("the log's bytes= is the same size", "result=accepted bytes=1000 " in log, log[-600:])
os.unlink(inst.path("control", "databytes"))

# --- timeouts by phase ----------------------------------------------------------
inst.control("timeoutidle", "1")
inst.control("timeoutcommand", "6")
inst.control("timeoutsmtpd", "6")
c = Client(srv.port, greet=True, timeout=8)
t0 = time.time()
r = c.reply()
dt = time.time() - t0
t.check("idle after the greeting: 421 4.4.2 after timeoutidle", r[0] == 421 and r[1].startswith("4.4.2") and dt < 3, (r, dt))
c.close()

idle = [Client(srv.port, greet=True, timeout=8) for _ in range(40)]   # the -c limit
t0 = time.time()
try:
    late = Client(srv.port, greet=True, timeout=4)
    r = late.greeting
    late.close()
except OSError as e:
    r = (-1, str(e))
t.check("40 idle connections free the listener: a new client is greeted", r[0] == 220, (r, time.time() - t0))
for x in idle:
    x.close()

c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
time.sleep(2)
r = c.cmd("NOOP")
t.check("in a transaction timeoutcommand applies, not timeoutidle", r[0] == 250, r)
t0 = time.time()
r = c.reply()
t.check("... and then ends the session: 421 4.4.2", r[0] == 421 and r[1].startswith("4.4.2")
        and time.time() - t0 > 5, (r, time.time() - t0))
c.close()

c, r = session()
c.cmd("DATA")
c.send(b"Subject: slow\r\n\r\n")
time.sleep(2)
c.send(b"but on time\r\n.\r\n")
r = c.reply()
t.check("inside DATA timeoutsmtpd applies: a 2 s pause is fine", r[0] == 250, r)
c.close()
q.new(expect=1)
for f in ("timeoutidle", "timeoutcommand"):
    os.unlink(inst.path("control", f))
inst.control("timeoutsmtpd", "20")

# --- recipient probing ----------------------------------------------------------
inst.control("softbadrcpts", "2")
inst.control("maxbadrcpts", "6")
inst.control("errordelay", "200")
c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
t0 = time.time()
c.send("".join("RCPT TO:<probe%d@elsewhere.test>\r\n" % i for i in range(100)))
codes = []
while True:
    r = c.reply()
    if r[0] <= 0:
        break
    codes.append(r[0])
dt = time.time() - t0
t.check("refused recipients end the session at maxbadrcpts: six 553, then 421",
        codes == [553] * 6 + [421], codes[:10] + ["... %d replies" % len(codes)])
t.check("... with growing delays after softbadrcpts (>= 1+2+3+4 x 200 ms)", dt >= 1.9, dt)
c.close()
c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
codes = [c.cmd("RCPT TO:<%s>" % a)[0] for a in
         ("x@elsewhere.test", "u@example.test", "y@elsewhere.test", "v@example.test")]
t.check("accepted recipients are not counted", codes == [553, 250, 553, 250], codes)
c.close()
t.check("log: reason=badrcpts", "reason=badrcpts" in srv.logtext())
for f in ("softbadrcpts", "maxbadrcpts"):
    os.unlink(inst.path("control", f))

# --- AUTH guessing ------------------------------------------------------------------
r = subprocess.run([inst.bin("qmail-passwd"), "add", "joe"], input=b"right-pw\n",
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t.check("qmail-passwd add", r.returncode == 0, r.stderr)
inst.control("authloopback", "1")
inst.control("errordelay", "600")
c = srv.connect()
c.cmd("EHLO client.test")
took, codes = [], []
for i in range(3):
    t0 = time.time()
    r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe\0wrong%d" % i).decode())
    took.append(time.time() - t0)
    codes.append(r[0])
t.check("failed AUTH: 535, 535, then 421", codes == [535, 535, 421] and c.closed(), codes)
# qmail-authcheck waits 1 s on every failure; the session adds 1, 2, 4
# units (600 ms: wide enough apart for a loaded, sanitized run).
t.check("each failure waits longer: >= 2.2 s, then >= 3.4 s",
        took[1] >= 2.15 and took[2] >= 3.35 and took[2] > took[0] + 1.2, took)
c.close()
c = srv.connect()
c.cmd("EHLO client.test")
r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe\0right-pw").decode())
t.check("the right password still works in a new session", r[0] == 235, r)
c.close()

# --- log lines keep their verdict --------------------------------------------------------
c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
r = c.cmd("RCPT TO:<" + "\x01" * 480 + ">")
t.check("a recipient of control bytes: 501", r[0] == 501, r)
c.close()
line = [l for l in srv.logtext().split("\n") if "event=rcpt" in l and "\\x01" in l]
t.check("its log line is cut in the address, not the verdict",
        len(line) == 1 and line[0].endswith('..." result=refused reason=syntax') and len(line[0]) < 700,
        line[:1])

# --- TLS: an idle client that never starts its handshake -----------------------------
ca = CA(t)
cert, key = ca.issue("mail.example.test", "ec")
install_cert(inst, cert, key)
inst.control("timeoutidle", "1")
smtps = TlsServer(inst, implicit=True, name="smtps")
starttls = TlsServer(inst, name="starttls")
for name, srv_, greet in (("port 465", smtps, False), ("STARTTLS", starttls, True)):
    c = Client(srv_.port, greet=greet, timeout=8)
    if greet:
        c.cmd("EHLO client.test")
        r = c.cmd("STARTTLS")
        t.check("STARTTLS: 220", r[0] == 220, r)
    t0 = time.time()
    t.check("%s: a client silent in the handshake is let go after timeoutidle" % name,
            c.closed(wait=4), time.time() - t0)
    c.close()
os.unlink(inst.path("control", "timeoutidle"))
t.done()
