"""Checks of the benchmark's own parts that need no container (no timings are asserted):
  .venv/bin/python -m pytest -q scripts/bench.d
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
import pngchart  # noqa: E402

TRICKY = ['aspas "duplas" e \\barra\\', "linha 1\nlinha 2\r\n\ttab", "ação, maçã, pão — 50% ✓",
          "separador\u2028de linha", "nul \x00 e bell \x07", "x" * 5000]


def test_bodies_are_one_json_line_each(tmp_path):
    path = bench.write_bodies(tmp_path / "bodies.jsonl", TRICKY)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""
    assert [json.loads(line)["descricao"] for line in lines[:-1]] == TRICKY


def test_descriptions_are_fixed_and_within_the_limit():
    texts = bench.descriptions()
    assert len(texts) >= 1000
    assert texts == bench.descriptions()
    assert all(t.strip() and len(t) <= bench.MAX_CHARS for t in texts)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_wrk_script_sends_every_body_intact(tmp_path):
    """wrk with bench.lua against a local server that decodes each body it gets."""
    seen, bad = set(), []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                seen.add(json.loads(raw.decode("utf-8"))["descricao"])
            except (ValueError, KeyError) as exc:
                bad.append(repr(exc))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        bodies = bench.write_bodies(tmp_path / "bodies.jsonl", TRICKY)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = bench.run_wrk(url, "POST", "/predizer_categoria", 2, 1, 2, bodies)
    finally:
        server.shutdown()
    assert not bad
    assert seen == set(TRICKY)
    assert result["requests"] > 0 and result["status"] == 0


def test_png_is_well_formed():
    canvas = pngchart.Canvas(300, 200)
    pngchart.grouped_bars(canvas, 10, 10, 280, 180, "req/s", [("a\nb", [1.0, 2.0]), ("c", [3.0, None])],
                          ["8", "64"])
    data = canvas.png()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (300, 200)
    idat_len = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    assert len(zlib.decompress(data[41:41 + idat_len])) == height * (1 + 3 * width)


def test_sections_are_replaced_in_place():
    text = bench.replace_section("# Title\n", "load", ["one"])
    text = bench.replace_section(text, "deploy", ["two"])
    again = bench.replace_section(text, "load", ["three"])
    assert again.index("three") < again.index("two")
    assert "one" not in again and again.count("bench:load:start") == 1


def test_profile_tasks_and_recap_lines_parse():
    assert bench._TASK.match("classifier_web : Copy the form --- 8.13s").groups() == (
        "classifier_web : Copy the form", "8.13")
    m = bench._RECAP.match("classifier-bench-1         : ok=42   changed=0    unreachable=0    failed=0")
    assert m and m.group(1) == "classifier-bench-1"


def test_task_times_add_up_every_batch_of_a_serial_play():
    stamp = "Saturday 21 November 2026  23:42:43 +0000 ({})       0:00:00.034 ***** "
    log = "\n".join([
        "TASK [role : a] *****", stamp.format("0:00:00.010"),
        "TASK [role : b] *****", stamp.format("0:00:01.500"),
        "TASK [role : a] *****", stamp.format("0:00:02.000"),
        "RUNNING HANDLER [role : h] *****", stamp.format("0:00:01.250"),
        "TASKS RECAP *****", stamp.format("0:01:00.000"),
    ])
    assert bench.task_times(log) == [("role : h", 60.0), ("role : a", 2.75), ("role : b", 2.0)]


def test_cpu_readers_count_what_is_spent(tmp_path):
    unit = tmp_path / "nginx.service"
    unit.mkdir()
    (unit / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 1000000\nsystem_usec 1500000\n")
    assert bench.cgroup_cpu({"nginx": unit}) == {"nginx": 2.5}
    before = bench.machine_cpu()
    deadline = bench.time.process_time() + 0.3
    while bench.time.process_time() < deadline:  # burn 0.3 s of CPU
        pass
    busy, _ = bench.machine_cpu()
    assert busy - before[0] >= 0.25
    assert bench.pids_cpu([bench.os.getpid()]) >= 0.25
    assert bench.unit_cgroups("no-such-container-here", {"nginx": "nginx.service"}) == {}


def _result(endpoint: str, rps: float, case: str, cpu_us: dict) -> "bench.WrkResult":
    return bench.WrkResult("deployed, 2 workers", endpoint, 64, rps, 20, 30, 0, 40000, case=case,
                           cpu_us=cpu_us)


def _summary(*results: "bench.WrkResult") -> tuple[list[str], list[str]]:
    return bench.load_summary({"results": list(results), "memory": [], "deployed": "deployed, 2 workers",
                               "connections": [64], "alt": 0, "batch": {}, "workers": 2})


def test_cpu_breakdown_is_printed_and_tabled():
    lines, md = _summary(_result("predict", 2000, "a", {"nginx": 110, "gunicorn": 520}),
                         _result("health (ceiling)", 3000, "b", {"nginx": 100, "gunicorn": 300}))
    assert "CPU µs per request at 64 connections, predict vs health: nginx 110 vs 100, " \
           "gunicorn 520 vs 300; sum 630 vs 400" in lines
    assert "| a | predict | 64 | 110 | 520 | 630 |" in md


def test_others_share_is_the_worst_run():
    runs = [bench.WrkResult("s", "e", 8, 1, 1, 1, 0, 1, cpu_us={"gunicorn": 90, "rest": 10}),
            bench.WrkResult("s", "e", 64, 1, 1, 1, 0, 1, cpu_us={"gunicorn": 75, "rest": 25}),
            bench.WrkResult("s", "e", 64, 1, 1, 1, 0, 1)]
    assert bench.others_share(runs) == 0.25
    assert bench.others_share(runs[2:]) is None


def test_wait_healthy_names_the_stack_that_never_answered():
    import socket
    with socket.socket() as s:  # a loopback port free a moment ago
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(bench.BenchError, match=f"{url} not healthy after 1 s"):
        bench.wait_healthy(url, timeout=1)


def test_the_cost_of_a_description_s_length_is_a_ratio_to_the_ceiling():
    a = _result("predict", 2000, "a", {"nginx": 120, "gunicorn": 500})
    b = _result("health (ceiling)", 3000, "b", {"nginx": 100, "gunicorn": 300})
    e = _result(bench.SHORT, 2700, "e", {"nginx": 105, "gunicorn": 340})
    assert "e/b at 64 connections: 0.900 (predict with product names / health req/s: 2700 / 3000); " \
           "CPU µs per request, sum: a 620, e 445, b 400" in _summary(a, b, e)[0]
    assert not any(line.startswith("e/b") for line in _summary(a, b)[0])
