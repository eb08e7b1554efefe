#!/usr/bin/env python3
"""Inbound TLS: qmail-tlsd + qmail-smtpd under tcpserver against real
clients (Python ssl and smtplib, openssl s_client, swaks): STARTTLS and
implicit TLS, the STARTTLS injection bug (CVE-2011-0411), the session
reset after STARTTLS, the Received: line, versions and suites refused,
RSA and EC keys, and the key out of the SMTP process's reach."""
import os, re, smtplib, socket, ssl, stat, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance, IS_ROOT, wait_for
from smtpd_harness import Client, Queue
from tls_harness import CA, TlsServer, install_cert

t = T()
inst = Instance(t)
ca = CA(t)
rsa_cert, rsa_key = ca.issue("mail.example.test", "rsa")
ec_cert, ec_key = ca.issue("mail.example.test", "ec")
install_cert(inst, rsa_cert, rsa_key)
srv = TlsServer(inst)
smtps = TlsServer(inst, implicit=True, name="smtps")
q = Queue(inst)


def ctx(verify=True):
    c = ssl.create_default_context(cafile=ca.cert)
    if not verify:
        c.check_hostname = False
        c.verify_mode = ssl.CERT_NONE
    return c


class TlsClient(Client):
    def wrap(self, verify=True):
        self.s = ctx(verify).wrap_socket(self.s, server_hostname="mail.example.test")
        self.buf = b""


# --- STARTTLS with a raw client; the injected command --------------------
c = TlsClient(srv.port)
t.check("greeting", c.greeting[0] == 220, c.greeting)
code, text = c.cmd("EHLO client.test")
t.check("EHLO offers STARTTLS", code == 250 and "STARTTLS" in text.split("\n"), text)
# STARTTLS and a command in the same packet: the NOOP must never run.
c.send("STARTTLS\r\nNOOP injected\r\n")
code, text = c.reply()
t.check("220 to STARTTLS", code == 220, (code, text))
time.sleep(0.3)
t.check("nothing after the 220 in plaintext", c.buf == b"", c.buf)
c.wrap()
t.check("TLS 1.2", c.s.version() == "TLSv1.2", c.s.version())
t.check("AEAD ECDHE suite", re.match(r"ECDHE-RSA-(AES\d+-GCM|CHACHA20-POLY1305)", c.s.cipher()[0]),
        c.s.cipher())
code, text = c.cmd("MAIL FROM:<a@example.test>")
t.check("HELO forgotten after STARTTLS: MAIL refused", code == 503, (code, text))
code, text = c.cmd("EHLO client.test")
t.check("first reply in TLS is EHLO's (the NOOP never ran)",
        code == 250 and text.startswith("mail.example.test"), (code, text))
t.check("STARTTLS not offered twice", "STARTTLS" not in text, text)
code, text = c.cmd("STARTTLS")
t.check("second STARTTLS refused", code == 503, (code, text))
codes = c.transaction("a@example.test", ["b@example.test"])
c.send("DATA\r\n")
d = c.reply()
c.send("Subject: tls\r\n\r\nover TLS\r\n.\r\n")
end = c.reply()
t.check("a message over TLS", codes[1:] == [250, 250] and d[0] == 354 and end[0] == 250,
        (codes, d, end))
t.check("QUIT", c.cmd("QUIT")[0] == 221)
c.close()
new = q.new(expect=1)
msg = q.read(new[0])[0].decode() if new else ""
t.check("Received: says ESMTPS and the TLS version and cipher",
        re.search(r"with ESMTPS \(TLS1\.2 cipher ECDHE-RSA-[A-Z0-9-]+\);", msg), msg[:300])

# --- a plaintext session is unaffected ------------------------------------
c = Client(srv.port)
codes = c.transaction("a@example.test", ["b@example.test"])
t.check("plaintext through qmail-tlsd", codes == [250, 250, 250], codes)
c.close()

# --- smtplib, verifying the chain and the name ---------------------------
try:
    with smtplib.SMTP(timeout=20) as s:
        s.connect("127.0.0.1", srv.port)
        s._host = "mail.example.test"       # the name checked and sent as SNI
        s.ehlo("py.test")
        s.starttls(context=ctx())
        s.ehlo("py.test")
        refused = s.sendmail("a@example.test", ["c@example.test"], b"Subject: smtplib\r\n\r\nhi\r\n")
        ok = refused == {}
except Exception as e:
    ok = repr(e)
t.check("smtplib starttls with a verified chain, sendmail", ok is True, ok)
new = q.new(expect=1)
t.check("smtplib's message queued", len(new) == 1, new)

# --- openssl s_client -----------------------------------------------------
def s_client(port, extra, starttls=True, data=b"EHLO x\r\nQUIT\r\n"):
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", ca.cert,
            "-servername", "mail.example.test", "-verify_return_error", "-ign_eof"]
    if starttls:
        argv += ["-starttls", "smtp"]
    p = subprocess.run(argv + extra, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    return p.returncode, p.stdout.decode("utf-8", "replace")


rc, out = s_client(srv.port, [])
t.check("s_client -starttls smtp: verified TLS 1.2",
        rc == 0 and "Verify return code: 0" in out and "TLSv1.2" in out, out[-600:])
rc, out = s_client(srv.port, ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"])
t.check("TLS 1.1 refused", rc != 0 and "Cipher is (NONE)" in out, out[-400:])
rc, out = s_client(srv.port, ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"])
t.check("TLS 1.0 refused", rc != 0 and "Cipher is (NONE)" in out, out[-400:])
for suite in ("AES128-SHA256", "AES128-GCM-SHA256", "ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-AES128-SHA"):
    rc, out = s_client(srv.port, ["-tls1_2", "-cipher", suite])
    t.check("non-AEAD or non-ECDHE suite %s refused" % suite, rc != 0 and "Cipher is (NONE)" in out,
            out[-400:])
rc, out = s_client(srv.port, ["-tls1_2", "-cipher", "ECDHE-RSA-CHACHA20-POLY1305"])
t.check("ChaCha20-Poly1305 accepted", rc == 0 and "ECDHE-RSA-CHACHA20-POLY1305" in out, out[-400:])


def hs_message(out, name):
    """The hex of the first handshake message called name in s_client -msg output."""
    m = re.search(r"<<< [^\n]*Handshake [^\n]*, %s\n((?: +[0-9a-f ]+\n)+)" % name, out)
    return m and m.group(1).replace(" ", "").replace("\n", "")


# The engine is set up once, before the sessions' forks; its random
# generator must still be each session's own: the server random and the
# ECDHE public key differ from one session to the next.
seen = []
for _ in range(2):
    rc, out = s_client(srv.port, ["-msg"])
    seen.append((hs_message(out, "ServerHello"), hs_message(out, "ServerKeyExchange")))
t.check("two sessions: each its own server random and ECDHE key",
        all(all(x) for x in seen) and seen[0][0][12:76] != seen[1][0][12:76] and seen[0][1] != seen[1][1],
        seen)

# --- implicit TLS (port 465 style) ---------------------------------------
rc, out = s_client(smtps.port, [], starttls=False)
t.check("implicit TLS: s_client gets the greeting over TLS",
        rc == 0 and "220 mail.example.test" in out and "Verify return code: 0" in out, out[-600:])
s = ctx().wrap_socket(socket.create_connection(("127.0.0.1", smtps.port), 10),
                      server_hostname="mail.example.test")
c = Client.__new__(Client)
c.s, c.buf = s, b""
code, text = c.reply()
t.check("implicit TLS greeting", code == 220, (code, text))
code, text = c.cmd("EHLO client.test")
t.check("implicit TLS: no STARTTLS offered", code == 250 and "STARTTLS" not in text, text)
code, text = c.cmd("STARTTLS")
t.check("implicit TLS: STARTTLS refused", code == 503, (code, text))
c.close()

# --- swaks ----------------------------------------------------------------
def swaks(port, mode):
    p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(port), mode,
                        "--from", "a@example.test", "--to", "d@example.test",
                        "--helo", "swaks.test", "--timeout", "20"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


rc, out = swaks(srv.port, "--tls")
t.check("swaks --tls", rc == 0 and "TLS started" in out, out[-800:])
rc, out = swaks(smtps.port, "--tlsc")
t.check("swaks --tlsc (implicit)", rc == 0 and "TLS started" in out, out[-800:])
new = q.new(expect=2)
t.check("swaks' messages queued", len(new) == 2, new)
msgs = [q.read(n)[0].decode() for n in new]
t.check("Received: of the implicit session says ESMTPS",
        all("with ESMTPS (TLS1.2 cipher" in m for m in msgs), [m[:200] for m in msgs])

# --- an EC key ------------------------------------------------------------
install_cert(inst, ec_cert, ec_key)
c = TlsClient(srv.port)
c.cmd("EHLO client.test")
code, _ = c.cmd("STARTTLS")
c.wrap()
t.check("EC key: ECDHE-ECDSA suite", code == 220 and c.s.cipher()[0].startswith("ECDHE-ECDSA-"),
        c.s.cipher())
t.check("EC key: EHLO over TLS", c.cmd("EHLO client.test")[0] == 250)
c.close()
install_cert(inst, rsa_cert, rsa_key)

# --- a failed handshake ends the session --------------------------------
c = Client(srv.port)
c.cmd("EHLO client.test")
c.send("STARTTLS\r\n")
t.check("220 before garbage", c.reply()[0] == 220)
c.send(b"\x16\x03\x01\x00\x05hello" + b"not tls at all\r\n" * 4)
t.check("garbage instead of a handshake: the server closes", c.closed(10))
c.close()

# --- logs -----------------------------------------------------------------
log = srv.logtext()
t.check("qmail-tlsd logs the version and cipher",
        re.search(r"qmail-tlsd event=tls ip=127\.0\.0\.1 result=ok version=TLS1\.2 cipher=ECDHE-", log),
        log[-800:])
t.check("qmail-tlsd logs the failed handshake", "qmail-tlsd event=tls ip=127.0.0.1 result=failed" in log,
        log[-800:])
t.check("qmail-smtpd logs the TLS session", re.search(r"qmail-smtpd event=tls ip=127\.0\.0\.1 tls=\"TLS1\.2 ECDHE", log),
        log[-800:])

# --- the key is out of the SMTP process's reach ---------------------------
def key_needles(path):
    """Byte strings that betray a private key: 32 bytes from the middle of
    its secret (RSA's first prime, EC's scalar) as BearSSL's decoder keeps
    it, then 32 of its DER, then a line of its PEM."""
    text = subprocess.run(["openssl", "pkey", "-in", path, "-noout", "-text"], check=True,
                          stdout=subprocess.PIPE).stdout.decode()
    m = re.search(r"^(?:prime1|priv):\s*\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
    secret = bytes.fromhex(re.sub(r"[\s:]", "", m.group(1))).lstrip(b"\0")
    der = subprocess.run(["openssl", "pkey", "-in", path, "-outform", "DER"], check=True,
                         stdout=subprocess.PIPE).stdout
    pem = open(path, "rb").read().split(b"\n")[1]
    mid = len(der) // 2
    return [secret[len(secret) // 2 - 16:][:32], der[mid:mid + 32], pem]


MAP_MAX = 256 << 20     # larger mappings are ASan's shadow and allocator
CHUNK = 4 << 20         # reservations, not where a program keeps a key


def memory_hits(pid, needles):
    """The mappings of pid (their /proc/pid/maps lines) in which one of
    needles is found, read in chunks that overlap by the longest needle."""
    keep = max(len(n) for n in needles)
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read().splitlines()
        mem = open("/proc/%d/mem" % pid, "rb", buffering=0)
    except OSError:
        return      # gone: an earlier session's process that has just ended
    with mem:
        for line in maps:
            f = line.split()
            if f[1][0] != "r" or (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            if hi - lo > MAP_MAX:
                continue
            tail = b""
            for at in range(lo, hi, CHUNK):
                try:
                    mem.seek(at)
                    data = tail + mem.read(min(CHUNK, hi - at))
                except OSError:
                    break
                if any(n in data for n in needles):
                    yield line
                    break
                tail = data[-keep:]


def memory_has(pid, needles):
    return any(True for _ in memory_hits(pid, needles))


def vmflags(pid, mapline):
    """The VmFlags of the mapping that mapline (from /proc/pid/maps) names."""
    smaps = open("/proc/%d/smaps" % pid).read().split("\n")
    start = mapline.split()[0]
    for i, line in enumerate(smaps):
        if line.startswith(start + " "):
            for x in smaps[i + 1:]:
                if x.startswith("VmFlags:"):
                    return x.split()[1:]
    return []


if IS_ROOT and inst.multi:
    uid, gid = inst.uid("smtpd")
    key = inst.path("control", "tls", "key.pem")
    p = subprocess.run(["/bin/cat", key], user=uid, group=gid, extra_groups=[],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t.check("the smtpd uid cannot open the key", p.returncode != 0 and b"Permission denied" in p.stderr,
            p.stderr[-200:])
    tuid, tgid = inst.uid("tls")
    p = subprocess.run(["/bin/cat", key], user=tuid, group=tgid, extra_groups=[],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t.check("the tls uid cannot open the key file either (root reads it for the relay)",
            p.returncode != 0 and b"Permission denied" in p.stderr, p.stderr[-200:])
    st = [os.lstat(inst.path("control", "tls", n)) for n in ("", "key.pem", "cert.pem")]
    t.check("install: control/tls root's 0700, key.pem root's 0400, cert.pem root's 0444",
            [(x.st_uid, stat.S_IMODE(x.st_mode)) for x in st] == [(0, 0o700), (0, 0o400), (0, 0o444)],
            [(x.st_uid, oct(x.st_mode)) for x in st])
    # During a session after STARTTLS: which uid runs which part. The
    # session runs in qmail-tlsd's forked child, named qmail-smtpd (no exec).
    # A server started now: a resident one decoded the key at its start,
    # from the files as they are now (the EC test above changed them).
    fresh = TlsServer(inst, name="tlsmem")
    c = TlsClient(fresh.port)
    c.cmd("EHLO client.test")
    c.cmd("STARTTLS")
    c.wrap()
    c.cmd("EHLO client.test")

    def procs():
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                exe = os.readlink("/proc/%s/exe" % pid)
                st = open("/proc/%s/status" % pid).read()
            except OSError:
                continue
            if exe.startswith(inst.prefix + "/"):
                name = re.search(r"^Name:\s+(\S+)", st, re.M).group(1)
                u = re.search(r"^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", st, re.M).groups()
                g = re.search(r"^Groups:(.*)$", st, re.M).group(1).split()
                out.setdefault(name, {})[int(pid)] = (tuple(int(x) for x in u), tuple(g))
        return out

    ps = wait_for(lambda: (lambda p: p if "qmail-smtpd" in p and "qmail-tlsd" in p else None)(procs()), 5)
    t.check("the session runs as the smtpd uid only, no supplementary group",
            ps and set(ps["qmail-smtpd"].values()) == {((uid,) * 4, ())}, ps)
    t.check("qmail-tlsd runs as the tls uid only", ps and {v[0] for v in ps["qmail-tlsd"].values()} == {(tuid,) * 4}, ps)
    front = inst.bin("qmail-smtpd-listen" if os.environ.get("TLS_FRONT") == "listen" else "qmail-tlsd")
    t.check("the session is the relay's child, with no exec of qmail-smtpd",
            ps and all(os.readlink("/proc/%d/exe" % p) == front for p in ps["qmail-smtpd"]), ps)
    # The session's memory never holds the key: qmail-tlsd forks it before
    # the key is read; qmail-smtpd-listen's spare, from which it is forked,
    # has the key decoded at start only in a mapping it marked
    # MADV_DONTFORK first. The TLS process's memory must hold the key
    # (else the search proves nothing).
    needles = key_needles(key)
    t.check("the TLS process has the key in its memory",
            ps and any(memory_has(p, needles[:1]) for p in ps["qmail-tlsd"]), ps)
    t.check("the session process has no key material in its memory",
            ps and not any(memory_has(p, needles) for p in ps["qmail-smtpd"]), ps)
    if os.environ.get("TLS_FRONT") == "listen":
        # Decoded once, at start, in a child that exited: the listener and
        # its spares hold the decoded key only, in one shared read-only
        # mapping; never its DER or PEM (no parser's leftovers to fork).
        lis = ps.get("qmail-smtpd-lis", {}) if ps else {}
        where = {p: list(memory_hits(p, needles[:1])) for p in lis}
        t.check("the listener and its spares hold the decoded key only in a shared read-only mapping",
                lis and all(len(w) == 1 and w[0].split()[1] == "r--s" for w in where.values()), where)
        t.check("no listener process holds the key's PEM, or its DER outside the decoded key",
                ps and all(set(memory_hits(p, needles[1:])) <= set(where[p]) and not memory_has(p, needles[2:])
                           for p in lis), {p: list(memory_hits(p, needles[1:])) for p in lis})
        spares = [p for p in lis if open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[1] in
                  [str(x) for x in lis]]
        t.check("each spare marked the key's mapping MADV_DONTFORK before forking a session",
                spares and all("dc" in vmflags(p, where[p][0]) for p in spares if where[p]),
                {p: where[p] and vmflags(p, where[p][0]) for p in spares})
        tw = {p: list(memory_hits(p, needles[:1])) for p in ps["qmail-tlsd"]}
        t.check("the TLS process signs with the key decoded at start (the shared mapping)",
                any(tw.values()) and all(x.split()[1] == "r--s" for w in tw.values() for x in w), tw)
    else:
        t.check("tcpserver's front has no listener process", not ps.get("qmail-smtpd-lis"), ps)
    c.close()
else:
    t.skip("key permissions", "needs root and a multi-uid instance")

# --- a key that cannot be loaded: no byte of SMTP reaches the client -------
# The session is forked before the key is read; qmail-tlsd closes its ends
# and the client sees the connection close, as before the fork.
keyfile = inst.path("control", "tls", "key.pem")
certfile_ = inst.path("control", "tls", "cert.pem")
good = open(keyfile, "rb").read()
with open(keyfile, "wb") as f:
    f.write(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
def first_bytes(port):
    """What a new connection receives first: b"" when it is closed at once."""
    c = Client(port, greet=False)
    c.s.settimeout(10)
    try:
        got = c.s.recv(4096)
    except (socket.timeout, ConnectionResetError) as e:
        got = repr(e)
    c.close()
    return got


for server, what in ((srv, "STARTTLS"), (smtps, "implicit")):
    got = first_bytes(server.port)
    t.check("%s: a bad key closes the connection without a byte" % what, got == b"", got)
t.check("qmail-tlsd logs the bad key", re.search(r"qmail-tlsd event=fatal msg=", srv.logtext()),
        srv.logtext()[-400:])


def sessions():
    """Pids of sessions run by qmail-tlsd's children."""
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and os.readlink("/proc/%s/exe" % p) == inst.bin("qmail-tlsd") \
                    and open("/proc/%s/comm" % p).read().strip() == "qmail-smtpd":
                out.append(int(p))
        except OSError:
            pass
    return out


t.check("no session is left running", wait_for(lambda: not sessions(), 5), sessions())
with open(keyfile, "wb") as f:
    f.write(good)

# --- what another uid could have put into control/tls: refused ----------
# Before, the directory was the TLS uid's, and root opened the files in it
# as they were: a link made root hand any root-readable PEM key to the
# relay, a FIFO hung every connection. Each case must close the connection
# at once, without a byte, and log why; the good files then work again.
def refused_creds(what, setup, undo, logged):
    setup()
    try:
        got = first_bytes(srv.port)
        t.check("%s: refused, the connection closed at once" % what, got == b"", got)
        t.check("%s: logged" % what, logged in srv.logtext(), srv.logtext()[-300:])
    finally:
        undo()


tlsdir = inst.path("control", "tls")
elsewhere = inst.path("other-key.pem")
with open(elsewhere, "wb") as f:
    f.write(good)
os.chmod(elsewhere, 0o400)


def swap_key(make):
    def setup():
        os.rename(keyfile, keyfile + ".good")
        make()
    def undo():
        os.unlink(keyfile)
        os.rename(keyfile + ".good", keyfile)
    return setup, undo


refused_creds("key.pem a symbolic link to a root-readable key",
              *swap_key(lambda: os.symlink(elsewhere, keyfile)), "key.pem is a link")
refused_creds("key.pem a FIFO", *swap_key(lambda: os.mkfifo(keyfile, 0o600)),
              "key.pem is a link or not a regular file")
refused_creds("key.pem readable by group", lambda: os.chmod(keyfile, 0o440),
              lambda: os.chmod(keyfile, 0o400), "key.pem is accessible to group or others")
refused_creds("cert.pem a symbolic link", lambda: (os.rename(certfile_, certfile_ + ".good"),
                                                   os.symlink(certfile_ + ".good", certfile_)),
              lambda: (os.unlink(certfile_), os.rename(certfile_ + ".good", certfile_)),
              "cert.pem is a link")
if IS_ROOT and inst.multi:
    tuid, tgid = inst.uid("tls")
    refused_creds("key.pem owned by the tls uid", lambda: os.chown(keyfile, tuid, tgid),
                  lambda: os.chown(keyfile, 0, 0), "key.pem is not owned by the uid reading it")
    refused_creds("control/tls owned by the tls uid", lambda: os.chown(tlsdir, tuid, tgid),
                  lambda: os.chown(tlsdir, 0, 0), "the TLS directory is not owned")
refused_creds("control/tls writable by others", lambda: os.chmod(tlsdir, 0o777),
              lambda: os.chmod(tlsdir, 0o700), "the TLS directory is writable by group or others")
c = Client(srv.port)
t.check("the good files work again", c.greeting[0] == 220, c.greeting)
c.close()

# --- no certificate: qmail-tlsd is qmail-smtpd without STARTTLS ----------
certfile = inst.path("control", "tls", "cert.pem")
os.rename(certfile, certfile + ".off")
c = Client(srv.port)
t.check("no certificate: greeting", c.greeting[0] == 220, c.greeting)
code, text = c.cmd("EHLO client.test")
t.check("no certificate: no STARTTLS offered", code == 250 and "STARTTLS" not in text, text)
codes = c.transaction("a@example.test", ["e@example.test"])
t.check("no certificate: a plaintext transaction", codes == [250, 250, 250], codes)
c.close()
c = Client(smtps.port, greet=False)
t.check("no certificate: implicit TLS refuses", c.closed(10))
c.close()
os.rename(certfile + ".off", certfile)

t.done()
