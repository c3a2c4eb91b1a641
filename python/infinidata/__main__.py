"""Command line: `python -m infinidata gc [--dry-run] [--root DIR]`."""

import argparse
import sys


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m infinidata", description="infinidata maintenance")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gc", help="remove temp files left by processes that died")
    g.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    g.add_argument("--root", default=None,
                   help="temp root (default: $INFINIDATA_TMPDIR, else ./.infinidata_tmp)")
    args = p.parse_args(argv)
    if args.cmd == "gc":
        from . import gc

        r = gc(args.root, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {r['dirs']} dead process directories, {r['files']} files, "
              f"{r['bytes']} bytes")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
