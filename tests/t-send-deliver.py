"""qmail-start + qmail-send with the real spawners: 1,000 messages delivered
exactly once, RFC 3464 bounces, double and triple bounces, queue lifetime,
signals (HUP, ALRM, TERM), the send mutex, and the uids as root."""
import email, email.policy, os, random, re, signal, subprocess, sys, time
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, wait_for, IS_ROOT
import send_harness as sh

t = T()
inst = sh.setup(t)
D = sh.DOMAIN
log = inst.path("send.log")
open(log, "w").close()


def log_has(pattern, timeout=10):
    return wait_for(lambda: re.search(pattern, sh.read_log(log), re.M), timeout)


def tokens(name):
    out = {}
    for fn, body in sh.messages(inst, name):
        for tok in re.findall(rb"TOKEN-(\d+)-", body):
            out.setdefault(int(tok), []).append(fn)
    return out


def parse(body):
    return email.message_from_bytes(body, policy=email.policy.default)


# ---- 1,000 messages, half queued before qmail-send starts ----------------
rng = random.Random(7)
expect = {u: set() for u in ("alice", "bob", "carol")}
plan = []
for n in range(1000):
    who = rng.sample(["alice", "bob", "carol"], rng.randint(1, 3))
    # carol is sometimes written without a domain: control/envnoathost (me).
    rcpts = [w if (w == "carol" and n % 2) else "%s@%s" % (w, D.upper() if n % 5 == 0 else D)
             for w in who]
    plan.append((n, who, rcpts))
    for w in who:
        expect[w].add(n)

bad = 0
t0 = time.time()
for n, who, rcpts in plan[:500]:
    bad += inst.inject("sender@remote.test", rcpts,
                       "Subject: m%d\n\nTOKEN-%d- body\n" % (n, n)) != 0
p = sh.start(inst, log)
for n, who, rcpts in plan[500:]:
    bad += inst.inject("sender@remote.test", rcpts,
                       "Subject: m%d\n\nTOKEN-%d- body\n" % (n, n)) != 0
t.check("1000 messages queued", bad == 0, bad)
ok = wait_for(lambda: sh.queue_empty(inst), 90, 0.1)
t.check("queue drained", ok, len(inst.queue_files()))
print("delivery of 1000 messages took %.1fs" % (time.time() - t0), flush=True)
for u in expect:
    got = tokens(u)
    dups = [k for k, v in got.items() if len(v) != 1]
    t.check("%s got every message meant for it" % u, set(got) == expect[u],
            (len(set(got) - expect[u]), len(expect[u] - set(got))))
    t.check("%s got none twice" % u, not dups, dups[:5])
t.check("no bounce for the good messages", not os.listdir(inst.path("queue", "bounce")))

if IS_ROOT:
    t.check("qmail-send runs as the send uid", sh.status_uid(p.pid) == inst.uid("send")[0],
            sh.status_uid(p.pid))
    kids = {sh.comm(c): c for c in sh.children(p.pid)}
    t.check("qmail-lspawn runs as root", "qmail-lspawn" in kids and sh.status_uid(kids["qmail-lspawn"]) == 0, kids)
    t.check("qmail-rspawn runs as the remote uid", "qmail-rspawn" in kids and
            sh.status_uid(kids["qmail-rspawn"]) == inst.uid("remote")[0], kids)
else:
    t.skip("uids", "not root")
    t.check("single-uid mode is logged", "event=single-uid" in sh.read_log(log))

# ---- a second qmail-send cannot run -----------------------------------------
f = open(log, "ab")
r = subprocess.run([inst.bin("qmail-start"), "%d:%d" % inst.uid("send"), "%d:%d" % inst.uid("remote")],
                   stderr=f, stdout=f, stdin=subprocess.DEVNULL, timeout=20)
f.close()
t.check("a second qmail-send exits 111", r.returncode == 111, r.returncode)
t.check("and says why", log_has(r"another qmail-send is running"))

# ---- permanent failure: an RFC 3464 report to the sender --------------------
before = len(sh.messages(inst, "alice"))
inst.inject("alice@%s" % D, ["nobox@%s" % D, "bob@%s" % D],
            "Subject: will fail\nMessage-ID: <fail1@x>\n\nTOKEN-5000- body\n")
ok = wait_for(lambda: len(sh.messages(inst, "alice")) > before and sh.queue_empty(inst), 20)
t.check("a report reaches the sender", ok)
t.check("the good recipient still got it", 5000 in tokens("bob"))
dsn = [parse(b) for _, b in sh.messages(inst, "alice") if b"will fail" in b]
t.check("exactly one report", len(dsn) == 1, len(dsn))
if dsn:
    m = dsn[0]
    t.check("report envelope sender is null", m["Return-Path"] == "<>", m["Return-Path"])
    t.check("report is from MAILER-DAEMON", str(m["From"]) == "MAILER-DAEMON@%s" % D, m["From"])
    t.check("multipart/report; report-type=delivery-status",
            m.get_content_type() == "multipart/report" and
            m.get_param("report-type") == "delivery-status")
    parts = list(m.iter_parts())
    t.check("three parts", len(parts) == 3, [x.get_content_type() for x in parts])
    if len(parts) == 3:
        t.check("part 1 is text/plain", parts[0].get_content_type() == "text/plain")
        t.check("part 2 is message/delivery-status",
                parts[1].get_content_type() == "message/delivery-status")
        ds = parts[1].get_payload()
        fields = {}
        for blk in ds:
            for k, v in blk.items():
                fields.setdefault(k.lower(), []).append(str(v))
        t.check("Reporting-MTA", fields.get("reporting-mta") == ["dns; %s" % D], fields)
        t.check("Final-Recipient is the failed one only",
                fields.get("final-recipient") == ["rfc822; nobox@%s" % D], fields)
        t.check("Action failed", fields.get("action") == ["failed"], fields)
        t.check("Status 5.x.x", re.fullmatch(r"5\.\d+\.\d+", (fields.get("status") or [""])[0]), fields)
        t.check("Diagnostic-Code", "no mailbox" in (fields.get("diagnostic-code") or [""])[0], fields)
        t.check("part 3 is text/rfc822-headers",
                parts[2].get_content_type() == "text/rfc822-headers")
        third = parts[2].get_payload(decode=True) or b""
        t.check("part 3 holds the original headers, not the body",
                b"Message-ID: <fail1@x>" in third and b"TOKEN-5000" not in third, third[:300])

# ---- double bounce to postmaster, triple dropped ----------------------------
pm = len(sh.messages(inst, "postmaster"))
inst.inject("", ["nobox@%s" % D], "Subject: bounce that fails\n\nTOKEN-5001- body\n")
ok = wait_for(lambda: len(sh.messages(inst, "postmaster")) > pm and sh.queue_empty(inst), 20)
t.check("a failed bounce goes to postmaster", ok)
db = [parse(b) for _, b in sh.messages(inst, "postmaster") if b"bounce that fails" in b]
t.check("one double bounce", len(db) == 1, len(db))
if db:
    t.check("double bounce envelope sender #@[]", db[0]["Return-Path"] == "<#@[]>", db[0]["Return-Path"])
    t.check("double bounce To: postmaster", str(db[0]["To"]) == "postmaster@%s" % D, db[0]["To"])
# A sender qmail-queue now refuses (one queued before it checked addresses):
# the report goes to postmaster as a double bounce instead of failing forever.
pm = len(sh.messages(inst, "postmaster"))
mess = inst.path("queue", "mess")
qid = "%d.000001.%d" % (int(time.time()), 4000000 + os.getpid() % 1000000)
body = b"Received: crafted\nSubject: unreturnable\n\nTOKEN-5004- body\n"


def rec(kind, data):
    return kind + len(data).to_bytes(4, "big") + data


env = rec(b"F", b"a@b.test> NOTIFY=NEVER") + rec(b"R", b"P" + ("nobox@%s" % D).encode()) + rec(b"E", b"")
data = b"QMQ1" + len(body).to_bytes(8, "big") + (32 + len(body)).to_bytes(8, "big") + bytes(8) + b"DONE" + body + env
st = os.stat(mess)
tmpname = os.path.join(inst.path("queue", "tmp"), qid)
with open(tmpname, "wb") as f:
    f.write(data)
os.chown(tmpname, st.st_uid, st.st_gid)
os.chmod(tmpname, 0o660)
os.rename(tmpname, os.path.join(mess, qid))
with open(inst.path("queue", "lock", "trigger"), "w") as f:
    f.write(qid + "\n")
ok = wait_for(lambda: len(sh.messages(inst, "postmaster")) > pm and sh.queue_empty(inst), 20)
t.check("a report its sender cannot take goes to postmaster", ok, sh.read_log(log)[-1500:])
t.check("and is logged as redirected", log_has(r"event=bounce\.redirect qid=%s" % re.escape(qid), 5))
ub = [parse(b) for _, b in sh.messages(inst, "postmaster") if b"unreturnable" in b]
t.check("as a double bounce", len(ub) == 1 and ub[0]["Return-Path"] == "<#@[]>",
        [u["Return-Path"] for u in ub])

pm = len(sh.messages(inst, "postmaster"))
inst.inject("#@[]", ["nobox@%s" % D], "Subject: triple\n\nTOKEN-5002- body\n")
t.check("a failed double bounce is dropped and logged", log_has(r"event=bounce\.drop .*triple", 20))
ok = wait_for(lambda: sh.queue_empty(inst), 10)
time.sleep(0.5)
t.check("nothing more for postmaster", len(sh.messages(inst, "postmaster")) == pm and ok)
t.check("bounce/ is empty", not os.listdir(inst.path("queue", "bounce")))

# ---- SIGHUP rereads control files -------------------------------------------
inst.control("locals", [D, "extra.test"])
inst.control("concurrencylocal", "3")
p.send_signal(signal.SIGHUP)
t.check("HUP reloads", log_has(r"event=reload concurrencylocal=3"))
inst.inject("x@remote.test", ["bob@extra.test"], "Subject: extra\n\nTOKEN-5003- body\n")
t.check("a domain added to locals is local after HUP",
        wait_for(lambda: 5003 in tokens("bob"), 15))

# ---- a temporary failure waits; SIGALRM retries now -------------------------
inst.inject("x@remote.test", ["dave@%s" % D], "Subject: later\n\nTOKEN-5004- body\n")
t.check("no Maildir: deferred", log_has(r"rcpt=dave@\S+ channel=local result=deferred attempt=1"))
sh.make_maildir(inst, inst.path("home", "dave"))
time.sleep(1)
t.check("not retried before its time", 5004 not in tokens("dave"))
p.send_signal(signal.SIGALRM)
t.check("ALRM retries at once", wait_for(lambda: 5004 in tokens("dave"), 10))
t.check("second attempt logged", log_has(r"rcpt=dave@\S+ channel=local result=delivered attempt=2"))

# ---- queuelifetime: a temporary failure past it is permanent ----------------
inst.control("queuelifetime", "0")
p.send_signal(signal.SIGHUP)
wait_for(lambda: sh.read_log(log).count("event=reload") >= 2, 5)
before = len(sh.messages(inst, "alice"))
inst.inject("alice@%s" % D, ["erin@%s" % D], "Subject: too old\n\nTOKEN-5005- body\n")
t.check("expired deferral becomes a failure", log_has(r"rcpt=erin@\S+ channel=local result=expired"))
ok = wait_for(lambda: len(sh.messages(inst, "alice")) > before and sh.queue_empty(inst), 20)
t.check("and is reported", ok)
exp = [b for _, b in sh.messages(inst, "alice") if b"too old" in b]
exp = [re.sub(rb"\n ", b" ", b) for b in exp]   # unfolded
t.check("the report says why", exp and b"in the queue too long" in exp[0] and b"Status: 4.4.7" in exp[0], exp)
t.check("a local failure is no SMTP reply", exp and b"Diagnostic-Code: X-qmail; " in exp[0], exp)
inst.control("queuelifetime", "604800")

# ---- SIGTERM: a clean stop ---------------------------------------------------
kids = sh.children(p.pid)
p.send_signal(signal.SIGTERM)
try:
    rc = p.wait(20)
except subprocess.TimeoutExpired:
    rc = None
t.check("TERM: qmail-send exits 0", rc == 0, rc)
t.check("TERM: logged", "event=stop" in sh.read_log(log))
t.check("the spawners follow", wait_for(lambda: not any(os.path.exists("/proc/%d" % k) and
                                                        sh.comm(k) for k in kids), 10), kids)
# Queued while stopped, delivered by the next start (the startup scan).
inst.inject("x@remote.test", ["carol@%s" % D], "Subject: offline\n\nTOKEN-5006- body\n")
p = sh.start(inst, log)
t.check("a message queued while stopped is delivered after start",
        wait_for(lambda: 5006 in tokens("carol"), 15))
t.done()
