#!/usr/bin/env python3
"""qmail-smtpd at the door, under a real tcpserver, against a real DNS
server (dnsmasq on loopback, zones under .test) and the real
qmail-smtpd-state: DNS blocklists (554 with the list's TXT), weights and
threshold, an answer filter, a log-only zone, an allowlist, a list that
never answers (the session goes on after control/dnsbltimeout);
greylisting (451, then 250 after the delay, expiry, auto-allowlist, never
for RELAYCLIENT or authenticated clients, nor for a sender whose domain
passes SPF and is in control/greylistskip, or any with "*"); the AUTH lockout across
connections (454) and its reset on success, with the log line the
documented fail2ban regex reads; the state across a restart of the
service; and the service down: everything let through, logged."""
import base64, ipaddress, os, re, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from smtpd_harness import Server, Client
from remote_peers import Dns

t = T()
inst = Instance(t, control={"rcpthosts": "relay.test", "errordelay": "10"})
FAIL2BAN = r"qmail-smtpd event=auth ip=(?P<host>\S+) (?:.* )?result=(?:failed|locked)$"

# A UDP socket nobody reads: a list server that never answers.
hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
hole.bind(("127.0.0.1", 0))
t.cleanups.append(hole.close)

TXT2 = "Blocked by bl.test: see http://bl.test/q?127.0.0.2"
dns = Dns(t, [
    "--host-record=2.0.0.127.bl.test,127.0.0.2",
    "--txt-record=2.0.0.127.bl.test,\"%s\"" % TXT2,
    "--host-record=1.0.0.127.bl.test,127.0.0.3",
    "--host-record=%s,127.0.0.2" % ipaddress.ip_address("2001:db8::1").reverse_pointer.replace(
        ".ip6.arpa", ".bl.test"),
    "--host-record=5.0.0.127.bl.test,127.0.0.100",       # outside the filter
    "--host-record=3.0.0.127.w1.test,127.0.0.2",
    "--host-record=4.0.0.127.w1.test,127.0.0.2",
    "--host-record=4.0.0.127.w2.test,127.0.0.2",
    "--host-record=6.0.0.127.log.test,127.0.0.2",
    "--host-record=7.0.0.127.wl.test,127.0.0.2",
    "--server=/slow.test/127.0.0.1#%d" % hole.getsockname()[1],
    # SPF for the greylisting skip: 127.0.5.0/24 may send for these.
    "--txt-record=spfok.test,v=spf1 ip4:127.0.5.0/24 -all",
    "--txt-record=mail.spfsub.test,v=spf1 ip4:127.0.5.0/24 -all",
    "--txt-record=spfother.test,v=spf1 ip4:127.0.5.0/24 -all",
    "--txt-record=spffail.test,v=spf1 -all",
])
if not t.check("dnsmasq answers", dns.ok):
    t.done()
inst.control("dnsserver", "127.0.0.1:%d" % dns.port)
inst.control("dnsbltimeout", "1")

srv = Server(inst)
relay = Server(inst, relay=True, name="relay")


def connect(src, server=None, greet=True):
    """A client from loopback address src (127.0.0.0/8 is all local)."""
    c = Client.__new__(Client)
    c.s = socket.create_connection(("127.0.0.1", (server or srv).port), 10,
                                   source_address=(src, 0))
    c.s.settimeout(10)
    c.buf = b""
    c.greeting = c.reply() if greet else None
    return c


def log():
    return srv.logtext()


# --- DNS lists -------------------------------------------------------------
inst.control("dnsbl", ["bl.test=127.0.0.2..11*3", "w1.test", "w2.test", "log.test*5 log",
                       "wl.test*-5", "# a comment", "bad=zone=x"])
inst.control("dnsblthreshold", "2")

c = connect("127.0.0.2")
code, text = c.greeting
t.check("listed client: 554 5.7.1 greeting with the list's TXT",
        code == 554 and "5.7.1" in text and TXT2 in text and "bl.test" in text, c.greeting)
t.check("listed client: other commands get 503", c.cmd("EHLO x.test")[0] == 503)
t.check("listed client: QUIT gets 221", c.cmd("QUIT")[0] == 221)
c.close()
t.check("listing logged", re.search(r"event=dnsbl ip=127\.0\.0\.2 zone=bl\.test result=listed", log()), log())
t.check("refusal logged with the score",
        re.search(r"event=dnsbl ip=127\.0\.0\.2 score=3 result=refused", log()), log())
t.check("a bad control/dnsbl line is logged", "control/dnsbl: bad line" in log(), log())

c = connect("127.0.0.3")
t.check("one weight-1 list under threshold 2: 220", c.greeting[0] == 220, c.greeting)
c.close()
c = connect("127.0.0.4")
t.check("two weight-1 lists reach threshold 2: 554 (no TXT: default text)",
        c.greeting[0] == 554 and "blocked using w" in c.greeting[1], c.greeting)
c.close()
c = connect("127.0.0.5")
t.check("an answer outside the zone's filter does not list: 220", c.greeting[0] == 220, c.greeting)
c.close()
c = connect("127.0.0.6")
t.check("log-only zone: 220", c.greeting[0] == 220, c.greeting)
c.close()
t.check("log-only zone: logged", re.search(r"ip=127\.0\.0\.6 zone=log\.test result=logged", log()), log())
c = connect("127.0.0.7")
t.check("allowlisted client: 220", c.greeting[0] == 220, c.greeting)
c.close()
t.check("allowlisted client logged", re.search(r"ip=127\.0\.0\.7 score=-5 result=allowlisted", log()), log())
c = connect("127.0.0.1")
t.check("127.0.0.1 is listed too: 554", c.greeting[0] == 554, c.greeting)
c.close()
c = connect("127.0.0.1", server=relay)
t.check("but as a RELAYCLIENT it is never looked up: 220", c.greeting[0] == 220, c.greeting)
c.close()



def direct(ip, dialogue=b"QUIT\r\n"):
    """qmail-smtpd run directly, as the smtpd uid, for client ip: its reply lines."""
    user = {}
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("smtpd")
        user = dict(user=uid, group=gid, extra_groups=[])
    r = subprocess.run([inst.bin("qmail-smtpd")], input=dialogue, stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, env={"TCPREMOTEIP": ip}, timeout=30, **user)
    return r.stdout.decode("utf-8", "replace").split("\r\n")


def greeting_for(ip):
    return direct(ip)[0]


def rcpt_direct(ip, sender, to):
    """The RCPT reply's code for a HELO, MAIL, RCPT dialogue."""
    lines = direct(ip, ("HELO c.test\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nQUIT\r\n" % (sender, to)).encode())
    return int(lines[3][:3]) if len(lines) > 3 and lines[3][:3].isdigit() else lines


g = greeting_for("2001:db8::1")
t.check("an IPv6 client is looked up by its nibbles: 554", g.startswith("554 5.7.1"), g)
g = greeting_for("2001:db8::2")
t.check("another IPv6 client: 220", g.startswith("220 "), g)
g = greeting_for("::ffff:127.0.0.2")
t.check("an IPv4-mapped client is looked up as IPv4: 554", g.startswith("554 5.7.1"), g)

inst.control("dnsbl", ["slow.test*9", "bl.test*3"])
t0 = time.time()
c = connect("127.0.0.2")
dt = time.time() - t0
t.check("a list that never answers: the others still decide (554)", c.greeting[0] == 554, c.greeting)
c.close()
t0 = time.time()
c = connect("127.0.0.9")
dt = time.time() - t0
t.check("a list that never answers: the session goes on after the bound (220)",
        c.greeting[0] == 220 and 0.9 <= dt < 5, (c.greeting, dt))
c.close()
t.check("the silent list is logged", re.search(r"ip=127\.0\.0\.9 zone=slow\.test result=timeout", log()), log())
inst.control("dnsbl", ["wl.test*-5"])

# --- the state service -----------------------------------------------------
slog = open(inst.path("state.log"), "w+")
state = {}


def start_state():
    user = {}
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("smtpdstate")
        user = dict(user=uid, group=gid, extra_groups=[])
    sock = inst.path("smtpdstate", "socket")
    if os.path.exists(sock):
        os.unlink(sock)
    state["p"] = inst.spawn([inst.bin("qmail-smtpd-state")], stdout=slog, stderr=slog, **user)
    return wait_for(lambda: os.path.exists(sock), 10)


def stop_state():
    p = state["p"]
    p.send_signal(signal.SIGTERM)
    p.wait(10)
    return p.returncode


t.check("qmail-smtpd-state starts", start_state())
if IS_ROOT and inst.multi:
    st = os.stat(inst.path("smtpdstate"))
    t.check("smtpdstate/ is the state uid's, the SMTP group's, 0750",
            st.st_uid == inst.uid("smtpdstate")[0] and st.st_gid == inst.uid("smtpd")[1]
            and st.st_mode & 0o777 == 0o750, (st.st_uid, st.st_gid, oct(st.st_mode)))


def rcpt(src, sender, to, server=None):
    c = connect(src, server)
    c.cmd("EHLO client.test")
    c.cmd("MAIL FROM:<%s>" % sender)
    r = c.cmd("RCPT TO:<%s>" % to)
    c.cmd("QUIT")
    c.close()
    return r


# --- greylisting -------------------------------------------------------------
code, _ = rcpt("127.0.0.1", "a@sender.test", "x@relay.test")
t.check("greylisting off by default: 250", code == 250, code)
inst.control("greylist", "3")     # seconds: room for a loaded machine
inst.control("greylistexpiry", "3")
inst.control("greylistclients", "0")
code, text = rcpt("127.0.0.1", "a@sender.test", "y@relay.test")
t.check("new triplet: 451 4.7.1 greylisted", code == 451 and "4.7.1" in text and "greylist" in text, (code, text))
code, text = rcpt("127.0.0.12", "A@Sender.test", "Y@relay.test")
t.check("same /24, same addresses (case aside), before the delay: still 451", code == 451, (code, text))
code, text = rcpt("127.0.0.1", "a@sender.test", "z@relay.test")
t.check("another recipient is another triplet: 451", code == 451, (code, text))
code = rcpt_direct("2001:db8:1:2::5", "a@sender.test", "y@relay.test")
t.check("an IPv6 client: 451", code == 451, code)
time.sleep(3.2)
code = rcpt_direct("2001:db8:1:2:ffff::9", "a@sender.test", "y@relay.test")
t.check("IPv6: the same /64 after the delay: 250", code == 250, code)
code = rcpt_direct("2001:db8:1:3::5", "a@sender.test", "y@relay.test")
t.check("IPv6: another /64: 451", code == 451, code)
code, text = rcpt("127.0.0.1", "a@sender.test", "y@relay.test")
t.check("after the delay: 250", code == 250, (code, text))
code, text = rcpt("127.0.0.1", "a@sender.test", "y@relay.test")
t.check("passed triplet: 250 again", code == 250, (code, text))
code, text = rcpt("127.0.1.1", "a@sender.test", "y@relay.test")
t.check("another /24: 451", code == 451, (code, text))
code, _ = rcpt("127.0.0.7", "a@sender.test", "w@relay.test")
t.check("allowlisted (DNSWL) client: never greylisted", code == 250, code)
code, _ = rcpt("127.0.0.1", "b@sender.test", "w@relay.test", server=relay)
t.check("RELAYCLIENT: never greylisted", code == 250, code)
t.check("greylisting logged", re.search(r"event=greylist ip=127\.0\.0\.1 from=a@sender\.test to=y@relay\.test result=\"WAIT", log()), log())

# The state survives a restart of the service.
t.check("qmail-smtpd-state stops on SIGTERM with 0", stop_state() == 0)
t.check("its state file is written, 0600", os.stat(inst.path("smtpdstate", "state")).st_mode & 0o777 == 0o600)
t.check("qmail-smtpd-state restarts", start_state())
code, text = rcpt("127.0.0.1", "a@sender.test", "y@relay.test")
t.check("after a restart the passed triplet still passes", code == 250, (code, text))
code, text = rcpt("127.0.0.1", "a@sender.test", "z@relay.test")
t.check("after a restart the waiting triplet has waited: 250", code == 250, (code, text))
time.sleep(3.2)
code, text = rcpt("127.0.0.1", "a@sender.test", "y@relay.test")
t.check("after the expiry unused: greylisted again", code == 451, (code, text))

# Auto-allowlist: after 2 passed triplets the /24 passes at once.
inst.control("greylistclients", "2")
inst.control("greylistexpiry", "60")
for to in ("p1@relay.test", "p2@relay.test"):
    rcpt("127.0.2.1", "c@sender.test", to)
time.sleep(3.2)
for to in ("p1@relay.test", "p2@relay.test"):
    rcpt("127.0.2.1", "c@sender.test", to)
code, text = rcpt("127.0.2.5", "new@other.test", "p3@relay.test")
t.check("a network with 2 passes is allowlisted: a new triplet gets 250", code == 250, (code, text))
code, text = rcpt("127.0.3.5", "new@other.test", "p3@relay.test")
t.check("another network is not", code == 451, (code, text))

# SPF-pass senders of the domains in control/greylistskip skip it.
code, _ = rcpt("127.0.5.1", "a@spfok.test", "s1@relay.test")
t.check("SPF pass without control/greylistskip: greylisted (451)", code == 451, code)
inst.control("greylistskip", ["spfok.test", ".spfsub.test", "spffail.test"])
code, _ = rcpt("127.0.5.1", "b@spfok.test", "s2@relay.test")
t.check("SPF pass, domain in greylistskip: 250 at once", code == 250, code)
t.check("... logged result=spfskip",
        re.search(r"event=greylist ip=127\.0\.5\.1 from=b@spfok\.test to=s2@relay\.test result=spfskip", log()),
        log()[-2000:])
code, _ = rcpt("127.0.5.1", "c@mail.spfsub.test", "s3@relay.test")
t.check("SPF pass, a subdomain of a .domain line: 250", code == 250, code)
code, _ = rcpt("127.0.5.1", "d@spfother.test", "s4@relay.test")
t.check("SPF pass, a domain not listed: 451", code == 451, code)
code, _ = rcpt("127.0.5.1", "e@spffail.test", "s5@relay.test")
t.check("listed, but SPF fails: 451", code == 451, code)
code, _ = rcpt("127.0.6.1", "f@spfok.test", "s6@relay.test")
t.check("listed, from a host SPF does not allow (fail): 451", code == 451, code)
inst.control("greylistskip", ["*"])
code, _ = rcpt("127.0.5.1", "g@spfother.test", "s7@relay.test")
t.check("'*': any SPF-pass domain skips greylisting: 250", code == 250, code)
code, _ = rcpt("127.0.6.1", "h@spfother.test", "s8@relay.test")
t.check("'*': still not an SPF fail: 451", code == 451, code)
os.unlink(inst.path("control", "greylistskip"))

# --- AUTH ---------------------------------------------------------------------
PW = "right-pass"
r = subprocess.run([inst.bin("qmail-passwd"), "add", "joe"], input=(PW + "\n").encode(),
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
t.check("qmail-passwd add", r.returncode == 0, r.stderr)
inst.control("authloopback", "1")
inst.control("authmaxfail", "2")
inst.control("authfailwindow", "60")


def auth(src, pw, n=1):
    """n AUTH PLAIN attempts on one connection: their reply codes."""
    c = connect(src)
    c.cmd("EHLO client.test")
    codes = []
    for _ in range(n):
        code, text = c.cmd("AUTH PLAIN " + base64.b64encode(("\0joe\0" + pw).encode()).decode())
        codes.append(code)
        if code != 535:
            break
    if codes[-1] == 235:
        code, text = c.cmd("MAIL FROM:<joe@sender.test>")
        codes.append(c.cmd("RCPT TO:<u@greylisted.test>")[0])
    c.close()
    return codes


t.check("a failure on a first connection", auth("127.0.0.20", "bad") == [535])
t.check("the 2nd on a second connection", auth("127.0.0.20", "bad") == [535])
codes = auth("127.0.0.20", PW)
t.check("after 2 failures in the window, even the right password: 454", codes == [454], codes)
t.check("the lockout is per address: another one authenticates, and is not greylisted",
        auth("127.0.0.21", PW) == [235, 250])
m = [x for x in log().splitlines() if re.search(FAIL2BAN, x)]
t.check("the fail2ban regex finds the failures and the lockout of 127.0.0.20",
        len(m) == 3 and all(re.search(FAIL2BAN, x).group("host") == "127.0.0.20" for x in m)
        and "result=locked" in m[-1], m)
t.check("the lockout survives a restart of the service", stop_state() == 0 and start_state()
        and auth("127.0.0.20", PW) == [454])
auth("127.0.0.22", "bad")
t.check("a success resets the count", auth("127.0.0.22", PW)[0] == 235)
t.check("so one more failure does not lock", auth("127.0.0.22", "bad") == [535]
        and auth("127.0.0.22", PW)[0] == 235)

# --- the protocol: bad requests, and a flood ----------------------------------
def ask_raw(reqs, sock=None):
    s = sock or socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if not sock:
        s.settimeout(5)
        s.connect(inst.path("smtpdstate", "socket"))
    out = []
    for i in range(0, len(reqs), 200):          # pipelined, 200 at a time
        for r in reqs[i:i + 200]:
            s.send(r)
        out += [s.recv(100).decode() for _ in reqs[i:i + 200]]
    if not sock:
        s.close()
    return out


bad = [b"G 1 2", b"X 1", b"GG 1 2 3 4 n s r", b"G 1 2 3 4 n s r extra too", b"S a  b",
       b"S a\x01b", b"G x 2 3 4 n s r", b"G 99999999999 2 3 4 n s r", b"S " + b"a" * 400,
       b"A 1 2 " + b"x" * 1100]
got = ask_raw(bad)
t.check("malformed requests: ERR each, the service answers on",
        all(g.startswith("ERR") for g in got) and ask_raw([b"A 60 2 127.0.0.20"]) == ["LOCK 2"], got)
N = 40000
t0 = time.time()
replies = ask_raw([b"G 1000 2000 3000 0 10.0.0.0/24 f%d@flood.test r@relay.test" % i for i in range(N)])
t.check("a flood of %d new triplets is answered WAIT" % N, replies.count("WAIT 1000") == N,
        (len(replies), replies[:3], time.time() - t0))
t.check("after the flood the lockout entry is still there (waiting triplets go first)",
        ask_raw([b"A 60 2 127.0.0.20"]) == ["LOCK 2"])
t.check("the service writes its table on SIGTERM", stop_state() == 0)
t.check("evictions are logged", re.search(r"qmail-smtpd-state event=evict entries=\d+ evicted=\d+",
                                          open(slog.name).read()), open(slog.name).read()[-500:])
size = os.path.getsize(inst.path("smtpdstate", "state"))
t.check("the state file stays bounded (65536 entries)", size <= 32 + 65536 * 40, size)
t.check("qmail-smtpd-state starts again from its file", start_state() and wait_for(
    lambda: open(slog.name).read().rstrip().endswith("event=start file=loaded"), 5))

# --- the service down: fail open --------------------------------------------
stop_state()
code, text = rcpt("127.0.4.1", "d@sender.test", "q@relay.test")
t.check("state service down: no greylisting (250)", code == 250, (code, text))
t.check("state service down: AUTH of a locked address goes on", auth("127.0.0.20", PW)[0] == 235)
t.check("state service down: logged", re.search(r"event=state ip=127\.0\.4\.1 result=unavailable", log()), log())

# --- the classic pipeline: rblsmtpd (ucspi-tcp) before qmail-smtpd ----------
# rblsmtpd asks $DNSCACHEIP on port 53: a dnsmasq of its own on a loopback
# address nothing else uses.
import random
rbl = None
for _ in range(5):
    addr = "127.0.%d.%d" % (random.randint(54, 250), random.randint(2, 250))
    p = subprocess.Popen(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=53",
                          "--listen-address=" + addr, "--bind-interfaces", "--local=/test/",
                          "--cache-size=0", "--log-facility=/dev/null", "--pid-file=",
                          "--txt-record=2.0.0.127.rbl.test,listed by rbl.test"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    if p.poll() is None:
        rbl = p
        t.cleanups.append(p.terminate)
        break
if t.check("dnsmasq on port 53 of a loopback address", rbl is not None):
    drop = []
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("smtpd")
        drop = ["s6-applyuidgid", "-u", str(uid), "-g", str(gid), "-G", ""]
    pipe = Server(inst, name="rbl", env={"DNSCACHEIP": addr},
                  program=drop + ["rblsmtpd", "-b", "-r", "rbl.test", inst.bin("qmail-smtpd")])
    code, text = rcpt("127.0.0.2", "a@sender.test", "x@relay.test", server=pipe)
    t.check("rblsmtpd in the chain: a listed client gets its 553", code == 553 and "rbl.test" in text, (code, text))
    c = connect("127.0.0.3", server=pipe)
    t.check("rblsmtpd in the chain: others reach qmail-smtpd", c.greeting == (220, "mail.example.test ESMTP"),
            c.greeting)
    c.close()

t.done()
