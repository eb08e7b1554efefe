#!/usr/bin/env python3
"""Delivery status notifications, read with Python's email package (a
parser written elsewhere): the real enhanced status and the remote reply
in each recipient's fields (RFC 3463, 3464), a non-SMTP diagnostic type
for failures that are no SMTP reply, 4.4.7 on expiry, and UTF-8
recipients in message/global-delivery-status (RFC 6533). Then the DSN
SMTP extension (RFC 3461) from qmail-smtpd to the report: DSN offered,
bad values refused with 501, NOTIFY=SUCCESS giving "delivered" (local)
and "relayed" (remote) notices, NEVER and a NOTIFY without FAILURE giving
none, RET=HDRS and RET=FULL, ENVID and ORCPT in the report."""
import email, email.policy, os, re, smtplib, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for
import send_harness as sh
from remote_peers import Sink
from smtpd_harness import Server

t = T()
inst = sh.setup(t)
D = sh.DOMAIN


def rcpt_reply(a):
    if a.startswith("later"):
        return "451 4.3.0 try later"
    if a.startswith("n"):
        return "550 5.1.1 <%s> no such user here" % a
    return "250 ok"


sink = Sink(t, rcpt=rcpt_reply, ext=["PIPELINING", "8BITMIME", "SMTPUTF8"])
hop = Sink(t, ext=["PIPELINING", "8BITMIME", "DSN"])
inst.control("smtproutes", ["far.test:127.0.0.1:%d" % sink.port, "dsnhop.test:127.0.0.1:%d" % hop.port])
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
log = inst.path("send.log")
p = sh.start(inst, log)


def report(subject, who="alice", timeout=20):
    """The one report about subject in who's Maildir, parsed."""
    def find():
        got = [b for _, b in sh.messages(inst, who) if ("Subject: " + subject).encode() in b
               and b"multipart/report" in b]
        return got if got and sh.queue_empty(inst) else None
    got = wait_for(find, timeout)
    t.check("one report about %r" % subject, got and len(got) == 1, got and len(got))
    return email.message_from_bytes(got[0], policy=email.policy.default) if got else None


def blocks(part):
    """The field blocks of a (global-)delivery-status part: a list of
    {lowercased name: value}. message/delivery-status comes parsed; the
    global type is parsed here with the same package."""
    if part.get_content_type() == "message/delivery-status":
        raw = [b.as_bytes() for b in part.get_payload()]
    else:
        payload = part.get_payload()
        text = payload[0].as_bytes() if isinstance(payload, list) else payload.encode() \
            if isinstance(payload, str) else bytes(payload)
        raw = re.split(rb"\r?\n\r?\n", text)
    out = []
    for r in raw:
        if not r.strip():
            continue
        m = email.message_from_string(r.strip().decode("utf-8") + "\n", policy=email.policy.compat32)
        out.append({k.lower(): re.sub(r"\s*\n\s+", " ", str(v)) for k, v in m.items()})
    return out


def per_rcpt(m):
    t.check("multipart/report; report-type=delivery-status",
            m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status",
            m.get_content_type())
    parts = list(m.iter_parts())
    b = blocks(parts[1]) if len(parts) == 3 else []
    t.check("per-message fields first", b and "reporting-mta" in b[0], b)
    return parts, {x["final-recipient"]: x for x in b[1:] if "final-recipient" in x}


# ---- a remote refusal and a local failure in one report ----------------------
inst.inject("alice@%s" % D, ["nobody@far.test", "nobox@%s" % D, "bob@%s" % D],
            "Subject: mixed\nMessage-ID: <mixed@x>\n\nbody\n")
m = report("mixed")
if m:
    parts, r = per_rcpt(m)
    t.check("part 2 is message/delivery-status", parts[1].get_content_type() == "message/delivery-status")
    t.check("two failed recipients", sorted(r) == ["rfc822; nobody@far.test", "rfc822; nobox@%s" % D], r)
    x = r.get("rfc822; nobody@far.test", {})
    t.check("remote: Status is the reply's enhanced code", x.get("status") == "5.1.1", x)
    t.check("remote: Diagnostic-Code is the SMTP reply itself",
            x.get("diagnostic-code") == "smtp; 550 5.1.1 <nobody@far.test> no such user here", x)
    t.check("remote: Action failed", x.get("action") == "failed", x)
    x = r.get("rfc822; nobox@%s" % D, {})
    t.check("local: Status 5.1.1", x.get("status") == "5.1.1", x)
    t.check("local: a non-SMTP diagnostic type",
            x.get("diagnostic-code", "").startswith("X-qmail; ") and "no mailbox" in x.get("diagnostic-code"), x)

# ---- a UTF-8 recipient: message/global-delivery-status ----------------------
env = dict(os.environ, SMTPUTF8="1")
inst.inject("alice@%s" % D, ["nöbody@far.test"], "Subject: utf8\n\nbody\n", env=env)
m = report("utf8")
if m:
    parts, r = per_rcpt(m)
    t.check("part 2 is message/global-delivery-status",
            parts[1].get_content_type() == "message/global-delivery-status",
            [x.get_content_type() for x in parts])
    raw = m.as_bytes()
    t.check("no message/delivery-status part", b"message/delivery-status" not in raw)
    x = r.get("utf-8; nöbody@far.test", {})
    t.check("Final-Recipient of type utf-8", x.get("status") == "5.1.1", r)

# ---- expiry: 4.4.7, and the last SMTP reply as the diagnostic ----------------
inst.control("queuelifetime", "0")
p.send_signal(1)   # SIGHUP
wait_for(lambda: "event=reload" in sh.read_log(log), 5)
inst.inject("alice@%s" % D, ["later@far.test"], "Subject: expiring\n\nbody\n")
m = report("expiring")
if m:
    parts, r = per_rcpt(m)
    x = r.get("rfc822; later@far.test", {})
    t.check("expired: Status 4.4.7", x.get("status") == "4.4.7", x)
    t.check("expired: the last reply as diagnostic", x.get("diagnostic-code") == "smtp; 451 4.3.0 try later", x)
inst.control("queuelifetime", "604800")
p.send_signal(1)
wait_for(lambda: sh.read_log(log).count("event=reload") >= 2, 5)

# ---- the DSN SMTP extension ---------------------------------------------------
srv = Server(inst, relay=True)
c = srv.connect()
code, text = c.cmd("EHLO client.test")
t.check("EHLO offers DSN", code == 250 and "DSN" in text.split("\n"), text)
for cmd, word in (("MAIL FROM:<a@x.test> RET=SOME", "RET"),
                  ("MAIL FROM:<a@x.test> ENVID=a+0Ab", "ENVID"),
                  ("MAIL FROM:<a@x.test> RET=FULL RET=HDRS", "twice")):
    code, text = c.cmd(cmd)
    t.check("%s: 501 saying why" % cmd, code == 501 and word in text, (code, text))
code, _ = c.cmd("MAIL FROM:<a@x.test> RET=FULL ENVID=x")
t.check("good MAIL parameters: 250", code == 250, code)
for cmd, word in (("RCPT TO:<bob@%s> NOTIFY=NEVER,SUCCESS" % D, "NEVER"),
                  ("RCPT TO:<bob@%s> NOTIFY=SOMETIMES" % D, "NOTIFY"),
                  ("RCPT TO:<bob@%s> ORCPT=rfc822" % D, "ORCPT"),
                  ("RCPT TO:<bob@%s> ORCPT=rfc822;a+0Db" % D, "ORCPT")):
    code, text = c.cmd(cmd)
    t.check("%s: 501 saying why" % cmd, code == 501 and word in text, (code, text))
code, _ = c.cmd("RCPT TO:<bob@%s> NOTIFY=success,delay ORCPT=rfc822;b+2Bc@x.test" % D)
t.check("good RCPT parameters: 250", code == 250, code)
c.close()


def send(subject, mail_opts, rcpts, body="TOKEN-BODY\n"):
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
        s.ehlo("client.test")
        t.check("%s: MAIL" % subject, s.mail("alice@%s" % D, mail_opts)[0] == 250)
        for r, o in rcpts:
            t.check("%s: RCPT %s" % (subject, r), s.rcpt(r, o)[0] == 250)
        msg = "Subject: %s\nMessage-ID: <%s@x>\n\n%s" % (subject, subject, body)
        code, _ = s.data(msg.replace("\n", "\r\n").encode())
        t.check("%s: queued" % subject, code == 250, code)


send("dsn-ok", ["RET=HDRS", "ENVID=QQ+2B1"],
     [("bob@%s" % D, ["NOTIFY=SUCCESS", "ORCPT=rfc822;Bob+2Bold@old.test"]),
      ("nobox@%s" % D, ["NOTIFY=NEVER"]),
      ("ok@far.test", ["NOTIFY=SUCCESS,FAILURE"]),
      ("carol@%s" % D, [])])
m = report("dsn-ok")
if m:
    parts, r = per_rcpt(m)
    t.check("Original-Envelope-Id is ENVID, decoded",
            blocks(parts[1])[0].get("original-envelope-id") == "QQ+1", blocks(parts[1])[0])
    t.check("only the recipients who asked", sorted(r) == ["rfc822; bob@%s" % D, "rfc822; ok@far.test"], r)
    x = r.get("rfc822; bob@%s" % D, {})
    t.check("local: Action delivered, 2.0.0", x.get("action") == "delivered" and x.get("status") == "2.0.0", x)
    t.check("ORCPT as Original-Recipient, decoded", x.get("original-recipient") == "rfc822;Bob+old@old.test", x)
    x = r.get("rfc822; ok@far.test", {})
    t.check("remote: Action relayed (the next hop is not asked)",
            x.get("action") == "relayed" and x.get("status") == "2.0.0", x)
    t.check("a delivery notice quotes the headers only",
            parts[2].get_content_type() == "text/rfc822-headers" and
            b"TOKEN-BODY" not in parts[2].get_payload(decode=True), parts[2].get_content_type())
    t.check("subject says delivery", "delivery notice" in str(m["Subject"]), m["Subject"])

t.check("a next hop without DSN is not sent the parameters",
        not [c for x in sink.sessions for c in x.commands if "NOTIFY=" in c or "RET=" in c or "ENVID=" in c],
        [c for x in sink.sessions for c in x.commands])

# A next hop that announces DSN gets the parameters, and reports itself.
before = len(sh.messages(inst, "alice"))
send("dsn-hop", ["RET=HDRS", "ENVID=QQ+2B1"],
     [("a@dsnhop.test", ["NOTIFY=SUCCESS", "ORCPT=rfc822;x+2By@z.test"]), ("b@dsnhop.test", ["NOTIFY=NEVER"]),
      ("c@dsnhop.test", [])])
ok = wait_for(lambda: any(x.data for x in hop.sessions) and sh.queue_empty(inst), 20)
cmds = [c for x in hop.sessions for c in x.commands]
t.check("relayed to the DSN hop", ok, cmds)
t.check("MAIL carries RET and ENVID", any(c.startswith("MAIL FROM:<alice@%s>" % D) and " RET=HDRS" in c and
                                           " ENVID=QQ+2B1" in c for c in cmds), cmds)
t.check("RCPT carries NOTIFY and ORCPT", "RCPT TO:<a@dsnhop.test> NOTIFY=SUCCESS ORCPT=rfc822;x+2By@z.test" in cmds
        and "RCPT TO:<b@dsnhop.test> NOTIFY=NEVER" in cmds and "RCPT TO:<c@dsnhop.test>" in cmds, cmds)
time.sleep(1)
t.check("no relayed notice: the next hop reports", len(sh.messages(inst, "alice")) == before,
        [b[:300] for _, b in sh.messages(inst, "alice")[before:]])

send("dsn-full", ["RET=FULL"], [("nobox@%s" % D, ["NOTIFY=FAILURE"])])
m = report("dsn-full")
if m:
    parts, r = per_rcpt(m)
    t.check("RET=FULL: the message comes back", parts[2].get_content_type() == "message/rfc822" and
            b"TOKEN-BODY" in parts[2].as_bytes(), parts[2].get_content_type())
    t.check("RET=FULL failure: Action failed", r.get("rfc822; nobox@%s" % D, {}).get("action") == "failed", r)

send("dsn-hdrs", ["RET=HDRS"], [("nobox@%s" % D, [])])
m = report("dsn-hdrs")
if m:
    parts, r = per_rcpt(m)
    t.check("RET=HDRS: headers only", parts[2].get_content_type() == "text/rfc822-headers" and
            b"TOKEN-BODY" not in parts[2].as_bytes(), parts[2].get_content_type())

before = len(sh.messages(inst, "alice"))
send("dsn-never", [], [("nobox@%s" % D, ["NOTIFY=NEVER"]), ("nobody@far.test", ["NOTIFY=SUCCESS"])])
ok = wait_for(lambda: re.search(r"event=done \S+ failed=2", sh.read_log(log)) and sh.queue_empty(inst), 20)
t.check("NEVER, and SUCCESS only, failed: message done", ok)
time.sleep(1)
t.check("and no report", len(sh.messages(inst, "alice")) == before,
        [b[:300] for _, b in sh.messages(inst, "alice")[before:]])

# ---- delay notices: control/delaywarningtime ---------------------------------
inst.control("delaywarningtime", "1")
p.send_signal(1)
wait_for(lambda: sh.read_log(log).count("event=reload") >= 3, 5)
send("dsn-delay", ["ENVID=late"], [("dave@%s" % D, ["NOTIFY=DELAY,FAILURE"]),
                                   ("erin@%s" % D, ["NOTIFY=FAILURE"])])
t.check("dave is deferred", wait_for(lambda: re.search(r"rcpt=dave@\S+ channel=local result=deferred",
                                                       sh.read_log(log)), 10))
time.sleep(1.5)
p.send_signal(14)   # SIGALRM: the next attempts now, past delaywarningtime


def delay_reports():
    return [b for _, b in sh.messages(inst, "alice") if b"Subject: dsn-delay" in b]


t.check("a delay notice comes", wait_for(lambda: delay_reports(), 15))
got = delay_reports()
if got:
    m = email.message_from_bytes(got[0], policy=email.policy.default)
    parts, r = per_rcpt(m)
    t.check("delay: only the recipient that asked", list(r) == ["rfc822; dave@%s" % D], r)
    x = r.get("rfc822; dave@%s" % D, {})
    t.check("delay: Action delayed, Status 4.x.x, Will-Retry-Until",
            x.get("action") == "delayed" and x.get("status", "").startswith("4.") and
            "will-retry-until" in x, x)
    t.check("delay: Subject", "delayed" in str(m["Subject"]), m["Subject"])
n = sh.read_log(log).count("type=delay")
# SIGALRM retries the messages waiting when it comes; the notice can be
# in alice's Maildir before dave's message is back to waiting (under
# load), so the alarm is sent again each second until the retry is seen.
alarmed = [0.0]


def retried():
    if len(re.findall(r"rcpt=dave@\S+ channel=local result=deferred", sh.read_log(log))) >= 3:
        return True
    if time.monotonic() - alarmed[0] >= 1.0:
        p.send_signal(14)
        alarmed[0] = time.monotonic()
    return False


t.check("retried again", wait_for(retried, 15))
time.sleep(0.5)
t.check("one delay notice per recipient", len(delay_reports()) == 1 and
        sh.read_log(log).count("type=delay") == n, len(delay_reports()))
inst.control("delaywarningtime", "0")
p.send_signal(1)
sh.make_maildir(inst, inst.path("home", "dave"))
sh.make_maildir(inst, inst.path("home", "erin"))
p.send_signal(14)
t.check("dave delivered at last", wait_for(lambda: re.search(r"rcpt=dave@\S+ channel=local result=delivered",
                                                             sh.read_log(log)) and sh.queue_empty(inst), 15))
t.check("and no other notice", len(delay_reports()) == 1, len(delay_reports()))
t.check("its warning records go with it", not os.listdir(inst.path("queue", "bounce")),
        os.listdir(inst.path("queue", "bounce")))

# ---- sendmail -N, -R, -V --------------------------------------------------------
sm = subprocess.run([inst.bin("sendmail"), "-f", "alice@%s" % D, "-N", "success,failure", "-R", "hdrs",
                     "-V", "my id+1", "bob@%s" % D], input=b"Subject: dsn-sendmail\n\nTOKEN-BODY\n",
                    capture_output=True)
t.check("sendmail with -N -R -V: exit 0", sm.returncode == 0, sm.stderr)
m = report("dsn-sendmail")
if m:
    parts, r = per_rcpt(m)
    t.check("sendmail -V: Original-Envelope-Id", blocks(parts[1])[0].get("original-envelope-id") == "my id+1",
            blocks(parts[1])[0])
    t.check("sendmail -N success: delivered", r.get("rfc822; bob@%s" % D, {}).get("action") == "delivered", r)
for bad in (["-N", "sometimes"], ["-R", "most"], ["-V", "a\x01b"]):
    sm = subprocess.run([inst.bin("sendmail"), "-f", "alice@%s" % D] + bad + ["bob@%s" % D],
                        input=b"Subject: x\n\nx\n", capture_output=True)
    t.check("sendmail %s: exit 100" % " ".join(bad), sm.returncode == 100, (sm.returncode, sm.stderr))

# ---- qmail-queue's envelope: P fields checked like SMTP's --------------------
def qq(envelope):
    r, w = os.pipe()
    q = subprocess.Popen([inst.bin("qmail-queue")], stdin=subprocess.PIPE, stdout=r)
    os.close(r)
    q.stdin.write(b"Subject: qq\n\nx\n")
    q.stdin.close()
    os.write(w, envelope)
    os.close(w)
    return q.wait()


for env, want in ((b"Falice@x.test\0PRET=HDRS\0PENVID=a+2Bb\0Tok@far.test\0PNOTIFY=NEVER\0"
                   b"PORCPT=rfc822;ok@far.test\0Tok2@far.test\0\0", 0),
                  (b"Fa@x.test\0PRET=FULL\0PRET=HDRS\0Tok@far.test\0\0", 91),
                  (b"Fa@x.test\0Tok@far.test\0PRET=FULL\0\0", 91),
                  (b"Fa@x.test\0PNOTIFY=NEVER\0Tok@far.test\0\0", 91),
                  (b"Fa@x.test\0Tok@far.test\0PNOTIFY=NEVER,DELAY\0\0", 91),
                  (b"Fa@x.test\0Tok@far.test\0PORCPT=rfc822;a+0Ab\0\0", 91),
                  (b"Fa@x.test\0PFOO=1\0Tok@far.test\0\0", 91)):
    t.check("qmail-queue %r: exit %d" % (env, want), qq(env) == want)
t.check("queue drains", wait_for(lambda: sh.queue_empty(inst), 20))
t.done()
