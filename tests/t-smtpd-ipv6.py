"""qmail-smtpd over IPv6: tcpserver on ::1, a real smtplib client, the
message queued with the client's IPv6 address in its Received: line."""
import os, re, smtplib, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for, IS_ROOT
from smtpd_harness import Queue

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "timeoutsmtpd": "10"})
q = Queue(inst)

s = socket.socket(socket.AF_INET6)
s.bind(("::1", 0))
port = s.getsockname()[1]
s.close()

argv = ["tcpserver", "-q", "-R", "-H", "-l", "mail.example.test"]
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("smtpd")
    argv += ["-u", str(uid), "-g", str(gid)]
log = open(inst.path("smtpd6.log"), "w+")
inst.spawn(argv + ["::1", str(port), inst.bin("qmail-smtpd")], stdout=log, stderr=log)


def up():
    try:
        socket.create_connection(("::1", port), 1).close()
        return True
    except OSError:
        return False


t.check("tcpserver listens on ::1", wait_for(up, 10))
with smtplib.SMTP("::1", port, timeout=10) as c:
    code, _ = c.ehlo("client6.test")
    t.check("EHLO over IPv6", code == 250, code)
    refused = c.sendmail("s@client6.test", ["u@example.test"],
                         b"Subject: v6\r\n\r\nover IPv6\r\n")
    t.check("message accepted", refused == {}, refused)
    try:
        c.sendmail("s@client6.test", ["u@elsewhere.test"], b"Subject: x\r\n\r\nx\r\n")
        relayed = True
    except smtplib.SMTPRecipientsRefused as e:
        relayed = False
        code = e.recipients["u@elsewhere.test"][0]
    t.check("relay from ::1 without RELAYCLIENT refused with 553", not relayed and code == 553)

new = q.new(expect=1)
t.check("one message queued", len(new) == 1, new)
if new:
    msg, sender, opts, rcpts = q.read(new[0])
    first = next((l for l in msg.split(b"\n") if l.startswith(b"Received: from")), b"")
    t.check("Received: names the IPv6 client as an RFC 5321 literal [IPv6:::1]", b"[IPv6:::1])" in first, first)
    t.check("Received: names the HELO", b"client6.test" in first, first)
    log.flush()
    text = open(log.name, errors="replace").read()
    pid = new[0].rsplit(".", 1)[1]
    t.check("the smtpd log ties the message to its qid (qqpid)",
            re.search(r"event=message .*result=accepted .*qqpid=%s\b" % pid, text), text[-500:])
    t.check("envelope", sender == b"s@client6.test" and rcpts == [(b"P", b"u@example.test")], (sender, rcpts))
t.done()
