#!/usr/bin/env python3
"""qmail-dkim, the signer on the qmail-queue interface, in an installed
instance: it signs mail from a local injector (root here), from the SMTP
uid only with RELAYCLIENT or SMTPAUTHENTICATED=1, never mail merely
relayed; dual-signs (RSA and Ed25519) as control/dkim/DOMAIN/selector
says, picks a parent domain's key, signs once, makes an 8-bit or
long-lined message 7-bit before signing (so qmail-remote's conversion
never applies), and every signature in the queued message verifies with
dkimpy. A missing key for a listed selector is a temporary failure."""
import os, struct, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IS_ROOT, T, Instance
from smtpd_harness import Server
import base64
try:
    import dkim
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

t = T()
inst = Instance(t, control={"locals": "mail.example.test", "rcpthosts": "mail.example.test",
                            "authloopback": "1"})
D = inst.path("control", "dkim", "example.test")
records = {}
for sel, typ in (("r1", "rsa"), ("e1", "ed25519")):
    out = subprocess.run([inst.bin("qmail-dkimkey"), "example.test", sel, typ],
                         capture_output=True, check=True).stdout.decode()
    records[("%s._domainkey.example.test." % sel).encode()] = open(os.path.join(D, sel + ".pub"), "rb").read().strip()
with open(os.path.join(D, "selector"), "w") as f:
    f.write("r1\ne1\n")
os.chmod(os.path.join(D, "selector"), 0o644)
os.chown(os.path.join(D, "selector"), *inst.uid("dkim"))


def dnsfunc(name, timeout=5):
    return records.get(name)


def queued():
    mess = inst.path("queue", "mess")
    return set(os.listdir(mess))


def run(msg, env=None, uid=None):
    """Runs qmail-dkim as qmail-queue would be run; the queued message."""
    before = queued()
    r, w = os.pipe()
    os.write(w, b"Fa@example.test\0Tz@elsewhere.test\0\0")
    os.close(w)
    e = {"PATH": "/usr/bin:/bin"}
    e.update(env or {})
    pre = None
    if uid is not None:
        def pre():
            os.setgid(uid[1]); os.setuid(uid[0])
    p = subprocess.run([inst.bin("qmail-dkim")], input=msg, stdout=r, env=e, preexec_fn=pre,
                       capture_output=False, stderr=subprocess.PIPE, timeout=30)
    os.close(r)
    new = queued() - before
    if p.returncode or len(new) != 1:
        return p.returncode, None
    b = open(os.path.join(inst.path("queue", "mess"), new.pop()), "rb").read()
    n = struct.unpack(">Q", b[4:12])[0]
    return 0, b[32:32 + n]


def sigs(m):
    return [l for l in m.split(b"\n") if l.startswith(b"DKIM-Signature:")]


def verifies_all(m):
    wire = m.replace(b"\n", b"\r\n")
    d = dkim.DKIM(wire)
    n = len(sigs(m))
    return n > 0 and all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(n))


MSG = b"From: Joe <joe@example.test>\nTo: z@elsewhere.test\nSubject: hi\n\nhello\n"
rc, m = run(MSG)
t.check("local injection: queued", rc == 0 and m is not None, rc)
m = m or b""
t.check("local injection: two signatures (RSA and Ed25519)",
        len(sigs(m)) == 2 and b"a=rsa-sha256" in m and b"a=ed25519-sha256" in m, m[:600])
t.check("both verify with dkimpy", verifies_all(m))

if IS_ROOT and inst.multi:
    smtpd = inst.uid("smtpd")
    rc, m = run(MSG, env={"TCPREMOTEIP": "192.0.2.1"}, uid=smtpd)
    t.check("relayed from outside (SMTP uid, no RELAYCLIENT): queued unsigned",
            rc == 0 and m is not None and not sigs(m), (rc, m))
    rc, m = run(MSG, env={"TCPREMOTEIP": "127.0.0.1", "RELAYCLIENT": ""}, uid=smtpd)
    t.check("RELAYCLIENT: signed", rc == 0 and m and len(sigs(m)) == 2 and verifies_all(m))
    rc, m = run(MSG, env={"TCPREMOTEIP": "192.0.2.1", "SMTPAUTHENTICATED": "1"}, uid=smtpd)
    t.check("authenticated client: signed", rc == 0 and m and len(sigs(m)) == 2 and verifies_all(m))
    rc, m = run(MSG, env={"SMTPAUTHENTICATED": "yes"}, uid=smtpd)
    t.check("SMTP uid, no RELAYCLIENT, no TCPREMOTEIP: still unsigned", rc == 0 and m is not None and not sigs(m))
else:
    t.skip("uid checks", "need root and a multi-uid instance")

rc, m = run(MSG.replace(b"joe@example.test", b"joe@mail.sub.example.test"))
t.check("a subdomain's From is signed with the parent's key (d=example.test)",
        rc == 0 and m and len(sigs(m)) == 2 and b"d=example.test;" in m and verifies_all(m))
rc, m = run(MSG.replace(b"joe@example.test", b"joe@other.test"))
t.check("a From domain without a key: unsigned", rc == 0 and m is not None and not sigs(m))
# An '@' in a display name or a comment is not the address.
for frm in (b'"joe@other.test" <joe@example.test>', b"joe@example.test (was joe@other.test)",
            b'"a (b" <joe@example.test> (x@other.test)'):
    rc, m = run(MSG.replace(b"Joe <joe@example.test>", frm))
    t.check("From: %s: signed as example.test" % frm.decode(),
            rc == 0 and m and len(sigs(m)) == 2 and b"d=example.test;" in m and verifies_all(m))
for frm in (b"joe@other.test (joe@example.test)", b'"joe@example.test" <joe@other.test>'):
    rc, m = run(MSG.replace(b"Joe <joe@example.test>", frm))
    t.check("From: %s: the address is other.test's, unsigned" % frm.decode(),
            rc == 0 and m is not None and not sigs(m), m)

rc, m1 = run(MSG)
rc2, m2 = run(m1 or b"")
t.check("a message signed already is not signed again", rc2 == 0 and m2 is not None and len(sigs(m2)) == 2,
        len(sigs(m2 or b"")))

eight = ("From: joe@example.test\nSubject: 8bit\nContent-Type: text/plain; charset=utf-8\n"
         "Content-Transfer-Encoding: 8bit\n\nGr\u00fc\u00dfe\n" + "y" * 3000 + "\n").encode()
rc, m = run(eight)
body = (m or b"").split(b"\n\n", 1)[-1]
t.check("8-bit and long lines: converted before signing (7-bit, lines <= 998)",
        rc == 0 and m and all(c < 128 for c in m) and max(len(l) for l in m.split(b"\n")) <= 998
        and b"quoted-printable" in m, (m or b"")[:400])
t.check("and the converted message verifies", m and verifies_all(m))

os.rename(os.path.join(D, "e1.key"), os.path.join(D, "e1.off"))
rc, m = run(MSG)
t.check("a listed selector without its key: temporary failure (55), nothing queued", rc == 55 and m is None, rc)
os.rename(os.path.join(D, "e1.off"), os.path.join(D, "e1.key"))
with open(os.path.join(D, "selector"), "w") as f:
    f.write("e1\n")
with open(os.path.join(D, "selector"), "w") as f:
    f.write("../example.test/e1\n")
rc, m = run(MSG)
t.check("a selector that is not a name (a path): temporary failure (55)", rc == 55 and m is None, rc)
with open(os.path.join(D, "selector"), "w") as f:
    f.write("e1\n")
rc, m = run(MSG)
t.check("the selector file switches keys without a restart (Ed25519 only now)",
        rc == 0 and m and len(sigs(m)) == 1 and b"s=e1;" in m and verifies_all(m))
# --- through qmail-smtpd with QMAILQUEUE=qmail-dkim ---------------------
subprocess.run([inst.bin("qmail-passwd"), "add", "joe"], input=b"pw-joe\n", check=True)
srv = Server(inst, env={"QMAILQUEUE": inst.bin("qmail-dkim")})


def smtp(auth):
    before = queued()
    c = srv.connect()
    c.cmd("EHLO client.test")
    if auth:
        c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe\0pw-joe").decode())
    c.cmd("MAIL FROM:<joe@example.test>")
    c.cmd("RCPT TO:<%s>" % ("z@elsewhere.test" if auth else "postmaster@mail.example.test"))
    c.cmd("DATA")
    code, _ = c.cmd("From: joe@example.test\r\nTo: z@elsewhere.test\r\nSubject: smtp\r\n\r\nhi\r\n.")
    c.close()
    new = queued() - before
    if code != 250 or len(new) != 1:
        return code, None
    b = open(os.path.join(inst.path("queue", "mess"), new.pop()), "rb").read()
    return code, b[32:32 + struct.unpack(">Q", b[4:12])[0]]


code, m = smtp(True)
t.check("SMTP AUTH client: queued signed (qmail-smtpd passes SMTPAUTHENTICATED=1), verifies",
        code == 250 and m and len(sigs(m)) == 1 and verifies_all(m), (code, m))
code, m = smtp(False)
t.check("SMTP client without AUTH or RELAYCLIENT, From our domain: queued unsigned",
        code == 250 and m is not None and not sigs(m), (code, m))
os.chmod(os.path.join(D, "e1.key"), 0o440)
code, m = smtp(True)
t.check("a key open to its group: 451 at the end of DATA, nothing queued", code == 451 and m is None, code)
t.done()
