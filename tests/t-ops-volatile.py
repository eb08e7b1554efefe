#!/usr/bin/env python3
"""s6's volatile state off the prefix's file system (service/install.d/90-volatile.sh).

The instance is installed on a small tmpfs mounted at PREFIX, which is
then filled (space and inodes), as a full queue disk would be. s6-svscan
started there still supervises every service: each supervise/ and event/
is a symbolic link into /run, where s6-supervise makes the directory
itself, so s6-svstat reports qmail-send up and ready; stopped and started
again (s6-svscan's finish removes that state), the same. Before, s6-supervise
could not make supervise/ and qmail-send was reported down. Root only (a
tmpfs mount, /run).
"""
import glob, os, shutil, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import IS_ROOT, T, Instance, free_port, stop_svscan, svscan_stops, wait_for

t = T()
if not IS_ROOT:
    t.skip("a full prefix under s6", "mounting a tmpfs and /run need root")
    t.done()

P = harness.PREFIX
if os.path.isdir(P):
    shutil.rmtree(P)
os.makedirs(P)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m,nr_inodes=2000", "tmpfs", P], check=True)
t.cleanups.append(lambda: subprocess.run(["umount", "-l", P]))
os.environ.update(SMTP_ADDR="127.0.0.1", SMTP_PORT=str(free_port()))
if "ASAN_OPTIONS" in os.environ:
    os.environ["SMTP_MEMLIMIT"] = "0"
inst = Instance(t, wipe=False)
svc = lambda name: os.path.join(P, "service", name)

links = {}
for name in ("qmail-send", "qmail-smtpd", "qmail-queued", "qmail-send/log"):
    for part in ("supervise", "event"):
        p = os.path.join(svc(name), part)
        links[p] = os.readlink(p) if os.path.islink(p) else None
t.check("supervise/ and event/ are links into /run",
        all(v and v.startswith("/run/qmail-") and "/" not in v[len("/run/"):] for v in links.values()), links)
t.check("one name per instance and service",
        len(set(links.values())) == len(links), links)

# Fill the file system: space, then inodes.
k = 0
try:
    with open(inst.path("fill"), "wb") as f:
        while True:
            f.write(b"\0" * (1 << 20))
            f.flush()
except OSError:
    pass
try:
    while True:
        open(inst.path("f%d" % k), "w").close()
        k += 1
except OSError:
    pass
st = os.statvfs(P)
t.check("the prefix's file system is full", st.f_bavail == 0 and st.f_favail == 0, (st.f_bavail, st.f_favail))

svlog = open("/tmp/t-ops-volatile-%d.log" % os.getpid(), "w+")
scan = inst.spawn(["s6-svscan", inst.path("service")], stdout=svlog, stderr=subprocess.STDOUT)


def finish():
    stop_svscan(scan, P, inst.path("service"))   # the latest s6-svscan
    tag = [v.split(".")[0] for v in links.values() if v]
    for v in glob.glob(tag[0] + ".*") if tag else []:   # this instance's state in /run
        shutil.rmtree(v, ignore_errors=True)


t.cleanups.append(finish)


def state(name):
    r = subprocess.run(["s6-svstat", "-o", "up,ready", svc(name)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    return r.stdout.decode().split()


t.check("on the full disk s6-svstat reports qmail-send up and ready",
        wait_for(lambda: state("qmail-send") == ["true", "true"], 20),
        (state("qmail-send"), open(svlog.name).read()[-800:]))
t.check("and qmail-smtpd", wait_for(lambda: state("qmail-smtpd") == ["true", "true"], 10), state("qmail-smtpd"))
t.check("the status lives in /run", os.path.exists(os.path.join(links[os.path.join(svc("qmail-send"), "supervise")],
                                                                "status")))
pid0 = subprocess.run(["s6-svstat", "-o", "pid", svc("qmail-smtpd")], stdout=subprocess.PIPE).stdout.strip()
t.check("s6-svc still controls it: qmail-smtpd restarted, ready again",
        subprocess.run(["s6-svc", "-t", svc("qmail-smtpd")]).returncode == 0
        and wait_for(lambda: subprocess.run(["s6-svstat", "-o", "pid", svc("qmail-smtpd")],
                                            stdout=subprocess.PIPE).stdout.strip() not in (pid0, b"-1"), 10)
        and wait_for(lambda: state("qmail-smtpd") == ["true", "true"], 10), state("qmail-smtpd"))
# s6-supervise makes a linked supervise/ only where none exists: s6-svscan's
# finish removes it as it exits, so a second start (no reboot between)
# works, on the full disk still.
t.check("s6-svscan stops", svscan_stops(scan, inst.path("service")))
t.check("its finish left no state in /run",
        not any(os.path.exists(v) for v in links.values() if v), [v for v in links.values() if v and os.path.exists(v)])
scan = inst.spawn(["s6-svscan", inst.path("service")], stdout=svlog, stderr=subprocess.STDOUT)
t.check("started again: qmail-send up and ready", wait_for(lambda: state("qmail-send") == ["true", "true"], 20),
        (state("qmail-send"), open(svlog.name).read()[-800:]))
os.unlink(inst.path("fill"))
svlog.close()
os.unlink(svlog.name)
t.done()
