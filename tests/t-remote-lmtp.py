#!/usr/bin/env python3
"""qmail-remote's LMTP routes against a scripted LMTP server on a unix
socket: LHLO (never EHLO or HELO), the replies after the message mapped
onto the recipients accepted at RCPT (a recipient refused there gets none),
a connection lost among those replies (the recipients already answered
keep their results: none delivered is sent again; the rest are deferred),
an LHLO refused, and a socket nobody listens on (deferred, never bounced)."""
import os, shutil, socket, sys, tempfile, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, Instance
from remote_peers import remote_reports

t = T()
inst = Instance(t)
top = tempfile.mkdtemp(prefix="qmlmtp.")
os.chmod(top, 0o755)
t.cleanups.append(lambda: shutil.rmtree(top, ignore_errors=True))
path = os.path.join(top, "lmtp")


class Lmtp:
    """One LMTP session per connection, as the current script says:
    rcpt(address) -> reply; after(addresses accepted) -> the replies to send
    after the message (fewer than accepted: the connection is then cut)."""

    def __init__(self):
        self.lhlo = "250-lmtp hello\r\n250-PIPELINING\r\n250 8BITMIME"
        self.rcpt = lambda a: "250 2.1.5 ok"
        self.after = lambda acc: ["250 2.0.0 <%s> saved" % a for a in acc]
        self.commands, self.data = [], []
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.listen(8)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.session, args=(c,), daemon=True).start()

    def session(self, c):
        f = c.makefile("rwb")

        def say(x):
            f.write(x.encode() + b"\r\n")
            f.flush()

        acc = []
        try:
            say("220 lmtp ready")
            for raw in f:
                line = raw.rstrip(b"\r\n").decode()
                self.commands.append(line)
                verb = line[:4].upper()
                if verb == "LHLO":
                    say(self.lhlo)
                elif verb == "MAIL":
                    acc = []
                    say("250 2.1.0 ok")
                elif verb == "RCPT":
                    a = line[line.find("<") + 1:line.rfind(">")]
                    r = self.rcpt(a)
                    if r.startswith("2"):
                        acc.append(a)
                    say(r)
                elif verb == "DATA":
                    say("354 go")
                    body = b""
                    for chunk in f:
                        if chunk == b".\r\n":
                            break
                        body += chunk
                    self.data.append(body)
                    replies = self.after(acc)
                    for r in replies:
                        say(r)
                    if len(replies) < len(acc):
                        c.shutdown(socket.SHUT_RDWR)
                        return
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("500 5.5.1 what?")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


inst.control("smtproutes", ["lmtp.test:lmtp:" + path, "gone.test:lmtp:" + os.path.join(top, "none")])
srv = Lmtp()
t.cleanups.append(srv.close)


def remote(rcpts, domain="lmtp.test"):
    return remote_reports(inst, domain, rcpts, message=b"Subject: hi\n\n.dot\nhello\n")


# Every recipient taken: one reply each after the message.
rc = ["a@lmtp.test", "b@lmtp.test"]
r, m, _ = remote(rc)
t.check("LHLO, not EHLO", srv.commands[:1] and srv.commands[0].startswith("LHLO ") and
        not any(c[:4].upper() in ("HELO", "EHLO") for c in srv.commands), srv.commands[:2])
t.check("both delivered, each with its own reply",
        [x[0] for x in r] == ["r", "r"] and "<a@lmtp.test> saved" in r[0][1] and "<b@lmtp.test> saved" in r[1][1], r)
t.check("the message as sent, dot-stuffed", srv.data[-1:] == [b"Subject: hi\r\n\r\n..dot\r\nhello\r\n"], srv.data[-1:])

# One refused at RCPT; the replies after the message belong to the others,
# in order: a 452 and a 552 among them.
srv.commands.clear()
srv.rcpt = lambda a: "550 5.1.1 no such user" if a.startswith("x") else "250 2.1.5 ok"
srv.after = lambda acc: ["250 2.0.0 <%s> saved" % a if a.startswith("a") else
                         "452 4.2.2 <%s> over quota" % a if a.startswith("t") else
                         "552 5.2.2 <%s> over quota" % a for a in acc]
rc = ["a@lmtp.test", "x@lmtp.test", "t@lmtp.test", "p@lmtp.test", "a2@lmtp.test"]
r, m, _ = remote(rc)
t.check("per recipient: delivered, refused at RCPT, 452, 552, delivered",
        [x[0] for x in r] == ["r", "h", "s", "h", "r"], r)
t.check("each result carries its own reply",
        "<a@lmtp.test> saved" in r[0][1] and "no such user" in r[1][1] and "<t@lmtp.test> over quota" in r[2][1]
        and "<p@lmtp.test> over quota" in r[3][1] and "<a2@lmtp.test> saved" in r[4][1], r)
t.check("the message report: K (some accepted)", m[0] == "K", m)

# The connection cut after the first reply: the first stands, the others
# are deferred (sent again later, once).
srv.rcpt = lambda a: "250 2.1.5 ok"
srv.after = lambda acc: ["250 2.0.0 <%s> saved" % acc[0]]
r, m, _ = remote(["a@lmtp.test", "b@lmtp.test", "c@lmtp.test"])
t.check("cut among the replies: the answered one delivered, the rest deferred",
        [x[0] for x in r] == ["r", "s", "s"], r)
t.check("  the deferred ones say why", all(x[1].startswith("data: ") for x in r[1:]), r)

# LHLO refused: no HELO fallback, a deferral.
srv.commands.clear()
srv.after = lambda acc: ["250 2.0.0 <%s> saved" % a for a in acc]
srv.lhlo = "500 5.5.1 unknown command"
r, m, _ = remote(["a@lmtp.test"])
t.check("LHLO refused: deferred, no HELO or EHLO tried",
        r[0][0] == "s" and not any(c[:4].upper() in ("HELO", "EHLO") for c in srv.commands), (r, srv.commands))

# Nobody listens: deferred, never bounced.
r, m, _ = remote(["a@gone.test"], domain="gone.test")
t.check("no socket: deferred with the path and the error",
        r[0][0] == "s" and r[0][1].startswith("connect: ") and "No such file" in r[0][1], r)
t.done()
