#!/usr/bin/env python3
"""The installed qmail-queued service under a real s6-svscan: the run
script (the queue uid, no root), readiness once the socket listens, the
log service, PREFIX/queued/ owned by the queue uid, a message through the
supervised daemon, s6-svc -k (a restart that serves again), s6-svc -d
(the socket stops listening) and nothing left running."""
import os, stat, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, processes_under, stop_svscan, supervised, wait_for
from queued_harness import envl, queue_once, refused_connect

t = T()
inst = Instance(t)
P = inst.prefix
SVC = inst.path("service", "qmail-queued")
SOCK = inst.path("queued", "socket")


def run(*argv, timeout=30):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def svpid():
    out = run("s6-svstat", "-o", "up,pid", SVC).stdout.decode().split()
    return int(out[1]) if len(out) == 2 and out[0] == "true" and int(out[1]) > 0 else 0


def uid_of(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("Uid:"):
            return [int(x) for x in line.split()[1:]]


script = open(os.path.join(SVC, "run")).read()
t.check("the run script execs qmail-queued -d3", "bin/qmail-queued -d3" in script, script)
t.check("notification-fd is 3", open(os.path.join(SVC, "notification-fd")).read().strip() == "3")
st = os.stat(inst.path("queued"))
t.check("queued/ is 0755", stat.S_IMODE(st.st_mode) == 0o755, oct(st.st_mode))
if IS_ROOT and inst.multi:
    t.check("queued/ belongs to the queue uid and group", (st.st_uid, st.st_gid) == inst.uid("queue"))

# Only this service: a scan directory holding a link to it.
scandir = inst.path("scan-queued")
os.mkdir(scandir)
os.symlink(SVC, os.path.join(scandir, "qmail-queued"))
svlog = open(inst.path("scan-queued.log"), "wb")
scan = inst.spawn(["s6-svscan", scandir], stdout=svlog, stderr=subprocess.STDOUT, start_new_session=True)
t.cleanups.append(lambda: stop_svscan(scan, P, scandir))

t.check("s6-supervise runs for it", wait_for(lambda: supervised(SVC), 10))
r = run("s6-svwait", "-U", "-t", "20000", SVC)
t.check("s6-svwait -U: ready", r.returncode == 0, r.stdout)
t.check("ready means listening", not refused_connect(SOCK))
pid = svpid()
if IS_ROOT and inst.multi:
    t.check("qmail-queued runs as the queue uid (real, effective, saved, fs)",
            pid and uid_of(pid) == [inst.uid("queue")[0]] * 4, pid and uid_of(pid))
else:
    t.skip("uid", "single-uid mode")
ack, code, qid = queue_once(SOCK, b"Subject: s6\n\nsupervised\n", envl(b"a@b", [b"c@d"]))
t.check("a message through the supervised daemon", code == 0 and qid and os.path.exists(
    inst.path("queue", "mess", qid)) and qid.endswith(".%d" % pid), (ack, code, qid))
cur = inst.path("log", "qmail-queued", "current")
t.check("its log has the start line", wait_for(lambda: os.path.exists(cur) and "event=start" in open(cur).read(), 10))
if IS_ROOT and inst.multi:
    t.check("the log belongs to the log uid", os.stat(cur).st_uid == inst.uid("log")[0])

run("s6-svc", "-k", SVC)
t.check("s6-svc -k: a new qmail-queued", wait_for(lambda: svpid() not in (0, pid), 10))
r = run("s6-svwait", "-U", "-t", "10000", SVC)
ack, code, qid = queue_once(SOCK, b"after -k\n", envl(b"a@b", [b"c@d"]))
t.check("s6-svc -k: ready again and serving", r.returncode == 0 and code == 0, (r.stdout, ack, code))

run("s6-svc", "-d", SVC)
r = run("s6-svwait", "-d", "-t", "10000", SVC)
t.check("s6-svc -d: down", r.returncode == 0, r.stdout)
t.check("s6-svc -d: the socket refuses connections", refused_connect(SOCK))
t.check("s6-svc -d: the stop is logged", wait_for(lambda: "event=stop" in open(cur).read(), 10))

stop_svscan(scan, P, scandir)
t.check("nothing of the instance left running", wait_for(lambda: not processes_under(P), 10), processes_under(P))
t.done()
