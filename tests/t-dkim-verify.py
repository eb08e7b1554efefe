#!/usr/bin/env python3
"""Cross-verification: messages signed by lib/dkim (through the dkimsign
test helper) verify with dkimpy, an implementation nobody here wrote, for
RSA-2048, RSA-3072 (PKCS#8) and Ed25519 keys and both canonicalizations,
over folded headers, trailing white space, empty bodies, LF and CRLF input,
8-bit and long bodies. dkimpy gets the public key from a dnsfunc serving
the record that `dkimsign -p` prints (no DNS query leaves the process).
A tampered copy of each must fail, so a verifier that passes anything
cannot make this test pass. The same messages go through OpenDKIM
(opendkim -t, its test mode over libopendkim, the key from TestDNSData,
in a network namespace of its own so that no query can leave).
opendkim-testmsg is not used: Debian 12's fails on every message
("dkim_chunk(): Syntax error"), even on one it signs itself."""
import os, shutil, subprocess, sys, tempfile
try:
    import dkim
except ImportError:     # Debian's python3-dkim under another python3 first in PATH
    sys.path.append("/usr/lib/python3/dist-packages")
    import dkim

BUILD = os.environ.get("BUILD", "build-check")
SIGN = os.path.join(BUILD, "testbin", "dkimsign")
KEYS = {"rsa": "tests/dkim-keys/rsa2048.pem", "rsa3072": "tests/dkim-keys/rsa3072p8.pem",
        "ed25519": "tests/dkim-keys/ed.pem"}
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def pubrec(key):
    p = subprocess.run([SIGN, "-p", KEYS[key]], capture_output=True, check=True).stdout
    k = b"ed25519" if key == "ed25519" else b"rsa"
    return b"v=DKIM1; k=" + k + b"; p=" + p


def sign(key, msg, hc, bc):
    r = subprocess.run([SIGN, KEYS[key], "example.test", "sel-" + key, hc, bc, "1700000000"],
                       input=msg, capture_output=True)
    if r.returncode:
        raise RuntimeError(r.stderr.decode())
    return r.stdout


def crlf(b):
    """The wire form: CRLF line ends, and a last line always ended (SMTP
    DATA ends with CRLF "." CRLF: qmail-remote ends an unended line)."""
    b = b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return b if not b or b.endswith(b"\r\n") else b + b"\r\n"


long_line = b"x" * 5000
MSGS = {
    "plain": b"From: A <a@example.test>\nTo: b@example.test\nSubject: hello\n"
             b"Date: Mon, 7 Dec 2026 00:00:00 +0000\nMessage-ID: <1@example.test>\n\nHello.\n",
    "folded": b"From: a@example.test\nTo: b@example.test,\n\tc@example.test,\n   d@example.test\n"
              b"Subject: folded \n  subject  line \t\nList-Id: <l.example.test>\n\nbody\n",
    # OpenDKIM's test mode passes header values as a milter gets them,
    # white space after the colon dropped: under simple header
    # canonicalization only dkimpy checks this one.
    "colon-spaces": b"From:   a@example.test\nSubject:\t  x\n\nbody\n",
    "trailing-ws": b"From: a@example.test \nSubject: ws \t\n\nline with spaces   \n\t\n  x  \t y \n\n\n\n",
    "empty-body": b"From: a@example.test\nSubject: empty\n\n",
    "no-body": b"From: a@example.test\nSubject: nothing\n",
    "crlf": b"From: a@example.test\r\nSubject: crlf\r\n\r\nline one\r\nline two\r\n\r\n",
    "8bit": "From: a@example.test\nSubject: =?utf-8?q?x?=\nContent-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\nGr\u00fc\u00dfe, \u65e5\u672c\n".encode(),
    "long": b"From: a@example.test\nSubject: long\n\n" + (b"line of text\n" * 20000) + long_line + b"\n",
    "no-final-lf": b"From: a@example.test\nSubject: nolf\n\nlast line without newline",
    "two-to": b"To: x@example.test\nFrom: a@example.test\nTo: y@example.test\nCc: z@example.test\n\nb\n",
}

OPENDKIM = shutil.which("opendkim") or ("/usr/sbin/opendkim" if os.path.exists("/usr/sbin/opendkim") else None)
tmp = tempfile.mkdtemp(prefix="dkim-verify.")
if OPENDKIM:
    with open(os.path.join(tmp, "dns"), "wb") as f:
        for key in KEYS:
            f.write(b"sel-" + key.encode() + b"._domainkey.example.test " + pubrec(key) + b"\n")
    with open(os.path.join(tmp, "conf"), "w") as f:
        f.write("Mode v\nSyslog no\nTestDNSData file:%s/dns\n" % tmp)
else:
    print("skip opendkim: not installed (.ci/install-deps installs it)")
skipped = 0


def opendkim(wire):
    """OpenDKIM's verdict on a message: True for pass."""
    path = os.path.join(tmp, "msg")
    with open(path, "wb") as f:
        f.write(wire)
    r = subprocess.run(["unshare", "--net", OPENDKIM, "-x", os.path.join(tmp, "conf"), "-t", path, "-vv"],
                       capture_output=True, timeout=30)
    out = r.stdout + r.stderr
    return b"verification (s=sel" in out and b") succeeded" in out


for key in KEYS:
    rec = pubrec(key)

    def dnsfunc(name, timeout=5, rec=rec):
        return rec if name == ("sel-%s._domainkey.example.test." % key).encode() else None

    for hc in ("relaxed", "simple"):
        for bc in ("relaxed", "simple"):
            for name, m in MSGS.items():
                what = "%s %s/%s %s" % (key, hc, bc, name)
                try:
                    sig = sign(key, m, hc, bc)
                except RuntimeError as e:
                    check(False, what + ": " + str(e))
                    continue
                wire = crlf(sig + m)
                check(dkim.verify(wire, dnsfunc=dnsfunc), what + " verifies")
                # LF and CRLF input sign the same.
                check(sign(key, crlf(m), hc, bc) == sig, what + " same on CRLF input")
                bad = wire[:-3] + (b"Z" if wire[-3:-2] != b"Z" else b"Y") + wire[-2:]
                check(not dkim.verify(bad, dnsfunc=dnsfunc), what + " tampered body fails")
                added = b"From: evil@example.test\r\n" + wire
                check(not dkim.verify(added, dnsfunc=dnsfunc), what + " added From fails")
                if OPENDKIM and (name != "colon-spaces" or hc == "relaxed"):
                    check(opendkim(wire), what + " verifies (opendkim)")
                    check(not opendkim(bad), what + " tampered body fails (opendkim)")
                elif not OPENDKIM:
                    skipped += 2

shutil.rmtree(tmp)
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
