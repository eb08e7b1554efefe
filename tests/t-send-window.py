#!/usr/bin/env python3
"""qmail-send keeps at most control/queuewindow messages in memory (here
50); the others are lines of queue/sched/later and come back in order of
due time. 300 messages wait there with retry times spread over 2 to 9
seconds; 60 more, taken in while it runs, are deferred (their next retry
is minutes away). Forged trigger notices name the 300 at once, and
qmail-send is killed (SIGKILL) three times on the way.
Every message is delivered exactly once and none before its time; the
deferred ones are tried once, not again after the kills; the messages in
memory (every count it logs) never pass the window and a quarter; and
after the last kill each waiting message is in the schedule or in
queue/sched/later."""
import os, random, re, shutil, signal, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for
import send_harness as sh

WINDOW = 50
N = 300
NDEFER = 20
t = T()
inst = sh.setup(t, control={"queuewindow": str(WINDOW), "concurrencylocal": "5",
                            "concurrencyremote": "5"})
D = sh.DOMAIN
log = inst.path("send.log")
open(log, "w").close()
rng = random.Random(int(os.environ.get("SEED", "2525")))


def inject_one(rcpt, k, kind):
    before = set(inst.queue_files())
    rc = inst.inject("x@remote.test", [rcpt], "Subject: w %d\n\nTOKEN-%s-%d- body\n" % (k, kind, k))
    new = set(inst.queue_files()) - before
    if rc or len(new) != 1:
        t.check("message %s %d queued" % (kind, k), False, rc)
        t.done()
    return new.pop()


# The queue as a big one looks after a restart: everything outside memory.
# One message injected, copied under N names (a Maildir file's name is
# made from its qid, so each copy is one file there).
first = inject_one("alice@%s" % D, 0, "a")
src = inst.path("queue", "mess", first)
st = os.stat(src)
sec, usec, pid = (int(x) for x in first.split("."))
qids = []
for k in range(N):
    # Two hours old by their names (their schedule counts from the line).
    q = "%d.%06d.%d" % (sec - 7200, (usec + k) % 1000000, pid + 1 + k // 1000000)
    dst = inst.path("queue", "mess", q)
    if k:
        shutil.copyfile(src, dst)
        os.chown(dst, st.st_uid, st.st_gid)
        os.chmod(dst, st.st_mode & 0o7777)
    else:
        os.rename(src, dst)
        src = dst
    qids.append(q)
w0 = int(time.time())
due = {}
lines = []
for k, q in enumerate(qids):
    d = 2 + (k * 7) % 8                      # 2..9 seconds, interleaved
    due[k] = w0 + d
    lines.append("m %s 0 %d - 0 0 %d\n" % (q, d, w0))
rng.shuffle(lines)                           # the file has no order
later = inst.path("queue", "sched", "later")
with open(later, "w") as f:
    f.write("".join(lines))
su, sg = inst.uid("send")
os.chown(later, su, sg)
os.chmod(later, 0o600)

kills = 0
p = sh.start(inst, log)
wait_for(lambda: "qmail-send event=start" in sh.read_log(log), 30)
# Forged notices (the trigger fifo is anyone's) for every message outside
# memory: none may be taken for new and delivered before its time.
fd = os.open(inst.path("queue", "lock", "trigger"), os.O_WRONLY | os.O_NONBLOCK)
os.write(fd, "".join(q + "\n" for q in qids).encode())
os.close(fd)
# Taken in while running: dave has no Maildir, so each is deferred, its
# next retry (qmail's schedule) about 100 seconds away.
dqids = [inject_one("dave@%s" % D, k, "d") for k in range(NDEFER)]



def listed():
    """The qids of the schedule and queue/sched/later not due now."""
    out = set()
    for name in ("schedule", "later"):
        try:
            with open(inst.path("queue", "sched", name)) as f:
                out |= {l.split()[1] for l in f if l.startswith("m ") and l.split()[3] != "0"}
        except FileNotFoundError:
            pass
    return out


# A deferral is saved within a few seconds (a crash before may retry it
# early, by design); the kills come once every one is on disk.
t.check("the deferrals are saved", wait_for(lambda: set(dqids) <= listed(), 30),
        len(set(dqids) - listed()))
delivered = lambda: len(sh.messages(inst, "alice"))
for stop in (N // 4, N // 2, 3 * N // 4):
    wait_for(lambda: delivered() >= stop, 60)
    time.sleep(rng.uniform(0, 0.3))
    p.send_signal(signal.SIGKILL)
    p.wait()
    kills += 1
    mark = sh.read_log(log).count("qmail-send event=start")
    p = sh.start(inst, log)
    wait_for(lambda: sh.read_log(log).count("qmail-send event=start") > mark, 30)
t.check("every message delivered", wait_for(lambda: delivered() >= N, 90), delivered())
time.sleep(0.5)

# A Maildir file's name is fixed by the qid and recipient: a file per
# message, and the log says how often each was delivered (a kill may
# repeat a delivery whose result it lost: at most one per kill).
name = {q.replace(".", "_"): k for k, q in enumerate(qids)}
got = {}
early = []
for fn, body in sh.messages(inst, "alice"):
    k = next((v for q, v in name.items() if q in fn), None)
    if k is None:
        continue
    got.setdefault(k, []).append(fn)
    # The scheduler counts whole seconds: one of slack, never more.
    mt = os.stat(os.path.join(sh.maildir_of(inst, "alice"), "new", fn)).st_mtime
    if mt < due[k] - 1:
        early.append((k, round(due[k] - mt, 1)))
t.check("nothing lost", set(got) == set(range(N)), sorted(set(range(N)) - set(got))[:10])
t.check("one file per message", all(len(v) == 1 for v in got.values()),
        [(k, v) for k, v in got.items() if len(v) > 1][:3])
t.check("nothing delivered before its time", not early, early[:10])
lg = sh.read_log(log)
done = {}
for l in lg.splitlines():
    m = re.search(r"event=delivery qid=(\S+) .*rcpt=alice@.* result=delivered", l)
    if m:
        done[m.group(1)] = done.get(m.group(1), 0) + 1
again = sum(v - 1 for v in done.values())
t.check("deliveries repeated only by kills", again <= kills and set(done) <= set(qids), again)

# The deferred messages: one attempt each, none repeated by a restart.
time.sleep(1)
lg = sh.read_log(log)
tries = {q: 0 for q in dqids}
for l in lg.splitlines():
    m = re.search(r"event=delivery qid=(\S+) .*rcpt=dave@", l)
    if m and m.group(1) in tries:
        tries[m.group(1)] += 1
t.check("each deferred message tried once, not again after the kills",
        all(v == 1 for v in tries.values()), sorted(set(tries.values())))

# Memory: every count qmail-send logged of the messages it holds.
held = [int(x) for x in re.findall(r"(?:memory|queued)=(\d+)", lg)]
print("kills %d, in memory at most %d, moves out %d, back %d" % (
    kills, max(held or [0]), lg.count("event=spill"), lg.count("event=refill")), flush=True)
t.check("messages moved out of memory and back",
        "event=spill " in lg and "event=refill " in lg, lg[-2000:])
t.check("messages in memory never over the window and a quarter",
        held and max(held) <= WINDOW + WINDOW // 4, max(held or [0]))

# After a kill each waiting message is in the schedule or outside memory.
p.send_signal(signal.SIGKILL)
p.wait()
t.check("every waiting message is in the schedule or queue/sched/later",
        set(dqids) <= listed(), sorted(set(dqids) - listed())[:5])
t.check("only the deferred messages are left", set(inst.queue_files()) == set(dqids),
        len(inst.queue_files()))
t.done()
