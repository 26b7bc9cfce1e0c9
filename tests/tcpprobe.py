"""TCP probes for the kernel tests that check packet predictions on real rules.

``LISTENER`` (run in an endpoints namespace with "IP:port" arguments) accepts on
each address and answers with the address it accepted on and the peer's;
``CONNECTOR`` (run in a client namespace with a JSON list of [src, dst, port, n])
makes n connections per flow and prints, per flow, the answers or "refused",
"timeout", "eperm" (a local rule refused the SYN) or "error ...".
``ip_in`` / ``exec_in`` run ``ip -n NS ...`` / ``ip netns exec NS ...``.
"""

from __future__ import annotations

import subprocess
import textwrap

LISTENER = textwrap.dedent("""
    import selectors, socket, sys
    sel = selectors.DefaultSelector()
    for item in sys.argv[1:]:
        ip, port = item.rsplit(":", 1)
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, int(port))); s.listen(128); s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            try:
                c, peer = key.fileobj.accept()
            except BlockingIOError:
                continue
            me = c.getsockname()
            c.sendall(f"{me[0]}:{me[1]} {peer[0]}\\n".encode()); c.close()
""")

CONNECTOR = textwrap.dedent("""
    import json, socket, sys
    out = []
    for src, dst, port, n in json.loads(sys.argv[1]):
        res = []
        for _ in range(n):
            s = socket.socket(); s.settimeout(1.0)
            try:
                s.bind((src, 0)); s.connect((dst, port))
                res.append(s.recv(200).decode().strip())
            except ConnectionRefusedError:
                res.append("refused")
            except (socket.timeout, TimeoutError):
                res.append("timeout")
            except PermissionError:
                res.append("eperm")
            except OSError as e:
                res.append("error " + str(e))
            finally:
                s.close()
        out.append(res)
    print(json.dumps(out))
""")


def ip_in(ns: str, *args: str, input: str | None = None) -> None:
    subprocess.run(["ip", "-n", ns, *args] if ns else ["ip", *args], check=True, input=input, text=True,
                   capture_output=True)


def exec_in(ns: str, *argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, **kw)
