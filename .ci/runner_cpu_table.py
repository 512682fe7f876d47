"""The markdown table of BENCHMARKS.md "Runner on Fly's CPU" from .ci/runner_cpu_bench.py's JSON
rows: `python3 .ci/runner_cpu_bench.py --table a.json b.json ...`."""
import json

CPU_NAMES = {"shared": "shared vCPU, cold", "1": "1 core", "2": "2 cores"}


def table(paths):
    """The markdown table of BENCHMARKS.md from result files (--table a.json b.json ...)."""
    rows = [r for p in paths for r in json.load(open(p))]
    print("| project | CPU | image | cloned | installed | dev server ready | first 200 | page assets loaded (n) "
          "| CPU-s: start+clone / install / dev start / first page + assets | CPU-s to first 200 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    order = {"vite": 0, "next": 1, "sveltekit": 2}
    for r in sorted(rows, key=lambda r: (order.get(r["project"], 9), r["cpu"], r["label"])):
        cpu = lambda *ks: sum(r.get(f"cpu_{k}", 0) for k in ks)  # noqa: E731
        if "failed" in r:
            cells = ["—"] * 3 + [f"**never** ({r['failed']})", "—"]
            print(f"| {r['project']} | {CPU_NAMES.get(r['cpu'], r['cpu'])} | {r['label']} | " + " | ".join(cells) + " | — | — |")
            continue
        else:
            cells = [f"{r['clone']:.1f} s", f"{r['install']:.1f} s", f"{r['dev_ready']:.1f} s", f"**{r['first_200']:.1f} s**",
                     f"{r['loaded']:.1f} s ({r['assets']})"]
        used = f"{cpu('start', 'clone'):.2f} / {cpu('install'):.2f} / {cpu('dev_ready'):.2f} / {cpu('first_200', 'loaded'):.2f}"
        to_first = cpu("start", "clone", "install", "dev_ready", "first_200")
        print(f"| {r['project']} | {CPU_NAMES.get(r['cpu'], r['cpu'])} | {r['label']} | " + " | ".join(cells)
              + f" | {used} | {to_first:.1f} |")
