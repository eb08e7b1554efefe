#!/usr/bin/env python3
"""Delivery status notifications, read with Python's email package (a
parser written elsewhere): the real enhanced status and the remote reply
in each recipient's fields (RFC 3463, 3464), a non-SMTP diagnostic type
for failures that are no SMTP reply, 4.4.7 on expiry, and UTF-8
recipients in message/global-delivery-status (RFC 6533)."""
import email, email.policy, os, re, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for
import send_harness as sh
from remote_peers import Sink

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
inst.control("smtproutes", "far.test:127.0.0.1:%d" % sink.port)
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
t.done()
