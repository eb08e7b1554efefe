#!/usr/bin/env python3
"""The installed instance under a real s6-svscan.

service/install (run by harness.Instance) puts the service directories in
PREFIX/service, with qmail-smtpd on a test port. This test runs s6-svscan
on that directory and checks: mail sent over SMTP through the supervised
qmail-smtpd-listen lands in the catch-all Maildir; every daemon runs
under its own uid; the logs are in PREFIX/log/*/current with timestamps;
s6-svc -k on qmail-send in the middle of a batch loses and duplicates
nothing; s6-svc -t restarts qmail-smtpd; qmail-qfix finds the installed
queue clean and repairs a broken mode; s6-svscanctl -t leaves no process.

As root the instance has separate uids; as a normal user the same flow
runs in single-uid mode and the uid checks are skipped.
"""
import os, re, smtplib, socket, subprocess, sys, threading, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance, free_port, processes_under, stop_svscan, supervised, svscan_stops, wait_for

t = T()
NEED = ["qmail-start", "qmail-send", "qmail-lspawn", "qmail-rspawn", "qmail-smtpd",
        "qmail-queue", "qmail-newu"]
missing = [p for p in NEED if not os.path.exists(os.path.join(harness.BUILD, "bin", p))]
if missing:
    t.skip("s6 flow", "not built yet: " + " ".join(missing))
    t.done()

port = free_port()
os.environ.update(SMTP_ADDR="127.0.0.1", SMTP_PORT=str(port))
if "ASAN_OPTIONS" in os.environ:
    os.environ["SMTP_MEMLIMIT"] = "0"   # ASan reserves terabytes of address space
inst = Instance(t, control={"locals": "localhost", "rcpthosts": "localhost"})
P = inst.prefix
svc = lambda name: os.path.join(P, "service", name)
maildir = inst.path("alias", "Maildir")

# Catch-all: every @localhost address to the alias account's Maildir.
auid, agid = inst.uid("alias")
with open(inst.path("users", "assign"), "w") as f:
    f.write("+:alias:%d:%d:%s:-::\n.\n" % (auid, agid, inst.path("alias")))
subprocess.run([inst.bin("qmail-newu")], check=True, timeout=30)
with open(inst.path("alias", ".qmail-default"), "w") as f:
    f.write("./Maildir/\n")
os.chown(inst.path("alias", ".qmail-default"), auid, agid)


def run(*argv, timeout=30):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=timeout)


def svpid(name):
    out = run("s6-svstat", "-o", "up,pid", svc(name)).stdout.decode().split()
    return int(out[1]) if len(out) == 2 and out[0] == "true" and int(out[1]) > 0 else 0


def uid_of(pid):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith("Uid:"):
                return int(line.split()[1])
    except OSError:
        return None


def delivered():
    """token -> number of messages in the Maildir holding it."""
    seen = {}
    for name in inst.maildir(maildir):
        try:
            body = open(os.path.join(maildir, "new", name), "rb").read()
        except OSError:
            continue
        for tok in set(re.findall(rb"token-[0-9a-z-]+", body)):
            seen[tok.decode()] = seen.get(tok.decode(), 0) + 1
    return seen


def leftovers():
    return processes_under(P)


svlog = open(os.path.join(os.path.dirname(P), os.path.basename(P) + "-svscan.log"), "wb")
scan = inst.spawn(["s6-svscan", inst.path("service")], stdout=svlog, stderr=subprocess.STDOUT,
                  start_new_session=True)


def stop_scan():
    stop_svscan(scan, P, inst.path("service"))


t.cleanups.append(stop_scan)

t.check("s6-supervise runs for every service",
        wait_for(lambda: all(supervised(svc(s)) for s in
                             ("qmail-send", "qmail-smtpd", "qmail-send/log", "qmail-smtpd/log")),
                 10))
r = run("s6-svwait", "-U", "-t", "20000", svc("qmail-smtpd"), timeout=30)
t.check("qmail-smtpd reports ready (its listener listening)", r.returncode == 0, r.stdout)
t.check("qmail-send is up", wait_for(lambda: svpid("qmail-send"), 10))
if os.path.exists(svc("qmail-send") + "/notification-fd"):
    r = run("s6-svwait", "-U", "-t", "20000", svc("qmail-send"), timeout=30)
    t.check("qmail-send reports ready (s6-svwait -U)", r.returncode == 0, r.stdout)
    r = run("s6-svstat", "-o", "ready", svc("qmail-send"))
    t.check("s6-svstat: qmail-send ready", r.stdout.strip() == b"true", r.stdout)
t.check("log services ready", run("s6-svwait", "-U", "-t", "10000", svc("qmail-send/log"),
                                  svc("qmail-smtpd/log")).returncode == 0)

# --- uids ---------------------------------------------------------------
if inst.multi:
    t.check("qmail-send runs as the send uid", uid_of(svpid("qmail-send")) == inst.uid("send")[0],
            uid_of(svpid("qmail-send")))
    # Without control/tls/cert.pem the run script starts qmail-smtpd-listen,
    # which takes the smtpd uid before accepting; with one, -t keeps the
    # parent root: each connection reads the key and drops (SECURITY, TLS).
    smtpd = svpid("qmail-smtpd")
    tls = os.path.exists(inst.path("control", "tls", "cert.pem"))
    t.check("the SMTP listener runs as the smtpd uid (as root with -t, for TLS)",
            uid_of(smtpd) == (0 if tls else inst.uid("smtpd")[0]), (tls, uid_of(smtpd)))
    t.check("s6-log runs as the log uid", uid_of(svpid("qmail-send/log")) == inst.uid("log")[0])
    r = run("s6-svwait", "-U", "-t", "20000", svc("qmail-smtpd-state"), timeout=30)
    t.check("qmail-smtpd-state reports ready, as its own uid",
            r.returncode == 0 and uid_of(svpid("qmail-smtpd-state")) == inst.uid("smtpdstate")[0],
            (r.returncode, uid_of(svpid("qmail-smtpd-state"))))
else:
    t.skip("uids", "single-uid mode (not root)")

# --- one message over SMTP ---------------------------------------------
def smtp_send(token, rcpt="joe@localhost"):
    msg = "From: a@localhost\r\nTo: %s\r\nSubject: %s\r\n\r\nhello %s\r\n" % (rcpt, token, token)
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.sendmail("a@localhost", [rcpt], msg)


try:
    smtp_send("token-smtp-1")
    ok = True
except Exception as e:
    ok = False
    print("smtp error:", repr(e))
t.check("SMTP accepts a message for @localhost", ok)
t.check("it lands in the catch-all Maildir", wait_for(lambda: "token-smtp-1" in delivered(), 20),
        inst.maildir(maildir))

# --- logs ---------------------------------------------------------------
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+  \S")
for name in ("qmail-smtpd", "qmail-send"):
    cur = inst.path("log", name, "current")
    lines = wait_for(lambda: os.path.exists(cur) and open(cur, errors="replace").read().splitlines(), 10)
    t.check("log/%s/current has lines" % name, bool(lines))
    t.check("log/%s: every line is timestamped" % name,
            bool(lines) and all(STAMP.match(l) for l in lines), (lines or [])[:5])
    if inst.multi:
        t.check("log/%s/current belongs to the log uid" % name,
                os.stat(cur).st_uid == inst.uid("log")[0])

# --- kill qmail-send in the middle of a batch --------------------------
N = 40
old = svpid("qmail-send")
bad = 0
for i in range(N):
    if i == N // 3:
        r = run("s6-svc", "-k", svc("qmail-send"))
        t.check("s6-svc -k qmail-send", r.returncode == 0, r.stdout)
    rc = inst.inject("a@localhost", ["joe%d@localhost" % i],
                     "Subject: token-batch-%d\n\nbatch token-batch-%d\n" % (i, i))
    bad += rc != 0
t.check("all %d messages queued" % N, bad == 0, bad)
new = wait_for(lambda: (svpid("qmail-send") not in (0, old)) and svpid("qmail-send"), 15)
t.check("s6 restarted qmail-send (new pid)", bool(new), (old, new))
want = {"token-batch-%d" % i for i in range(N)}
t.check("every message of the batch arrives",
        wait_for(lambda: want <= set(delivered()), 60), sorted(want - set(delivered())))
seen = delivered()
dups = {k: v for k, v in seen.items() if k in want and v != 1}
t.check("each exactly once", not dups, dups)
t.check("the queue empties", wait_for(lambda: not inst.queue_files(), 20), inst.queue_files())

if os.path.exists(inst.bin("qmail-qstat")):
    r = run(inst.bin("qmail-qstat"))
    t.check("qmail-qstat: empty queue", b"messages in queue: 0\n" in r.stdout, r.stdout)

# --- flush: s6-svc -a (SIGALRM) retries a deferred delivery now --------
class Sink(threading.Thread):
    """A minimal SMTP server on loopback that accepts everything."""
    def __init__(self, port):
        super().__init__(daemon=True)
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(5)
        self.srv.settimeout(0.5)
        self.data, self.stopped = [], False

    def run(self):
        while not self.stopped:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            c.settimeout(10)
            f = c.makefile("rwb")
            try:
                f.write(b"220 sink\r\n"); f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        break
                    cmd = line[:4].upper()
                    if cmd == b"DATA":
                        f.write(b"354 go\r\n"); f.flush()
                        body = b""
                        while True:
                            l = f.readline()
                            if not l or l == b".\r\n":
                                break
                            body += l
                        self.data.append(body)
                        f.write(b"250 ok\r\n")
                    elif cmd == b"QUIT":
                        f.write(b"221 bye\r\n"); f.flush()
                        break
                    elif cmd == b"EHLO":
                        f.write(b"250 sink\r\n")
                    else:
                        f.write(b"250 ok\r\n")
                    f.flush()
            except OSError:
                pass
            finally:
                c.close()
        self.srv.close()


sinkport = free_port()
inst.control("smtproutes", "remote.test:[127.0.0.1]:%d" % sinkport)
sendlog = inst.path("log", "qmail-send", "current")
t.check("queue a message for a remote domain",
        inst.inject("a@localhost", ["bob@remote.test"], "Subject: token-flush\n\nflush\n") == 0)
t.check("its first attempt is deferred (nothing listens)",
        wait_for(lambda: re.search(r"event=delivery .*rcpt=bob@remote\.test .*result=deferred",
                                   open(sendlog).read()), 20))
sink = Sink(sinkport)
sink.start()
t.cleanups.append(lambda: setattr(sink, "stopped", True))
r = run("s6-svc", "-a", svc("qmail-send"))
t.check("s6-svc -a qmail-send", r.returncode == 0, r.stdout)
t.check("qmail-send logs the flush", wait_for(lambda: "event=retry" in open(sendlog).read(), 10))
t.check("the deferred message is delivered at once, not at its next retry",
        wait_for(lambda: any(b"token-flush" in d for d in sink.data), 15), sink.data)
t.check("and leaves the queue", wait_for(lambda: not inst.queue_files(), 10), inst.queue_files())

# --- qmail-qdest wakes the supervised qmail-send with s6-svc -1 --------
if os.path.exists(inst.bin("qmail-qdest")):
    r = run(inst.bin("qmail-qdest"), "remote.test")
    t.check("qmail-qdest remote.test: woken through s6-svc -1",
            r.returncode == 0 and b"event=wake via=" in r.stdout and b"via=none" not in r.stdout, r.stdout)
    t.check("qmail-send reads the request",
            wait_for(lambda: re.search(r"event=dest domain=(remote\.test|127\.0\.0\.1:%d) state=" % sinkport,
                                     open(sendlog).read()), 10))
    t.check("and removes it", wait_for(lambda: not os.listdir(inst.path("queue", "flushdest")), 5),
            os.listdir(inst.path("queue", "flushdest")))

# --- s6-svc -t restarts qmail-smtpd ------------------------------------
old = svpid("qmail-smtpd")
run("s6-svc", "-t", svc("qmail-smtpd"))
t.check("qmail-smtpd restarted", wait_for(lambda: svpid("qmail-smtpd") not in (0, old), 10))
r = run("s6-svwait", "-U", "-t", "10000", svc("qmail-smtpd"))
try:
    smtp_send("token-smtp-2")
    ok = True
except Exception as e:
    ok = False
    print("smtp error:", repr(e))
t.check("and accepts mail again", ok and wait_for(lambda: "token-smtp-2" in delivered(), 20))

# --- stop: nothing left behind -----------------------------------------
t.check("s6-svscan exits on s6-svscanctl -t", svscan_stops(scan, inst.path("service")))
t.check("no process of the instance is left",
        wait_for(lambda: not leftovers(), 10), [open("/proc/%d/cmdline" % p).read() for p in leftovers()])

# --- qmail-qfix on the installed queue ---------------------------------
if os.path.exists(inst.bin("qmail-qfix")):
    r = run(inst.bin("qmail-qfix"), "-n")
    t.check("qmail-qfix -n: the installed queue is clean", r.returncode == 0, r.stdout)
    os.chmod(inst.path("queue", "mess"), 0o777)
    r = run(inst.bin("qmail-qfix"), "-n")
    t.check("qmail-qfix -n reports a broken mode", r.returncode == 1 and b"event=mode" in r.stdout,
            r.stdout)
    r = run(inst.bin("qmail-qfix"))
    t.check("qmail-qfix repairs it", r.returncode == 1 and
            os.stat(inst.path("queue", "mess")).st_mode & 0o7777 == 0o2770, r.stdout)
    r = run(inst.bin("qmail-qfix"), "-n")
    t.check("clean again", r.returncode == 0, r.stdout)
else:
    t.skip("qmail-qfix", "not built")

t.done()
