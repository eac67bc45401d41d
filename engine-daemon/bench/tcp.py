#!/usr/bin/python3
"""TCP probes for engine-daemon/bench/net.sh (the container serves
`nc -ll -p 80 -e wc -c`: it answers each connection with the byte count).

  tcp.py first ENGINE_CLI...   run `ENGINE_CLI run -d -p 0:80 bb nc ...`, find the
                               port (`ENGINE_CLI port`), connect until the server
                               answers; prints "<ms> <container id>"
  tcp.py send PORT BYTES       send BYTES to 127.0.0.1:PORT, check the count the
                               server read; prints "<MiB/s>"
"""
import socket, subprocess, sys, time

def probe(port, nbytes=0, timeout=5.0):
    """Connect, send nbytes, half-close; the server's count, or None."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError:
        return None
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
        return int(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    finally:
        s.close()

def first(cli):
    t0 = time.monotonic()
    cid = subprocess.run(cli + ["run", "-d", "-p", "0:80"] + RUN_FLAGS + ["bb", "nc", "-ll", "-p", "80", "-e", "wc", "-c"],
                         check=True, capture_output=True, text=True).stdout.strip()
    out = subprocess.run(cli + ["port", cid, "80/tcp"], check=True, capture_output=True, text=True).stdout
    port = int(out.splitlines()[0].rsplit(":", 1)[1])
    deadline = t0 + 30
    while probe(port, 0, 1.0) != 0:
        if time.monotonic() > deadline:
            sys.exit(f"no answer on port {port} within 30 s")
        time.sleep(0.001)
    print(f"{(time.monotonic() - t0) * 1000:.1f} {cid}")

def send(port, nbytes):
    t0 = time.monotonic()
    got = probe(port, nbytes, 60)
    dt = time.monotonic() - t0
    if got != nbytes:
        sys.exit(f"the server read {got} bytes of {nbytes}")
    print(f"{nbytes / dt / (1 << 20):.0f}")

if __name__ == "__main__":
    if sys.argv[1] == "first":
        import os
        RUN_FLAGS = os.environ.get("RUN_FLAGS", "").split()
        first(sys.argv[2:])
    else:
        send(int(sys.argv[2]), int(sys.argv[3]))
