#!/usr/bin/env python3
"""qmail-remote toward strict receivers: lines over 998 octets to this
MTA's own qmail-smtpd (which refuses them with 554), 8-bit bodies to a
sink that does not announce 8BITMIME, and SMTPUTF8-flagged messages
(through qmail-rspawn, which carries the queue's flag) to a sink without
SMTPUTF8. What arrives is decoded with Python's email package and compared
with what was sent; a message needing no conversion arrives byte for byte."""
import email, email.policy, os, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from remote_peers import Sink
from smtpd_harness import Queue, Server

t = T()
inst = Instance(t)
smtpd = Server(inst, relay=True)          # real, strict: 554 for a line over 1000 octets
q = Queue(inst)
seven = Sink(t, ext=["PIPELINING", "SIZE 100000000"])            # no 8BITMIME, no SMTPUTF8
eight = Sink(t, ext=["PIPELINING", "SIZE 100000000", "8BITMIME"])
inst.control("smtproutes", ["strict.test:127.0.0.1:%d" % smtpd.port,
                            "seven.test:127.0.0.1:%d" % seven.port,
                            "eight.test:127.0.0.1:%d" % eight.port])
inst.control("helohost", "client.example.test")
inst.control("dnsserver", "127.0.0.1:1")   # never the real resolver: routes only

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain, message):
    """Runs qmail-remote to u@domain: (letter, text, stderr)."""
    p = subprocess.run([inst.bin("qmail-remote"), domain, "a@example.test", "u@" + domain], input=message,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, **user)
    parts = p.stdout.split(b"\0")
    if p.returncode != 0 or len(parts) < 3:
        return "?", repr(p), p.stderr.decode("utf-8", "replace")
    last = parts[1].decode("utf-8", "replace")
    return last[:1], last[1:], p.stderr.decode("utf-8", "replace")


def last_data(sink, n):
    """The one DATA the sink got since it had n sessions, LF line ends, unstuffed."""
    s = sink.sessions[n:]
    if len(s) != 1 or len(s[0].data) != 1:
        return None, s
    wire = s[0].data[0]
    assert wire.endswith(b"\r\n.\r\n")
    body = wire[:-3].replace(b"\r\n..", b"\r\n.")
    if body.startswith(b".."):
        body = body[1:]
    return body.replace(b"\r\n", b"\n"), s[0]


def lines_ok(wire, seven_bit):
    return all(len(l) <= 998 and (not seven_bit or max(l, default=0) < 128) for l in wire.split(b"\n"))


def parse(b):
    return email.message_from_bytes(b, policy=email.policy.compat32)


# --- a line over 998 octets, to qmail-smtpd ---------------------------------
longline = b"".join(b"%04d " % i for i in range(600))          # 3000 octets
msg = (b"From: a@example.test\nSubject: long\nContent-Type: text/plain; charset=us-ascii\n\n"
       b"first\n" + longline + b"\n.leading dot\nlast line\n")
code, text, err = remote("strict.test", msg)
t.check("long line: qmail-smtpd accepts the converted message", code == "K", (code, text))
new = q.new(expect=1)
got = q.read(new[0])[0] if len(new) == 1 else b""
m = parse(got)
t.check("long line: re-encoded quoted-printable, MIME-Version added",
        m["Content-Transfer-Encoding"] == "quoted-printable" and m["MIME-Version"] == "1.0", got[:600])
t.check("long line: every line within 998 octets", got and lines_ok(got, True), got[:200])
t.check("long line: decodes to the original body", m.get_payload(decode=True) == msg.split(b"\n\n", 1)[1],
        m.get_payload()[:300])
t.check("long line: logged", "event=convert" in err and "why=long-lines" in err, err)

# A long header line is folded, and unfolds to what was sent.
to = b"To: " + b", ".join(b"user%03d@example.test" % i for i in range(80)) + b"\n"
code, text, err = remote("strict.test", b"From: a@example.test\n" + to + b"Subject: fold\n\nbody\n")
new = q.new(expect=1)
got = q.read(new[0])[0] if len(new) == 1 else b""
head = got.split(b"\n\n", 1)[0]
t.check("long header: accepted, folded, the same once unfolded", code == "K" and lines_ok(got, False)
        and to.rstrip(b"\n") in head.replace(b"\n ", b" ").replace(b"  ", b" "), (code, text, head[-300:]))
t.check("long header: the body untouched", got.endswith(b"\n\nbody\n"), got[-50:])

# --- 8-bit body, to a server without 8BITMIME -------------------------------
msg = "From: a@example.test\nSubject: caf\n\nCafé crème, naïve façade.\n".encode()
n = len(seven.sessions)
code, text, err = remote("seven.test", msg)
body, s = last_data(seven, n)
t.check("8-bit, no 8BITMIME: delivered", code == "K" and body is not None, (code, text, s))
t.check("8-bit, no 8BITMIME: 7-bit on the wire, no BODY=", body is not None and lines_ok(body, True)
        and "BODY=" not in s.commands[1], body)
m = parse(body or b"")
t.check("8-bit, no 8BITMIME: quoted-printable, charset unknown-8bit, decodes back",
        m["Content-Transfer-Encoding"] == "quoted-printable" and m.get_param("charset") == "unknown-8bit"
        and m.get_payload(decode=True) == msg.split(b"\n\n", 1)[1], body)

# Multipart: only the 8-bit part is re-encoded; the rest byte for byte.
mp = ("From: a@example.test\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"=_x\"\n\n"
      "preamble\n--=_x\nContent-Type: text/plain; charset=us-ascii\n\nplain ascii\n"
      "--=_x\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<p>été</p>\n"
      "--=_x--\n").encode()
n = len(seven.sessions)
code, text, err = remote("seven.test", mp)
body, s = last_data(seven, n)
m = parse(body or b"")
parts = m.get_payload() if m.is_multipart() else []
t.check("multipart: delivered 7-bit", code == "K" and body is not None and lines_ok(body, True), (code, body))
t.check("multipart: the ASCII part unchanged, the 8-bit one quoted-printable and decoding back",
        len(parts) == 2 and b"--=_x\nContent-Type: text/plain; charset=us-ascii\n\nplain ascii\n--=_x\n" in body
        and parts[1]["Content-Transfer-Encoding"] == "quoted-printable"
        and parts[1].get_payload(decode=True) == "<p>été</p>".encode(), body)

# To a server with 8BITMIME, the same message goes byte for byte.
n = len(eight.sessions)
code, text, err = remote("eight.test", mp)
body, s = last_data(eight, n)
t.check("8BITMIME: byte for byte, BODY=8BITMIME", code == "K" and body == mp and "BODY=8BITMIME" in s.commands[1],
        (code, body))
t.check("8BITMIME: nothing converted", "event=convert" not in err, err)

# 8-bit in a header cannot be converted: bounced, never sent raw.
n = len(seven.sessions)
code, text, err = remote("seven.test", "Subject: Café\n\nbody\n".encode())
t.check("8-bit header, no 8BITMIME: permanent 5.6.3, nothing sent", code == "D" and "5.6.3" in text
        and not any(x.data for x in seven.sessions[n:]), (code, text))

# --- SMTPUTF8-flagged messages, through qmail-rspawn --------------------------
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
proc = inst.spawn([inst.bin("qmail-rspawn")], stdin=theirs, stderr=subprocess.PIPE, **user)
theirs.close()
ours.settimeout(20)


def spawn(slot, message, rcpt, opts=1):
    """One request for qmail-rspawn with the message in a file: its reply items."""
    with tempfile.TemporaryFile(dir="/tmp") as f:
        f.write(message)
        f.flush()
        fields = [str(slot), "1795420800.004211.3117", "0", str(len(message)), str(opts), "s@example.test", "0", rcpt]
        socket.send_fds(ours, [b"".join(x.encode() + b"\0" for x in fields)], [f.fileno()])
        try:
            data = ours.recv(300000)
        except socket.timeout:
            return []
    parts = data.split(b"\0")
    return [(p[:1].decode(), p[1:].decode("utf-8", "replace")) for p in parts[1:-1]]


ascii_msg = "From: s@example.test\nSubject: plain\n\nUTF-8 only in the body: ☃\n".encode()
n = len(seven.sessions)
r = spawn(1, ascii_msg, "u@seven.test")
body, s = last_data(seven, n)
t.check("SMTPUTF8 flag, ASCII envelope and header, server without SMTPUTF8: delivered",
        len(r) == 1 and r[0][0] == "K", r)
t.check("  ... without the SMTPUTF8 parameter, the body converted to 7 bit",
        body is not None and "SMTPUTF8" not in s.commands[1] and lines_ok(body, True)
        and parse(body).get_payload(decode=True) == "UTF-8 only in the body: ☃\n".encode(), (s, body))

n = len(seven.sessions)
r = spawn(2, "From: s@example.test\nSubject: ☃\n\nbody\n".encode(), "u@seven.test")
t.check("SMTPUTF8 flag, UTF-8 header: permanent 5.6.7, nothing sent",
        len(r) == 1 and r[0][0] == "D" and "5.6.7" in r[0][1] and not any(x.data for x in seven.sessions[n:]), r)
r = spawn(3, ascii_msg, "jürgen@seven.test")
t.check("SMTPUTF8 flag, UTF-8 recipient: permanent 5.6.7", len(r) == 1 and r[0][0] == "D" and "5.6.7" in r[0][1], r)

utf = Sink(t, ext=["PIPELINING", "8BITMIME", "SMTPUTF8"])
inst.control("smtproutes", ["utf.test:127.0.0.1:%d" % utf.port])
n = len(utf.sessions)
r = spawn(4, "From: s@example.test\nSubject: ☃\n\nbody ☃\n".encode(), "u@utf.test")
body, s = last_data(utf, n)
t.check("SMTPUTF8 flag to a server with SMTPUTF8: as it is, with the parameter",
        len(r) == 1 and r[0][0] == "K" and s and "SMTPUTF8" in s.commands[1]
        and body == "From: s@example.test\nSubject: ☃\n\nbody ☃\n".encode(), (r, s, body))

ours.close()
proc.wait(20)
t.done()
