#!/usr/bin/python3
"""A second, independent CRI client: written from the CRI v1 definitions
(api.proto) as kubelet uses them, with Python's gRPC (stubs generated at
test time by grpc_tools into --stubs) and websocket-client for the
streaming URLs. Driven by engine-cri/tests/pod_life.rs
(`python_client_walks_a_pod`): it walks a pod and exits non-zero on the
first thing that is not as kubelet expects.

The walk: pull with registry credentials (refused without), a sandbox with
port mappings and DNS config, a container with a security context, its
host port answering, exec with a terminal through the streaming URL
(WebSocket, v5.channel.k8s.io), logs reopened after kubelet-style rotation,
then stop and remove everything.
"""

import argparse
import base64
import json
import os
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--socket", required=True)
ap.add_argument("--stubs", required=True)
ap.add_argument("--image", required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--log-dir", required=True)
ap.add_argument("--host-netns", required=True)
ap.add_argument("--host-port", type=int, required=True)
args = ap.parse_args()
sys.path.insert(0, args.stubs)

import grpc  # noqa: E402
import websocket  # noqa: E402
import api_pb2 as pb  # noqa: E402
import api_pb2_grpc as rpc  # noqa: E402


def check(cond, what):
    if not cond:
        print("FAILED: " + what, file=sys.stderr)
        sys.exit(1)


def wait_for(pred, what, secs=20.0):
    deadline = time.monotonic() + secs
    while True:
        v = pred()
        if v:
            return v
        check(time.monotonic() < deadline, "timed out waiting for " + what)
        time.sleep(0.05)


channel = grpc.insecure_channel("unix://" + args.socket)
rt = rpc.RuntimeServiceStub(channel)
im = rpc.ImageServiceStub(channel)

v = rt.Version(pb.VersionRequest(version="v1"))
check(v.runtime_api_version == "v1", "runtime_api_version %r" % v.runtime_api_version)
st = rt.Status(pb.StatusRequest())
ready = {c.type: c.status for c in st.status.conditions}
check(ready.get("RuntimeReady") and ready.get("NetworkReady"), "conditions %r" % ready)

# Pull: refused without credentials, done with them (kubelet sends the
# `auth` form from a docker config: base64 user:password).
spec = pb.ImageSpec(image=args.image)
try:
    im.PullImage(pb.PullImageRequest(image=spec))
    check(False, "pull without credentials succeeded")
except grpc.RpcError as e:
    check(e.code() != grpc.StatusCode.OK, "pull without credentials")
auth = base64.b64encode(("%s:%s" % (args.user, args.password)).encode()).decode()
ref = im.PullImage(pb.PullImageRequest(image=spec, auth=pb.AuthConfig(auth=auth))).image_ref
check(ref.startswith("sha256:"), "image_ref %r" % ref)
status = im.ImageStatus(pb.ImageStatusRequest(image=spec))
check(status.image.id == ref, "image status %r" % status.image.id)

# A sandbox as kubelet makes one: port mappings, DNS config, log directory.
pod_cfg = pb.PodSandboxConfig(
    metadata=pb.PodSandboxMetadata(name="py", uid="uid-py", namespace="kube-test", attempt=0),
    hostname="py-pod",
    log_directory=args.log_dir,
    dns_config=pb.DNSConfig(servers=["10.96.0.10"], searches=["kube-test.svc.cluster.local"], options=["ndots:5"]),
    port_mappings=[
        pb.PortMapping(protocol=pb.TCP, container_port=8080, host_port=args.host_port),
        pb.PortMapping(protocol=pb.TCP, container_port=9090),
    ],
    labels={"app": "py"},
    linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
        namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))),
)
pod = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_cfg)).pod_sandbox_id
ps = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
check(ps.state == pb.SANDBOX_READY, "sandbox state %r" % ps.state)
check(ps.network.ip.startswith("10."), "pod ip %r" % ps.network.ip)

# A container with a security context: a user and group, no capabilities,
# no new privileges, a read-only root filesystem, RuntimeDefault seccomp.
script = ("(i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.05; done) & "
          "while true; do echo hi-from-pod | nc -l -p 8080; done")
ctr_cfg = pb.ContainerConfig(
    metadata=pb.ContainerMetadata(name="web", attempt=0),
    image=spec,
    command=["sh", "-c", script],
    log_path="web/0.log",
    linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
        run_as_user=pb.Int64Value(value=1000),
        run_as_group=pb.Int64Value(value=1000),
        capabilities=pb.Capability(drop_capabilities=["ALL"]),
        no_new_privs=True,
        readonly_rootfs=True,
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        masked_paths=["/proc/kcore"],
        readonly_paths=["/proc/sys"],
    )),
)
ctr = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=ctr_cfg, sandbox_config=pod_cfg)).container_id
rt.StartContainer(pb.StartContainerRequest(container_id=ctr))
wait_for(lambda: rt.ContainerStatus(pb.ContainerStatusRequest(container_id=ctr)).status.state == pb.CONTAINER_RUNNING,
         "the container to run")


def exec_sync(cmd):
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=ctr, cmd=cmd, timeout=10))
    return r.exit_code, r.stdout.decode(), r.stderr.decode()


code, out, _ = exec_sync(["sh", "-c", "id -u; id -g; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/1/status"])
words = out.split()
check(code == 0 and words[:2] == ["1000", "1000"], "user %r" % out)
check("CapEff: 0000000000000000" in " ".join(words), "capabilities %r" % out)
check("NoNewPrivs: 1" in " ".join(words) and "Seccomp: 2" in " ".join(words), "confinement %r" % out)
code, _, err = exec_sync(["touch", "/written"])
check(code != 0 and "Read-only file system" in err, "read-only rootfs: %r %r" % (code, err))
code, out, _ = exec_sync(["sh", "-c", "hostname; cat /etc/resolv.conf"])
check(out.startswith("py-pod\n"), "hostname %r" % out)
for want in ["nameserver 10.96.0.10", "search kube-test.svc.cluster.local", "options ndots:5"]:
    check(want in out, "resolv.conf lacks %r: %r" % (want, out))


# The host port (in the test's host namespace) reaches the pod's 8080.
def via_host_port():
    r = subprocess.run(["nsenter", "--net=" + args.host_netns, "/bin/busybox", "nc", "-w", "5", "127.0.0.1",
                        str(args.host_port)], stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    return r.stdout == b"hi-from-pod\n"


wait_for(via_host_port, "the host port to answer")

# Exec with a terminal through the streaming URL: WebSocket, the channel
# protocol (0 stdin, 1 stdout, 3 error, 4 resize), exit code on channel 3.
url = rt.Exec(pb.ExecRequest(container_id=ctr, cmd=["sh", "-c", "read x; stty size; echo tty-$x; exit 3"],
                             tty=True, stdin=True, stdout=True, stderr=False)).url
check(url.startswith("http://"), "url %r" % url)
ws = websocket.create_connection("ws://" + url[len("http://"):], subprotocols=["v5.channel.k8s.io"], timeout=20)
ws.send_binary(b"\x04" + json.dumps({"Width": 120, "Height": 33}).encode())
ws.send_binary(b"\x00go\r")
chans = {}
while True:
    op, data = ws.recv_data()
    if op == websocket.ABNF.OPCODE_CLOSE:
        break
    if op == websocket.ABNF.OPCODE_BINARY and data:
        chans.setdefault(data[0], bytearray()).extend(data[1:])
ws.close()
tty_out = bytes(chans.get(1, b"")).decode()
check("33 120\r\n" in tty_out and "tty-go\r\n" in tty_out, "tty exec output %r" % tty_out)
st = json.loads(bytes(chans[3]))
check(st["status"] == "Failure" and st["details"]["causes"][0]["message"] == "3", "exec status %r" % st)

# kubelet's log rotation: rename the file, ReopenContainerLog, new lines in
# a new file at the same path; the renamed one stops growing.
live = os.path.join(args.log_dir, "web", "0.log")
rotated = live + ".20260101-000000"


def cri_lines(path):
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for l in lines:
        t, stream, tag, _ = (l.split(" ", 3) + [""])[:4]
        check(t.endswith("Z") and stream in ("stdout", "stderr") and tag in ("P", "F"), "CRI log line %r" % l)
    return lines


wait_for(lambda: len(cri_lines(live)) >= 3, "ticks in the log")
os.rename(live, rotated)
rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=ctr))
old = cri_lines(rotated)
wait_for(lambda: len(cri_lines(live)) >= 3, "ticks in the reopened log")
check(cri_lines(rotated) == old, "the renamed log grew after the reopen")
last = int(old[-1].split(" ", 3)[3][len("tick"):])
check(cri_lines(live)[0].split(" ", 3)[3] == "tick%d" % (last + 1), "the new log starts with the next tick")

rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod))
rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod))
check(not rt.ListPodSandbox(pb.ListPodSandboxRequest()).items, "pods left")
check(not rt.ListContainers(pb.ListContainersRequest()).containers, "containers left")
im.RemoveImage(pb.RemoveImageRequest(image=spec))
check(not im.ImageStatus(pb.ImageStatusRequest(image=spec)).HasField("image"), "image left")
print("walk complete")
