#!/usr/bin/env python3
"""README and the tree's comments against drift.

  - README.md stays an entry point: at most 15 KB, no privilege table of
    its own (SECURITY has the one), a link to SECURITY;
  - README names every installed program (the PROGS of */*.mk), so that
    its list of manual pages covers them all;
  - every repository path README gives in backquotes exists (an installed
    one is written PREFIX/...);
  - no issue numbers and no one machine's timings in the sources, tests
    and documents outside bench/ (the history is in git, the figures in
    bench/).
"""
import os, re, subprocess, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness
from harness import T

ROOT = harness.ROOT
t = T()


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8", errors="replace") as f:
        return f.read()


readme = read("README.md")
size = len(readme.encode())
t.check("README.md is at most 15 KB", size <= 15 * 1024, size)
t.check("README has no privilege table (SECURITY has the one)",
        not re.search(r"^\|\s*program\s*\|\s*(uid|runs as)\s*\|", readme, re.M | re.I))
t.check("README links to SECURITY", "(SECURITY)" in readme)

progs = set()
for d in sorted(os.listdir(ROOT)):
    folder = os.path.join(ROOT, d)
    if not os.path.isdir(folder) or d.startswith("."):
        continue
    for name in sorted(os.listdir(folder)):
        if name.endswith(".mk"):
            for m in re.finditer(r"^PROGS\s*\+?=\s*(.*)$", read(os.path.join(d, name)), re.M):
                progs.update(m.group(1).split())
t.check("the build names its programs", len(progs) >= 10, sorted(progs))
words = set(re.findall(r"[A-Za-z0-9_-]+", readme))
missing = sorted(p for p in progs if p not in words)
t.check("README names every installed program", not missing, missing)

def sources():
    """The repository's files: git's list, or a walk that skips builds."""
    try:
        r = subprocess.run(["git", "-C", ROOT, "ls-files"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, universal_newlines=True)
        if r.returncode == 0 and r.stdout:
            return [p for p in r.stdout.split("\n") if p]
    except OSError:
        pass
    out = []
    for dp, dn, fn in os.walk(ROOT):
        dn[:] = [d for d in dn if not (d.startswith(".") or d.startswith("build") or d == "var")]
        out += [os.path.relpath(os.path.join(dp, f), ROOT) for f in fn]
    return out


tracked = sources()
tops = {p.split("/", 1)[0] for p in tracked if "/" in p}
paths = set()
for span in re.findall(r"`([^`\n]+)`", readme):
    for tok in span.split():
        top = tok.split("/", 1)[0]
        if "/" in tok and top in tops and not re.search(r"[<*$]", tok):
            paths.add(tok.rstrip(".,;:"))
t.check("README gives repository paths", len(paths) >= 3, sorted(paths))
gone = sorted(p for p in paths if not os.path.exists(os.path.join(ROOT, p)))
t.check("every repository path README gives exists", not gone, gone)

# Built from parts so that this file does not match itself.
ISSUE = re.compile(r"\bissues?\s+#?[0-9]+|\bissue\s*#|\(#[0-9]+\)", re.I)
TIMING = re.compile(r"[0-9]+(\.[0-9]+)?\s*(ms|us|µs|s)\s+(here|on this (machine|box|host))\b"
                    r"|\bon this machine\b", re.I)
issue_hits, timing_hits = [], []
for rel in tracked:
    if not rel or rel.startswith("bench/") or "/fuzz-corpus" in rel or rel == "tests/t-docs.py":
        continue
    path = os.path.join(ROOT, rel)
    if not os.path.isfile(path):
        continue
    with open(path, "rb") as f:
        data = f.read()
    if b"\0" in data:
        continue
    text = data.decode("utf-8", "replace")
    for n, line in enumerate(text.split("\n"), 1):
        if ISSUE.search(line):
            issue_hits.append("%s:%d: %s" % (rel, n, line.strip()))
        if TIMING.search(line):
            timing_hits.append("%s:%d: %s" % (rel, n, line.strip()))
t.check("no issue numbers outside bench/", not issue_hits, issue_hits[:10])
t.check("no one machine's timings outside bench/", not timing_hits, timing_hits[:10])
t.done()
