#!/usr/bin/python3
"""Pod start through engine-cri (CRI gRPC) beside the same operations
through engined (Docker API), from one client language so the client's
own cost is alike on both sides. Run by engine-cri/bench/cri.sh.

A pod is a sandbox plus one container, timed from the first request to
the container running: through CRI RunPodSandbox, CreateContainer,
StartContainer; through engined a pause container (`--init`, no network)
created and started, then a container in its network namespace
(`container:<pause>`) created and started.
"""
import argparse
import concurrent.futures
import http.client
import json
import socket
import statistics
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--cri", required=True)
ap.add_argument("--engined", required=True)
ap.add_argument("--stubs", required=True)
ap.add_argument("--image", required=True, help="engined's busybox image")
ap.add_argument("--seq", type=int, default=10)
ap.add_argument("--par", type=int, default=30)
args = ap.parse_args()
sys.path.insert(0, args.stubs)
import grpc  # noqa: E402
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as rpc  # noqa: E402

CRI_IMAGE = "engine-cri/pause:busybox"
rt = rpc.RuntimeServiceStub(grpc.insecure_channel("unix://" + args.cri))


def cri_pod(n):
    t = time.monotonic()
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="b%d" % n, uid="u%d" % n, namespace="bench"))
    pod = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    c = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, sandbox_config=cfg, config=pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="app"), image=pb.ImageSpec(image=CRI_IMAGE),
        command=["sleep", "100000"]))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=c))
    return time.monotonic() - t


def cri_clean():
    for p in rt.ListPodSandbox(pb.ListPodSandboxRequest()).items:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=p.id))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=p.id))


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def api(method, path, body=None):
    c = Unix(args.engined)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    if r.status >= 300:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status, data))
    return json.loads(data) if data else None


def engined_pod(n):
    t = time.monotonic()
    pause = api("POST", "/containers/create", {"Image": args.image, "Cmd": ["sleep", "100000"],
                                               "HostConfig": {"NetworkMode": "none", "Init": True}})["Id"]
    api("POST", "/containers/%s/start" % pause)
    app = api("POST", "/containers/create", {"Image": args.image, "Cmd": ["sleep", "100000"],
                                             "HostConfig": {"NetworkMode": "container:" + pause}})["Id"]
    api("POST", "/containers/%s/start" % app)
    return time.monotonic() - t


def engined_clean():
    for c in api("GET", "/containers/json?all=1"):
        api("DELETE", "/containers/%s?force=1" % c["Id"])


def measure(pod, clean):
    seq = [pod(i) for i in range(args.seq)]
    clean()
    t = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.par) as ex:
        par = list(ex.map(pod, range(1000, 1000 + args.par)))
    wall = time.monotonic() - t
    clean()
    return statistics.median(seq), statistics.median(par), wall


# One pod each first (warms the page cache and the images).
cri_pod(999)
cri_clean()
engined_pod(999)
engined_clean()
c = measure(cri_pod, cri_clean)
e = measure(engined_pod, engined_clean)
print("| pod = sandbox + container to running | engine-cri (CRI) | engined (Docker API) | ratio CRI/engined |")
print("| --- | --- | --- | --- |")
for i, what in enumerate(["median, %d one after another" % args.seq, "median, %d at once" % args.par,
                          "all %d at once, wall" % args.par]):
    print("| %s | %.0f ms | %.0f ms | %.2f |" % (what, c[i] * 1000, e[i] * 1000, c[i] / e[i]))
