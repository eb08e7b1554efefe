#!/usr/bin/env python3
"""qmail-lspawn's resident delivery workers, driven over a SOCK_SEQPACKET
socketpair as qmail-send drives it: interleaved deliveries to several
uids land in the right Maildirs with the right owners; each worker runs
as one uid and is reused; it keeps no descriptor and no cwd between
deliveries; idle ones are retired, and so is one that has served its
count; a worker killed mid-delivery costs that delivery a 'Z' and its
retry delivers once; programs and forwards still run."""
import os, shutil, signal, socket, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, free_ids, wait_for
import send_harness as sh

t = T()
inst = Instance(t)
MSG = b"From: a@example.org\nSubject: workers\n\nbody\n"
IDLE = 10          # lib/spawnpool.h POOL_IDLE_MS
USES = 1000        # POOL_USES
PER_ID = 16        # qmail-lspawn's idle_per_id

if IS_ROOT:
    ids = free_ids(3, start=7500)
else:
    ids = [os.getuid()] * 3
base = tempfile.mkdtemp(prefix="t-lspawn-workers.")
os.chmod(base, 0o755)
t.cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))


def mkhome(name, owner, dotqmail=None):
    return sh.make_home(base, name, owner, dotqmail)


users = ["bob", "carol", "dan"]
homes = {}
for name, uid in zip(users, ids):
    homes[name] = mkhome(name, uid, {
        "-pid": "|echo $PPID >> pids\n./Maildir/\n",
        "-slow": "./Maildir/\n|sleep 2\n",
        "-drop": "# nothing\n",
        "-fwd": "&elsewhere@remote.test\n",
    })
with open(inst.path("users", "assign"), "w") as f:
    for name, uid in zip(users, ids):
        f.write("=%s:%s:%d:%d:%s:::\n" % (name, name, uid, uid, homes[name]))
        f.write("+%s-:%s:%d:%d:%s:-::\n" % (name, name, uid, uid, homes[name]))
    f.write(".\n")
subprocess.run([inst.bin("qmail-newu")], check=True)

mf = os.path.join(base, "msg")
with open(mf, "wb") as f:
    f.write(b"HEAD" + MSG + b"TAIL")
msgfd = os.open(mf, os.O_RDONLY)

errlog = open(os.path.join(base, "stderr"), "w+")
a, lsp = sh.run_spawner(inst, [inst.bin("qmail-lspawn"), "./Maildir/"], errlog, 30)
qn = [0]


def qid():
    qn[0] += 1
    return "1795420800.%06d.4242" % qn[0]


def send(slot, rcpt, q, i=0):
    fields = [str(slot), q, "4", str(len(MSG)), "0", "s@example.org", str(i), rcpt]
    socket.send_fds(a, [b"".join(x.encode() + b"\0" for x in fields)], [msgfd])


def recv():
    return sh.spawner_reply(a)


def deliver(rcpt, q=None, i=0, slot=1):
    send(slot, rcpt, q or qid(), i)
    return recv()


def workers():
    """{pid: (uid, gid, groups)} of qmail-lspawn's children."""
    out = {}
    for k in sh.children(lsp.pid):
        try:
            st = dict(l.split(":", 1) for l in open("/proc/%d/status" % k).read().splitlines())
        except OSError:
            continue
        out[k] = (int(st["Uid"].split()[0]), int(st["Gid"].split()[0]), st["Groups"].split())
    return out


def of(uid):
    return sorted(k for k, v in workers().items() if v[0] == uid)


def files(name):
    return inst.maildir(os.path.join(homes[name], "Maildir"))


# --- interleaved deliveries to three uids ----------------------------------
N = 8
for n in range(N * 3):
    send(100 + n, "%s@example.com" % users[n % 3], qid())
got = {}
for n in range(N * 3):
    r = recv()
    if r:
        got[r[0]] = r[1]
t.check("interleaved: every delivery answered K", len(got) == N * 3 and
        all(v.startswith("K") for v in got.values()), got)
for name, uid in zip(users, ids):
    fs = files(name)
    t.check("%s: exactly its %d messages" % (name, N), len(fs) == N, len(fs))
    body = [open(os.path.join(homes[name], "Maildir", "new", x), "rb").read() for x in fs]
    t.check("%s: each addressed to it" % name,
            all(x.startswith(b"Return-Path: <s@example.org>\nDelivered-To: %s@example.com\n" % name.encode())
                for x in body))
    if IS_ROOT:
        owners = {(os.stat(os.path.join(homes[name], "Maildir", "new", x)).st_uid,
                   os.stat(os.path.join(homes[name], "Maildir", "new", x)).st_gid) for x in fs}
        t.check("%s: its files belong to its uid and gid" % name, owners == {(uid, uid)}, owners)
    else:
        t.skip("%s: its files belong to its uid and gid" % name, "not root")
w = workers()
if IS_ROOT:
    t.check("every worker runs as one of the users, with its own gid and no other group",
            w and all(v[0] in ids and v[1] == v[0] and not v[2] for v in w.values()), w)
    t.check("a worker per uid", {v[0] for v in w.values()} == set(ids), w)
else:
    t.skip("workers per uid", "not root")

# --- concurrent deliveries to one uid: a worker each, then a few stay ----------
for n in range(2 * PER_ID):
    send(200 + n, "bob-slow@example.com", qid())
busy = wait_for(lambda: len(of(ids[0])) >= 2 * PER_ID, 10)
t.check("%d concurrent deliveries to bob: %d workers" % (2 * PER_ID, 2 * PER_ID), busy, of(ids[0]))
got = [recv() for n in range(2 * PER_ID)]
t.check("all answered K", all(r and r[1].startswith("K") for r in got), got)
t.check("then at most %d stay idle" % PER_ID,
        wait_for(lambda: len(of(ids[0])) <= PER_ID, 5) and of(ids[0]), of(ids[0]))

# --- reuse: the same worker serves delivery after delivery -------------------
pids = os.path.join(homes["bob"], "pids")
for n in range(5):
    r = deliver("bob-pid@example.com")
    t.check("bob-pid %d: K" % n, r and r[1].startswith("K"), r)
served = open(pids).read().split() if os.path.exists(pids) else []
t.check("a program delivery ran 5 times", len(served) == 5, served)
t.check("one worker served all five", len(set(served)) == 1, served)
if served:
    wp = int(served[0])
    t.check("that worker is qmail-lspawn's child, as bob", wp in of(ids[0]), (wp, workers()))
    if IS_ROOT:
        t.check("the program ran as bob", os.stat(pids).st_uid == ids[0])
    else:
        t.skip("the program ran as bob", "not root")
    try:
        fds = sorted(int(x) for x in os.listdir("/proc/%d/fd" % wp))
        cwd = os.readlink("/proc/%d/cwd" % wp)
    except OSError as e:
        fds, cwd = e, None
    t.check("between deliveries the worker holds only fds 0, 1, 2", fds == [0, 1, 2], fds)
    t.check("between deliveries its cwd is /", cwd == "/", cwd)

# --- a forward ------------------------------------------------------------------
before = inst.queue_files()
r = deliver("carol-fwd@example.com")
after = inst.queue_files()
t.check("carol-fwd: K, forwarded", r and r[1].startswith("K") and "forwarded to 1 address" in r[1], r)
new = [x for x in after if x not in before]
t.check("the forward is queued", len(new) == 1, new)
if new:
    data = open(inst.path("queue", "mess", new[0]), "rb").read()
    t.check("for the forwarding address", b"elsewhere@remote.test" in data and
            b"Delivered-To: carol-fwd@example.com" in data)

# --- unknown user: answered by the parent, no worker ------------------------------
nw = len(workers())
r = deliver("nobody-here-at-all@example.com")
t.check("unknown user: D without a worker", r and r[1].startswith("D") and len(workers()) <= nw, (r, nw))

# --- idle retirement ------------------------------------------------------------
time.sleep(IDLE / 2)
t.check("idle workers stay a while", len(workers()) > 0)
t0 = time.time()
gone = wait_for(lambda: not workers(), IDLE + 10, 0.2)
t.check("then they are retired", gone, workers())
t.check("retired workers exit cleanly (nothing logged)", "worker_died" not in open(errlog.name).read())

# --- kill -9 mid-delivery ----------------------------------------------------------
q = qid()
name_part = "Q" + q.replace(".", "_") + "R3."
send(7, "dan-slow@example.com", q, 3)
victim = wait_for(lambda: of(ids[2]), 5)
# The Maildir file is written; the program (sleep) runs.
wait_for(lambda: [x for x in files("dan") if name_part in x], 10)
for p in victim or []:
    os.kill(p, signal.SIGKILL)
r = recv()
t.check("killed mid-delivery: Z", r and r[0] == "7" and r[1].startswith("Z") and "crashed" in r[1], r)
t.check("the death is logged", wait_for(lambda: "event=worker_died" in open(errlog.name).read(), 5))
r = deliver("dan-slow@example.com", q, 3, slot=8)
t.check("the retry: K, by a fresh worker", r and r[1].startswith("K") and
        not set(victim or []) & set(of(ids[2])), (r, victim, of(ids[2])))
t.check("the retry recognises the first delivery", r and "duplicate suppressed" in r[1], r)
t.check("delivered exactly once", len([x for x in files("dan") if name_part in x]) == 1, files("dan"))
r = deliver("dan@example.com", slot=9)
t.check("dan's deliveries go on", r and r[1].startswith("K"), r)

# --- a worker is retired after its count of deliveries ------------------------------
first = None
for n in range(USES):
    r = deliver("carol-drop@example.com")
    if not (r and r[1].startswith("K")):
        break
    if n == 0:
        first = of(ids[1])
t.check("%d deliveries" % USES, n == USES - 1 and r and r[1].startswith("K"), (n, r))
t.check("served by one worker", first and len(first) == 1, first)
t.check("which is retired after them",
        first and wait_for(lambda: first[0] not in sh.children(lsp.pid), 5), (first, workers()))
r = deliver("carol-drop@example.com")
t.check("the next delivery has a new worker", r and r[1].startswith("K") and
        of(ids[1]) and of(ids[1])[0] != first[0], (r, of(ids[1]), first))

# --- EOF: the workers go too ----------------------------------------------------------
a.shutdown(socket.SHUT_WR)
try:
    rc = lsp.wait(20)
except subprocess.TimeoutExpired:
    rc = None
t.check("EOF: exits 0", rc == 0, rc)
t.check("no worker is left", not sh.children(lsp.pid))
a.close()

# --- a killed qmail-lspawn leaves no worker behind ------------------------------------
a, lsp = sh.run_spawner(inst, [inst.bin("qmail-lspawn"), "./Maildir/"], errlog, 30)
for n, name in enumerate(users):
    r = deliver("%s@example.com" % name, slot=n)
    t.check("second qmail-lspawn: %s K" % name, r and r[1].startswith("K"), r)
orphans = sorted(workers())
t.check("it has workers", len(orphans) >= 1, orphans)
os.kill(lsp.pid, signal.SIGKILL)
lsp.wait()


def running(pid):
    try:
        return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


t.check("killed with SIGKILL: its workers exit too",
        wait_for(lambda: not any(running(p) for p in orphans), 10), [p for p in orphans if running(p)])
a.close()
t.done()
