"""Loopback peers for the qmail-remote tests: a dnsmasq serving a generated
zone under .test, a UDP responder that answers SERVFAIL to everything (for
dnsmasq to forward one domain to), and scriptable SMTP sinks that record the
exact bytes of every DATA they receive. Standard library only."""
import os, shutil, socket, socketserver, ssl, struct, subprocess, threading, time

from harness import free_port, wait_for, IS_ROOT


def remote_reports(inst, domain, rcpts, message=b"Subject: hi\n\nhello\n", sender="a@example.test", timeout=60):
    """Runs inst's qmail-remote (as the remote uid when root in a multi-uid
    instance): ([(code, text)...] per recipient, (code, text) for the
    message, seconds)."""
    user = {}
    if IS_ROOT and inst.multi:
        uid, gid = inst.uid("remote")
        user = dict(user=uid, group=gid, extra_groups=[])
    t0 = time.time()
    p = subprocess.run([inst.bin("qmail-remote"), domain, sender] + rcpts, input=message,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **user)
    parts = p.stdout.split(b"\0")
    out = [(x[:1].decode(), x[1:].decode("utf-8", "replace")) for x in parts[:-1]]
    if p.returncode != 0 or len(out) != len(rcpts) + 1 or parts[-1] != b"":
        return [("?", repr(p))] * len(rcpts), ("?", repr(p)), time.time() - t0
    return out[:-1], out[-1], time.time() - t0


def sessions(sink):
    """A function giving the sessions sink has had since this call."""
    n = len(sink.sessions)
    return lambda: sink.sessions[n:]


class Dns:
    """dnsmasq on 127.0.0.1:<port> answering only from its command line:
    --local=/test/ makes every other name under .test NXDOMAIN (and a name
    with no record of the asked type NODATA), --no-resolv keeps it from
    ever asking the machine's resolver."""

    def __init__(self, t, records, forward=None):
        self.port = free_port()
        self.servfail = None
        argv = ["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--port=%d" % self.port, "--listen-address=127.0.0.1",
                "--bind-interfaces", "--local=/test/", "--cache-size=0",
                "--log-facility=/dev/null", "--pid-file="]
        for domain in (forward or []):
            if self.servfail is None:
                self.servfail = ServfailResponder()
                t.cleanups.append(self.servfail.close)
            argv.append("--server=/%s/127.0.0.1#%d" % (domain, self.servfail.port))
        argv += records
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        t.cleanups.append(self.close)
        self.ok = wait_for(self._answers, timeout=10)

    def _answers(self):
        if self.proc.poll() is not None:
            return False
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        try:
            s.sendto(query(0x1234, "ping.test", 1), ("127.0.0.1", self.port))
            return len(s.recv(512)) > 0
        except OSError:
            return False
        finally:
            s.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def query(qid, name, qtype):
    pkt = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        pkt += bytes([len(label)]) + label.encode()
    return pkt + b"\0" + struct.pack(">HH", qtype, 1)


def txt_lookup(port, name, timeout=5):
    """The TXT record of name (its strings joined) from the DNS server on
    127.0.0.1:port, or None: a client that never asks any other server
    (dkimpy's dnsfunc: dkim.verify(..., dnsfunc=lambda n, timeout=5:
    txt_lookup(dns.port, n)))."""
    name = name.decode() if isinstance(name, bytes) else name
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(query(0x5454, name.rstrip("."), 16), ("127.0.0.1", port))
        r = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    qid, flags, qd, an = struct.unpack(">HHHH", r[:8])
    if qid != 0x5454 or flags & 15 or not an:
        return None

    def skip_name(i):
        while r[i]:
            if r[i] >= 0xC0:
                return i + 2
            i += r[i] + 1
        return i + 1

    i = 12
    for _ in range(qd):
        i = skip_name(i) + 4
    for _ in range(an):
        i = skip_name(i)
        rtype, _, _, rdlen = struct.unpack(">HHIH", r[i:i + 10])
        i += 10
        if rtype == 16:
            out, j = b"", i
            while j < i + rdlen:
                out += r[j + 1:j + 1 + r[j]]
                j += 1 + r[j]
            return out
        i += rdlen
    return None


class ServfailResponder:
    """Answers every DNS query with SERVFAIL (rcode 2), question echoed."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 12:
                continue
            qid, flags = struct.unpack(">HH", data[:4])
            reply = struct.pack(">HHHHHH", qid, 0x8182 | (flags & 0x0100), 1, 0, 0, 0) + data[12:]
            try:
                self.sock.sendto(reply, peer)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


class Session:
    def __init__(self):
        self.commands = []     # every command line as received, without CRLF
        self.data = []         # the raw bytes of each DATA, as on the wire
        self.data_secs = []    # per DATA: from its first line to its dot
        self.peer = None
        self.auth = []         # (mechanism, user, accepted) per AUTH
        self.tls = False       # STARTTLS done (starttls given an SSLContext)


class Sink:
    """An SMTP server on (host, port) whose behaviour is set by keyword:

    greeting   the greeting line (default "220 sink ESMTP")
    ehlo       False: refuse EHLO with 502 (HELO works)
    ext        EHLO extension lines (default PIPELINING, SIZE, 8BITMIME)
    mail       reply to MAIL (default "250 ok")
    rcpt       function(address) -> reply (default "250 ok")
    data       reply to DATA (default "354 go")
    end        reply after the message (default "250 ok queued")
    drop_data  close the connection after this many body bytes
    silent     accept connections and never say anything
    auth       {user: password}: answer AUTH PLAIN and LOGIN (offer them in
               ext yourself); a session records (mech, user, ok) in .auth
    tls        an ssl.SSLContext (server side): implicit TLS on connect
    starttls   bytes: STARTTLS gets "220", then, after the client's first
               bytes (its ClientHello), these bytes and the end: broken TLS;
               an ssl.SSLContext: real STARTTLS with it
               (offer STARTTLS in ext yourself)
    """

    def __init__(self, t, host="127.0.0.1", port=None, **behaviour):
        self.b = dict(greeting="220 sink ESMTP", ehlo=True,
                      ext=["PIPELINING", "SIZE 100000000", "8BITMIME"],
                      mail="250 ok", rcpt=lambda a: "250 ok", data="354 go",
                      end="250 ok queued", drop_data=None, silent=False, auth=None, tls=None,
                      starttls=None)
        self.b.update(behaviour)
        self.sessions = []
        self.live = set()      # the sockets of sessions in progress
        sink = self
        family = socket.AF_INET6 if ":" in host else socket.AF_INET

        class Server(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True
            request_queue_size = 256

            def get_request(self):
                sock, addr = super().get_request()
                if sink.b["tls"] is not None:
                    # The handshake runs in the session's thread.
                    sock = sink.b["tls"].wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
                return sock, addr

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                sink.converse(self)

        self.server = Server((host, port or free_port()), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()
        t.cleanups.append(self.close)

    def close(self):
        """Down: no new connection, and every open one cut (a client may
        keep its connection between messages)."""
        self.server.shutdown()
        self.server.server_close()
        for sock in list(self.live):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def converse(self, h):
        self.live.add(h.request)
        try:
            self._converse(h)
        finally:
            self.live.discard(h.request)

    def _converse(self, h):
        s = Session()
        s.peer = h.client_address[0]
        self.sessions.append(s)
        b = self.b
        h.request.settimeout(20)
        if b["tls"] is not None:
            try:
                h.request.do_handshake()
            except OSError:
                s.commands.append("TLS handshake failed")
                return
        if b["silent"]:
            try:
                h.rfile.read()   # until the client gives up
            except OSError:
                pass
            return

        def say(line):
            h.wfile.write(line.encode() + b"\r\n")
            h.wfile.flush()

        try:
            say(b["greeting"])
            if not b["greeting"].startswith("2"):
                return
            while True:
                raw = h.rfile.readline(4096)
                if not raw:
                    return
                line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
                s.commands.append(line)
                verb = line[:4].upper()
                if verb == "EHLO":
                    if not b["ehlo"]:
                        say("502 no EHLO here")
                        continue
                    lines = ["sink hello"] + b["ext"]
                    for i, l in enumerate(lines):
                        say("250%s%s" % (" " if i == len(lines) - 1 else "-", l))
                elif verb == "HELO":
                    say("250 sink")
                elif verb == "MAIL":
                    say(b["mail"])
                elif verb == "RCPT":
                    addr = line[line.find("<") + 1:line.rfind(">")]
                    say(b["rcpt"](addr))
                elif verb == "DATA":
                    say(b["data"])
                    if not b["data"].startswith("354"):
                        continue
                    body = b""
                    first = None
                    while True:
                        chunk = h.rfile.readline(1 << 20)
                        first = first or time.monotonic()
                        if not chunk:
                            s.data.append(body)
                            return
                        body += chunk
                        if b["drop_data"] is not None and len(body) >= b["drop_data"]:
                            s.data.append(body)
                            return
                        if chunk == b".\r\n":
                            s.data_secs.append(time.monotonic() - first)
                            break
                    s.data.append(body)
                    say(b["end"])
                elif verb == "QUIT":
                    say("221 bye")
                    return
                elif line.upper() == "STARTTLS" and isinstance(b["starttls"], ssl.SSLContext) and not s.tls:
                    say("220 2.0.0 go ahead")
                    try:
                        tls = b["starttls"].wrap_socket(h.request, server_side=True)
                    except (OSError, ssl.SSLError):
                        s.commands.append("TLS handshake failed")
                        return
                    h.request, h.rfile, h.wfile = tls, tls.makefile("rb"), tls.makefile("wb")
                    s.tls = True
                elif line.upper() == "STARTTLS" and b["starttls"] is not None:
                    say("220 2.0.0 go ahead")
                    h.request.recv(4096)
                    h.wfile.write(b["starttls"])
                    h.wfile.flush()
                    return
                elif verb == "AUTH" and b["auth"] is not None:
                    self.do_auth(h, s, line, say)
                elif verb == "RSET" or verb == "NOOP":
                    say("250 ok")
                else:
                    say("500 what?")
        except OSError:
            return

    def do_auth(self, h, s, line, say):
        import base64, binascii

        def b64(x):
            try:
                return base64.b64decode(x, validate=True).decode("utf-8", "replace")
            except (binascii.Error, ValueError):
                return None

        def ask(prompt):
            say("334 " + prompt)
            return h.rfile.readline(4096).rstrip(b"\r\n").decode("ascii", "replace")

        words = line.split()
        mech = words[1].upper() if len(words) > 1 else ""
        if mech == "PLAIN":
            resp = b64(words[2] if len(words) > 2 else ask(""))
            parts = resp.split("\0") if resp is not None else []
            user, pw = (parts[1], parts[2]) if len(parts) == 3 else (None, None)
        elif mech == "LOGIN":
            user = b64(ask("VXNlcm5hbWU6"))
            pw = b64(ask("UGFzc3dvcmQ6"))
        else:
            say("504 unknown mechanism")
            return
        ok = user is not None and self.b["auth"].get(user) == pw
        s.auth.append((mech, user, ok))
        say("235 2.7.0 ok" if ok else "535 5.7.8 authentication failed")


class TruncatingDns:
    """A hostile DNS server on 127.0.0.1 (UDP and TCP, one port): every
    answer has TC set and no records, with rcode (3: NXDOMAIN, 0: NOERROR)
    over UDP and again over TCP, so nothing usable ever comes. .queries
    counts (proto, qtype) asked. With stall_tcp, a TCP retry is accepted
    and held (in .held) without an answer: libresolv's TCP reads have no
    timeout of their own."""

    def __init__(self, t, rcode=3, stall_tcp=False):
        self.rcode = rcode
        self.stall_tcp = stall_tcp
        self.held = []
        self.queries = []
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.udp.settimeout(0.2)
        self.tcp.settimeout(0.2)
        self.stop = False
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.run_udp, self.run_tcp)]
        for th in self.threads:
            th.start()
        t.cleanups.append(self.close)

    def answer(self, q, proto):
        if len(q) < 12:
            return None
        qid, flags = struct.unpack(">HH", q[:4])
        end = 12
        while end < len(q) and q[end]:
            end += 1 + q[end]
        qtype = struct.unpack(">H", q[end + 1:end + 3])[0] if end + 3 <= len(q) else 0
        self.queries.append((proto, qtype))
        # QR, TC, RD echoed, RA; the question echoed, no records.
        return struct.pack(">HHHHHH", qid, 0x8280 | (flags & 0x0100) | self.rcode, 1, 0, 0, 0) + q[12:end + 5]

    def run_udp(self):
        while not self.stop:
            try:
                q, peer = self.udp.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            a = self.answer(q, "udp")
            if a:
                self.udp.sendto(a, peer)

    def run_tcp(self):
        while not self.stop:
            try:
                c, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self.stall_tcp:
                self.held.append(c)
                continue
            try:
                c.settimeout(2)
                n = struct.unpack(">H", c.recv(2, socket.MSG_WAITALL))[0]
                a = self.answer(c.recv(n, socket.MSG_WAITALL), "tcp")
                if a:
                    c.sendall(struct.pack(">H", len(a)) + a)
            except (OSError, struct.error):
                pass
            finally:
                c.close()

    def close(self):
        self.stop = True
        for th in self.threads:
            th.join(2)
        for c in self.held:
            c.close()
        self.udp.close()
        self.tcp.close()
