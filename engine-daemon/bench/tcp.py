#!/usr/bin/python3
"""TCP probes for engine-daemon/bench/net.sh (the container serves
`nc -ll -p 80 -e sh -c 'cat >/dev/null && echo ok'`: it answers "ok" once it
has read a connection to its end, so an answer means every byte arrived).

  tcp.py first ENGINE_CLI...   run `ENGINE_CLI run -d -p 0:80 bb nc ...`, find the
                               port (`ENGINE_CLI port`), connect until the server
                               answers; prints "<ms> <container id>"
  tcp.py send PORT BYTES       send BYTES to 127.0.0.1:PORT, wait for the server's
                               answer; prints "<MiB/s>"
"""
import socket, subprocess, sys, time

def probe(port, nbytes=0, timeout=5.0):
    """Connect, send nbytes, half-close; True when the server answered."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return False
    try:
        chunk = b"\0" * (1 << 20)
        left = nbytes
        while left > 0:
            n = min(left, len(chunk))
            s.sendall(chunk[:n] if n < len(chunk) else chunk)
            left -= n
        s.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            b = s.recv(64)
            if not b:
                break
            data += b
        return data.strip() == b"ok"
    except OSError:
        return False
    finally:
        s.close()

SERVER = ["bb", "nc", "-ll", "-p", "80", "-e", "sh", "-c", "cat >/dev/null && echo ok"]

def first(cli):
    t0 = time.monotonic()
    cid = subprocess.run(cli + ["run", "-d", "-p", PORT_SPEC] + RUN_FLAGS + SERVER,
                         check=True, capture_output=True, text=True).stdout.strip()
    out = subprocess.run(cli + ["port", cid, "80/tcp"], check=True, capture_output=True, text=True).stdout
    port = int(out.splitlines()[0].rsplit(":", 1)[1])
    deadline = t0 + 30
    while not probe(port, 0, 1.0):
        if time.monotonic() > deadline:
            sys.exit(f"no answer on port {port} within 30 s")
        time.sleep(0.001)
    print(f"{(time.monotonic() - t0) * 1000:.1f} {cid}")

def send(port, nbytes):
    t0 = time.monotonic()
    ok = probe(port, nbytes, 60)
    dt = time.monotonic() - t0
    if not ok:
        sys.exit(f"the server did not confirm {nbytes} bytes")
    print(f"{nbytes / dt / (1 << 20):.0f}")

if __name__ == "__main__":
    if sys.argv[1] == "first":
        import os
        RUN_FLAGS = os.environ.get("RUN_FLAGS", "").split()
        # podman refuses host port 0; `-p 80` is its way to ask for a free one.
        PORT_SPEC = os.environ.get("PORT_SPEC", "0:80")
        first(sys.argv[2:])
    else:
        send(int(sys.argv[2]), int(sys.argv[3]))
