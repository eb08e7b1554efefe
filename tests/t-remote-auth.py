#!/usr/bin/env python3
"""qmail-remote authenticating to a smarthost (the client side).

The smarthost is this MTA's own qmail-tlsd + qmail-smtpd under tcpserver,
from the same instance, with control/authusers.cdb and SMTPD_AUTH=required:
no relaying without AUTH, AUTH only after TLS. One listens with STARTTLS,
one with implicit TLS (port 465 style). Python sinks (remote_peers.Sink)
stand in for a server without STARTTLS and record every command, so that a
password sent in plaintext would be seen. Routes in control/smtproutes
carry the options tls=, verify=no, auth=plain-ok; credentials are in
control/smtpauth."""
import os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT
from remote_peers import Dns, Sink
from smtpd_harness import Queue
from tls_harness import CA, TlsServer, install_cert, received_header, run_remote, self_signed

t = T()
inst = Instance(t, control={"locals": "mail.example.test", "rcpthosts": "mail.example.test"})
PW = "relay-Pass:word 1"
r = subprocess.run([inst.bin("qmail-passwd"), "add", "relayuser"], input=(PW + "\n").encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t.check("smarthost account made", r.returncode == 0, r.stderr)

ca = CA(t)
good = ca.issue("mx.good.test", "rsa")
selfsigned = self_signed(ca.dir, "mx.good.test")
install_cert(inst, *good)
env = {"SMTPD_AUTH": "required"}
starttls = TlsServer(inst, relay=False, env=env, name="smarthost")
implicit = TlsServer(inst, relay=False, implicit=True, env=env, name="smarthost465")
q = Queue(inst)
PLAIN_PW = "sinkpw"
plain = Sink(t, ext=["PIPELINING", "AUTH PLAIN LOGIN"], auth={"sinkuser": PLAIN_PW})
login = Sink(t, ext=["AUTH LOGIN"], auth={"sinkuser": PLAIN_PW})
noauth = Sink(t)

dns = Dns(t, ["--host-record=mx.good.test,127.0.0.1", "--host-record=sink.test,127.0.0.1"])
t.check("dnsmasq answers", dns.ok)
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("helohost", "client.example.test")
inst.control("tlsca", open(ca.cert).read())
os.chmod(inst.path("control", "tlsca"), 0o644)
# A tlspolicy of none must not weaken an authenticated route.
inst.control("tlspolicy", [":none"])
inst.control("smtproutes", [
    "starttls.test:mx.good.test:%d" % starttls.port,
    "implicit.test:mx.good.test:%d tls=implicit" % implicit.port,
    "noverify.test:mx.good.test:%d verify=no" % starttls.port,
    "noverify465.test:mx.good.test:%d tls=implicit verify=no" % implicit.port,
    "plaintext.test:sink.test:%d" % plain.port,
    "plainok.test:sink.test:%d auth=plain-ok" % plain.port,
    "login.test:sink.test:%d auth=plain-ok" % login.port,
    "noauth.test:sink.test:%d tls=none auth=plain-ok" % noauth.port,
    "wrong.test:127.0.0.1:%d verify=no" % starttls.port,
])
CREDS = ["mx.good.test:relayuser:" + PW, "sink.test:sinkuser:" + PLAIN_PW,
         "127.0.0.1:relayuser:wrong-" + PW]


def smtpauth(lines):
    inst.control("smtpauth", lines)
    p = inst.path("control", "smtpauth")
    if IS_ROOT and inst.multi:
        os.chown(p, *inst.uid("remote"))
    os.chmod(p, 0o400)


smtpauth(CREDS)

user = {}
if IS_ROOT and inst.multi:
    uid, gid = inst.uid("remote")
    user = dict(user=uid, group=gid, extra_groups=[])


def remote(domain):
    return run_remote(inst, domain, "rcpt@far.test", b"Subject: via smarthost\n\nhello\n", **user)


def received():
    return received_header(q)


def last_session(sink, n):
    return sink.sessions[-1] if len(sink.sessions) > n else None


logs = ""
# --- STARTTLS, verified, AUTH PLAIN -------------------------------------------
code, text, err = remote("starttls.test")
logs += err
t.check("STARTTLS + AUTH: delivered", code == "K", (code, text, err))
t.check("STARTTLS + AUTH: verified by default (tlspolicy none ignored)",
        "policy=verify result=ok" in err and "chain=verified" in err, err)
t.check("STARTTLS + AUTH: logged", re.search(r"qmail-remote event=auth ip=127\.0\.0\.1 host=mx\.good\.test "
                                             r"user=relayuser mech=PLAIN tls=yes result=ok", err), err)
r = received()
t.check("the smarthost relayed for the authenticated user",
        "ESMTPSA" in r and "authenticated user relayuser" in r, r)

# --- implicit TLS ---------------------------------------------------------------
code, text, err = remote("implicit.test")
logs += err
t.check("implicit TLS + AUTH: delivered", code == "K", (code, text, err))
t.check("implicit TLS: verified", "policy=verify result=ok" in err, err)
r = received()
t.check("implicit TLS: the smarthost saw ESMTPSA", "ESMTPSA" in r, r)

# --- wrong credentials: deferred, tagged auth ---------------------------------
code, text, err = remote("wrong.test")
logs += err
t.check("wrong password: deferred, not bounced", code == "Z" and text.startswith("auth: ") and "535" in text,
        (code, text))
t.check("wrong password: logged as failed", "event=auth" in err and "result=failed" in err, err)
t.check("wrong password: nothing relayed", q.new() == [])

smtpauth([l for l in CREDS if not l.startswith("127.")] + ["*:relayuser:" + PW])
code, text, err = remote("wrong.test")
logs += err
t.check("'*' credentials serve any relay", code == "K", (code, text, err))
received()
smtpauth(CREDS)

# --- no TLS: credentials never sent --------------------------------------------
n = len(plain.sessions)
code, text, err = remote("plaintext.test")
logs += err
s = last_session(plain, n)
t.check("server without STARTTLS, plaintext not allowed: deferred", code == "Z", (code, text))
t.check("... and the server never saw AUTH or MAIL",
        s is not None and not any(c.upper().startswith(("AUTH", "MAIL")) for c in s.commands) and not s.auth,
        s and s.commands)
t.check("... nor any form of the password", s is not None and
        not any(PLAIN_PW in c or "c2lua3B3" in c for c in s.commands), s and s.commands)

n = len(plain.sessions)
code, text, err = remote("plainok.test")
logs += err
s = last_session(plain, n)
t.check("auth=plain-ok: AUTH PLAIN in plaintext, delivered",
        code == "K" and s is not None and s.auth == [("PLAIN", "sinkuser", True)] and len(s.data) == 1,
        (code, text, s and s.commands))
t.check("auth=plain-ok: logged tls=no", "mech=PLAIN tls=no result=ok" in err, err)

n = len(login.sessions)
code, text, err = remote("login.test")
logs += err
s = last_session(login, n)
t.check("only LOGIN offered: AUTH LOGIN used", code == "K" and s is not None and
        s.auth == [("LOGIN", "sinkuser", True)], (code, text, s and s.commands))

n = len(noauth.sessions)
code, text, err = remote("noauth.test")
logs += err
s = last_session(noauth, n)
t.check("AUTH not offered: deferred with an auth: text", code == "Z" and text.startswith("auth: ")
        and "AUTH not offered" in text, (code, text))
t.check("AUTH not offered: no MAIL sent", s is not None and not any(c.upper().startswith("MAIL") for c in s.commands),
        s and s.commands)

# --- certificate checks ---------------------------------------------------------
install_cert(inst, *selfsigned)
code, text, err = remote("starttls.test")
logs += err
t.check("self-signed smarthost: deferred by default", code == "Z" and "not trusted" in text, (code, text))
t.check("self-signed smarthost: no AUTH attempted", "event=auth" not in err, err)
t.check("self-signed: nothing relayed", q.new() == [])
code, text, err = remote("noverify.test")
logs += err
t.check("verify=no: delivered over STARTTLS anyway", code == "K" and "policy=encrypt result=ok" in err,
        (code, text, err))
received()
code, text, err = remote("implicit.test")
t.check("implicit TLS, self-signed: deferred", code == "Z" and "not trusted" in text, (code, text))
logs += err
code, text, err = remote("noverify465.test")
logs += err
t.check("implicit TLS, verify=no: delivered", code == "K", (code, text, err))
received()
install_cert(inst, *good)

# --- configuration errors --------------------------------------------------------
inst.control("smtproutes", ["starttls.test:mx.good.test:%d tls=sometimes" % starttls.port])
code, text, err = remote("starttls.test")
t.check("an unknown route option defers", code == "Z" and "smtproutes" in text, (code, text))
inst.control("smtproutes", ["starttls.test:mx.good.test:%d" % starttls.port])
smtpauth(["mx.good.test-without-user"])
code, text, err = remote("starttls.test")
t.check("a malformed control/smtpauth defers", code == "Z" and text.startswith("auth: ") and "smtpauth" in text,
        (code, text))
smtpauth(CREDS)

t.check("no password in qmail-remote's log", PW not in logs and PLAIN_PW not in logs and "c2lua3B3" not in logs)
srvlogs = starttls.logtext() + implicit.logtext()
t.check("no password in the smarthost's log", PW not in srvlogs)
if IS_ROOT and inst.multi:
    # Reinstall over the instance with its own ids: install fixes the mode.
    p = inst.path("control", "smtpauth")
    os.chown(p, 0, 0)
    os.chmod(p, 0o644)
    ids = {k: v.split(":") for k, v in inst.ids.items() if k != "mode"}
    e = dict(os.environ, PREFIX=inst.prefix, DESTDIR="", QMAIL_GROUP=ids["queue"][1],
             QMAIL_NOFILES=ids["remote"][1], QMAIL_QUEUE=ids["queue"][0], QMAIL_SEND=ids["send"][0],
             QMAIL_REMOTE=ids["remote"][0], QMAIL_SMTPD=ids["smtpd"][0], QMAIL_LOG=ids["log"][0],
             QMAIL_ALIAS=ids["alias"][0], QMAIL_AUTH=ids["auth"][0], QMAIL_TLS=ids["tls"][0], QMAIL_DKIM=ids["dkim"][0],
             QMAIL_STATE=ids["smtpdstate"][0], QMAIL_METRICS=ids["metrics"][0], QMAIL_SMTPDGROUP=ids["smtpd"][1], QMAIL_LOGGROUP=ids["logs"][1])
    r = subprocess.run(["sh", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                           "service", "install")],
                       env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    st = os.stat(p)
    t.check("install makes control/smtpauth the remote uid's, 0400",
            r.returncode == 0 and st.st_uid == inst.uid("remote")[0] and st.st_mode & 0o777 == 0o400,
            (r.stderr, st.st_uid, oct(st.st_mode)))
    code, text, err = remote("starttls.test")
    t.check("after install, the remote uid still reads it", code == "K", (code, text))
    received()
else:
    t.skip("smtpauth ownership", "not root")

t.done()
