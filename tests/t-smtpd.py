"""qmail-smtpd under a real tcpserver: the conformance table (every
command in every state), extensions (PIPELINING, SIZE, CHUNKING,
SMTPUTF8), real clients (smtplib, swaks), the Received: line, and how
qmail-queue's exit codes become replies."""
import os, re, shutil, smtplib, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for
from smtpd_harness import Server, Queue

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test", ".sub.example.test"],
                            "databytes": "100000", "timeoutsmtpd": "10"})
srv = Server(inst)
q = Queue(inst)
ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3} ")

# --- the path limit: 256 octets with the brackets (RFC 5321 4.5.3.1) ---------
for size, want in ((256, (250, "2.1.0")), (257, (501, "5.1.3 address too long"))):
    # "<" + 64 + "@" + domain + ">": labels of 63, 63 and the rest.
    path = "<%s@%s.%s.%s>" % ("x" * 64, "y" * 63, "y" * 63, "y" * (size - 2 - 64 - 1 - 128))
    c = srv.connect()
    c.cmd("EHLO client.test")
    code, text = c.cmd("MAIL FROM:%s" % path)
    c.close()
    t.check("MAIL FROM with a path of %d octets: %d" % (len(path), want[0]),
            len(path) == size and code == want[0] and text.startswith(want[1]), (code, text))

# --- conformance table --------------------------------------------------
# state -> commands that bring a fresh connection there
STATES = {
    "fresh": [],
    "helo": ["HELO client.test"],
    "ehlo": ["EHLO client.test"],
    "mail": ["EHLO client.test", "MAIL FROM:<s@client.test>"],
    "rcpt": ["EHLO client.test", "MAIL FROM:<s@client.test>", "RCPT TO:<u@example.test>"],
}
# command -> expected code per state (fresh, helo, ehlo, mail, rcpt)
TABLE = [
    ("HELO client.test",            (250, 250, 250, 250, 250)),
    ("EHLO client.test",            (250, 250, 250, 250, 250)),
    ("HELO",                        (501, 501, 501, 501, 501)),
    ("MAIL FROM:<s@client.test>",   (503, 250, 250, 503, 503)),
    ("MAIL FROM:<>",                (503, 250, 250, 503, 503)),
    ("MAIL TO:<s@client.test>",     (503, 501, 501, 503, 503)),
    ("RCPT TO:<u@example.test>",    (503, 503, 503, 250, 250)),
    ("RCPT FROM:<u@example.test>",  (503, 503, 503, 501, 501)),
    ("DATA",                        (503, 503, 503, 503, 354)),
    ("DATA now",                    (503, 501, 501, 501, 501)),
    ("BDAT 0 LAST",                 (503, 503, 503, 503, 250)),
    ("BDAT x",                      (501, 501, 501, 501, 501)),
    ("RSET",                        (250, 250, 250, 250, 250)),
    ("NOOP",                        (250, 250, 250, 250, 250)),
    ("VRFY u@example.test",         (252, 252, 252, 252, 252)),
    ("HELP",                        (214, 214, 214, 214, 214)),
    ("EXPN list",                   (502, 502, 502, 502, 502)),
    ("STARTTLS",                    (502, 502, 502, 502, 502)),
    ("AUTH PLAIN",                  (502, 502, 502, 502, 502)),
    ("FROB",                        (500, 500, 500, 500, 500)),
    ("QUIT",                        (221, 221, 221, 221, 221)),
]
bad = []
for cmd, codes in TABLE:
    for (state, setup), want in zip(STATES.items(), codes):
        c = srv.connect()
        for s in setup:
            c.cmd(s)
        code, text = c.cmd(cmd)
        if code == 354:
            code, text = c.cmd(".")
            got_ok = code == 250
        else:
            got_ok = code == want
            first = text.split("\n")[0]
            if code not in (220, 221, 354) and not cmd.startswith(("HELO c", "EHLO")) \
                    and not ENH.match(first + " "):
                bad.append("%s in %s: no enhanced code: %r" % (cmd, state, text))
        if not got_ok:
            bad.append("%s in %s: %d %s (want %d)" % (cmd, state, code, text, want))
        c.close()
t.check("conformance table: %d commands x %d states" % (len(TABLE), len(STATES)),
        not bad, "; ".join(bad[:8]))
q.new(expect=2)

c = srv.connect()
t.check("greeting 220 names me", c.greeting == (220, "mail.example.test ESMTP"), c.greeting)
code, text = c.cmd("EHLO client.test")
kw = text.split("\n")[1:]
t.check("EHLO lists the extensions",
        code == 250 and set(kw) == {"PIPELINING", "8BITMIME", "SIZE 100000",
                                    "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN", "CHUNKING"}, text)
t.check("MAIL SIZE over databytes: 552 5.3.4",
        c.cmd("MAIL FROM:<s@client.test> SIZE=100001")[:1] == (552,) and True)
code, text = c.cmd("MAIL FROM:<s@client.test> SIZE=99999 BODY=8BITMIME")
t.check("MAIL SIZE under the limit, BODY=8BITMIME: 250 2.1.0", code == 250 and text.startswith("2.1.0"), text)
t.check("nested MAIL: 503 5.5.1", c.cmd("MAIL FROM:<s@client.test>") == (503, "5.5.1 nested MAIL command"))
c.cmd("RSET")
t.check("BODY=BINARYMIME: 555 5.5.4", c.cmd("MAIL FROM:<s@client.test> BODY=BINARYMIME")[0] == 555)
t.check("unknown MAIL parameter: 555", c.cmd("MAIL FROM:<s@client.test> XFOO=1")[0] == 555)
t.check("bad MAIL parameter syntax: 501", c.cmd("MAIL FROM:<s@client.test> SIZE=x")[0] == 501)
t.check("UTF-8 sender without SMTPUTF8: 553 5.6.7",
        c.cmd("MAIL FROM:<j\u00f6rg@client.test>") == (553, "5.6.7 non-ASCII address needs SMTPUTF8"))
t.check("unknown RCPT parameter: 555",
        c.cmd("MAIL FROM:<s@client.test>")[0] == 250 and
        c.cmd("RCPT TO:<u@example.test> XFOO=1")[0] == 555)
c.close()

c = srv.connect()
c.cmd("HELO client.test")
t.check("MAIL parameters after HELO: 555", c.cmd("MAIL FROM:<s@client.test> SIZE=10")[0] == 555)
c.close()

# --- a message, its Received line, its queue file -----------------------
c = srv.connect()
codes = c.transaction("s@client.test", ["u@example.test", "v@a.sub.example.test"])
c.cmd("DATA")
c.send("Subject: t1\r\n\r\nline one\r\n..dotted\r\n.\r\n")
code, text = c.reply()
t.check("accepted message: 250 2.0.0", codes == [250, 250, 250, 250] and code == 250 and text.startswith("2.0.0"), (codes, code, text))
c.cmd("QUIT")
new = q.new(expect=1)
t.check("one queue file", len(new) == 1, new)
if new:
    msg, sender, opts, rcpts = q.read(new[0])
    t.check("envelope sender and recipients", sender == b"s@client.test" and
            rcpts == [(b"P", b"u@example.test"), (b"P", b"v@a.sub.example.test")], (sender, rcpts))
    t.check("no SMTPUTF8 option", opts == [], opts)
    t.check("body: CRLF to LF, dot unstuffed", msg.endswith(b"Subject: t1\n\nline one\n.dotted\n"), msg)
    t.check("Received: from HELO (host [ip]) by me with ESMTP",
            re.search(rb"Received: from client\.test \(unknown \[127\.0\.0\.1\]\)\n  by mail\.example\.test with ESMTP; "
                      rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000\n", msg), msg[:300])

# HELO (SMTP), hostile HELO text sanitised
c = srv.connect()
c.cmd("HELO evil(x)\tb;c\"d")
c.cmd("MAIL FROM:<>")
c.cmd("RCPT TO:<u@example.test>")
c.cmd("DATA")
c.send("x\r\n.\r\n")
t.check("null sender accepted", c.reply()[0] == 250)
c.close()
new = q.new(expect=1)
if new:
    msg, sender, _, _ = q.read(new[0])
    t.check("HELO: with SMTP; unsafe bytes in HELO become '?'",
            b"Received: from evil?x??b?c?d (unknown [127.0.0.1])\n  by mail.example.test with SMTP;" in msg
            and sender == b"", msg[:200])

# SMTPUTF8
c = srv.connect()
c.cmd("EHLO client.test")
r1 = c.cmd("MAIL FROM:<j\u00f6rg@client.test> SMTPUTF8")
r2 = c.cmd("RCPT TO:<u@example.test>")
r3 = c.cmd("DATA")
c.send("Subject: \u00fc\r\n\r\n\u00fc\r\n.\r\n")
r4 = c.reply()
t.check("SMTPUTF8 transaction accepted", [r[0] for r in (r1, r2, r3, r4)] == [250, 250, 354, 250], (r1, r2, r3, r4))
c.close()
new = q.new(expect=1)
if new:
    msg, sender, opts, _ = q.read(new[0])
    t.check("SMTPUTF8 reaches the queue file as an option", opts == [b"SMTPUTF8"], opts)
    t.check("UTF8SMTP in Received:, sender kept as UTF-8",
            b"with UTF8SMTP;" in msg and sender == "j\u00f6rg@client.test".encode(), (msg[:200], sender))

# --- mail loops ----------------------------------------------------------------
for n, want in ((49, 250), (50, 554)):   # MAXHOPS (lib/hops.h)
    c = srv.connect()
    c.transaction("s@client.test", ["u@example.test"])
    c.cmd("DATA")
    c.send("".join("Received: from hop%d\r\n" % i for i in range(n)) + "Subject: loop\r\n\r\nx\r\n.\r\n")
    r = c.reply()
    t.check("%d Received: lines -> %d" % (n, want), r[0] == want and (want == 250 or r[1].startswith("5.4.6")), r)
    c.close()
t.check("only the 49-hop message was queued", len(q.new(expect=1)) == 1)

# --- pipelining ----------------------------------------------------------
c = srv.connect()
c.send("EHLO client.test\r\nMAIL FROM:<s@client.test>\r\nRCPT TO:<a@example.test>\r\n"
       "RCPT TO:<b@evil.test>\r\nRCPT TO:<c@example.test>\r\nNOOP\r\nDATA\r\n")
codes = [c.reply()[0] for _ in range(7)]
t.check("pipelined batch: replies in order", codes == [250, 250, 250, 553, 250, 250, 354], codes)
c.send("MAIL FROM:<inner@x.test>\r\nRCPT TO:<evil@evil.test>\r\nQUIT\r\n.\r\nNOOP\r\nQUIT\r\n")
codes = [c.reply()[0] for _ in range(3)]
t.check("input after 354 is data, never commands", codes == [250, 250, 221], codes)
c.close()
new = q.new(expect=1)
if new:
    msg, _, _, rcpts = q.read(new[0])
    t.check("pipelined message holds the command-like lines as text",
            msg.endswith(b"MAIL FROM:<inner@x.test>\nRCPT TO:<evil@evil.test>\nQUIT\n")
            and [r[1] for r in rcpts] == [b"a@example.test", b"c@example.test"], (msg, rcpts))

# Two messages in one pipelined write.
c = srv.connect()
c.cmd("EHLO client.test")
m = "MAIL FROM:<s@client.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n"
c.send(m)
codes = [c.reply()[0] for _ in range(3)]
c.send("one\r\n.\r\n" + m)
codes += [c.reply()[0] for _ in range(4)]
c.send("two\r\n.\r\nQUIT\r\n")
codes += [c.reply()[0] for _ in range(2)]
t.check("two messages pipelined in one session", codes == [250, 250, 354, 250, 250, 250, 354, 250, 221], codes)
c.close()
t.check("both queued", len(q.new(expect=2)) == 2)

# --- CHUNKING / BDAT -----------------------------------------------------
def bdat(c, data, last=False):
    c.send(b"BDAT %d%s\r\n" % (len(data), b" LAST" if last else b"") + data)
    return c.reply()

c = srv.connect()
c.cmd("EHLO client.test")
c.send("MAIL FROM:<s@client.test>\r\nRCPT TO:<u@example.test>\r\n"
       "BDAT 12\r\nSubject: b\r\n"
       "BDAT 17\r\n\r\n.\r\nQUIT\r\nline\r\n"
       "BDAT 0 LAST\r\n")
r = [c.reply() for _ in range(5)]
t.check("BDAT chunks pipelined: 250 each", [x[0] for x in r] == [250, 250, 250, 250, 250], r)
t.check("BDAT reply counts octets", r[2][1].startswith("2.0.0 12 octets"), r[2])
t.check("session goes on after BDAT LAST", c.cmd("NOOP")[0] == 250)
t.check("DATA after BDAT in a transaction: 503",
        c.cmd("MAIL FROM:<s@client.test>")[0] == 250 and c.cmd("RCPT TO:<u@example.test>")[0] == 250
        and bdat(c, b"abc")[0] == 250 and c.cmd("DATA")[0] == 503)
t.check("BDAT LAST after the refused DATA still completes", bdat(c, b"\r\n", True)[0] == 250)
c.close()
new = q.new(expect=2)
if len(new) == 2:
    msg = q.read(new[0])[0]
    t.check("BDAT content: CRLF to LF, no dot handling, no end marker",
            msg.endswith(b"Subject: b\n\n.\nQUIT\nline\n"), msg)
    t.check("second BDAT message", q.read(new[1])[0].endswith(b"abc\n"), q.read(new[1])[0][-20:])

c = srv.connect()
c.cmd("EHLO client.test")
t.check("BDAT without MAIL: chunk consumed, 503", bdat(c, b"QUIT\r\n")[0] == 503)
t.check("... and its bytes were not a command", c.cmd("NOOP")[0] == 250)
c.cmd("MAIL FROM:<s@client.test>")
c.cmd("RCPT TO:<u@example.test>")
t.check("BDAT chunk with bare LF: 554 5.6.0", bdat(c, b"a\nb\n")[0] == 554)
t.check("later chunk of the failed transaction: 503", bdat(c, b"xyz", True)[0] == 503)
c.close()
t.check("failed BDAT transaction queued nothing", q.new() == [])

# --- real clients --------------------------------------------------------
s = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
s.ehlo("smtplib.test")
refused = s.sendmail("s@client.test", ["u@example.test"], b"Subject: smtplib\r\n\r\nhello\r\n")
s.quit()
new = q.new(expect=1)
t.check("smtplib sendmail", refused == {} and len(new) == 1 and
        q.read(new[0])[0].endswith(b"Subject: smtplib\n\nhello\n"))

s = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
try:
    s.sendmail("s@client.test", ["x@evil.test"], b"x\r\n")
    t.check("smtplib sees relaying refused", False)
except smtplib.SMTPRecipientsRefused as e:
    t.check("smtplib sees relaying refused", e.recipients["x@evil.test"][0] == 553, e.recipients)
s.close()

if shutil.which("swaks"):
    for extra, name in (([], "swaks"), (["--pipeline"], "swaks --pipeline")):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                            "--from", "s@client.test", "--to", "u@example.test",
                            "--helo", "swaks.test", "--timeout", "10"] + extra,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        t.check(name + " delivers", r.returncode == 0 and len(q.new(expect=1)) == 1,
                r.stdout.decode()[-500:])
    r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(srv.port),
                        "--from", "s@client.test", "--to", "x@evil.test", "--timeout", "10"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    t.check("swaks relay attempt refused", r.returncode != 0 and b"553 5.7.1" in r.stdout,
            r.stdout.decode()[-300:])
else:
    t.skip("swaks", "not installed")

# --- 20 concurrent sessions -------------------------------------------------
import threading
results = []
def client(i):
    try:
        s = smtplib.SMTP("127.0.0.1", srv.port, timeout=20)
        for j in range(3):
            s.sendmail("s%d@client.test" % i, ["u@example.test"],
                       ("Subject: c%d-%d\r\n\r\n" % (i, j) + ("x" * 70 + "\r\n") * 30).encode())
        s.quit()
        results.append(True)
    except Exception as e:
        results.append(e)
threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
for th in threads:
    th.start()
for th in threads:
    th.join(60)
new = q.new(expect=60, wait=20)
t.check("20 concurrent sessions, 3 messages each: all queued",
        results == [True] * 20 and len(new) == 60, (results, len(new)))

# --- qmail-queue exit codes ----------------------------------------------
for code, want in ((31, 554), (32, 550), (53, 451), (81, 451)):
    fake = inst.path("bin", "fake-qq-%d" % code)
    with open(fake, "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\nexit %d\n" % code)
    os.chmod(fake, 0o755)
    srv2 = Server(inst, env={"QMAILQUEUE": fake}, name="qq%d" % code)
    c = srv2.connect()
    c.transaction("s@client.test", ["u@example.test"])
    c.cmd("DATA")
    c.send("x\r\n.\r\n")
    r = c.reply()
    t.check("qmail-queue exit %d: %d" % (code, want), r[0] == want and ENH.match(r[1] + " "), r)
    if code == 32:
        t.check("qmail-queue exit 32 (DMARC): 5.7.1", r[1].startswith("5.7.1 "), r)
        t.check("qmail-queue exit 32 logged as refused-dmarc",
                wait_for(lambda: "result=refused-dmarc" in srv2.logtext(), 5), srv2.logtext()[-500:])
    t.check("session goes on after qmail-queue exit %d" % code, c.cmd("NOOP")[0] == 250)
    c.close()

# --- log lines -----------------------------------------------------------
log = srv.logtext()
t.check("log: connect, helo, mail, rcpt and message lines",
        all(re.search(p, log) for p in (
            r"qmail-smtpd event=connect ip=127\.0\.0\.1 host=unknown relayclient=no",
            r"qmail-smtpd event=rcpt ip=127\.0\.0\.1 to=b@evil\.test result=refused reason=relay",
            r"qmail-smtpd event=message ip=127\.0\.0\.1 result=accepted bytes=\d+ rcpts=2 qq=0",
            r"qmail-smtpd event=mail ip=127\.0\.0\.1 from=s@client\.test result=accepted")), log[-2000:])
t.check("no stray files in queue/mess", all(re.match(r"^\d+\.\d+\.\d+$", n) for n in inst.queue_files()))
t.done()
