"""nsrun.py [--over DIR:TARGET]... [--bind SRC:TARGET]... -- PROGRAM ARGS...

Runs one peer MTA from its unpacked Debian package (bench/bench.py starts
it under `unshare -m --propagation private`, so every mount here is seen by
this process tree only). A package's compiled-in paths (/etc/exim4,
/var/spool/smtpd, /usr/libexec/opensmtpd, the users in /etc/passwd) are
made to point into the bench base:
  --over DIR:TARGET   a read-only overlay of DIR on top of TARGET (DIR's
                      files win, TARGET's others stay visible);
  --bind SRC:TARGET   SRC bind-mounted on TARGET.
Then it becomes a child subreaper and runs PROGRAM as its child: the
processes a daemon detaches are reaped here, so their CPU time lands in
this process's cutime/cstime, where the bench reads it. SIGTERM, SIGINT
and SIGHUP are passed on to PROGRAM; it exits with PROGRAM's status once
PROGRAM and every orphan it left have exited.
"""
import ctypes, os, signal, subprocess, sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv):
    if "--" not in argv:
        sys.exit("usage: nsrun.py [--over DIR:TARGET] [--bind SRC:TARGET] -- PROGRAM ARGS")
    cut = argv.index("--")
    opts, prog = argv[:cut], argv[cut + 1:]
    if len(opts) % 2 or not prog:
        sys.exit("nsrun: bad arguments")
    for flag, arg in zip(opts[::2], opts[1::2]):
        src, _, target = arg.partition(":")
        if flag == "--over":
            mnt = ["mount", "-t", "overlay", "overlay", "-o",
                   "lowerdir=%s:%s" % (src, target), target]
        elif flag == "--bind":
            mnt = ["mount", "--bind", src, target]
        else:
            sys.exit("nsrun: unknown option " + flag)
        subprocess.run(mnt, check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("nsrun: prctl: %s" % os.strerror(ctypes.get_errno()))
    child = subprocess.Popen(prog, stdin=subprocess.DEVNULL)

    def forward(sig, frame):
        try:
            os.kill(child.pid, sig)
        except ProcessLookupError:
            pass
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, forward)
    status = None
    while True:
        try:
            pid, st = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child.pid:
            child.returncode = status = os.waitstatus_to_exitcode(st)
    sys.exit(0 if status == 0 else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
