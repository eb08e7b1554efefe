#!/usr/bin/env python3
"""Delivery over LMTP (RFC 2033) to the real Dovecot (dovecot-lmtpd).

qmail-send hands a domain routed "lmtp:" in control/smtproutes to
qmail-rspawn's workers, which speak LMTP to Dovecot's lmtp service. Two
Dovecot instances, each listening on a unix socket and on loopback TCP:
"perm" under quota_full_tempfail=no, "temp" under quota_full_tempfail=yes.
Four domains, one per instance and listener. Each gets a message to alice,
bob and dave at once; bob is over his quota (1K), so after the message
Dovecot answers 552 for him alone under perm, 452 under temp. Checks:
alice's and dave's Maildirs hold the message byte for byte (after the
Return-Path line Dovecot writes); the sender gets one bounce per perm
message, naming bob alone; under temp, bob's delivery is retried and,
once his quota is raised, lands; nothing is delivered twice or lost.
Root only: Dovecot switches to the mailbox owner's uid.
"""
import email, email.policy, os, re, signal, socket, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, free_port, wait_for
import dovecot_harness as dh
import send_harness as sh

t = T()
dh.require(t, "lmtp", "LMTP delivery to Dovecot")

inst = sh.setup(t)
D = sh.DOMAIN
u, g = inst.uid("alias")
USERS = ("alice", "bob", "dave")
CONF = """protocols = lmtp
mail_plugins = quota
lmtp_add_received_header = no
lmtp_hdr_delivery_address = none
quota_full_tempfail = %(tempfail)s
plugin {
  quota = maildir:User quota
}
service lmtp {
  unix_listener %(top)s/lmtp {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = %(port)d
  }
}
passdb {
  driver = static
  args = nopassword=y
}
userdb {
  driver = passwd-file
  args = %(top)s/users
}
"""


class Lmtp:
    """A Dovecot instance and its two domains, <kind>-unix.test and
    <kind>-tcp.test, with alice, bob (quota 1K) and dave in each."""

    def __init__(self, kind, tempfail):
        self.kind = kind
        self.port = free_port()
        self.dov = dh.Dovecot(t, CONF, port=self.port, tempfail=tempfail)
        self.domains = {"%s-unix.test" % kind: "lmtp:" + self.dov.path("lmtp"),
                        "%s-tcp.test" % kind: "lmtp:127.0.0.1:%d" % self.port}
        os.makedirs(self.dov.path("home"))
        for dom in self.domains:
            for name in USERS:
                os.mkdir(self.home(name, dom))
                os.chown(self.home(name, dom), u, g)
        self.users("1K")

    def home(self, name, dom):
        return self.dov.path("home", name + "." + dom)

    def users(self, bobquota):
        """Writes the passwd-file userdb (Dovecot rereads it when changed)."""
        lines = ["%s@%s::%d:%d::%s::%s" % (name, dom, u, g, self.home(name, dom),
                                           "userdb_quota_rule=*:storage=" + bobquota if name == "bob" else "")
                 for dom in self.domains for name in USERS]
        with open(self.dov.path("users.new"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(self.dov.path("users.new"), self.dov.path("users"))

    def listening(self):
        try:
            socket.create_connection(("127.0.0.1", self.port), 1).close()
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.dov.path("lmtp"))
            s.close()
            return True
        except OSError:
            return False


perm, temp = Lmtp("perm", "no"), Lmtp("temp", "yes")
for x in (perm, temp):
    up = x.dov.wait(x.listening)
    t.check("dovecot (%s) listens on a unix socket and 127.0.0.1:%d" % (x.kind, x.port), up, x.dov.log()[-800:])
    if not up:
        t.done()
where = {}
for x in (perm, temp):
    for dom in x.domains:
        where[dom] = x
inst.control("smtproutes", ["%s:%s" % (dom, x.domains[dom]) for dom, x in sorted(where.items())])
log = inst.path("send.log")
open(log, "w").close()
p = sh.start(inst, log)


def body(tag):
    # Over 1K (bob's quota), with what LMTP's DATA must carry unchanged:
    # dot lines, a lone ".", trailing blanks, an empty line.
    lines = ["Subject: lmtp %s" % tag, "From: alice@%s" % D, "Message-ID: <%s@x>" % tag, "",
             "TOKEN-%s-" % tag, ".a line starting with a dot", ".", "..", "trailing blanks  ", ""]
    lines += ["filler line %03d of a message over the quota of one kilobyte" % i for i in range(40)]
    return "\n".join(lines) + "\n"


def files(name, dom):
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(where[dom].home(name, dom), "Maildir", sub)
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, fn), "rb") as f:
                out.append(f.read())
    return out


def count(name, dom):
    return sum(1 for m in files(name, dom) if b"TOKEN-%s-" % dom.encode() in m)


def exact(m, dom):
    """m is the message as queued (qmail-queue's Received line, then what
    was sent) after the Return-Path line Dovecot writes."""
    return re.fullmatch(re.escape(b"Return-Path: <alice@%s>\n" % D.encode()) +
                        rb"Received: \(qmail-queue \d+ invoked by uid \d+\); [^\n]*\n" +
                        re.escape(sent[dom].encode()), m) is not None


def bounces():
    return [email.message_from_bytes(b, policy=email.policy.default)
            for _, b in sh.messages(inst, "alice") if b"report-type=delivery-status" in b]


def how(dom):
    return "%s over %s" % (where[dom].kind, "a unix socket" if "-unix" in dom else "TCP")


sent = {}
for dom in sorted(where):
    sent[dom] = body(dom)
    rc = inst.inject("alice@" + D, ["%s@%s" % (n, dom) for n in USERS], sent[dom])
    t.check("message to alice, bob and dave of %s queued" % dom, rc == 0, rc)

for dom in sorted(where):
    ok = wait_for(lambda: count("alice", dom) and count("dave", dom), 30)
    t.check("%s: alice and dave got the message" % how(dom), ok, where[dom].dov.log()[-600:])
    for name in ("alice", "dave"):
        got = [m for m in files(name, dom) if b"TOKEN-%s-" % dom.encode() in m]
        t.check("%s: %s's Maildir holds it byte for byte" % (how(dom), name),
                len(got) == 1 and exact(got[0], dom), got[0][:300] if got else "none")

ok = wait_for(lambda: len(bounces()) >= 2, 30)
t.check("the sender got a bounce for each perm message", ok, [m["Subject"] for m in bounces()])
named = []
for m in bounces():
    parts = list(m.iter_parts())
    ds = parts[1].get_payload() if len(parts) > 1 else []
    rcpts = [str(blk["Final-Recipient"]) for blk in ds if blk["Final-Recipient"]]
    status = [str(blk["Status"]) for blk in ds if blk["Status"]]
    diag = " ".join(str(blk["Diagnostic-Code"]) for blk in ds if blk["Diagnostic-Code"])
    named += rcpts
    t.check("a bounce names one recipient", len(rcpts) == 1, rcpts)
    t.check("  with Dovecot's 552 5.2.2 quota reply", status == ["5.2.2"] and "552" in diag and "uota" in diag,
            (status, diag))
t.check("the bounces name bob of each perm domain, no one else",
        sorted(named) == ["rfc822; bob@perm-tcp.test", "rfc822; bob@perm-unix.test"], named)

log_text = sh.read_log(log)
for dom in temp.domains:
    t.check("%s: bob deferred with Dovecot's 452, nothing delivered to him" % how(dom),
            count("bob", dom) == 0 and
            re.search(r"rcpt=bob@%s .*result=deferred.* 452 4\.2\.2" % re.escape(dom), log_text) is not None,
            [l for l in log_text.splitlines() if "bob@" + dom in l][-3:])
t.check("the temp messages stay queued for bob", len(os.listdir(inst.path("queue", "mess"))) >= 1)

# bob's quota is raised under temp. Dovecot notices a changed passwd-file
# when it next looks at its time stamp (seconds): retries (SIGALRM) until
# then are deferred again, as the first was.


def retried():
    if all(count("bob", dom) for dom in temp.domains):
        return True
    p.send_signal(signal.SIGALRM)
    return False


temp.users("10M")
ok = wait_for(retried, 30, 1)
t.check("after the retry bob got both temp messages", ok, sh.read_log(log)[-800:])
t.check("the queue drained", wait_for(lambda: sh.queue_empty(inst), 20), inst.queue_files())
p.send_signal(signal.SIGALRM)      # nothing left to send again
wait_for(lambda: False, 1)
for dom in sorted(where):
    got = {n: count(n, dom) for n in USERS}
    want = {"alice": 1, "bob": 1 if where[dom] is temp else 0, "dave": 1}
    t.check("%s: every recipient has the message as often as %s" % (how(dom), want), got == want, got)
for dom in temp.domains:
    b = [m for m in files("bob", dom) if b"TOKEN-%s-" % dom.encode() in m]
    t.check("%s: bob's late copy is byte for byte the message" % how(dom), len(b) == 1 and exact(b[0], dom), b[:1])
t.check("no bounce but the two for bob under perm", len(bounces()) == 2, len(bounces()))

# Messages one after another to one domain: a worker of qmail-rspawn keeps
# its LMTP connection for the next (smtp_reuse); each lands once.
dom = "perm-unix.test"
before = perm.dov.log().count("Connect from local")
for n in range(3):
    sent["%s-%d" % (dom, n)] = body("%s-%d" % (dom, n))
    inst.inject("alice@" + D, ["alice@" + dom], sent["%s-%d" % (dom, n)])
ok = wait_for(lambda: all(sum(1 for m in files("alice", dom) if b"TOKEN-%s-%d-" % (dom.encode(), n) in m) == 1
                          for n in range(3)), 30)
t.check("3 messages in a row over the unix socket: each in alice's Maildir once", ok)
conns = perm.dov.log().count("Connect from local") - before
# 0 when the connection kept from the messages before served all three.
t.check("  over fewer connections than messages (one kept between them)", conns < 3,
        (conns, perm.dov.log()[-1500:]))
t.done()
