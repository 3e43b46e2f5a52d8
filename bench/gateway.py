"""Gateway: the latency Bastion adds with everything on, beside Portkey's, open-loop.

    uv run --group bench python bench/gateway.py [--duration 10] [--runs 3] [--rates 100,200,500]
                                                 [--no-portkey] [--profile]

Figures from issue 3. Three targets in front of the same fake upstream
(``python -m bastion.testing.upstream``, the model name ``delay:60`` answers after 60 ms,
``delay:1500`` after 1.5 s), each a separate process on 127.0.0.1:

- **direct**: the upstream itself (the baseline);
- **bastion**: ``bastion serve`` (one worker, the default; SQLite in a temporary home)
  with everything on: an API key, rate limits per key and user (requests and tokens per
  minute), a daily budget (worst-case reservation at admission, settlement after),
  masking of a 1 KB prompt holding an e-mail address, a phone number and a name, and one
  ledger event per call;
- **portkey**: Portkey's open-source gateway (``@portkey-ai/gateway`` from npm, run with
  node; installed once into ``bench/.cache/portkey``), routed with ``x-portkey-provider:
  openai`` and ``x-portkey-custom-host``. It does no auth, limits, budgets, masking or
  ledger in this configuration, so it has less to do.

Load is open-loop: request *i* is due at ``t0 + i / rate`` whether or not earlier ones
have answered (one aiohttp session on uvloop, no connection limit), and latency is
measured from the due time, so queuing anywhere — generator included — shows up as
latency. The generator's lag (actual send − due time) is reported beside it. Each point
runs ``--duration`` seconds at 100, 200 and 500 requests/s; the targets are alternated
(rotated each run), each run starts every server afresh, every figure is the median
over ``--runs`` runs, and *added* latency is target − direct per percentile, paired
within a run. Bastion's own
``x-bastion-overhead-ms`` header (the server's measure of its time outside the upstream)
is summarised too. Then the collapse test: 500 requests/s with the 1.5 s upstream.

The machine has 2 cores shared by the generator, the upstream and the gateway under
test, so CPU contention inflates every figure; each process's CPU use during each point
is recorded (``/proc/<pid>/stat``). ``--profile`` adds one Bastion point at 200
requests/s under ``py-spy record`` and reports the hottest functions.

Writes ``bench/results/gateway.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _machine import machine as machine_info

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "gateway.json"
CACHE = ROOT / "bench" / ".cache"
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = CACHE / "portkey"
PORTKEY_SCRIPT = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/build/start-server.js"

AIMS = {"added_p50_ms_at_200": 2.0, "added_p99_ms_at_200": 10.0}
TARGETS = ("direct", "bastion", "bastion-base", "bastion-2w", "portkey")
FAST_MS = 60
SLOW_MS = 1500
MAX_TOKENS = 64

# About 1 KB of prompt with personal data the policy masks: a name, an e-mail, a phone.
PROMPT = (
    "Hello, my name is Maria Schneider and I am writing about the invoice we discussed "
    "last week. You can reach me at maria.schneider@example.com or call me on "
    "+1 415 555 0132 any afternoon. Please summarise the following notes for the team "
    "in three short bullet points and keep the tone neutral. The quarterly review "
    "covered the migration of the billing service to the new cluster, the retirement of "
    "the legacy reporting jobs, and the plan to move nightly exports to an event-driven "
    "pipeline. Latency on the checkout path improved after the cache change, error "
    "rates stayed flat, and the on-call rotation was extended to two more engineers. "
    "Open questions remain about data retention for exported reports, the budget for "
    "the second region, and whether the vendor contract should be renewed for another "
    "year or replaced. The next review is scheduled for the first Monday of the month; "
    "action items were assigned to each owner and will be tracked in the usual board."
)

POLICY = """\
version: 1
providers:
  fake:
    kind: openai
    base_url: "http://127.0.0.1:{upstream_port}/v1"
    timeout_s: 30
models:
  bench-{fast}:
    provider: fake
    upstream_model: "delay:{fast}"
    price: {{input_per_1m: 0.40, output_per_1m: 1.60}}
    context_window: 128000
  bench-{slow}:
    provider: fake
    upstream_model: "delay:{slow}"
    price: {{input_per_1m: 0.40, output_per_1m: 1.60}}
    context_window: 128000
roles:
  admin: {{models: ["*"]}}
defaults:
  limits: {{requests_per_minute: 1000000, tokens_per_minute: 1000000000}}
  budgets: [{{usd: 1000000, per: day}}, {{usd: 10000000, per: month}}]
privacy:
  prompt:
    action: mask
    entities: [EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD, US_SSN, IBAN_CODE, IP_ADDRESS, PERSON]
  response: {{action: flag}}
  on_error: block
audit: {{store_content: false}}
"""


# --- processes ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _own_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process and its live children (uvicorn's workers), in ticks."""
    total = _own_ticks(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += cpu_ticks(int(child))
    return total


TICK = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks() -> int:
    """CPU ticks all cores spent not idle (from /proc/stat's first line)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # minus idle and iowait


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, cmd: list[str], port: int, workdir: Path, env: dict[str, str]) -> Server:
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        cwd=ROOT,
        start_new_session=True,
    )
    return Server(name, proc, port, log)


def wait_http(server: Server, path: str, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last: str = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            r = httpx.get(f"http://127.0.0.1:{server.port}{path}", timeout=2)
            if r.status_code < 500:
                return
            last = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{server.name} did not come up on :{server.port} ({last}):\n{tail}")


def run_cli(args: list[str], env: dict[str, str], python: str = sys.executable) -> str:
    out = subprocess.run(
        [python, "-m", "bastion.cli.main", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bastion {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def ensure_portkey() -> Path | None:
    """node, with Portkey's gateway installed in the cache; None (and why) when impossible."""
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        print("Portkey skipped: node and npm are needed for its gateway", flush=True)
        return None
    if not PORTKEY_SCRIPT.exists():
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(PORTKEY_DIR),
                "--no-audit",
                "--no-fund",
                f"@portkey-ai/gateway@{PORTKEY_VERSION}",
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not PORTKEY_SCRIPT.exists():
            print(f"Portkey skipped: npm install failed:\n{done.stderr[-2000:]}", flush=True)
            return None
    return Path(node)


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stdout or out.stderr).strip().splitlines()[-1] if (out.stdout or out.stderr) else ""


# --- the open-loop generator ---------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    models: dict[int, str]  # upstream delay (ms) -> model name to send
    pids: list[int] = field(default_factory=list)  # gateway process(es) to watch


def body_for(model: str) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": PROMPT},
            ],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
        }
    ).encode()


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def open_loop(
    session: Any, target: Target, delay_ms: int, rate: float, duration: float
) -> dict[str, Any]:
    """Send ``rate * duration`` requests at fixed intervals; latency from each due time."""
    import aiohttp

    body = body_for(target.models[delay_ms])
    n = int(rate * duration)
    latency: list[float] = []
    lag: list[float] = []
    overhead: list[float] = []
    ends: list[float] = []
    sends: list[float] = []
    errors: Counter[str] = Counter()
    clock = time.perf_counter

    async def one(due: float) -> None:
        sent = clock()
        sends.append(sent)
        lag.append((sent - due) * 1e3)
        try:
            async with session.post(target.url, data=body, headers=target.headers) as r:
                await r.read()
                status = r.status
                ovh = r.headers.get("x-bastion-overhead-ms")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # the class and the message's start (an errno says where a connection failed)
            errors[f"{type(exc).__name__}: {str(exc)[:80]}".rstrip(": ")] += 1
            return
        end = clock()
        if status != 200:
            errors[f"HTTP {status}"] += 1
            return
        latency.append((end - due) * 1e3)
        ends.append(end)
        if ovh is not None:
            overhead.append(float(ovh))

    tasks = []
    t0 = clock() + 0.05
    for i in range(n):
        due = t0 + i / rate
        wait = due - clock()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)

    out: dict[str, Any] = {
        "requests": n,
        "ok": len(latency),
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "sent_rate": (n - 1) / (max(sends) - min(sends)) if n > 1 else float("nan"),
        # completions per second between the first and the last answer
        "achieved_rate": (len(ends) - 1) / (max(ends) - min(ends)) if len(ends) > 1 else 0.0,
        "lag_p50_ms": pct(lag, 0.5),
        "lag_p99_ms": pct(lag, 0.99),
    }
    for q in (0.5, 0.9, 0.99):
        out[f"p{round(q * 100)}_ms"] = pct(latency, q)
    out["max_ms"] = max(latency) if latency else float("nan")
    if overhead:
        for q in (0.5, 0.9, 0.99):
            out[f"overhead_p{round(q * 100)}_ms"] = pct(overhead, q)
    return out


async def measure_point(
    session: Any,
    target: Target,
    watch: dict[str, int],
    delay_ms: int,
    rate: float,
    duration: float,
) -> dict[str, Any]:
    load = os.getloadavg()[0]
    before = {name: cpu_ticks(pid) for name, pid in watch.items()}
    busy0 = machine_busy_ticks()
    me0 = time.process_time()
    w0 = time.perf_counter()
    out = await open_loop(session, target, delay_ms, rate, duration)
    wall = time.perf_counter() - w0
    after = {name: cpu_ticks(pid) for name, pid in watch.items()}
    cpu = {name: (after[name] - before[name]) / TICK / wall * 100 for name in watch}
    cpu["generator"] = (time.process_time() - me0) / wall * 100
    # everything else on the machine (other users' jobs included), of 200 % in all
    cpu["others"] = (machine_busy_ticks() - busy0) / TICK / wall * 100 - sum(cpu.values())
    out.update(
        target=target.name,
        rate=rate,
        upstream_ms=delay_ms,
        wall_s=wall,
        cpu_pct_of_one_core=cpu,
        loadavg_1m_before=load,
    )
    return out


def session_factory() -> Any:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), auto_decompress=False
    )


# --- profile --------------------------------------------------------------------------


_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(key: str) -> str:
    """``bastion/privacy`` for Bastion's own files, the top-level package otherwise."""
    path = key.rsplit(":", 1)[0]
    parts = path.split("/")
    if parts[0] == "bastion" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0].removesuffix(".py")


def summarise_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Shares of samples from py-spy's collapsed stacks: by function (self and inclusive),
    by package of the running function, and by the innermost Bastion function on the
    stack (so that library time is charged to the Bastion code that called it)."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    by_bastion: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        keys = []
        for frame in stack.split(";"):
            m = _FRAME.match(frame.strip())
            if m is not None:
                keys.append(f"{_short(m['file'])}:{m['func']}")
        if not keys:
            continue
        total += count
        self_c[keys[-1]] += count
        by_package[_package(keys[-1])] += count
        ours = [k for k in keys if k.startswith("bastion/") and not k.startswith("bastion/cli/")]
        by_bastion[ours[-1] if ours else "(no Bastion frame: server, loop, threads)"] += count
        for k in set(keys):
            incl[k] += count

    def share(c: Counter[str], n: int = top) -> list[dict[str, Any]]:
        return [{"function": k, "pct": round(v / total * 100, 1)} for k, v in c.most_common(n)]

    return {
        "samples": total,
        "self": share(self_c),
        "inclusive": share(incl),
        "by_package": share(by_package, 20),
        "by_innermost_bastion_function": share(by_bastion),
    }


# --- orchestration ---------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return machine_info(
        sources=("src/bastion/gateway", "src/bastion/privacy"), dirty_key="gateway_sources_dirty"
    )


def versions() -> dict[str, str]:
    from importlib.metadata import version

    out = {name: version(name) for name in ("bastion", "aiohttp", "uvicorn", "httpx", "uvloop")}
    node = shutil.which("node")
    out["node"] = tool_version([node, "--version"]) if node else "missing"
    out["portkey_gateway"] = PORTKEY_VERSION
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float:
    vals = [r[key] for r in runs if key in r and r[key] == r[key]]
    return statistics.median(vals) if vals else float("nan")


def summarise(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians over runs per (upstream, rate, target), with added = target − direct."""
    direct: dict[tuple[int, float, int], dict[str, Any]] = {
        (p["upstream_ms"], p["rate"], p["run"]): p for p in points if p["target"] == "direct"
    }
    groups: dict[tuple[int, float, str], list[dict[str, Any]]] = {}
    for p in points:
        groups.setdefault((p["upstream_ms"], p["rate"], p["target"]), []).append(p)
    rows = []
    for (delay, rate, name), runs in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1], TARGETS.index(kv[0][2]))
    ):
        row: dict[str, Any] = {
            "upstream_ms": delay,
            "rate": rate,
            "target": name,
            "runs": len(runs),
        }
        for key in (
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "max_ms",
            "sent_rate",
            "achieved_rate",
            "lag_p50_ms",
            "lag_p99_ms",
            "overhead_p50_ms",
            "overhead_p90_ms",
            "overhead_p99_ms",
            "loadavg_1m_before",
        ):
            row[key] = _median(runs, key)
        row["requests"] = sum(r["requests"] for r in runs)
        row["errors"] = sum(r["error_count"] for r in runs)
        errs: Counter[str] = Counter()
        for r in runs:
            errs.update(r["errors"])
        row["error_kinds"] = dict(errs)
        row["cpu_pct_of_one_core"] = {
            k: statistics.median(r["cpu_pct_of_one_core"][k] for r in runs)
            for k in runs[0]["cpu_pct_of_one_core"]
        }
        if name != "direct":
            for q in ("p50", "p90", "p99"):
                diffs = [
                    r[f"{q}_ms"] - direct[(delay, rate, r["run"])][f"{q}_ms"]
                    for r in runs
                    if (delay, rate, r["run"]) in direct
                ]
                row[f"added_{q}_ms"] = statistics.median(diffs) if diffs else float("nan")
        rows.append(row)
    return rows


def verdicts(rows: list[dict[str, Any]], rates: Sequence[float]) -> dict[str, Any]:
    def find(delay: int, rate: float, name: str) -> dict[str, Any] | None:
        for r in rows:
            if (r["upstream_ms"], r["rate"], r["target"]) == (delay, rate, name):
                return r
        return None

    out: dict[str, Any] = {}
    b200 = find(FAST_MS, 200, "bastion")
    p200 = find(FAST_MS, 200, "portkey")
    if b200 is not None:
        out["bastion_added_p50_le_2ms_at_200"] = b200["added_p50_ms"] <= AIMS["added_p50_ms_at_200"]
        out["bastion_added_p99_le_10ms_at_200"] = (
            b200["added_p99_ms"] <= AIMS["added_p99_ms_at_200"]
        )
        if p200 is not None:
            out["bastion_below_portkey_p50_at_200"] = b200["added_p50_ms"] < p200["added_p50_ms"]
            out["bastion_below_portkey_p99_at_200"] = b200["added_p99_ms"] < p200["added_p99_ms"]
    b2 = find(FAST_MS, 200, "bastion-2w")
    if b2 is not None:
        out["bastion_2w_added_p50_le_2ms_at_200"] = (
            b2["added_p50_ms"] <= AIMS["added_p50_ms_at_200"]
        )
        out["bastion_2w_added_p99_le_10ms_at_200"] = (
            b2["added_p99_ms"] <= AIMS["added_p99_ms_at_200"]
        )
        if p200 is not None:
            out["bastion_2w_below_portkey_p50_at_200"] = b2["added_p50_ms"] < p200["added_p50_ms"]
            out["bastion_2w_below_portkey_p99_at_200"] = b2["added_p99_ms"] < p200["added_p99_ms"]
    for name in ("bastion", "bastion-2w", "portkey"):
        slow = find(SLOW_MS, max(rates), name)
        if slow is not None:
            out[f"{name}_no_errors_no_collapse_slow_upstream"] = bool(
                slow["errors"] == 0 and slow["achieved_rate"] >= 0.95 * slow["rate"]
            )
    return out


@contextlib.contextmanager
def servers(args: argparse.Namespace, workdir: Path) -> Iterator[dict[str, Any]]:
    """Start the upstream, Bastion and Portkey; yield targets and pids; stop them."""
    started: list[Server] = []
    try:
        up_port = free_port()
        cmd = (
            args.upstream_cmd.format(port=up_port, python=sys.executable).split()
            if args.upstream_cmd
            else [
                sys.executable,
                "-m",
                "bastion.testing.upstream",
                "--host",
                "127.0.0.1",
                "--port",
                str(up_port),
            ]
        )
        upstream = start("upstream", cmd, up_port, workdir, {})
        started.append(upstream)
        wait_tcp(upstream)

        home = workdir / "home"
        home.mkdir()
        policy = home / "policy.yaml"
        policy.write_text(
            POLICY.format(upstream_port=up_port, fast=FAST_MS, slow=SLOW_MS), encoding="utf-8"
        )
        env = {"BASTION_HOME": str(home), "BASTION_POLICY": str(policy)}
        run_cli(["policy", "check", str(policy)], env)
        bastion, key = start_bastion("bastion", env, workdir, 1)
        started.append(bastion)
        redis_url = args.redis_url if not args.no_workers else None
        if redis_url and redis_reachable(redis_url):
            # Both cores: two workers whose limits and budgets are counted in Redis.
            home2 = workdir / "home-2w"
            home2.mkdir()
            env2 = {
                "BASTION_HOME": str(home2),
                "BASTION_POLICY": str(policy),
                "BASTION_REDIS_URL": redis_url,
                "BASTION_REDIS_PREFIX": f"bench-{os.getpid()}-{time.time_ns()}:",
            }
            bastion2, key2 = start_bastion("bastion-2w", env2, workdir, 2)
            started.append(bastion2)
        elif redis_url:
            print(f"bastion-2w skipped: Redis not reachable at {redis_url}", flush=True)

        up_url = f"http://127.0.0.1:{up_port}/v1"
        targets = {
            "direct": Target(
                "direct",
                f"{up_url}/chat/completions",
                {"authorization": "Bearer anything", "content-type": "application/json"},
                {FAST_MS: f"delay:{FAST_MS}", SLOW_MS: f"delay:{SLOW_MS}"},
            ),
            "bastion": bastion_target("bastion", bastion.port, key),
        }
        watch = {"upstream": upstream.pid, "bastion": bastion.pid}
        homes = {"bastion": env}
        if args.baseline:
            # Another build of Bastion (an earlier commit's checkout, its own venv) on the
            # same policy and upstream, measured in the same run for a paired comparison.
            home_b = workdir / "home-base"
            home_b.mkdir()
            env_b = {"BASTION_HOME": str(home_b), "BASTION_POLICY": str(policy)}
            base, key_b = start_bastion("bastion-base", env_b, workdir, 1, args.baseline)
            started.append(base)
            targets["bastion-base"] = bastion_target("bastion-base", base.port, key_b)
            watch["bastion-base"] = base.pid
            homes["bastion-base"] = env_b
        if any(s.name == "bastion-2w" for s in started):
            targets["bastion-2w"] = bastion_target("bastion-2w", bastion2.port, key2)
            watch["bastion-2w"] = bastion2.pid
            homes["bastion-2w"] = env2
        node = None if args.no_portkey else ensure_portkey()
        if node is not None:
            p_port = free_port()
            portkey = start(
                "portkey",
                [str(node), str(PORTKEY_SCRIPT), f"--port={p_port}", "--headless"],
                p_port,
                workdir,
                {"NODE_ENV": "production"},
            )
            started.append(portkey)
            wait_http(portkey, "/")
            targets["portkey"] = Target(
                "portkey",
                f"http://127.0.0.1:{p_port}/v1/chat/completions",
                {
                    "authorization": "Bearer anything",
                    "content-type": "application/json",
                    "x-portkey-provider": "openai",
                    "x-portkey-custom-host": up_url,
                },
                {FAST_MS: f"delay:{FAST_MS}", SLOW_MS: f"delay:{SLOW_MS}"},
            )
            watch["portkey"] = portkey.pid
        yield {
            "targets": targets,
            "watch": watch,
            "env": env,
            "homes": homes,
            "workdir": workdir,
            "bastion_pid": bastion.pid,
        }
    finally:
        for s in reversed(started):
            s.stop()


def start_bastion(
    name: str, env: dict[str, str], workdir: Path, workers: int, python: str = sys.executable
) -> tuple[Server, str]:
    """``bastion serve`` on a fresh home: migrated, with an admin key for the load."""
    run_cli(["db", "upgrade"], env, python)
    key = run_cli(["keys", "create", "--user", "bench", "--role", "admin"], env, python)
    port = free_port()
    cmd = [python, "-m", "bastion.cli.main", "serve", "--host", "127.0.0.1"]
    server = start(name, [*cmd, "--port", str(port), "--workers", str(workers)], port, workdir, env)
    wait_http(server, "/readyz")
    return server, key.strip().splitlines()[-1].strip()


def bastion_target(name: str, port: int, key: str) -> Target:
    return Target(
        name,
        f"http://127.0.0.1:{port}/v1/chat/completions",
        {"authorization": f"Bearer {key}", "content-type": "application/json"},
        {FAST_MS: f"bench-{FAST_MS}", SLOW_MS: f"bench-{SLOW_MS}"},
    )


def redis_reachable(url: str) -> bool:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def wait_tcp(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), timeout=1),
        ):
            return
        time.sleep(0.1)
    tail = server.log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{server.name} did not listen on :{server.port}:\n{tail}")


async def check_once(session: Any, target: Target) -> dict[str, Any]:
    """One call before any load: the target answers 200 with a completion."""
    async with session.post(
        target.url, data=body_for(target.models[FAST_MS]), headers=target.headers
    ) as r:
        text = await r.text()
        if r.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {r.status}: {text[:500]}")
        reply = json.loads(text)
        return {
            "model": reply.get("model"),
            "answer": (reply.get("choices") or [{}])[0].get("message", {}).get("content"),
            "overhead_header": r.headers.get("x-bastion-overhead-ms"),
        }


def ledger_check(env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Ledger events for the gateway calls, and what masking did to the prompt."""
    workdir.mkdir(parents=True, exist_ok=True)
    out_file = workdir / "events.jsonl"
    run_cli(["audit", "export", "--action", "llm.chat", "-o", str(out_file)], env)
    events = 0
    masked: Counter[str] = Counter()
    flags: Counter[str] = Counter()
    outcomes: Counter[str] = Counter()
    retried: Counter[str] = Counter()  # the outcomes of the attempts before the last
    with out_file.open(encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            events += 1
            details = event.get("details") or {}
            privacy = (details.get("decisions") or {}).get("privacy")
            masked[json.dumps(privacy, sort_keys=True)] += 1
            flags.update(event.get("flags") or [])
            outcomes[event.get("outcome", "?")] += 1
            retried.update(a.get("outcome", "?") for a in details.get("attempts", [])[:-1])
    return {
        "events": events,
        "privacy_decisions": dict(masked.most_common(5)),
        "flags": dict(flags.most_common(10)),
        "outcomes": dict(outcomes),
        "failed_attempts": dict(retried),
    }


async def run_once(args: argparse.Namespace, ctx: dict[str, Any], run: int) -> dict[str, Any]:
    """One run on freshly started servers: a check, a warm-up, then every point."""
    targets: dict[str, Target] = ctx["targets"]
    watch: dict[str, int] = ctx["watch"]
    names = list(targets)
    points: list[dict[str, Any]] = []
    sent = Counter[str]()
    profile: dict[str, Any] | None = None
    async with session_factory() as session:
        checks = {name: await check_once(session, t) for name, t in targets.items()}
        for name in names:
            sent[name] += 1
        print(f"run {run + 1} checks: {json.dumps(checks)}", flush=True)
        # Warm up: connections opened, first-call caches filled, node's JIT warm.
        for name in names:
            w = await open_loop(session, targets[name], FAST_MS, 100, args.warmup)
            sent[name] += w["requests"]
            print(f"warm-up {name}: {w['ok']}/{w['requests']} ok", flush=True)
        order = names[run % len(names) :] + names[: run % len(names)]
        plan = [(FAST_MS, rate) for rate in args.rates]
        if not args.no_collapse:
            plan.append((SLOW_MS, max(args.rates)))
        for delay, rate in plan:
            for name in order:
                await asyncio.sleep(args.pause)
                p = await measure_point(session, targets[name], watch, delay, rate, args.duration)
                sent[name] += p["requests"]
                p["run"] = run
                points.append(p)
                cpu = json.dumps({k: round(v) for k, v in p["cpu_pct_of_one_core"].items()})
                extra = (
                    f" overhead p50 {p['overhead_p50_ms']:.2f} p99 {p['overhead_p99_ms']:.2f}"
                    if "overhead_p50_ms" in p
                    else ""
                )
                print(
                    f"run {run + 1} {delay} ms upstream {rate:g} rps {name:8s}: "
                    f"p50 {p['p50_ms']:.1f} p90 {p['p90_ms']:.1f} p99 {p['p99_ms']:.1f} ms, "
                    f"errors {p['error_count']}, sent {p['sent_rate']:.0f}/s, "
                    f"done {p['achieved_rate']:.0f}/s, lag p99 {p['lag_p99_ms']:.1f} ms, "
                    f"cpu {cpu}"
                    f"{extra}",
                    flush=True,
                )
        if args.profile and run == args.runs - 1:
            profile = await profile_bastion(session, targets["bastion"], ctx, args)
            sent["bastion"] += profile.pop("requests")
    return {"checks": checks, "points": points, "sent": dict(sent), "profile": profile}


async def profile_bastion(
    session: Any, target: Target, ctx: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = Path(ctx["workdir"]) / "bastion.profile.txt"
    rate = 200.0
    proc = await asyncio.create_subprocess_exec(
        spy,
        "record",
        "--pid",
        str(ctx["bastion_pid"]),
        "--duration",
        str(int(args.duration)),
        "--rate",
        "250",
        "--nonblocking",
        "--gil",
        "--format",
        "raw",
        "--output",
        str(raw),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    await asyncio.sleep(1.0)
    point = await open_loop(session, target, FAST_MS, rate, args.duration)
    _, err = await proc.communicate()
    if proc.returncode != 0 or not raw.exists():
        return {"requests": point["requests"], "error": err.decode(errors="replace")[-2000:]}
    summary = summarise_profile(raw)
    summary.update(
        requests=point["requests"],
        rate=rate,
        note="py-spy record --nonblocking --gil at 250 Hz on the Bastion process during a "
        "separate 200 requests/s point (60 ms upstream); shares of the samples where a "
        "thread held the GIL; the sampling itself slows Bastion down",
        point={
            k: point[k]
            for k in ("p50_ms", "p99_ms", "overhead_p50_ms", "overhead_p99_ms", "errors")
            if k in point
        },
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per point")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rates", default="100,200,500", help="requests per second, comma-separated"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds at 100/s per target")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between points")
    parser.add_argument("--no-portkey", action="store_true")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="Redis for the two-worker Bastion (its counters); skipped where unreachable",
    )
    parser.add_argument("--no-workers", action="store_true", help="skip the two-worker Bastion")
    parser.add_argument(
        "--baseline",
        metavar="PYTHON",
        help="also run `bastion serve` with this interpreter (another checkout's venv, e.g. "
        "the commit before a change) as the target bastion-base",
    )
    parser.add_argument("--no-collapse", action="store_true", help="skip the 1.5 s upstream")
    parser.add_argument("--profile", action="store_true", help="py-spy on Bastion at 200/s")
    parser.add_argument("--no-write", action="store_true", help="do not write the JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--upstream-cmd", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",")]

    import uvloop

    info = machine()
    load_before = os.getloadavg()
    measured: dict[str, Any] = {"points": [], "sent": Counter[str](), "profile": None}
    ledgers: list[dict[str, Any]] = []
    for run in range(args.runs):
        # Every run on servers started afresh (BENCH.md: fresh processes per run).
        workdir = Path(tempfile.mkdtemp(prefix=f"bench-gateway-{run + 1}-"))
        try:
            with servers(args, workdir) as ctx:
                one = uvloop.run(run_once(args, ctx, run))
                checked = {
                    name: ledger_check(home, workdir / name) for name, home in ctx["homes"].items()
                }
        finally:
            if args.keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
        for name, ledger in checked.items():
            ledger["target"] = name
            ledger["requests_sent_to_bastion"] = one["sent"].get(name, 0)
            ledgers.append(ledger)
        measured["points"].extend(one["points"])
        measured["sent"].update(one["sent"])
        measured["checks"] = one["checks"]
        measured["profile"] = one["profile"] or measured["profile"]
    load_after = os.getloadavg()
    rows = summarise(measured["points"])
    ledger = {
        "events": sum(x["events"] for x in ledgers),
        "requests_sent_to_bastion": sum(x["requests_sent_to_bastion"] for x in ledgers),
        "outcomes": dict(sum((Counter(x["outcomes"]) for x in ledgers), Counter[str]())),
        "failed_attempts": dict(
            sum((Counter(x["failed_attempts"]) for x in ledgers), Counter[str]())
        ),
        "flags": dict(sum((Counter(x["flags"]) for x in ledgers), Counter[str]())),
        "privacy_decisions": dict(
            sum((Counter(x["privacy_decisions"]) for x in ledgers), Counter[str]())
        ),
        "per_run": [
            {
                k: x[k]
                for k in (
                    "target",
                    "events",
                    "requests_sent_to_bastion",
                    "outcomes",
                    "failed_attempts",
                )
            }
            for x in ledgers
        ],
    }
    ledger["one_event_per_call"] = all(
        x["events"] == x["requests_sent_to_bastion"] for x in ledgers
    )
    results: dict[str, Any] = {
        "machine": info,
        "versions": versions(),
        "command": "uv run --group bench python bench/gateway.py " + " ".join(sys.argv[1:]),
        "settings": {
            "duration_s": args.duration,
            "runs": args.runs,
            "rates": args.rates,
            "warmup_s": args.warmup,
            "upstream_ms": [FAST_MS, SLOW_MS],
            "prompt_bytes": len(PROMPT.encode()),
            "request_bytes": len(body_for(f"bench-{FAST_MS}")),
            "max_tokens": MAX_TOKENS,
            "bastion_workers": {"bastion": 1, "bastion-2w": 2},
            "collapse_rate": max(args.rates),
        },
        "aims": AIMS,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "notes": [
            "open-loop: request i due at t0 + i/rate regardless of completions; latency from "
            "the due time (generator queuing included); aiohttp on uvloop, one session, no "
            "connection limit, generator in the orchestrating process, servers separate",
            "added = target percentile − direct percentile in the same run, median over runs",
            "2 cores shared by generator, upstream and gateway: CPU contention inflates "
            "latency; cpu_pct_of_one_core per process and point is recorded, and 'others' is "
            "the rest of the machine (/proc/stat), other users' jobs included",
            "bastion-2w: the same with `--workers 2` (both cores), limits and budgets "
            "counted in Redis (the machine's, db 14, a prefix of its own), its own SQLite home",
            "Bastion: one worker (the default), SQLite ledger in a temporary home, "
            "API-key auth, rate limits (rpm, tpm), daily + monthly budget reservation and "
            "settlement, prompt masking (mask), response flagging, one ledger event per call",
            "Portkey: @portkey-ai/gateway run with node (NODE_ENV=production, --headless); "
            "no auth, limits, budgets, masking or ledger in this configuration — it does "
            "less work than Bastion",
            "achieved_rate = successful completions per second between the first and the "
            "last answer; sent_rate = requests per second the generator actually sent",
        ],
        "checks": measured["checks"],
        "ledger": ledger,
        "summary": rows,
        "verdicts": verdicts(rows, args.rates),
        "profile": measured["profile"],
        "points": measured["points"],
    }
    render(results)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(140, shutil.get_terminal_size().columns))
    s = results["settings"]
    t = Table(
        title=f"Gateway latency, open-loop, {s['duration_s']:g} s per point, median of "
        f"{s['runs']} runs (aim at 200/s: Bastion added p50 ≤ {AIMS['added_p50_ms_at_200']:g} "
        f"ms, p99 ≤ {AIMS['added_p99_ms_at_200']:g} ms, below Portkey)",
        caption="latencies in ms from each request's due time; added = target − direct in the "
        "same run; own = Bastion's x-bastion-overhead-ms; sent/done = requests sent and "
        "answers completed per second; cpu = % of one core used by the generator, the "
        "upstream, the target and all other processes (of 200 %); 2 cores shared by all; "
        "bastion = one worker (the default), bastion-2w = two workers sharing Redis counters; "
        "Portkey does no auth, limits, budgets, masking or ledger here",
    )
    for col in (
        "upstream",
        "rate/s",
        "target",
        "p50",
        "p90",
        "p99",
        "added p50",
        "added p99",
        "own p50/p99",
        "errors",
        "sent/done /s",
        "lag p99",
        "cpu g/u/t/o",
        "load",
    ):
        t.add_column(col, justify="right", no_wrap=True)
    for r in results["summary"]:
        cpu = r["cpu_pct_of_one_core"]
        own = r["overhead_p50_ms"] == r["overhead_p50_ms"]
        t.add_row(
            f"{r['upstream_ms']} ms",
            f"{r['rate']:g}",
            r["target"],
            f"{r['p50_ms']:.1f}",
            f"{r['p90_ms']:.1f}",
            f"{r['p99_ms']:.1f}",
            _fmt(r.get("added_p50_ms")),
            _fmt(r.get("added_p99_ms")),
            f"{r['overhead_p50_ms']:.2f}/{r['overhead_p99_ms']:.2f}" if own else "",
            str(r["errors"]),
            f"{r['sent_rate']:.0f}/{r['achieved_rate']:.0f}",
            f"{r['lag_p99_ms']:.1f}",
            f"{cpu['generator']:.0f}/{cpu['upstream']:.0f}/"
            + (f"{cpu[r['target']]:.0f}" if r["target"] in cpu else "-")
            + f"/{cpu.get('others', float('nan')):.0f}",
            f"{r['loadavg_1m_before']:.1f}",
        )
    console.print(t)
    console.print(f"verdicts: {results['verdicts']}")
    led = results["ledger"]
    console.print(
        f"ledger: {led['events']} llm.chat events for {led['requests_sent_to_bastion']} "
        f"requests sent to Bastion; privacy decisions {led['privacy_decisions']}; "
        f"attempts retried {led.get('failed_attempts') or 'none'}"
    )
    prof = results.get("profile")
    if prof and "by_package" in prof:
        pt = Table(
            title=f"Bastion under py-spy at {prof['rate']:g}/s ({prof['samples']} GIL samples)"
        )
        pt.add_column("%", justify="right")
        pt.add_column("running in (package)")
        pt.add_column("%", justify="right")
        pt.add_column("innermost Bastion function on the stack")
        pt.add_column("%", justify="right")
        pt.add_column("running function (self)")
        for a, b, c in zip(
            prof["by_package"][:15],
            prof["by_innermost_bastion_function"][:15],
            prof["self"][:15],
            strict=False,
        ):
            pt.add_row(
                f"{a['pct']:.1f}",
                a["function"],
                f"{b['pct']:.1f}",
                b["function"],
                f"{c['pct']:.1f}",
                c["function"],
            )
        console.print(pt)
        point = prof.get("point", {})
        console.print(
            f"profiled point: p50 {point.get('p50_ms', float('nan')):.1f} "
            f"p99 {point.get('p99_ms', float('nan')):.1f} ms, errors {point.get('errors') or 0}"
        )
    elif prof:
        console.print(f"profile failed: {prof.get('error')}")


def _fmt(v: float | None) -> str:
    return "" if v is None or v != v else f"{v:+.1f}"


if __name__ == "__main__":
    sys.exit(main())
