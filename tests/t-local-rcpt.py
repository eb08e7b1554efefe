#!/usr/bin/env python3
"""README's "inbound server for one domain" recipe, run as written under
the test PREFIX (a scan directory of our own stands for /run/service, a
test port for 25, a test account for joe), then /etc/aliases and
virtualdomains on top. No backscatter: whatever passes RCPT is delivered,
whatever delivery would refuse gets 550 at RCPT.

  - postmaster, root, mailer-daemon at the local domain: accepted and
    delivered to the alias account (install's alias/.qmail-* files);
  - system accounts delivery refuses (daemon: a home it does not own;
    nobody: no home) and unknown names: 550;
  - an extension the user has no .qmail for: 550; one it has: delivered;
  - /etc/aliases entries (bin/newaliases, sendmail's syntax): accepted,
    delivered, a |program as the alias account (never root);
    :include: is refused by newaliases, the old table kept;
  - virtualdomains: recipients checked through the prepend (alias files,
    users/cdb), unknown ones 550;
  - one message to every accepted address: every one delivered, no
    failure, no bounce.
"""
import os, re, shutil, smtplib, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance, IS_ROOT, free_ids, free_port, stop_svscan, supervised, wait_for

t = T()
if not IS_ROOT:
    t.skip("one-domain recipe", "needs root: separate uids, a real account")
    t.done()

port = free_port()
os.environ.update(SMTP_ADDR="127.0.0.1", SMTP_PORT=str(port))
if "ASAN_OPTIONS" in os.environ:
    os.environ["SMTP_MEMLIMIT"] = "0"
inst = Instance(t)
P = inst.prefix
base = tempfile.mkdtemp(prefix="t-local-rcpt.")
os.chmod(base, 0o755)
t.cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30, **kw)


# --- the recipe, as README gives it (PREFIX for /var/qmail) ----------------
(joe_uid,) = free_ids(1, start=7600)
home = os.path.join(base, "joe")
os.mkdir(home)
for sub in ("Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"):
    os.makedirs(os.path.join(home, sub), exist_ok=True)
with open(os.path.join(home, ".qmail-list"), "w") as f:
    f.write("./Maildir/\n")
for dp, dn, fn in os.walk(home):
    for x in [dp] + [os.path.join(dp, n) for n in fn]:
        os.chown(x, joe_uid, joe_uid)
# o+x, not o+r: qmaild may stat .qmail-list but not list the directory.
os.chmod(home, 0o711)

recipe = """
cd {P}/control
echo mx.example.test > me
printf '%s\\n' example.test mx.example.test > locals
echo example.test > rcpthosts
printf '=joe:joe:{u}:{u}:{home}:::\\n.\\n' > ../users/assign && ../bin/qmail-newu
../bin/newaliases
""".format(P=P, u=joe_uid, home=home)
# /etc/aliases, as control/aliases (which newaliases reads first).
alias_uid = inst.uid("alias")[0]
aliasout = inst.path("alias", "whoran")
with open(inst.path("control", "aliases"), "w") as f:
    f.write("# as in Debian's /etc/aliases\n"
            "cron: joe\n"
            "backup: \"|id -u > %s\",\n"
            "  joe\n" % aliasout)

r = run(["sh", "-ec", recipe])
t.check("the recipe's commands run, newaliases among them", r.returncode == 0 and
        os.path.exists(inst.path("users", "aliases.cdb")), r.stdout)
t.check("mailq is sendmail too", os.path.realpath(inst.bin("mailq")) == os.path.realpath(inst.bin("sendmail")))
with open(inst.path("control", "aliases"), "a") as f:
    f.write("staff: :include:/etc/staff\n")
before = open(inst.path("users", "aliases.cdb"), "rb").read()
r = run([inst.bin("sendmail"), "-bi"])
t.check("sendmail -bi: :include: is refused, naming the line", r.returncode == 111 and b"line=5" in r.stdout
        and b"include" in r.stdout, r.stdout)
t.check("the old table is kept", open(inst.path("users", "aliases.cdb"), "rb").read() == before)

inst.control("rcpthosts", ["example.test", "virt.test"])
inst.control("virtualdomains", ["virt.test:virt"])
with open(inst.path("alias", ".qmail-virt-sales"), "w") as f:
    f.write("./Maildir/\n")
os.chown(inst.path("alias", ".qmail-virt-sales"), alias_uid, inst.uid("alias")[1])
with open(inst.path("users", "assign"), "w") as f:
    f.write("=joe:joe:{u}:{u}:{h}:::\n+joe-:joe:{u}:{u}:{h}:-::\n=virt-info:joe:{u}:{u}:{h}:::\n.\n"
            .format(u=joe_uid, h=home))
t.check("qmail-newu", run([inst.bin("qmail-newu")]).returncode == 0)

for a in ("postmaster", "mailer-daemon", "root"):
    t.check("install gave the alias account .qmail-%s" % a,
            open(inst.path("alias", ".qmail-" + a)).read() == "./Maildir/\n")

# systemctl enable --now PREFIX/etc/qmail.service: s6-svscan on the services
scandir = os.path.join(base, "service")
os.mkdir(scandir)
for s in ("qmail-send", "qmail-smtpd"):
    os.symlink(inst.path("service", s), os.path.join(scandir, s))
svlog = open(os.path.join(base, "svscan.log"), "wb")
scan = inst.spawn(["s6-svscan", scandir], stdout=svlog, stderr=subprocess.STDOUT, start_new_session=True)
t.cleanups.append(lambda: stop_svscan(scan, P, scandir))
svc = lambda s: inst.path("service", s)
t.check("services supervised", wait_for(lambda: supervised(svc("qmail-send")) and supervised(svc("qmail-smtpd")), 10))
r = run(["s6-svwait", "-U", "-t", "20000", svc("qmail-smtpd"), svc("qmail-send")])
t.check("qmail-smtpd and qmail-send ready", r.returncode == 0, r.stdout)

# --- RCPT -------------------------------------------------------------------
ACCEPT = ["postmaster@example.test", "postmaster@mx.example.test", "Postmaster@EXAMPLE.test", "mailer-daemon@example.test",
          "root@example.test", "joe@example.test", "joe-list@example.test", "cron@example.test",
          "backup@example.test", "sales@virt.test", "info@virt.test"]
REFUSE = ["daemon@example.test", "nobody@example.test", "nosuchuser@example.test",
          "joe-nolist@example.test", "other@virt.test", "postmaster-x@example.test"]
codes = {}
with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    s.ehlo("client.test")
    s.mail("sender@client.test")
    for a in ACCEPT + REFUSE:
        codes[a] = s.rcpt(a)[0]
    s.rset()
for a in ACCEPT:
    t.check("RCPT %s: 250" % a, codes[a] == 250, codes[a])
for a in REFUSE:
    t.check("RCPT %s: 550" % a, codes[a] == 550, codes[a])

# --- every accepted address gets its message --------------------------------
SEND = [a for a in ACCEPT if a != "Postmaster@EXAMPLE.test"]
for i, a in enumerate(SEND):
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.sendmail("sender@client.test", [a],
                   "From: sender@client.test\r\nTo: %s\r\nSubject: token-%d\r\n\r\nhello\r\n" % (a, i))


def tokens(maildir):
    out = []
    d = os.path.join(maildir, "new")
    for n in (os.listdir(d) if os.path.isdir(d) else []):
        try:
            out += re.findall(rb"Subject: (token-\d+)", open(os.path.join(d, n), "rb").read())
        except OSError:
            pass
    return sorted(x.decode() for x in out)


jm, am = os.path.join(home, "Maildir"), inst.path("alias", "Maildir")
# joe: joe, joe-list, cron, backup, info@virt; alias: postmaster, mailer-daemon, root, sales@virt.
want_joe = sorted("token-%d" % SEND.index(a) for a in
                  ("joe@example.test", "joe-list@example.test", "cron@example.test",
                   "backup@example.test", "info@virt.test"))
want_alias = sorted("token-%d" % SEND.index(a) for a in
                    ("postmaster@example.test", "postmaster@mx.example.test", "mailer-daemon@example.test", "root@example.test",
                     "sales@virt.test"))
t.check("the queue empties", wait_for(lambda: not inst.queue_files(), 60), inst.queue_files())
t.check("joe's Maildir has joe's, joe-list's, cron's, backup's, info@virt.test's",
        wait_for(lambda: tokens(jm) == want_joe, 10), (tokens(jm), want_joe))
t.check("alias/Maildir has postmaster's, mailer-daemon's, root's, sales@virt.test's",
        wait_for(lambda: tokens(am) == want_alias, 10), (tokens(am), want_alias))
t.check("backup's |program ran as the alias account, not root",
        os.path.exists(aliasout) and os.stat(aliasout).st_uid == alias_uid and
        open(aliasout).read().strip() == str(alias_uid),
        os.path.exists(aliasout) and open(aliasout).read())
log = ""
cur = inst.path("log", "qmail-send", "current")
if os.path.exists(cur):
    log = open(cur, errors="replace").read()
t.check("qmail-send's log: deliveries", "result=delivered" in log, log[-2000:])
t.check("no delivery failed, nothing bounced",
        "result=failed" not in log and "event=bounce" not in log and "result=deferred" not in log,
        "\n".join(l for l in log.splitlines() if "failed" in l or "bounce" in l or "deferred" in l))
t.done()
