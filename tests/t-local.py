#!/usr/bin/env python3
"""qmail-local as a standalone program against temporary home directories:
Maildir, mbox, programs, forwards, .qmail search, loops, failures, and the
deterministic Maildir names that make a repeated delivery harmless."""
import os, shutil, stat, subprocess, sys, tempfile
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, SANITIZED, free_ids

t = T()
inst = Instance(t)
QL = inst.bin("qmail-local")
base = tempfile.mkdtemp(prefix="t-local.")
os.chmod(base, 0o755)
t.cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))

MSG = b"From: a@example.org\nSubject: test\n\nFrom the start\nline two\n"
counter = [0]


def home(dotqmail=None, maildir=True):
    """A fresh home directory; dotqmail maps .qmail suffixes to contents."""
    counter[0] += 1
    h = os.path.join(base, "h%d" % counter[0])
    os.mkdir(h, 0o755)
    if maildir:
        for sub in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(h, "Maildir", sub), 0o700)
    for name, text in (dotqmail or {}).items():
        with open(os.path.join(h, ".qmail" + name), "w") as f:
            f.write(text)
        os.chmod(os.path.join(h, ".qmail" + name), 0o644)
    return h


def run(h, local="joe", dash="", ext="", sender="sender@example.org", msg=MSG,
        default="./Maildir/", opts=(), pipe=False, preexec=None, env=None, wrap=()):
    argv = list(wrap) + [QL] + list(opts) + ["joe", h, local, dash, ext, "example.com", sender, default]
    kw = dict(capture_output=True, timeout=30, preexec_fn=preexec, env=env)
    if pipe:
        p = subprocess.run(argv, input=msg, **kw)
    else:
        with tempfile.TemporaryFile() as f:
            f.write(msg)
            f.seek(0)
            p = subprocess.run(argv, stdin=f, **kw)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def newfiles(h, d="Maildir"):
    return inst.maildir(os.path.join(h, d))


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- Maildir ---------------------------------------------------------------
h = home()
rc, out, err = run(h)
t.check("maildir: exit 0", rc == 0, (rc, out, err))
files = newfiles(h)
t.check("maildir: one file in new/", len(files) == 1, files)
t.check("maildir: tmp/ is empty", os.listdir(os.path.join(h, "Maildir", "tmp")) == [])
if files:
    data = read(os.path.join(h, "Maildir", "new", files[0]))
    t.check("maildir: Return-Path and Delivered-To first, then the message",
            data == b"Return-Path: <sender@example.org>\nDelivered-To: joe@example.com\n" + MSG, data)
    t.check("maildir: unique name time.M<usec>P<pid>.host",
            len(files[0].split(".")) >= 3 and "M" in files[0].split(".")[1] and "P" in files[0].split(".")[1], files[0])
rc, out, err = run(h, pipe=True)
t.check("maildir: message on a pipe works too", rc == 0 and len(newfiles(h)) == 2, (rc, out, err))
rc, out, err = run(h, sender="")
data = [read(os.path.join(h, "Maildir", "new", f)) for f in newfiles(h)]
t.check("maildir: null sender gives Return-Path: <>", any(d.startswith(b"Return-Path: <>\n") for d in data))

# The file is made without a name (O_TMPFILE in tmp/) and linked into new/
# through /proc: no entry in tmp/ is made or removed. Without /proc (as on
# a filesystem that has no unnamed files) a named tmp/ file stands in.
h = home()
tr = os.path.join(base, "strace.maildir")
rc, out, err = run(h, wrap=("strace", "-f", "-qq", "-o", tr, "-e", "trace=openat,linkat,unlinkat"))
calls = open(tr).read() if os.path.exists(tr) else ""
t.check("maildir: an unnamed file in tmp/, linked into new/ by its /proc name",
        rc == 0 and '"tmp", O_WRONLY|O_CLOEXEC|O_TMPFILE' in calls
        and 'linkat(AT_FDCWD, "/proc/self/fd/' in calls and len(newfiles(h)) == 1, (rc, err, calls[-800:]))
t.check("maildir: nothing named in tmp/ is made or removed", '"tmp/' not in calls, calls[-800:])
if IS_ROOT and not SANITIZED:
    h = home()
    rc, out, err = run(h, wrap=("unshare", "-m", "sh", "-c", 'mount -t tmpfs none /proc && exec "$@"', "sh"))
    t.check("maildir without /proc: a named tmp/ file, linked, then removed",
            rc == 0 and len(newfiles(h)) == 1 and os.listdir(os.path.join(h, "Maildir", "tmp")) == [],
            (rc, out, err))
else:
    t.skip("maildir without /proc", "needs root for a mount namespace, and the sanitizers need /proc")

# --- mbox --------------------------------------------------------------------
h = home({"": "./Mailbox\n"}, maildir=False)
rc, out, err = run(h, msg=b"Subject: x\n\nFrom here\nFromage\n>From there\nno newline")
t.check("mbox: exit 0", rc == 0, (rc, out, err))
box = read(os.path.join(h, "Mailbox")) if os.path.exists(os.path.join(h, "Mailbox")) else b""
lines = box.split(b"\n")
t.check("mbox: From line first", lines[0].startswith(b"From sender@example.org "), lines[:1])
t.check("mbox: Return-Path and Delivered-To", lines[1:3] == [b"Return-Path: <sender@example.org>",
                                                           b"Delivered-To: joe@example.com"], lines[1:3])
t.check("mbox: body From quoted, others kept",
        b"\n>From here\nFromage\n>From there\nno newline\n\n" in box, box)
t.check("mbox: mode 0600", stat.S_IMODE(os.stat(os.path.join(h, "Mailbox")).st_mode) == 0o600)
size1 = len(box)
rc, out, err = run(h, sender="", pipe=True)
box2 = read(os.path.join(h, "Mailbox"))
t.check("mbox: second message appended, MAILER-DAEMON for <>",
        rc == 0 and box2.startswith(box) and box2[size1:].startswith(b"From MAILER-DAEMON "), box2[size1:size1 + 40])
t.check("mbox: message ends with a blank line", box2.endswith(b"line two\n\n"), box2[-20:])

# A write error half-way (a file size limit stands in for a full disk or a
# quota): the mailbox is cut back to what it was, the failure is temporary.
import resource, signal
def fsize_limit(n):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return pre
rc, out, err = run(h, msg=MSG * 1000, preexec=fsize_limit(len(box2) + 500))
t.check("mbox: write error is temporary", rc == 111, (rc, out))
t.check("mbox: cut back to the old size", read(os.path.join(h, "Mailbox")) == box2)
h = home()
rc, out, err = run(h, msg=MSG * 1000, preexec=fsize_limit(1000))
t.check("maildir: write error is temporary, nothing left behind", rc == 111 and newfiles(h) == [] and
        os.listdir(os.path.join(h, "Maildir", "tmp")) == [], (rc, out))

# --- programs ----------------------------------------------------------------
h = home({"-prog": "|env > envout; cat > msgout\n"})
rc, out, err = run(h, local="joe-prog", dash="-", ext="prog", sender="s@example.org")
t.check("program: exit 0", rc == 0, (rc, out, err))
env = {}
if os.path.exists(os.path.join(h, "envout")):
    for line in read(os.path.join(h, "envout")).decode().split("\n"):
        k, _, v = line.partition("=")
        env.setdefault(k, v)
want = {"USER": "joe", "HOME": h, "LOCAL": "joe-prog", "HOST": "example.com", "EXT": "prog",
        "SENDER": "s@example.org", "RECIPIENT": "joe-prog@example.com",
        "DTLINE": "Delivered-To: joe-prog@example.com", "RPLINE": "Return-Path: <s@example.org>"}
for k, v in want.items():
    t.check("program: $%s" % k, env.get(k) == v, (k, env.get(k)))
t.check("program: stdin is Return-Path, Delivered-To, message",
        os.path.exists(os.path.join(h, "msgout")) and read(os.path.join(h, "msgout")) ==
        b"Return-Path: <s@example.org>\nDelivered-To: joe-prog@example.com\n" + MSG)

for code, want_rc in ((0, 0), (100, 100), (111, 111), (64, 100), (112, 100), (1, 111), (75, 111)):
    h = home({"": "|exit %d\n" % code})
    rc, out, err = run(h)
    t.check("program: exit %d gives %d" % (code, want_rc), rc == want_rc, (rc, out, err))
h = home({"": "|echo the reason; exit 100\n"})
rc, out, err = run(h)
t.check("program: its output is the report", rc == 100 and "the reason" in out, out)
h = home({"": "|kill -9 $$\n"})
rc, out, err = run(h)
t.check("program: killed by a signal is temporary", rc == 111, (rc, out))
h = home({"": "|exit 99\n./Maildir/\n"})
rc, out, err = run(h)
t.check("program: 99 stops the .qmail, success", rc == 0 and newfiles(h) == [], (rc, out, newfiles(h)))
h = home({"": "|exit 0\n./Maildir/\n"})
rc, out, err = run(h)
t.check("program: 0 goes on to the next line", rc == 0 and len(newfiles(h)) == 1, (rc, out))
h = home({"": "|true\n./Maildir/\n|cat > copy2\n./Mailbox\n"})
rc, out, err = run(h, pipe=True)
t.check("several deliveries from a piped message", rc == 0 and len(newfiles(h)) == 1 and
        read(os.path.join(h, "copy2")).endswith(MSG) and read(os.path.join(h, "Mailbox")).endswith(b"line two\n\n"),
        (rc, out))
# A program that does not read its input and exits 0 is fine.
h = home({"": "|exit 0\n"})
rc, out, err = run(h, msg=MSG * 20000)
t.check("program: unread big input is not an error", rc == 0, (rc, out))

# --- forwarding ----------------------------------------------------------------
h = home({"-fwd": "&fwd1@example.org\nfwd2@example.net\n# comment\n"})
before = set(inst.queue_files())
rc, out, err = run(h, local="joe-fwd", dash="-", ext="fwd", sender="orig@example.org")
after = set(inst.queue_files()) - before
t.check("forward: exit 0", rc == 0, (rc, out, err))
t.check("forward: one new message in the queue", len(after) == 1, after)
if after:
    q = read(inst.path("queue", "mess", after.pop()))
    t.check("forward: Delivered-To added, Return-Path not", b"Delivered-To: joe-fwd@example.com\n" in q
            and b"Return-Path:" not in q, q[:300])
    t.check("forward: the message is there", MSG in q)
    t.check("forward: both recipients and the original sender",
            b"fwd1@example.org" in q and b"fwd2@example.net" in q and b"orig@example.org" in q)
    t.check("forward: no SMTPUTF8 option by default", b"SMTPUTF8" not in q)
before = set(inst.queue_files())
rc, out, err = run(h, local="joe-fwd", dash="-", ext="fwd", env=dict(os.environ, SMTPUTF8="1"))
after = set(inst.queue_files()) - before
t.check("forward: SMTPUTF8 is passed on to qmail-queue", rc == 0 and len(after) == 1 and
        b"SMTPUTF8" in read(inst.path("queue", "mess", after.pop())), (rc, out))

# A forward to what is no RFC 5321 mailbox: qmail-queue refuses it for good
# (12), so the delivery fails (a bounce, with the reason) instead of being
# retried for a week, and nothing is queued.
h = home({"-bad": "&x@y.example> NOTIFY=NEVER\n"})
before = set(inst.queue_files())
rc, out, err = run(h, local="joe-bad", dash="-", ext="bad", sender="orig@example.org")
t.check("forward to a bad address: a permanent failure, nothing queued",
        rc == 100 and "exit code 12" in out and set(inst.queue_files()) == before, (rc, out, err))

# --- .qmail search ---------------------------------------------------------
h = home({"-foo-bar": "|echo exact > which\n", "-foo-default": "|echo \"foo $DEFAULT\" > which\n",
          "-default": "|echo \"default $DEFAULT\" > which\n"})
def which(ext):
    p = os.path.join(h, "which")
    if os.path.exists(p):
        os.unlink(p)
    rc, out, err = run(h, local="joe-" + ext, dash="-", ext=ext)
    return rc, read(p).decode().strip() if os.path.exists(p) else None
t.check("search: exact name first", which("foo-bar") == (0, "exact"))
t.check("search: foo-default, $DEFAULT", which("foo-baz") == (0, "foo baz"))
t.check("search: foo-default for foo-a-b", which("foo-a-b") == (0, "foo a-b"))
t.check("search: .qmail-default last", which("other-x") == (0, "default other-x"))
t.check("search: case-insensitive", which("FOO-BAR") == (0, "exact"))
t.check("search: a '/' in the extension never reaches a path", which("foo-../../x") == (0, "foo ../../x")
        and which("../x") == (0, "default ../x"))
h = home({"": "./Maildir/\n"})
rc, out, err = run(h, local="joe-nothing", dash="-", ext="nothing")
t.check("search: no file for an extension is permanent", rc == 100 and "no mailbox" in out, (rc, out))
h = home()
rc, out, err = run(h, local="joe", default="./Maildir/")
t.check("search: no .qmail uses defaultdelivery", rc == 0 and len(newfiles(h)) == 1, (rc, out))
h = home({"": ""})
rc, out, err = run(h)
t.check("search: empty .qmail uses defaultdelivery", rc == 0 and len(newfiles(h)) == 1, (rc, out))
h = home({"": "# nothing\n"})
rc, out, err = run(h)
t.check("search: comment-only .qmail drops the message", rc == 0 and newfiles(h) == [], (rc, out))
h = home({"-a:b": "./Maildir/\n"})
rc, out, err = run(h, local="joe-a.b", dash="-", ext="a.b")
t.check("search: '.' in the extension is ':'", rc == 0 and len(newfiles(h)) == 1, (rc, out))

# --- refusals ----------------------------------------------------------------
h = home()
os.chmod(h, 0o775)
rc, out, err = run(h)
t.check("group-writable home: temporary failure", rc == 111 and newfiles(h) == [], (rc, out))
h = home()
os.chmod(h, 0o1755)
rc, out, err = run(h)
t.check("sticky home: temporary failure", rc == 111, (rc, out))
h = home({"": "./Maildir/\n"})
os.chmod(os.path.join(h, ".qmail"), 0o666)
rc, out, err = run(h)
t.check("world-writable .qmail: temporary failure", rc == 111 and newfiles(h) == [], (rc, out))
h = home({"": "|echo hi\n"})
os.chmod(os.path.join(h, ".qmail"), 0o744)
rc, out, err = run(h)
t.check("executable .qmail may only forward", rc == 111, (rc, out))

# --- loops ---------------------------------------------------------------------
h = home()
looped = b"Received: x\nDelivered-To: JOE@example.com\nSubject: y\n\nbody\n"
rc, out, err = run(h, msg=looped)
t.check("loop: our Delivered-To in the header is permanent", rc == 100 and "loop" in out and newfiles(h) == [], (rc, out))
rc, out, err = run(h, msg=b"Delivered-To: other@example.com\n\nDelivered-To: joe@example.com\n")
t.check("loop: someone else's line, or one in the body, is fine", rc == 0, (rc, out))

# --- Maildir failures ------------------------------------------------------------
h = home(maildir=False)
rc, out, err = run(h)
t.check("missing Maildir: temporary failure", rc == 111, (rc, out))
h = home()
os.chmod(os.path.join(h, "Maildir", "tmp"), 0o500)
pre = None
if IS_ROOT:
    uid = free_ids(1, start=7300)[0]
    for dp, dn, fn in os.walk(h):
        os.chown(dp, uid, uid)
    pre = lambda: (os.setgroups([]), os.setgid(uid), os.setuid(uid))
rc, out, err = run(h, preexec=pre)
t.check("unwritable Maildir: temporary failure", rc == 111 and newfiles(h) == [], (rc, out, err))

# --- deterministic names -------------------------------------------------------
h = home()
qid = "1795420800.004211.3117"
rc1, out1, _ = run(h, opts=("-q", qid, "-r", "3"))
rc2, out2, _ = run(h, opts=("-q", qid, "-r", "3"), pipe=True)
files = newfiles(h)
t.check("qid: named <birth>.Q<qid>R<n>.<host>", rc1 == 0 and len(files) == 1 and
        files[0].startswith("1795420800.Q1795420800_004211_3117R3."), (rc1, files))
t.check("qid: the repeat is suppressed", rc2 == 0 and "duplicate suppressed" in out2 and len(files) == 1, (rc2, out2))
if files:
    os.rename(os.path.join(h, "Maildir", "new", files[0]), os.path.join(h, "Maildir", "cur", files[0] + ":2,S"))
rc3, out3, _ = run(h, opts=("-q", qid, "-r", "3"))
t.check("qid: suppressed after the reader moved it to cur/", rc3 == 0 and "duplicate suppressed" in out3
        and newfiles(h) == [], (rc3, out3))
rc4, out4, _ = run(h, opts=("-q", qid, "-r", "4"))
t.check("qid: another recipient index is another delivery", rc4 == 0 and len(newfiles(h)) == 1, (rc4, out4))
rc, out, err = run(h, opts=("-q", "12x", "-r", "4"))
t.check("qid: a bad qid is refused", rc == 111 and newfiles(h) != [], (rc, out))

# --- -n ----------------------------------------------------------------------
h = home({"": "# c\n./Maildir/\n./Mailbox\n|echo x\n&a@b\n"})
rc, out, err = run(h, opts=("-n",))
t.check("-n: lists the instructions", rc == 0 and out == "maildir ./Maildir/\nmbox ./Mailbox\nprogram echo x\nforward a@b\n", out)
t.check("-n: delivers nothing", newfiles(h) == [] and not os.path.exists(os.path.join(h, "Mailbox")))

t.done()
