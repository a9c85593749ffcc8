#!/usr/bin/env python3
"""A real Prometheus against the pipeline example: it scrapes /metrics every
second (OpenMetrics, as Prometheus asks for it), evaluates the rules in
deploy/prometheus, and every expression of every dashboard panel and every
recording rule must be valid and return data; the runbook's panel 4 must lie
in [0.5, 1]. Every wait is bounded; the processes it starts are killed by PID.
"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time
import urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "deploy/prometheus/heat-observer.rules.yml")
DASHBOARD = os.path.join(ROOT, "deploy/grafana/heat-observer.json")
PANEL_4 = "Late observer success rate"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, limit):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"timed out after {limit} s waiting for {what}")


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def main():
    work = tempfile.mkdtemp(prefix="heat-observer-prom-")
    metrics_port, prom_port = free_port(), free_port()
    procs = []
    try:
        pipeline = subprocess.Popen(
            [os.path.join(ROOT, "target/debug/examples/pipeline"), "--plans", "6000", "--rate", "200",
             "--metrics-addr", f"127.0.0.1:{metrics_port}", "--linger-s", "60"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "pipeline.log"), "w"))
        procs.append(pipeline)
        wait_for("/metrics", lambda: "p28_observed_total" in get(f"http://127.0.0.1:{metrics_port}/metrics"), 30)

        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [{RULES}]
scrape_configs:
  - job_name: apply
    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]
""")
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))
        procs.append(prometheus)
        api = f"http://127.0.0.1:{prom_port}/api/v1"
        wait_for("Prometheus ready", lambda: "Ready" in get(f"http://127.0.0.1:{prom_port}/-/ready"), 30)

        def target_up():
            active = json.loads(get(f"{api}/targets"))["data"]["activeTargets"]
            return active and active[0]["health"] == "up" and active[0]
        target = wait_for("the target up", target_up, 20)
        assert target["lastError"] == "", target
        # Enough scrapes for increase() and rate() over the runbook's windows.
        time.sleep(12)

        def query(expr):
            q = urllib.parse.urlencode({"query": expr})
            answer = json.loads(get(f"{api}/query?{q}"))
            assert answer["status"] == "success", (expr, answer)
            return answer["data"]["result"]

        dashboard = json.load(open(DASHBOARD))
        checked = 0
        panel4 = None
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                # Grafana's variables as an import with every instance sets them.
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                result = query(expr)
                assert result, f"panel {panel['title']!r}: no data for {expr}"
                checked += 1
                if panel["title"] == PANEL_4:
                    panel4 = float(result[0]["value"][1])
        assert panel4 is not None and 0.5 <= panel4 <= 1.0, f"panel 4 = {panel4}"

        groups = json.loads(get(f"{api}/rules"))["data"]["groups"]
        records = 0
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", rule
                if rule["type"] == "recording":
                    assert query(rule["name"]), f"recording rule {rule['name']} returned nothing"
                    records += 1
        firing = [r["name"] for g in groups for r in g["rules"] if r["type"] == "alerting" and r["state"] != "inactive"]
        print(f"prometheus: {checked} panel expressions and {records} recording rules return data; "
              f"panel 4 = {panel4:.3f}; alerts not inactive: {firing or 'none'}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
