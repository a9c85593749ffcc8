#!/usr/bin/env python3
"""The alerts against their scenarios on a real Prometheus (by hand: about
6 minutes). Seven `apply-sim` processes, each serving /metrics and
lingering after its run, scraped every 2 s by a Prometheus that loads
deploy/prometheus/heat-observer.rules.yml (evaluated every 2 s):

  drops     a burst of 10,000 plans into a queue of 16, before the first scrape
  stopped   an orderly run and stop, /metrics still served afterwards
  rollback  P28_LATE_OBS_ENABLED=false
  config    P28_LATE_OBS_POLL_MS=abc
  losing    its Redis killed 3 s into the run (failed observations)
  trickle   a few timeouts: its Redis paused 300 ms (CLIENT PAUSE) three times
  killed    the Apply process itself SIGKILLed 10 s into the run

Prints, per alert and instance, when it went pending and firing (seconds
from the start), and checks: the orderly stop, the rollback and the trickle
page nobody; HeatObserverLosing fires within 2 minutes of the Redis kill;
HeatObserverApplyDown within 5 minutes of the Apply kill. Needs
target/debug/examples/apply-sim, redis-server, redis-cli and prometheus.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPLY = os.path.join(ROOT, "target/debug/examples/apply-sim")
RULES = os.path.join(ROOT, "deploy/prometheus/heat-observer.rules.yml")
WATCH_S = float(os.environ.get("WATCH_S", "330"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis(port, work):
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_port(port, deadline):
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def main():
    work = tempfile.mkdtemp(prefix="alerts-live-")
    procs = []
    try:
        shared, doomed, paused = free_port(), free_port(), free_port()
        procs += [redis(shared, work), redis(doomed, work), redis(paused, work)]
        doomed_redis = procs[-2]
        for p in (shared, doomed, paused):
            wait_port(p, time.time() + 10)
        scenarios = {
            "drops": ({"P28_LATE_OBS_QUEUE_CAPACITY": "16"}, shared, ["--plans", "10000", "--rate", "1000000"]),
            "stopped": ({}, shared, ["--plans", "200", "--rate", "100"]),
            "rollback": ({"P28_LATE_OBS_ENABLED": "false"}, shared, ["--plans", "200", "--rate", "100"]),
            "config": ({"P28_LATE_OBS_POLL_MS": "abc"}, shared, ["--plans", "200", "--rate", "100"]),
            "losing": ({"P28_LATE_OBS_RETRY_MS": "1000"}, doomed, ["--plans", "3000", "--rate", "200"]),
            "trickle": ({}, paused, ["--plans", "40000", "--rate", "100"]),
            "killed": ({}, shared, ["--plans", "40000", "--rate", "100"]),
        }
        ports = {name: free_port() for name in scenarios}
        prom_port = free_port()
        targets = [f"127.0.0.1:{ports[n]}" for n in scenarios]
        with open(os.path.join(work, "prometheus.yml"), "w") as f:
            f.write(
                "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
                f"rule_files: ['{RULES}']\n"
                "scrape_configs:\n"
                "  - job_name: apply\n"
                f"    static_configs: [{{targets: {json.dumps(targets)}}}]\n")
        start = time.time()
        procs.append(subprocess.Popen(
            ["prometheus", f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w")))
        wait_port(prom_port, time.time() + 30)
        # The burst starts before Prometheus's first scrape of its process.
        apply = {}
        for name, (env, port, args) in scenarios.items():
            apply[name] = len(procs)
            procs.append(subprocess.Popen(
                [APPLY, "--redis", f"redis://127.0.0.1:{port}", "--metrics-addr", str(ports[name]),
                 "--linger-s", str(WATCH_S + 60), *args],
                env={**os.environ, **env, "RUST_LOG": "warn"},
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"{name}.log"), "w")))
        instance = {f"127.0.0.1:{ports[n]}": n for n in scenarios}
        killed = False
        apply_killed = False
        pauses = [20, 60, 100]
        seen = {}
        api = f"http://127.0.0.1:{prom_port}/api/v1/alerts"
        while time.time() - start < WATCH_S:
            if not killed and time.time() - start > 3:
                doomed_redis.send_signal(signal.SIGKILL)
                killed = True
                killed_at = time.time() - start
            if not apply_killed and time.time() - start > 10:
                procs[apply["killed"]].send_signal(signal.SIGKILL)
                apply_killed = True
                apply_killed_at = time.time() - start
            if pauses and time.time() - start > pauses[0]:
                pauses.pop(0)
                subprocess.run(["redis-cli", "-p", str(paused), "CLIENT", "PAUSE", "300", "ALL"],
                               stdout=subprocess.DEVNULL, check=False)
            try:
                alerts = json.load(urllib.request.urlopen(api, timeout=2))["data"]["alerts"]
            except OSError:
                alerts = []
            for a in alerts:
                key = (a["labels"]["alertname"], instance.get(a["labels"].get("instance"), "?"))
                state = a["state"]
                if (key, state) not in seen:
                    seen[(key, state)] = time.time() - start
                    print(f"{seen[(key, state)]:6.1f} s  {key[0]:<24} {key[1]:<9} {state}", flush=True)
            time.sleep(1)
        print("\nalert                    scenario  pending  firing")
        keys = sorted({k for k, _ in seen})
        for k in keys:
            pend = seen.get((k, "pending"))
            fire = seen.get((k, "firing"))
            fmt = lambda t: "-" if t is None else f"{t:.0f} s"
            print(f"{k[0]:<24} {k[1]:<9} {fmt(pend):>7} {fmt(fire):>7}")
        wrong = [k for k in keys if k[1] in ("stopped", "rollback", "trickle")]
        if wrong:
            raise SystemExit(f"paged for an orderly stop, the rollback or a trickle: {wrong}")
        must = [("HeatObserverDropping", "drops"), ("HeatObserverConfigError", "config"),
                ("HeatObserverLosing", "losing"), ("HeatObserverApplyDown", "killed")]
        missing = [m for m in must if (m, "firing") not in seen]
        if missing:
            raise SystemExit(f"never fired: {missing}")
        # The trickle happened: a few failures among thousands accepted.
        q = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(
            f'p28_failed_total{{instance="127.0.0.1:{ports["trickle"]}"}}')
        res = json.load(urllib.request.urlopen(q, timeout=5))["data"]["result"]
        q = f"http://127.0.0.1:{prom_port}/api/v1/query?query=" + urllib.parse.quote(
            f'p28_accepted_total{{instance="127.0.0.1:{ports["trickle"]}"}}')
        acc = json.load(urllib.request.urlopen(q, timeout=5))["data"]["result"]
        trickle = float(res[0]["value"][1]) if res else 0.0
        accepted = float(acc[0]["value"][1]) if acc else 0.0
        print(f"trickle: {trickle:.0f} failed of {accepted:.0f} accepted, no page")
        if trickle == 0:
            raise SystemExit("the trickle scenario made no failure: it tested nothing")
        losing = seen[(("HeatObserverLosing", "losing"), "firing")] - killed_at
        down = seen[(("HeatObserverApplyDown", "killed"), "firing")] - apply_killed_at
        print(f"\nLosing fired {losing:.0f} s after Redis died; ApplyDown {down:.0f} s after Apply died")
        if losing > 120 or down > 300:
            raise SystemExit("a page came too late (targets: 2 and 5 minutes)")
        print("ok: each fired for its scenario in time; the orderly stop, the rollback and the "
              "trickle paged nobody")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
