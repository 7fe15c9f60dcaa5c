"""A TCP forwarder: LISTEN_HOST:LISTEN_PORT → 127.0.0.1:TARGET_PORT.

The real node's pods cannot reach the host's loopback, where the local apiserver listens, and
there is no kube-proxy to DNAT the `kubernetes` Service. This stands in for it on the pod
bridge's gateway address (which the node created) so in-cluster clients use their SA token.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading


def pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def serve(host: str, port: int, target: int) -> None:
    with socket.create_server((host, port)) as srv:
        while True:
            client, _ = srv.accept()
            try:
                upstream = socket.create_connection(("127.0.0.1", target), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
