"""Print the exhaustive LCU and voter correction tables as Markdown (README, issue 4).

python experiments/correction_tables.py
"""

from __future__ import annotations

from accelsim import lcu_table, voter_table


def main() -> None:
    for title, rows in (
        ("LCU, fault-free halves h = 0..64 in both copies", lcu_table()),
        ("LCU of split_clamped, fault-free halves h = 0..63 in both copies", lcu_table(63)),
        ("TMR voter, every int8 value in all three copies", voter_table()),
    ):
        print(f"**{title}**\n")
        print("| faults | cases | corrected | masked to a smaller value | left larger |")
        print("|---|---|---|---|---|")
        for r in rows:
            pct = lambda n, r=r: f"{n} ({100 * n / r.cases:.1f} %)"  # noqa: E731
            cells = (r.scenario, r.cases, pct(r.corrected), pct(r.smaller), pct(r.larger))
            print("| " + " | ".join(map(str, cells)) + " |")
        print()


if __name__ == "__main__":
    main()
