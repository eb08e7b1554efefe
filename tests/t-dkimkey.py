#!/usr/bin/env python3
"""qmail-dkimkey: makes RSA (2048 by default) and Ed25519 key pairs in
control/dkim/DOMAIN/, owned by the signer's uid (the directory's owner)
with modes 0700/0400/0444, prints the zone-file line in quoted strings of
at most 255 bytes, reprints it with -p, never replaces a key, refuses 1024
bits and bad names. The printed record is checked to be the key's: a
message signed with the new key verifies with dkimpy against it."""
import os, re, stat, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IS_ROOT, T, Instance
try:
    import dkim
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

t = T()
inst = Instance(t)
SIGN = os.path.join(os.environ.get("BUILD", "build-check"), "testbin", "dkimsign")
uid = inst.uid("dkim")[0]


def tool(*args):
    p = subprocess.run([inst.bin("qmail-dkimkey")] + list(args), capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def record(line, sel, dom):
    m = re.fullmatch(r'(\S+) IN TXT((?: "[^"]*")+)\n', line)
    if not m or m.group(1) != "%s._domainkey.%s." % (sel, dom):
        return None, []
    parts = re.findall(r'"([^"]*)"', m.group(2))
    return "".join(parts), parts


d = inst.path("control", "dkim")
st = os.stat(d)
t.check("control/dkim is the signer's, mode 0700", st.st_uid == uid and stat.S_IMODE(st.st_mode) == 0o700,
        (st.st_uid, uid, oct(st.st_mode)))

for typ, args in (("rsa", []), ("ed25519", ["ed25519"])):
    rc, out, err = tool("example.test", "s-" + typ, *args)
    t.check("%s: made (exit 0)" % typ, rc == 0, err)
    txt, parts = record(out, "s-" + typ, "example.test")
    t.check("%s: the zone line has the record" % typ,
            txt is not None and txt.startswith("v=DKIM1; k=%s; p=" % typ), out)
    t.check("%s: strings of at most 255 bytes" % typ, parts and all(len(p) <= 255 for p in parts), parts)
    if typ == "rsa":
        t.check("rsa: a 2048-bit key's record needs two strings", len(parts) == 2, parts)
    key = os.path.join(d, "example.test", "s-%s.key" % typ)
    pub = os.path.join(d, "example.test", "s-%s.pub" % typ)
    ks, ps, ds = os.stat(key), os.stat(pub), os.stat(os.path.dirname(key))
    t.check("%s: key 0400, pub 0444, dir 0700, all the signer's" % typ,
            (stat.S_IMODE(ks.st_mode), stat.S_IMODE(ps.st_mode), stat.S_IMODE(ds.st_mode)) == (0o400, 0o444, 0o700)
            and ks.st_uid == ps.st_uid == ds.st_uid == uid)
    rc2, out2, _ = tool("-p", "example.test", "s-" + typ)
    t.check("%s: -p prints the same line" % typ, rc2 == 0 and out2 == out, out2)
    before = open(key, "rb").read()
    rc3, _, err3 = tool("example.test", "s-" + typ, *args)
    t.check("%s: an existing key is never replaced" % typ,
            rc3 == 100 and "already exists" in err3 and open(key, "rb").read() == before, err3)
    msg = b"From: a@example.test\nTo: b@example.test\nSubject: key\n\nbody\n"
    sig = subprocess.run([SIGN, key, "example.test", "s-" + typ, "relaxed", "relaxed", "1700000000"],
                         input=msg, capture_output=True).stdout
    wire = (sig + msg).replace(b"\n", b"\r\n")
    dns = {("s-%s._domainkey.example.test." % typ).encode(): (txt or "").encode()}
    t.check("%s: a message signed with the key verifies (dkimpy) against the printed record" % typ,
            sig and dkim.verify(wire, dnsfunc=lambda n, timeout=5: dns.get(n)))

rc, _, err = tool("example.test", "weak", "rsa", "1024")
t.check("1024 bits refused", rc == 100 and "1024" in err and
        not os.path.exists(os.path.join(d, "example.test", "weak.key")), err)
rc, _, err = tool("Example;test", "sel")
t.check("a bad domain refused", rc == 100, err)
rc, _, err = tool("example.test", "../x")
t.check("a selector with a slash refused", rc == 100, err)
rc, _, err = tool("-p", "example.test", "nosuch")
t.check("-p of a missing key fails", rc == 111 and "no such key" in err, err)
t.done()
