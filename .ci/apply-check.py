#!/usr/bin/env python3
"""the lab's apply-sim as an operator runs it (about 20 s), against private
redis-servers:

  outage    Redis killed 2 s into a run and restarted 3 s later: the
            stand-in bridge says it failed once, reconnects and writes
            again; the late observer finds keys again
  stop      SIGTERM: the report's signal-to-exit time against the time an
            outside clock measures from the signal to the process's end
  linger    --linger-s 60 after the stop: a second SIGTERM ends it at once
  readonly  the observer as the README's read-only ACL user, the bridge on
            its own URL (--bridge-redis): keys are written and found

Needs target/debug/examples/apply-sim, redis-server and redis-cli.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPLY = os.path.join(ROOT, "target/debug/examples/apply-sim")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port, work):
    p = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                          "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"redis-server on {port} did not start")


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], check=True,
                          capture_output=True, text=True).stdout


def wait_exit(proc, seconds):
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise SystemExit(f"apply did not exit within {seconds} s")


def main():
    work = tempfile.mkdtemp(prefix="apply-check-")
    procs = []
    try:
        # outage + stop
        port = free_port()
        server = start_redis(port, work)
        procs.append(server)
        err = open(os.path.join(work, "outage.log"), "w+")
        apply = subprocess.Popen([APPLY, "--redis", f"redis://127.0.0.1:{port}", "--plans", "100000",
                                  "--rate", "200", "--json"], stdout=subprocess.PIPE, stderr=err, text=True)
        procs.append(apply)
        time.sleep(2)
        server.kill()
        server.wait()
        time.sleep(3)
        procs.append(start_redis(port, work))
        time.sleep(4)
        signalled = time.monotonic()
        apply.send_signal(signal.SIGTERM)
        out, _ = apply.communicate(timeout=30)
        outside_ms = (time.monotonic() - signalled) * 1000
        run = json.loads(out)
        err.seek(0)
        log = err.read()
        failed_lines = len(re.findall(r"bridge (write of \S+ failed|cannot reach Redis)", log))
        back = re.search(r"bridge writes again after (\d+) failed attempt", log)
        print(f"outage: bridge failure lines {failed_lines}, back: {bool(back)}; "
              f"found {run['outcomes']['found']}, balanced {run['balanced']}")
        assert failed_lines == 1, log[-2000:]
        assert back, log[-2000:]
        assert run["balanced"], run
        print(f"stop: the report says {run['signal_to_exit_ms']} ms to the exit "
              f"(drained at {run['signal_to_drained_ms']} ms), an outside clock {outside_ms:.0f} ms")
        assert outside_ms - run["signal_to_exit_ms"] < 500, (outside_ms, run)
        # After the restart, the observer found keys the bridge wrote again.
        found = [line for line in cli(port, "XRANGE", "quantum:stream:apply.heat.observed", "-", "+").splitlines()]
        assert "1" in found and "publish_plan_post" in found, "no event after the restart"

        # linger
        metrics = free_port()
        lingering = subprocess.Popen([APPLY, "--plans", "1000000", "--rate", "100", "--metrics-addr",
                                      str(metrics), "--linger-s", "60"],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(lingering)
        time.sleep(1)
        lingering.send_signal(signal.SIGTERM)
        # The report is printed when the stop is over: then it lingers.
        line = lingering.stdout.readline()
        while line and not line.startswith("calls"):
            line = lingering.stdout.readline()
        time.sleep(0.5)
        assert lingering.poll() is None, "it did not linger"
        second = time.monotonic()
        lingering.send_signal(signal.SIGTERM)
        wait_exit(lingering, 5)
        print(f"linger: a second SIGTERM ended it in {(time.monotonic() - second) * 1000:.0f} ms")

        # readonly user, bridge on its own URL
        port2 = free_port()
        procs.append(start_redis(port2, work))
        cli(port2, "ACL", "SETUSER", "heat-observer", "on", ">pw", "resetkeys", "resetchannels", "-@all",
            "+script|load", "+exists", "%R~quantum:harvest:heat:by_plan:*",
            "(+evalsha", "~quantum:stream:apply.heat.observed",
            "~{quantum:stream:apply.heat.observed}:dedupe:*)",
            "(+xadd", "~quantum:stream:apply.heat.observed)",
            "(+set", "+get", "+del", "~{quantum:stream:apply.heat.observed}:dedupe:*)")
        ro = subprocess.run([APPLY, "--redis", f"redis://heat-observer:pw@127.0.0.1:{port2}",
                             "--bridge-redis", f"redis://127.0.0.1:{port2}", "--plans", "40",
                             "--rate", "100", "--json"], capture_output=True, text=True, timeout=60)
        run = json.loads(ro.stdout)
        print(f"readonly: found {run['outcomes']['found']}, failed {run['outcomes']['failed']}")
        assert run["outcomes"]["found"] >= 25 and run["outcomes"]["failed"] == 0, (run, ro.stderr[-2000:])
        assert "bridge write" not in ro.stderr, ro.stderr[-2000:]
        print("ok")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
