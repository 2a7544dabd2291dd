"""Masking time on 64 KB strings (``python -m scripts.bench_masking``): the worst shapes we know
for a backtracking regular expression, plus ordinary ticket text. Prints seconds per case."""

from __future__ import annotations

import argparse
import time

from shared.masking import mask_text

SIZE = 64 * 1024


def cases(size: int) -> dict[str, str]:
    ordinary = "客户李雷来电 13812345678，邮箱 lilei@example.com，订单 20261123000001 设备无法启动。"
    return {
        "letters (email local part, no @)": "a" * size,
        "digits": "1" * size,
        "dotted letters": "a." * (size // 2),
        "spaced digits": "1 " * (size // 2),
        "plus digits": "+1 " * (size // 3),
        "at signs": "a@" * (size // 2),
        "domain labels": "a@" + "b." * (size // 2 - 1),
        "digits and at signs": "1@" * (size // 2),
        "phones back to back": ("13812345678 " * (size // 12 + 1))[:size],
        "ordinary ticket text": (ordinary * (size // len(ordinary) + 1))[:size],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=SIZE)
    a = p.parse_args()
    worst = 0.0
    for name, text in cases(a.size).items():
        started = time.perf_counter()
        mask_text(text)
        took = time.perf_counter() - started
        worst = max(worst, took)
        print(f"{name:<36} {len(text):>7} chars  {took * 1000:>10.1f} ms", flush=True)
    print(f"{'worst':<36} {'':>7}        {worst * 1000:>10.1f} ms")


if __name__ == "__main__":
    main()
