#!/usr/bin/env python3
"""service/install and the accounts it reuses (root only).

An instance is installed with numeric ids, as every test does; then it is
installed again over itself with QMAIL_ALIAS naming an existing account:
one whose home is another instance's alias directory is refused (on a host
with two instances, the second reused the first's alias account and so
delivered its postmaster mail into the first's Maildir), one whose home is
this instance's is taken.
"""
import os, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance, IS_ROOT

t = T()
if not IS_ROOT:
    t.skip("accounts", "needs root")
    t.done()
inst = Instance(t)
INSTALL = os.path.join(harness.ROOT, "service", "install")
ids = {k: v.split(":") for k, v in inst.ids.items() if k != "mode"}
ENV = dict(os.environ, PREFIX=inst.prefix, BUILD=harness.BUILD, DESTDIR="",
           QMAIL_GROUP=ids["queue"][1], QMAIL_NOFILES=ids["remote"][1],
           QMAIL_QUEUE=ids["queue"][0], QMAIL_SEND=ids["send"][0],
           QMAIL_REMOTE=ids["remote"][0], QMAIL_SMTPD=ids["smtpd"][0], QMAIL_LOG=ids["log"][0],
           QMAIL_ALIAS=ids["alias"][0], QMAIL_AUTH=ids["auth"][0], QMAIL_TLS=ids["tls"][0],
           QMAIL_DKIM=ids["dkim"][0], QMAIL_STATE=ids["smtpdstate"][0], QMAIL_METRICS=ids["metrics"][0],
           QMAIL_SMTPDGROUP=ids["smtpd"][1], QMAIL_LOGGROUP=ids["logs"][1])


def install(**kw):
    return subprocess.run(["sh", INSTALL], env=dict(ENV, **kw), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120)


name = "qmtalias%d" % (os.getpid() % 100000)
other = "/nonexistent/other-instance/alias"
r = subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", other,
                    "--shell", "/usr/sbin/nologin", name], stderr=subprocess.PIPE)
if r.returncode != 0:
    t.check("useradd for the test account", False, r.stderr)
    t.done()
t.cleanups.append(lambda: subprocess.run(["userdel", name], stderr=subprocess.DEVNULL))
uid = int(subprocess.run(["id", "-u", name], stdout=subprocess.PIPE).stdout)
alias_dir = inst.path("alias")
before = os.stat(alias_dir).st_uid

r = install(QMAIL_ALIAS=name)
err = r.stderr.decode("utf-8", "replace")
t.check("an alias account whose home is another instance's: install refuses (exit 100)",
        r.returncode == 100, (r.returncode, err))
t.check("it says which account and why", name in err and other in err and "another instance" in err,
        err)
t.check("and changes nothing: the alias directory keeps its owner",
        os.stat(alias_dir).st_uid == before and os.stat(alias_dir).st_uid != uid, before)

subprocess.run(["usermod", "--home", alias_dir, name], check=True)
r = install(QMAIL_ALIAS=name)
t.check("the same account with this instance's home: taken",
        r.returncode == 0 and open(inst.path("control", "ids")).read().count("alias=%d:" % uid) == 1,
        (r.returncode, r.stderr[-300:]))
t.check("the alias directory is now that account's", os.stat(alias_dir).st_uid == uid)
t.done()
