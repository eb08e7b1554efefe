#!/usr/bin/env python3
"""DANE for outbound SMTP (RFC 7672): qmail-remote against this MTA's own
qmail-tlsd + qmail-smtpd, with TLSA records in a zone signed here
(ldns-signzone), served by an authoritative unbound and validated by a
second unbound on loopback, which is control/dnsserver. Without a line in
control/tlspolicy, MX delivery uses the dane policy."""
import email, gzip, hashlib, json, os, re, socket, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from dnssec_harness import SignedWorld
from remote_peers import Sink
from send_harness import run_spawner, spawner_reply
from smtpd_harness import Queue
from tls_harness import CA, TlsServer, install_cert, run_remote


def der(pem_path, *args):
    return subprocess.run(["openssl", "x509", "-in", pem_path, "-outform", "DER"] + list(args),
                          check=True, stdout=subprocess.PIPE).stdout


def spki(pem_path):
    pub = subprocess.run(["openssl", "x509", "-in", pem_path, "-noout", "-pubkey"], check=True,
                         stdout=subprocess.PIPE).stdout
    return subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub, check=True,
                          stdout=subprocess.PIPE).stdout


t = T()
inst = Instance(t)
ca = CA(t)
leaf, key = ca.issue("mx-ta.dane.test", "ec")
chain = os.path.join(ca.dir, "chain.pem")
with open(chain, "w") as f:
    f.write(open(leaf).read() + open(ca.cert).read())   # the CA in the chain, for DANE-TA
install_cert(inst, chain, key)
# Expired a year ago, same name: DANE-EE ignores dates, DANE-TA does not.
old, oldkey = ca.issue("mx-ta.dane.test", "rsa", start="20240101000000Z", end="20250101000000Z")
oldchain = os.path.join(ca.dir, "oldchain.pem")
with open(oldchain, "w") as f:
    f.write(open(old).read() + open(ca.cert).read())
srv = TlsServer(inst)
port = srv.port
strip = Sink(t, host="127.0.0.2", port=port)             # no STARTTLS: an attacker's view
q = Queue(inst)

ee = hashlib.sha256(spki(leaf)).hexdigest()
ee512 = hashlib.sha512(der(leaf)).hexdigest()
ta = hashlib.sha256(der(ca.cert)).hexdigest()
wrong, forged = "00" * 32, "11" * 32


def host(name, tlsa=None, addr="127.0.0.1"):
    rr = ["%s MX 10 mx-%s" % (name, name), "mx-%s A %s" % (name, addr)]
    if tlsa:
        rr.append("_%d._tcp.mx-%s TLSA %s" % (port, name, tlsa))
    return rr


dane = (host("expired", "3 0 1 " + hashlib.sha256(der(old)).hexdigest()) + host("ee", "3 1 1 " + ee) + host("ee512", "3 0 2 " + ee512) + host("bad", "3 1 1 " + wrong) +
        host("ta", "2 0 1 " + ta) + host("taname", "2 0 1 " + ta) + host("none") +
        host("pkix", "1 1 1 " + ee) + host("bogus", "3 1 1 " + forged) +
        host("strip", "3 1 1 " + ee, addr="127.0.0.2") +
        ["cross MX 10 mx.plain.test.", "alias MX 10 mx-alias", "mx-alias CNAME mx-target", "mx-target A 127.0.0.1",
         "_%d._tcp.mx-target TLSA 3 1 1 %s" % (port, ee)] +
        # TLS-RPT: one delivery meets a bogus TLSA answer, a mismatch, a
        # stripped STARTTLS, then a match (MX preference order).
        ["rpt MX 5 mx-bogus", "rpt MX 10 mx-bad", "rpt MX 20 mx-strip", "rpt MX 30 mx-ee",
         '_smtp._tls.rpt TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.test"'])
# The forged record matches the server, but its signature no longer fits:
# a validating resolver answers SERVFAIL (bogus), which must defer.
world = SignedWorld(t, {
    "dane.test": (dane, True, [(forged, ee)]),
    "plain.test": (["@ MX 10 mx", "mx A 127.0.0.1", "_%d._tcp.mx TLSA 3 1 1 %s" % (port, wrong)], False, []),
})
t.check("signed zone served and validated", world.ok, world.logs())
inst.control("dnsserver", "127.0.0.1:%d" % world.port)
inst.control("smtpport", str(port))
inst.control("dnsloopback", "1")
inst.control("helohost", "client.example.test")

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain):
    return run_remote(inst, domain, "rcpt@" + domain, b"Subject: dane\n\nhello\n", **user)


def policy_line(err, host_, tls, why):
    return re.search(r"event=tls_policy host=%s policy=\S+ tls=%s why=%s\b" %
                     (re.escape(host_), re.escape(tls), re.escape(why)), err)


def delivered(n=1):
    return len(q.new(expect=n)) == n


code, text, err = remote("ee.dane.test")
t.check("DANE-EE 3 1 1 matching: delivered", code == "K" and delivered(), (code, text, err))
t.check("DANE-EE: the default policy is dane, TLSA found", policy_line(err, "mx-ee.dane.test", "dane", "tlsa"), err)
t.check("DANE-EE: logged tls=dane-ee", re.search(r"event=tls .*result=ok .*chain=verified tls=dane-ee", err), err)

code, text, err = remote("ee512.dane.test")
t.check("DANE-EE 3 0 2 (full certificate, SHA-512): delivered", code == "K" and delivered(), (code, text, err))

code, text, err = remote("bad.dane.test")
t.check("DANE-EE mismatch: deferred", code == "Z" and "no TLSA record matches" in text, (code, text, err))
t.check("DANE-EE mismatch: nothing delivered", q.new() == [])

code, text, err = remote("ta.dane.test")
t.check("DANE-TA 2 0 1 with the CA, name right: delivered", code == "K" and delivered(), (code, text, err))
t.check("DANE-TA: logged tls=dane-ta", re.search(r"event=tls .*tls=dane-ta", err), err)

code, text, err = remote("taname.dane.test")
t.check("DANE-TA, certificate names another host: deferred",
        code == "Z" and "names neither" in text and q.new() == [], (code, text, err))

code, text, err = remote("alias.dane.test")
t.check("MX host a CNAME: TLSA at the expanded name used, delivered", code == "K" and delivered(), (code, text, err))

code, text, err = remote("none.dane.test")
t.check("signed zone, no TLSA: delivered (may)", code == "K" and delivered(), (code, text, err))
t.check("no TLSA: logged tls=may why=no-tlsa", policy_line(err, "mx-none.dane.test", "may", "no-tlsa"), err)

code, text, err = remote("pkix.dane.test")
t.check("only PKIX-EE (unusable) TLSA: delivered over TLS (encrypt)",
        code == "K" and delivered() and policy_line(err, "mx-pkix.dane.test", "encrypt", "tlsa-unusable")
        and "result=ok" in err, (code, text, err))

code, text, err = remote("plain.test")
t.check("TLSA in an unsigned zone: ignored, delivered", code == "K" and delivered(), (code, text, err))
t.check("unsigned zone: logged why=mx-insecure", policy_line(err, "mx.plain.test", "may", "mx-insecure"), err)

code, text, err = remote("cross.dane.test")
t.check("signed MX, host in an unsigned zone: TLSA ignored, delivered", code == "K" and delivered()
        and policy_line(err, "mx.plain.test", "may", "addr-insecure"), (code, text, err))

code, text, err = remote("bogus.dane.test")
t.check("bogus TLSA signature: deferred", code == "Z" and "TLSA lookup failed or bogus" in text, (code, text, err))
t.check("bogus: nothing delivered, no connection", q.new() == [] and "event=tls " not in err, err)

n = len(strip.sessions)
code, text, err = remote("strip.dane.test")
s = strip.sessions[n:]
t.check("STARTTLS stripped by a host with TLSA: deferred", code == "Z" and "STARTTLS not offered" in text,
        (code, text, err))
t.check("STARTTLS stripped: never plaintext",
        len(s) == 1 and not s[0].data and not any(c.upper().startswith("MAIL") for c in s[0].commands)
        and "tls_fallback" not in err, [x.commands for x in s])

install_cert(inst, oldchain, oldkey)
code, text, err = remote("expired.dane.test")
t.check("DANE-EE 3 0 1, certificate expired: delivered (dates ignored)", code == "K" and delivered(),
        (code, text, err))
code, text, err = remote("ta.dane.test")
t.check("DANE-TA, certificate expired: deferred", code == "Z" and "expired" in text and q.new() == [],
        (code, text, err))
install_cert(inst, chain, key)

inst.control("tlspolicy", ["none.dane.test:dane-only", "ee.dane.test:may"])
code, text, err = remote("none.dane.test")
t.check("dane-only without TLSA: deferred", code == "Z" and "dane-only" in text and q.new() == [], (code, text, err))
code, text, err = remote("ee.dane.test")
t.check("an explicit may is not upgraded", code == "K" and delivered()
        and policy_line(err, "mx-ee.dane.test", "may", "tlspolicy"), (code, text, err))

inst.control("tlspolicy", [])
inst.control("smtproutes", ["relay.test:mx-ee.dane.test tls=dane", "relaybad.test:mx-bad.dane.test tls=dane",
                            "relaynone.test:mx-none.dane.test tls=dane"])
code, text, err = remote("relay.test")
t.check("route tls=dane, relay with matching TLSA: delivered", code == "K" and delivered()
        and re.search(r"tls=dane-ee", err), (code, text, err))
code, text, err = remote("relaybad.test")
t.check("route tls=dane, mismatch: deferred", code == "Z" and q.new() == [], (code, text, err))
code, text, err = remote("relaynone.test")
t.check("route tls=dane, relay without TLSA: deferred", code == "Z" and q.new() == [], (code, text, err))

# The same in qmail-rspawn's resident workers, one delivery after another:
# the TLSA records of one host never carry over to the next.
inst.control("smtproutes", [])
msg = tempfile.NamedTemporaryFile(dir="/tmp", delete=False)
msg.write(b"Subject: worker\n\nhello\n")
msg.close()
os.chmod(msg.name, 0o644)
t.cleanups.append(lambda: os.unlink(msg.name))
log = tempfile.TemporaryFile()
sock, proc = run_spawner(inst, [inst.bin("qmail-rspawn")], log, 20, **user)
msgfd = os.open(msg.name, os.O_RDONLY)
got = []
for slot, domain in enumerate(["ee.dane.test", "bad.dane.test", "none.dane.test", "strip.dane.test", "ta.dane.test"]):
    fields = [str(slot), "1795420800.000001.%d" % slot, "0", str(os.path.getsize(msg.name)), "0",
              "a@example.test", "0", "rcpt@" + domain]
    socket.send_fds(sock, [b"".join(f.encode() + b"\0" for f in fields)], [msgfd])
    r = spawner_reply(sock)
    got.append(r[1][:1] if r else "?")
sock.close()
proc.wait(20)
log.seek(0)
wlog = log.read().decode("utf-8", "replace")
t.check("workers: ee K, bad Z, none K, strip Z, ta K", got == ["K", "Z", "K", "Z", "K"], (got, wlog))
t.check("workers: logged tls=dane-ee and tls=dane-ta",
        re.search(r"tls=dane-ee", wlog) and re.search(r"tls=dane-ta", wlog), wlog)
t.check("workers: what was accepted arrived", delivered(3))

# TLS-RPT (RFC 8460): each DANE session is a line of the day file, and
# qmail-tlsrpt reports them with policy-type tlsa, one policy per TLSA
# RRset, its records the policy-string.
code, text, err = remote("rpt.dane.test")
t.check("rpt: delivered by the last MX", code == "K" and delivered(), (code, text, err))
days = sorted(f for f in os.listdir(inst.path("tlsrpt")) if re.match(r"\d{4}-\d\d-\d\d$", f))
lines = b"".join(open(inst.path("tlsrpt", d), "rb").read() for d in days)
t.check("rpt: DANE sessions in the day file",
        re.search(rb"^rpt\.dane\.test dane mx-bad\.dane\.test 127\.0\.0\.1 tlsa-invalid 3_1_1_%s$" % wrong.encode(),
                  lines, re.M), lines)
if days:       # a run across midnight: the sessions counted as one day
    for d in days[:-1]:
        os.unlink(inst.path("tlsrpt", d))
    with open(inst.path("tlsrpt", days[-1]), "wb") as f:
        f.write(lines)
day = days[-1] if days else "1970-01-01"
p = subprocess.run([inst.bin("qmail-tlsrpt"), day], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                   **user)
perr = p.stderr.decode()
t.check("qmail-tlsrpt: the report for rpt.dane.test queued",
        p.returncode == 0 and "event=report domain=rpt.dane.test day=%s result=queued" % day in perr, perr)
new = q.new(expect=1)
report = {}
if len(new) == 1:
    m = email.message_from_bytes(q.read(new[0])[0])
    part = [x for x in m.walk() if x.get_content_type() == "application/tlsrpt+gzip"]
    if part:
        report = json.loads(gzip.decompress(part[0].get_payload(decode=True)))
pols = {}
for x in report.get("policies", []):
    pol, s_ = x.get("policy", {}), x.get("summary", {})
    pols[tuple(pol.get("policy-string", []))] = (
        pol.get("policy-type"), pol.get("policy-domain"), s_.get("total-successful-session-count"),
        s_.get("total-failure-session-count"),
        sorted((f["result-type"], f.get("receiving-mx-hostname"), f.get("receiving-ip"), f["failed-session-count"])
               for f in x.get("failure-details", [])))
t.check("report: the TLSA mismatch, tlsa-invalid", pols.get(("3 1 1 " + wrong,)) ==
        ("tlsa", "rpt.dane.test", 0, 1, [("tlsa-invalid", "mx-bad.dane.test", "127.0.0.1", 1)]), report)
t.check("report: the matching RRset, one success and the stripped STARTTLS", pols.get(("3 1 1 " + ee,)) ==
        ("tlsa", "rpt.dane.test", 1, 1, [("starttls-not-supported", "mx-strip.dane.test", "127.0.0.2", 1)]), report)
t.check("report: the bogus answer, dnssec-invalid", pols.get(()) ==
        ("tlsa", "rpt.dane.test", 0, 1, [("dnssec-invalid", "mx-bogus.dane.test", None, 1)]), report)
t.check("report: nothing else", len(pols) == 3, report)

t.done()
