#!/usr/bin/env python3
"""qmail-verify, the inbound DKIM verifier on the qmail-queue interface,
in an installed instance, against signatures nobody here wrote: messages
signed by dkimpy (RSA-SHA256, Ed25519-SHA256) and by OpenDKIM (opendkim
-t in sign mode) pass; a changed body byte, a changed signed header, an
added From:, an expired x=, a revoked key, a truncated b=, RSA-SHA1, a
512-bit key and a DNS server that never answers each give their result
in the one Authentication-Results header (read back with python3-authres,
a parser nobody here wrote). The keys come from a dnsmasq on loopback
that the test starts (control/dnsserver), never the machine's resolver.
A forged Authentication-Results naming our host (in any case, behind
comments, quoted) is removed; others stay. Mail from a RELAYCLIENT is
passed on untouched. Last, the same through tcpserver and qmail-smtpd
with QMAILQUEUE=qmail-verify and smtplib."""
import base64, os, re, shutil, smtplib, socket, struct, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IS_ROOT, T, Instance, BUILD, wait_for
import send_harness
from remote_peers import Dns
from smtpd_harness import Server
try:
    import dkim, authres
except ImportError:     # Debian's python3-dkim under another python3 first in PATH
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim, authres

t = T()
ME = "mx.example.test"
inst = Instance(t, control={"me": ME, "locals": ME, "rcpthosts": "example.test"})
tmp = tempfile.mkdtemp(prefix="verify.")
t.cleanups.append(lambda: shutil.rmtree(tmp, ignore_errors=True))
SIGN = os.path.join(BUILD, "testbin", "dkimsign")
RSA = open("tests/dkim-keys/rsa2048.pem", "rb").read()


def der(pem, pub):
    argv = ["openssl", "pkey", "-outform", "DER"] + (["-pubout"] if pub else [])
    return subprocess.run(argv, input=pem, capture_output=True, check=True).stdout


ED_SEED = base64.b64encode(der(open("tests/dkim-keys/ed.pem", "rb").read(), False)[-32:])
ED_PUB = base64.b64encode(der(open("tests/dkim-keys/ed.pem", "rb").read(), True)[-32:]).decode()
RSA_PUB = base64.b64encode(der(RSA, True)).decode()
WEAK = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"],
                      capture_output=True, check=True).stdout
WEAK_PUB = base64.b64encode(der(WEAK, True)).decode()

records = {
    "py._domainkey.example.test": "v=DKIM1; k=rsa; p=" + RSA_PUB,
    "py._domainkey.other.test": "v=DKIM1; k=rsa; p=" + RSA_PUB,
    "od._domainkey.example.test": "v=DKIM1; k=rsa; p=" + RSA_PUB,
    "ed._domainkey.example.test": "v=DKIM1; k=ed25519; p=" + ED_PUB,
    "gone._domainkey.example.test": "v=DKIM1; k=rsa; p=",
    "weak._domainkey.example.test": "v=DKIM1; k=rsa; p=" + WEAK_PUB,
}
args = []
for name, rec in records.items():
    chunks = [rec[i:i + 200] for i in range(0, len(rec), 200)]
    args.append("--txt-record=%s,%s" % (name, ",".join(chunks)))
dns = Dns(t, args)
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)

MSG = (b"From: Joe <joe@example.test>\r\nTo: z@mx.example.test\r\nSubject: hello\r\n"
       b"Date: Mon, 7 Dec 2026 00:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello.\r\n")


def pysign(msg, sel="py", domain=b"example.test", key=RSA, alg=b"rsa-sha256"):
    return dkim.sign(msg, sel.encode(), domain, key, canonicalize=(b"relaxed", b"relaxed"),
                     signature_algorithm=alg) + msg


def pysign_expired(msg):
    """dkimpy's signature with t= and x= in the past, put in before signing."""
    orig = dkim.DKIM.gen_header

    def gen(self, fields, *a):
        fields = [(k, b"1700000000") if k == b"t" else (k, v) for k, v in fields]
        fields.insert(-3, (b"x", b"1700000600"))
        return orig(self, fields, *a)
    dkim.DKIM.gen_header = gen
    try:
        return pysign(msg)
    finally:
        dkim.DKIM.gen_header = orig


OPENDKIM = shutil.which("opendkim") or ("/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)


def odsign(msg):
    """OpenDKIM's signature (test mode, no network: unshare --net)."""
    key = os.path.join(tmp, "od.pem")
    with open(key, "wb") as f:
        f.write(RSA)
    os.chmod(key, 0o600)
    conf = os.path.join(tmp, "od.conf")
    with open(conf, "w") as f:
        f.write("Mode s\nSyslog no\nDomain example.test\nSelector od\nKeyFile %s\n"
                "Canonicalization relaxed/relaxed\nRequireSafeKeys no\n" % key)
    path = os.path.join(tmp, "od.msg")
    with open(path, "wb") as f:
        f.write(msg)
    r = subprocess.run(["unshare", "--net", OPENDKIM, "-x", conf, "-t", path], capture_output=True, timeout=30)
    m = re.search(rb"^DKIM-Signature: .*", r.stdout, re.S | re.M)
    if r.returncode or not m:
        raise RuntimeError(r.stdout + r.stderr)
    return m.group(0).rstrip(b"\r\n") + b"\r\n" + msg


def queued():
    return set(os.listdir(inst.path("queue", "mess")))


def run(msg, env=None):
    """Runs qmail-verify as qmail-smtpd would (the SMTP uid, from
    192.0.2.1 unless env says otherwise): (exit code, queued message)."""
    before = queued()
    r, w = os.pipe()
    os.write(w, b"Fa@example.test\0Tz@mx.example.test\0\0")
    os.close(w)
    e = {"PATH": "/usr/bin:/bin", "TCPREMOTEIP": "192.0.2.1"}
    e.update(env or {})
    pre = None
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("smtpd")

        def pre():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
    p = subprocess.run([inst.bin("qmail-verify")], input=msg.replace(b"\r\n", b"\n"), stdout=r, env=e,
                       preexec_fn=pre, stderr=subprocess.PIPE, timeout=60)
    os.close(r)
    run.log = p.stderr.decode(errors="replace")
    new = queued() - before
    if p.returncode or len(new) != 1:
        return p.returncode, None
    b = open(os.path.join(inst.path("queue", "mess"), new.pop()), "rb").read()
    return 0, b[32:32 + struct.unpack(">Q", b[4:12])[0]]


def ars(m):
    """The Authentication-Results fields of m, unfolded."""
    head = m.split(b"\n\n", 1)[0].decode(errors="replace")
    fields = re.findall(r"^(Authentication-Results:.*(?:\n[ \t].*)*)", head, re.M | re.I)
    return [re.sub(r"\n([ \t])", r"\1", f) for f in fields]


def verdict(m):
    """{method: (result, {property: value})} from our own A-R header,
    parsed by python3-authres; None when it is not the first field
    after the trace fields (Received:, Return-Path:, Delivered-To:) or
    not exactly one names us."""
    if m is None:
        return None
    ours = [f for f in ars(m) if re.match(r"Authentication-Results:\s*" + re.escape(ME) + ";", f, re.I)]
    # the first field after the trace fields that queueing and delivery add
    first = re.sub(rb"^(?:(?:Received|Return-Path|Delivered-To):.*\n(?:[ \t].*\n)*)*", b"", m)
    if len(ours) != 1 or not first.startswith(b"Authentication-Results: " + ME.encode()):
        return None
    h = authres.AuthenticationResultsHeader.parse(ours[0])
    if h.authserv_id != ME:
        return None
    out = {}
    for r in h.results:
        out.setdefault(r.method, []).append((r.result, {"%s.%s" % (p.type, p.name): p.value for p in r.properties}))
    return out


def dkim_is(m, result, d="example.test", s="py"):
    v = verdict(m) or {}
    return any(r == result and p.get("header.d") == d and p.get("header.s") == s for r, p in v.get("dkim", []))


# --- signatures from dkimpy and OpenDKIM ------------------------------------
good = pysign(MSG)
rc, m = run(good)
b8 = re.search(rb"\bb=([A-Za-z0-9+/]{8})", good.split(b"bh=", 1)[1]).group(1).decode()
v = verdict(m) or {}
t.check("dkimpy RSA-SHA256: queued with dkim=pass header.d header.s header.b (8 chars)",
        rc == 0 and dkim_is(m, "pass") and v["dkim"][0][1].get("header.b") == b8, (rc, m and ars(m), b8))
t.check("one log line: event=dkim.verify result=pass d= s=",
        re.search(r"qmail-verify event=dkim\.verify result=pass d=example\.test s=py ", run.log) is not None
        and run.log.count("\n") == 1, run.log)
t.check("the message after the header is unchanged",
        m is not None and m.endswith(good.replace(b"\r\n", b"\n").split(b"\n", 1)[1]), m)
rc, m = run(pysign(MSG, sel="ed", key=ED_SEED, alg=b"ed25519-sha256"))
t.check("dkimpy Ed25519-SHA256: pass", rc == 0 and dkim_is(m, "pass", s="ed"), m and ars(m))
if OPENDKIM:
    rc, m = run(odsign(MSG))
    t.check("OpenDKIM RSA-SHA256: pass", rc == 0 and dkim_is(m, "pass", s="od"), m and ars(m))
else:
    t.skip("OpenDKIM", "opendkim not installed (.ci/install-deps installs it)")
both = pysign(pysign(MSG, sel="ed", key=ED_SEED, alg=b"ed25519-sha256"))
rc, m = run(both)
t.check("two signatures: two dkim= results, both pass",
        rc == 0 and dkim_is(m, "pass") and dkim_is(m, "pass", s="ed") and len(verdict(m)["dkim"]) == 2,
        m and ars(m))
rc, m = run(pysign(MSG, domain=b"other.test"))
t.check("d= not the From domain: still pass, header.d=other.test for DMARC to judge",
        rc == 0 and dkim_is(m, "pass", d="other.test"), m and ars(m))

# --- what must not pass ------------------------------------------------------
rc, m = run(good.replace(b"Hello.", b"Hellp."))
t.check("a changed body byte: fail", rc == 0 and dkim_is(m, "fail"), m and ars(m))
rc, m = run(good.replace(b"Subject: hello", b"Subject: hellO"))
t.check("a changed signed header: fail", rc == 0 and dkim_is(m, "fail"), m and ars(m))
rc, m = run(b"From: evil@example.test\r\n" + good)
t.check("an added From: fail (From is oversigned)", rc == 0 and dkim_is(m, "fail"), m and ars(m))
rc, m = run(pysign_expired(MSG))
t.check("an expired x=: neutral", rc == 0 and dkim_is(m, "neutral"), m and ars(m))
rc, m = run(pysign(MSG, sel="gone"))
t.check("a revoked key (p= empty): permerror", rc == 0 and dkim_is(m, "permerror", s="gone"), m and ars(m))
rc, m = run(pysign(MSG, sel="nokey"))
t.check("no key record: permerror", rc == 0 and dkim_is(m, "permerror", s="nokey"), m and ars(m))
sig_end = re.search(rb"\r\n(?![ \t])", good).start()     # the end of the DKIM-Signature field
cut = good[:sig_end - 4] + good[sig_end:]
rc, m = run(cut)
t.check("a truncated b= (4 base64 characters less): fail", cut != good and rc == 0 and dkim_is(m, "fail"),
        m and ars(m))
cut3 = good[:sig_end - 3] + good[sig_end:]
rc, m = run(cut3)
t.check("a b= that is no longer base64: neutral", rc == 0 and dkim_is(m, "neutral"), m and ars(m))
rc, m = run(pysign(MSG, alg=b"rsa-sha1"))
t.check("RSA-SHA1: policy, never pass", rc == 0 and dkim_is(m, "policy"), m and ars(m))
rc, m = run(pysign(MSG, sel="weak", key=WEAK))
t.check("a 512-bit RSA key: fail", rc == 0 and dkim_is(m, "fail", s="weak"), m and ars(m))
rc, m = run(MSG)
t.check("no signature: dkim=none", rc == 0 and (verdict(m) or {}).get("dkim", [(0,)])[0][0] == "none",
        m and ars(m))

many = b"".join(b"X-%d: x\r\n" % i for i in range(600)) + good
rc, m = run(many)
t.check("a header of 600 fields: accepted, dkim=permerror (not parsed), never pass",
        rc == 0 and (verdict(m) or {}).get("dkim", [(0,)])[0][0] == "permerror", m and ars(m))

# --- SPF's verdict from qmail-smtpd -------------------------------------------
rc, m = run(good, env={"SPF_RESULT": "softfail", "SPF_SCOPE": "mailfrom", "SPF_DOMAIN": "example.test"})
v = verdict(m) or {}
t.check("SPF_RESULT: spf=softfail smtp.mailfrom=example.test, before dkim= in the same header",
        rc == 0 and v.get("spf") == [("softfail", {"smtp.mailfrom": "example.test"})] and dkim_is(m, "pass")
        and ars(m)[0].index("spf=") < ars(m)[0].index("dkim="), m and ars(m))
rc, m = run(good, env={"SPF_RESULT": "pass", "SPF_SCOPE": "helo", "SPF_DOMAIN": "client.example.test"})
t.check("SPF_SCOPE=helo: smtp.helo=", rc == 0 and (verdict(m) or {}).get("spf") ==
        [("pass", {"smtp.helo": "client.example.test"})], m and ars(m))

# --- forged verdicts ------------------------------------------------------------
forged = (b"Authentication-Results: MX.Example.Test; dkim=pass header.d=bank.test\r\n"
          b"Authentication-Results: (a comment (nested) ) mx.example.test\r\n (x); spf=pass\r\n"
          b"Authentication-Results: \"mx.example.test\" 1; dkim=pass\r\n"
          b"Authentication-Results: relay.other.test; dkim=pass header.d=other.test\r\n")
rc, m = run(forged + good)
t.check("forged Authentication-Results naming us (any case, comments, quoted) removed; ours only",
        rc == 0 and verdict(m) is not None and len(ars(m)) == 2 and b"bank.test" not in m
        and b"nested" not in m and dkim_is(m, "pass"), m and ars(m))
t.check("an Authentication-Results of another host stays",
        m is not None and any(a.startswith("Authentication-Results: relay.other.test") for a in ars(m)))
t.check("the log counts the forged ones", "forged=3" in run.log, run.log)

# --- mail not judged ------------------------------------------------------------
for what, env in (("RELAYCLIENT", {"RELAYCLIENT": ""}), ("SMTPAUTHENTICATED=1", {"SMTPAUTHENTICATED": "1"}),
                  ("no TCPREMOTEIP (a local injector)", {"TCPREMOTEIP": ""})):
    if not env.get("TCPREMOTEIP", "x"):
        env = {}
    e = dict(env)
    rc, m = run(forged + good, env=e) if e else (None, None)
    if not e:
        before = queued()
        r, w = os.pipe()
        os.write(w, b"Fa@example.test\0Tz@mx.example.test\0\0")
        os.close(w)
        p = subprocess.run([inst.bin("qmail-verify")], input=(forged + good).replace(b"\r\n", b"\n"), stdout=r,
                           env={"PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE, timeout=30)
        os.close(r)
        new = queued() - before
        b = open(os.path.join(inst.path("queue", "mess"), new.pop()), "rb").read() if len(new) == 1 else b""
        rc, m = p.returncode, b[32:32 + struct.unpack(">Q", b[4:12])[0]] if b else None
    t.check("%s: passed on untouched (no header added, none removed)" % what,
            rc == 0 and m is not None and m.endswith((forged + good).replace(b"\r\n", b"\n"))
            and len(ars(m)) == 4, (rc, m and ars(m)))

# --- a DNS server that never answers ---------------------------------------------
mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
mute.bind(("127.0.0.1", 0))
t.cleanups.append(mute.close)
inst.control("dnsserver", "127.0.0.1:%d" % mute.getsockname()[1])
rc, m = run(good)
t.check("DNS timeout: temperror, and the message is accepted", rc == 0 and dkim_is(m, "temperror"),
        (rc, m and ars(m)))
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)

# --- the installed tcp.smtp sends clients from outside through qmail-verify ------
for ip, want in (("192.0.2.7", True), ("2001:db8::7", True), ("127.0.0.1", False), ("::1", False)):
    r = subprocess.run(["tcprulescheck", inst.path("control", "tcp.smtp.cdb")],
                       env=dict(os.environ, TCPREMOTEIP=ip), stdout=subprocess.PIPE)
    has = ("QMAILQUEUE=%s\n" % inst.bin("qmail-verify")).encode() in r.stdout
    t.check("installed tcp.smtp: %s %s through qmail-verify" % (ip, "goes" if want else "does not go"),
            has == want, r.stdout)

# --- end to end: tcpserver, qmail-smtpd, QMAILQUEUE=qmail-verify, smtplib,
# qmail-send into the postmaster's Maildir -----------------------------------
for f in os.listdir(inst.path("queue", "mess")):      # the checks above: never delivered
    os.unlink(inst.path("queue", "mess", f))
srv = Server(inst, env={"QMAILQUEUE": inst.bin("qmail-verify")})
e2e = forged + pysign(MSG + b"end to end\r\n")
with smtplib.SMTP("127.0.0.1", srv.port, timeout=30) as c:
    c.sendmail("joe@example.test", ["postmaster@" + ME], e2e)
send_harness.start(inst, inst.path("send.log"))
md = inst.path("alias", "Maildir", "new")
wait_for(lambda: os.path.isdir(md) and os.listdir(md), timeout=20)
got = [open(os.path.join(md, n), "rb").read() for n in (os.listdir(md) if os.path.isdir(md) else [])]
m = got[0] if len(got) == 1 else None
t.check("through tcpserver, qmail-smtpd and qmail-send into a Maildir: our dkim=pass, forged ones gone",
        m is not None and b"end to end" in m and dkim_is(m, "pass") and b"bank.test" not in m,
        (len(got), m and ars(m)))
t.check("qmail-smtpd's log has qmail-verify's line", "qmail-verify event=dkim.verify result=pass" in srv.logtext(),
        srv.logtext()[-800:])
t.done()
