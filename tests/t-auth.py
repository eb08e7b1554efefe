#!/usr/bin/env python3
"""SMTP AUTH in qmail-smtpd: PLAIN and LOGIN with smtplib, swaks
and a raw client; refused before TLS (538) unless loopback with
control/authloopback; wrong passwords (535, then 421 after three);
relaying only after success; Received: names ESMTPA/ESMTPSA and the user;
SMTPD_AUTH=required (530 before AUTH); control/authsenders.cdb; the log
never holds a password; over STARTTLS and implicit TLS; and, as root, the
password database out of the smtpd uid's reach with the checker under
the auth uid."""
import base64, os, smtplib, ssl, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from smtpd_harness import Server, Client, Queue
from tls_harness import CA, TlsServer, install_cert

t = T()
inst = Instance(t, control={"locals": "mail.example.test", "rcpthosts": "mail.example.test",
                            "errordelay": "100"})    # shorter AUTH delays; t-smtpd-limits checks them
PW = "s3cret-Pass word"
PW2 = "other:pw"


def passwd(*args, stdin=""):
    return subprocess.run([inst.bin("qmail-passwd")] + list(args), input=stdin.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


r = passwd("add", "joe", stdin=PW + "\n")
t.check("qmail-passwd add", r.returncode == 0, r.stderr)
r = passwd("add", "ann@example.org", stdin=PW2 + "\n")
t.check("qmail-passwd add a second user", r.returncode == 0, r.stderr)
t.check("qmail-passwd add an existing user: 100", passwd("add", "joe", stdin="x\n").returncode == 100)
t.check("qmail-passwd bad name: 100", passwd("add", "a:b", stdin="x\n").returncode == 100)
t.check("qmail-passwd empty password: 100", passwd("add", "bob", stdin="\n").returncode == 100)
r = passwd("list")
t.check("qmail-passwd list", r.stdout.decode().split() == ["joe", "ann@example.org"], r.stdout)
src = open(inst.path("users", "authusers")).read()
t.check("source holds hashes, not passwords", PW not in src and "joe:$y$" in src, src)
t.check("source is 0600", os.stat(inst.path("users", "authusers")).st_mode & 0o777 == 0o600)
st = os.stat(inst.path("control", "authusers.cdb"))
t.check("cdb is 0400 and the auth uid's", st.st_mode & 0o777 == 0o400 and st.st_uid == inst.uid("auth")[0],
        (oct(st.st_mode), st.st_uid))

srv = Server(inst)                      # no RELAYCLIENT, no authloopback yet


def b64(s):
    return base64.b64encode(s.encode()).decode()


# --- no TLS, not allowed on loopback: not offered, 538 ---------------------
c = srv.connect()
code, text = c.cmd("EHLO client.test")
t.check("AUTH not offered without TLS or authloopback", "AUTH" not in text, text)
code, text = c.cmd("AUTH PLAIN " + b64("\0joe\0" + PW))
t.check("AUTH before TLS: 538 5.7.11", code == 538 and "5.7.11" in text, (code, text))
c.close()

inst.control("authloopback", "1")
c = srv.connect()
code, text = c.cmd("AUTH PLAIN " + b64("\0joe\0" + PW))
t.check("AUTH before EHLO: 503", code == 503, (code, text))
code, text = c.cmd("EHLO client.test")
t.check("AUTH PLAIN LOGIN offered on loopback with authloopback", "AUTH PLAIN LOGIN" in text.split("\n"), text)
code, text = c.cmd("MAIL FROM:<joe@example.org>")
code, text = c.cmd("RCPT TO:<x@elsewhere.test>")
t.check("relay refused before AUTH", code == 553, (code, text))
code, text = c.cmd("AUTH PLAIN " + b64("\0joe\0" + PW))
t.check("AUTH during a transaction: 503", code == 503, (code, text))
c.cmd("RSET")
code, text = c.cmd("AUTH CRAM-MD5")
t.check("unknown mechanism: 504", code == 504, (code, text))
code, text = c.cmd("AUTH PLAIN")
t.check("PLAIN without initial response: 334", code == 334, (code, text))
code, text = c.cmd("*")
t.check("'*' cancels: 501", code == 501, (code, text))
code, text = c.cmd("AUTH PLAIN not*base64")
t.check("undecodable: 501", code == 501, (code, text))
code, text = c.cmd("AUTH PLAIN =")
t.check("an empty initial response (=): 501, session goes on",
        code == 501 and c.cmd("NOOP")[0] == 250, (code, text))
code, text = c.cmd("AUTH PLAIN " + b64("ann@example.org\0joe\0" + PW))
t.check("an authzid other than the user: 535", code == 535, (code, text))
code, text = c.cmd("AUTH PLAIN")
code, text = c.cmd(b64("\0joe\0" + PW))
t.check("PLAIN in a 334 exchange: 235", code == 235 and "2.7.0" in text, (code, text))
code, text = c.cmd("AUTH PLAIN " + b64("\0joe\0" + PW))
t.check("AUTH twice: 503", code == 503, (code, text))
q = Queue(inst)
code, _ = c.cmd("MAIL FROM:<joe@example.org>")
code2, text = c.cmd("RCPT TO:<x@elsewhere.test>")
t.check("relay allowed after AUTH", (code, code2) == (250, 250), (code, code2, text))
code, _ = c.cmd("DATA")
code, text = c.cmd("Subject: hi\r\n\r\nbody\r\n.")
t.check("message accepted", code == 250, (code, text))
c.cmd("QUIT")
c.close()
new = q.new(1)
if t.check("queued", len(new) == 1, new):
    msg, sender, _, rcpts = q.read(new[0])
    first = msg.split(b"\n\n")[0].decode()
    t.check("Received: with ESMTPA and the user", "with ESMTPA" in first and "(authenticated user joe)" in first, first)

# --- LOGIN, smtplib and swaks ------------------------------------------------
c = srv.connect()
c.cmd("EHLO client.test")
code, text = c.cmd("AUTH LOGIN")
t.check("LOGIN asks Username:", code == 334 and text == "VXNlcm5hbWU6", (code, text))
code, text = c.cmd(b64("ann@example.org"))
t.check("LOGIN asks Password:", code == 334 and text == "UGFzc3dvcmQ6", (code, text))
code, text = c.cmd(b64(PW2))
t.check("LOGIN: 235", code == 235, (code, text))
c.close()
c = srv.connect()
c.cmd("EHLO client.test")
code, text = c.cmd("AUTH LOGIN " + b64("joe"))
code, text = c.cmd(b64(PW))
t.check("LOGIN with the user as initial response: 235", code == 235, (code, text))
c.close()

for mech in ("PLAIN", "LOGIN"):
    s = smtplib.SMTP("127.0.0.1", srv.port, timeout=20)
    s.ehlo("client.test")
    s.user, s.password = "joe", PW
    try:
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower()), initial_response_ok=(mech == "PLAIN"))
    except smtplib.SMTPException as e:
        code = e
    t.check("smtplib AUTH %s" % mech, code == 235, code)
    s.quit()

for mech in ("PLAIN", "LOGIN"):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--from", "joe@example.org",
                        "--to", "someone@elsewhere.test", "--auth", mech, "--auth-user", "joe",
                        "--auth-password", PW, "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    t.check("swaks --auth %s relays" % mech, r.returncode == 0 and "235" in out, out[-600:])
r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % srv.port, "--from", "joe@example.org",
                    "--to", "someone@elsewhere.test", "--auth", "PLAIN", "--auth-user", "joe",
                    "--auth-password", "wrong", "--timeout", "20"],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
t.check("swaks with a wrong password fails (535)", r.returncode != 0 and "535" in r.stdout.decode(), r.stdout[-400:])

# --- failures: 535 with a delay, 421 after three -----------------------------
c = srv.connect()
c.cmd("EHLO client.test")
t0 = time.time()
code, text = c.cmd("AUTH PLAIN " + b64("\0joe\0wrong"))
t.check("wrong password: 535 5.7.8", code == 535 and "5.7.8" in text, (code, text))
t.check("a failure is delayed (>= 1 s)", time.time() - t0 >= 0.9, time.time() - t0)
code, text = c.cmd("AUTH PLAIN " + b64("\0nobody\0wrong"))
t.check("unknown user: the same 535", code == 535, (code, text))
code, text = c.cmd("AUTH LOGIN " + b64("joe"))
code, text = c.cmd(b64("wrong again"))
t.check("third failure: 421, closed", code == 421 and c.closed(), (code, text))
c.close()

# --- authsenders.cdb ---------------------------------------------------------
rules = "joe:joe@example.org 1\njoe:@joe.example 1\nann@example.org:* 1\n\n"
subprocess.run(["cdb", "-c", "-m", inst.path("control", "authsenders.cdb")], input=rules.encode(), check=True)
os.chmod(inst.path("control", "authsenders.cdb"), 0o644)


def mail_as(user, pw, sender):
    c = srv.connect()
    c.cmd("EHLO client.test")
    c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, pw)))
    code, text = c.cmd("MAIL FROM:<%s>" % sender)
    c.close()
    return code


t.check("authsenders: joe's own address", mail_as("joe", PW, "joe@example.org") == 250)
t.check("authsenders: joe's domain", mail_as("joe", PW, "any@JOE.example") == 250)
t.check("authsenders: another address 553", mail_as("joe", PW, "boss@example.org") == 553)
t.check("authsenders: <> not listed for joe: 553", mail_as("joe", PW, "") == 553)
t.check("authsenders: '*' allows anything", mail_as("ann@example.org", PW2, "x@y.test") == 250)
os.unlink(inst.path("control", "authsenders.cdb"))

# --- SMTPD_AUTH=required -------------------------------------------------------
sub = Server(inst, relay=True, env={"SMTPD_AUTH": "required"}, name="submission")
c = sub.connect()
c.cmd("EHLO client.test")
code, text = c.cmd("MAIL FROM:<joe@example.org>")
t.check("required: MAIL before AUTH is 530 5.7.0 (even with RELAYCLIENT)", code == 530 and "5.7.0" in text, (code, text))
c.cmd("AUTH PLAIN " + b64("\0joe\0" + PW))
code, text = c.cmd("MAIL FROM:<joe@example.org>")
t.check("required: MAIL after AUTH is 250", code == 250, (code, text))
c.close()

# --- the log ------------------------------------------------------------------
logs = srv.logtext() + sub.logtext()
secrets = [PW, PW2, b64("\0joe\0" + PW), b64(PW), b64(PW2), "wrong again", b64("wrong again")]
t.check("the log never holds a password", not any(s in logs for s in secrets),
        [s for s in secrets if s in logs])
t.check("the log records user, ip, mechanism, result",
        "event=auth ip=127.0.0.1 mech=PLAIN user=joe result=ok" in logs
        and "mech=LOGIN user=joe result=failed" in logs, logs[-1500:])

# --- over STARTTLS and implicit TLS --------------------------------------------
inst.control("authloopback", "0")
ca = CA(t)
cert, key = ca.issue("mail.example.test", "ec")
install_cert(inst, cert, key)
tls = TlsServer(inst, relay=False)
smtps = TlsServer(inst, relay=False, implicit=True, name="smtps", env={"SMTPD_AUTH": "required"})
ctx = ssl.create_default_context(cafile=ca.cert)
ctx.check_hostname = False       # we connect by address; the chain is still verified

s = smtplib.SMTP("127.0.0.1", tls.port, timeout=20)
s.ehlo("client.test")
t.check("no AUTH before STARTTLS (not loopback-allowed)", not s.has_extn("auth"), s.esmtp_features)
code, text = s.docmd("AUTH", "PLAIN " + b64("\0joe\0" + PW))
t.check("AUTH before STARTTLS: 538", code == 538, (code, text))
s.starttls(context=ctx)
s.ehlo("client.test")
t.check("AUTH offered after STARTTLS", "PLAIN" in s.esmtp_features.get("auth", ""), s.esmtp_features)
try:
    s.login("joe", PW)
    ok = True
except smtplib.SMTPException as e:
    ok = e
t.check("smtplib STARTTLS + login", ok is True, ok)
code, _ = s.mail("joe@example.org")
code2, _ = s.rcpt("x@elsewhere.test")
t.check("relay after AUTH over STARTTLS", (code, code2) == (250, 250), (code, code2))
code, _ = s.data(b"Subject: tls\r\n\r\nbody\r\n")
t.check("message over STARTTLS accepted", code == 250, code)
s.quit()
new = q.new(1)
if new:
    first = q.read(new[-1])[0].split(b"\n\n")[0].decode()
    t.check("Received: with ESMTPSA", "with ESMTPSA" in first, first)

# A login made in plaintext (loopback allowed) does not survive STARTTLS.
inst.control("authloopback", "1")
s = smtplib.SMTP("127.0.0.1", tls.port, timeout=20)
s.ehlo("client.test")
code, _ = s.docmd("AUTH", "PLAIN " + b64("\0joe\0" + PW))
t.check("plaintext AUTH on loopback before STARTTLS", code == 235, code)
s.starttls(context=ctx)
s.ehlo("client.test")
s.mail("joe@example.org")
code, _ = s.rcpt("x@elsewhere.test")
t.check("STARTTLS forgets the login: relay refused", code == 553, code)
s.quit()
inst.control("authloopback", "0")

for mech in ("PLAIN", "LOGIN"):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % tls.port, "--tls", "--from", "joe@example.org",
                        "--to", "someone@elsewhere.test", "--auth", mech, "--auth-user", "joe",
                        "--auth-password", PW, "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace")
    t.check("swaks --tls --auth %s" % mech, r.returncode == 0 and "235" in out, out[-600:])

s = smtplib.SMTP_SSL("127.0.0.1", smtps.port, timeout=20, context=ctx)
s.ehlo("client.test")
code, text = s.docmd("MAIL", "FROM:<joe@example.org>")
t.check("465 requires AUTH: 530", code == 530, (code, text))
try:
    s.login("joe", PW)
    ok = True
except smtplib.SMTPException as e:
    ok = e
t.check("465: login", ok is True, ok)
s.close()
s = smtplib.SMTP_SSL("127.0.0.1", smtps.port, timeout=20, context=ctx)
s.ehlo("client.test")
try:
    s.login("joe", "wrong")
    ok = False
except smtplib.SMTPAuthenticationError as e:
    ok = e.smtp_code == 535
t.check("465: wrong password 535", ok)
s.close()
logs = tls.logtext() + smtps.logtext()
t.check("TLS log holds no password", PW not in logs and b64("\0joe\0" + PW) not in logs)

# --- as root: the database is out of the smtpd uid's reach ----------------------
if IS_ROOT and inst.multi:
    duid, dgid = inst.uid("smtpd")
    auid, _ = inst.uid("auth")

    def as_smtpd():
        os.setgroups([])
        os.setgid(dgid)
        os.setuid(duid)

    r = subprocess.run(["/bin/cat", inst.path("control", "authusers.cdb")], stdout=subprocess.DEVNULL,
                       preexec_fn=as_smtpd, stderr=subprocess.PIPE)
    t.check("the smtpd uid cannot open authusers.cdb", r.returncode != 0 and b"ermission" in r.stderr, r.stderr)
    st = os.stat(inst.bin("qmail-authcheck"))
    t.check("qmail-authcheck is setuid to the auth uid, 4710",
            st.st_uid == auid and st.st_mode & 0o7777 == 0o4710, (st.st_uid, oct(st.st_mode)))

    def checker(user, pw):
        rfd, wfd = os.pipe()
        os.write(wfd, user.encode() + b"\x00" + pw.encode() + b"\x00" + b"1700000000\x00")
        os.close(wfd)

        def pre():
            os.dup2(rfd, 3)
            as_smtpd()
        p = subprocess.run([inst.bin("qmail-authcheck")], preexec_fn=pre, close_fds=False, env={})
        os.close(rfd)
        return p.returncode

    t.check("checker run by the smtpd uid: right password 0", checker("joe", PW) == 0)
    t.check("checker run by the smtpd uid: wrong password 1", checker("joe", "nope") == 1)
    t.check("checker: malformed request 2", checker("jo e", PW) == 2)
    try:
        subprocess.run([inst.bin("qmail-authcheck")], stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
        refused = False
    except PermissionError:
        refused = True
    t.check("checker not executable by others", refused)
    # The other daemons' uids share a group (nofiles); none of them may run
    # the checker as a password oracle: it is the session's alone.
    for role in ("remote", "tls", "log", "alias"):
        u, g = inst.uid(role)
        try:
            subprocess.run([inst.bin("qmail-authcheck")], stderr=subprocess.DEVNULL,
                           preexec_fn=lambda: (os.setgroups([]), os.setgid(g), os.setuid(u)))
            refused = False
        except PermissionError:
            refused = True
        t.check("checker not executable by the %s uid" % role, refused)
else:
    t.skip("database permissions", "needs root (multi-uid instance)")

# --- qmail-passwd change and remove keep the cdb in step --------------------------
r = passwd("change", "joe", stdin="newpass\n")
inst.control("authloopback", "1")
c = srv.connect()
c.cmd("EHLO client.test")
code, _ = c.cmd("AUTH PLAIN " + b64("\0joe\0newpass"))
t.check("qmail-passwd change: the new password works", r.returncode == 0 and code == 235, (r.stderr, code))
c.close()
r = passwd("remove", "joe")
c = srv.connect()
c.cmd("EHLO client.test")
code, _ = c.cmd("AUTH PLAIN " + b64("\0joe\0newpass"))
t.check("qmail-passwd remove: refused", r.returncode == 0 and code == 535, (r.stderr, code))
c.close()
t.check("removed from the source", "joe:" not in open(inst.path("users", "authusers")).read())
t.done()
