"""Summarises py-spy raw (collapsed) stacks: where the server's threads spend
their samples, by function (inclusive) and by our own modules.

    python bench/profile_summary.py PROFILE.txt [TOP]
"""
import sys
from collections import Counter

IDLE_MARKERS = ("wait (threading.py", "select (selectors.py", "poll (selectors.py",
                "handler_thread (waitress", "run (waitress/server.py")


def summarise(path, top=40):
    inclusive = Counter()
    leaf = Counter()
    total = 0
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            count = int(count)
            frames = stack.split(";")
            # A thread parked in a lock or select is idle, not working.
            if frames and any(marker in frames[-1] for marker in IDLE_MARKERS):
                continue
            total += count
            leaf[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} busy samples")
    print("\n-- inclusive (busy) --")
    for frame, count in inclusive.most_common(top):
        print(f"{count / total:6.1%}  {frame}")
    print("\n-- self --")
    for frame, count in leaf.most_common(top // 2):
        print(f"{count / total:6.1%}  {frame}")


if __name__ == "__main__":
    summarise(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40)
