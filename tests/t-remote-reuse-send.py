#!/usr/bin/env python3
"""Connection reuse through the whole relay path: N messages through
qmail-start (qmail-send, qmail-rspawn and its workers) to one loopback
sink. Checks counts only: every message arrived once, and they took
clearly fewer SMTP connections than messages, which is what reuse is for.
The CPU per message and the wait for the final dot are measured by
bench/cpu-remote-reuse.py. N is 100 (40 under ASan)."""
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, SANITIZED, processes_under, wait_for
import send_harness as sh
from remote_peers import Sink

t = T()
N = 40 if SANITIZED else 100
inst = sh.setup(t)
sink = Sink(t)
inst.control("smtproutes", "far.test:127.0.0.1:%d" % sink.port)
inst.control("dnsserver", "127.0.0.1:1")   # never the machine's resolver
log = inst.path("send.log")
sh.start(inst, log)

t.check("qmail-send is up", wait_for(lambda: "qmail-send" in sh.read_log(log) or len(processes_under(inst.prefix)) >= 4, 10))
for k in range(N):
    inst.inject("alice@%s" % sh.DOMAIN, ["x%d@far.test" % k], "Subject: m%d\n\nTOKEN-cpu-%d- body\n" % (k, k))
# A hang guard, not a speed check: the messages take seconds.
ok = wait_for(lambda: len(sh.tokens(sink)) >= N and sh.queue_empty(inst), 120)
toks = sh.tokens(sink)
t.check("every message arrived once", ok and len(toks) == N and len(set(toks)) == N, len(toks))
conns = len(sink.sessions)
t.check("fewer connections than messages (%d for %d)" % (conns, N), 0 < conns and conns * 2 <= N, conns)
t.done()
