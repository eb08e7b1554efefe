#!/usr/bin/env python3
"""t-tls.py's every check again with qmail-smtpd-listen -t as the TLS
front in place of tcpserver + qmail-tlsd: the same relay and session,
resident, with the same privilege split."""
import os, runpy
os.environ["TLS_FRONT"] = "listen"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "t-tls.py"), run_name="__main__")
