#!/usr/bin/env python3
"""The manual pages, and the facts they must not drift from.

Pages live beside the sources (*/NAME.[1-8]). Checked here:
  - each passes `mandoc -T lint -W warning` and `man -l` renders it;
  - make install puts each under PREFIX/man/manN/, where man finds it;
  - every installed program (make print-progs) has a page of its name;
    the sendmail front end's other names (service/install's links) are
    named in sendmail's page;
  - every control file the code reads (the "control/NAME" literals of the
    C sources and the install scripts, and qmail-inject's control() names)
    is an item of qmail-control(5);
  - every event a program logs (log_begin(prog, "event"), and log_fatal's
    event=fatal) is listed as event=NAME in its page's LOG EVENTS section.
    A program without a page fails the check above; its events are then
    not checked one by one.
"""
import glob, os, re, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T, Instance

ROOT = harness.ROOT
t = T()


def rel(p):
    return os.path.relpath(p, ROOT)


def read(p):
    with open(p, encoding="utf-8", errors="replace") as f:
        return f.read()


PAGES = sorted(glob.glob(os.path.join(ROOT, "*", "*.[1-8]")))
PAGE_BY_NAME = {os.path.basename(p).rsplit(".", 1)[0]: p for p in PAGES}
t.check("there are manual pages beside the sources", len(PAGES) > 0)

# --- lint and rendering ------------------------------------------------------
for p in PAGES:
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", p],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = r.stdout.decode("utf-8", "replace")
    t.check("mandoc -T lint -W warning %s: clean" % rel(p), r.returncode == 0 and not out.strip(), out)
    r = subprocess.run(["man", "-l", "-P", "cat", p], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
    name = os.path.basename(p).rsplit(".", 1)[0]
    text = r.stdout.decode("utf-8", "replace")
    t.check("man -l %s renders it" % rel(p),
            r.returncode == 0 and name.lower() in text.lower() and "NAME" in text,
            (r.returncode, r.stderr[-500:]))

# Every reference to one of this MTA's pages names a page that exists,
# in that section.
for p in PAGES:
    for name, sec in sorted(set(re.findall(r"(?m)^\.BR\s+(\S+)\s+\((\d)\)", read(p)))):
        name = name.replace("\\-", "-").replace("\\&", "")
        if name.startswith("qmail-") or name in ("dot-qmail", "sendmail", "mailq", "newaliases"):
            target = PAGE_BY_NAME.get(name) or (PAGE_BY_NAME.get("sendmail")
                                               if name in ("mailq", "newaliases") else None)
            t.check("%s: %s(%s) exists" % (rel(p), name, sec),
                    target is not None and target.endswith("." + sec))

# --- what make knows -----------------------------------------------------------
def make_print(target):
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, target],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return r.stdout.decode()


PROGS = make_print("print-progs").split()
SRCS = {}
for line in make_print("print-srcs").splitlines():
    prog, _, srcs = line.partition(":")
    SRCS[prog.strip()] = srcs.split()
t.check("make print-progs lists the programs", "qmail-send" in PROGS and "sendmail" in PROGS, PROGS)

# --- make install ----------------------------------------------------------------
inst = Instance(t)
for p in PAGES:
    sec = p.rsplit(".", 1)[1]
    dst = inst.path("man", "man" + sec, os.path.basename(p))
    t.check("installed: man/man%s/%s, the same text" % (sec, os.path.basename(p)),
            os.path.isfile(dst) and read(dst) == read(p) and (os.stat(dst).st_mode & 0o777) == 0o644)
links = re.findall(r"for n in ([\w -]+); do ln -sfn (\S+) ", read(os.path.join(ROOT, "service", "install")))
linknames = {n for names, _ in links for n in names.split()}
for n in sorted(os.listdir(inst.path("bin"))):
    t.check("installed bin/%s is a program make lists, or a link named in service/install" % n,
            n in PROGS or n in linknames)
if "qmail-control" in PAGE_BY_NAME:
    r = subprocess.run(["man", "-M", inst.path("man"), "-P", "cat", "5", "qmail-control"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
    t.check("man -M PREFIX/man 5 qmail-control finds the installed page",
            r.returncode == 0 and b"QMAIL-CONTROL" in r.stdout, r.stderr[-300:])

# --- every program has a page ----------------------------------------------------
for prog in PROGS:
    t.check("%s has a page (%s.N beside its source)" % (prog, prog), prog in PAGE_BY_NAME)
for names, target in links:
    for n in names.split():
        page = PAGE_BY_NAME.get(n) or PAGE_BY_NAME.get(target)
        if page:
            r = subprocess.run(["man", "-M", inst.path("man"), "-P", "cat", n], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8"))
            t.check("man -M PREFIX/man %s shows a page" % n, r.returncode == 0 and n.encode() in r.stdout,
                    r.stderr[-300:])
        t.check("%s (a link to %s) is documented: its own page or named in %s's NAME" % (n, target, target),
                page is not None and (n in PAGE_BY_NAME or re.search(
                    r"(?ms)^\.SH NAME\n(.*?)^\.SH", read(page)).group(1).count(n) > 0))

# --- control files ------------------------------------------------------------------
def c_sources():
    out = set()
    for srcs in SRCS.values():
        out.update(srcs)
    out.update(glob.glob(os.path.join(ROOT, "lib", "*.c")))
    return sorted(os.path.join(ROOT, s) for s in out)


SCRIPTS = [os.path.join(ROOT, "service", "install")] + \
    sorted(glob.glob(os.path.join(ROOT, "service", "install.d", "*.sh"))) + \
    sorted(glob.glob(os.path.join(ROOT, "qmail-*", "*.sh")))

controls = {}
for f in c_sources():
    s = read(f)
    for m in re.finditer(r'"/?control/([A-Za-z0-9_.][A-Za-z0-9_./-]*)"?', s):
        controls.setdefault(m.group(1), rel(f))
    # qmail-queue/inject.c names its files without the directory.
    for m in re.finditer(r'\bcontrol\(&\w+, "([A-Za-z0-9_.-]+)"', s):
        controls.setdefault(m.group(1), rel(f))
for f in SCRIPTS:
    for m in re.finditer(r"control/([A-Za-z0-9_][A-Za-z0-9_./-]*)", read(f)):
        controls.setdefault(m.group(1).rstrip("."), rel(f))
# Temporary names of files being replaced are not read.
controls = {k: v for k, v in controls.items()
            if not re.search(r"\.(tmp|new)$", k) and not k.startswith(".")}
t.check("the code reads control files (the scan works)", {"me", "smtproutes", "ids"} <= set(controls),
        sorted(controls))

ctl_page = PAGE_BY_NAME.get("qmail-control")
t.check("qmail-control(5) exists", ctl_page is not None)
items = set()
if ctl_page:
    lines = read(ctl_page).splitlines()
    for i, line in enumerate(lines[:-1]):
        if line.startswith(".TP"):
            m = re.match(r"\.(?:B|BR|I|IR)\s+(\S+)", lines[i + 1])
            if m:
                items.add(m.group(1).replace("\\&", "").replace("\\-", "-"))
for name, where in sorted(controls.items()):
    name = name.rstrip("/")
    ok = name in items or any(i.startswith(name + "/") for i in items)
    t.check("control/%s (read in %s) is an item of qmail-control(5)" % (name, where), ok)

# --- log events -----------------------------------------------------------------------
def prog_names(f, text):
    """NAME -> program for the #define NAME "prog" / char NAME[] = "prog"
    of f and of the headers it includes from its own folder."""
    names = {}
    texts = [text]
    for h in re.findall(r'#include "([\w.]+\.h)"', text):
        hp = os.path.join(os.path.dirname(f), h)
        if os.path.exists(hp):
            texts.append(read(hp))
    for s in texts:
        for m in re.finditer(r'#define\s+(\w+)\s+"([\w-]+)"', s):
            names.setdefault(m.group(1), m.group(2))
        for m in re.finditer(r'char\s+(\w+)\s*\[\]\s*=\s*"([\w-]+)"', s):
            names.setdefault(m.group(1), m.group(2))
    return names


def users_of(f):
    """The programs that link f: their sources list it, or for lib/X.c,
    include X.h."""
    r = rel(f)
    if r.startswith("lib/"):
        h = os.path.basename(r)[:-2] + ".h"
        return sorted(p for p, srcs in SRCS.items()
                      if any(('"%s"' % h) in read(os.path.join(ROOT, s)) for s in srcs))
    return sorted(p for p, srcs in SRCS.items() if r in srcs)


events = {}   # program -> {event: where}
for f in c_sources():
    s = read(f)
    names = prog_names(f, s)
    calls = [(m.group(1).strip(), m.group(2).strip(), m.start())
             for m in re.finditer(r"\blog_begin\(\s*([^,()]+?)\s*,\s*(.*?)\);", s)]
    calls += [(m.group(1).strip(), '"fatal"', m.start())
              for m in re.finditer(r"\blog_fatal\(([^,()]+),", s)]
    for who, ev, at in calls:
        if '"' in ev:
            # A literal, or a choice of literals (a ? "x" : "y").
            evs = re.findall(r'"([^"]*)"', ev)
        elif re.fullmatch(r"\w+", ev):
            # An event passed down: the literals given to the function
            # whose parameter it is (lib/spawner.c's event()), or those a
            # command word is compared with on the way to the call, since
            # the last return (qmail-passwd's add, change, remove).
            fn = re.search(r"(\w+)\([^)]*\bconst char \*%s\b" % re.escape(ev), s)
            evs = re.findall(r'\b%s\("([\w.]+)"' % fn.group(1), s) if fn else []
            way = s[max(s.rfind("return", 0, at), 0):at]
            evs = evs or re.findall(r'\bstrcmp\(%s, "([\w.]+)"\)' % re.escape(ev), way)
        else:
            evs = []
        t.check("%s: the events of log_begin(%s, %s) are found" % (rel(f), who, ev), evs)
        if who.startswith('"'):
            progs = [who.strip('"')]
        elif who in names:
            progs = [names[who]]
        else:
            progs = users_of(f)
        if rel(f) == "lib/log.c":
            continue          # log_fatal itself: counted at its callers
        for p in progs:
            for e in evs:
                events.setdefault(p, {}).setdefault(e, rel(f))
for f in glob.glob(os.path.join(ROOT, "qmail-*", "*.sh")):
    # A script logs "prog event=NAME" lines with echo or printf.
    prog = os.path.basename(f)[:-3]
    for m in re.finditer(r"(?m)^\s*(?:echo|printf)\b.*\bevent=([a-z_.]+)", read(f)):
        events.setdefault(prog, {}).setdefault(m.group(1), rel(f))

t.check("the event scan finds qmail-send's and qmail-smtpd's events",
        "delivery" in events.get("qmail-send", {}) and "mail" in events.get("qmail-smtpd", {}),
        sorted(events))
for prog in sorted(events):
    t.check("%s, which logs events, is an installed program" % prog, prog in PROGS)
    page = PAGE_BY_NAME.get(prog)
    if page is None:
        continue          # "has a page" fails above
    m = re.search(r'(?ms)^\.SH "?LOG EVENTS"?\s*\n(.*?)(?=^\.SH|\Z)', read(page))
    t.check("%s: its page has a LOG EVENTS section" % prog, m is not None)
    section = m.group(1) if m else ""
    for e, where in sorted(events[prog].items()):
        t.check("%s event=%s (%s) is listed on its page" % (prog, e, where),
                re.search(r"event=%s(?![\w.])" % re.escape(e), section) is not None)

t.done()
