"""What the system and cluster tests share: known examples, a bounded load generator, models made
for a test (a different one, a broken one) and a way to run the project's playbooks."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "app" / "data" / "produtos.csv"

# One realistic description per class, classified right by the shipped model.
EXAMPLES = {
    "maquiagem": "Batom líquido matte vermelho, longa duração, não transfere",
    "game": "Jogo para PlayStation 5 com modo multiplayer online e campanha de mundo aberto",
    "brinquedo": "Boneca articulada com acessórios e roupinhas, para crianças a partir de 3 anos",
    "livro": "Romance de ficção científica em capa dura, edição de colecionador, 480 páginas",
}


@dataclass
class Load:
    """Steady load through nginx from a few threads, bounded in time and count.

    Each request classifies a known description; a failure is anything but a 200 with the right
    category (a 429 and connection errors included). `versions` counts the model versions that
    answered. `rate` paces all threads together to at most that many requests per second (to stay
    under nginx's per-client limit); `keepalive=False` opens a connection per request.
    """

    url: str
    threads: int = 4
    max_seconds: float = 900
    max_requests: int = 500_000
    rate: float | None = None
    timeout: float = 10.0
    keepalive: bool = True
    statuses: Counter = field(default_factory=Counter)
    failures: list = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)
    last_version: str | None = None
    _next: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    def _wait_turn(self) -> None:
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + 1 / self.rate
        time.sleep(max(0.0, at - now))

    def _worker(self) -> None:
        session = requests.Session()
        if not self.keepalive:
            session.headers["Connection"] = "close"
        items = list(EXAMPLES.items())
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < self.max_requests:
            self._wait_turn()
            label, text = items[i % len(items)]
            i += 1
            try:
                r = session.post(f"{self.url}/api/predizer_categoria", json={"descricao": text}, timeout=self.timeout)
                status = r.status_code
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else None
            except requests.RequestException as exc:
                status, body = type(exc).__name__, {"exception": str(exc)[:200]}
            with self._lock:
                self.statuses[status] += 1
                if status != 200 or not body or body.get("categoria") != label:
                    self.failures.append((round(time.monotonic(), 3), status, body))
                else:
                    self.versions[body.get("versao_modelo")] += 1
                    self.last_version = body.get("versao_modelo")

    def __enter__(self) -> "Load":
        self._threads = [threading.Thread(target=self._worker, daemon=True) for _ in range(self.threads)]
        for t in self._threads:
            t.start()
        time.sleep(0.5)  # the load runs before the event under test
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(1.0)  # and still runs after it
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)

    def report(self) -> str:
        return (f"sent={self.sent} failed={len(self.failures)} statuses={dict(self.statuses)} "
                f"versions={dict(self.versions)} first failures={self.failures[:5]}")


def wait_healthy(url: str, timeout: float = 60) -> None:
    """Until the stack behind `url` answers /api/health with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} not healthy after {timeout} s")


def run_playbook(inventory: str, playbook: str = "site.yml", *args: str, project: Path = ROOT,
                 timeout: float = 900) -> subprocess.CompletedProcess:
    """ansible-playbook from the controller venv; its output, stderr included (where ansible-core
    writes failed tasks), in ``stdout`` for the assertions."""
    ansible = Path(sys.executable).with_name("ansible-playbook")
    # The roles of the project being run (a copy's, not the repository's); the build role reads the
    # project next to its roles.
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", ANSIBLE_ROLES_PATH=str(project / "roles"))
    return subprocess.run([str(ansible), "-i", inventory, str(project / playbook), *args], cwd=project,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)


def _train(rows: list[dict], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    data = out / "produtos.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["nome", "descricao", "categoria"], delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    subprocess.run([sys.executable, "-m", "classifier.train", "--data", str(data), "--output", str(out / "model")],
                   check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "app")), timeout=300)
    return out / "model" / "model.skops"


def _rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(DATA.read_text(encoding="utf-8")), delimiter=";"))


def different_model(out: Path) -> Path:
    """A good model that is not the shipped one: trained without every 40th row."""
    return _train([row for i, row in enumerate(_rows()) if i % 40], out)


def broken_model(out: Path) -> Path:
    """A model that loads and answers, but wrong: every label shifted to the next class."""
    shift = {"livro": "maquiagem", "maquiagem": "brinquedo", "brinquedo": "game", "game": "livro"}
    return _train([dict(row, categoria=shift[row["categoria"]]) for row in _rows()], out)


def copy_project(dest: Path) -> Path:
    """The tracked files of the working tree, to change a copy without touching the repository."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    return dest


# Figures the tests measure (requests sent and failed, seconds), printed at the end of the run by
# the conftests' pytest_terminal_summary, for the closing notes and the operators.
FIGURES: list[str] = []


def figures(name: str, **values) -> None:
    line = f"[figures] {name}: {json.dumps(values, default=str)}"
    FIGURES.append(line)
    print("\n" + line)


def print_figures(terminalreporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
