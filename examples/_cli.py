"""Command-line conventions shared by the examples.

Not an example itself (the leading underscore keeps it out of the example
runs). Every example:

- shows its docstring and every option's default in `--help`
  (`HelpFormatter`);
- has `--quick`, a smoke run of a few seconds that writes to
  `OUTPUT_DIR/quick/`, so a full run's PNGs and `.keras` files stay
  untouched (`add_quick_argument`, `quick_output_dir`);
- ends with one line `RESULT key=value ... quick=0|1` (`print_result`);
  a quick run says first that its numbers are not meaningful.
"""

import argparse
import os

QUICK_NOTE = (
    "quick run (--quick): a smoke run of the code path on tiny settings; "
    "its numbers are not meaningful"
)


class HelpFormatter(
    argparse.RawDescriptionHelpFormatter,
    argparse.ArgumentDefaultsHelpFormatter,
):
    """Keeps the description's layout and shows every option's default."""


def add_quick_argument(parser):
    """Adds `--quick` (see the module docstring)."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run of a few seconds on tiny settings, written to "
        "OUTPUT_DIR/quick/; its numbers are not meaningful",
    )


def quick_output_dir(args):
    """With `--quick`, moves `args.output_dir` to its `quick/` subfolder."""
    if args.quick:
        args.output_dir = os.path.join(args.output_dir, "quick")
    return args


def print_result(args, text):
    """Prints `RESULT <text> quick=0|1`, after the quick-run note."""
    if args.quick:
        print(QUICK_NOTE)
    print(f"RESULT {text} quick={int(args.quick)}")
