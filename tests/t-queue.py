#!/usr/bin/env python3
"""qmail-queue and the queue file: what it writes (parsed here independently
of lib/qfile.c), every exit code a caller can provoke, nothing committed on
failure or on SIGKILL, the trigger, ownership and who can read the queue
(root), a full disk (root), and qmail-qfix's checks and repairs."""
import os, re, signal, stat, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from queued_harness import QueueDir, envl, parse

t = T()
inst = Instance(t)
QQ = inst.bin("qmail-queue")
QFIX = inst.bin("qmail-qfix")
MESS = inst.path("queue", "mess")
TMP = inst.path("queue", "tmp")
QD = QueueDir(inst)
ADDR_MAX = 1000


def qq(envelope, message=b"", stdin=None, stdout=None, env=None, preexec=None, kill_after=None):
    """Runs qmail-queue with raw envelope bytes on fd 1 and the message on
    fd 0; returns the exit code (negative: killed by that signal). The
    envelope is written first (it fits the pipe), so a run that stops
    reading the message early cannot block the test."""
    r = w = None
    if stdout is None:
        r, w = os.pipe()
        os.write(w, envelope)
        os.close(w)
        stdout = r
    p = subprocess.Popen([QQ], stdin=stdin if stdin is not None else subprocess.PIPE,
                         stdout=stdout, stderr=subprocess.PIPE, env=env or {},
                         preexec_fn=preexec)
    if r is not None:
        os.close(r)
    if stdin is None:
        try:
            p.stdin.write(message)
            p.stdin.close()
        except BrokenPipeError:
            pass
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    p.stderr.close()
    return p.returncode


mess, tmp, read_mess = QD.mess, QD.tmp, QD.read


def qfix(*args):
    p = subprocess.run([QFIX] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stderr.decode(errors="replace")


RECEIVED = re.compile(rb"Received: \(qmail-queue (\d+) invoked by uid (\d+)\); "
                      rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                      rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                      rb"\d\d:\d\d:\d\d \+0000\n")
QID = re.compile(r"(\d+)\.(\d{6})\.(\d+)")

# --- a message goes in and is parsed back ----------------------------------
msg = b"From: a@b.example\nSubject: test\n\nbody line\n"
before = time.time()
rc = inst.inject("a@b.example", ["c@d.example", "e@f.example"], msg)
t.check("queue: inject exits 0", rc == 0, rc)
files = mess()
t.check("queue: one file in mess/", len(files) == 1, files)
t.check("queue: tmp/ is empty after commit", tmp() == [], tmp())
first = files[0] if files else None
if first:
    m = QID.fullmatch(first)
    t.check("queue: qid is seconds.micro.pid", m is not None, first)
    if m:
        t.check("queue: qid seconds is the birth", abs(int(m.group(1)) - before) < 60, first)
    data = read_mess(first)
    try:
        q = parse(data)
    except ValueError as e:
        q = None
        t.check("queue: mess file parses", False, "%s %r" % (e, data[:80]))
    if q:
        t.check("queue: sender", q["sender"] == b"a@b.example", q["sender"])
        t.check("queue: recipients, pending",
                q["rcpts"] == [(b"P", b"c@d.example"), (b"P", b"e@f.example")], q["rcpts"])
        t.check("queue: no options without SMTPUTF8", q["opts"] == [], q["opts"])
        rm = RECEIVED.match(q["message"])
        t.check("queue: Received line first", rm is not None, q["message"][:120])
        if rm:
            t.check("queue: Received names the caller's uid", int(rm.group(2)) == os.getuid(), rm.group(0))
            t.check("queue: Received names the pid of the qid", first.endswith("." + rm.group(1).decode()), rm.group(0))
            t.check("queue: message bytes exact after Received", q["message"][rm.end():] == msg)
    st = os.stat(os.path.join(MESS, first))
    t.check("queue: mess file mode 0660", stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode))

# Null sender, SMTPUTF8, odd message bytes (NUL, CR, no final newline),
# exactly QF_ADDR_MAX-byte addresses.
odd = b"X-Bin: \0\r\x7f\xff\n\nno newline at end"
long_addr = b"x" * (ADDR_MAX - len(b"@l.example")) + b"@l.example"
old = set(mess())
rc = qq(envl(b"", [long_addr, "\u00e9l\u00e8ve@\u00e9cole.example".encode()]), odd, env={"SMTPUTF8": "1"})
t.check("queue: null sender, SMTPUTF8, 1000-byte address accepted", rc == 0, rc)
new = sorted(set(mess()) - old)
if len(new) == 1:
    q = parse(read_mess(new[0]))
    t.check("queue: null sender kept", q["sender"] == b"", q["sender"])
    t.check("queue: SMTPUTF8 option record", q["opts"] == [b"SMTPUTF8"], q["opts"])
    t.check("queue: long and UTF-8 recipients kept",
            [a for _, a in q["rcpts"]] == [long_addr, "\u00e9l\u00e8ve@\u00e9cole.example".encode()])
    rm = RECEIVED.match(q["message"])
    t.check("queue: binary message kept exactly", rm is not None and q["message"][rm.end():] == odd)
else:
    t.check("queue: second message committed", False, new)
old = set(mess())
rc = qq(envl(b"a@b", [b"c@d"]), b"x\n", env={"SMTPUTF8": ""})
new = sorted(set(mess()) - old)
t.check("queue: empty SMTPUTF8 adds no option",
        rc == 0 and len(new) == 1 and parse(read_mess(new[0]))["opts"] == [], (rc, new))

# A message larger than qmail-queue's buffer, crossing many writes.
big = b"".join(b"line %07d ........................................\n" % i for i in range(40000))
old = set(mess())
rc = qq(envl(b"big@x", [b"r%d@y" % i for i in range(500)]), big)
new = sorted(set(mess()) - old)
ok = rc == 0 and len(new) == 1
if ok:
    q = parse(read_mess(new[0]))
    rm = RECEIVED.match(q["message"])
    ok = rm is not None and q["message"][rm.end():] == big and len(q["rcpts"]) == 500
t.check("queue: 2 MB message and 500 recipients kept exactly", ok, (rc, new))

# --- exit codes, and nothing left behind on failure ------------------------
def refused(name, want, envelope, message=b"m\n", **kw):
    old_m, old_t = mess(), tmp()
    rc = qq(envelope, message, **kw)
    t.check("queue: %s exits %d" % (name, want), rc == want, rc)
    t.check("queue: %s queues nothing" % name, mess() == old_m and tmp() == old_t,
            (sorted(set(mess()) - set(old_m)), tmp()))

too_long = b"x" * (ADDR_MAX + 1)
refused("sender over QF_ADDR_MAX", 11, envl(too_long, [b"a@b"]))
refused("recipient over QF_ADDR_MAX", 11, envl(b"a@b", [b"c@d", too_long]))
refused("bad first byte", 91, b"Xa@b\0Tc@d\0\0")
refused("T before F", 91, b"Tc@d\0\0")
refused("no recipient", 91, envl(b"a@b", []))
refused("empty recipient", 91, envl(b"a@b", [b""]))
refused("bad record byte", 91, b"Fa@b\0Tc@d\0Xe@f\0\0")
refused("CR in recipient", 91, envl(b"a@b", [b"c\r@d"]))
refused("LF in sender", 91, envl(b"a\nb@c", [b"c@d"]))
refused("EOF before the final NUL", 91, b"Fa@b\0Tc@d\0")
refused("EOF inside an address", 91, b"Fa@b\0Tc@")
refused("empty envelope", 91, b"")
# An address is pasted into qmail-remote's MAIL FROM:<...> / RCPT TO:<...>:
# one that is not an RFC 5321 mailbox could add ESMTP parameters there.
refused("ESMTP parameter in the sender", 12, envl(b"a@b.example> NOTIFY=SUCCESS", [b"c@d"]))
refused("ESMTP parameter in a recipient", 12,
        envl(b"a@b", [b"c@d", b"e@f.example> ORCPT=rfc822;x@y"]))
refused("space in a recipient", 12, envl(b"a@b", [b"c d@e.example"]))
refused("angle brackets in the sender", 12, envl(b"<a@b.example>", [b"c@d"]))
refused("bad domain literal in a recipient", 12, envl(b"a@b", [b"c@[x> NOTIFY=NEVER]"]))
refused("parameter after a long local part", 12,
        envl(b"a@b", [b"x" * 70 + b"@e.example> NOTIFY=NEVER"]))
old = set(mess())
fine = [b"root", b'"a b>c"@d.example', b"x@[127.0.0.1]", b"y@[IPv6:::1]", b"z@e.example"]
rc = qq(envl(b"#@[]", fine), b"x\n")
new = sorted(set(mess()) - old)
t.check("queue: double-bounce sender, bare name, quoted local part, literals accepted",
        rc == 0 and len(new) == 1 and [a for _, a in parse(read_mess(new[0]))["rcpts"]] == fine,
        (rc, new))

dfd = os.open(inst.prefix, os.O_RDONLY | os.O_DIRECTORY)
refused("directory as fd 0", 54, envl(b"a@b", [b"c@d"]), stdin=dfd)
refused("directory as fd 1", 55, b"", stdout=dfd)
os.close(dfd)
pr, pw = os.pipe()
refused("write-only fd 1", 55, b"", stdout=pw)
os.close(pr)
os.close(pw)
# A closed fd 1: the queue file takes its number, write-only, so reading
# the envelope fails (55); a setuid run gets /dev/null there from glibc
# instead, so the envelope is empty (91). Either way nothing is queued.
rr, ww = os.pipe()
os.close(ww)
old_m = mess()
rc = qq(b"", b"m\n", stdout=rr, preexec=lambda: os.close(1))
os.close(rr)
t.check("queue: closed fd 1 exits 55 or 91", rc in (55, 91), rc)
t.check("queue: closed fd 1 queues nothing", mess() == old_m and tmp() == [], tmp())

# Recipient count: QF_RCPT_MAX (100000) is accepted, one more is refused.
# The envelope is too big for a pipe written before the run, so fd 1 is a
# regular file opened read-only.
def envelope_file(data):
    path = inst.path("envelope.tmp")
    with open(path, "wb") as f:
        f.write(data)
    fd = os.open(path, os.O_RDONLY)
    os.unlink(path)
    return fd

RCPT_MAX = 100000
fd = envelope_file(envl(b"a@b", [b"%d@r" % i for i in range(RCPT_MAX)]))
old = set(mess())
rc = qq(b"", b"many\n", stdout=fd)
os.close(fd)
new = sorted(set(mess()) - old)
t.check("queue: QF_RCPT_MAX recipients accepted",
        rc == 0 and len(new) == 1 and len(parse(read_mess(new[0]))["rcpts"]) == RCPT_MAX, (rc, new))
for f in new:
    os.unlink(os.path.join(MESS, f))
fd = envelope_file(envl(b"a@b", [b"%d@r" % i for i in range(RCPT_MAX + 1)]))
refused("QF_RCPT_MAX + 1 recipients", 91, b"", stdout=fd)
os.close(fd)

# --- the 24-hour timer: SIGALRM ends a run with 52 and removes its file ---
old_m = mess()
r, w = os.pipe()
os.write(w, envl(b"a@b", [b"c@d"]))
os.close(w)
p = subprocess.Popen([QQ], stdin=subprocess.PIPE, stdout=r, env={})
os.close(r)
p.stdin.write(b"Subject: slow\n\n")
p.stdin.flush()
wait_for(lambda: tmp(), timeout=10)
p.send_signal(signal.SIGALRM)
try:
    rc = p.wait(10)
except subprocess.TimeoutExpired:
    p.kill()
    rc = p.wait()
p.stdin.close()
t.check("queue: timeout (SIGALRM) exits 52", rc == 52, rc)
t.check("queue: timeout leaves tmp/ clean and commits nothing", tmp() == [] and mess() == old_m, tmp())

# --- SIGKILL in the middle of a message ------------------------------------
old_m = mess()
r, w = os.pipe()
os.write(w, envl(b"a@b", [b"c@d"]))
os.close(w)
p = subprocess.Popen([QQ], stdin=subprocess.PIPE, stdout=r, env={})
os.close(r)
p.stdin.write(b"Subject: half\n\n" + b"y" * 300000)
p.stdin.flush()
seen = wait_for(lambda: tmp(), timeout=10)
p.kill()
p.wait()
p.stdin.close()
t.check("queue: killed run leaves its file in tmp/", len(tmp()) == 1, tmp())
t.check("queue: killed run commits nothing", mess() == old_m)
for f in tmp():
    os.unlink(os.path.join(TMP, f))

# --- the trigger -------------------------------------------------------------
trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
before = set(inst.queue_files())
rc = inst.inject("a@b", ["c@d"], "trigger\n")
try:
    got = os.read(trig, 256)
except BlockingIOError:
    got = b""
os.close(trig)
made = sorted(set(inst.queue_files()) - before)
t.check("queue: the trigger receives the new qid and a newline",
        rc == 0 and len(made) == 1 and got == made[0].encode() + b"\n", (rc, got, made))
# No reader on the fifo: qmail-queue must not block or fail.
rc = inst.inject("a@b", ["c@d"], "no reader\n")
t.check("queue: works with nobody on the trigger", rc == 0, rc)

# --- ownership and who can read the queue (root) ---------------------------
def dropper(uid, gid):
    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    return drop


# The system python: an interpreter under /root is out of reach of the test uids.
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def as_user(uid, gid, code):
    return subprocess.run([PY, "-c", code], preexec_fn=dropper(uid, gid), cwd="/",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)

if IS_ROOT and inst.multi:
    qu, qg = inst.uid("queue")
    st = os.stat(os.path.join(MESS, first))
    t.check("queue: mess file owned by the queue uid and gid", (st.st_uid, st.st_gid) == (qu, qg),
            (st.st_uid, st.st_gid))
    path = os.path.join(MESS, first)
    for role in ("smtpd", "remote"):
        u, g = inst.uid(role)
        p = as_user(u, g, "open(%r, 'rb').read()" % path)
        t.check("queue: %s uid cannot open a queued message" % role,
                p.returncode != 0 and b"PermissionError" in p.stderr, p.stderr[-200:])
        p = as_user(u, g, "import os; os.listdir(%r)" % MESS)
        t.check("queue: %s uid cannot list mess/" % role, p.returncode != 0, p.stderr[-200:])
    u, g = inst.uid("send")
    p = as_user(u, g, "open(%r, 'rb').read(4) == b'QMQ1' or exit(3)" % path)
    t.check("queue: send uid can read a queued message", p.returncode == 0, p.stderr[-200:])
    # An unprivileged caller (the smtpd uid) queues through the setuid bit.
    u, g = inst.uid("smtpd")
    old = set(mess())
    r, w = os.pipe()
    os.write(w, envl(b"a@b", [b"c@d"]))
    os.close(w)
    trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
    p = subprocess.run([QQ], input=b"from smtpd\n", stdout=r, preexec_fn=dropper(u, g), env={},
                       cwd="/", timeout=30)
    os.close(r)
    try:
        got = os.read(trig, 256)
    except BlockingIOError:
        got = b""
    os.close(trig)
    t.check("queue: setuid run from the smtpd uid pulls the trigger",
            got.endswith(b"\n") and os.path.exists(inst.path("queue", "mess", got[:-1].decode())), got)
    new = sorted(set(mess()) - old)
    ok = p.returncode == 0 and len(new) == 1
    if ok:
        st = os.stat(os.path.join(MESS, new[0]))
        rm = RECEIVED.match(parse(read_mess(new[0]))["message"])
        ok = (st.st_uid, st.st_gid) == (qu, qg) and rm is not None and int(rm.group(2)) == u
    t.check("queue: smtpd uid queues via setuid, file owned by queue uid, Received names smtpd",
            ok, (p.returncode, new))
else:
    t.skip("queue: ownership and unreadability", "needs root and a multi-uid install")

# --- qmail-qfix ----------------------------------------------------------------
rc, out = qfix("-n")
t.check("queue: qmail-qfix -n on a clean queue exits 0", rc == 0, (rc, out))
os.chmod(MESS, 0o755)
os.chmod(os.path.join(MESS, first), 0o644)
os.unlink(inst.path("queue", "lock", "trigger"))
with open(os.path.join(TMP, "12.000000.1"), "wb") as f:
    f.write(b"debris")
os.utime(os.path.join(TMP, "12.000000.1"), (time.time() - 40 * 3600,) * 2)
bad = os.path.join(MESS, "1.000000.1")
with open(bad, "wb") as f:
    f.write(read_mess(first)[:-1])   # the end record cut
os.chmod(bad, 0o660)
if IS_ROOT and inst.multi:
    os.chown(bad, *inst.uid("queue"))
rc, out = qfix("-n")
t.check("queue: qmail-qfix -n reports and exits 1", rc == 1, (rc, out))
t.check("queue: -n reports the mess/ mode",
        re.search(r"event=mode path=queue/mess mode=0755 want=2770 fixed=no", out), out)
t.check("queue: -n reports the file mode", "event=mode path=queue/mess/%s mode=0644" % first in out, out)
t.check("queue: -n reports the missing trigger", "event=missing path=queue/lock/trigger" in out, out)
t.check("queue: reports the invalid message", "event=invalid path=queue/mess/1.000000.1" in out, out)
t.check("queue: reports stale tmp/ debris", "event=stale path=queue/tmp/12.000000.1" in out, out)
t.check("queue: -n changes nothing", stat.S_IMODE(os.stat(MESS).st_mode) == 0o755 and
        not os.path.exists(inst.path("queue", "lock", "trigger")))
rc, out = qfix()
t.check("queue: qmail-qfix repairs and exits 1", rc == 1, (rc, out))
st = os.stat(MESS)
t.check("queue: mess/ is 2770 again", stat.S_IMODE(st.st_mode) == 0o2770, oct(st.st_mode))
t.check("queue: message file is 0660 again",
        stat.S_IMODE(os.stat(os.path.join(MESS, first)).st_mode) == 0o660)
st = os.lstat(inst.path("queue", "lock", "trigger"))
t.check("queue: trigger recreated as a 0622 fifo",
        stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o622, oct(st.st_mode))
if IS_ROOT and inst.multi:
    t.check("queue: trigger owned by the send uid", (st.st_uid, st.st_gid) == inst.uid("send"),
            (st.st_uid, st.st_gid))
t.check("queue: qmail-qfix leaves the invalid message in place", os.path.exists(bad))
os.unlink(bad)
os.unlink(os.path.join(TMP, "12.000000.1"))
rc, out = qfix()
t.check("queue: qmail-qfix clean afterwards", rc == 0, (rc, out))
# A symlink planted in mess/ is reported and never followed.
victim = inst.path("control", "victim")
with open(victim, "w") as f:
    f.write("x")
os.chmod(victim, 0o600)
os.symlink(victim, os.path.join(MESS, "2.000000.2"))
rc, out = qfix()
t.check("queue: qmail-qfix reports a symlink in mess/", rc == 1 and "event=badtype path=queue/mess/2.000000.2" in out, out)
st = os.stat(victim)
t.check("queue: qmail-qfix does not follow it", stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.getuid())
os.unlink(os.path.join(MESS, "2.000000.2"))
os.unlink(victim)

# --- a full disk (root) ------------------------------------------------------
def full_disk():
    qdir = inst.path("queue")
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", qdir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if m.returncode != 0:
        t.skip("queue: full disk", "cannot mount tmpfs: " + m.stderr.decode(errors="replace").strip())
        return
    t.cleanups.append(lambda: subprocess.run(["umount", "-l", qdir], stderr=subprocess.DEVNULL)
                      if os.path.ismount(qdir) else None)
    rc, out = qfix()
    t.check("queue: qmail-qfix builds a queue on an empty fs", rc == 1 and "event=created path=queue/mess" in out, out)
    rc, out = qfix()
    t.check("queue: ... and it is then clean", rc == 0, out)
    rc1 = qq(envl(b"a@b", [b"c@d"]), b"small before\n")
    small = mess()
    rc2 = qq(envl(b"a@b", [b"c@d"]), b"z" * (3 << 20))
    t.check("queue: small message fits", rc1 == 0 and len(small) == 1, (rc1, small))
    t.check("queue: message bigger than the fs exits 53", rc2 == 53, rc2)
    t.check("queue: tmp/ clean after disk full", tmp() == [], tmp())
    t.check("queue: earlier message intact",
            mess() == small and small and parse(read_mess(small[0]))["message"].endswith(b"small before\n"))
    rc3 = qq(envl(b"a@b", [b"c@d"]), b"small after\n")
    t.check("queue: queueing works again once space is back", rc3 == 0 and len(mess()) == 2, rc3)
    u = subprocess.run(["umount", qdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t.check("queue: tmpfs unmounted", u.returncode == 0, u.stderr)
    t.check("queue: the real queue is back", first in mess())

if IS_ROOT:
    full_disk()
else:
    t.skip("queue: full disk", "needs root to mount a tmpfs")

t.done()
