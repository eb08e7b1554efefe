#!/usr/bin/env python3
"""qmail-lspawn driven directly over a SOCK_SEQPACKET socketpair, the way
qmail-send drives it: requests per lib/spawnproto.h with the message file
attached; users/assign compiled by qmail-newu."""
import os, shutil, socket, stat, subprocess, sys, tempfile, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, free_ids, wait_for
import send_harness as sh

t = T()
inst = Instance(t)
MSG = b"From: a@example.org\nSubject: lspawn\n\nbody\n"
QID = "1795420800.000001.4242"

if IS_ROOT:
    uid, uid2 = free_ids(2, start=7400)
    alias_uid = inst.uid("alias")[0]
else:
    uid = uid2 = alias_uid = os.getuid()
base = tempfile.mkdtemp(prefix="t-local-lspawn.")
os.chmod(base, 0o755)
t.cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))


def mkhome(name, owner, dotqmail=None):
    return sh.make_home(base, name, owner, dotqmail)


# A program that never ends, one that leaves a child behind, one that
# closes its descriptors and stays: each must end at timeoutprogram.
HANG = "sleep 1717"
bob = mkhome("bob", uid, {"-slow": "|touch run.$$; sleep 1; ls | grep -c '^run\\.' >> peaks; rm -f run.$$\n./Maildir/\n", "-env": "|echo \"$USER $EXT\" > envout\n",
                          "-hang": "|exec %s\n" % HANG, "-fork": "|%s & %s\n" % (HANG, HANG),
                          "-quiet": "|exec >/dev/null 2>&1 </dev/null; %s\n" % HANG})
lst = mkhome("list", uid2, {"-default": "|echo \"$EXT $DEFAULT\" > envout\n./Maildir/\n"})
alias = inst.path("alias")


def assign(lines):
    with open(inst.path("users", "assign"), "w") as f:
        f.write("".join(l + "\n" for l in lines))
    return subprocess.run([inst.bin("qmail-newu")], capture_output=True, timeout=30)


ASSIGN = ["=bob:bob:%d:%d:%s:::" % (uid, uid, bob),
          "+bob-:bob:%d:%d:%s:-::" % (uid, uid, bob),
          "+list-:list:%d:%d:%s:-:x-:" % (uid2, uid2, lst),
          "."]
p = assign(ASSIGN)
t.check("qmail-newu: compiles users/assign", p.returncode == 0 and os.path.exists(inst.path("users", "cdb")), p.stderr)

# The message sits in the middle of the file, as in a queue file.
mf = os.path.join(base, "msg")
with open(mf, "wb") as f:
    f.write(b"HEADERBYTES" + MSG + b"TRAILING-ENVELOPE")
OFF, LEN = 11, len(MSG)
msgfd = os.open(mf, os.O_RDONLY)

inst.control("timeoutprogram", "5")
errlog = open(os.path.join(base, "stderr"), "w+")
a, lsp = sh.run_spawner(inst, [inst.bin("qmail-lspawn"), "./Maildir/"], errlog, 20)


def req(slot, rcpts, qid=QID, off=OFF, ln=LEN, sender="s@example.org", first=0, raw=None):
    fields = [str(slot), qid, str(off), str(ln), "0", sender]
    for i, r in enumerate(rcpts):
        fields += [str(first + i), r]
    return raw if raw is not None else b"".join(x.encode() + b"\0" for x in fields)


def send(data, fd=msgfd):
    if fd is None:
        a.send(data)
    else:
        socket.send_fds(a, [data], [fd])


def recv():
    return sh.spawner_reply(a)


def deliver(slot, rcpt, **kw):
    send(req(slot, [rcpt], **kw))
    return recv()


# --- deliveries ------------------------------------------------------------
r = deliver(1, "bob@example.com")
t.check("bob: K", r and r[0] == "1" and r[1].startswith("K"), r)
files = inst.maildir(os.path.join(bob, "Maildir"))
t.check("bob: one file, named after qid and index", len(files) == 1 and
        files[0].startswith("1795420800.Q1795420800_000001_4242R0."), files)
if files:
    path = os.path.join(bob, "Maildir", "new", files[0])
    st = os.stat(path)
    t.check("bob: the file belongs to bob's uid", st.st_uid == uid and st.st_gid == uid, (st.st_uid, st.st_gid))
    t.check("bob: exactly the message window, after Return-Path and Delivered-To",
            open(path, "rb").read() == b"Return-Path: <s@example.org>\nDelivered-To: bob@example.com\n" + MSG)
r = deliver(2, "Bob@Example.COM")
t.check("bob: the repeat is suppressed", r and r[1].startswith("K") and "duplicate suppressed" in r[1], r)
t.check("bob: still one file", len(inst.maildir(os.path.join(bob, "Maildir"))) == 1)

r = deliver(3, "bob-env@example.com", first=5)
envout = os.path.join(bob, "envout")
t.check("bob-env: wildcard entry, extension from the rest", r and r[1].startswith("K") and
        os.path.exists(envout) and open(envout).read() == "bob env\n", (r, os.path.exists(envout) and open(envout).read()))
if IS_ROOT and os.path.exists(envout):
    t.check("bob-env: the program ran as bob", os.stat(envout).st_uid == uid)
else:
    t.skip("bob-env: the program ran as bob", "not root")

r = deliver(4, "list-y-z@example.com", first=1)
envout = os.path.join(lst, "envout")
t.check("list: longest prefix, pre prepended to ext", r and r[1].startswith("K") and
        os.path.exists(envout) and open(envout).read() == "x-y-z x-y-z\n", (r, os.path.exists(envout) and open(envout).read()))

r = deliver(5, "nosuchuser-at-all@example.com")
t.check("unknown user: D", r and r[0] == "5" and r[1].startswith("D"), r)
r = deliver(19, "x" * 300 + "@example.com")
t.check("a local part too long for any alias/.qmail- name: D, as the RCPT check says", r and r[1].startswith("D"), r)
postmaster = len(inst.maildir(os.path.join(alias, "Maildir")))
r = deliver(20, "PostMaster@example.com", first=20)
t.check("postmaster: delivered to the alias account (install's alias/.qmail-postmaster)", r and r[1].startswith("K") and
        len(inst.maildir(os.path.join(alias, "Maildir"))) == postmaster + 1, r)
r = deliver(21, "daemon@example.com")
t.check("daemon (a home it does not own): D", r and r[1].startswith("D"), r)
r = deliver(6, "bob-nothing@example.com")
t.check("unknown extension of a user: D", r and r[1].startswith("D") and "no mailbox" in r[1], r)

# --- programs that never exit -----------------------------------------------
def hangers():
    n = 0
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and open("/proc/%s/cmdline" % pid, "rb").read() == HANG.replace(" ", "\0").encode() + b"\0":
                n += 1
        except OSError:
            pass
    return n


t0 = time.time()
for i, ext in enumerate(("hang", "fork", "quiet")):
    send(req(30 + i, ["bob-%s@example.com" % ext], first=30 + i))
got = {}
for i in range(3):
    r = recv()
    if r:
        got[r[0]] = r[1]
t.check("timeoutprogram: each hanging program ends in a temporary failure that says so",
        sorted(got) == ["30", "31", "32"] and all(v.startswith("Z") and "timed out after 5 seconds" in v
                                                  for v in got.values()), got)
t.check("timeoutprogram: within the limit, not the program's 1717 s", time.time() - t0 < 20, time.time() - t0)
t.check("timeoutprogram: the program's whole process group is killed", wait_for(lambda: hangers() == 0, 5), hangers())
r = deliver(33, "bob-env@example.com", first=33)
t.check("timeoutprogram: deliveries go on afterwards", r and r[1].startswith("K"), r)

# --- the catch-all -------------------------------------------------------------
ASSIGN2 = ASSIGN[:-1] + ["+:alias:%d:%d:%s:-::" % (alias_uid, alias_uid, alias), "."]
p = assign(ASSIGN2)
with open(os.path.join(alias, ".qmail-default"), "w") as f:
    f.write("./Maildir/\n")
os.chown(os.path.join(alias, ".qmail-default"), alias_uid, alias_uid)
os.chmod(os.path.join(alias, ".qmail-default"), 0o644)
before = len(inst.maildir(os.path.join(alias, "Maildir")))
r = deliver(7, "stranger@example.com")
t.check("catch-all: unknown address goes to alias", r and r[1].startswith("K") and
        len(inst.maildir(os.path.join(alias, "Maildir"))) == before + 1, r)
r = deliver(8, "root@example.com", first=1)
files = inst.maildir(os.path.join(alias, "Maildir"))
t.check("root: never delivered as root, goes to the catch-all", r and r[1].startswith("K") and len(files) == before + 2, r)
if IS_ROOT:
    t.check("root: the files belong to alias",
            all(os.stat(os.path.join(alias, "Maildir", "new", f)).st_uid == alias_uid for f in files))

# --- qmail-newu refusals --------------------------------------------------------
cdb_before = open(inst.path("users", "cdb"), "rb").read()
for lines, what in ((["=joe:joe:0:0:/root:::", "."], "uid 0"),
                    (["=joe:joe:1:1:/h::", "."], "six fields"),
                    (["=joe:joe:1:1:/h:::"], "no final '.'"),
                    (["=joe:joe:1:1:/h:::", "=JOE:joe:1:1:/h:::", "."], "duplicate")):
    p = assign(lines)
    t.check("qmail-newu: refuses %s, exit 111, message" % what, p.returncode == 111 and b"line" in p.stderr, p.stderr)
t.check("qmail-newu: old users/cdb kept", open(inst.path("users", "cdb"), "rb").read() == cdb_before)
t.check("qmail-newu: no temporary file left", not os.path.exists(inst.path("users", "cdb.tmp")))

# --- request validation -------------------------------------------------------
send(req(5000, ["bob@example.com"]))           # slot out of range: nobody to answer
send(req(0, ["bob@example.com"], raw=b"12x\0" + QID.encode() + b"\0"))
send(b"9\0" + QID.encode() + b"\0no-final-nul")
r = deliver(9, "bob@example.com", qid="12.34")
t.check("bad slots and unterminated requests are dropped; then bad qid: Z", r and r[0] == "9" and r[1].startswith("Z"), r)
r = deliver(10, "bob@example.com", qid="1.2.3/../x")
t.check("qid with a path: Z", r and r[0] == "10" and r[1].startswith("Z"), r)
send(req(11, ["bob@example.com", "bob-env@example.com"]))
r = recv()
t.check("two recipients: Z for each", r and r[0] == "11" and len(r) == 3 and r[1].startswith("Z") and r[2].startswith("Z"), r)
send(req(12, ["bob@example.com"]), fd=None)
r = recv()
t.check("no descriptor: Z", r and r[0] == "12" and r[1].startswith("Z"), r)
r = deliver(13, "bob@example.com", ln=LEN + 1000)
t.check("window beyond the file: Z", r and r[1].startswith("Z"), r)
r = deliver(14, "bob@example.com", off=-1 & 0xffffffffffffffff)
t.check("huge offset: Z", r and r[1].startswith("Z"), r)
r = deliver(15, "bob-at-nowhere")
t.check("recipient without '@': Z", r and r[1].startswith("Z"), r)
r = deliver(16, "bob@example.com", sender="a\nb@example.org")
t.check("sender with a newline: Z", r and r[1].startswith("Z"), r)
send(req(17, ["bob@example.com"])[:-1] + b"\0x\0")
r = recv()
t.check("stray field: Z", r and r[0] == "17" and r[1].startswith("Z"), r)
rd, wr = os.pipe()
send(req(18, ["bob@example.com"]), fd=rd)
r = recv()
t.check("a pipe instead of a file: Z", r and r[1].startswith("Z"), r)
os.close(rd); os.close(wr)
t.check("still running after all that", lsp.poll() is None)

# --- many at once, then EOF --------------------------------------------------
n0 = len(inst.maildir(os.path.join(bob, "Maildir")))
t0 = time.time()
for i in range(20):
    send(req(100 + i, ["bob-slow@example.com"], first=100 + i))
got = {}
for i in range(20):
    r = recv()
    if r:
        got[r[0]] = r[1]
t.check("20 concurrent deliveries answered", sorted(got) == sorted(str(100 + i) for i in range(20)) and
        all(v.startswith("K") for v in got.values()), got)
# Each program counts the programs running beside it before it ends.
peaks = [int(x) for x in open(os.path.join(bob, "peaks")).read().split()] if os.path.exists(os.path.join(bob, "peaks")) else []
t.check("they ran in parallel (up to %d at once)" % max(peaks or [0]), len(peaks) == 20 and max(peaks) > 1, peaks)
t.check("20 new files", len(inst.maildir(os.path.join(bob, "Maildir"))) == n0 + 20)

send(req(200, ["bob-slow@example.com"], first=200))
a.shutdown(socket.SHUT_WR)
r = recv()
t.check("EOF: the running delivery still answers", r and r[0] == "200" and r[1].startswith("K"), r)
try:
    rc = lsp.wait(20)
except subprocess.TimeoutExpired:
    rc = None
t.check("EOF: exits 0 once its children are done", rc == 0, rc)
errlog.seek(0)
log = errlog.read()
t.check("bad requests are logged", "event=bad_request" in log, log)
a.close()
t.done()
