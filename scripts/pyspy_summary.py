"""Summarise a py-spy ``--format raw`` profile (collapsed stacks): where a service's time goes.

    python -m scripts.pyspy_summary /tmp/prof/intake.txt [--top 25] [--match shared/,services/]

Prints the share of samples by *self* frame (where the CPU actually was) and by *inclusive* frame
(any function on the stack), optionally only frames whose file path contains one of ``--match``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "lib/python3", "/work/", "/tmp/e2e-all/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{m['func']} ({path})"


def load(path: Path) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [short(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    return own, incl, total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", default="", help="comma-separated path fragments for the inclusive table")
    a = p.parse_args()
    own, incl, total = load(a.profile)
    print(f"{a.profile}: {total} samples")
    print("\nself (where the CPU was):")
    for frame, n in own.most_common(a.top):
        print(f"  {n / total * 100:5.1f}%  {frame}")
    keys = [m for m in a.match.split(",") if m]
    print("\ninclusive (on the stack)" + (f", frames matching {keys}:" if keys else ":"))
    shown = 0
    for frame, n in incl.most_common():
        if keys and not any(k in frame for k in keys):
            continue
        print(f"  {n / total * 100:5.1f}%  {frame}")
        shown += 1
        if shown >= a.top:
            break


if __name__ == "__main__":
    main()
