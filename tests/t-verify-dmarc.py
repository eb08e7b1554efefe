#!/usr/bin/env python3
"""DMARC in qmail-verify, in an installed instance: the dmarc= entry of
the one Authentication-Results header (after spf= and dkim=), the
event=dmarc log line, and control/dmarc's modes: reject (the default:
a p=reject failure and a message without exactly one From: address are
refused with qmail-queue exit 32, which qmail-smtpd answers 550 5.7.1),
quarantine (the mark X-Quarantine: dmarc), report and off. DKIM results
come from messages signed by dkimpy, SPF's from qmail-smtpd's variables
(SPF_RESULT, SPF_DOMAIN; and once through its own SPF check); keys,
SPF and DMARC records from a dnsmasq on
loopback; the Public Suffix List is a test file (control/publicsuffix) in
which "test" is a suffix. Mail from a RELAYCLIENT is never judged;
a received X-Quarantine is removed. Last, through tcpserver and
qmail-smtpd with smtplib: the 550 5.7.1 at the end of DATA."""
import base64, os, re, smtplib, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IS_ROOT, T, Instance
from remote_peers import Dns
from smtpd_harness import Server, Queue
try:
    import dkim
except ImportError:     # Debian's python3-dkim under another python3 first in PATH
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

t = T()
ME = "mx.example.test"
inst = Instance(t, control={"me": ME, "locals": ME, "rcpthosts": "example.test"})
PSL = inst.path("control", "test-psl.dat")
with open(PSL, "w") as f:
    f.write("// a test list\ntest\nco.test\n")
os.chmod(PSL, 0o644)
inst.control("publicsuffix", PSL)
RSA = open("tests/dkim-keys/rsa2048.pem", "rb").read()
RSA_PUB = base64.b64encode(subprocess.run(["openssl", "pkey", "-pubout", "-outform", "DER"], input=RSA,
                                          capture_output=True, check=True).stdout).decode()
KEY = "v=DKIM1; k=rsa; p=" + RSA_PUB
records = {
    "py._domainkey.example.test": KEY,
    "py._domainkey.other.test": KEY,
    "_dmarc.example.test": "v=DMARC1; p=reject; sp=quarantine",
    "_dmarc.quar.test": "v=DMARC1; p=quarantine",
    "_dmarc.mon.test": "v=DMARC1; p=none",
    "spf.example.test": "v=spf1 ip4:127.0.0.1 -all",
}
dns = Dns(t, ["--txt-record=%s,%s" % (n, ",".join(r[i:i + 200] for i in range(0, len(r), 200)))
              for n, r in records.items()], forward=["tempfail.test"])
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
q = Queue(inst)


def msg(frm, extra=b""):
    return (b"From: " + frm + b"\r\nTo: z@mx.example.test\r\nSubject: hello\r\n" + extra +
            b"Message-ID: <1@example.test>\r\n\r\nHello.\r\n")


def signed(m, domain=b"example.test"):
    return dkim.sign(m, b"py", domain, RSA, canonicalize=(b"relaxed", b"relaxed")) + m


def verify(m, env=None):
    """qmail-verify as qmail-smtpd runs it (the SMTP uid, a client at
    192.0.2.1): (exit code, the queued message or None, its log)."""
    r, w = os.pipe()
    os.write(w, b"Fa@example.test\0Tz@mx.example.test\0\0")
    os.close(w)
    e = {"PATH": "/usr/bin:/bin", "TCPREMOTEIP": "192.0.2.1"}
    e.update(env or {})
    kw = {}
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("smtpd")
        kw = dict(user=uid, group=gid, extra_groups=[])
    p = subprocess.run([inst.bin("qmail-verify")], input=m.replace(b"\r\n", b"\n"), stdout=r, env=e,
                       stderr=subprocess.PIPE, timeout=60, **kw)
    os.close(r)
    new = q.new()
    queued = q.read(new[0])[0] if p.returncode == 0 and len(new) == 1 else None
    return p.returncode, queued, p.stderr.decode(errors="replace")


def header(m):
    return m.split(b"\n\n", 1)[0].decode(errors="replace") if m else ""


def dmarc_entry(m):
    """Our Authentication-Results header's dmarc= entry, unfolded."""
    h = re.sub(r"\n[ \t]+", " ", header(m))
    a = re.search(r"^Authentication-Results: %s;(.*)$" % re.escape(ME), h, re.M)
    if not a:
        return None
    e = [x.strip() for x in a.group(1).split(";") if x.strip().startswith("dmarc=")]
    return e[0] if len(e) == 1 else None


SPF_PASS = {"SPF_RESULT": "pass", "SPF_SCOPE": "mailfrom", "SPF_DOMAIN": "bounces.example.test"}
cases = [
    # name, message, environment, exit code, dmarc= entry, quarantine mark, log
    ("aligned DKIM pass", signed(msg(b"Joe <joe@example.test>")), None, 0,
     "dmarc=pass (p=reject) header.from=example.test", False, "result=pass from=example.test"),
    ("aligned SPF pass (a subdomain, relaxed)", msg(b"joe@example.test"), SPF_PASS, 0,
     "dmarc=pass (p=reject) header.from=example.test", False, "spf_aligned=yes dkim_aligned=no"),
    ("SPF pass for <> through HELO", msg(b"joe@example.test"),
     {"SPF_RESULT": "pass", "SPF_SCOPE": "helo", "SPF_DOMAIN": "mail.example.test"}, 0,
     "dmarc=pass (p=reject) header.from=example.test", False, "result=pass"),
    ("p=reject, DKIM of another domain: refused", signed(msg(b"joe@example.test"), b"other.test"),
     None, 32, None, False, "result=fail from=example.test policy=reject record=example.test "
     "spf_aligned=no dkim_aligned=no action=reject"),
    ("p=reject, SPF softfail: refused", msg(b"joe@example.test"),
     dict(SPF_PASS, SPF_RESULT="softfail"), 32, None, False, "action=reject"),
    ("sp=quarantine for a subdomain: marked", msg(b"joe@sub.example.test"), None, 0,
     "dmarc=fail (p=quarantine) header.from=sub.example.test", True, "action=quarantine"),
    ("p=quarantine: marked", msg(b"joe@quar.test"), None, 0,
     "dmarc=fail (p=quarantine) header.from=quar.test", True, "record=quar.test"),
    ("p=none: accepted", msg(b"joe@mon.test"), None, 0,
     "dmarc=fail (p=none) header.from=mon.test", False, "action=accept"),
    ("no record: none", msg(b"joe@norecord.test"), None, 0,
     "dmarc=none header.from=norecord.test", False, "result=none"),
    ("SERVFAIL: temperror, accepted", msg(b"joe@tempfail.test"), None, 0,
     "dmarc=temperror header.from=tempfail.test", False, "result=temperror"),
    ("two From: fields: refused (RFC 7489 6.6.1)", msg(b"joe@example.test", b"From: x@evil.test\r\n"),
     None, 32, None, False, "result=permerror from=\"\" reason=multiple_from"),
    ("two From: addresses: refused", msg(b"joe@mon.test, x@evil.test"), None, 32, None, False,
     "reason=multiple_addresses"),
    ("no From: only reported", b"To: z@mx.example.test\r\nSubject: hi\r\n\r\nHi.\r\n", None, 0,
     "dmarc=permerror (no_from)", False, "reason=no_from spf_aligned=no dkim_aligned=no action=accept"),
    ("a forged mark is removed", signed(msg(b"joe@example.test", b"X-Quarantine: no\r\n")), None, 0,
     "dmarc=pass (p=reject) header.from=example.test", False, "result=pass"),
]
for name, m, env, rc, entry, marked, log in cases:
    got_rc, got, got_log = verify(m, env)
    ok = got_rc == rc and (rc != 0 or (dmarc_entry(got) == entry and
                                       ("X-Quarantine: dmarc" in header(got)) == marked and
                                       header(got).count("X-Quarantine") == int(marked)))
    t.check(name, ok, (got_rc, header(got), got_log))
    t.check(name + ": logged", "qmail-verify event=dmarc " in got_log and log in got_log, got_log)
    if rc:
        t.check(name + ": nothing queued", got is None)

# --- control/dmarc -------------------------------------------------------------------
FAIL = signed(msg(b"joe@example.test"), b"other.test")
inst.control("dmarc", "quarantine")
rc, m, log = verify(FAIL)
t.check("quarantine: a p=reject failure is marked, not refused",
        rc == 0 and "X-Quarantine: dmarc (example.test)" in header(m) and
        dmarc_entry(m) == "dmarc=fail (p=reject) header.from=example.test" and "action=quarantine" in log,
        (rc, header(m), log))
rc, m, log = verify(msg(b"a@x.test, b@y.test"))
t.check("quarantine: two From: addresses are marked",
        rc == 0 and "X-Quarantine: dmarc (multiple_addresses)" in header(m) and
        dmarc_entry(m) == "dmarc=permerror (multiple_addresses)", (rc, header(m), log))
inst.control("dmarc", "report")
rc, m, log = verify(FAIL)
t.check("report: accepted unmarked, the verdict in the header",
        rc == 0 and "X-Quarantine" not in header(m) and
        dmarc_entry(m) == "dmarc=fail (p=reject) header.from=example.test" and "action=accept" in log,
        (rc, header(m), log))
rc, m, log = verify(msg(b"joe@quar.test"))
t.check("report: p=quarantine unmarked too", rc == 0 and "X-Quarantine" not in header(m), header(m))
inst.control("dmarc", "off")
rc, m, log = verify(FAIL)
t.check("off: no dmarc= entry, no event=dmarc", rc == 0 and m is not None and dmarc_entry(m) is None
        and "dkim=pass" in header(m) and "event=dmarc" not in log, (rc, header(m), log))
inst.control("dmarc", "rejct")
rc, m, log = verify(FAIL)
t.check("a misspelt control/dmarc: a temporary failure, nothing queued",
        rc == 81 and m is None and "control/dmarc" in log, (rc, log))
inst.control("dmarc", "")
inst.control("publicsuffix", inst.path("control", "nonexistent.dat"))
rc, m, log = verify(FAIL)
t.check("no Public Suffix List: temperror, accepted",
        rc == 0 and dmarc_entry(m) == "dmarc=temperror (no_public_suffix_list) header.from=example.test",
        (rc, header(m), log))
inst.control("publicsuffix", PSL)

# --- never judged ------------------------------------------------------------------
rc, m, log = verify(FAIL, {"RELAYCLIENT": ""})
t.check("RELAYCLIENT: passed on, not judged", rc == 0 and dmarc_entry(m) is None and "event=dmarc" not in log,
        (rc, log))
rc, m, log = verify(FAIL, {"SMTPAUTHENTICATED": "1"})
t.check("authenticated: passed on, not judged", rc == 0 and "event=dmarc" not in log, (rc, log))

# --- end to end: qmail-smtpd answers the refusal 550 5.7.1 after DATA ---------------
srv = Server(inst, env={"QMAILQUEUE": inst.bin("qmail-verify")})
try:
    with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
        c.sendmail("joe@example.test", ["postmaster@" + ME], FAIL)
    code, text = 250, b""
except smtplib.SMTPDataError as e:
    code, text = e.smtp_code, e.smtp_error
t.check("through qmail-smtpd: 550 5.7.1 at the end of DATA", code == 550 and text.startswith(b"5.7.1 "),
        (code, text))
t.check("through qmail-smtpd: nothing queued", q.new() == [])
with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
    c.sendmail("joe@example.test", ["postmaster@" + ME], signed(msg(b"joe@example.test")))
new = q.new(expect=1)
t.check("through qmail-smtpd: an aligned message is queued with dmarc=pass",
        len(new) == 1 and dmarc_entry(q.read(new[0])[0]) == "dmarc=pass (p=reject) header.from=example.test",
        new)
# qmail-smtpd's own SPF check (spf.example.test allows 127.0.0.1) is what
# aligns an unsigned message (relaxed: spf.example.test and example.test).
with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
    c.sendmail("bounce@spf.example.test", ["postmaster@" + ME], msg(b"joe@example.test"))
new = q.new(expect=1)
m = q.read(new[0])[0] if len(new) == 1 else None
t.check("through qmail-smtpd: its SPF pass aligns an unsigned message",
        m is not None and "spf=pass smtp.mailfrom=spf.example.test" in re.sub(r"\n[ \t]+", " ", header(m))
        and dmarc_entry(m) == "dmarc=pass (p=reject) header.from=example.test", header(m))
t.done()
