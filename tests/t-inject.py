#!/usr/bin/env python3
"""sendmail and qmail-inject against the real installed qmail-queue.

Each message goes through bin/sendmail or bin/qmail-inject into
queue/mess/ (qmail-send is not running, so it stays there); the queue file
is parsed here (format in lib/qfile.h) and its message and envelope are
checked: recipients from arguments and from To/Cc/Bcc, Bcc removed, -f,
-i and the "." line, added Date/From/Message-ID, CRLF input, refusals
(NUL, overlong header line, bad address: exit 100 and nothing queued),
$QMAILQUEUE exit codes mapped to 100/111, and a loop of 1,000 messages.
"""
import os, re, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance, SANITIZED, IS_ROOT

t = T()
missing = [p for p in ("sendmail", "qmail-inject", "qmail-queue")
           if not os.path.exists(os.path.join(harness.BUILD, "bin", p))]
if missing:
    t.skip("injection", "not built yet: " + " ".join(missing))
    t.done()

inst = Instance(t, control={"defaulthost": "host.example.test",
                            "defaultdomain": "example.test",
                            "idhost": "id.example.test"})
SENDMAIL, INJECT = inst.bin("sendmail"), inst.bin("qmail-inject")
MESS = inst.path("queue", "mess")
BASE_ENV = {k: v for k, v in os.environ.items()
            if not k.startswith("QMAIL") and k not in ("NAME", "USER", "LOGNAME")}
BASE_ENV.update(USER="alice", LOGNAME="alice")


def parse_qfile(path):
    """(message, sender, [(state, rcpt)], [options]) of a queue file."""
    d = open(path, "rb").read()
    assert d[:4] == b"QMQ1" and d[28:32] == b"DONE", "bad header"
    mlen = int.from_bytes(d[4:12], "big")
    off = int.from_bytes(d[12:20], "big")
    assert off == 32 + mlen
    msg, sender, rcpts, opts = d[32:off], None, [], []
    i = off
    while True:
        typ, n = d[i:i + 1], int.from_bytes(d[i + 1:i + 5], "big")
        data = d[i + 5:i + 5 + n]
        i += 5 + n
        if typ == b"F":
            sender = data.decode()
        elif typ == b"O":
            opts.append(data.decode())
        elif typ == b"R":
            rcpts.append((data[:1].decode(), data[1:].decode()))
        elif typ == b"E":
            # Empty, or the qid the file was written for (lib/qfile.h).
            assert i == len(d) and (n == 0 or re.fullmatch(rb"\d+\.\d{6}\.\d+", data)), "end record not last"
            break
        else:
            raise AssertionError("record type %r" % typ)
    return msg, sender, rcpts, opts


def split(msg):
    """(header lines without Received:, body) of a queued message."""
    head, _, body = msg.partition(b"\n\n")
    lines = head.decode("utf-8", "replace").split("\n")
    assert lines[0].startswith("Received:"), lines[0]
    return lines[1:], body


def field(lines, name):
    return [l for l in lines if l.lower().startswith(name.lower() + ":")]


def run(argv, data, env=None, timeout=30):
    e = dict(BASE_ENV)
    e.update(env or {})
    if isinstance(data, str):
        data = data.encode()
    return subprocess.run(argv, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=e, timeout=timeout)


def send(argv, data, env=None):
    """Runs argv; returns (exit code, stderr, parsed new queue file or None)."""
    before = set(os.listdir(MESS))
    p = run(argv, data, env)
    new = sorted(set(os.listdir(MESS)) - before)
    q = parse_qfile(os.path.join(MESS, new[0])) if len(new) == 1 else None
    if len(new) > 1:
        q = "several"
    return p.returncode, p.stderr.decode("utf-8", "replace"), q


def rcpt_addrs(q):
    return [a for s, a in q[2]]


# --- sendmail -t -------------------------------------------------------------
rc, err, q = send([SENDMAIL, "-t"],
                  "From: Alice <alice@a.test>\nTo: Bob <bob@b.test>, carol@c.test\n"
                  "Cc: \"Dave, D.\" <dave@d.test>,\n  eve@e.test\nBcc: secret@s.test\n"
                  "Subject: t\n\nhello\n")
t.check("sendmail -t exits 0", rc == 0, err)
t.check("sendmail -t queues one file", q is not None and q != "several", q)
if q and q != "several":
    lines, body = split(q[0])
    t.check("-t takes To, Cc (folded) and Bcc recipients",
            rcpt_addrs(q) == ["bob@b.test", "carol@c.test", "dave@d.test", "eve@e.test",
                              "secret@s.test"], q[2])
    t.check("every recipient is pending", all(s == "P" for s, a in q[2]), q[2])
    t.check("Bcc is removed from the message", not field(lines, "Bcc") and b"secret" not in q[0],
            lines)
    t.check("To and Cc are kept as written", field(lines, "To") ==
            ["To: Bob <bob@b.test>, carol@c.test"] and "  eve@e.test" in lines, lines)
    t.check("the existing From is kept, not duplicated",
            field(lines, "From") == ["From: Alice <alice@a.test>"], lines)
    t.check("body kept", body == b"hello\n", body)
    t.check("default envelope sender is $USER@defaulthost",
            q[1] == "alice@host.example.test", q[1])

# --- arguments, -f, qualification ----------------------------------------------
rc, err, q = send([SENDMAIL, "-f", "bounces@f.test", "x@y.test", "root", "joe@localhost"],
                  "To: ignored@z.test\nSubject: args\n\nbody\n")
t.check("arguments: exit 0", rc == 0, err)
if t.check("arguments: queued", q and q != "several", q):
    t.check("-f sets the envelope sender", q[1] == "bounces@f.test", q[1])
    t.check("arguments are the recipients (To ignored without -t); bare names get "
            "@defaulthost, dotless domains .defaultdomain",
            rcpt_addrs(q) == ["x@y.test", "root@host.example.test",
                              "joe@localhost.example.test"], q[2])

rc, err, q = send([SENDMAIL, "-t", "-f", "", "extra@x.test"], "To: a@b.test\n\nx\n")
if t.check("-f '' with -t and an argument: queued", rc == 0 and q and q != "several", err):
    t.check("-f '' is the null sender", q[1] == "", q[1])
    t.check("-t adds header recipients to the arguments' ",
            rcpt_addrs(q) == ["extra@x.test", "a@b.test"], q[2])

rc, err, q = send([SENDMAIL, "-t", "a@b.test"],
                  "To: a@b.test, c@d.test\nCc: C <c@d.test>, A@b.test\nBcc: a@b.test\n\nx\n")
t.check("a repeated recipient is queued once, first occurrence order kept",
        rc == 0 and q and rcpt_addrs(q) == ["a@b.test", "c@d.test", "A@b.test"], q and q[2])
rc, err, q = send([SENDMAIL, "-f<>", "-r", "r@x.test", "a@b.test"], "\nx\n")
t.check("-r is -f (last one wins)", rc == 0 and q and q[1] == "r@x.test", (rc, err, q and q[1]))

rc, err, q = send([SENDMAIL, "a@b.test"], "Subject: s\n\nx\n",
                  env={"QMAILSUSER": "bounce", "QMAILSHOST": "sh.example.test",
                       "QMAILUSER": "fromuser", "QMAILHOST": "fh.example.test",
                       "QMAILNAME": "From User"})
if t.check("QMAIL* identity: queued", rc == 0 and q and q != "several", err):
    lines, _ = split(q[0])
    t.check("envelope sender from $QMAILSUSER@$QMAILSHOST", q[1] == "bounce@sh.example.test", q[1])
    t.check("From from $QMAILNAME <$QMAILUSER@$QMAILHOST>",
            field(lines, "From") == ["From: From User <fromuser@fh.example.test>"], lines)

rc, err, q = send([SENDMAIL, "-F", "Dr. \"Who\"", "a@b.test"], "Subject: s\n\nx\n")
if t.check("-F: queued", rc == 0 and q and q != "several", err):
    lines, _ = split(q[0])
    t.check("-F gives a quoted display name",
            field(lines, "From") == ['From: "Dr. \\"Who\\"" <alice@host.example.test>'], lines)

# --- header addresses are qualified as the envelope's (qmail-inject(8)) ----------
rc, err, q = send([SENDMAIL, "-t"],
                  "To: root, \"Bob\" <bob>,\n  carol@x.test (C), dave@localhost\n"
                  "From: root (Cron Daemon)\nReply-To: List: a, b@c.test;\n"
                  "Cc: undisclosed-recipients:;\nX-Other: root\nSubject: root\n\nx\n")
if t.check("header qualification: queued", rc == 0 and q and q != "several", err):
    lines, _ = split(q[0])
    t.check("To: bare names get @defaulthost, dotless domains .defaultdomain; display names, "
            "comments and folds kept",
            lines[:2] == ["To: root@host.example.test, \"Bob\" <bob@host.example.test>,",
                          "  carol@x.test (C), dave@localhost.example.test"], lines)
    t.check("From: root (Cron Daemon) is qualified, its comment kept",
            field(lines, "From") == ["From: root@host.example.test (Cron Daemon)"], lines)
    t.check("Reply-To group members qualified",
            field(lines, "Reply-To") == ["Reply-To: List: a@host.example.test, b@c.test;"], lines)
    t.check("an empty group, other fields and the Subject are left alone",
            field(lines, "Cc") == ["Cc: undisclosed-recipients:;"]
            and field(lines, "X-Other") == ["X-Other: root"]
            and field(lines, "Subject") == ["Subject: root"], lines)
rc, err, q = send([SENDMAIL, "-f", "bounces@f.test", "a@b.test"], "Subject: s\n\nx\n")
if t.check("-f without From: queued", rc == 0 and q and q != "several", err):
    t.check("-f without From: From is the login user, qualified (not the -f sender)",
            field(split(q[0])[0], "From") == ["From: alice@host.example.test"], q[0])

# --- added fields --------------------------------------------------------------
rc, err, q = send([SENDMAIL, "a@b.test"], "Subject: none\n\nbody\n")
if t.check("missing fields: queued", rc == 0 and q and q != "several", err):
    lines, _ = split(q[0])
    d, m, f = field(lines, "Date"), field(lines, "Message-ID"), field(lines, "From")
    t.check("Date added, RFC 5322 with offset", len(d) == 1 and re.fullmatch(
        r"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|"
        r"Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d [+-]\d{4}", d[0]), d)
    t.check("Message-ID added with idhost",
            len(m) == 1 and re.fullmatch(r"Message-ID: <\d+\.\d{6}\.\d+@id\.example\.test>", m[0]), m)
    t.check("From added as $USER@defaulthost", f == ["From: alice@host.example.test"], f)

hdr = ("Date: Mon, 1 Jan 2024 00:00:00 +0000\nFROM: x@y.test\nmessage-id: <keep@x>\n"
       "Return-Path: <forged@x>\nContent-Length: 3\nSubject: s\n\nbody\n")
rc, err, q = send([SENDMAIL, "a@b.test"], hdr)
if t.check("present fields: queued", rc == 0 and q and q != "several", err):
    lines, _ = split(q[0])
    t.check("present Date, From, Message-ID kept once (any case)",
            lines == ["Date: Mon, 1 Jan 2024 00:00:00 +0000", "FROM: x@y.test",
                      "message-id: <keep@x>", "Subject: s"], lines)

# --- dots, CRLF ----------------------------------------------------------------
msg = "Subject: dot\n\nline1\n.\nline2\n..\n"
rc, err, q = send([SENDMAIL, "a@b.test"], msg)
t.check("without -i, a '.' line ends the message",
        rc == 0 and q and split(q[0])[1] == b"line1\n", q and split(q[0])[1])
for opt in ("-i", "-oi"):
    rc, err, q = send([SENDMAIL, opt, "a@b.test"], msg)
    t.check("with %s, a '.' line is data" % opt,
            rc == 0 and q and split(q[0])[1] == b"line1\n.\nline2\n..\n", q and split(q[0])[1])
rc, err, q = send([INJECT, "a@b.test"], msg)
t.check("qmail-inject never ends at a '.' line",
        rc == 0 and q and split(q[0])[1] == b"line1\n.\nline2\n..\n", q and split(q[0])[1])
rc, err, q = send([SENDMAIL, "a@b.test"], "Subject: dot\r\n\r\nline1\r\n.\r\nline2\r\n")
t.check("'.\\r\\n' ends the message too", rc == 0 and q and split(q[0])[1] == b"line1\n",
        q and split(q[0])[1])

def send_pieces(argv, pieces):
    """Like send(), the input written piece by piece so that each read sees
    one piece: state carried across reads is exercised."""
    before = set(os.listdir(MESS))
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=BASE_ENV)
    try:
        for piece in pieces:
            p.stdin.write(piece)
            p.stdin.flush()
            time.sleep(0.02)
        p.stdin.close()
    except BrokenPipeError:   # it stopped reading at a "." line
        pass
    err = p.stderr.read()
    rc = p.wait(30)
    new = sorted(set(os.listdir(MESS)) - before)
    return rc, err, parse_qfile(os.path.join(MESS, new[0])) if len(new) == 1 else None


rc, err, q = send_pieces([SENDMAIL, "a@b.test"],
                         [b"Subject: p\n\nl1\r", b"\nx.\r", b"\r", b"\n.", b"\r", b"\n", b"after\n"])
t.check("CR, CRLF and '.' split across reads", rc == 0 and q and
        split(q[0])[1] == b"l1\nx.\r\n", q and split(q[0])[1])
rc, err, q = send_pieces([SENDMAIL, "a@b.test"], [b"Subject: p\n\nl1\n.", b"x\n", b".", b"\n"])
t.check("a '.' line split across reads ends the message, '.x' does not",
        rc == 0 and q and split(q[0])[1] == b"l1\n.x\n", q and split(q[0])[1])
rc, err, q = send([SENDMAIL, "-t"], "To: a@b.test\n.\nSubject: never\n")
t.check("a '.' line in the header ends the message",
        rc == 0 and q and split(q[0])[0][0] == "To: a@b.test" and split(q[0])[1] == b""
        and not field(split(q[0])[0], "Subject"), q and q[0])

rc, err, q = send([SENDMAIL, "-t"], b"To: a@b.test\r\nSubject: crlf\r\n\r\nl1\r\nbare\rcr\r\nlast")
if t.check("CRLF input: queued", rc == 0 and q and q != "several", err):
    t.check("CRLF becomes LF, a lone CR stays, a last line gets its LF",
            b"\r\n" not in q[0] and split(q[0])[1] == b"l1\nbare\rcr\nlast\n", q[0])
    t.check("recipient read from a CRLF header", rcpt_addrs(q) == ["a@b.test"], q[2])

rc, err, q = send([SENDMAIL, "a@b.test"], "no header here\nsecond\n")
if t.check("message without header: queued", rc == 0 and q and q != "several", err):
    lines, body = split(q[0])
    t.check("a non-field first line starts the body",
            body == b"no header here\nsecond\n" and field(lines, "Date"), (lines, body))

rc, err, q = send([SENDMAIL, "a@b.test"], "From someone@x.test Mon Jan  1 00:00:00 2024\nSubject: m\n\nx\n")
t.check("a leading mbox 'From ' line is dropped",
        rc == 0 and q and field(split(q[0])[0], "Subject") == ["Subject: m"]
        and b"From someone" not in q[0], q and q[0])

rc = subprocess.run(["sh", "-c", 'printf "Subject: c\\n\\nx\\n" | "$0" a@b.test >&- 2>&-', SENDMAIL],
                    env=BASE_ENV, timeout=30).returncode
t.check("works with stdout and stderr closed", rc == 0, rc)

# --- refusals: exit 100, nothing queued ------------------------------------------
def refused(name, argv, data, want=100, text=None):
    rc, err, q = send(argv, data)
    t.check(name + ": exit %d" % want, rc == want, (rc, err))
    t.check(name + ": nothing queued", q is None, q)
    if text:
        t.check(name + ": says why", text in err, err)


refused("NUL in the header", [SENDMAIL, "a@b.test"], b"Subject: a\0b\n\nx\n", text="NUL")
refused("NUL in the body", [SENDMAIL, "a@b.test"],
        b"Subject: a\n\n" + b"x" * 200000 + b"\0tail\n", text="NUL")
refused("overlong header line", [SENDMAIL, "a@b.test"],
        "Subject: " + "x" * 990 + "\n\nbody\n", text="998")
refused("header line over the read limit", [SENDMAIL, "a@b.test"],
        "Subject: " + "x" * 70000 + "\n\nbody\n", text="too long")
refused("unparsable To with -t", [SENDMAIL, "-t"], "To: John Smith\n\nx\n", text="parse")
refused("unparsable argument", [SENDMAIL, "a@b.test c@d.test"], "\nx\n", text="parse")
refused("-t without any recipient", [SENDMAIL, "-t"], "Subject: none\n\nx\n", text="no recipients")
refused("no recipient and no -t", [SENDMAIL], "Subject: none\n\nx\n")
refused("unknown option", [SENDMAIL, "-X", "/tmp/log", "a@b.test"], "\nx\n")
refused("unsupported -b mode", [SENDMAIL, "-bv"], "")
refused("bad -f", [SENDMAIL, "-f", "a@b@c", "a@b.test"], "\nx\n", text="sender")
# Envelope addresses that RFC 5322 allows but that cannot go out as one
# RFC 5321 path (a ">" in a literal would end MAIL FROM:<...> early, a tab
# in a quoted local part is no qtextSMTP): refused here, before
# qmail-queue, which would refuse them too (12).
for name, argv in (("'>' in a domain literal of -f", ["-f", "a@[x>NOTIFY=y]", "a@b.test"]),
                   ("tab in a quoted -f", ["-f", '"a\tb"@c.test', "a@b.test"]),
                   ("'>' in a recipient's literal", ["a@b.test", "c@[d>ORCPT=x]"]),
                   ("bad IPv6 literal in a recipient", ["c@[IPv6:zz]"])):
    refused(name, [SENDMAIL] + argv, "\nx\n", text="not an RFC 5321 mailbox")
refused("'>' in a To: literal with -t", [INJECT, "-t"], "To: x@[y>NOTIFY=z]\n\nx\n",
        text="not an RFC 5321 mailbox")
rc, err, q = send([SENDMAIL, "-f", '"a b>c"@q.test', '"d e"@r.test', "f@[127.0.0.1]"], "\nx\n")
t.check("quoted local parts and address literals still go through",
        rc == 0 and q and q[1] == '"a b>c"@q.test'
        and rcpt_addrs(q) == ['"d e"@r.test', "f@[127.0.0.1]"], (rc, err, q))
refused("control byte in -F", [SENDMAIL, "-F", "a\nBcc: x@y", "a@b.test"], "\nx\n")
rc, err, q = send([SENDMAIL, "-i", "a@b.test"], "Subject: ok\n\n" + "y" * 5000 + "\n")
t.check("a long body line is fine", rc == 0 and q and split(q[0])[1] == b"y" * 5000 + b"\n", err)
# -q flushes the queue: s6-svc -a (SIGALRM) to the supervised qmail-send.
# Without a supervisor (or as a user who may not control it) it says so
# and exits 111: a cron job's "sendmail -q" never fails silently.
p = run([SENDMAIL, "-q"], "")
t.check("-q without a supervised qmail-send: exit 111 with a message",
        p.returncode == 111 and b"cannot flush the queue" in p.stderr, (p.returncode, p.stderr))
p = run([SENDMAIL, "-q30m"], "")
t.check("-q with an interval (another MTA's daemon mode) is a no-op, exit 0", p.returncode == 0,
        p.stderr)
if IS_ROOT:
    svc = inst.path("service", "qmail-send")
    flag = inst.path("flushed")
    run_script = open(os.path.join(svc, "run")).read()
    with open(os.path.join(svc, "run"), "w") as f:
        f.write("#!/bin/sh\ntrap 'echo alrm >> %s' ALRM\nwhile :; do sleep 0.1; done\n" % flag)
    sup = subprocess.Popen(["s6-supervise", svc], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ok = harness.wait_for(lambda: harness.supervised(svc), 10)
        p = run([SENDMAIL, "-q"], "")
        t.check("-q as root sends qmail-send SIGALRM through s6-svc -a: exit 0",
                ok and p.returncode == 0, (ok, p.returncode, p.stderr))
        t.check("-q: qmail-send got its SIGALRM", harness.wait_for(lambda: os.path.exists(flag), 10))
    finally:
        subprocess.run(["s6-svc", "-dx", svc], stderr=subprocess.DEVNULL)
        try:
            sup.wait(10)
        except subprocess.TimeoutExpired:
            sup.kill()
        with open(os.path.join(svc, "run"), "w") as f:
            f.write(run_script)
else:
    t.skip("-q flushes", "needs root to control the supervisor")

# --- qmail-inject modes -----------------------------------------------------------
rc, err, q = send([INJECT], "To: h@x.test\nBcc: hb@x.test\n\nx\n")
t.check("qmail-inject without arguments reads the header",
        rc == 0 and q and rcpt_addrs(q) == ["h@x.test", "hb@x.test"], (err, q))
rc, err, q = send([INJECT, "arg@x.test"], "To: h@x.test\n\nx\n")
t.check("qmail-inject with arguments uses only them",
        rc == 0 and q and rcpt_addrs(q) == ["arg@x.test"], (err, q))
rc, err, q = send([INJECT, "-t", "arg@x.test"], "To: h@x.test\n\nx\n")
t.check("qmail-inject -t uses only the header",
        rc == 0 and q and rcpt_addrs(q) == ["h@x.test"], (err, q))
rc, err, q = send([INJECT, "-a"], "To: h@x.test\n\nx\n")
t.check("qmail-inject -a with no argument: exit 100, nothing queued", rc == 100 and q is None,
        (rc, err))
p = run([INJECT, "-n"], "To: h@x.test\nBcc: z@x.test\n\nbody\n")
t.check("qmail-inject -n prints the fixed message",
        p.returncode == 0 and p.stdout.startswith(b"To: h@x.test\nDate: ")
        and b"Bcc" not in p.stdout and p.stdout.endswith(b"\n\nbody\n"), p.stdout)

# --- the exact bytes of a larger message --------------------------------------------
body = b"".join(b"line %d " % i + bytes(range(32, 127)) + b"\n" for i in range(20000))
rc, err, q = send([SENDMAIL, "-i", "a@b.test"], b"Subject: big\n\n" + body)
t.check("a 2 MB body arrives byte for byte", rc == 0 and q and split(q[0])[1] == body, err)

# --- $QMAILQUEUE ---------------------------------------------------------------------
scripts = inst.path("qq-scripts")
os.makedirs(scripts, exist_ok=True)


def script(name, text):
    p = os.path.join(scripts, name)
    with open(p, "w") as f:
        f.write("#!/bin/sh\n" + text)
    os.chmod(p, 0o755)
    return p


for code, want in ((31, 100), (11, 100), (71, 111), (53, 111), (0, 0)):
    qq = script("exit%d" % code, "cat >/dev/null\nexit %d\n" % code)
    p = run([SENDMAIL, "a@b.test"], "Subject: q\n\nx\n", env={"QMAILQUEUE": qq})
    t.check("QMAILQUEUE exiting %d makes sendmail exit %d" % (code, want),
            p.returncode == want, (p.returncode, p.stderr))
qq = script("early", "exit 31\n")
p = run([SENDMAIL, "-i", "a@b.test"], b"Subject: q\n\n" + b"z" * 1000000, env={"QMAILQUEUE": qq})
t.check("QMAILQUEUE exiting 31 without reading: exit 100", p.returncode == 100,
        (p.returncode, p.stderr))
p = run([SENDMAIL, "a@b.test"], "\nx\n", env={"QMAILQUEUE": os.path.join(scripts, "none")})
t.check("QMAILQUEUE not runnable: exit 111", p.returncode == 111, (p.returncode, p.stderr))
cap = os.path.join(scripts, "captured")
qq = script("capture", "cat > %s.msg\ncat <&1 > %s.env\n" % (cap, cap))
p = run([SENDMAIL, "-f", "s@x.test", "r1@x.test", "r2@x.test"], "Subject: c\n\nx\n",
        env={"QMAILQUEUE": qq})
env = open(cap + ".env", "rb").read() if os.path.exists(cap + ".env") else b""
t.check("QMAILQUEUE gets the qmail-queue envelope on fd 1",
        p.returncode == 0 and env == b"Fs@x.test\0Tr1@x.test\0Tr2@x.test\0\0", (p.stderr, env))

# --- README's filter, exactly as printed ----------------------------------------
# Its "trap ... EXIT" cannot run once the shell has exec'd qmail-queue: the
# printed filter must still leave nothing in $TMPDIR, accepted or refused.
readme = open(os.path.join(harness.ROOT, "README.md")).read()
m = re.search(r"\n    #!/bin/sh\n    # /usr/local/bin/qq-filter[^\n]*\n(?:    [^\n]*\n)*", readme)
if t.check("README prints the qq-filter", m is not None):
    text = "\n".join(l[4:] for l in m.group(0).strip("\n").split("\n")) + "\n"
    filt = script("qq-filter", text.replace("#!/bin/sh\n", "", 1)
                  .replace("/var/qmail/", inst.prefix + "/"))
    fenv = {"QMAILQUEUE": filt, "TMPDIR": inst.path("filter-tmp")}
    os.makedirs(fenv["TMPDIR"], exist_ok=True)
    rc, err, q = send([SENDMAIL, "a@b.test"], "Subject: clean\n\nx\n", env=fenv)
    t.check("README filter: a clean message is queued", rc == 0 and q and q != "several", (rc, err))
    t.check("README filter: nothing left in its temporary directory after queueing",
            os.listdir(fenv["TMPDIR"]) == [], os.listdir(fenv["TMPDIR"]))
    rc, err, q = send([SENDMAIL, "a@b.test"], "X-Spam: yes\n\nx\n", env=fenv)
    t.check("README filter: X-Spam: yes refused for good (31: exit 100), nothing queued",
            rc == 100 and q is None, (rc, err))
    t.check("README filter: nothing left after a refusal", os.listdir(fenv["TMPDIR"]) == [],
            os.listdir(fenv["TMPDIR"]))
# Its tcp.smtp for everyone: every client gets QMAILQUEUE, loopback included.
rules = re.findall(r"^    (\S*:allow,.*QMAILQUEUE=.*)$", readme, re.M)
src = inst.path("filter-rules")
with open(src, "w") as f:
    f.write("\n".join(rules) + "\n")
subprocess.run(["tcprules", src + ".cdb", src + ".tmp"], stdin=open(src), check=True)
for ip in ("127.0.0.1", "::1", "192.0.2.7"):
    r = subprocess.run(["tcprulescheck", src + ".cdb"], env=dict(os.environ, TCPREMOTEIP=ip),
                       stdout=subprocess.PIPE)
    t.check("README's tcp.smtp sets QMAILQUEUE for %s" % ip,
            b"QMAILQUEUE=/usr/local/bin/qq-filter" in r.stdout and b"allow" in r.stdout, r.stdout)

# --- -bs and -bp run the right programs ------------------------------------------------
if os.path.exists(inst.bin("qmail-smtpd")):
    p = run([SENDMAIL, "-bs"], "QUIT\r\n")
    t.check("-bs speaks SMTP on stdin/stdout", p.stdout.startswith(b"220"), (p.stdout, p.stderr))
else:
    t.skip("-bs", "qmail-smtpd not built yet")

if os.path.exists(inst.bin("qmail-qread")):
    a = run([SENDMAIL, "-bp"], "")
    b = run([inst.bin("qmail-qread")], "")
    # Ages may tick between the two runs: compared without them.
    def sans_age(out):
        return re.sub(rb"  age [^ \n]+", b"  age -", out)
    t.check("-bp runs qmail-qread", (a.returncode, sans_age(a.stdout)) == (b.returncode, sans_age(b.stdout)),
            (a.returncode, a.stderr, b.returncode))
else:
    t.skip("-bp", "qmail-qread not built yet")

# --- 1,000 messages ---------------------------------------------------------------------
# Eight at a time, as concurrent applications would. The 300 s bound only
# keeps a hang from stalling the suite; speed is measured in bench/.
for f in os.listdir(MESS):
    os.unlink(os.path.join(MESS, f))
env = dict(BASE_ENV)
start, fails, n, running = time.time(), 0, 0, []
while (n < 1000 or running) and time.time() - start < 300:
    while n < 1000 and len(running) < 8:
        p = subprocess.Popen([SENDMAIL, "-t"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=env)
        p.stdin.write(b"To: loop%d@x.test\nSubject: %d\n\nmessage %d\n" % (n, n, n))
        p.stdin.close()
        running.append(p)
        n += 1
    p = running.pop(0)
    fails += p.wait(60) != 0
for p in running:
    p.kill()
    p.wait()
files = os.listdir(MESS)
t.check("1,000 messages through sendmail, none refused (%.1f s)" % (time.time() - start),
        n == 1000 and fails == 0 and not running, (n, fails))
t.check("1,000 queue files", len(files) == 1000, len(files))
t.check("each holds its own recipient",
        sorted(rcpt_addrs(parse_qfile(os.path.join(MESS, f)))[0] for f in files) ==
        sorted("loop%d@x.test" % i for i in range(1000)), "")

t.done()
