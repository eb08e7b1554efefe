"""qmail-smtpd-listen holding 1,000 idle connections: memory and
descriptors of the listener (the parent) and of its sessions.

Two runs against the real listener, each with 1,000 connections that are
greeted and then say nothing (timeoutidle raised so that none is let go
while measuring):
  - from 1,000 loopback addresses (127.1.x.y), with -c 1010: every one
    holds a session; the parent's RSS and descriptors, and the RSS and PSS
    summed over the sessions;
  - from one address, with the defaults (-c 40): the per-client limit
    holds it to 20 sessions, the rest are answered 421 and closed; the
    parent's descriptors stay as they were.
A measurement, not a test: it prints a Markdown table (bench/RESULTS.md
has one run's) and checks only that the connections went as expected.
Run it from a checkout built by make check: make bench-idle.
"""
import os, select, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import T, Instance, IS_ROOT

t = T()
N = int(os.environ.get("IDLE_N", "1000"))
inst = Instance(t, control={"rcpthosts": ["example.test"], "timeoutidle": "600",
                            "timeoutsession": "3600", "timeoutpredata": "0"})
rules = inst.path("control", "idle.rules")
with open(rules, "w") as f:
    f.write(":allow\n")
subprocess.run(["tcprules", rules + ".cdb", rules + ".tmp"], stdin=open(rules), check=True)
os.chmod(rules + ".cdb", 0o644)
ids = []
if IS_ROOT and inst.multi:
    ids = ["-u", str(inst.uid("smtpd")[0]), "-g", str(inst.uid("smtpd")[1])]


def status(pid, key):
    for line in open("/proc/%d/status" % pid):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss(pid):
    try:
        for line in open("/proc/%d/smaps_rollup" % pid):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()
                if int(st[1]) == pid:
                    out.append(int(d))
            except (OSError, IndexError):
                pass
    return out


def start(limit):
    log = open(inst.path("idle-%d.log" % limit), "w")
    p = inst.spawn([inst.bin("qmail-smtpd-listen"), "-1", "-l", "mail.example.test", "-c", str(limit),
                    "-x", rules + ".cdb"] + ids + ["0", "0"], stdout=subprocess.PIPE, stderr=log)
    r, _, _ = select.select([p.stdout], [], [], 10)
    return p, int(p.stdout.readline()) if r else 0


def greet(s):
    buf = b""
    s.settimeout(30)
    try:
        while b"\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                break
            buf += d
    except OSError:
        pass
    return buf[:3]


def figures(p):
    kids = children(p.pid)
    return {"parent RSS KB": status(p.pid, "VmRSS"), "parent fds": len(os.listdir("/proc/%d/fd" % p.pid)),
            "processes": len(kids), "sessions RSS KB": sum(status(k, "VmRSS") for k in kids),
            "sessions PSS KB": sum(pss(k) for k in kids)}


rows = []
# 1,000 addresses, one idle session each.
p, port = start(N + 10)
before = figures(p)
socks, codes = [], {}
for i in range(N):
    s = socket.create_connection(("127.0.0.1", port), 30, source_address=("127.1.%d.%d" % (i // 250, 1 + i % 250), 0))
    socks.append(s)
for s in socks:
    c = greet(s)
    codes[c] = codes.get(c, 0) + 1
time.sleep(1)
after = figures(p)
t.check("%d addresses: every one greeted 220" % N, codes == {b"220": N}, codes)
rows.append(("%d idle sessions, %d addresses, -c %d" % (N, N, N + 10), before, after))
for s in socks:
    s.close()
p.terminate()
p.wait()

# One address, the defaults: 20 sessions, the rest refused.
p, port = start(40)
before = figures(p)
socks, codes = [], {}
for i in range(N):
    try:
        s = socket.create_connection(("127.0.0.1", port), 30, source_address=("127.0.0.2", 0))
        socks.append(s)
    except OSError:
        codes["connect"] = codes.get("connect", 0) + 1
for s in socks:
    c = greet(s)
    codes[c] = codes.get(c, 0) + 1
time.sleep(1)
after = figures(p)
t.check("one address: 20 sessions (half of -c 40), the rest 421",
        codes.get(b"220") == 20 and codes.get(b"421", 0) + codes.get(b"", 0) == N - 20, codes)
rows.append(("%d connections, 1 address, -c 40 (20 held, %d refused)" % (N, N - codes.get(b"220", 0)),
             before, after))
for s in socks:
    s.close()
p.terminate()
p.wait()

print("| run | parent RSS KB (idle / loaded) | parent fds | processes | sessions RSS KB | sessions PSS KB |")
print("|---|---|---|---|---|---|")
for name, b, a in rows:
    print("| %s | %d / %d | %d / %d | %d / %d | %d | %d |" % (
        name, b["parent RSS KB"], a["parent RSS KB"], b["parent fds"], a["parent fds"],
        b["processes"], a["processes"], a["sessions RSS KB"], a["sessions PSS KB"]))
t.done()
