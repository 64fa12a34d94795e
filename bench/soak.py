"""Soak test (issue 10): mixed traffic at a fixed total rate for minutes, against a release build.

Four open-loop oha streams run side by side against one gateway:
  plain      50 %  ~1 KB chat, answered                      -> every response 200
  streamed   30 %  the same, `stream: true`                  -> every response 200
  failing    10 %  a model whose provider always answers 500 -> 500 (the provider's) or 503
                                                                (its deployment cooling down)
  cancelled  10 %  a model whose provider takes 400 ms, with a 100 ms client timeout: every
                   request is abandoned by its client mid-flight

It samples the gateway's RSS every few seconds, then stops the gateway with SIGTERM and checks:
  - gateway-made 5xx = 0: a 5xx in the plain/streamed classes, or a record whose fault is the
    gateway's;
  - records = responses: one request record (distinct request id) per request oha sent,
    abandoned ones included; nothing dropped or failed by the writer;
  - RSS flat: the last sample within 10 % of the first sample after warm-up;
  - p99 per class.

Standard library only. Run through bench/soak.sh (it installs oha and builds the binary).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

KEY = "sk-bench-soak-0123456789abcdef0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    import urllib.request

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rss_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("VmHWM:"):
            hwm = int(line.split()[1])
    return rss, hwm


def body(model: str, stream: bool) -> str:
    # ~1 KB of prompt, varied per class so nothing is a repeat of another class.
    text = ("Refactor the request parser so that it streams its input. " * 16)[:1000]
    b = {"model": model, "messages": [{"role": "user", "content": f"{model}: {text}"}]}
    if stream:
        b["stream"] = True
    return json.dumps(b)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tollgate", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--rate", type=int, default=1000, help="total requests per second")
    ap.add_argument("--out-dir", default="bench/out/soak")
    ap.add_argument("--sample-every", type=float, default=5.0)
    args = ap.parse_args()

    out = Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    if data.exists():
        for p in sorted(data.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
    jsonl = out / "records.jsonl"
    jsonl.unlink(missing_ok=True)

    fast_port, slow_port, gw_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen] = []

    def spawn(name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(out / f"{name}.log", "w")
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT if name != "gateway" else log)
        procs.append(p)
        return p

    spawn("mock-fast", [args.tollgate, "mock", "--port", str(fast_port), "--fail", "failing=1.0:500"])
    spawn("mock-slow", [args.tollgate, "mock", "--port", str(slow_port), "--delay-ms", "400"])
    (out / "config.yaml").write_text(
        f"""model_list:
  - model_name: deepseek-v3.2
    litellm_params: {{model: deepseek/deepseek-v3.2, api_base: "http://127.0.0.1:{fast_port}/v1", api_key: k}}
  - model_name: failing
    litellm_params: {{model: openai/failing, api_base: "http://127.0.0.1:{fast_port}/v1", api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
  - model_name: slow
    litellm_params: {{model: openai/slow, api_base: "http://127.0.0.1:{slow_port}/v1", api_key: k, input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}}
general_settings:
  master_key: {KEY}
"""
    )
    gw_err = open(out / "gateway.stderr", "w")
    gw = subprocess.Popen(
        [args.tollgate, "serve", "--config", str(out / "config.yaml"), "--port", str(gw_port),
         "--data-dir", str(data), "--log-jsonl", str(jsonl), "--no-watch"],
        stdout=subprocess.DEVNULL, stderr=gw_err,
    )
    procs.append(gw)
    try:
        wait_http(f"http://127.0.0.1:{fast_port}/v1/models")
        wait_http(f"http://127.0.0.1:{gw_port}/health/liveliness")

        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        classes = {
            "plain": ("deepseek-v3.2", False, 0.5, []),
            "streamed": ("deepseek-v3.2", True, 0.3, []),
            "failing": ("failing", False, 0.1, []),
            "cancelled": ("slow", False, 0.1, ["-t", "100ms"]),
        }
        oha_procs = {}
        for name, (model, stream, share, extra) in classes.items():
            bpath = out / f"body-{name}.json"
            bpath.write_text(body(model, stream))
            rate = max(1, round(args.rate * share))
            cmd = [args.oha, url, "-z", f"{args.seconds}s", "-q", str(rate), "--latency-correction",
                   "-c", "64", "--no-tui", "--output-format", "json", "-m", "POST",
                   "-H", f"Authorization: Bearer {KEY}", "-H", "content-type: application/json",
                   "-D", str(bpath), *extra]
            oha_procs[name] = subprocess.Popen(cmd, stdout=open(out / f"oha-{name}.json", "w"),
                                               stderr=open(out / f"oha-{name}.err", "w"))

        samples: list[tuple[float, int, int]] = []
        start = time.time()
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.is_set():
                rss, hwm = rss_kb(gw.pid)
                samples.append((time.time() - start, rss, hwm))
                stop_sampling.wait(args.sample_every)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for p in oha_procs.values():
            p.wait()
        stop_sampling.set()
        sampler.join()
        time.sleep(1.0)
        final_rss, peak_rss = rss_kb(gw.pid)

        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=60)
        gw_err.close()
        stderr = (out / "gateway.stderr").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    # What the clients saw.
    results = {}
    sent_total = 0
    aborted_total = 0
    for name in classes:
        d = json.loads((out / f"oha-{name}.json").read_text())
        codes = {int(k): v for k, v in d.get("statusCodeDistribution", {}).items()}
        errors = d.get("errorDistribution", {})
        # oha aborts the requests still open when its duration ends: some had reached the
        # gateway (and have a record), some had not yet been written. They bound the check.
        at_deadline = sum(v for k, v in errors.items() if "deadline" in k)
        sent = sum(codes.values()) + sum(errors.values()) - at_deadline
        sent_total += sent
        aborted_total += at_deadline
        results[name] = {
            "sent": sent,
            "codes": codes,
            "errors": errors,
            "rps": d["summary"]["requestsPerSec"],
            "p50_ms": (d["latencyPercentiles"].get("p50") or 0) * 1000,
            "p99_ms": (d["latencyPercentiles"].get("p99") or 0) * 1000,
        }

    # What the gateway recorded: one request record per request (a failed request also leaves a
    # record per attempt, with the same request id).
    request_ids, gateway_faults, faults = set(), 0, {}
    for line in jsonl.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        request_ids.add(r["request_id"])
        f = r.get("fault")
        faults[f] = faults.get(f, 0) + 1
        if f == "gateway" or (r["http_status"] >= 500 and f not in ("deployment",)):
            gateway_faults += 1
    bad_5xx = sum(
        v for name in ("plain", "streamed") for code, v in results[name]["codes"].items() if code >= 500
    )
    non_200 = sum(
        v for name in ("plain", "streamed") for code, v in results[name]["codes"].items() if code != 200
    )
    stopped = next((l for l in stderr.splitlines() if l.startswith("stopped:")), "stopped: (no summary line)")

    records_ok = sent_total <= len(request_ids) <= sent_total + aborted_total
    steady = [s for s in samples if s[0] >= min(60.0, args.seconds / 5)] or samples
    first, last = steady[0][1], steady[-1][1]
    drift = (last - first) / first * 100 if first else 0.0
    lines = [
        f"Soak: {args.seconds} s at {args.rate} req/s total (plain 50 %, streamed 30 %, failing 10 %, cancelled 10 %), "
        f"commit {subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()}",
        "",
        "| class | sent | achieved req/s | statuses | client errors | p50 ms | p99 ms |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for name, r in results.items():
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items())) or "-"
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "-"
        lines.append(f"| {name} | {r['sent']} | {r['rps']:.0f} | {codes} | {errs} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    lines += [
        "",
        f"- gateway-made 5xx: {bad_5xx + gateway_faults} (5xx in plain/streamed: {bad_5xx}, records with the gateway's fault: {gateway_faults}); non-200 in plain/streamed: {non_200}",
        f"- requests answered or abandoned by their client {sent_total} (+ {aborted_total} cut by oha at the end of the run), "
        f"request records {len(request_ids)} ({'equal' if records_ok else 'DIFFERENT'}); records by fault: {json.dumps(faults)}",
        f"- writer: `{stopped}`",
        f"- RSS after warm-up {first / 1024:.1f} MB, at the end {last / 1024:.1f} MB ({drift:+.1f} %), "
        f"min {min(s[1] for s in steady) / 1024:.1f} MB, max {max(s[1] for s in steady) / 1024:.1f} MB; peak (VmHWM) {peak_rss / 1024:.1f} MB; after the load {final_rss / 1024:.1f} MB",
        "- RSS over time (s: MB): " + ", ".join(f"{t:.0f}: {r / 1024:.1f}" for t, r, _ in samples[:: max(1, len(samples) // 20)]),
    ]
    text = "\n".join(lines)
    (out / "soak.md").write_text(text + "\n")
    print(text)
    ok = (
        bad_5xx + gateway_faults == 0
        and records_ok
        and abs(drift) <= 10.0
        and " 0 failed, 0 dropped" in stopped
    )
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
