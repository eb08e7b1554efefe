"""The qmail-smtpd service under a real s6-svscan chooses its server when
it starts: qmail-smtpd-listen as the smtpd uid without control/tls/cert.pem,
qmail-smtpd-listen -t (STARTTLS; the parent root) with one; s6-svc -t
switches. Neither is tcpserver.

Checks, with qmail-send down so that messages stay in the queue: ready
through the notification fd (-1), the listener's uid (as root), the
memory limit of s6-softlimit on the listener and so on its sessions, a
message over SMTP queued with its log lines in log/qmail-smtpd/current,
then the switch to STARTTLS and back, and nothing left
after s6-svscanctl -t.
"""
import os, smtplib, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, free_port, processes_under, stop_svscan, supervised, svscan_stops, wait_for, SANITIZED
from smtpd_harness import Queue
from tls_harness import self_signed, install_cert

t = T()
port = free_port()
os.environ.update(SMTP_ADDR="127.0.0.1", SMTP_PORT=str(port))
MEMLIMIT = 0 if SANITIZED or "ASAN_OPTIONS" in os.environ else 64000000
os.environ["SMTP_MEMLIMIT"] = str(MEMLIMIT)   # ASan reserves terabytes of address space
inst = Instance(t, control={"locals": "localhost", "rcpthosts": "localhost"})
q = Queue(inst)
svc = lambda name: inst.path("service", name)
for s in ("qmail-send", "qmail-smtps", "qmail-submission"):
    open(os.path.join(svc(s), "down"), "w").close()


def run(*argv, timeout=30):
    return subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def svpid():
    out = run("s6-svstat", "-o", "up,ready,pid", svc("qmail-smtpd")).stdout.decode().split()
    return int(out[2]) if len(out) == 3 and out[:2] == ["true", "true"] and int(out[2]) > 0 else 0


def exe(pid):
    try:
        return os.path.basename(os.readlink("/proc/%d/exe" % pid))
    except OSError:
        return None


def status(pid, key):
    try:
        for line in open("/proc/%d/status" % pid):
            if line.startswith(key + ":"):
                return line.split()[1:]
    except OSError:
        return None


def limit(pid, name):
    for line in open("/proc/%d/limits" % pid):
        if line.startswith(name):
            return line[len(name):].split()[0]


def ehlo_keywords():
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
        s.ehlo("client.test")
        return set(s.esmtp_features)


scan = inst.spawn(["s6-svscan", inst.path("service")], stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, start_new_session=True)
t.cleanups.append(lambda: stop_svscan(scan, inst.prefix, inst.path("service")))

t.check("s6-supervise runs qmail-smtpd", wait_for(lambda: supervised(svc("qmail-smtpd")), 10))
r = run("s6-svwait", "-U", "-t", "20000", svc("qmail-smtpd"))
t.check("ready (the listener's -1 on the notification fd)", r.returncode == 0, r.stdout)
pid = svpid()
t.check("without a certificate the service runs qmail-smtpd-listen", exe(pid) == "qmail-smtpd-listen",
        (pid, exe(pid)))
if inst.multi:
    uid, gid = inst.uid("smtpd")
    t.check("as the smtpd uid and gid, no supplementary group",
            (status(pid, "Uid"), status(pid, "Gid"), status(pid, "Groups")) ==
            ([str(uid)] * 4, [str(gid)] * 4, []), (status(pid, "Uid"), status(pid, "Groups")))
else:
    t.skip("the listener's uid", "single-uid mode (not root)")
if MEMLIMIT:
    t.check("under s6-softlimit's memory limit", limit(pid, "Max data size") == str(MEMLIMIT),
            limit(pid, "Max data size"))
else:
    t.skip("memory limit", "none under ASan")
t.check("no STARTTLS without a certificate", "starttls" not in ehlo_keywords())

with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
    refused = s.sendmail("a@localhost", ["joe@elsewhere.test"], "Subject: svc\r\n\r\nthrough the service\r\n")
t.check("a message from 127.0.0.1 (RELAYCLIENT in tcp.smtp) is accepted", refused == {}, refused)
t.check("and queued", len(q.new(expect=1)) == 1)
cur = inst.path("log", "qmail-smtpd", "current")
log = lambda: open(cur, errors="replace").read() if os.path.exists(cur) else ""
t.check("log/qmail-smtpd has the listener's start and the session",
        wait_for(lambda: "qmail-smtpd-listen event=start" in log() and "qmail-smtpd event=message" in log(), 10),
        log()[-500:])

# --- with a certificate: qmail-smtpd-listen -t after a restart ---------------
crt, key = self_signed(inst.prefix, "mail.example.test")
install_cert(inst, crt, key)
old = pid
run("s6-svc", "-t", svc("qmail-smtpd"))
pid = wait_for(lambda: (lambda p: p if p not in (0, old) else 0)(svpid()), 20)
t.check("with control/tls/cert.pem, after s6-svc -t: the listener", exe(pid) == "qmail-smtpd-listen",
        (pid, exe(pid)))
t.check("with -t", b"-t" in open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0"), pid)
if inst.multi:
    t.check("as root: each connection reads the key, then drops", status(pid, "Uid")[0] == "0",
            status(pid, "Uid"))
t.check("STARTTLS offered", "starttls" in ehlo_keywords())

os.unlink(inst.path("control", "tls", "cert.pem"))
old = pid
run("s6-svc", "-t", svc("qmail-smtpd"))
pid = wait_for(lambda: (lambda p: p if p not in (0, old) else 0)(svpid()), 20)
t.check("certificate removed, after s6-svc -t: the listener again", exe(pid) == "qmail-smtpd-listen",
        (pid, exe(pid)))
t.check("and it serves", "starttls" not in ehlo_keywords())

t.check("s6-svscan exits on s6-svscanctl -t", svscan_stops(scan, inst.path("service")))
t.check("no process of the instance is left", wait_for(lambda: not processes_under(inst.prefix), 10),
        processes_under(inst.prefix))
t.done()
