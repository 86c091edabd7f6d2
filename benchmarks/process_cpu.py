"""Wall time of a command and the CPU seconds of each process in its tree (driver, JVM, Python workers).

    python -m benchmarks.process_cpu sparkyfruit encode --input DIR --output OUT --weights none ...

Used to see where CPU goes on a small machine, e.g. the JVM's JIT against TensorFlow.
"""

import subprocess
import sys
import time

import psutil


def main(command: list[str]) -> None:
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    last: dict[int, tuple[str, float]] = {}
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            tree = []
        for child in tree:
            try:
                times = child.cpu_times()
                last[child.pid] = (" ".join(child.cmdline())[:80], times.user + times.system)
            except psutil.Error:
                pass
        time.sleep(0.2)
    print(f"wall {time.perf_counter() - started:.1f} s, exit {process.returncode}")
    for name, cpu in sorted(last.values(), key=lambda item: -item[1]):
        print(f"{cpu:7.1f} CPU-s  {name}")


if __name__ == "__main__":
    main(sys.argv[1:])
