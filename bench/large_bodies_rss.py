"""RSS of a gateway under N concurrent large chat bodies (issue #10, D9). Usage: large_bodies_rss.py BINARY [N] [MB] [max_inflight_request_mb]"""
import json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10
mb = int(sys.argv[3]) if len(sys.argv) > 3 else 30
key = "sk-rss-0123456789abcdef0123456789"

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def status(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) // 1024  # MB
    return None

def wait_port(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close(); return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} never opened")

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
""" + (f"tollgate_settings:\n  max_inflight_request_mb: {sys.argv[4]}\n" if len(sys.argv) > 4 else ""))
gw = subprocess.Popen([binary, "serve", "--config", cfg, "--port", str(gp), "--data-dir", os.path.join(d, "data"), "--no-watch"], stderr=subprocess.DEVNULL)
wait_port(gp)
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * (mb * 1024 * 1024 - 200)}]}).encode()
idle_rss = status(gw.pid, "VmRSS")
codes = []
def one():
    req = urllib.request.Request(f"http://127.0.0.1:{gp}/v1/chat/completions", data=body,
                                 headers={"authorization": f"Bearer {key}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=300) as r:
            codes.append(r.status); r.read()
    except urllib.error.HTTPError as e:
        codes.append(e.code)
    except Exception as e:
        codes.append(repr(e)[:60])
peak = 0
ts = [threading.Thread(target=one) for _ in range(n)]
for t in ts: t.start()
while any(t.is_alive() for t in ts):
    peak = max(peak, status(gw.pid, "VmRSS")); time.sleep(0.02)
for t in ts: t.join()
time.sleep(2)
after = status(gw.pid, "VmRSS")
hwm = status(gw.pid, "VmHWM")
print(json.dumps({"binary": binary, "bodies": n, "mb_each": mb, "idle_rss_mb": idle_rss, "peak_rss_mb_sampled": peak,
                  "vm_hwm_mb": hwm, "rss_after_2s_mb": after, "statuses": sorted(map(str, codes))}))
gw.terminate(); mock.terminate(); gw.wait(); mock.wait()
