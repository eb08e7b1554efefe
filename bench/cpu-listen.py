"""CPU per SMTP connection: tcpserver + qmail-smtpd against
qmail-smtpd-listen, the same session code, the same rules table, the same
uids. For each server, N sequential connect+QUIT sessions, then N
sessions of one message each (EHLO, MAIL, RCPT, DATA, QUIT, through the
real qmail-queue); the CPU is the server's utime+stime+cutime+cstime from
/proc (every session and qmail-queue is a reaped descendant), before and
after, divided by N. The client's own CPU is not counted.

A measurement, not a test: it prints the figures and the ratio, and
checks only that every session went as expected. make check has the
deterministic part (t-listen: a session is a fork, no exec). Run it from
a checkout built by make check (BUILD, PREFIX as for tests/run), e.g.
make bench-cpu. N is 100 (30 under ASan); set LISTEN_CPU_N for a longer
run.
"""
import os, select, socket, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from harness import T, Instance, IS_ROOT, SANITIZED
from smtpd_harness import Queue

t = T()
N = int(os.environ.get("LISTEN_CPU_N", "30" if SANITIZED else "100"))
inst = Instance(t, control={"rcpthosts": ["example.test"], "timeoutsmtpd": "20"})
q = Queue(inst)
HZ = os.sysconf("SC_CLK_TCK")
rules = inst.path("control", "cpu.rules")
with open(rules, "w") as f:
    f.write('127.0.0.1:allow,RELAYCLIENT=""\n:allow\n')
subprocess.run(["tcprules", rules + ".cdb", rules + ".tmp"], stdin=open(rules), check=True)
os.chmod(rules + ".cdb", 0o644)
ids = []
if IS_ROOT and inst.multi:
    ids = ["-u", str(inst.uid("smtpd")[0]), "-g", str(inst.uid("smtpd")[1])]
common = ["-1", "-l", "mail.example.test", "-c", "40", "-x", rules + ".cdb"] + ids
SERVERS = {
    "tcpserver+qmail-smtpd": ["tcpserver", "-H", "-R"] + common + ["127.0.0.1", "0", inst.bin("qmail-smtpd")],
    "qmail-smtpd-listen": [inst.bin("qmail-smtpd-listen")] + common + ["127.0.0.1", "0"],
}


def cpu(pid):
    """Seconds of CPU of pid and its reaped descendants."""
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15]) / HZ


def wait_reaped(pid, timeout=10):
    """Until pid has no session left (every session counted in cutime);
    qmail-smtpd-listen's spares, still waiting to accept, do not count."""
    end = time.time() + timeout
    while time.time() < end:
        kids = [d for d in os.listdir("/proc") if d.isdigit() and _ppid(d) == pid
                and _comm(d) != "qmail-smtpd-lis"]
        if not kids:
            return True
        time.sleep(0.05)
    return False


def _comm(d):
    try:
        st = open("/proc/%s/stat" % d).read()
        return st[st.index("(") + 1:st.rindex(")")]
    except (OSError, ValueError):
        return ""


def _ppid(d):
    try:
        return int(open("/proc/%s/stat" % d).read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def talk(port, lines):
    """One connection: the greeting, then each line and its reply; the
    list of reply codes."""
    s = socket.create_connection(("127.0.0.1", port), 10)
    f = s.makefile("rb")
    codes = []

    def reply():
        while True:
            l = f.readline()
            if len(l) < 4 or l[3:4] != b"-":
                return int(l[:3] or 0)

    codes.append(reply())
    for l in lines:
        s.sendall(l)
        codes.append(reply())
    f.close()
    s.close()
    return codes


QUIT = [b"QUIT\r\n"]
MESSAGE = [b"EHLO client.test\r\n", b"MAIL FROM:<s@client.test>\r\n", b"RCPT TO:<u@example.test>\r\n",
           b"DATA\r\n", b"Subject: cpu\r\n\r\none message per connection\r\n.\r\n", b"QUIT\r\n"]
results = {}
for name, argv in SERVERS.items():
    log = open(inst.path("cpu-%s.log" % name.replace("+", "-")), "w")
    p = inst.spawn(argv, stdout=subprocess.PIPE, stderr=log)
    r, _, _ = select.select([p.stdout], [], [], 10)
    port = int(p.stdout.readline() or 0) if r else 0
    if not t.check("%s listens" % name, port > 0):
        continue
    talk(port, QUIT)                 # warm the page cache
    for what, lines, want in (("connect+QUIT", QUIT, [220, 221]),
                              ("message", MESSAGE, [220, 250, 250, 250, 354, 250, 221])):
        wait_reaped(p.pid)
        before, wall = cpu(p.pid), time.time()
        bad = sum(talk(port, lines) != want for _ in range(N))
        wall = time.time() - wall
        reaped = wait_reaped(p.pid)
        used = cpu(p.pid) - before
        t.check("%s: %d %s sessions, all as expected" % (name, N, what), bad == 0 and reaped, bad)
        results[(name, what)] = used / N
        print("%-22s %-13s %6.2f ms CPU per session (%d sessions, %.1f s wall)"
              % (name, what, 1000 * used / N, N, wall), flush=True)
    p.terminate()
t.check("every message queued", len(q.new(expect=2 * N, wait=20)) == 2 * N)

# A message adds the same qmail-queue run and fsyncs to both: only the
# bare connection is compared, with a margin for a busy machine.
a, b = results.get(("tcpserver+qmail-smtpd", "connect+QUIT")), results.get(("qmail-smtpd-listen", "connect+QUIT"))
if a and b is not None:
    # Under ASan every fork copies the shadow's page tables and every exec
    # maps it anew: the ratio is then not the build's.
    print("connect+QUIT: the listener %.2f ms against %.2f ms, ratio %.2f%s"
          % (1000 * b, 1000 * a, b / a, " (ASan)" if SANITIZED else ""))
t.done()
