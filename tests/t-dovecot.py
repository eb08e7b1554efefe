#!/usr/bin/env python3
"""Dovecot serves the Maildirs we deliver to.

The real Dovecot (Debian dovecot-imapd), started by the test on a loopback
port with a configuration of its own, reads alice's Maildir as qmail-send
and qmail-lspawn fill it. Checks: a delivered message is fetched over IMAP
(Python imaplib) exactly as the file holds it, line ends made CRLF as
IMAP requires, the message as sent inside it unchanged; flags set over
IMAP (\\Seen, \\Flagged, a deletion) survive our next deliveries into the
same Maildir, which Dovecot then lists beside the old ones, unflagged.
Root only: Dovecot switches to the mailbox owner's uid.
"""
import imaplib, os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T, free_port, wait_for
import dovecot_harness as dh
import send_harness as sh

t = T()
dh.require(t, "imap", "Dovecot over our Maildirs")

inst = sh.setup(t)
D = sh.DOMAIN
log = inst.path("send.log")
open(log, "w").close()
sh.start(inst, log)
u, g = inst.uid("alias")
port = free_port()
dov = dh.Dovecot(t, """protocols = imap
disable_plaintext_auth = no
auth_mechanisms = plain
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = %(port)d
  }
  inet_listener imaps {
    port = 0
  }
}
passdb {
  driver = static
  args = password=secret
}
userdb {
  driver = static
  args = uid=%(uid)d gid=%(gid)d home=%(home)s/%%n
}
""", port=port, uid=u, gid=g, home=inst.path("home"))


def listening():
    try:
        imaplib.IMAP4("127.0.0.1", port).logout()
        return True
    except OSError:
        return False


up = dov.wait(listening)
t.check("dovecot listens on 127.0.0.1:%d" % port, up, dov.log()[-800:])
if not up:
    t.done()


def deliver(n):
    body = ("Subject: m%d\nFrom: sender@remote.test\nTo: alice@%s\n\n"
            "line one of %d\n  indented, trailing space \n\nTOKEN-%d-\n" % (n, D, n, n))
    t.check("message %d queued" % n, inst.inject("sender@remote.test", ["alice@" + D], body) == 0)
    return body


def delivered(count):
    return len(os.listdir(os.path.join(sh.maildir_of(inst, "alice"), "new"))) + \
        len(os.listdir(os.path.join(sh.maildir_of(inst, "alice"), "cur"))) >= count


sent = {n: deliver(n) for n in (1, 2, 3)}
t.check("3 messages in alice's Maildir", wait_for(lambda: delivered(3), 30))
files = {}
for fn, data in sh.messages(inst, "alice"):
    for n in sent:
        if b"TOKEN-%d-" % n in data:
            files[n] = data

im = imaplib.IMAP4("127.0.0.1", port)
im.login("alice", "secret")
typ, data = im.select("INBOX")
t.check("IMAP: INBOX has the 3 messages", typ == "OK" and data[0] == b"3", (typ, data))


def fetch_all():
    """{token: (uid, flags, bytes)} of every message in INBOX."""
    out = {}
    typ, data = im.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
    for part in data:
        if not isinstance(part, tuple):
            continue
        head, raw = part
        uid = int(head.split(b"UID ")[1].split()[0])
        flags = head.split(b"FLAGS (")[1].split(b")")[0].split() if b"FLAGS (" in head else []
        for n in range(1, 10):
            if b"TOKEN-%d-" % n in raw:
                out[n] = (uid, flags, raw)
    return out


got = fetch_all()
for n in (1, 2, 3):
    raw = got.get(n, (0, [], b""))[2]
    t.check("IMAP: message %d is the Maildir file byte for byte (CRLF line ends)" % n,
            n in files and raw == files[n].replace(b"\n", b"\r\n"), (raw[:200], files.get(n, b"")[:200]))
    t.check("IMAP: message %d holds what was sent, unchanged" % n,
            sent[n].replace("\n", "\r\n").encode() in raw, raw[-200:])

uids = {n: got[n][0] for n in got}
im.uid("STORE", str(uids[1]), "+FLAGS", r"(\Seen \Flagged)")
im.uid("STORE", str(uids[2]), "+FLAGS", r"(\Seen)")
im.uid("STORE", str(uids[3]), "+FLAGS", r"(\Deleted)")
im.expunge()
im.logout()

for n in (4, 5):
    sent[n] = deliver(n)
t.check("2 more deliveries after the flags were set", wait_for(lambda: delivered(4), 30) and
        wait_for(lambda: sh.queue_empty(inst), 30))

im = imaplib.IMAP4("127.0.0.1", port)
im.login("alice", "secret")
typ, data = im.select("INBOX")
t.check("IMAP: INBOX now has 4 (3 - 1 expunged + 2)", typ == "OK" and data[0] == b"4", (typ, data))
got = fetch_all()
t.check("IMAP: \\Seen \\Flagged on message 1 survived our deliveries",
        1 in got and set(got[1][1]) >= {rb"\Seen", rb"\Flagged"}, got.get(1, (0, []))[1])
t.check("IMAP: \\Seen on message 2 survived", 2 in got and rb"\Seen" in got[2][1], got.get(2, (0, []))[1])
t.check("IMAP: the expunged message 3 stays gone", 3 not in got, sorted(got))
t.check("IMAP: the new messages 4 and 5 are there, unseen",
        all(n in got and rb"\Seen" not in got[n][1] for n in (4, 5)), {n: got[n][1] for n in got})
t.check("IMAP: UIDs kept (message 1's UID unchanged)", got.get(1, (0,))[0] == uids[1], (got.get(1), uids))
for n in (4, 5):
    t.check("IMAP: new message %d holds what was sent" % n,
            n in got and sent[n].replace("\n", "\r\n").encode() in got[n][2])
im.logout()
t.done()
