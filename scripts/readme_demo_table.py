"""Copy the demo's own table (`outputs/digits_demo/table.md`, written by `make demo`) into README.md.

The README's demo table sits between two markers,

    <!-- demo-table: start (scripts/readme_demo_table.py copies outputs/digits_demo/table.md here) -->
    ...
    <!-- demo-table: end -->

and is exactly the file `examples/digits_demo.py` writes, so the README shows what `make demo`
prints. Run it after `make demo`:

    python scripts/readme_demo_table.py            # rewrite README.md
    python scripts/readme_demo_table.py --check    # exit 1 if README.md differs from the file
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "<!-- demo-table: start (scripts/readme_demo_table.py copies outputs/digits_demo/table.md here) -->"
END = "<!-- demo-table: end -->"
BLOCK = re.compile(re.escape(START) + r"\n(.*?)" + re.escape(END), re.S)


def readme_block(readme: str) -> str:
    """The text between the README's demo-table markers."""
    match = BLOCK.search(readme)
    if match is None:
        raise ValueError("README.md has no demo-table markers")
    return match[1]


def with_table(readme: str, table: str) -> str:
    """`readme` with the text between its markers replaced by `table`."""
    readme_block(readme)  # raises without markers
    return BLOCK.sub(lambda _: f"{START}\n{table.rstrip()}\n{END}", readme, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_table = ROOT / "outputs" / "digits_demo" / "table.md"
    parser.add_argument("--table", type=Path, default=default_table, help="the demo's table.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    if not args.table.is_file():
        parser.error(f"--table {args.table} does not exist: run `make demo` first")
    readme = args.readme.read_text()
    updated = with_table(readme, args.table.read_text())
    if args.check:
        if updated != readme:
            print(f"{args.readme}: the demo table differs from {args.table}", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(updated)
    print(f"updated the demo table of {args.readme} from {args.table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
