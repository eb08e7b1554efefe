"""qmail-smtpd relay control and RCPT-time recipient checks: the open-relay
battery (each trick gets its exact reply and nothing reaches the queue),
local recipients checked against users/cdb, validrcptto.cdb, system
accounts and alias/.qmail-*, 550 5.1.1 for unknown ones, RELAYCLIENT, and
the recipient limit."""
import os, pwd, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance
from smtpd_harness import Server, Queue

t = T()
inst = Instance(t, control={
    "rcpthosts": ["example.test", ".sub.example.test", "catchall.example.test"],
    "locals": ["example.test", "catchall.example.test"],
    "timeoutsmtpd": "10"})
with open(inst.path("users", "assign"), "w") as f:
    f.write("=alice:alice:7100:7100:/home/alice:::\n"
            "+carol-:carol:7101:7101:/home/carol:-::\n.\n")
r = subprocess.run([inst.bin("qmail-newu")], stderr=subprocess.PIPE)
t.check("qmail-newu builds users/cdb", r.returncode == 0, r.stderr)
os.chmod(inst.path("users", "cdb"), 0o644)
vr = inst.path("control", "validrcptto")
with open(vr, "w") as f:
    f.write("bob@example.test\n@catchall.example.test\n")
subprocess.run("cdb -c -m %s.cdb < %s" % (vr, vr), shell=True, check=True)
os.chmod(vr + ".cdb", 0o644)

srv = Server(inst)
relay = Server(inst, relay=True, name="relay")
q = Queue(inst)


def one(server, rcpt, utf8=False, raw=None):
    """A fresh session: EHLO, MAIL, one RCPT; then DATA must be refused
    unless the RCPT was taken. Returns (code, enhanced code)."""
    c = server.connect()
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<s@client.test>" + (" SMTPUTF8" if utf8 else ""))
    if raw is not None:
        c.send(raw)
        code, text = c.reply()
    else:
        code, text = c.cmd("RCPT TO:" + rcpt)
    if code != 250:
        d = c.cmd("DATA")[0]
        if d != 503:
            code = -d
    c.close()
    return code, text[:5]


TRICKS = [
    ("<x@evil.test>",                          553, "5.7.1"),
    ("<x@EVIL.TEST>",                          553, "5.7.1"),
    ("<x@evil.test.>",                         501, "5.1.3"),
    ("<x@example.test.>",                      501, "5.1.3"),
    ("<x%evil.test@example.test>",             553, "5.7.1"),
    ("<evil.test!x@example.test>",             553, "5.7.1"),
    ("<\"x@evil.test\"@example.test>",         553, "5.7.1"),
    ("<\"x%evil.test\"@example.test>",         553, "5.7.1"),
    ("<\"x!y\"@example.test>",                 553, "5.7.1"),
    ("<@example.test:x@evil.test>",            553, "5.7.1"),
    ("<@evil.test:alice@example.test>",        553, "5.7.1"),
    ("<@a.test,@example.test:x@evil.test>",    553, "5.7.1"),
    ("<@EXAMPLE.TEST:X@EVIL.TEST>",            553, "5.7.1"),
    ("<x@[127.0.0.1]>",                        553, "5.7.1"),
    ("<x@[192.0.2.1]>",                        553, "5.7.1"),
    ("<x@[IPv6:::1]>",                         553, "5.7.1"),
    ("<x@[example.test]>",                     501, "5.1.3"),
    ("<x@evil.test@example.test>",             501, "5.1.3"),
    ("<x@example.test@evil.test>",             501, "5.1.3"),
    ("x@evil.test",                            501, "5.1.3"),
    ("<x@evil.test",                           501, "5.1.3"),
    ("<x@example.test:y@evil.test>",           501, "5.1.3"),
    ("<x@example.test.evil.test>",             553, "5.7.1"),
    ("<x@evilexample.test>",                   553, "5.7.1"),
    ("<x@sub.example.test>",                   553, "5.7.1"),
    ("<x@xsub.example.test>",                  553, "5.7.1"),
    ("<evil.test!x>",                          501, "5.1.3"),
    ("<x%evil.test>",                          501, "5.1.3"),
    ("<x@evil .test>",                         501, "5.1.3"),
    ("<x@-evil.test>",                         501, "5.1.3"),
    ("<x@evil..test>",                         501, "5.1.3"),
    ("<x@evil.test%example.test>",             501, "5.1.3"),
    ("<\"x\"@evil.test>",                      553, "5.7.1"),
    ("<postmaster@evil.test>",                 553, "5.7.1"),
    ("<x@evil.test> NOTIFY=NEVER",             553, "5.7.1"),
    ("<x@evil.test> XFOO=1",                   555, "5.5.4"),
    ("<x@evil.test> ",                         553, "5.7.1"),
    ("< x@evil.test>",                         501, "5.1.3"),
    ("<x@evil.test,@example.test>",            501, "5.1.3"),
    ("<x\\@evil.test@example.test>",           501, "5.1.3"),
    ("<x@evil.test\t>",                        501, "5.1.3"),
]
for rcpt, code, enh in TRICKS:
    got = one(srv, rcpt)
    t.check("relay trick RCPT TO:%s -> %d %s" % (rcpt, code, enh), got == (code, enh), got)

RAW = [
    ("NUL in RCPT", b"RCPT TO:<x@evil.test\0>\r\n", 500, "5.5.2"),
    ("bare LF ends RCPT", b"RCPT TO:<x@evil.test>\n", 500, "5.5.2"),
    ("bare CR in RCPT", b"RCPT TO:<x@example.test\r>\r\n", 500, "5.5.2"),
    ("CR LF smuggled in RCPT", b"RCPT TO:<x@evil.test>\rRCPT TO:<y@evil.test>\r\n", 500, "5.5.2"),
]
for name, raw, code, enh in RAW:
    got = one(srv, None, raw=raw)
    t.check("relay trick %s -> %d %s" % (name, code, enh), got == (code, enh), got)

t.check("UTF-8 domain without SMTPUTF8: 553 5.6.7",
        one(srv, "<x@\u00ebvil.test>") == (553, "5.6.7"))
t.check("UTF-8 domain with SMTPUTF8, not ours: 553 5.7.1",
        one(srv, "<x@\u00ebvil.test>", utf8=True) == (553, "5.7.1"))
t.check("invalid UTF-8 in RCPT: 501 5.1.3",
        one(srv, None, utf8=True, raw=b"RCPT TO:<x@\xc3(.test>\r\n") == (501, "5.1.3"))
t.check("relay battery: nothing reached the queue", q.new() == [])

# --- local recipients: 550 5.1.1 at RCPT time --------------------------
# root: install's alias/.qmail-root, taken away here; put back below.
os.unlink(inst.path("alias", ".qmail-root"))
LOCAL = [
    ("<alice@example.test>", 250, "2.1.5", "users/cdb exact"),
    ("<Alice@EXAMPLE.test>", 250, "2.1.5", "users/cdb, case ignored"),
    ("<carol-list@example.test>", 250, "2.1.5", "users/cdb prefix"),
    ("<carol@example.test>", 550, "5.1.1", "prefix needs its dash"),
    ("<bob@example.test>", 250, "2.1.5", "validrcptto.cdb address"),
    ("<anyone@catchall.example.test>", 250, "2.1.5", "validrcptto.cdb @domain"),
    ("<nosuchuser@example.test>", 550, "5.1.1", "unknown user"),
    ("<alice.x@example.test>", 550, "5.1.1", "unknown user with a dot"),
    ("<postmaster@example.test>", 250, "2.1.5", "postmaster"),
    ("<postmaster>", 250, "2.1.5", "<postmaster> without domain"),
    ("<PostMaster>", 250, "2.1.5", "<PostMaster>"),
    ("<root@example.test>", 550, "5.1.1", "root is not an account for mail"),
    ("<x@a.sub.example.test>", 250, "2.1.5", "rcpthosts subdomain, not local"),
    ("<alice>", 501, "5.1.3", "a bare local part other than postmaster"),
]
for rcpt, code, enh, why in LOCAL:
    got = one(srv, rcpt)
    t.check("local RCPT %s (%s) -> %d %s" % (rcpt, why, code, enh), got == (code, enh), got)
try:
    pwd.getpwnam("daemon")
    # Its home is not its own: delivery would refuse it, so RCPT does.
    t.check("system account daemon@ refused", one(srv, "<daemon@example.test>") == (550, "5.1.1"))
    t.check("system account with extension daemon-x@ refused", one(srv, "<daemon-x@example.test>") == (550, "5.1.1"))
except KeyError:
    t.skip("system account", "no daemon user")
with open(inst.path("alias", ".qmail-root"), "w") as f:
    f.write("./Maildir/\n")
os.chmod(inst.path("alias", ".qmail-root"), 0o644)
t.check("root@ accepted once alias/.qmail-root exists", one(srv, "<root@example.test>") == (250, "2.1.5"))

log = srv.logtext()
t.check("log names the refused unknown user",
        "to=nosuchuser@example.test result=refused reason=unknown" in log, log[-500:])

# --- RELAYCLIENT -------------------------------------------------------------
c = relay.connect()
codes = c.transaction("s@client.test", ["x@evil.test", "@r.test:y@evil.test", "a%b@evil.test",
                                        "z@[192.0.2.1]", "nosuchuser@example.test", "alice@example.test"])
c.cmd("DATA")
c.send("relayed\r\n.\r\n")
codes.append(c.reply()[0])
c.close()
t.check("RELAYCLIENT: any domain, route, %, literal; unknown local still 550",
        codes == [250, 250, 250, 250, 250, 250, 550, 250, 250], codes)
new = q.new(expect=1)
t.check("relayed message queued once", len(new) == 1, new)
if new:
    rc = [r[1] for r in q.read(new[0])[3]]
    t.check("route dropped, recipients as given",
            rc == [b"x@evil.test", b"y@evil.test", b"a%b@evil.test", b"z@[192.0.2.1]", b"alice@example.test"], rc)
t.check("relay log says relayclient=yes", "relayclient=yes" in relay.logtext())

# --- a large message streams through (no databytes here) ----------------------
import smtplib
body = b"".join(b"%07d " % i + b"z" * 70 + b"\r\n" for i in range(40000))   # 3.1 MB
s = smtplib.SMTP("127.0.0.1", srv.port, timeout=30)
refused = s.sendmail("s@client.test", ["alice@example.test"], b"Subject: big\r\n\r\n" + body)
s.quit()
new = q.new(expect=1)
t.check("3 MB message accepted and queued whole", refused == {} and len(new) == 1 and
        q.read(new[0])[0].endswith(b"Subject: big\n\n" + body.replace(b"\r\n", b"\n")))

# --- recipient limit ----------------------------------------------------------
c = srv.connect()
c.cmd("EHLO client.test")
c.cmd("MAIL FROM:<s@client.test>")
c.send("".join("RCPT TO:<u%d@catchall.example.test>\r\n" % i for i in range(101)))
codes = [c.reply() for _ in range(101)]
t.check("100 recipients accepted", all(x[0] == 250 for x in codes[:100]), codes[:3])
t.check("101st recipient: 452 4.5.3", codes[100][0] == 452 and codes[100][1].startswith("4.5.3"), codes[100])
c.cmd("DATA")
c.send("many\r\n.\r\n")
t.check("message to 100 recipients accepted", c.reply()[0] == 250)
c.close()
new = q.new(expect=1)
t.check("queue file holds 100 recipients", len(new) == 1 and len(q.read(new[0])[3]) == 100)

# --- no tables at all: delivery still knows, so the check still holds ----------
os.unlink(inst.path("users", "cdb"))
os.unlink(vr + ".cdb")
t.check("without users/cdb and validrcptto.cdb an unknown local part is still refused",
        one(srv, "<nosuchuser@example.test>") == (550, "5.1.1"))
t.check("... and postmaster still accepted", one(srv, "<postmaster@example.test>") == (250, "2.1.5"))
t.check("... and relaying is still refused", one(srv, "<x@evil.test>") == (553, "5.7.1"))
t.check("no queue files from refused sessions", q.new() == [])
t.done()
