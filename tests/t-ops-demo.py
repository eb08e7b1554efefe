#!/usr/bin/env python3
"""make run, a message with sendmail (and swaks), make stop.

Uses its own demo prefix, port and build directory (DEMO, DEMO_PORT,
DEMO_BUILD), all under /tmp and named after the checkout and the build
under test, so it neither touches nor is disturbed by a ./var/demo the
developer may be running, or by another test run. It builds the tree once
more for that prefix (the prefix is compiled in), without sanitizers.
"""
import os, shutil, subprocess, sys, time, zlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, ROOT, T, free_ids, free_port, processes_under, wait_for

t = T()
tag = "%d" % zlib.crc32((ROOT + "\0" + BUILD).encode())   # one per checkout and build
demo = "/tmp/qmail-ops-demo-%s" % tag
build = "/tmp/qmail-ops-demo-%s-build" % tag
port = free_port()
env = dict(os.environ, MAKEFLAGS="-j%d" % (os.cpu_count() or 2))
for k in ("BUILD", "PREFIX"):   # make check's, not the demo's
    env.pop(k, None)
# As root, numeric ids as every other test's instance has: install refuses
# named accounts whose home is another instance's (another checkout's
# demo, on a shared machine), and the test adds no account to the system.
if os.getuid() == 0:
    names = ["QMAIL_GROUP", "QMAIL_NOFILES", "QMAIL_QUEUE", "QMAIL_SEND", "QMAIL_REMOTE",
             "QMAIL_SMTPD", "QMAIL_LOG", "QMAIL_ALIAS", "QMAIL_AUTH", "QMAIL_TLS",
             "QMAIL_SMTPDGROUP", "QMAIL_LOGGROUP"]
    env.update(zip(names, (str(i) for i in free_ids(len(names), start=7600))))
args = ["DEMO=" + demo, "DEMO_PORT=%d" % port, "DEMO_BUILD=" + build]


def make(target, timeout=300):
    return subprocess.run(["make", "--no-print-directory", "-C", ROOT, target] + args, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def svscan_pid():
    try:
        return int(open(os.path.join(demo, "svscan.pid")).read())
    except (OSError, ValueError):
        return 0


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def leftovers():
    return processes_under(demo)


def landed(token):
    d = os.path.join(demo, "alias", "Maildir", "new")
    try:
        names = os.listdir(d)
    except OSError:
        return False
    for n in names:
        try:
            if token.encode() in open(os.path.join(d, n), "rb").read():
                return True
        except OSError:
            pass
    return False


# A previous run's leftovers: stop it and start from nothing.
if os.path.isdir(demo):
    make("stop", 120)
    shutil.rmtree(demo, ignore_errors=True)
t.cleanups.append(lambda: make("stop", 120))

r = make("run")
out = r.stdout.decode(errors="replace")
t.check("make run succeeds", r.returncode == 0, out[-3000:])
pid = svscan_pid()
t.check("s6-svscan runs, pid recorded", pid and alive(pid), pid)
t.check("it prints a sendmail example", "%s/bin/sendmail" % demo in out, out[-1500:])
t.check("and a swaks example", "swaks --server 127.0.0.1:%d" % port in out, out[-1500:])
t.check("and where mail lands", "%s/alias/Maildir/new/" % demo in out, out[-1500:])

start = time.time()
r = make("run", 120)
out2 = r.stdout.decode(errors="replace")
t.check("a second make run is harmless", r.returncode == 0 and svscan_pid() == pid and
        "The demo runs" in out2, out2[-2000:])
t.check("and does not restart anything", alive(pid) and "installed" not in out2, out2[-2000:])

token = "token-demo-%d" % os.getpid()
p = subprocess.run([os.path.join(demo, "bin", "sendmail"), "-f", "you@localhost", "joe@localhost"],
                   input=("Subject: %s\n\nhello %s\n" % (token, token)).encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
t.check("sendmail exits 0", p.returncode == 0, p.stdout)
t.check("the sendmail message lands in the demo Maildir", wait_for(lambda: landed(token), 20))

if shutil.which("swaks"):
    token2 = token + "-swaks"
    p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", "you@localhost",
                        "--to", "ann@localhost", "--header", "Subject: " + token2,
                        "--body", token2], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    t.check("swaks over SMTP succeeds", p.returncode == 0, p.stdout[-1000:])
    t.check("the swaks message lands too", wait_for(lambda: landed(token2), 20))
else:
    t.skip("swaks", "not installed")

r = make("stop", 120)
t.check("make stop succeeds", r.returncode == 0, r.stdout)
t.check("s6-svscan is gone", wait_for(lambda: not alive(pid), 10))
left = leftovers()
t.check("no process of the demo is left", not left,
        [open("/proc/%d/cmdline" % p).read() for p in left if os.path.exists("/proc/%d" % p)])
r = make("stop", 60)
t.check("a second make stop is harmless", r.returncode == 0 and b"not running" in r.stdout, r.stdout)

t.done()
