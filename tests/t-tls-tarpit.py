#!/usr/bin/env python3
"""TLS tarpits: peers that send their handshake flight, or a record, one
byte at a time, which no per-read timeout ever stops. qmail-remote gives
up a STARTTLS or implicit TLS handshake at control/timeoutreply (a
temporary failure; under the may policy a failed STARTTLS falls back to
plaintext on a new connection, never under encrypt); a reply whose TLS
record is dripped is bound by the reply's own deadline; and qmail-tlsd
ends a client's dripped handshake at control/timeoutidle overall."""
import os, select, socket, ssl, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from tls_harness import CA, TlsServer, install_cert, run_remote

EVERY = 0.3          # seconds between dripped bytes: under every per-read timeout


class TlsPit:
    """An SMTP server on 127.0.0.1 offering STARTTLS (or, implicit, TLS on
    connect), with Python's TLS on memory buffers so that the bytes on the
    wire are ours to pace. mode "flight": the server's first handshake
    flight (a real ServerHello and certificate) is sent a byte every EVERY
    seconds, never finished. mode "record": the handshake goes at full
    speed, then the reply to MAIL comes a record byte every EVERY seconds.
    mode "slowdata": after the 354 over TLS, the message is read 4 KB
    every EVERY seconds.
    A session without STARTTLS (a plaintext retry) takes the mail."""

    def __init__(self, t, ctx, mode, implicit=False):
        self.ctx, self.mode, self.implicit = ctx, mode, implicit
        self.sessions = []        # per connection: the commands seen
        self.stop = False
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A small receive buffer, so that a slow reader is felt at once.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()
        t.cleanups.append(self.close)

    def close(self):
        self.stop = True
        self.sock.close()

    def accept(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(20)
            cmds = []
            self.sessions.append(cmds)
            threading.Thread(target=self.session, args=(c, cmds), daemon=True).start()

    def drip(self, c, data):
        for i in range(len(data)):
            if self.stop:
                return
            c.send(data[i:i + 1])
            time.sleep(EVERY)

    def handshake(self, c):
        """The server side of a handshake on c: the TLS object, or None
        after a dripped flight."""
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        o = self.ctx.wrap_bio(inc, out, server_side=True)
        while True:
            try:
                o.do_handshake()
                c.sendall(out.read())
                return o, inc, out
            except ssl.SSLWantReadError:
                pass
            flight = out.read()
            if flight and self.mode == "flight":
                self.drip(c, flight)
                return None
            c.sendall(flight)
            got = c.recv(16384)
            if not got:
                return None
            inc.write(got)

    def session(self, c, cmds):
        tls = None
        pending = b""
        try:
            if self.implicit:
                tls = self.handshake(c)
                if not tls:
                    return

            def send(line, slow=False):
                data = line.encode() + b"\r\n"
                if tls:
                    tls[0].write(data)
                    data = tls[2].read()
                self.drip(c, data) if slow else c.sendall(data)

            def readline():
                nonlocal pending
                while b"\n" not in pending:
                    got = c.recv(16384)
                    if not got:
                        return None
                    if tls:
                        tls[1].write(got)
                        try:
                            got = tls[0].read(16384)
                        except ssl.SSLWantReadError:
                            got = b""
                    pending += got
                line, _, pending = pending.partition(b"\n")
                return line.rstrip(b"\r").decode()

            send("220 pit ESMTP")
            while not self.stop:
                line = readline()
                if line is None:
                    return
                cmds.append(line)
                verb = line[:4].upper()
                if verb == "EHLO":
                    send("250-pit" if not tls else "250 pit")
                    if not tls:
                        send("250 STARTTLS")
                elif line.upper() == "STARTTLS":
                    send("220 go ahead")
                    tls = self.handshake(c)
                    if not tls:
                        return
                elif verb == "MAIL":
                    send("250 " + "x" * 300, slow=bool(tls) and self.mode == "record")
                elif verb in ("RCPT", "RSET", "NOOP"):
                    send("250 ok")
                elif verb == "DATA":
                    send("354 go")
                    while tls and self.mode == "slowdata" and not self.stop:
                        if not c.recv(4096):
                            return
                        time.sleep(EVERY)
                    while True:
                        line = readline()
                        if line is None:
                            return
                        if line == ".":
                            break
                    cmds.append("<message>")
                    send("250 queued")
                elif verb == "QUIT":
                    send("221 bye")
                    return
                else:
                    send("500 what?")
        except (OSError, ssl.SSLError):
            pass
        finally:
            c.close()


t = T()
inst = Instance(t)
ca = CA(t)
cert, key = ca.issue("mx.pit.test", "rsa")
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])

flight = TlsPit(t, ctx, "flight")
implicit = TlsPit(t, ctx, "flight", implicit=True)
record = TlsPit(t, ctx, "record")
slowdata = TlsPit(t, ctx, "slowdata")
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
inst.control("helohost", "client.example.test")
inst.control("smtproutes", ["may.test:127.0.0.1:%d" % flight.port, "encrypt.test:127.0.0.1:%d" % flight.port,
                            "implicit.test:127.0.0.1:%d tls=implicit" % implicit.port,
                            "record.test:127.0.0.1:%d" % record.port, "slowdata.test:127.0.0.1:%d" % slowdata.port])
inst.control("tlspolicy", ["encrypt.test:encrypt", ":may"])
inst.control("timeoutremote", "5")     # never reached: a byte comes every EVERY seconds
inst.control("timeoutreply", "2")


def remote(domain, message=b"Subject: pit\n\nhello\n"):
    """(result letter, text, stderr, seconds); "?" if it still ran after 60 s."""
    t0 = time.time()
    try:
        code, text, err = run_remote(inst, domain, "u@" + domain, message, **user)
    except Exception as e:     # subprocess.TimeoutExpired: the tarpit held it
        return "?", repr(e), "", time.time() - t0
    return code, text, err, time.time() - t0


n = len(flight.sessions)
code, text, err, secs = remote("encrypt.test")
s = flight.sessions[n:]
t.check("encrypt, STARTTLS handshake dripped: deferred at timeoutreply",
        code == "Z" and "timeout" in text and secs < 10, (code, text, secs))
t.check("encrypt: the timeout logged, never plaintext",
        "policy=encrypt result=failed reason=timeout" in err and "tls_fallback" not in err
        and len(s) == 1 and "<message>" not in s[0], (err, s))
print("STARTTLS handshake gave up after %.1f s" % secs)

n = len(flight.sessions)
code, text, err, secs = remote("may.test")
s = flight.sessions[n:]
t.check("may, STARTTLS handshake dripped: delivered in plaintext after timeoutreply",
        code == "K" and secs < 10, (code, text, secs))
t.check("may: a second connection, without STARTTLS, carried the mail",
        len(s) == 2 and "STARTTLS" in s[0] and "<message>" not in s[0]
        and "STARTTLS" not in s[1] and "<message>" in s[1], s)
t.check("may: the fallback logged with the timeout",
        "tls_fallback ip=127.0.0.1" in err and "timeout" in err.split("tls_fallback", 1)[1], err)

code, text, err, secs = remote("implicit.test")
t.check("implicit TLS, handshake dripped: deferred at timeoutreply",
        code == "Z" and "timeout" in text and secs < 10, (code, text, secs))

# The handshake at full speed, then MAIL's reply a record byte at a time:
# the relay child passes nothing on before a record is whole, and the
# reply's deadline ends the wait.
n = len(record.sessions)
code, text, err, secs = remote("record.test")
t.check("reply over TLS dripped a record byte at a time: deferred at timeoutreply",
        code == "Z" and "timed out waiting for a reply" in text and secs < 10, (code, text, secs))
t.check("that session was over TLS", "result=ok" in err and any("MAIL" in c for c in record.sessions[n][-1:]),
        (err, record.sessions[n:]))

# The message over TLS to a server that reads it slowly: qmail-remote
# gives up at its deadline, and so does the relay child, which would
# otherwise go on sending what the socketpair still holds.
inst.control("timeoutreply", "1")
inst.control("datarate", "4000000")    # 8 MB: 1 + 2 seconds at most
code, text, err, secs = remote("slowdata.test", (b"x" * 999 + b"\n") * 8000)
t.check("message over TLS read slowly: deferred past timeoutreply + size/datarate",
        code == "Z" and "timed out sending" in text and secs < 10, (code, text, secs))

# --- qmail-tlsd: a client's dripped ClientHello ends at timeoutidle overall ---
install_cert(inst, cert, key)
inst.control("timeoutidle", "2")
srv = TlsServer(inst, implicit=True)
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
cin, cout = ssl.MemoryBIO(), ssl.MemoryBIO()
try:
    cctx.wrap_bio(cin, cout).do_handshake()
except ssl.SSLWantReadError:
    pass
hello = cout.read()
c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
t0, closed = time.time(), None
for i in range(len(hello)):
    if time.time() - t0 > 15:
        break
    try:
        c.send(hello[i:i + 1])
        if select.select([c], [], [], EVERY)[0] and not c.recv(4096):
            closed = time.time() - t0
            break
    except OSError:
        closed = time.time() - t0
        break
c.close()
t.check("qmail-tlsd: a ClientHello dripped a byte at a time is cut at timeoutidle",
        closed is not None and closed < 10, (closed, len(hello)))
t.check("qmail-tlsd: the timeout logged", "qmail-tlsd event=tls ip=127.0.0.1 result=failed reason=timeout" in srv.logtext(),
        srv.logtext()[-2000:])
t.done()
