#!/usr/bin/env python3
"""CPU per STARTTLS session through tcpserver + qmail-tlsd, and through
qmail-smtpd-listen -t (the same relay, resident): N sequential
sessions (connect, EHLO, STARTTLS, a TLS 1.2 handshake with a P-256 key
as bench/ uses, EHLO, QUIT) from a Python ssl client, and through
qmail-smtpd-listen -t again with a client that resumes its session
(RFC 5246 session ID, the listener's shared cache); the CPU is the
server's utime+stime+cutime+cstime from /proc (qmail-tlsd and its session
child are reaped descendants), before and after, divided by N. The
client's own CPU is not counted.

A measurement, not a test: prints the CPU figure (bench/ compares it
with Postfix) and the median handshake, which shows whether Nagle's
algorithm holds a flight of several records written one by one until
the client's delayed ACK, 40 ms each time, and the median EHLO after
it, which a resumed handshake delays as long unless the server ACKs
the client's last flight at once (TCP_QUICKACK, lib/tlsio.c); checks only that every
session went through TLS and was counted. Run it from a checkout built
by make check (BUILD, PREFIX as for tests/run), e.g. make bench-cpu.
N is 200 (40 under ASan); set TLS_CPU_N for a longer run.
"""
import os, socket, ssl, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import T, Instance, SANITIZED, wait_for
from tls_harness import TlsServer, install_cert, self_signed

t = T()
N = int(os.environ.get("TLS_CPU_N", "40" if SANITIZED else "200"))
inst = Instance(t, control={"rcpthosts": ["example.test"], "timeoutsmtpd": "20"})
cert, key = self_signed(inst.path("control"), "mail.example.test", "ec")
install_cert(inst, cert, key)
HZ = os.sysconf("SC_CLK_TCK")


def cpu(pid):
    """Seconds of CPU of pid and its reaped descendants."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / HZ


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(d)
        except (OSError, IndexError, ValueError):
            pass
    return out


def reply(f):
    while True:
        line = f.readline()
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3]


ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
ctx.maximum_version = ssl.TLSVersion.TLSv1_2


last = [None]        # the session a resuming client offers next


def session(srv, resume=False):
    """One STARTTLS session (offering the previous one's TLS session when
    resume); True when every reply was the expected one (and, resuming,
    the session was resumed)."""
    s = socket.create_connection(("127.0.0.1", srv.port), 10)
    try:
        f = s.makefile("rb")
        got = [reply(f)]
        for cmd in (b"EHLO client.test", b"STARTTLS"):
            s.sendall(cmd + b"\r\n")
            got.append(reply(f))
        f.close()
        h = time.monotonic()
        tl = ctx.wrap_socket(s, server_hostname="mail.example.test", session=last[0] if resume else None)
        handshakes.append(time.monotonic() - h)
        resumed = tl.session_reused
        last[0] = tl.session
        f = tl.makefile("rb")
        for cmd in (b"EHLO client.test", b"QUIT"):
            h = time.monotonic()
            tl.sendall(cmd + b"\r\n")
            got.append(reply(f))
            if cmd != b"QUIT":
                firsts.append(time.monotonic() - h)
        ok = got == [b"220", b"250", b"220", b"250", b"221"] and tl.version() == "TLSv1.2" \
            and (resumed or not resume or last[0] is None)
        f.close()
        tl.close()
        return ok
    finally:
        s.close()


for front, resume in (("tcpserver", False), ("listen", False), ("listen", True)):
    srv = TlsServer(inst, name=front, front=front)
    server = inst.procs[-1].pid
    handshakes, firsts = [], []
    session(srv, resume)            # page the programs in (and the session to resume)
    wait_for(lambda: not children(server) or front == "listen", 10)
    c0, t0 = cpu(server), time.monotonic()
    ok = sum(1 for _ in range(N) if session(srv, resume))
    front += " resumed" if resume else ""
    t.check("%s: every session ran STARTTLS, TLS 1.2" % front, ok == N, "%d of %d" % (ok, N))
    # The listener keeps its spares; they are not sessions.
    t.check("%s: every session was reaped (its CPU counted)" % front,
            wait_for(lambda: len(children(server)) <= (2 if front == "listen" else 0), 10))
    c1, t1 = cpu(server), time.monotonic()
    ms = (c1 - c0) * 1000 / N
    print("%s: %.2f ms CPU per STARTTLS session (%d sessions, %.1f s)" % (
        "tcpserver+qmail-tlsd" if front == "tcpserver" else "qmail-smtpd-listen -t" + (
            ", resuming client" if resume else ""), ms, N, t1 - t0))
    t.check("%s: the sessions' CPU was counted" % front, c1 > c0, (c0, c1))
    mid = sorted(handshakes)[len(handshakes) // 2] * 1000
    print("%s: median handshake %.1f ms (a delayed-ACK stall adds 40 ms)" % (front, mid))
    # A resumed handshake ends with the client's flight: without the
    # server's immediate ACK, the client's Nagle holds its EHLO 40 ms.
    print("%s: median EHLO after the handshake %.1f ms" % (front, sorted(firsts)[len(firsts) // 2] * 1000))
t.done()
