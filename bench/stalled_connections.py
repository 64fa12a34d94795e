"""D2: N half-sent header blocks against a gateway whose open-file limit is 1024, then one real
request. Usage: stalled_connections.py BINARY [N]"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 1100
key = "sk-rss-0123456789abcdef0123456789"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def rss(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

def wait_port(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("no port")

d = tempfile.mkdtemp()
mp, gp = free_port(), free_port()
mock = subprocess.Popen([binary, "mock", "--port", str(mp)], stderr=subprocess.DEVNULL)
wait_port(mp)
cfg = os.path.join(d, "config.yaml")
open(cfg, "w").write(f"""model_list:
  - model_name: m
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{mp}/v1", api_key: x}}
general_settings:
  master_key: {key}
""")
log = open(os.path.join(d, "gw.log"), "w")
gw = subprocess.Popen(["bash", "-c", f"ulimit -n 1024; exec {binary} serve --config {cfg} --port {gp} --data-dir {d}/data"], stderr=log)
wait_port(gp)
base = rss(gw.pid)
socks = []
connect_failed = 0
for i in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", gp))
        s.send(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        socks.append(s)
    except OSError:
        connect_failed += 1
        s.close()
time.sleep(1)
held = rss(gw.pid)
t0 = time.time()
req = urllib.request.Request(f"http://127.0.0.1:{gp}/v1/chat/completions",
    data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
try:
    with urllib.request.urlopen(req, timeout=30) as r:
        result = r.status
except Exception as e:
    result = repr(e)[:120]
waited = time.time() - t0
try:
    ready = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{gp}/health/readiness", timeout=20).read())
except Exception as e:
    ready = {"status": repr(e)[:80]}
closed = 0
for s in socks:
    s.settimeout(0.01)
    try:
        closed += s.recv(1) == b""
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        closed += 1
gw.terminate(); mock.terminate(); gw.wait(); mock.wait(); log.close()
errs = [l.strip()[:160] for l in open(os.path.join(d, "gw.log")) if "limit" in l or "Too many" in l or "error" in l.lower()][:3]
print(json.dumps({"binary": binary, "stalled": n, "connect_failed": connect_failed, "rss_idle_mb": base, "rss_with_stalled_mb": held,
                  "real_request": result, "real_request_waited_s": round(waited, 1),
                  "readiness": ready.get("status"), "config_error": ready.get("config_error"),
                  "stalled_closed_by_server": closed, "log": errs}))
