#!/usr/bin/env python3
"""make run, a message with sendmail (and swaks), make stop.

Also: a descriptor above 9 inherited by make run reaches no process of
the demo, not even an SMTP session; the self-signed certificate names
localhost as well as the machine; a plain make stop stops the instance
that make run DEMO=... started, and never says "stopped" when nothing
was; as root, make run from a copy of the checkout under a 0700
directory works (the demo goes where the mail uids can reach it).

Uses its own demo prefix, port and build directory (DEMO, DEMO_PORT,
DEMO_BUILD), all under /tmp and named after the checkout and the build
under test, so it neither touches nor is disturbed by a ./var/demo the
developer may be running, or by another test run. It builds the tree once
more for that prefix (the prefix is compiled in), without sanitizers.
"""
import os, re, shutil, socket, subprocess, sys, time, urllib.request, zlib
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, IS_ROOT, ROOT, T, free_ids, free_port, processes_under, wait_for

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
             "QMAIL_SMTPDGROUP", "QMAIL_LOGGROUP", "QMAIL_DKIM", "QMAIL_STATE", "QMAIL_METRICS"]
    env.update(zip(names, (str(i) for i in free_ids(len(names), start=7600))))
mport = free_port()
args = ["DEMO=" + demo, "DEMO_PORT=%d" % port, "DEMO_BUILD=" + build, "DEMO_METRICS_PORT=%d" % mport]


def make(target, timeout=300, top=ROOT, margs=None, **kw):
    return subprocess.run(["make", "--no-print-directory", "-C", top, target] + (args if margs is None else margs),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, **kw)


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

# An inherited descriptor above 9 (sh closes only 3 to 9).
marker = demo + "-inherited"
mfd = os.open(marker, os.O_CREAT | os.O_RDWR, 0o600)
FD = 17
os.dup2(mfd, FD, inheritable=True)
os.close(mfd)
r = make("run", pass_fds=(FD,))
os.close(FD)
out = r.stdout.decode(errors="replace")
t.check("make run succeeds", r.returncode == 0, out[-3000:])


def holding(path):
    """Pids of the demo's processes with path open."""
    out = []
    for p in processes_under(demo):
        try:
            for f in os.listdir("/proc/%d/fd" % p):
                if os.readlink("/proc/%d/fd/%s" % (p, f)) == path:
                    out.append(p)
        except OSError:
            pass
    return out


sess = socket.create_connection(("127.0.0.1", port), 10)
sess.settimeout(10)
greet = sess.recv(512)
n_procs = len(processes_under(demo))
t.check("the inherited descriptor reaches no process of the demo, an SMTP session included",
        greet.startswith(b"220") and n_procs > 5 and holding(marker) == [], (greet, n_procs, holding(marker)))
sess.close()
os.unlink(marker)
cert = os.path.join(demo, "control", "tls", "cert.pem")
san = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-ext", "subjectAltName"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT).stdout.decode()
host = subprocess.run(["hostname", "-f"], stdout=subprocess.PIPE).stdout.decode().strip()
t.check("the certificate names localhost and the machine",
        "DNS:localhost" in san and (not host or "DNS:" + host in san), (host, san))
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


def metrics():
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=10) as r:
            return r.read().decode()
    except OSError:
        return ""


t.check("the demo serves Prometheus metrics on DEMO_METRICS_PORT, the local delivery counted",
        wait_for(lambda: re.search(r'(?m)^qmail_deliveries_total\{channel="local",result="delivered"\} [1-9]',
                                   metrics()), 20), metrics()[:1500])

if shutil.which("swaks"):
    token2 = token + "-swaks"
    p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % port, "--from", "you@localhost",
                        "--to", "ann@localhost", "--header", "Subject: " + token2,
                        "--body", token2], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    t.check("swaks over SMTP succeeds", p.returncode == 0, p.stdout[-1000:])
    t.check("the swaks message lands too", wait_for(lambda: landed(token2), 20))
    signed = [open(os.path.join(demo, "alias", "Maildir", "new", n), "rb").read()
              for n in os.listdir(os.path.join(demo, "alias", "Maildir", "new"))]
    signed = [m for m in signed if token2.encode() in m]
    m = signed[0] if signed else b""
    t.check("and is DKIM-signed for localhost, RSA and Ed25519 (keys made at first start)",
            b"a=rsa-sha256" in m and b"a=ed25519-sha256" in m and b"d=localhost;" in m, m[:1500])
    recs = {}
    for sel in ("rsa1", "ed1"):
        p = subprocess.run([os.path.join(demo, "bin", "qmail-dkimkey"), "-p", "localhost", sel],
                           capture_output=True, timeout=30)
        recs[("%s._domainkey.localhost." % sel).encode()] = "".join(
            re.findall(r'"([^"]*)"', p.stdout.decode())).encode()
    try:
        import dkim
    except ImportError:
        sys.path.append("/usr/lib/python3/dist-packages")
        import dkim
    # the delivery's own lines (Return-Path, Delivered-To, Received) are
    # above the signatures and not signed: dkimpy ignores them.
    d = dkim.DKIM(m.replace(b"\n", b"\r\n"))
    t.check("both signatures verify with dkimpy against the records qmail-dkimkey -p prints",
            m and all(d.verify(idx=i, dnsfunc=lambda n, timeout=5: recs.get(n)) for i in range(2)))
else:
    t.skip("swaks", "not installed")

# A plain make stop (no DEMO) finds the instance make run DEMO=... started.
r = make("stop", 120, margs=[])
t.check("a plain make stop stops the instance make run DEMO=... started",
        r.returncode == 0 and ("stopped " + demo).encode() in r.stdout, r.stdout)
t.check("s6-svscan is gone", wait_for(lambda: not alive(pid), 10))
left = leftovers()
t.check("no process of the demo is left", not left,
        [open("/proc/%d/cmdline" % p).read() for p in left if os.path.exists("/proc/%d" % p)])
r = make("stop", 60)
t.check("a second make stop is harmless and claims nothing",
        r.returncode == 0 and b"not running" in r.stdout and b"stopped" not in r.stdout, r.stdout)

# --- a checkout the mail uids cannot reach (a clone in root's 0700 home) ----
git = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
if IS_ROOT and git.returncode == 0:
    home = demo + "-home"
    shutil.rmtree(home, ignore_errors=True)
    os.mkdir(home, 0o700)
    os.chmod(home, 0o700)
    clone = os.path.join(home, "qmail")
    os.mkdir(clone)
    # The checkout's files with their times (tar keeps them), so that the
    # shared build directory only relinks for the new prefix.
    files = git.stdout
    files = b"\0".join(f for f in files.split(b"\0") if f and os.path.exists(os.path.join(ROOT, f.decode())))
    subprocess.run("tar --null -T - -cf - | tar -xf - -C %s" % clone, shell=True, cwd=ROOT, input=files, check=True)
    cport = free_port()
    cargs = ["DEMO_PORT=%d" % cport, "DEMO_BUILD=" + build]
    where = None

    def stop_clone():
        make("stop", 120, top=clone, margs=cargs)
        if where:
            shutil.rmtree(where, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)

    t.cleanups.append(stop_clone)
    r = make("run", 300, top=clone, margs=cargs)
    out = r.stdout.decode(errors="replace")
    t.check("make run from a clone under a 0700 directory succeeds", r.returncode == 0, out[-2000:])
    import re
    m = re.search(r"the demo instance is in (/var/tmp/qmail-demo-\d+)", out)
    where = m.group(1) if m else None
    t.check("it says where the demo is instead", where is not None, out[-2000:])
    token3 = token + "-clone"
    sm = os.path.join(clone, "var", "demo", "bin", "sendmail")
    p = subprocess.run([sm if os.path.exists(sm) else "false", "-f", "you@localhost", "joe@localhost"],
                       input=("Subject: %s\n\n%s\n" % (token3, token3)).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    new = os.path.join(where or "/nonexistent", "alias", "Maildir", "new")

    def landed3():
        try:
            return any(token3.encode() in open(os.path.join(new, n), "rb").read() for n in os.listdir(new))
        except OSError:
            return False
    t.check("var/demo/bin/sendmail works there and the message is delivered", p.returncode == 0 and wait_for(landed3, 20),
            p.stdout)
    r = make("stop", 120, top=clone, margs=cargs)
    t.check("make stop there stops it", r.returncode == 0 and b"stopped" in r.stdout
            and not processes_under(where or "/nonexistent"), r.stdout)
else:
    t.skip("make run from a 0700 directory", "needs root (the mail uids) and a git checkout to copy")

t.done()
