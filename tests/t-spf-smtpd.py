#!/usr/bin/env python3
"""SPF in qmail-smtpd through real tcpserver, with smtplib, on a dnsmasq
zone: report-only by default (the verdict reaches the queue stage as
SPF_RESULT, SPF_SCOPE, SPF_DOMAIN, and an inherited one never does);
control/spfpolicy's fail=reject and temperror=defer; one event=spf log
line per identity; and a hostile zone (a deep include chain, a loop, 100
void lookups, a server that never answers) that cannot hold MAIL past
control/spftimeout."""
import os, smtplib, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for
from remote_peers import Dns, TruncatingDns
from smtpd_harness import Server

t = T()
BOUND = 3

zone = ["--txt-record=forged.test,v=spf1 ip4:192.0.2.1 -all",
        "--txt-record=good.test,v=spf1 ip4:127.0.0.1 -all",
        "--txt-record=temp.test,v=spf1 include:x.slow.test -all",
        "--txt-record=loop1.test,v=spf1 include:loop2.test -all",
        "--txt-record=loop2.test,v=spf1 include:loop1.test -all",
        "--txt-record=voids.test,v=spf1 " + " ".join("a:v%d.voids.test" % i for i in range(100)) + " -all",
        "--txt-record=slowchain.test,v=spf1 " + " ".join("a:h%d.slow.test" % i for i in range(10)) + " -all",
        "--local=/in-addr.arpa/"]
zone += ["--txt-record=deep%d.test,v=spf1 include:deep%d.test -all" % (i, i + 1) for i in range(40)]

# A server that takes queries and never answers: dnsmasq forwards slow.test to it.
hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hole.bind(("127.0.0.1", 0))
t.cleanups.append(hole.close)
zone.append("--server=/slow.test/127.0.0.1#%d" % hole.getsockname()[1])
dnsd = Dns(t, zone)
t.check("dnsmasq answers", dnsd.ok)

inst = Instance(t)
inst.control("dnsserver", "127.0.0.1:%d" % dnsd.port)
inst.control("spftimeout", str(BOUND))

# The queue stage: a QMAILQUEUE that keeps its environment.
d = tempfile.mkdtemp(prefix="spfq.", dir="/tmp")
t.cleanups.append(lambda: __import__("shutil").rmtree(d, ignore_errors=True))
os.chmod(d, 0o1777)
qq = os.path.join(d, "qq")
with open(qq, "w") as f:
    f.write("#!/bin/sh\nenv > %s/env.$$ && cat >/dev/null && cat <&1 >/dev/null\n" % d)
os.chmod(qq, 0o755)


def envs():
    return sorted(os.path.join(d, x) for x in os.listdir(d) if x.startswith("env."))


def send(port, sender, helo="client.test"):
    """One message; (MAIL reply, DATA reply, the stage's SPF_* or None)."""
    before = set(envs())
    s = smtplib.SMTP("127.0.0.1", port, local_hostname=helo, timeout=30)
    s.ehlo()
    mail = s.mail(sender)
    data = None
    if mail[0] == 250:
        s.rcpt("postmaster@mail.example.test")
        data = s.data(b"Subject: spf\r\n\r\nhi\r\n")
    s.quit()
    new = sorted(set(envs()) - before)
    if not new:
        return mail, data, None
    env = dict(l.split("=", 1) for l in open(new[0]).read().splitlines() if "=" in l)
    return mail, data, {k: v for k, v in env.items() if k.startswith("SPF_")}


# --- default: report only ----------------------------------------------------
srv = Server(inst, env={"QMAILQUEUE": qq, "SPF_RESULT": "pass", "SPF_SCOPE": "mailfrom",
                        "SPF_DOMAIN": "inherited.test"})
mail, data, env = send(srv.port, "joe@forged.test")
t.check("default: a forged sender is accepted (report only)", mail[0] == 250 and data and data[0] == 250, (mail, data))
t.check("default: the queue stage gets SPF_RESULT=fail SPF_SCOPE=mailfrom SPF_DOMAIN=forged.test",
        env == {"SPF_RESULT": "fail", "SPF_SCOPE": "mailfrom", "SPF_DOMAIN": "forged.test"}, env)
mail, data, env = send(srv.port, "joe@good.test")
t.check("a permitted sender: SPF_RESULT=pass", env and env.get("SPF_RESULT") == "pass", env)
mail, data, env = send(srv.port, "", helo="good.test")
t.check("<>: postmaster@HELO is checked, SPF_SCOPE=helo SPF_DOMAIN=good.test",
        env == {"SPF_RESULT": "pass", "SPF_SCOPE": "helo", "SPF_DOMAIN": "good.test"}, env)
log = srv.logtext()
t.check("log: one event=spf line per identity",
        "event=spf ip=127.0.0.1 scope=helo domain=client.test result=none" in log and
        "event=spf ip=127.0.0.1 scope=mailfrom domain=forged.test result=fail" in log and
        "event=spf ip=127.0.0.1 scope=helo domain=good.test result=pass" in log, log[-2000:])

relay = Server(inst, relay=True, name="relay", env={"QMAILQUEUE": qq, "SPF_RESULT": "pass",
                                                      "SPF_SCOPE": "mailfrom", "SPF_DOMAIN": "inherited.test"})
mail, data, env = send(relay.port, "joe@forged.test")
t.check("RELAYCLIENT: not judged, and an inherited SPF_* never reaches the queue stage",
        mail[0] == 250 and env == {}, (mail, env))
t.check("RELAYCLIENT: no event=spf line", "event=spf" not in relay.logtext())

# --- enforcing ----------------------------------------------------------------
inst.control("spfpolicy", ["fail=reject", "temperror=defer"])
mail, data, env = send(srv.port, "joe@forged.test")
t.check("fail=reject: a forged sender gets 550 5.7.23 at MAIL, nothing queued",
        mail[0] == 550 and mail[1].startswith(b"5.7.23") and env is None, (mail, env))
mail, data, env = send(srv.port, "joe@good.test")
t.check("fail=reject: a permitted sender is queued", mail[0] == 250 and env and env["SPF_RESULT"] == "pass", (mail, env))
mail, data, env = send(srv.port, "joe@good.test", helo="forged.test")
t.check("fail=reject: a HELO name that fails is refused too", mail[0] == 550 and env is None, (mail, env))


def timed(sender):
    t0 = time.monotonic()
    s = smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.test", timeout=BOUND + 10)
    s.ehlo()
    try:
        r = s.mail(sender)
    except (OSError, smtplib.SMTPException) as e:
        r = (-1, repr(e).encode())
    took = time.monotonic() - t0
    s.close()
    return r, took


for sender, want, what in [("x@temp.test", 451, "a server that never answers"),
                           ("x@slowchain.test", 451, "ten names on a server that never answers"),
                           ("x@deep0.test", 250, "a 40-deep include chain"),
                           ("x@loop1.test", 250, "an include loop"),
                           ("x@voids.test", 250, "100 void lookups")]:
    r, took = timed(sender)
    t.check("%s: MAIL answered %d within the bound (%ds + 3)" % (what, want, BOUND),
            r[0] == want and took < BOUND + 3, (r, round(took, 1)))
    if want == 451:
        t.check("%s: 4.7.24" % what, r[1].startswith(b"4.7.24"), r)
log = srv.logtext()
for dom, res in [("temp.test", "temperror"), ("deep0.test", "permerror"), ("loop1.test", "permerror"),
                 ("voids.test", "permerror")]:
    t.check("log: %s is %s" % (dom, res), "domain=%s result=%s" % (dom, res) in log)



# A server that answers every UDP query truncated (TC) and takes the TCP
# retry without ever answering.
stall = TruncatingDns(t, rcode=0, stall_tcp=True)
inst.control("dnsserver", "127.0.0.1:%d" % stall.port)
r, took = timed("x@stall.test")
t.check("a server that truncates and never answers over TCP: 451 within the bound (%ds + 3)" % BOUND,
        r[0] == 451 and took < BOUND + 3, (r, round(took, 1)))
t.check("... and the client's TCP retry was made", len(stall.held) > 0, len(stall.held))
inst.control("dnsserver", "127.0.0.1:%d" % dnsd.port)

inst.control("spfpolicy", "off")
mail, data, env = send(srv.port, "joe@forged.test")
t.check("off: no check, no SPF_* for the stage", mail[0] == 250 and env == {}, (mail, env))
inst.control("spfpolicy", "reject-everything")
mail, data, env = send(srv.port, "joe@good.test")
t.check("a bad control/spfpolicy: 451 4.3.0, never a silent pass", mail[0] == 451, mail)

# The contract with the queue stage: qmail-verify writes the verdict into
# Authentication-Results.
inst.control("spfpolicy", "report")
ver = Server(inst, name="verify", env={"QMAILQUEUE": inst.bin("qmail-verify")})
mess = inst.path("queue", "mess")
before = set(os.listdir(mess))
with smtplib.SMTP("127.0.0.1", ver.port, local_hostname="client.test", timeout=30) as c:
    c.sendmail("joe@forged.test", ["postmaster@mail.example.test"], b"Subject: ar\r\n\r\nhi\r\n")
new = sorted(set(os.listdir(mess)) - before)
body = open(os.path.join(mess, new[0]), "rb").read() if len(new) == 1 else b""
t.check("through qmail-verify: Authentication-Results: ... spf=fail smtp.mailfrom=forged.test",
        b"spf=fail smtp.mailfrom=forged.test" in body and b"Authentication-Results: mail.example.test;" in body,
        body[:600])

# qmail-logsum counts the checks per result and names the failing domains.
out = subprocess.run(["sh", inst.bin("qmail-logsum"), srv.log.name], stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE).stdout.decode()
t.check("qmail-logsum: spf checks per result, domains not passing",
        "spf checks:" in out and " fail " in out.split("spf checks:")[1].split("\n")[0] and
        "forged.test fail" in out and "temp.test temperror" in out, out)
t.done()
