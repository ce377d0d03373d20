"""Run the simulator standalone until stopped:

    uv run python -m tests.harness.kubeapi --kubeconfig /tmp/sim.kubeconfig [--port 6443] [--no-controllers]

Prints the URL; then ``KUBECONFIG=/tmp/sim.kubeconfig kubectl get ns`` works. Ctrl-C (or SIGTERM) stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from .controllers_basic import BasicControllers
from .simulator import Simulator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tests.harness.kubeapi",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--kubeconfig", required=True, help="where to write the kubeconfig")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    ap.add_argument(
        "--ready-delay",
        type=float,
        default=0.5,
        help="seconds before the basic controller reports Deployments ready / Jobs complete",
    )
    ap.add_argument("--no-controllers", action="store_true", help="do not run the basic controllers")
    args = ap.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim = Simulator(port=args.port).start()
    if not args.no_controllers:
        sim.add_controller(BasicControllers(delay=args.ready_delay), every=0.05, name="basic")
    path = sim.write_kubeconfig(args.kubeconfig)
    print(f"kubeapi simulator listening on {sim.url}", flush=True)
    print(f"kubeconfig: {path}", flush=True)
    while not stop.wait(1.0):
        pass
    sim.stop()
    print("kubeapi simulator stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
