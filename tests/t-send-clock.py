#!/usr/bin/env python3
"""Steps of the wall clock under a running qmail-send (libfaketime, on a
dynamically linked qmail-send: the installed one is static, which
libfaketime cannot reach; the monotonic clock stays real).

Backward: a destination held for 2 s when the clock goes back an hour
still ends its hold 2 s later (on the wall clock it lasted the hour), so
the message parked on it is delivered at once when the server is back.

Forward, by more than the queue lifetime: mail accepted seconds before
is not bounced; a lifetime runs on the monotonic clock from the
message's arrival. Both steps are logged."""
import os, shutil, signal, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, free_port, BUILD, SANITIZED
import send_harness as sh
from remote_peers import Sink

LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
t = T()
if not os.path.exists(LIB):
    t.skip("clock steps", "libfaketime is not installed (.ci/install-deps installs faketime)")
    t.done()
if SANITIZED:
    # libfaketime's start-up (dlsym, allocation) runs before ASan's and hangs.
    t.skip("clock steps", "libfaketime and ASan cannot both interpose a program's start")
    t.done()
inst = sh.setup(t, control={"backoffmin": "2", "backoffmax": "2", "deadthreshold": "100",
                            "queuelifetime": "3600"})
D = sh.DOMAIN
back_port, fwd_port = free_port(), free_port()   # nothing listens yet: connection refused
inst.control("smtproutes", "back.test:127.0.0.1:%d\nfwd.test:127.0.0.1:%d" % (back_port, fwd_port))
inst.control("dnsserver", "127.0.0.1:1")

# qmail-start execs bin/qmail-send: a wrapper that runs the dynamic build
# under libfaketime, its offset read from a file at every call.
spec = inst.path("faketime")
with open(spec, "w") as f:
    f.write("+0\n")
os.chmod(spec, 0o644)
dyn = inst.bin("qmail-send.dyn")
shutil.copy(os.path.join(BUILD, "testbin", "qmail-send"), dyn)
os.chmod(dyn, 0o755)
with open(inst.bin("qmail-send"), "w") as f:
    f.write("#!/bin/sh\nexec env LD_PRELOAD=%s FAKETIME_TIMESTAMP_FILE=%s FAKETIME_NO_CACHE=1 "
            "FAKETIME_DONT_FAKE_MONOTONIC=1 %s \"$@\"\n" % (LIB, spec, dyn))
os.chmod(inst.bin("qmail-send"), 0o755)


def step(offset):
    with open(spec + ".new", "w") as f:
        f.write(offset + "\n")
    os.chmod(spec + ".new", 0o644)
    os.rename(spec + ".new", spec)


log = inst.path("send.log")
open(log, "w").close()
p = sh.start(inst, log)
lines = lambda what: [l for l in sh.read_log(log).splitlines() if what in l]

# Backward.
inst.inject("alice@%s" % D, ["a@back.test"], "Subject: a\n\nTOKEN-back-0- body\n")
t.check("the destination is held after a refused connection",
        wait_for(lambda: any("state=held" in l for l in sh.dest_lines(log, "127.0.0.1:%d" % back_port)), 20),
        sh.dest_lines(log, "127.0.0.1:%d" % back_port))
step("-3600")
inst.inject("alice@%s" % D, ["b@back.test"], "Subject: b\n\nTOKEN-back-1- body\n")
up = Sink(t, port=back_port)
t0 = time.time()
ok = wait_for(lambda: b"TOKEN-back-1-" in sh.tokens(up), 20)
t.check("after a backward step the hold still ends on time: the parked message goes",
        ok, (time.time() - t0, sh.dest_lines(log, "127.0.0.1:%d" % back_port)))
t.check("the backward step is logged",
        wait_for(lambda: any("step=backward" in l for l in lines("event=clock")), 5), lines("event=clock"))

# Forward, past the lifetime, with mail accepted just before.
for k in range(3):
    inst.inject("alice@%s" % D, ["f%d@fwd.test" % k], "Subject: f%d\n\nTOKEN-fwd-%d- body\n" % (k, k))
# All three taken in and tried before the step: one taken in after it has
# only the wall clock to tell its age by.
t.check("the forward destination's mail is deferred",
        wait_for(lambda: len({l.split(" rcpt=")[1].split(" ")[0] for l in lines("event=delivery")
                              if "@fwd.test" in l}) == 3, 20),
        lines("event=delivery"))
step("+172800")                      # two days, the lifetime is an hour
time.sleep(1.5)
p.send_signal(signal.SIGALRM)        # every message retried now
time.sleep(3)
fwd = [l for l in lines("event=delivery") if "@fwd.test" in l]
t.check("after a forward step nothing expires", not any("result=expired" in l for l in fwd), fwd)
t.check("... and nothing is bounced",
        not any(b"multipart/report" in b for _, b in sh.messages(inst, "alice")))
t.check("... the messages are still queued and retried",
        len(inst.queue_files()) == 3 and len(fwd) >= 4, (inst.queue_files(), fwd))
t.check("the forward step is logged", any("step=forward" in l for l in lines("event=clock")),
        lines("event=clock"))
t.done()
