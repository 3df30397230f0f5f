"""The figures of a fault-suite run as a Markdown table:
`python -m tests.faults.table var/faults/figures.jsonl` (what `make faults`
prints and writes to var/faults/figures.md)."""
import collections
import json
import os
import statistics
import sys

COLUMNS = ("fault", "database", "repetitions", "submitted", "completed", "failed (interrupted)",
           "executed twice", "lost", "recovery s (median / max)", "claim latency s (median / max)",
           "load average")


def table(rows):
    groups = collections.defaultdict(list)
    for row in rows:
        groups[(row["fault"], row["database"])].append(row)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for (fault, database), runs in sorted(groups.items()):
        recoveries = [r["recovery_s"] for r in runs if r.get("recovery_s") is not None]
        loads = [r["load_average"] for r in runs]
        recovery = (f"{statistics.median(recoveries):.1f} / {max(recoveries):.1f}"
                    if recoveries else "-")
        medians = [r["claim_latency_median_s"] for r in runs if r.get("claim_latency_median_s") is not None]
        highest = [r["claim_latency_max_s"] for r in runs if r.get("claim_latency_max_s") is not None]
        latency = (f"{statistics.median(medians):.1f} / {max(highest):.1f}" if medians else "-")
        lines.append("| " + " | ".join(str(value) for value in (
            fault, "PostgreSQL" if database == "postgres" else "SQLite", len(runs),
            sum(r["submitted"] for r in runs), sum(r["completed"] for r in runs),
            sum(r["failed"] for r in runs), sum(r["executed_twice"] for r in runs),
            sum(r["lost"] for r in runs), recovery, latency,
            f"{min(loads):.1f}-{max(loads):.1f}")) + " |")
    return "\n".join(lines)


def main(path):
    if not os.path.exists(path):
        print(f"no figures in {path}")
        return 1
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    print(table(rows))
    print(f"\n(one-minute load average of the machine now: {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "var/faults/figures.jsonl"))
