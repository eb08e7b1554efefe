#!/usr/bin/env python3
"""qmail-smtpd under a real tcpserver with qmail-queued running: a message
is queued through the daemon (250, the file in mess/, its qid on the
trigger and in the smtpd log, Received: naming the smtpd uid); SMTPUTF8
and BDAT; refused, oversized and abandoned messages leave nothing; many
sessions at once while one stalls in DATA; SIGKILL of the daemon in the
middle of DATA gives 451 and commits nothing; with the daemon stopped
(after a 10 s wait, and the pipes it may still read are not the ones
qmail-queue gets), dead, absent or full, and with QMAILQUEUE set,
qmail-smtpd runs qmail-queue."""
import os, re, smtplib, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from smtpd_harness import Server, Queue
from queued_harness import Daemon, Client, RECEIVED_QQD, RECEIVED_QQ, parse, envl, queue_once, QueueDir, read_trigger

t = T()
inst = Instance(t, control={"rcpthosts": "example.test", "databytes": "100000",
                            "timeoutsmtpd": "20"})
MESS = inst.path("queue", "mess")
TMP = inst.path("queue", "tmp")
SMTPD_UID = inst.uid("smtpd")[0] if IS_ROOT and inst.multi else os.getuid()
d = Daemon(inst)
t.check("qmail-queued ready", d.ready, d.logtext())
srv = Server(inst)
q = Queue(inst)


mess, tmp = QueueDir(inst).mess, QueueDir(inst).tmp


def message_of(qid):
    return parse(open(os.path.join(MESS, qid), "rb").read())


def smtp(body, rcpt="u@example.test", opts=(), port=None):
    with smtplib.SMTP("127.0.0.1", port or srv.port, timeout=20) as s:
        return s.sendmail("s@client.test", [rcpt], body, mail_options=list(opts))


def last_message_log():
    lines = [l for l in srv.logtext().splitlines() if "event=message" in l]
    return lines[-1] if lines else ""


# --- one message through the daemon -------------------------------------------
trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
t.check("SMTP: 250 for a message", smtp(b"Subject: one\r\n\r\nthrough qmail-queued\r\n") == {})
new = q.new(expect=1)
got = read_trigger(trig)
t.check("SMTP: one file in mess/", len(new) == 1, new)
if new:
    qid = new[0]
    t.check("SMTP: the qid ends in qmail-queued's pid", qid.endswith(".%d" % d.pid), qid)
    t.check("SMTP: the trigger got the qid", got == qid.encode() + b"\n", got)
    m = message_of(qid)
    rm = RECEIVED_QQD.match(m["message"])
    t.check("SMTP: Received: names qmail-queued and the smtpd uid",
            rm is not None and int(rm.group(1)) == d.pid and int(rm.group(2)) == SMTPD_UID,
            m["message"][:150])
    t.check("SMTP: then qmail-smtpd's Received: line and the message",
            rm is not None and m["message"][rm.end():].startswith(b"Received: from ")
            and m["message"].endswith(b"Subject: one\n\nthrough qmail-queued\n"), m["message"][:300])
    t.check("SMTP: envelope", m["sender"] == b"s@client.test" and m["rcpts"] == [(b"P", b"u@example.test")])
    log = wait_for(lambda: "result=accepted" in last_message_log() and last_message_log(), 5)
    t.check("SMTP: the smtpd log names the qid", log and re.search(r"qq=0 qid=%s\b" % re.escape(qid), log), log)

t.check("SMTPUTF8: 250", smtp("Subject: caf\u00e9\r\n\r\nx\r\n".encode(), rcpt="\u00e9l\u00e8ve@example.test",
                              opts=["SMTPUTF8"]) == {})
new = q.new(expect=1)
t.check("SMTPUTF8: the option record, through the daemon",
        len(new) == 1 and new[0].endswith(".%d" % d.pid) and message_of(new[0])["opts"] == [b"SMTPUTF8"], new)

c = srv.connect()
c.transaction("s@client.test", ["u@example.test"])
c.send(b"BDAT 14\r\nSubject: b\r\n\r\nBDAT 7 LAST\r\nchunk\r\n")
r1, r2 = c.reply(), c.reply()
c.close()
new = q.new(expect=1)
t.check("BDAT: 250 twice and one file", r1[0] == 250 and r2[0] == 250 and len(new) == 1, (r1, r2, new))

# --- nothing left by a refused or abandoned message -----------------------------
def nothing_left(name, before):
    t.check("%s: nothing in mess/, tmp/ clean" % name,
            wait_for(lambda: mess() == before and tmp() == [], 5), (sorted(set(mess()) - set(before)), tmp()))

before = mess()
c = srv.connect()
c.transaction("s@client.test", ["u@example.test"])
c.cmd("DATA")
c.send(b"Subject: bare\r\n\r\na\nb\r\n.\r\n")
t.check("bare LF: 554", c.reply()[0] == 554)
nothing_left("bare LF", before)
c.transaction("s@client.test", ["u@example.test"], ehlo=False)
c.cmd("DATA")
c.send(b"Subject: big\r\n\r\n" + b"z" * 78 + b"\r\n" + (b"y" * 78 + b"\r\n") * 2000 + b".\r\n")
t.check("over databytes: 552", c.reply()[0] == 552)
nothing_left("over databytes", before)
c.transaction("s@client.test", ["u@example.test"], ehlo=False)
c.cmd("DATA")
c.send(b"Subject: gone\r\n\r\n" + (b"g" * 78 + b"\r\n") * 500)
wait_for(lambda: tmp(), 5)
c.close()
nothing_left("client gone in DATA", before)
t.check("qmail-queued still runs", d.p.poll() is None)

# --- many sessions at once, one stalled in DATA ----------------------------------
stall = srv.connect()
stall.transaction("s@client.test", ["u@example.test"])
stall.cmd("DATA")
stall.send(b"Subject: stalled\r\n\r\n" + (b"s" * 78 + b"\r\n") * 100)
results = []


def session(k):
    try:
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
            for j in range(5):
                results.append(s.sendmail("s@client.test", ["u%d@example.test" % k],
                                          b"Subject: s%d-%d\r\n\r\nx\r\n" % (k, j)) == {})
    except Exception as e:
        results.append(repr(e))

start = time.time()
threads = [threading.Thread(target=session, args=(k,)) for k in range(12)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
took = time.time() - start
new = q.new(expect=60)
t.check("12 sessions x 5 messages while one session stalls in DATA: all 250",
        results.count(True) == 60, (results[:3], took))
t.check("60 new files, all qmail-queued's", len(new) == 60 and all(n.endswith(".%d" % d.pid) for n in new),
        len(new))
stall.send(b".\r\n")
t.check("the stalled session then gets its 250", stall.reply()[0] == 250)
stall.close()
q.new(expect=1)

# --- a stopped daemon: qmail-queue after QQD_WAIT (10 s), never both ----------
os.kill(d.pid, 19)   # SIGSTOP: it accepts nothing and answers nothing
before = mess()
c = srv.connect(timeout=30)
c.transaction("s@client.test", ["u@example.test"])
start = time.time()
r354 = c.cmd("DATA")[0]
took = time.time() - start
# qmail-queue runs now. The daemon resumes and finds the pipes it was
# handed: were they qmail-queue's, it would take part of the message.
os.kill(d.pid, 18)
wait_for(lambda: False, 0.5)
lines = [b"line %04d " % i + b"w" * 68 + b"\r\n" for i in range(300)]
for k in range(0, 300, 50):
    c.send(b"".join(lines[k:k + 50]))
    wait_for(lambda: False, 0.05)
c.send(b".\r\n")
code = c.reply()[0]
c.close()
new = q.new(expect=1)
t.check("daemon stopped: 354 after the 10 s wait, then 250", r354 == 354 and 9 < took < 19 and code == 250
        and len(new) == 1, (r354, took, code, new))
t.check("daemon stopped: written by qmail-queue, whole",
        len(new) == 1 and RECEIVED_QQ.match(message_of(new[0])["message"]) is not None
        and message_of(new[0])["message"].endswith(b"".join(lines).replace(b"\r\n", b"\n")), new)
t.check("daemon stopped: the fallback is logged as such, with its reason",
        "event=fallback to=qmail-queue reason=no-answer" in srv.logtext() and "Connection timed out" not in srv.logtext(),
        srv.logtext()[-300:])
t.check("daemon resumed: the pipes it was handed queue nothing, tmp/ clean",
        wait_for(lambda: tmp() == [], 5) and mess() == sorted(before + new), (tmp(), sorted(set(mess()) - set(before))))
ack, code, qid = queue_once(d.sock, b"after SIGCONT\n", envl(b"a@b", [b"c@d"]))
t.check("daemon resumed: serving", code == 0, (ack, code))
q.new(expect=1)

# --- SIGKILL of the daemon in the middle of DATA ---------------------------------
before = mess()
c = srv.connect()
c.transaction("s@client.test", ["u@example.test"])
c.cmd("DATA")
c.send(b"Subject: killed\r\n\r\n" + (b"k" * 78 + b"\r\n") * 1100)   # past the buffers to the disk
had = wait_for(lambda: tmp(), 5)
d.stop(9)
c.send(b"the end\r\n.\r\n")
code, text = c.reply()
c.close()
t.check("SIGKILL mid-DATA: 451", had and code == 451, (had, code, text))
t.check("SIGKILL mid-DATA: nothing in mess/", mess() == before)
t.check("SIGKILL mid-DATA: the log says deferred", "result=deferred" in last_message_log(), last_message_log())
for f in tmp():
    os.unlink(os.path.join(TMP, f))

# --- fallbacks to qmail-queue --------------------------------------------------------
def through_qmail_queue(name, **kw):
    n_warn = srv.logtext().count("event=fallback")
    ok = smtp(b"Subject: %s\r\n\r\nx\r\n" % name.encode(), **kw) == {}
    new = q.new(expect=1)
    rm = RECEIVED_QQ.match(message_of(new[0])["message"]) if len(new) == 1 else None
    t.check("%s: 250 through qmail-queue" % name, ok and rm is not None and new[0].endswith("." + rm.group(1).decode()),
            new)
    log = last_message_log()
    t.check("%s: the log names qmail-queue's pid" % name,
            rm is not None and re.search(r"qq=0 qqpid=%s\b" % rm.group(1).decode(), log), log)
    return srv.logtext().count("event=fallback") - n_warn

warned = through_qmail_queue("daemon killed (stale socket)")
t.check("daemon killed: no warning logged", warned == 0)
os.unlink(d.sock)
warned = through_qmail_queue("no socket")
t.check("no socket: no warning logged", warned == 0)

small = Daemon(inst, nofile=24)
held = [Client(small.sock), Client(small.sock)]
warned = through_qmail_queue("daemon full")
t.check("daemon full: the fallback logged once, as busy, not as an error",
        warned == 1 and "event=fallback to=qmail-queue reason=busy" in srv.logtext()
        and "Device or resource busy" not in srv.logtext(),
        srv.logtext()[-400:])
for c in held:
    c.close()
wait_for(lambda: False, 0.3)
t.check("slots free again: back through the daemon", smtp(b"Subject: back\r\n\r\nx\r\n") == {}
        and q.new(expect=1)[0].endswith(".%d" % small.pid))
srv2 = Server(inst, env={"QMAILQUEUE": inst.bin("qmail-queue")}, name="qmailqueue")
srv = srv2
through_qmail_queue("QMAILQUEUE set", port=srv2.port)
small.stop()
t.check("no debris in tmp/", tmp() == [], tmp())
t.done()
