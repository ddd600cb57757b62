"""Engine of scripts/bench (run it through scripts/bench, which prepares the controller).

  load    deploy site.yml into a bench container, drive it with wrk from the controller, compare
          with a trivial endpoint (the ceiling) and with the course's set-up (4 sync workers on TCP,
          no --preload), time a batch, compare worker counts and text lengths; writes
          docs/benchmark.{md,png}
  deploy  time a no-op re-run of site.yml on 1 converged host, then on N (default 10)
  all     both

Containers are classifier-bench-*, ports 127.0.0.1:BENCH_PORT_BASE+1..; all removed on exit.
Figures depend on the machine and on whatever else runs on it: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import datetime
import hashlib
import json
import os
import re
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[2] / "tests"))
import harness  # noqa: E402  (the tests' helpers: one wait for a healthy stack, shared)
import pngchart  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LUA = HERE / "bench.lua"
PLAYBOOK = ROOT / "site.yml"
ANSIBLE_PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
DATA = ROOT / "app" / "data" / "produtos.csv"
DOC_MD = ROOT / "docs" / "benchmark.md"
DOC_PNG = ROOT / "docs" / "benchmark.png"
LOG_DIR = ROOT / ".cache" / "bench"  # playbook logs of the last run, for a look afterwards

PREFIX = "classifier-bench-"
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18200"))
IMAGE = os.environ.get("BENCH_IMAGE", "classifier-systemd:bookworm")
SHORT = "predict, product names"  # case e
MAX_CHARS = 20_000  # the deployed default of classifier_app_max_description_chars
CURRENT = "/opt/classifier/current"
COURSE_UNIT = "classifier-course"
COURSE = "course: its model, 4 workers TCP"
# Where the course's model (classifier.course, converted to skops) goes in the baseline container.
COURSE_MODEL = "/opt/course-model"
# site.yml's defaults, but for nginx's per-client rate limit: all the load comes from one address.
# JSON, so numbers stay numbers (key=value extra vars are strings).
DEPLOY_VARS = ["-e", json.dumps({"classifier_web_rate_limit": 0})]

# The course's nginx site: Debian's default with the API proxied to gunicorn on TCP.
COURSE_SITE = """\
server {
    listen 80 default_server;
    root /var/www/html;
    index index.html;
    server_name _;
    location / {
        try_files $uri $uri/ =404;
    }
    location /api/ {
        rewrite ^/api/(.*)$ /$1 break;
        proxy_pass http://127.0.0.1:8000;
    }
}
"""


def log(msg: str) -> None:
    print(f"==> {msg}", flush=True)


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- containers


class Containers:
    """The bench containers (scripts/sandbox does the docker run) and images this run made."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.names: list[str] = []
        self.images: list[str] = []

    def up(self, name: str, port: int, image: str = IMAGE) -> None:
        env = {**os.environ, "SANDBOX_NAME": name, "PORT": str(port), "SANDBOX_IMAGE": image}
        subprocess.run([str(ROOT / "scripts" / "sandbox"), "down"], env=env, check=True)
        self.names.append(name)
        if subprocess.run([str(ROOT / "scripts" / "sandbox"), "up"], env=env).returncode != 0:
            # scripts/sandbox waits 30 s for systemd; clones of a converged host start gunicorn
            # and nginx at boot, which on a busy 2-core machine can take longer.
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                state = subprocess.run(["docker", "exec", name, "systemctl", "is-system-running"],
                                       capture_output=True, text=True).stdout.strip()
                if state in ("running", "degraded"):
                    return
                time.sleep(2)
            raise BenchError(f"systemd in {name} did not finish booting")

    def up_many(self, specs: list[tuple[str, int]], image: str = IMAGE) -> None:
        # systemd boots take seconds each: boot a few side by side, not all (2 cores).
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(3, len(specs))) as pool:
            for f in [pool.submit(self.up, n, p, image) for n, p in specs]:
                f.result()

    def commit(self, name: str, image: str) -> None:
        self.images.append(image)
        subprocess.run(["docker", "commit", name, image], check=True, stdout=subprocess.DEVNULL)

    def cleanup(self) -> None:
        if self.keep:
            log(f"KEEP=1: left running: {' '.join(self.names) or 'nothing'}")
            return
        if self.names:
            subprocess.run(["docker", "rm", "-f", *self.names], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        for image in self.images:
            subprocess.run(["docker", "rmi", "-f", image], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, check=False)
        self.names, self.images = [], []


def sh(container: str, script: str, check: bool = True, timeout: float = 120) -> str:
    r = subprocess.run(["docker", "exec", container, "sh", "-c", script], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise BenchError(f"in {container}: {script!r} failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def write_inventory(path: Path, hosts: list[str], hostvars: dict[str, dict] | None = None) -> Path:
    # Every host in both groups, like sandbox/inventory.yml; JSON is valid YAML.
    members = {h: (hostvars or {}).get(h, {}) for h in hosts}
    inventory = {"all": {"children": {"web": {"hosts": members}, "app": {"hosts": members}},
                         "vars": {"ansible_connection": "community.docker.docker"}}}
    path.write_text(json.dumps(inventory, indent=2) + "\n")
    return path


@dataclass
class PlaybookRun:
    seconds: float
    recap: dict[str, dict[str, int]]
    tasks: list[tuple[str, float]]  # profile_tasks, slowest first
    log: Path
    controller_cpu: float = 0.0  # ansible-playbook and what it ran (docker CLI), user+sys
    hosts_cpu: float | None = None  # the containers' cgroups, None where not readable
    machine_cpu: float = 0.0  # the whole machine's busy CPU over the run (/proc/stat)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.recap.values())

    @property
    def ok(self) -> int:
        return sum(h.get("ok", 0) for h in self.recap.values())


_RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")
_TASK = re.compile(r"^(.*?)\s-{3,}\s+(\d+\.\d+)s$")
_HEADER = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(.*)\] \*+$")
_STAMP = re.compile(r"\((\d+):(\d+):(\d+\.\d+)\)\s+\d+:\d+:\d+\.\d+ \*+\s*$")


def task_times(text: str) -> list[tuple[str, float]]:
    """Seconds per task name, summed over every time it ran, slowest first.

    profile_tasks' closing table keeps one figure per task, the last batch's under `serial`; its
    time stamp after each task header says how long the task before took, so the sum is exact.
    """
    totals: dict[str, float] = {}
    header = running = None
    for line in text.splitlines():
        if m := _HEADER.match(line):
            header = m.group(1)
        elif m := _STAMP.search(line):
            if running is not None:
                h, mi, sec = m.groups()
                totals[running] = totals.get(running, 0.0) + int(h) * 3600 + int(mi) * 60 + float(sec)
            running, header = header, None
    return sorted(totals.items(), key=lambda t: -t[1])


def container_cpu(names: list[str]) -> float | None:
    """CPU seconds the containers have used so far, from their cgroups (v1 or v2)."""
    total = 0.0
    for name in names:
        cid = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", name], capture_output=True,
                             text=True).stdout.strip()
        for path in (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
                     f"/sys/fs/cgroup/docker/{cid}/cpu.stat",
                     f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat"):
            try:
                text = Path(path).read_text()
            except OSError:
                continue
            total += int(text) / 1e9 if path.endswith("cpuacct.usage") else usage_seconds(text)
            break
        else:
            return None
    return total


def unit_cgroups(container: str, units: dict[str, str]) -> dict[str, Path]:
    """The cgroup v2 directories of systemd units inside a container, by part name.

    systemd in the container puts each unit in its own cgroup under the container's; cgroup v2
    keeps cpu.stat in every cgroup (hybrid hosts mount v2 at /sys/fs/cgroup/unified)."""
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True,
                         text=True).stdout.strip()
    try:
        line = next(x for x in Path(f"/proc/{pid}/cgroup").read_text().splitlines() if x.startswith("0::"))
    except (OSError, StopIteration):
        return {}
    base = line.removeprefix("0::").removesuffix("/init.scope").lstrip("/")
    for mount in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        root = Path(mount) / base / "system.slice"
        if root.is_dir():
            return {part: root / unit for part, unit in units.items() if (root / unit / "cpu.stat").exists()}
    return {}


def usage_seconds(cpu_stat: str) -> float:
    """The CPU seconds a cgroup v2 cpu.stat reports."""
    return int(re.search(r"^usage_usec (\d+)", cpu_stat, re.M).group(1)) / 1e6


def cgroup_cpu(paths: dict[str, Path]) -> dict[str, float]:
    """CPU seconds used so far by each cgroup."""
    return {part: usage_seconds((path / "cpu.stat").read_text()) for part, path in paths.items()}


def proxy_pids(port: int) -> list[int]:
    """docker-proxy processes forwarding a published loopback port (none with the iptables-only
    set-up): they copy every byte of the load, on the same CPUs."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                argv = (d / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"docker-proxy") and str(port).encode() in argv:
                pids.append(int(d.name))
    return pids


def pids_cpu(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine so far, from /proc/stat."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values[:8]) - idle) / tick, idle / tick


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_playbook(inventory: Path, label: str, extra: list[str] | None = None,
                 env: dict[str, str] | None = None, hosts: list[str] | None = None) -> PlaybookRun:
    """ansible-playbook site.yml, timed as a whole process, with profile_tasks' per-task times."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    logfile = LOG_DIR / f"{label}.log"
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all", **(env or {})}
    argv = [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOK), *DEPLOY_VARS, *(extra or [])]
    hosts_before, cpu_before, machine_before = container_cpu(hosts or []), children_cpu(), machine_cpu()[0]
    started = time.monotonic()
    with logfile.open("w") as out:
        rc = subprocess.run(argv, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - started
    controller, machine = children_cpu() - cpu_before, machine_cpu()[0] - machine_before
    hosts_after = container_cpu(hosts or [])
    hosts_cpu = hosts_after - hosts_before if hosts and None not in (hosts_before, hosts_after) else None
    text = logfile.read_text(errors="replace")
    if rc != 0:
        sys.stderr.write("".join(text.splitlines(keepends=True)[-40:]))
        raise BenchError(f"ansible-playbook ({label}) failed with {rc}; log: {logfile}")
    recap, tasks = {}, []
    for line in text.splitlines():
        if m := _RECAP.match(line.strip()):
            recap[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        elif m := _TASK.match(line.strip()):
            tasks.append((m.group(1).strip(), float(m.group(2))))
    tasks = task_times(text) or sorted(tasks, key=lambda t: -t[1])
    return PlaybookRun(seconds, recap, tasks, logfile, controller, hosts_cpu, machine)


# ---------------------------------------------------------------- data


def descriptions(column: str = "descricao") -> list[str]:
    """Every usable text of a column, in a fixed order: by sha256, so the same on every machine.

    ``descricao`` is the data set's description (mean ~1.2 kB); ``nome`` is the product's name,
    the length of what a person types into the form (mean ~50 characters).
    """
    with DATA.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    texts = {(r.get(column) or "").strip() for r in rows if (r.get("categoria") or "").strip()}
    usable = [t for t in texts if t and len(t) <= MAX_CHARS]
    return sorted(usable, key=lambda t: hashlib.sha256(t.encode()).hexdigest())


def write_bodies(path: Path, texts: list[str]) -> Path:
    # json.dumps escapes quotes, backslashes and control characters (newlines included), so one
    # body is one line; UTF-8 stays as is, the way a browser sends it.
    path.write_text("".join(json.dumps({"descricao": t}, ensure_ascii=False) + "\n" for t in texts),
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------- measuring


@dataclass
class WrkResult:
    stack: str
    endpoint: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    raw: dict = field(default_factory=dict)
    case: str = ""  # a to e: the letters of the ratios
    # CPU microseconds per request, by part (nginx, gunicorn, journald, wrk); empty if unreadable
    cpu_us: dict[str, float] = field(default_factory=dict)


def run_wrk(url: str, method: str, path: str, connections: int, seconds: int, threads: int,
            bodies: Path | None = None) -> dict:
    args = [method, path] + ([str(bodies)] if bodies else [])
    argv = ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "--timeout", "10s", "-s", str(LUA), url, "--", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if r.returncode != 0:
        raise BenchError(f"wrk failed: {r.stderr.strip() or r.stdout.strip()}")
    for line in r.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line.removeprefix("BENCH_JSON "))
    raise BenchError(f"wrk printed no summary:\n{r.stdout}")


def measure(stack: str, endpoint: str, url: str, method: str, path: str, connections: int,
            seconds: int, threads: int, bodies: Path | None, cgroups: dict[str, Path]) -> WrkResult:
    """One wrk run, and the CPU each part of the stack (and wrk) spent per request meanwhile."""
    proxies = proxy_pids(int(url.rsplit(":", 1)[1]))
    before, wrk_before, proxy_before, machine_before = (cgroup_cpu(cgroups), children_cpu(),
                                                        pids_cpu(proxies), machine_cpu())
    raw = run_wrk(url, method, path, connections, seconds, threads, bodies)
    after, wrk_after, proxy_after, machine_after = (cgroup_cpu(cgroups), children_cpu(),
                                                    pids_cpu(proxies), machine_cpu())
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"] + raw["status"]
    result = WrkResult(stack, endpoint, connections, raw["requests"] / (raw["duration_us"] / 1e6),
                       raw["p50_us"] / 1000, raw["p99_us"] / 1000, errors, raw["requests"], raw)
    n = max(raw["requests"], 1)
    result.cpu_us = {part: (after[part] - before[part]) / n * 1e6 for part in before}
    if result.cpu_us:
        result.cpu_us["wrk"] = (wrk_after - wrk_before) / n * 1e6
        if proxies:
            result.cpu_us["docker-proxy"] = (proxy_after - proxy_before) / n * 1e6
        # What the parts above leave of the machine's busy time: the kernel's network work, other
        # processes. And the idle share: CPUs left unused while wrk waited for answers.
        busy, idle = (machine_after[0] - machine_before[0]), (machine_after[1] - machine_before[1])
        result.cpu_us["rest"] = busy / n * 1e6 - sum(result.cpu_us.values())
        result.raw["idle_share"] = idle / max(busy + idle, 1e-9)
    cpu = "  ".join(f"{part} {us:.0f}" for part, us in result.cpu_us.items())
    print(f"    {stack:<28} {endpoint:<20} c={connections:<3} {result.rps:8.1f} req/s  "
          f"p50 {result.p50_ms:7.1f} ms  p99 {result.p99_ms:7.1f} ms  errors {errors}"
          + (f"  CPU µs/request: {cpu}, idle {result.raw['idle_share']:.0%}" if cpu else ""), flush=True)
    return result


@dataclass
class Memory:
    stack: str
    workers: int
    preload: bool
    processes: int
    rss_mb: float
    pss_mb: float


def service_memory(container: str, unit: str, stack: str, preload: bool) -> Memory:
    """Sum over gunicorn's master and workers: RSS counts shared pages once per process, PSS
    splits them between the processes sharing them (the honest figure with --preload)."""
    main = sh(container, f"systemctl show -p MainPID --value {unit}").strip()
    if not main or main == "0":
        raise BenchError(f"{unit} has no main process in {container}")
    out = sh(container, f"""
        for p in {main} $(cat /proc/{main}/task/*/children); do
          echo "== $p"; grep -E '^(VmRSS|Pss):' /proc/$p/status /proc/$p/smaps_rollup 2>/dev/null | sed 's/^[^:]*://'
        done""")
    rss = pss = 0
    procs = 0
    for line in out.splitlines():
        if line.startswith("== "):
            procs += 1
        elif line.startswith("VmRSS:"):
            rss += int(line.split()[1])
        elif line.startswith("Pss:"):
            pss += int(line.split()[1])
    return Memory(stack, procs - 1, preload, procs, rss / 1024, pss / 1024)


def wait_healthy(url: str, timeout: float = 90) -> None:
    try:
        harness.wait_healthy(url, timeout)
    except AssertionError as exc:
        raise BenchError(f"{exc} (/api/health did not answer 200)") from None


def check_predict(url: str, texts: list[str]) -> None:
    r = requests.post(f"{url}/api/predizer_categoria", json={"descricao": texts[0]}, timeout=10)
    if r.status_code != 200 or "categoria" not in r.json():
        raise BenchError(f"{url}: predizer_categoria answered {r.status_code} {r.text[:200]}")


# ---------------------------------------------------------------- load benchmark


def course_model(workdir: Path) -> Path:
    """The course's model.sav rebuilt by its recipe (classifier.course), converted with its pin:
    CountVectorizer + MultinomialNB, which the service runs through scikit-learn's generic
    predict, as the course did (the compiled path serves linear models only)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "app"))
    sav, out = workdir / "course-model.sav", workdir / "course-model"
    subprocess.run([sys.executable, "-m", "classifier.course", "--data", str(DATA), "--output", str(sav)],
                   env=env, check=True, capture_output=True, timeout=300)
    digest = hashlib.sha256(sav.read_bytes()).hexdigest()
    r = subprocess.run([sys.executable, "-m", "classifier.convert", "--model", str(sav), "--sha256", digest,
                        "--data", str(DATA), "--output", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or "scikit-learn" not in r.stdout:
        raise BenchError(f"the course's model did not convert to a scikit-learn-served one: {r.stdout}{r.stderr}")
    return out


def start_course(container: str, model_dir: Path) -> None:
    """The course's set-up in a deployed container: our units off, gunicorn -w 4 on TCP (no
    --preload) from the deployed release serving the course's model, nginx with the course's
    default site."""
    subprocess.run(["docker", "cp", f"{model_dir}/.", f"{container}:{COURSE_MODEL}"], check=True, timeout=60)
    sh(container, f"chown -R root:root {COURSE_MODEL} && chmod -R a+rX,go-w {COURSE_MODEL}")
    sh(container, "systemctl disable --now classifier.service classifier.socket")
    sh(container, f"cat > /etc/nginx/sites-available/default <<'EOF'\n{COURSE_SITE}EOF\n"
                  "nginx -t -q && systemctl reload nginx")
    sh(container, f"systemctl stop {COURSE_UNIT} 2>/dev/null; systemctl reset-failed {COURSE_UNIT} 2>/dev/null; "
                  f"systemd-run --quiet --unit={COURSE_UNIT} --uid=classifier --gid=classifier "
                  f"--working-directory={CURRENT} -E CLASSIFIER_MODEL_PATH={COURSE_MODEL}/model.skops "
                  f"{CURRENT}/venv/bin/gunicorn -w 4 -b 127.0.0.1:8000 classifier.wsgi:app", check=True)


def deployed_workers(container: str) -> int:
    """gunicorn's workers as running: the children of the service's master (the role lets
    gunicorn count the CPUs itself by default)."""
    out = sh(container, "cat /proc/$(systemctl show -p MainPID --value classifier.service)/task/*/children")
    return len(out.split())


def batch_section(url: str, texts: list[str]) -> dict:
    """1,000 descriptions as 1,000 requests one after the other vs one batch request."""
    log(f"batch: {len(texts)} descriptions, one request each (concurrency 1) vs one batch")
    session = requests.Session()
    probe = session.post(f"{url}/api/predizer_categorias", json={"descricoes": texts[:1]}, timeout=30)
    if probe.status_code == 404:
        print("    batch endpoint not deployed (POST /api/predizer_categorias answered 404): skipped")
        return {"deployed": False}
    singles: list[str] = []
    started = time.perf_counter()
    for t in texts:
        r = session.post(f"{url}/api/predizer_categoria", json={"descricao": t}, timeout=30)
        if r.status_code != 200:
            raise BenchError(f"single request answered {r.status_code}: {r.text[:200]}")
        singles.append(r.json()["categoria"])
    single_s = time.perf_counter() - started
    body = json.dumps({"descricoes": texts}, ensure_ascii=False).encode()
    result = {"deployed": True, "n": len(texts), "single_s": single_s, "body_bytes": len(body)}
    times = []
    for _ in range(3):  # the median of three: one request is a small sample on a busy machine
        started = time.perf_counter()
        r = session.post(f"{url}/api/predizer_categorias", data=body, timeout=120,
                         headers={"Content-Type": "application/json"})
        times.append(time.perf_counter() - started)
        if r.status_code != 200:
            break
    batch_s = statistics.median(times)
    chunks = 1
    if r.status_code == 413:
        # The body is over a size limit (nginx client_max_body_size or the app's
        # MAX_CONTENT_LENGTH): say so, then send it in as few requests as fit.
        result["refused"] = f"413 for one body of {len(body) / 2**20:.2f} MiB: {r.text[:160]}"
        print(f"    one batch of {len(texts)} refused: {result['refused']}")
        labels, batch_s, chunks = batch_in_chunks(session, url, texts, 1_000_000)
    elif r.status_code != 200:
        raise BenchError(f"batch request answered {r.status_code}: {r.text[:300]}")
    else:
        labels = r.json().get("categorias", [])
    result.update(batch_s=batch_s, chunks=chunks, ratio=single_s / batch_s,
                  mismatches=sum(a != b for a, b in zip(singles, labels)) + abs(len(labels) - len(singles)))
    print(f"    {len(texts)} single requests: {single_s:.2f} s; batch ({chunks} request"
          f"{'s' if chunks > 1 else ''}): {batch_s:.3f} s; ratio {result['ratio']:.1f}x (target >= 20x); "
          f"answers that differ: {result['mismatches']}")
    return result


def batch_in_chunks(session: requests.Session, url: str, texts: list[str], limit: int):
    chunks, current, size = [], [], 0
    for t in texts:
        n = len(json.dumps(t, ensure_ascii=False).encode()) + 2
        if current and size + n > limit - 64:
            chunks.append(current)
            current, size = [], 0
        current.append(t)
        size += n
    chunks.append(current)
    labels = []
    started = time.perf_counter()
    for chunk in chunks:
        r = session.post(f"{url}/api/predizer_categorias", json={"descricoes": chunk}, timeout=120)
        if r.status_code != 200:
            raise BenchError(f"batch chunk of {len(chunk)} answered {r.status_code}: {r.text[:200]}")
        labels += r.json().get("categorias", [])
    return labels, time.perf_counter() - started, len(chunks)


def load_bench(args, boxes: Containers, workdir: Path) -> dict:
    texts = descriptions()
    mix = texts[:args.mix]
    bodies = write_bodies(workdir / "bodies.jsonl", mix)
    names = descriptions("nome")[:args.mix]
    short_bodies = write_bodies(workdir / "names.jsonl", names)
    log(f"mix: {len(mix)} descriptions from {DATA.relative_to(ROOT)} (of {len(texts)} usable), "
        f"mean {statistics.mean(len(t) for t in mix):.0f} chars; for case e, {len(names)} product "
        f"names, mean {statistics.mean(len(t) for t in names):.0f} chars")

    # site.yml's default: one worker per CPU plus one (the containers see all the host's CPUs).
    workers = (os.cpu_count() or 1) + 1
    alt = args.alt_workers if args.alt_workers is not None else (4 if workers != 4 else 2)
    ours, course, other = PREFIX + "load", PREFIX + "course", PREFIX + "alt"
    boxes_ports = [(ours, PORT_BASE + 1), (course, PORT_BASE + 2)] + ([(other, PORT_BASE + 3)] if alt else [])
    url = {name: f"http://127.0.0.1:{port}" for name, port in boxes_ports}
    log("containers " + ", ".join(f"{n} ({url[n]})" for n, _ in boxes_ports))
    boxes.up_many(boxes_ports)
    # One single-host deployment per container, side by side: in one inventory the hosts would
    # form a cluster (each nginx balancing over every app host). The alternative worker count is
    # a third deployment, so that all stacks are up at once and their runs can alternate (the
    # machine's background load drifts over minutes).
    log(f"deploying site.yml into {len(boxes_ports)} containers, one single-host inventory each"
        + (f" ({other} with classifier_app_workers={alt})" if alt else ""))
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(boxes_ports)) as pool:
        futures = [pool.submit(run_playbook, write_inventory(workdir / f"{name}.yml", [name]), f"load-deploy-{name}",
                               ["-e", json.dumps({"classifier_app_workers": alt})] if name == other else None)
                   for name, _ in boxes_ports]
        for f in futures:
            f.result()
    deploy_s = time.monotonic() - started
    print(f"    deployed in {deploy_s:.0f} s")

    for name in (ours, other) if alt else (ours,):
        block = re.search(r"upstream\s+\S+\s*\{(.*?)\}", sh(name, "cat /etc/nginx/sites-enabled/default"), re.S)
        upstreams = set(re.findall(r"^\s*server\s+([^\s;]+)", block.group(1) if block else "", re.M))
        if len(upstreams) != 1:  # the stack under test must be this container's gunicorn alone
            raise BenchError(f"nginx in {name} proxies to {upstreams}, not to its own gunicorn alone")

    log("course set-up in the second container: its model (CountVectorizer + MultinomialNB, scikit-learn's "
        "predict), gunicorn -w 4 -b 127.0.0.1:8000, its nginx site")
    start_course(course, course_model(workdir))
    for name, _ in boxes_ports:
        wait_healthy(url[name])
        check_predict(url[name], mix)
    workers = deployed_workers(ours)

    deployed = f"deployed, {workers} workers"
    predict = ("POST", "/api/predizer_categoria", bodies)
    health, names_predict = ("GET", "/api/health", None), (*predict[:2], short_bodies)
    plan = [("a", deployed, "predict", ours, predict), ("b", deployed, "health (ceiling)", ours, health),
            ("c", COURSE, "predict", course, predict),
            # The same endpoint with form-length texts: what the length of a description costs.
            ("e", deployed, SHORT, ours, names_predict)]
    if alt:
        plan.append(("d", f"deployed, {alt} workers", "predict", other, predict))
    d, c_list = args.duration, args.connections
    log(f"wrk -t{args.threads}: {d} s per run, connections {c_list}, {args.rounds} round(s), "
        f"after a {args.warmup} s warm-up of each stack")
    for _, _, _, name, (method, path, b) in plan:
        run_wrk(url[name], method, path, max(c_list), args.warmup, args.threads, b)  # not kept
    # Where each request's CPU goes: the stack's units (from their cgroups) and wrk itself.
    cgroups = {name: unit_cgroups(name, {"nginx": "nginx.service", "journald": "systemd-journald.service",
                                         "gunicorn": f"{COURSE_UNIT}.service" if name == course
                                         else "classifier.service"})
               for name, _ in boxes_ports}
    runs: list[WrkResult] = []
    for _ in range(args.rounds):
        for conns in c_list:
            for case, stack, endpoint, name, (method, path, b) in plan:
                runs.append(measure(stack, endpoint, url[name], method, path, conns, d, args.threads, b,
                                    cgroups[name]))
                runs[-1].case = case

    memory = [service_memory(ours, "classifier.service", deployed, True),
              service_memory(course, f"{COURSE_UNIT}.service", COURSE, False)]
    if alt:
        memory.append(service_memory(other, "classifier.service", f"deployed, {alt} workers", True))

    batch = batch_section(url[ours], texts[:args.batch]) if args.batch else {"deployed": None}

    return {"results": aggregate(runs), "memory": memory, "batch": batch, "workers": workers, "alt": alt,
            "mix": len(mix), "deploy_s": deploy_s, "deployed": deployed, "rounds": args.rounds,
            "duration": d, "warmup": args.warmup, "connections": c_list, "threads": args.threads}


def aggregate(runs: list[WrkResult]) -> list[WrkResult]:
    """One result per stack, endpoint and connection count: medians over the rounds."""
    keys = list(dict.fromkeys((r.stack, r.endpoint, r.connections) for r in runs))
    out = []
    for stack, endpoint, conns in keys:
        group = [r for r in runs if (r.stack, r.endpoint, r.connections) == (stack, endpoint, conns)]
        out.append(WrkResult(stack, endpoint, conns, statistics.median(r.rps for r in group),
                             statistics.median(r.p50_ms for r in group),
                             statistics.median(r.p99_ms for r in group),
                             sum(r.errors for r in group), sum(r.requests for r in group),
                             case=group[0].case,
                             cpu_us={part: statistics.median(r.cpu_us[part] for r in group)
                                     for part in group[0].cpu_us if all(part in r.cpu_us for r in group)}))
    return out


def pick(results: list[WrkResult], stack: str, endpoint: str, conns: int) -> WrkResult | None:
    return next((r for r in results if r.stack == stack and r.endpoint == endpoint
                 and r.connections == conns), None)


def load_summary(data: dict) -> tuple[list[str], list[str]]:
    """(console lines, markdown lines)."""
    res, mem, dep = data["results"], data["memory"], data["deployed"]
    hi, lo = max(data["connections"]), min(data["connections"])
    a, b, c = (pick(res, dep, "predict", hi), pick(res, dep, "health (ceiling)", hi),
               pick(res, COURSE, "predict", hi))
    a8, c8 = pick(res, dep, "predict", lo), pick(res, COURSE, "predict", lo)
    lines = []
    if a and b:
        lines.append(f"a/b at {hi} connections: {a.rps / b.rps:.3f} (predict / health req/s: "
                     f"{a.rps:.0f} / {b.rps:.0f})")
    if a and b and a.cpu_us and b.cpu_us:
        parts = [p for p in a.cpu_us if p in b.cpu_us]
        lines.append(f"CPU µs per request at {hi} connections, predict vs health: "
                     + ", ".join(f"{p} {a.cpu_us[p]:.0f} vs {b.cpu_us[p]:.0f}" for p in parts)
                     + f"; sum {sum(a.cpu_us[p] for p in parts):.0f} vs {sum(b.cpu_us[p] for p in parts):.0f}")
    e = pick(res, dep, SHORT, hi)
    if e and b:
        lines.append(f"e/b at {hi} connections: {e.rps / b.rps:.3f} (predict with product names / health "
                     f"req/s: {e.rps:.0f} / {b.rps:.0f})"
                     + (f"; CPU µs per request, sum: a {sum(a.cpu_us.values()):.0f}, e "
                        f"{sum(e.cpu_us.values()):.0f}, b {sum(b.cpu_us.values()):.0f}"
                        if a and a.cpu_us and e.cpu_us and b.cpu_us else ""))
    if a and c:
        lines.append(f"a/c at {hi} connections: {a.rps / c.rps:.2f} (deployed / course req/s: "
                     f"{a.rps:.0f} / {c.rps:.0f})")
    if a8 and c8:
        lines.append(f"p99 at {lo} connections: deployed {a8.p99_ms:.1f} ms, course {c8.p99_ms:.1f} ms "
                     f"(course/deployed {c8.p99_ms / a8.p99_ms:.2f})")
    alt = data["alt"]
    if alt:
        a_alt = pick(res, f"deployed, {alt} workers", "predict", hi)
        if a and a_alt:
            lines.append(f"d/a at {hi} connections ({alt} vs {data['workers']} workers): {a_alt.rps / a.rps:.2f} "
                         f"(req/s {a_alt.rps:.0f} / {a.rps:.0f}; p99 {a_alt.p99_ms:.0f} vs {a.p99_ms:.0f} ms)")
    m_alt = next((m for m in mem if m.preload and m.workers == 4), None)
    m_course = next((m for m in mem if not m.preload), None)
    if m_alt and m_course:
        lines.append(f"memory, 4 workers, --preload vs not: PSS {m_alt.pss_mb:.0f} vs {m_course.pss_mb:.0f} MB, "
                     f"RSS sum {m_alt.rss_mb:.0f} vs {m_course.rss_mb:.0f} MB")
    batch = data["batch"]
    if batch.get("deployed"):
        lines.append(f"batch: {batch['n']} singles {batch['single_s']:.2f} s vs batch {batch['batch_s']:.3f} s "
                     f"({batch['chunks']} request(s)): {batch['ratio']:.1f}x (target >= 20x)")
    elif batch.get("deployed") is False:
        lines.append("batch: batch endpoint not deployed")

    md = ["| case | stack | endpoint | conns | req/s | p50 ms | p99 ms | errors | requests |",
          "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    md += [f"| {r.case} | {r.stack} | {r.endpoint} | {r.connections} | {r.rps:.1f} | {r.p50_ms:.1f} | "
           f"{r.p99_ms:.1f} | {r.errors} | {r.requests} |" for r in res]
    parts = list(dict.fromkeys(part for r in res for part in r.cpu_us))
    if parts:
        md += ["", "CPU per request, µs, by process (the units' cgroups in the container, wrk's own "
               "rusage on the controller): what a request costs where, whatever the machine's speed.", "",
               "| case | endpoint | conns | " + " | ".join(parts) + " | sum |",
               "| --- | --- | ---: | " + "---: | " * len(parts) + "---: |"]
        md += [f"| {r.case} | {r.endpoint} | {r.connections} | "
               + " | ".join(f"{r.cpu_us[p]:.0f}" if p in r.cpu_us else "" for p in parts)
               + f" | {sum(r.cpu_us.values()):.0f} |" for r in res if r.cpu_us]
    md += ["", "Memory of the service after its predict runs (gunicorn master + workers):", "",
           "| stack | workers | --preload | RSS sum MB | PSS sum MB |", "| --- | ---: | --- | ---: | ---: |"]
    md += [f"| {m.stack} | {m.workers} | {'yes' if m.preload else 'no'} | {m.rss_mb:.0f} | {m.pss_mb:.0f} |"
           for m in mem]
    md += ["", "RSS counts each shared page once per process (the sum overstates); PSS shares it out.",
           "", "Ratios:", ""] + [f"- {line}" for line in lines]
    if batch.get("refused"):
        md.append(f"- batch of {batch['n']} in one request refused: {batch['refused']}")
    return lines, md


def load_chart(data: dict, path: Path, stamp: str) -> None:
    res, conns = data["results"], data["connections"]
    groups = []
    seen = []
    for r in res:
        if (r.stack, r.endpoint) not in seen:
            seen.append((r.stack, r.endpoint))
    for stack, endpoint in seen:
        found = [pick(res, stack, endpoint, c) for c in conns]
        case = next((r.case for r in found if r), "")
        groups.append((f"({case}) {stack.replace(', ', chr(10))}\n{endpoint}",
                       [r.rps if r else None for r in found]))
    mem = data["memory"]
    canvas = pngchart.Canvas(1000, 760)
    pngchart.grouped_bars(canvas, 20, 12, 960, 420, "requests/s through nginx",
                          groups, [f"{c} connections" for c in conns])
    pngchart.grouped_bars(canvas, 20, 450, 960, 280, "memory of gunicorn, MB",
                          [(f"{m.stack.replace(', ', chr(10))}\n{'--preload' if m.preload else 'no --preload'}",
                            [m.rss_mb, m.pss_mb]) for m in mem], ["RSS sum", "PSS sum"])
    canvas.text(20, 742, stamp, (90, 90, 90), 1)
    path.write_bytes(canvas.png())


# ---------------------------------------------------------------- deploy benchmark


def deploy_bench(args, boxes: Containers, workdir: Path) -> dict:
    n = args.hosts
    names = [f"{PREFIX}{i}" for i in range(1, n + 1)]
    ports = [PORT_BASE + 10 + i for i in range(1, n + 1)]
    one = write_inventory(workdir / "deploy-1.yml", names[:1])
    many = write_inventory(workdir / f"deploy-{n}.yml", names)
    out: dict = {"hosts": n, "runs": []}

    def run(label: str, log_name: str, hosts: list[str], inventory: Path, **kw) -> PlaybookRun:
        r = run_playbook(inventory, log_name, hosts=hosts, **kw)
        cpu = f"controller CPU {r.controller_cpu:5.1f} s" + (
            f", hosts CPU {r.hosts_cpu:5.1f} s" if r.hosts_cpu is not None else "")
        out["runs"].append({"label": label, "hosts": len(hosts), "seconds": r.seconds, "changed": r.changed,
                            "controller_cpu": r.controller_cpu, "hosts_cpu": r.hosts_cpu,
                            # Busy time neither ansible-playbook nor the hosts account for: dockerd,
                            # containerd, other work on the machine.
                            "others_share": (r.machine_cpu - r.controller_cpu - (r.hosts_cpu or 0))
                            / r.machine_cpu if r.machine_cpu > 0 else None})
        print(f"    {label:<44} {r.seconds:6.1f} s  changed={r.changed:<3} {cpu}", flush=True)
        return r

    def noop(label: str, log_name: str, hosts: list[str], inventory: Path, **kw) -> PlaybookRun:
        r = run(label, log_name, hosts, inventory, **kw)
        if r.changed:  # not converged yet (a clone's first run): that one did not count
            out["runs"][-1]["label"] += " (changed things: not a no-op, run again)"
            r = run(label, f"{log_name}-again", hosts, inventory, **kw)
        return r

    log(f"container {names[0]}: first deploy of site.yml")
    boxes.up(names[0], ports[0])
    run("first deploy, 1 host", "deploy-first", names[:1], one)
    noop1 = [noop(f"no-op, 1 host (run {i + 1})", f"deploy-noop-1-{i + 1}", names[:1], one)
             for i in range(args.repeats)]
    if args.what_if:
        # ansible.cfg turns pipelining on: what it buys.
        noop("what-if: no-op, 1 host, pipelining off", "deploy-noop-1-no-pipelining", names[:1], one,
             env={"ANSIBLE_PIPELINING": "False"})
        # apt's cache_valid_time is 1 h: a re-run after that refreshes the package lists. Before the
        # clones: with the 10-host inventory the hosts become a cluster, and this 1-host run would undo it.
        sh(names[0], "for f in /var/lib/apt/lists /var/lib/apt/periodic/update-success-stamp; do "
                     "[ ! -e $f ] || touch -d '2 hours ago' $f; done")
        try:
            run("what-if: no-op, 1 host, apt lists 2 h old", "deploy-noop-1-stale-apt", names[:1], one)
        except BenchError as exc:
            print(f"    stale-apt run failed (is the Debian mirror reachable?): {exc}")

    noop_n: list[PlaybookRun] = []
    if n > 1:
        image = f"{PREFIX}converged:{os.getpid()}"
        log(f"cloning the converged host into {names[1]}..{names[-1]} (docker commit {image})")
        boxes.commit(names[0], image)
        boxes.up_many(list(zip(names[1:], ports[1:])), image=image)
        noop_n = [noop(f"no-op, {n} hosts (run {i + 1})", f"deploy-noop-{n}-{i + 1}", names, many)
                  for i in range(args.repeats)]

    out["noop_1"] = statistics.median(r.seconds for r in noop1)
    out["noop_n"] = statistics.median(r.seconds for r in noop_n) if noop_n else None
    out["top_1"] = noop1[-1].tasks
    out["top_n"] = noop_n[-1].tasks if noop_n else []
    out["tasks_n"] = len(noop1[-1].tasks)
    return out


def by_role(tasks: list[tuple[str, float]]) -> list[tuple[str, float]]:
    # profile_tasks names a role's task "role : task"; the rest is play-level.
    totals: dict[str, float] = {}
    for name, seconds in tasks:
        role = name.split(" : ", 1)[0] if " : " in name else "plays (outside roles)"
        totals[role] = totals.get(role, 0.0) + seconds
    return sorted(totals.items(), key=lambda t: -t[1])


def deploy_summary(data: dict) -> tuple[list[str], list[str]]:
    n, one, many = data["hosts"], data["noop_1"], data["noop_n"]
    lines = [f"no-op site.yml, 1 host: {one:.1f} s (target <= 10 s per host)"]
    if many:
        lines.append(f"no-op site.yml, {n} hosts: {many:.1f} s ({many / n:.1f} s per host)")
        lines.append(f"ratio {n} hosts / 1 host: {many / one:.2f} (target <= 2)")
    cpus = os.cpu_count() or 1
    for r in data["runs"]:
        if r["label"].startswith("no-op") and "run again" not in r["label"] and r["hosts_cpu"] is not None:
            busy = r["controller_cpu"] + r["hosts_cpu"]
            lines.append(f"{r['label']}: {busy:.0f} CPU-s (controller {r['controller_cpu']:.0f}, hosts "
                         f"{r['hosts_cpu']:.0f}) in {r['seconds']:.0f} s on {cpus} CPUs: "
                         f"{100 * busy / (r['seconds'] * cpus):.0f}% of the machine")
    total_1 = sum(s for _, s in data["top_1"])
    lines.append(f"1-host no-op: {data['tasks_n']} tasks, {total_1:.1f} s in tasks, "
                 f"{total_1 / max(1, data['tasks_n']):.2f} s per task on average; by role: "
                 + ", ".join(f"{role} {sec:.1f} s" for role, sec in by_role(data["top_1"])))
    if data["top_n"]:
        lines.append(f"{n}-host no-op, time in tasks by role (a serial play's tasks add up over its batches): "
                     + ", ".join(f"{role} {sec:.1f} s" for role, sec in by_role(data["top_n"])))
    md = ["| run | hosts | seconds | changed | controller CPU s | hosts CPU s |",
          "| --- | ---: | ---: | ---: | ---: | ---: |"]
    md += [f"| {r['label']} | {r['hosts']} | {r['seconds']:.1f} | {r['changed']} | {r['controller_cpu']:.1f} | "
           f"{'n/a' if r['hosts_cpu'] is None else format(r['hosts_cpu'], '.1f')} |" for r in data["runs"]]
    md += ["", "Results:", ""] + [f"- {line}" for line in lines]
    again = any("run again" in r["label"] for r in data["runs"])
    md += ["", f"The {n} hosts are clones (docker commit) of the converged one, each in both groups web and app"
           + ("; their first run changed things (with more hosts the roles chose another topology) and was "
              "run again, only the second is a no-op. " if again else ". ")
           + "\"what-if\" rows change only the environment (ANSIBLE_PIPELINING, the age of apt's lists), "
           "never the roles."]
    for label, tasks in ((f"1 host", data["top_1"]), (f"{n} hosts", data["top_n"])):
        if not tasks:
            continue
        md += ["", f"Slowest tasks of the no-op run, {label} (profile_tasks):", "",
               "| task | seconds |", "| --- | ---: |"]
        md += [f"| {name.replace('|', '/')} | {s:.2f} |" for name, s in tasks[:10]]
    return lines, md


# ---------------------------------------------------------------- report


def machine_stamp() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "unknown"
    # The bench's own outputs do not make the code it measured "uncommitted".
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            f":!{DOC_MD.relative_to(ROOT)}", f":!{DOC_PNG.relative_to(ROOT)}"], cwd=ROOT,
                           capture_output=True, text=True).stdout.strip()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "cpus": os.cpu_count(), "cpu": model, "load": Path("/proc/loadavg").read_text().split()[0]}


def replace_section(text: str, name: str, body: list[str]) -> str:
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = "\n".join([start, *body, end])
    if start in text and end in text:
        return text[:text.index(start)] + block + text[text.index(end) + len(end):]
    return text.rstrip("\n") + "\n\n" + block + "\n"


DOC_HEADER = """# Benchmark

Made by `make bench` (load, batch, serving settings) and `make bench-deploy` (no-op deploy time),
both through `scripts/bench`. Each section says when, on which commit and on how many CPUs it ran.
Absolute figures depend on the machine and on what else ran on it; the ratios within one run are
what to compare. wrk runs on the controller against the container's published loopback port, so
docker's proxy and wrk share the CPUs with the service.
"""


def others_share(results: list[WrkResult]) -> float | None:
    """The largest share of the machine's busy CPU, over the wrk runs, that went neither to the
    stack under test nor to wrk: other processes, and the kernel's work not charged to either."""
    shares = [r.cpu_us["rest"] / sum(v for v in r.cpu_us.values() if v > 0)
              for r in results if "rest" in r.cpu_us]
    return max(shares) if shares else None


def write_doc(section: str, stamp: dict, args, body: list[str], others: float | None = None,
              others_what: str = "", others_limit: float = 0.10) -> None:
    """others: the largest share of the machine's busy CPU that went to others_what during the
    measured runs; above others_limit the section says the machine was busy."""
    text = DOC_MD.read_text() if DOC_MD.exists() else DOC_HEADER
    command = " ".join(["scripts/bench", *(shlex.quote(a) for a in sys.argv[1:])])
    head = [f"## {'Load' if section == 'load' else 'Deploy speed'}", "",
            f"{stamp['date']}, commit {stamp['commit']}, {stamp['cpus']} CPUs ({stamp['cpu']}), "
            f"load average {stamp['load']} at the start, {Path('/proc/loadavg').read_text().split()[0]} at the "
            f"end. Command: `{command}`.", ""]
    if others is not None:
        # Measured during the runs themselves, unlike the load average, which still counts the
        # bench's own deploys of the minute before.
        head += [f"CPU taken by {others_what}: at most {others:.0%} of the machine's busy time.", ""]
        busy = others > others_limit
    else:
        busy = float(stamp["load"]) > 0.5 * (stamp["cpus"] or 1)
    if busy:
        head += ["**The machine was busy when this ran (other work shared the CPUs): the figures "
                 "are noisy; only the ratios mean something, and even they only roughly.**", ""]
    DOC_MD.parent.mkdir(parents=True, exist_ok=True)
    DOC_MD.write_text(replace_section(text, section, head + body))


# ---------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", nargs="?", default="load", choices=["load", "deploy", "all"])
    p.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", "15")),
                   help="seconds per wrk run (default 15, env BENCH_DURATION)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up of each stack (default 3)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of all wrk runs, alternating the stacks; medians are kept (default 1)")
    p.add_argument("--connections", type=lambda s: [int(x) for x in s.split(",")], default=[8, 64],
                   help="wrk connection counts, comma-separated (default 8,64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--mix", type=int, default=200, help="descriptions the wrk script cycles through")
    p.add_argument("--batch", type=int, default=1000, help="descriptions in the batch comparison (0: skip)")
    p.add_argument("--alt-workers", type=int, default=None,
                   help="worker count to compare with the default (0: skip; default 4, or 2 if the default is 4)")
    p.add_argument("--hosts", type=int, default=10, help="hosts of the many-host no-op deploy (default 10)")
    p.add_argument("--repeats", type=int, default=1, help="timed no-op runs per host count (median kept)")
    p.add_argument("--no-what-if", dest="what_if", action="store_false",
                   help="skip the deploy what-ifs (pipelining off; apt lists older than 1 h)")
    p.add_argument("--no-write", dest="write", action="store_false", help="print only; leave docs/ alone")
    args = p.parse_args(argv)
    if not 1 <= args.hosts <= 50:
        p.error("--hosts must be between 1 and 50")
    if args.duration < 1 or args.duration > 600:
        p.error("--duration must be between 1 and 600 seconds")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    boxes = Containers(keep=os.environ.get("KEEP") == "1")

    def stop(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    stamp = machine_stamp()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="classifier-bench.") as tmp:
            workdir = Path(tmp)
            if args.mode in ("load", "all"):
                data = load_bench(args, boxes, workdir)
                boxes.cleanup()
                lines, md = load_summary(data)
                log("load results")
                print("\n".join(f"    {line}" for line in lines))
                if args.write:
                    md = [f"{data['mix']} descriptions from app/data/produtos.csv cycled by wrk (case e: as many "
                          "product names, the length of what the form sends); -t{data['threads']}, "
                          f"{data['duration']} s per run, {data['rounds']} round(s) alternating the stacks (medians), "
                          f"after a {data['warmup']} s warm-up. Deployed with site.yml's defaults ({data['workers']} "
                          "workers, --preload, unix socket) but nginx's per-client rate limit off "
                          "(`classifier_web_rate_limit: 0`: all the load comes from one address). "
                          "Chart: [benchmark.png](benchmark.png).", ""] + md
                    write_doc("load", stamp, args, md, others_share(data["results"]),
                              "anything but the stack and wrk during the wrk runs")
                    load_chart(data, DOC_PNG, f"{stamp['date']}  commit {stamp['commit']}  {stamp['cpus']} CPUs")
            if args.mode in ("deploy", "all"):
                data = deploy_bench(args, boxes, workdir)
                boxes.cleanup()
                lines, md = deploy_summary(data)
                log("deploy results")
                print("\n".join(f"    {line}" for line in lines))
                print("    slowest tasks of the last 1-host no-op run:")
                for name, s in data["top_1"][:8]:
                    print(f"      {s:6.2f} s  {name}")
                if args.write:
                    shares = [r["others_share"] for r in data["runs"]
                              if r.get("others_share") is not None and "no-op" in r["label"]]
                    # dockerd and containerd run every docker exec of the connection: their part
                    # is work of the runs, so the bar is higher than the load bench's.
                    write_doc("deploy", stamp, args, md, max(shares) if shares else None,
                              "neither ansible-playbook nor the hosts (dockerd, containerd, anything "
                              "else) during the no-op runs", 0.35)
            if args.write:
                log(f"wrote {DOC_MD.relative_to(ROOT)}"
                    + (f" and {DOC_PNG.relative_to(ROOT)}" if args.mode != "deploy" else ""))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        boxes.cleanup()
    log(f"bench done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
