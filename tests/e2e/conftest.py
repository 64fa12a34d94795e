"""Fixtures for the end-to-end suite: a `tollgate mock` provider and `tollgate serve` on an
unmodified LiteLLM config.yaml, both as real subprocesses on free ports.

Run through tests/e2e/run.sh, which sets TOLLGATE_BIN.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional

import httpx
import openai
import pytest

# Secrets are random per run, so "the key never appears in X" cannot pass by accident.
MASTER_KEY = "sk-e2e-master-" + secrets.token_hex(16)
PROVIDER_KEYS = {
    "DEEPSEEK_API_KEY": "sk-deepseek-e2e-" + secrets.token_hex(12),
    "MINIMAX_API_KEY": "minimax-e2e-" + secrets.token_hex(12),
    "XAI_API_KEY": "xai-e2e-" + secrets.token_hex(12),
}
ALL_SECRETS = [MASTER_KEY, *PROVIDER_KEYS.values()]

# model_name -> LiteLLM model string, in config order.
GROUPS = {
    "deepseek-v3.2": "deepseek/deepseek-v3.2",
    "minimax-m2.1": "minimax/MiniMax-M2.1",
    "grok-4.1-fast": "xai/grok-4-1-fast-reasoning",
}

# List prices per token (LiteLLM's model_prices_and_context_window.json): input, cache read, output.
PRICES = {
    "deepseek-v3.2": (2.8e-07, 2.8e-08, 4e-07),
    "minimax-m2.1": (3e-07, 3e-08, 1.2e-06),
    "grok-4.1-fast": (2e-07, 5e-08, 5e-07),
}
EMBEDDING_PRICE = 2e-08

# A LiteLLM proxy config.yaml exactly as a LiteLLM user has it: keys from the environment,
# settings tollgate does not act on (drop_params, num_retries, routing_strategy) left in.
LITELLM_CONFIG = """\
model_list:
  - model_name: deepseek-v3.2
    litellm_params:
      model: deepseek/deepseek-v3.2
      api_base: os.environ/MOCK_API_BASE
      api_key: os.environ/DEEPSEEK_API_KEY
  - model_name: minimax-m2.1
    litellm_params:
      model: minimax/MiniMax-M2.1
      api_base: os.environ/MOCK_API_BASE
      api_key: os.environ/MINIMAX_API_KEY
  - model_name: grok-4.1-fast
    litellm_params:
      model: xai/grok-4-1-fast-reasoning
      api_base: os.environ/MOCK_API_BASE
      api_key: os.environ/XAI_API_KEY

litellm_settings:
  drop_params: true
  num_retries: 0

general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY

router_settings:
  routing_strategy: simple-shuffle
"""

# The same config with an embedding model added (LiteLLM's syntax for one).
EMBEDDING_MODEL = "text-embedding-3-small"
LITELLM_CONFIG_WITH_EMBEDDINGS = LITELLM_CONFIG.replace(
    "\nlitellm_settings:",
    """  - model_name: text-embedding-3-small
    litellm_params:
      model: openai/text-embedding-3-small
      api_base: os.environ/MOCK_API_BASE
      api_key: os.environ/OPENAI_API_KEY
    model_info:
      mode: embedding

litellm_settings:""",
    1,
)
EMBEDDING_KEY = "sk-openai-e2e-" + secrets.token_hex(12)

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0


def records_of(gw: "Gateway", end_user: str, n: int = 1, timeout: float = 10.0) -> List[dict]:
    """The records of one end user in the gateway's JSONL (the writer batches, so poll for them)."""
    deadline = time.monotonic() + timeout
    found: List[dict] = []
    while time.monotonic() < deadline:
        if Path(gw.jsonl_path).exists():
            lines = Path(gw.jsonl_path).read_text().splitlines()
            found = [r for r in (json.loads(l) for l in lines if l.strip()) if r.get("end_user") == end_user]
            if len(found) >= n:
                return found
        time.sleep(0.05)
    raise AssertionError(f"expected {n} record(s) for {end_user}, found {found}")


def tollgate_bin() -> str:
    path = os.environ.get("TOLLGATE_BIN")
    if not path:
        pytest.exit("TOLLGATE_BIN is not set; run the suite with tests/e2e/run.sh", returncode=2)
    if not os.access(path, os.X_OK):
        pytest.exit(f"TOLLGATE_BIN={path} is not an executable", returncode=2)
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(mock_api_base: str, master_key: str = MASTER_KEY) -> Dict[str, str]:
    """The process environment with the variables the config's `os.environ/` references name.
    An ambient DATABASE_URL is dropped too: only the tests that ask for Postgres use one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_") and k != "DATABASE_URL"}
    env.update(PROVIDER_KEYS)
    env["OPENAI_API_KEY"] = EMBEDDING_KEY
    env["MOCK_API_BASE"] = mock_api_base
    env["LITELLM_MASTER_KEY"] = master_key
    return env


def run_tollgate(args: List[str], env: Dict[str, str], timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tollgate_bin(), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
    )


class Process:
    """A tollgate subprocess whose stdout/stderr go to files (a full pipe would block it)."""

    def __init__(self, name: str, args: List[str], env: Dict[str, str], workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [tollgate_bin(), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
        )

    def stderr(self) -> str:
        # The child writes to the file directly; our handle is never written to.
        return self.stderr_path.read_text(errors="replace")

    def wait_until(self, url: str, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before answering {url}:\n{self.stderr()}"
                )
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError as e:
                last = e
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not answer {url} within {timeout}s ({last}):\n{self.stderr()}")

    def terminate(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, as `docker stop` and systemd send, and the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for f in (self._out, self._err):
            if not f.closed:
                f.close()


class Mock:
    def __init__(self, workdir: Path, fail_rules: Optional[List[str]] = None):
        self.port = free_port()
        args = ["mock", "--port", str(self.port)]
        for rule in fail_rules or []:
            args += ["--fail", rule]
        self.process = Process(f"mock-{self.port}", args, dict(os.environ), workdir)
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_base = f"{self.url}/v1"
        self.process.wait_until(f"{self.url}/mock/stats")

    def stats(self) -> Dict[str, int]:
        return httpx.get(f"{self.url}/mock/stats", timeout=5).json()


class Gateway:
    """`tollgate serve` on a config written to `workdir`, recording to `workdir`."""

    def __init__(
        self,
        workdir: Path,
        mock: Mock,
        config_text: str = LITELLM_CONFIG,
        master_key: str = MASTER_KEY,
        extra_args: Optional[List[str]] = None,
        config_path: Optional[Path] = None,
    ):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        # A given config_path is a file several gateways share, as instances behind a load balancer do.
        if config_path is None:
            config_path = workdir / "config.yaml"
            config_path.write_text(config_text)
        self.config_path = config_path
        self.data_dir = workdir / "data"
        self.jsonl_path = workdir / "records.jsonl"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.url}/v1"
        self.mock = mock
        self.process = Process(
            f"serve-{self.port}",
            [
                "serve",
                "--config", str(self.config_path),
                "--port", str(self.port),
                "--data-dir", str(self.data_dir),
                "--log-jsonl", str(self.jsonl_path),
                *(extra_args or []),
            ],
            base_env(mock.api_base, master_key),
            workdir,
        )
        self.process.wait_until(f"{self.url}/health/readiness")

    def client(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("api_key", MASTER_KEY)
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30.0)
        return openai.OpenAI(base_url=self.base_url, **kwargs)

    def http(self, **kwargs) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {MASTER_KEY}"},
            timeout=30.0,
            **kwargs,
        )

    def stop(self) -> int:
        return self.process.terminate()

    def stderr(self) -> str:
        return self.process.stderr()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tollgate-e2e")


@pytest.fixture(scope="session")
def mock(workdir):
    m = Mock(workdir / "mock")
    yield m
    m.process.terminate()


@pytest.fixture(scope="session")
def failing_mock(workdir):
    """A provider whose every answer fails: 500 for DeepSeek, 429 for MiniMax."""
    m = Mock(
        workdir / "failing-mock",
        fail_rules=["deepseek-v3.2=1.0:500", "MiniMax-M2.1=1.0:429"],
    )
    yield m
    m.process.terminate()


@pytest.fixture(scope="session")
def gateway(workdir, mock):
    """The gateway most tests share. Stopping it with SIGTERM must exit 0 (graceful shutdown)."""
    gw = Gateway(workdir / "gateway", mock)
    yield gw
    code = gw.stop()
    assert code == 0, f"tollgate serve exited with {code} on SIGTERM:\n{gw.stderr()}"


@pytest.fixture(scope="session")
def failing_gateway(workdir, failing_mock):
    """The same unmodified config, with MOCK_API_BASE pointing at the failing provider."""
    gw = Gateway(workdir / "failing-gateway", failing_mock)
    yield gw
    code = gw.stop()
    assert code == 0, f"tollgate serve exited with {code} on SIGTERM:\n{gw.stderr()}"


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    return gateway.client()


@pytest.fixture
def start_gateway(tmp_path, mock):
    """Starts function-scoped gateways (for tests that stop them or need another config)."""
    started: List[Gateway] = []

    def start(name: str = "gw", **kwargs) -> Gateway:
        gw = Gateway(tmp_path / name, kwargs.pop("mock", mock), **kwargs)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.process.kill()
