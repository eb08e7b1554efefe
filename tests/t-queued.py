#!/usr/bin/env python3
"""qmail-queued through its own protocol (lib/qqclient.h), with a Python
client: the files it writes are qmail-queue's byte for byte but for the
Received: line, which names the caller's uid and pid; qids stay unique
under a burst; every exit code a client can provoke, and nothing left in
mess/ or tmp/ after a failure, an abort or a hang-up; protocol abuse is
refused without harm; many clients at once while a slow one holds its
message open; a full server says busy; SIGKILL in the middle of a message
commits nothing and the client hears no success; SIGTERM lets the message
in flight finish and stops listening."""
import os, re, select, socket, stat, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from queued_harness import (Daemon, Client, QueueDir, envl, parse, read_trigger, sans_sum, swap_received, queue_once,
                            refused_connect, RECEIVED_QQD)

t = T()
inst = Instance(t)
MESS = inst.path("queue", "mess")
TMP = inst.path("queue", "tmp")
QD = QueueDir(inst)
QID = re.compile(r"(\d+)\.(\d{6})\.(\d+)")


mess, tmp, read_mess = QD.mess, QD.tmp, QD.read


def qq(message, envelope, env=None):
    """qmail-queue with the same input: its exit code and its new file."""
    old = set(mess())
    r, w = os.pipe()
    p = subprocess.Popen([inst.bin("qmail-queue")], stdin=subprocess.PIPE, stdout=r, env=env or {})
    os.close(r)
    p.stdin.write(message)
    p.stdin.close()
    os.write(w, envelope)   # under a pipe's 64 KB
    os.close(w)
    rc = p.wait(60)
    new = sorted(set(mess()) - old)
    return rc, (read_mess(new[0]) if len(new) == 1 else None)


d = Daemon(inst)
SOCK = d.sock
t.check("qmail-queued reports ready on its notification fd", d.ready, d.logtext())
st = os.lstat(SOCK)
t.check("the socket is a socket, mode 0666", stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666,
        oct(st.st_mode))
if IS_ROOT and inst.multi:
    t.check("the socket belongs to the queue uid", st.st_uid == inst.uid("queue")[0], st.st_uid)
    t.check("qmail-queued runs as the queue uid",
            [int(l.split()[1]) for l in open("/proc/%d/status" % d.pid) if l.startswith("Uid:")]
            == [inst.uid("queue")[0]], d.pid)
# A client that never passes its pipes is dropped after QD_HELLO (10 s);
# checked at the end, so the wait overlaps the rest.
idle = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
idle.connect(SOCK)
idle_since = time.time()

# --- one message, compared with qmail-queue's file -------------------------
def same_as_qmail_queue(name, message, envelope, flags=0, env=None):
    trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
    ack, code, qid = queue_once(SOCK, message, envelope, flags)
    got = read_trigger(trig)
    t.check("%s: go-ahead, exit 0 and a qid" % name, ack == b"K" and code == 0 and qid, (ack, code, qid))
    if not qid:
        return None
    m = QID.fullmatch(qid)
    t.check("%s: the qid is seconds.micro.<qmail-queued's pid>" % name,
            m is not None and int(m.group(3)) == d.pid and abs(int(m.group(1)) - time.time()) < 60, qid)
    t.check("%s: the trigger got the qid" % name, got == qid.encode() + b"\n", got)
    t.check("%s: tmp/ is empty" % name, tmp() == [], tmp())
    data = read_mess(qid)
    try:
        q = parse(data)
    except ValueError as e:
        t.check("%s: the file parses" % name, False, e)
        return None
    rm = RECEIVED_QQD.match(q["message"])
    t.check("%s: Received: names qmail-queued, the caller's uid and pid" % name,
            rm is not None and int(rm.group(1)) == d.pid and int(rm.group(2)) == os.getuid()
            and int(rm.group(3)) == os.getpid(), q["message"][:120])
    rc, theirs = qq(message, envelope, env)
    t.check("%s: byte for byte qmail-queue's file but for the Received: line" % name,
            rm is not None and theirs is not None and swap_received(theirs, rm.group(0), qid) == sans_sum(data),
            (rc, data[:200], theirs[:200] if theirs else None))
    t.check("%s: the end record names its qid" % name, q["qid"] == qid, q["qid"])
    st = os.stat(os.path.join(MESS, qid))
    t.check("%s: mode 0660" % name, stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode))
    if IS_ROOT and inst.multi:
        t.check("%s: owned by the queue uid and group" % name, (st.st_uid, st.st_gid) == inst.uid("queue"),
                (st.st_uid, st.st_gid))
    return q

same_as_qmail_queue("plain", b"From: a@b.example\nSubject: test\n\nbody line\n",
                    envl(b"a@b.example", [b"c@d.example", b"e@f.example"]))
long_addr = b"x" * (1000 - len(b"@l.example")) + b"@l.example"
q = same_as_qmail_queue("SMTPUTF8, null sender, 1000-byte address, binary bytes",
                        b"X-Bin: \0\r\x7f\xff\n\nno newline at end",
                        envl(b"", [long_addr, "\u00e9l\u00e8ve@\u00e9cole.example".encode()]),
                        flags=1, env={"SMTPUTF8": "1"})
t.check("SMTPUTF8 flag: the option record", q is not None and q["opts"] == [b"SMTPUTF8"], q and q["opts"])
big = b"".join(b"line %07d ........................................\n" % i for i in range(40000))
q = same_as_qmail_queue("2 MB and 500 recipients", big, envl(b"big@x", [b"r%d@y" % i for i in range(500)]))
t.check("2 MB message kept exactly", q is not None and q["message"].endswith(big) and len(q["rcpts"]) == 500)

# --- exit codes; nothing left behind ---------------------------------------
def refused(name, want, envelope, message=b"m\n"):
    old_m, old_t = mess(), tmp()
    ack, code, qid = queue_once(SOCK, message, envelope)
    t.check("%s: answered %d" % (name, want), ack == b"K" and code == want and qid is None, (ack, code, qid))
    t.check("%s: nothing queued, tmp/ clean" % name,
            wait_for(lambda: mess() == old_m and tmp() == old_t, 5), (mess(), tmp()))

too_long = b"x" * 1001
refused("sender over 1000 bytes", 11, envl(too_long, [b"a@b"]))
refused("recipient over 1000 bytes", 11, envl(b"a@b", [b"c@d", too_long]))
refused("bad first byte", 91, b"Xa@b\0Tc@d\0\0")
refused("no recipient", 91, envl(b"a@b", []))
refused("empty recipient", 91, envl(b"a@b", [b""]))
refused("bad record byte", 91, b"Fa@b\0Tc@d\0Xe@f\0\0")
refused("CR in a recipient", 91, envl(b"a@b", [b"c\r@d"]))
refused("abort: EOF before the final NUL", 91, b"Fa@b\0Tc@d\0")
refused("abort: empty envelope", 91, b"")
refused("ESMTP parameter in the sender", 12, envl(b"a@b.example> NOTIFY=SUCCESS", [b"c@d"]))
refused("ESMTP parameter in a recipient", 12, envl(b"a@b", [b"c@d> ORCPT=rfc822;x@y"]))

# --- one fsync between a message's last byte and its answer -------------------
# The file's own: the pool name was on disk before, and mess/ is fsynced
# after the answer (qpool.h), by the sync process (qsync.h). The trigger
# waits for neither the answer nor mess/'s fsync: a file whose rename a
# power cut undoes comes back under its qid. strace shows the order of the
# calls in both.
kids = open("/proc/%d/task/%d/children" % (d.pid, d.pid)).read().split()
t.check("one sync process, a child of qmail-queued", len(kids) == 1, kids)
fds = sorted(os.listdir("/proc/%s/fd" % kids[0])) if kids else None
t.check("the sync process holds fds 0-2 and its pipe only (not the socket)",
        fds == ["0", "1", "2", "3"] and os.readlink("/proc/%s/fd/3" % kids[0]).startswith("pipe:"), fds)
trace = inst.path("queued.strace")
st = subprocess.Popen(["strace", "-f", "-s", "16", "-e", "trace=fsync,fdatasync,sendmsg,openat", "-o", trace,
                       "-p", str(d.pid)] + sum((["-p", k] for k in kids), []), stderr=subprocess.PIPE)
attached = b"attached" in st.stderr.readline()
code, qid = queue_once(SOCK, b"Subject: traced\n\nbody\n", envl(b"a@b", [b"c@d"]))[1:]
wait_for(lambda: False, 0.3)
st.terminate()
st.wait()
calls = re.findall(r'(fsync|fdatasync)\(|sendmsg\(\d+, \{[^"]*"(K|\\0)|openat\([^"]*"(lock/trigger)"',
                   open(trace).read())
seq = [c[0] or c[2] or ("go" if c[1] == "K" else "answer") for c in calls]
t.check("traced: the message queued", attached and code == 0, (attached, code))
t.check("traced: go-ahead, one fsync, the trigger, the answer, then mess/'s fsync",
        seq[seq.index("go"):] == ["go", "fsync", "lock/trigger", "answer", "fsync"] if "go" in seq else False,
        seq)

# A refill of the pool fsyncs tmp/, which also writes the removal of the
# names renamed into mess/ since: mess/ is fsynced just before it, so no
# removal reaches the disk before its new entry. 65 messages take at
# least one refill (64 names each).
trace = inst.path("queued-refill.strace")
st = subprocess.Popen(["strace", "-f", "-y", "-e", "trace=fsync", "-o", trace, "-p", str(d.pid)],
                      stderr=subprocess.PIPE)
attached = b"attached" in st.stderr.readline()
codes = [queue_once(SOCK, b"Subject: refill\n\nbody\n", envl(b"a@b", [b"c@d"]))[1] for _ in range(65)]
st.terminate()
st.wait()
loop = [(m.group(1), m.group(2)) for m in re.finditer(r"^(\d+) +fsync\(\d+<[^>]*/queue/(tmp|mess)>\)",
                                                     open(trace).read(), re.M)]
loop = [dname for pid, dname in loop if pid == str(d.pid)]
refills = [i for i, dname in enumerate(loop) if dname == "tmp"]
t.check("refill: 65 messages queued, at least one refill of the pool traced",
        attached and codes == [0] * 65 and refills, (attached, codes, loop))
t.check("refill: each fsync of tmp/ right after one of mess/, in qmail-queued's loop",
        refills and all(i > 0 and loop[i - 1] == "mess" for i in refills), loop)

# A client that hangs up in the middle of its message: dropped, no file.
old_m = mess()
c = Client(SOCK)
c.write(b"Subject: half\n\n" + b"y" * 100000)
had_tmp = wait_for(lambda: tmp(), 5)
c.s.close()
t.check("hang-up mid-message: its tmp/ file is removed", had_tmp and wait_for(lambda: tmp() == [], 5), tmp())
c.close()
t.check("hang-up mid-message: nothing in mess/", mess() == old_m)

# --- protocol abuse: the socket closes without a go-ahead -------------------
def abuse(name, packets):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(10)
    s.connect(SOCK)
    opened = []
    try:
        for data, fd in packets:
            if fd is None:
                s.send(data)
            else:
                socket.send_fds(s, [data], [fd])
        got = s.recv(64)
    except OSError:
        got = b""
    s.close()
    t.check("abuse: %s gets no go-ahead" % name, got == b"", got)

r1, w1 = os.pipe()
r2, w2 = os.pipe()
f = open(inst.path("control", "me"), "rb")
abuse("a regular file as the message", [(b"Q\0", f.fileno()), (b"E", r2)])
abuse("an unknown flag", [(b"Q\x02", r1), (b"E", r2)])
abuse("a wrong first datagram", [(b"X\0", r1), (b"E", r2)])
abuse("a datagram without a descriptor", [(b"Q\0", None)])
abuse("a too long datagram", [(b"Q\0" + b"z" * 100, r1)])
f.close()
for fd in (r1, w1, r2, w2):
    os.close(fd)
ack, code, qid = queue_once(SOCK, b"after abuse\n", envl(b"a@b", [b"c@d"]))
t.check("still serving after abuse", code == 0 and qid in mess(), (ack, code, qid))

# --- many clients at once, one of them slow --------------------------------
old = set(mess())
slow = Client(SOCK)
slow.write(b"Subject: slow\n\n" + b"s" * 100000)
fast = [Client(SOCK) for _ in range(40)]
t.check("41 clients in flight get the go-ahead", slow.ack == b"K" and all(c.ack == b"K" for c in fast),
        [c.ack for c in fast])
start = time.time()
for i, c in enumerate(fast):
    c.write(b"Subject: fast %d\n\nbody %d\n" % (i, i))
    c.envelope(envl(b"f@x", [b"r%d@y" % i]))
res = [c.result() for c in fast]
took = time.time() - start
t.check("40 fast clients all queued while the slow one is still writing",
        all(code == 0 for code, _ in res) and took < 60, (res[:3], took))   # a hang guard
r, _, _ = select.select([slow.s], [], [], 0)
t.check("the slow client has no answer yet", r == [])
qids = [q for _, q in res]
t.check("40 distinct qids", len(set(qids)) == 40, qids[:5])
ok = True
for i, qid in enumerate(qids):
    try:
        ok = ok and parse(read_mess(qid))["message"].endswith(b"Subject: fast %d\n\nbody %d\n" % (i, i))
    except (OSError, ValueError):
        ok = False
t.check("each fast message is its own, complete", ok)
slow.write(b"tail\n")
slow.envelope(envl(b"s@x", [b"slow@y"]))
code, sq = slow.result()
t.check("the slow client finishes later with 0", code == 0 and sq in mess(), (code, sq))
t.check("41 new messages", len(set(mess()) - old) == 41, len(set(mess()) - old))

# Slots freed out of order, the highest first: the loops stop at the
# highest slot in use, and the clients left between free slots are served.
held = [Client(SOCK) for _ in range(5)]
for i in (4, 0, 2):
    held[i].close()
wait_for(lambda: False, 0.2)
res = [held[i].send(b"between %d\n" % i, envl(b"m@x", [b"c@y"])) for i in (3, 1)]
t.check("clients between freed slots are served", all(code == 0 for code, _ in res), res)

# A burst whose hellos arrive together: qids taken in one turn stay unique.
burst = [Client(SOCK, wait_ack=False) for _ in range(30)]
for c in burst:
    c.get_ack()
res = [c.send(b"burst\n", envl(b"b@x", [b"c@y"])) for c in burst]
qids = [q for _, q in res]
t.check("a burst of 30: all queued, 30 distinct qids",
        all(code == 0 for code, _ in res) and len(set(qids)) == 30, res[:3])

# --- the caller's uid (root) ------------------------------------------------
if IS_ROOT and inst.multi:
    u, g = inst.uid("smtpd")
    rp, wp = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(g)
            os.setuid(u)
            ack, code, qid = queue_once(SOCK, b"from smtpd uid\n", envl(b"a@b", [b"c@d"]))
            os.write(wp, ("%s %s" % (code, qid)).encode())
        finally:
            os._exit(0)
    os.close(wp)
    got = os.read(rp, 256).decode().split()
    os.close(rp)
    os.waitpid(pid, 0)
    ok = len(got) == 2 and got[0] == "0"
    rm = RECEIVED_QQD.match(parse(read_mess(got[1]))["message"]) if ok else None
    t.check("a client under the smtpd uid: Received: names that uid and its pid",
            rm is not None and int(rm.group(2)) == u and int(rm.group(3)) == pid, got)
    st = os.stat(os.path.join(MESS, got[1])) if ok else None
    t.check("... and the file is the queue uid's", st is not None and (st.st_uid, st.st_gid) == inst.uid("queue"))
else:
    t.skip("caller uid", "needs root and a multi-uid install")

# --- the idle client was dropped ------------------------------------------
idle.settimeout(max(1.0, 15 - (time.time() - idle_since)))
try:
    got = idle.recv(16)
except OSError:
    got = None
t.check("a client that never passes its pipes is dropped within 15 s", got == b"", got)
idle.close()

# --- full: 'B' -----------------------------------------------------------------
t.check("SIGTERM: exit 0", d.stop() == 0)
t.check("SIGTERM: the sync process has finished too", not os.path.exists("/proc/%s" % kids[0]), kids)

# --- the sync process killed: qmail-queued does its work itself -------------
d = Daemon(inst)
kid = int(open("/proc/%d/task/%d/children" % (d.pid, d.pid)).read().split()[0])
os.kill(kid, 9)
wait_for(lambda: open("/proc/%d/stat" % kid).read().split(")")[1].split()[0] == "Z", 5)
trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
ack, code, qid = queue_once(SOCK, b"Subject: no sync process\n\nbody\n", envl(b"a@b", [b"c@d"]))
got = read_trigger(trig)
t.check("sync process killed: the message is queued and its trigger pulled all the same",
        code == 0 and qid and ("%s\n" % qid).encode() in got, (code, qid, got))
# The trigger no longer waits for the sync process: its failure is
# logged after the answer.
t.check("sync process killed: logged",
        wait_for(lambda: "op=\"sync process\"" in d.logtext() or "op=sync" in d.logtext(), 5),
        d.logtext()[-300:])
d.stop()
small = Daemon(inst, nofile=24)
t.check("a descriptor limit of 24 gives 2 client slots", "clients=2" in small.logtext(), small.logtext())
held = [Client(SOCK), Client(SOCK)]
third = Client(SOCK)
t.check("the third client at once hears busy", [c.ack for c in held] == [b"K", b"K"] and third.ack == b"B",
        ([c.ack for c in held], third.ack))
third.close()
held[0].close()
wait_for(lambda: False, 0.3)
ack, code, qid = queue_once(SOCK, b"after a slot freed\n", envl(b"a@b", [b"c@d"]))
t.check("a freed slot serves again", ack == b"K" and code == 0, (ack, code))
held[1].close()
small.stop()

# --- SIGKILL in the middle of a message --------------------------------------
d = Daemon(inst)
old_m = mess()
c = Client(SOCK)
c.write(b"Subject: killed\n\n" + b"k" * 200000)
wait_for(lambda: tmp(), 5)
d.stop(9)
code, qid = c.result()
t.check("SIGKILL: the client gets no answer (a temporary failure)", code is None, (code, qid))
t.check("SIGKILL: nothing new in mess/", mess() == old_m, sorted(set(mess()) - set(old_m)))
debris = tmp()
t.check("SIGKILL: its file stays in tmp/ as debris", len(debris) == 1, debris)
t.check("SIGKILL: the socket refuses connections (clients fall back)", refused_connect(SOCK))
d = Daemon(inst)
ack, code, qid = queue_once(SOCK, b"after restart\n", envl(b"a@b", [b"c@d"]))
t.check("restarted over the stale socket: serves again", d.ready and code == 0, (ack, code))
t.check("restart: the unfinished file is removed, not queued",
        tmp() == [] and len(mess()) == len(old_m) + 1, (tmp(), len(mess()) - len(old_m)))
t.check("restart: its removal is logged",
        len(debris) == 1 and ("event=recover file=tmp/%s result=removed" % debris[0]) in d.logtext(),
        d.logtext()[-400:])

# --- a power cut that undid renames: qp_recover at the next start ------------
# A cut after the rename but before the fsync of mess/ leaves a finished
# file under its pool name. Such files are made here from real ones: the
# one whole must come back under its own qid (its end record's), even
# with a state byte qmail-send marked meanwhile (the trigger came before
# mess/'s fsync), and through the trigger; one whose rename reached the
# disk too (both names) loses its pool name only; each damaged one (a
# byte changed, cut short) must be removed, unused names dropped quietly,
# and names not of the pool left alone.
code, qid1 = queue_once(SOCK, b"Subject: undone rename\n\nbody\n", envl(b"a@b", [b"c@d", b"e@f"]))[1:]
code2, qid2 = queue_once(SOCK, b"Subject: damaged\n\n" + b"z" * 70000, envl(b"a@b", [b"c@d"]))[1:]
code3, qid3 = queue_once(SOCK, b"Subject: both names\n\nbody\n", envl(b"a@b", [b"c@d"]))[1:]
t.check("power cut: three messages queued", code == 0 and code2 == 0 and code3 == 0, (code, code2, code3))
d.stop()
whole, damaged = read_mess(qid1), read_mess(qid2)
# qmail-send delivered its first recipient before the cut: state byte D.
at = whole.index(b"Pc@d", len(whole) - len(parse(whole)["envelope"]))
marked = whole[:at] + b"D" + whole[at + 1:]
os.unlink(os.path.join(MESS, qid1))
with open(os.path.join(TMP, "p900"), "wb") as f:
    f.write(marked)
os.unlink(os.path.join(MESS, qid2))
os.link(os.path.join(MESS, qid3), os.path.join(TMP, "p905"))
for name, data in (("p901", damaged[:40000] + b"Z" + damaged[40001:]),   # one byte
                   ("p902", damaged[:-1]),                                   # cut short
                   ("p903", damaged[:32] + bytes(len(damaged) - 32))):      # blocks never written
    with open(os.path.join(TMP, name), "wb") as f:
        f.write(data)
open(os.path.join(TMP, "p904"), "wb").close()
with open(os.path.join(TMP, "p5x"), "wb") as f:
    f.write(whole)
before = set(mess())
trig = os.open(inst.path("queue", "lock", "trigger"), os.O_RDONLY | os.O_NONBLOCK)
d = Daemon(inst)
pulled = read_trigger(trig)
back = sorted(set(mess()) - before)
t.check("power cut: the whole file is queued again, under its own qid, its marked state kept",
        back == [qid1] and read_mess(qid1) == marked
        and [r[0] for r in parse(read_mess(qid1))["rcpts"]] == [b"D", b"P"], back)
t.check("power cut: its qid went to the trigger (and no other)", pulled == qid1.encode() + b"\n", pulled)
t.check("power cut: a file under both names keeps mess/, loses the pool name",
        not os.path.exists(os.path.join(TMP, "p905")) and qid3 in mess(), sorted(os.listdir(TMP)))
t.check("power cut: the damaged files are removed, nothing else queued",
        not any(os.path.exists(os.path.join(TMP, n)) for n in ("p900", "p901", "p902", "p903", "p904")),
        sorted(os.listdir(TMP)))
t.check("power cut: a name not of the pool is left alone", os.path.exists(os.path.join(TMP, "p5x")))
log = d.logtext()
t.check("power cut: each file logged, the unused name not",
        ("file=tmp/p900 result=queued qid=%s" % qid1) in log
        and ("file=tmp/p905 result=present qid=%s" % qid3) in log
        and all(("file=tmp/%s result=removed" % n) in log for n in ("p901", "p902", "p903"))
        and "p904" not in log, log[-800:])
os.unlink(os.path.join(TMP, "p5x"))

# --- SIGTERM with a message in flight ----------------------------------------
c = Client(SOCK)
c.write(b"Subject: in flight\n\n")
os.kill(d.pid, 15)
t.check("SIGTERM: the socket stops listening", wait_for(lambda: refused_connect(SOCK), 5))
code, qid = c.send(b"finished after SIGTERM\n", envl(b"a@b", [b"c@d"]))
t.check("SIGTERM: the message in flight is still queued", code == 0 and qid in mess(), (code, qid))
t.check("SIGTERM: then it exits 0", d.stop(wait=10) == 0)
t.check("no debris in tmp/", tmp() == [], tmp())
t.done()
