#!/usr/bin/env python3
"""make bench-dkim: the cost of signing, per message, in an instance
installed by the test harness (PREFIX, BUILD as make check sets them).
Runs N injections of a 2 KB message through bin/qmail-queue (unsigned)
and through bin/qmail-dkim (QMAILQUEUE: read, sign, exec qmail-queue)
with an RSA-2048 key, an Ed25519 key, and both (dual signing); reports
CPU (user+sys of the children) per message and the extra over unsigned.
Writes bench/DKIM.md."""
import os, resource, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import T, Instance

N = int(os.environ.get("BENCH_DKIM_N", "300"))
t = T()
inst = Instance(t)
D = inst.path("control", "dkim", "example.test")
for sel, typ in (("r", "rsa"), ("e", "ed25519")):
    subprocess.run([inst.bin("qmail-dkimkey"), "example.test", sel, typ], check=True, capture_output=True)
MSG = (b"From: Joe <joe@example.test>\nTo: z@elsewhere.test\nSubject: bench\n"
       b"Date: Mon, 7 Dec 2026 00:00:00 +0000\nMessage-ID: <b@example.test>\n\n"
       + b"A line of text to make the body about two kilobytes long.\n" * 34)


def selectors(s):
    p = os.path.join(D, "selector")
    with open(p, "w") as f:
        f.write(s)
    os.chmod(p, 0o644)
    os.chown(p, *inst.uid("dkim"))


def run(prog):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.monotonic()
    for _ in range(N):
        r, w = os.pipe()
        os.write(w, b"Fjoe@example.test\0Tz@elsewhere.test\0\0")
        os.close(w)
        subprocess.run([inst.bin(prog)], input=MSG, stdout=r, check=True, env={"PATH": "/usr/bin:/bin"})
        os.close(r)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return cpu / N * 1000, (time.monotonic() - w0) / N * 1000


rows = [("unsigned (qmail-queue)", "qmail-queue", None), ("RSA-2048", "qmail-dkim", "r\n"),
        ("Ed25519", "qmail-dkim", "e\n"), ("RSA-2048 + Ed25519", "qmail-dkim", "r\ne\n")]
out = []
base = None
for name, prog, sel in rows:
    if sel:
        selectors(sel)
    cpu, wall = run(prog)
    base = cpu if base is None else base
    out.append("| %s | %.2f | %.2f | %+.2f |" % (name, cpu, wall, cpu - base))
text = ("# DKIM signing cost\n\nWritten by bench/dkim.py (make bench-dkim) on %s: %d injections of a "
        "2 KB message each, one process chain per message as sendmail runs it; CPU is user+sys of "
        "the children, ms per message.\n\n| path | CPU ms/msg | wall ms/msg | CPU over unsigned |\n"
        "|---|---|---|---|\n" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), N)
        + "\n".join(out) + "\n")
print(text)
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "DKIM.md"), "w") as f:
    f.write(text)
t.done()
