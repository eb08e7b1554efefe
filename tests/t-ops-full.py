"""A full queue file system (lib/qspace.h).

qmail-smtpd, as its own uid (which cannot read the queue), refuses at
MAIL with 452 4.3.1 when the queue's file system cannot hold the declared
SIZE plus control/queueminfree, or is short of inodes, before any message
is uploaded; logged with the reason and the free counts. On a queue that
has run out of inodes (a tmpfs with few of them, mounted as root),
qmail-queue says on stderr that inodes ran out, and qmail-send, failing
to queue a bounce there, logs the same instead of "Input/output error".
"""
import os, struct, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, wait_for, IS_ROOT
from smtpd_harness import Server
import send_harness

t = T()
inst = Instance(t, control={"rcpthosts": ["example.test"], "locals": ["example.test"], "databytes": "0"})
srv = Server(inst)


def mail(size=None):
    c = srv.connect()
    c.cmd("EHLO client.test")
    r = c.cmd("MAIL FROM:<s@client.test>" + (" SIZE=%d" % size if size is not None else ""))
    c.cmd("QUIT")
    c.close()
    return r


t.check("default reserve: MAIL accepted", mail(1000)[0] == 250)
inst.control("queueminfree", "18000000000000000000")
r = mail()
t.check("reserve beyond the free space: 452 4.3.1 at MAIL", r[0] == 452 and r[1].startswith("4.3.1"), r)
t.check("logged with the reason and the free bytes",
        "result=refused reason=queue-space free_bytes=" in srv.logtext(), srv.logtext()[-400:])
inst.control("queueminfree", "0")
r = mail(10 ** 18)
t.check("declared SIZE beyond the free space: 452 4.3.1", r[0] == 452 and r[1].startswith("4.3.1"), r)
t.check("a SIZE that fits: 250", mail(10 ** 6)[0] == 250)
inst.control("queueminfree", "12x")
t.check("a malformed queueminfree: 451, not silently 0", mail()[0] == 451)
os.unlink(inst.path("control", "queueminfree"))

if not IS_ROOT:
    t.skip("a queue out of inodes", "mounting a tmpfs needs root")
    t.done()

# --- a queue file system out of inodes -------------------------------------
Q = inst.path("queue")
inst.control("queueminfree", "0")
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,nr_inodes=200,mode=0750", "tmpfs", Q], check=True)
send = {}


def unmount():
    p = send.get("p")
    if p and p.poll() is None:
        p.terminate()
        p.wait(70)
    subprocess.run(["umount", Q], check=False)


t.cleanups.append(unmount)
subprocess.run([inst.bin("qmail-qfix")], stderr=subprocess.DEVNULL)   # the layout, on the tmpfs
t.check("qmail-qfix made the queue on the tmpfs", os.path.isdir(os.path.join(Q, "mess")))

# The disk fills between MAIL and the end of DATA: 452 4.3.1, not 451.
c = srv.connect()
codes = c.transaction("s@client.test", ["postmaster@example.test"])
filled = []
try:
    while True:
        p = os.path.join(Q, "x%d" % len(filled))
        open(p, "w").close()
        filled.append(p)
except OSError:
    pass
r354 = c.cmd("DATA")[0]
c.send(b"Subject: late\r\n\r\nlate\r\n.\r\n")
r = c.reply()
c.close()
t.check("full after MAIL: 452 4.3.1 at the end of DATA", codes == [250, 250, 250] and r354 == 354
        and r[0] == 452 and r[1].startswith("4.3.1"), (codes, r354, r))
t.check("logged as deferred-storage", "result=deferred-storage" in srv.logtext(), srv.logtext()[-400:])
r = mail(1000)
t.check("no inodes left: 452 4.3.1 at MAIL", r[0] == 452 and r[1].startswith("4.3.1"), r)
t.check("logged as queue-inodes with the count", "reason=queue-inodes" in srv.logtext()
        and "free_inodes=0" in srv.logtext(), srv.logtext()[-400:])
for p in filled:
    os.unlink(p)

# A message whose one recipient has failed: qmail-send must bounce it.
t.check("a message queued", inst.inject("s@example.test", ["gone@example.test"], "Subject: x\n\nx\n") == 0)
name = inst.queue_files()[0]
path = os.path.join(Q, "mess", name)
data = bytearray(open(path, "rb").read())
i = struct.unpack(">Q", bytes(data[12:20]))[0]
while i < len(data) and data[i:i + 1] != b"R":
    i += 5 + struct.unpack(">I", bytes(data[i + 1:i + 5]))[0]
t.check("its recipient record is found", data[i:i + 1] == b"R" and data[i + 5:i + 6] == b"P", data[i:i + 8])
data[i + 5] = ord("F")
with open(path, "r+b") as f:
    f.write(data)

k = 0
try:
    while True:
        open(os.path.join(Q, "fill%d" % k), "w").close()
        k += 1
except OSError:
    pass
err = subprocess.run([inst.bin("qmail-queue")], input=b"Subject: y\n\ny\n", stdout=subprocess.PIPE,
                     stderr=subprocess.PIPE)
# fd 1 is the envelope: qmail-queue fails before it reads it.
t.check("qmail-queue without an inode: exit 64, and says inodes ran out",
        err.returncode == 64 and b"queue file system out of inodes (0 free)" in err.stderr,
        (err.returncode, err.stderr))

log = inst.path("send.log")
send["p"] = send_harness.start(inst, log)
t.check("qmail-send: the bounce that cannot be queued is logged with the cause",
        wait_for(lambda: 'op=bounce error="queue file system out of inodes' in send_harness.read_log(log), 15),
        send_harness.read_log(log)[-600:])
t.check("not as an I/O error", "Input/output error" not in send_harness.read_log(log))
t.check("the message stays queued", os.path.exists(path))
t.done()
