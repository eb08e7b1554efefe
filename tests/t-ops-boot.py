#!/usr/bin/env python3
"""Boot under systemd: service/install writes PREFIX/etc/qmail.service.

Checks: the unit names this instance's s6-svscan and service directory;
`systemd-analyze verify` accepts it; its ExecStart, run as systemd would,
brings every service up; its stop (SIGTERM to s6-svscan alone, as
KillMode=mixed does) ends every process of the instance well within
TimeoutStopSec, qmail-send logging event=stop (no line lost: its logger
stops after it); after that stop, the volatile supervise state left in
/run does not keep the next start from supervising again. With README's
LOG_SCRIPT for the journal ("1" before the directory), every log line
also reaches s6-svscan's standard output, which systemd gives to journald.
"""
import os, re, shutil, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance, free_port, processes_under, stop_svscan, supervised, wait_for

t = T()
port = free_port()
os.environ.update(SMTP_ADDR="127.0.0.1", SMTP_PORT=str(port))
if "ASAN_OPTIONS" in os.environ:
    os.environ["SMTP_MEMLIMIT"] = "0"
os.environ["LOG_SCRIPT"] = "T 1 n10 s1000000"
inst = Instance(t, control={"locals": "localhost", "rcpthosts": "localhost"})
P = inst.prefix
unit = inst.path("etc", "qmail.service")
t.check("install writes PREFIX/etc/qmail.service", os.path.isfile(unit), unit)
text = open(unit).read() if os.path.isfile(unit) else ""
keys = dict(re.findall(r"^(\w+)=(.*)$", text, re.M))
argv = keys.get("ExecStart", "").split()
t.check("ExecStart is s6-svscan on PREFIX/service",
        len(argv) == 2 and argv[0].endswith("/s6-svscan") and os.access(argv[0], os.X_OK)
        and argv[1] == os.path.join(P, "service"), argv)
t.check("no placeholder left", "@" not in re.sub(r"(?m)^#.*$", "", text), text)
t.check("stop: SIGTERM to s6-svscan alone (KillMode=mixed), a bound",
        keys.get("KillMode") == "mixed" and keys.get("TimeoutStopSec", "").isdigit(), keys)
t.check("enabled for multi-user.target", keys.get("WantedBy") == "multi-user.target", keys)

if shutil.which("systemd-analyze"):
    r = subprocess.run(["systemd-analyze", "verify", unit], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode(errors="replace")
    # Only complaints about this unit count; a container's systemd may
    # mention its own missing pieces.
    mine = [l for l in out.splitlines() if "qmail.service" in l]
    t.check("systemd-analyze verify accepts the unit", r.returncode == 0 and not mine, out)
else:
    t.skip("systemd-analyze verify", "systemd-analyze not installed")

SERVICES = [d for d in sorted(os.listdir(inst.path("service")))
            if os.path.isfile(inst.path("service", d, "run")) and
            not os.path.exists(inst.path("service", d, "down"))]


journal = inst.path("journal.out")


def start():
    with open(journal, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def all_up():
    """Every service up, and qmail-send ready: a TERM before it has started
    is not the stop this test is about."""
    return all(supervised(inst.path("service", d)) and
               subprocess.run(["s6-svstat", "-o", "up", inst.path("service", d)],
                              stdout=subprocess.PIPE).stdout.strip() == b"true" for d in SERVICES) and \
        subprocess.run(["s6-svwait", "-U", "-t", "1000", inst.path("service", "qmail-send")],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


for round_ in ("first boot", "second boot"):
    scan = start()
    up = wait_for(all_up, 30)
    t.check("%s: every service up under the unit's ExecStart (%s)" % (round_, " ".join(SERVICES)), up)
    t0 = time.time()
    scan.send_signal(signal.SIGTERM)
    try:
        scan.wait(int(keys.get("TimeoutStopSec", "90")))
        stopped = True
    except subprocess.TimeoutExpired:
        stopped = False
    gone = wait_for(lambda: not processes_under(P), 10)
    t.check("%s: SIGTERM to s6-svscan ends it and every process of the instance" % round_,
            stopped and gone, (stopped, processes_under(P)))
    t.check("%s: within the stop bound" % round_, time.time() - t0 < 30, time.time() - t0)
    log = ""
    cur = inst.path("log", "qmail-send", "current")
    if os.path.exists(cur):
        log = open(cur, errors="replace").read()
    t.check("%s: qmail-send logged its stop" % round_, log.count("event=stop") >= (1 if round_ == "first boot" else 2),
            log[-500:])
    if not stopped:
        stop_svscan(scan, P, inst.path("service"))
j = open(journal, errors="replace").read()
t.check("LOG_SCRIPT with 1: qmail-send's lines also on s6-svscan's stdout (the journal)",
        "qmail-send event=start" in j and "qmail-send event=stop" in j, j[-500:])
t.done()
