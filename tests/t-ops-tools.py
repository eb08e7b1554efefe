#!/usr/bin/env python3
"""qmail-qstat and qmail-qread against a queue of known content.

Messages are put in with bin/qmail-queue while no qmail-send runs; some
recipients' state bytes are then set by hand (as qmail-send would), and a
bounce record is written for a failed one, so that every state shows up.
Also: both tools escape control bytes in addresses, report damaged files,
and refuse arguments.
"""
import os, re, struct, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import IS_ROOT, T, Instance

t = T()
inst = Instance(t, control={"locals": ["localhost", "example.test"]})


def tool(name, *args):
    p = subprocess.run([inst.bin(name)] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def records(path):
    """(type, offset of data, data) for each envelope record of a queue file."""
    b = open(path, "rb").read()
    msg_len, env_off = struct.unpack(">QQ", b[4:20])
    out, i = [], env_off
    while i < len(b):
        typ, n = b[i:i + 1], struct.unpack(">I", b[i + 1:i + 5])[0]
        out.append((typ, i + 5, b[i + 5:i + 5 + n]))
        i += 5 + n
    return out


def set_state(qid, index, state):
    path = inst.path("queue", "mess", qid)
    rs = [r for r in records(path) if r[0] == b"R"]
    with open(path, "r+b") as f:
        f.seek(rs[index][1])
        f.write(state)


for name in ("qmail-qstat", "qmail-qread"):
    if not os.path.exists(inst.bin(name)):
        t.skip(name, "not built yet")
if not all(os.path.exists(inst.bin(n)) for n in ("qmail-qstat", "qmail-qread", "qmail-queue")):
    t.done()

rc, out, _ = tool("qmail-qstat")
t.check("qstat on an empty queue", rc == 0 and "messages in queue: 0" in out, out)
rc, out, _ = tool("qmail-qread")
t.check("qread on an empty queue prints nothing", rc == 0 and out == "", out)

m1 = "Subject: one\n\nbody one\n"
t.check("inject 1", inst.inject("ann@example.test", ["joe@localhost", "bob@remote.test",
                                                     "cat@remote.test"], m1) == 0)
time.sleep(1.1)  # distinct birth seconds: qread lists oldest first
t.check("inject 2", inst.inject("", ["Dan@Example.TEST"], "Subject: two\n\n" + "x" * 1000 + "\n") == 0)
# qmail-queue refuses an address with control bytes (it is no RFC 5321
# mailbox), so the hostile sender is written into the queued file in place
# of a harmless one of the same length, and the file's sum recomputed
# (XXH64 of what follows the header, lib/qfile.h): what a queue of an older
# version, or a queue uid taken over, could hold.
t.check("inject 3", inst.inject("eveZZZZZ@evil.test", ["ok@remote.test"], "Subject: three\n\n") == 0)
import ctypes
_xxh = ctypes.CDLL("libxxhash.so.0")
_xxh.XXH64.restype = ctypes.c_uint64
_xxh.XXH64.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
for q in inst.queue_files():
    path = inst.path("queue", "mess", q)
    b = open(path, "rb").read()
    if b"eveZZZZZ@evil.test" in b:
        b = b.replace(b"eveZZZZZ@evil.test", b"eve\x1b[31m@evil.test")
        b = b[:20] + struct.pack(">Q", _xxh.XXH64(b[32:], len(b) - 32, 0)) + b[28:]
        with open(path, "r+b") as f:
            f.write(b)
qids = inst.queue_files()
t.check("three messages queued", len(qids) == 3, qids)
qids.sort(key=lambda q: (int(q.split(".")[0]), q))
first = qids[0]

# Message 1: joe delivered, bob failed (with its bounce record), cat pending.
set_state(first, 0, b"D")
set_state(first, 1, b"F")
bounce = inst.path("queue", "bounce", first)
with open(bounce, "wb") as f:
    f.write(b"\n1\x00R\x00bob@remote.test\x00550 5.1.1 no such user\n")

rc, out, err = tool("qmail-qstat")
t.check("qstat exit 0", rc == 0, err)
t.check("qstat messages", "messages in queue: 3\n" in out, out)
t.check("qstat pending split local/remote",
        "recipients pending: 3 (local 1, remote 2)\n" in out, out)
t.check("qstat failed", "recipients failed, bounce not yet sent: 1\n" in out, out)
t.check("qstat done", "recipients done, message not yet removed: 1\n" in out, out)
t.check("qstat tmp", "messages being written (queue/tmp): 0\n" in out, out)
t.check("qstat damaged", "damaged or unreadable queue files: 0\n" in out, out)

# qmail-queued's unused pool names (empty p<n>) are not messages being
# written; a pool file with bytes in it is, as is any other name.
tmpdir = inst.path("queue", "tmp")
for name, data in (("p1", b""), ("p2", b""), ("p3", b"QMQ1 part"), ("1.2.3", b"")):
    with open(os.path.join(tmpdir, name), "wb") as f:
        f.write(data)
rc, out, err = tool("qmail-qstat")
t.check("qstat tmp: unused pool names not counted", "messages being written (queue/tmp): 2\n" in out, out)
for name in ("p1", "p2", "p3", "1.2.3"):
    os.unlink(os.path.join(tmpdir, name))

rc, out, err = tool("qmail-qread")
t.check("qread exit 0", rc == 0, err)
lines = out.splitlines()
heads = [l for l in lines if not l.startswith(" ")]
t.check("qread: one head line per message, oldest first",
        [h.split()[0] for h in heads] == qids, out)
t.check("qread head: age, size, sender",
        re.match(r"^%s  age \d+s  \d+ bytes  from <ann@example\.test>$" % re.escape(first),
                 heads[0]) is not None, heads[0])
size1 = os.path.getsize(inst.path("queue", "mess", first))
t.check("qread size is the message's size (not the file's)",
        int(heads[0].split()[3]) < size1, heads[0])
t.check("qread: null sender", "from <>" in heads[1], heads[1])
t.check("qread: delivered local recipient", "  local   done     joe@localhost" in lines, out)
t.check("qread: failed remote recipient with its reason",
        "  remote  failed   bob@remote.test: 550 5.1.1 no such user" in lines, out)
t.check("qread: pending remote recipient", "  remote  pending  cat@remote.test" in lines, out)
t.check("qread: locals match ignoring case", "  local   pending  Dan@Example.TEST" in lines, out)
t.check("qread: control bytes escaped", "\x1b" not in out and "eve\\x1b[31m@evil.test" in out, out)

# A pending recipient shows the last deferral reason qmail-send kept in
# queue/sched/why.<qid> (qmail-queuefile(5)): the last record of a
# recipient wins, lines that do not parse and records of recipients no
# longer pending are ignored, the text is escaped.
now = int(time.time())
with open(inst.path("queue", "sched", "why." + first), "wb") as f:
    f.write(b"2 %d connect: 192.0.2.7: Connection refused\n" % (now - 9000) +
            b"0 %d joe was deferred once\n" % (now - 60) +
            b"x 12 not a record\n2 junk not a record\n" +
            b"2 %d 421 4.3.2 \x1b[31mshutting down\n" % (now - 3 * 3600) +
            b"2 5 a cut last line")
rc, out, err = tool("qmail-qread")
lines = out.splitlines()
t.check("qread: a pending recipient's last deferral reason and its age",
        "  remote  pending  cat@remote.test: deferred 3h00m ago: 421 4.3.2 \\x1b[31mshutting down" in lines, out)
t.check("qread: no reason for a recipient no longer pending",
        "  local   done     joe@localhost" in lines and "joe was deferred" not in out, out)
os.unlink(inst.path("queue", "sched", "why." + first))

# A damaged file and a stray name are reported, not fatal.
with open(inst.path("queue", "mess", "1.2.3"), "wb") as f:
    f.write(b"QMQ1 not a queue file")
with open(inst.path("queue", "mess", "junk"), "wb") as f:
    f.write(b"x")
rc, out, _ = tool("qmail-qstat")
t.check("qstat counts damaged and stray files", rc == 0 and
        "damaged or unreadable queue files: 2\n" in out and "messages in queue: 3\n" in out, out)
# A whole file that qmail-send cannot open read-write (mode 0600, the queue
# uid's): as root qstat could read it, but it counts what qmail-send can,
# with the check qmail-qfix -n reports as unusable.
if IS_ROOT and inst.multi:
    victim = [q for q in inst.queue_files() if q != "1.2.3"][0]
    vpath = inst.path("queue", "mess", victim)
    os.chmod(vpath, 0o600)
    su, sg = inst.uid("send")
    probe = subprocess.run(["setpriv", "--reuid=%d" % su, "--regid=%d" % sg, "--clear-groups",
                            "sh", "-c", 'exec 3<>"$1"', "sh", vpath], stderr=subprocess.DEVNULL)
    t.check("qmail-send's uid cannot open the 0600 file", probe.returncode != 0)
    rc, out, _ = tool("qmail-qstat")
    t.check("qstat as root counts it unreadable", rc == 0 and
            "damaged or unreadable queue files: 3\n" in out and "messages in queue: 2\n" in out, out)
    p = subprocess.run([inst.bin("qmail-qfix"), "-n"], stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors="replace")
    t.check("qmail-qfix -n reports the same file unusable",
            "event=unusable path=queue/mess/%s why=access" % victim in err, err)
    os.chmod(vpath, 0o660)
else:
    t.skip("qstat counts files qmail-send cannot open", "needs root and separate uids")
rc, out, _ = tool("qmail-qread")
t.check("qread reports the damaged file", rc == 0 and re.search(r"^1\.2\.3  damaged: ", out, re.M)
        and "1 name(s) in queue/mess are not queue ids" in out, out)

# --- who may read the logs: the log uid and the log group only ----------
# They say who mails whom. Every daemon's uid but the queue's shares the
# nofiles group; the SMTP session has its own: neither may read them.
if IS_ROOT and inst.multi:
    lu, lg = inst.uid("log")
    _, admg = inst.uid("logs")
    cur = inst.path("log", "qmail-send", "current")
    with open(cur, "w") as f:
        f.write("qmail-send event=start\n")
    os.chown(cur, lu, admg)

    def can_read(u, g):
        def drop():
            os.setgroups([])
            os.setgid(g)
            os.setuid(u)
        return subprocess.run(["/bin/cat", cur], preexec_fn=drop, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    st = os.stat(inst.path("log", "qmail-send"))
    t.check("log directories: the log uid's and the log group's, 2750",
            (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (lu, admg, 0o2750),
            (st.st_uid, st.st_gid, oct(st.st_mode)))
    for role in ("smtpd", "remote", "tls", "alias"):
        t.check("the %s uid cannot read the logs" % role, not can_read(*inst.uid(role)))
    t.check("the log group can read the logs", can_read(65534, admg))
else:
    t.skip("log permissions", "needs root (multi-uid instance)")

# --- qmail-logsum over a log directory (archives, then current) --------
SAMPLE_OLD = """\
2026-11-23 15:37:46.500200112  qmail-send event=start uid=7004 concurrencylocal=10 concurrencyremote=20
2026-11-23 15:37:47.000000000  qmail-smtpd event=connect ip=127.0.0.1 host=unknown relayclient=yes
2026-11-23 15:37:47.100000000  qmail-smtpd event=message ip=127.0.0.1 result=accepted bytes=120 rcpts=2 qq=0
2026-11-23 15:37:47.150000000  qmail-smtpd event=message ip=10.0.0.9 result=refused-size bytes=9999 rcpts=1
"""
SAMPLE_CUR = """\
2026-11-23 15:37:47.200000000  qmail-send event=message qid=1.2.3 sender=a@b rcpts=3 pending=3 bytes=100
2026-11-23 15:37:47.300000000  qmail-send event=delivery qid=1.2.3 i=0 rcpt=joe@localhost channel=local result=delivered attempt=1 text=ok
2026-11-23 15:37:47.400000000  qmail-send event=delivery qid=1.2.3 i=1 rcpt=x@Example.COM channel=remote result=deferred attempt=1 text="4.4.1 connection refused"
2026-11-23 15:37:47.400000000  qmail-send event=delivery qid=1.2.3 i=2 rcpt=y@example.com channel=remote result=failed attempt=1 text="550 5.1.1 no \\"such\\" user"
2026-11-23 15:37:48.400000000  qmail-send event=delivery qid=1.2.3 i=1 rcpt=x@example.com channel=remote result=deferred attempt=2 text="4.4.1 connection refused"
2026-11-23 15:37:48.500000000  qmail-send event=delivery qid=1.2.3 i=1 rcpt=x@other.test channel=remote result=delivered attempt=3 text="250 ok"
2026-11-23 15:37:49.400000000  qmail-send event=bounce qid=1.2.3 to=a@b type=dsn failed=1 bytes=900
2026-11-23 15:37:49.500000000  qmail-send event=done qid=1.2.3 failed=1
not a log line
"""
logdir = inst.path("log", "sample")
os.makedirs(logdir, exist_ok=True)
with open(os.path.join(logdir, "@400000006aa0b3c0000000000.s"), "w") as f:
    f.write(SAMPLE_OLD)
with open(os.path.join(logdir, "current"), "w") as f:
    f.write(SAMPLE_CUR)
if os.path.exists(inst.bin("qmail-logsum")):
    r = subprocess.run([inst.bin("qmail-logsum"), logdir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode()
    t.check("logsum exit 0", r.returncode == 0, out)
    t.check("logsum: line count and time span",
            "log lines: 13 (2026-11-23 15:37:46.500200112 .. 2026-11-23 15:37:49.500000000)" in out, out)
    t.check("logsum: smtp", "smtp: 1 connections" in out and "accepted 1" in out
            and "refused-size 1" in out, out)
    t.check("logsum: queue", "queue: 1 messages picked up, 1 finished (1 with failures), "
            "1 bounces sent (0 double)" in out, out)
    t.check("logsum: deliveries", "deliveries: delivered 2 (local 1, remote 1), deferred 2, "
            "failed 1, expired 0" in out, out)
    t.check("logsum: top destinations, case folded, most first",
            re.search(r"destinations.*\n +3  example\.com  \(delivered 0, deferred 2, failed 1\)\n"
                      r" +1  other\.test ", out) is not None, out)
    t.check("logsum: top reasons, unquoted",
            re.search(r"reasons:\n +2  4\.4\.1 connection refused\n +1  550 5\.1\.1 no \"such\" user\n",
                      out) is not None, out)
    # Several directories: the period runs from the earliest line of any
    # to the latest of any, not from the first argument's first line to
    # the last argument's last.
    later = inst.path("log", "later")
    os.makedirs(later, exist_ok=True)
    with open(os.path.join(later, "current"), "w") as f:
        f.write("2026-11-24 09:00:00.000000000  qmail-smtpd event=connect ip=127.0.0.1\n"
                "2026-11-24 10:00:00.000000000  qmail-smtpd event=connect ip=127.0.0.1\n")
    r = subprocess.run([inst.bin("qmail-logsum"), later, logdir], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode()
    t.check("logsum over two directories: the real earliest and latest times",
            "log lines: 15 (2026-11-23 15:37:46.500200112 .. 2026-11-24 10:00:00.000000000)" in out,
            out)
    r = subprocess.run([inst.bin("qmail-logsum")], input=SAMPLE_CUR.encode(),
                       stdout=subprocess.PIPE, timeout=30)
    t.check("logsum reads stdin", b"deferred 2, failed 1" in r.stdout, r.stdout)
    dmarc = "".join("qmail-verify event=dmarc result=%s from=%s action=%s\n" % x for x in (
        ("pass", "example.com", "accept"), ("fail", "example.com", "reject"),
        ("pass", "example.com", "accept"), ("fail", "bank.test", "quarantine"),
        ("permerror", '""', "reject"), ("none", "other.test", "accept")))
    r = subprocess.run([inst.bin("qmail-logsum")], input=dmarc.encode(), stdout=subprocess.PIPE, timeout=30)
    out = r.stdout.decode()
    t.check("logsum: DMARC results and actions",
            "dmarc: 6 messages: pass 2, fail 2, none 1, temperror 0, permerror 1; refused 2, "
            "quarantined 1" in out, out)
    t.check("logsum: DMARC From: domains, most first, with passes and failures",
            re.search(r"From: domains \(messages\):\n +3  example\.com  \(pass 2, fail 1\)\n", out)
            is not None, out)
    r = subprocess.run([inst.bin("qmail-logsum"), inst.path("log", "nonexistent")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    t.check("logsum: a missing log is an error", r.returncode == 111, r.returncode)
else:
    t.skip("qmail-logsum", "not built")

rc, _, err = tool("qmail-qstat", "x")
t.check("qstat refuses arguments", rc == 100 and "usage" in err, (rc, err))
rc, _, err = tool("qmail-qread", "x")
t.check("qread refuses arguments", rc == 100 and "usage" in err, (rc, err))

# One exit code for a usage error, 100, in every program; the line names
# no errno, which a usage error does not have.
for argv in (["qmail-local"], ["qmail-lspawn"], ["qmail-qfix", "x"], ["qmail-remote"],
             ["qmail-qdest"], ["qmail-tlsd"], ["qmail-queued", "x", "y"],
             ["qmail-smtpd-listen"], ["qmail-passwd"]):
    if not os.path.exists(inst.bin(argv[0])):
        t.skip("%s: usage" % argv[0], "not built")
        continue
    rc, _, err = tool(*argv)
    t.check("%s: a usage error exits 100, no errno" % " ".join(argv),
            rc == 100 and "usage" in err and "error=" not in err, (rc, err))

t.done()
