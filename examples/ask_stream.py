# Copyright 2026 edgevlm_ros developers
# Licensed under the Apache License, Version 2.0
"""
Ask a running edgevlm_ros graph a one-off question and print the answer as it is generated.

Start the graph first (`make demo DURATION=0` in another terminal, or your own `ros2 launch
edgevlm_ros edgevlm.launch.py`), or let this script start the embedded default with --launch
(the demo's graph: the synthetic world as the camera, the micro SVLM, the simulated LVLM behind
an emulated 0.5 s network). The question goes to the edge, the cloud or both (edgevlm/ask);
the edge's text, then the cloud's, are printed as they stream in.

usage: .venv/bin/python examples/ask_stream.py [--launch] [--target edge|cloud|both]
       [--cancel-after N] [--namespace NS] ["question"]
"""

import argparse
import sys
import time

SOURCES = {0: 'edge', 1: 'cloud'}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    ap.add_argument('question', nargs='?', default='Describe the scene.')
    ap.add_argument('--target', default='both', choices=('edge', 'cloud', 'both'))
    ap.add_argument('--launch', action='store_true',
                    help='start the embedded default graph here, and stop it at the end')
    ap.add_argument('--cancel-after', type=int, default=0, metavar='N',
                    help='cancel the ask after N pieces of text (0: let it finish)')
    ap.add_argument('--namespace', default='')
    opts = ap.parse_args()

    from edgevlm_ros.tooling import launch_runner

    launch_runner.local_ros_environment()  # a local example: loopback DDS
    from edgevlm_ros.client import AskRejected, EdgeVlmClient
    import rclpy

    nodes = None
    if opts.launch:
        from pathlib import Path

        from edgevlm_ros.tooling.demo import DEMO_ARGS

        procs, _, _ = launch_runner.prepare(
            launch_runner.launch_file_path('edgevlm_ros', 'edgevlm.launch.py'),
            {**DEMO_ARGS, 'namespace': opts.namespace})
        nodes = launch_runner.Supervisor(procs, Path('build/ask_example_logs'),
                                         say=lambda line: print(line, flush=True))
        nodes.start()
        print('started the embedded default graph (logs in build/ask_example_logs/)')
    rclpy.init()
    node = rclpy.create_node('ask_stream_example')
    vlm = EdgeVlmClient(node, namespace=opts.namespace)
    try:
        vlm.wait_until_active(timeout_s=120)
        if vlm.wait_for_answer(timeout_s=60) is None:  # the graph has a frame to ask about
            print('no answer on the step stream within 60 s: is a camera running?')
            return 1
        print(f'asking the {opts.target}: {opts.question}')
        t0 = time.monotonic()
        stream = vlm.ask_stream(opts.question, target=opts.target, timeout_s=60)
        for n, text in enumerate(stream, 1):
            source = SOURCES.get(stream.sources[-1], '?')
            print(f'  {time.monotonic() - t0:5.2f} s  {source:<5} {text}', flush=True)
            if n == opts.cancel_after:
                stream.cancel()
        for answer, ending in zip(stream.answers, stream.endings):
            print(f'{SOURCES[answer.source]} answer ({ending}, step {answer.step_id}, '
                  f'{answer.latency_ms:.0f} ms): {answer.answer}')
        if stream.message:
            print(f'note: {stream.message}')
        return 0 if stream.status in ('succeeded', 'canceled') else 1
    except (AskRejected, TimeoutError) as e:
        print(f'ask failed: {e}', file=sys.stderr)
        return 1
    finally:
        vlm.destroy()
        node.destroy_node()
        rclpy.try_shutdown()
        if nodes is not None:
            nodes.shutdown()


if __name__ == '__main__':
    sys.exit(main())
