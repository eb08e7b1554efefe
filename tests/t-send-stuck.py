#!/usr/bin/env python3
"""Finished messages whose file cannot be removed (queue/mess without its
group write for a while) are logged as stuck, with the reason; their
removal is retried on its own and on SIGALRM, and a restart meanwhile
does not send their report again."""
import os, signal, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, IS_ROOT
import send_harness as sh

t = T()
if not IS_ROOT:
    t.skip("stuck messages", "needs root: the owner of queue/mess could still remove")
    t.done()
inst = sh.setup(t)
D = sh.DOMAIN
mess = inst.path("queue", "mess")
log = inst.path("send.log")
open(log, "w").close()
lines = lambda what: [l for l in sh.read_log(log).splitlines() if what in l]
reports = lambda: len([b for _, b in sh.messages(inst, "carol") if b"multipart/report" in b])


def broken(on):
    os.chmod(mess, 0o2750 if on else 0o2770)


# 1. Stuck, then the directory is repaired: removed on its own.
broken(True)
inst.inject("carol@%s" % D, ["alice@%s" % D, "nobox@%s" % D], "Subject: one\n\nbody\n")
p = sh.start(inst, log)
t.check("a finished message that cannot be removed is logged as stuck, with why",
        wait_for(lambda: any("Permission denied" in l and "qid=" in l for l in lines("event=stuck")), 20),
        lines("event=stuck") + lines("event=error"))
# The report is queued before the stuck line; its delivery may follow it.
t.check("its recipient has it, its sender the report",
        wait_for(lambda: len(sh.messages(inst, "alice")) == 1 and reports() == 1, 20),
        (len(sh.messages(inst, "alice")), reports()))
# The report, delivered to carol, is stuck too.
t.check("a later retry that fails is logged too",
        wait_for(lambda: any("messages=2" in l for l in lines("event=stuck")), 10), lines("event=stuck"))

# A restart while it is stuck does not report it again.
p.send_signal(signal.SIGTERM)
p.wait(30)
p = sh.start(inst, log)
time.sleep(2)
t.check("a restart does not send its report again", reports() == 1, reports())
t.check("... both are still queued", len(inst.queue_files()) == 2, inst.queue_files())

broken(False)
t.check("once repaired, it is removed without a signal or restart",
        wait_for(lambda: not inst.queue_files(), 20), (inst.queue_files(), lines("event=stuck")[-2:]))
t.check("... and the bounce record with it", not os.listdir(inst.path("queue", "bounce")))
t.check("... and that is logged", any("removed at last" in l for l in lines("event=done")), lines("event=done"))

# 2. Stuck, repaired, then SIGALRM (a flush) removes it at once.
broken(True)
mark = len(lines("event=stuck"))
inst.inject("carol@%s" % D, ["bob@%s" % D], "Subject: two\n\nbody\n")
t.check("a second one is stuck, and retried",
        wait_for(lambda: len(lines("event=stuck")) >= mark + 3, 20), lines("event=stuck")[mark:])
broken(False)
p.send_signal(signal.SIGALRM)
t.check("SIGALRM removes it at once", wait_for(lambda: not inst.queue_files(), 2), inst.queue_files())
t.check("the message was delivered once", len(sh.messages(inst, "bob")) == 1, len(sh.messages(inst, "bob")))
t.done()
