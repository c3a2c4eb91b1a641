"""Command line: `python -m infinidata COMMAND` (also the `infinidata` script).

    gc [--dry-run] [--root DIR]     remove temp files left by processes that died
    gc --saved DIR [--dry-run]      sweep a saved directory: dead saves' temp files, unreferenced data files
    info DIR [NAME]                 what saved views hold: schema, rows, files, bytes on disk
    verify DIR [NAME]               full content check of saved views (exit 1 if damaged)
    import SRC... DIR NAME          Parquet / Arrow files to a saved view

Exit status: 0 all well, 1 a damaged or missing file (the message on stderr), 2 a usage error.
"""

import argparse
import os
import sys

MANIFEST = ".idtview"


def _saved_names(d):
    """Names of the views saved in directory d, sorted."""
    return sorted(n[: -len(MANIFEST)] for n in os.listdir(d)
                  if n.endswith(MANIFEST) and not n.startswith("."))


def _names_or_fail(d, name):
    if not os.path.isdir(d):
        raise FileNotFoundError(2, "no such directory", d)
    if name is not None:
        return [name]
    names = _saved_names(d)
    if not names:
        raise FileNotFoundError(2, "no saved views (*.idtview) in directory", d)
    return names


def _describe(d, name, verify):
    """Load one saved view and describe it (a dict)."""
    import infinidata

    tv = infinidata.TableView.load_from_disk(d, name, verify=verify)
    manifest = os.path.join(d, name + MANIFEST)
    paths = [manifest] + sorted({p for p, _, _ in tv._files()})
    blocks = 0
    for p in paths:
        try:
            blocks += os.stat(p).st_blocks * 512
        except OSError:
            pass
    return {"name": name, "rows": len(tv), "schema": tv.schema, "files": len(paths),
            "bytes_on_disk": blocks, "format_version": infinidata.FORMAT_VERSION}


def _fmt_dtype(dtype, shape):
    kind = {"U": "str", "S": "bytes"}.get(dtype.kind, str(dtype))
    return kind + (str(tuple(shape)) if shape else "")


def _each_view(args, verify, failure, report):
    """Describe every view named by args (loading with or without content checks); print
    report(info) for each, or '<name>: <failure><error>' on stderr. 1 if any failed."""
    failed = 0
    for name in _names_or_fail(args.dir, args.name):
        try:
            info = _describe(args.dir, name, verify=verify)
        except (OSError, ValueError) as e:
            print(f"{name}: {failure}{e}", file=sys.stderr)
            failed = 1
            continue
        print(report(info))
    return failed


def _info_text(info):
    lines = [f"{info['name']}: {info['rows']} rows, {info['files']} files, "
             f"{info['bytes_on_disk']} bytes on disk, format version {info['format_version']}"]
    lines += [f"  {col}: {_fmt_dtype(dtype, shape)}" for col, (dtype, shape) in info["schema"].items()]
    return "\n".join(lines)


def cmd_info(args):
    return _each_view(args, False, "", _info_text)


def cmd_verify(args):
    return _each_view(args, True, "damaged or missing: ",
                      lambda i: f"{i['name']}: ok ({i['rows']} rows, {i['files']} files)")


def _import_sources(srcs, progress):
    import infinidata

    TableView = infinidata.TableView
    views = []
    parquet = []

    def flush():
        if parquet:
            if progress:
                print(f"importing {len(parquet)} Parquet file(s)", file=sys.stderr)
            views.append(TableView.from_parquet(list(parquet), progress=None if progress else False))
            parquet.clear()

    for s in srcs:
        if not os.path.exists(s):
            raise FileNotFoundError(2, "no such file or directory", s)
        if os.path.isdir(s) or s.endswith(".parquet") or s.endswith(".parq"):
            parquet.append(s)
            continue
        flush()
        if progress:
            print(f"importing {s}", file=sys.stderr)
        views.append(TableView.from_arrow(_open_arrow(s), progress=None if progress else False))
    flush()
    return views[0] if len(views) == 1 else TableView.concat(views)


def _open_arrow(path):
    """An Arrow IPC file or stream (.arrow, .feather, Hugging Face cache files) as a reader."""
    from ._arrow import _pa

    pa = _pa("importing Arrow files")
    import pyarrow.ipc as ipc

    try:
        return _file_batches(ipc.open_file(pa.memory_map(path)))
    except pa.ArrowInvalid:
        pass
    try:
        return ipc.open_stream(pa.memory_map(path))
    except pa.ArrowInvalid as e:
        raise ValueError(f"{path}: neither Parquet (by name) nor an Arrow IPC file or stream: {e}") \
            from None


def _file_batches(reader):
    import pyarrow as pa

    return pa.RecordBatchReader.from_batches(
        reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches)))


def cmd_import(args):
    if os.path.exists(os.path.join(args.dir, args.name + MANIFEST)) and not args.overwrite:
        print(f"{args.name}: a view of that name is already saved in {args.dir} "
              f"(use --overwrite)", file=sys.stderr)
        return 1
    try:
        tv = _import_sources(args.src, progress=not args.quiet)
        os.makedirs(args.dir, exist_ok=True)
        tv.save_to_disk(args.dir, args.name, overwrite=args.overwrite)
    except (OSError, ValueError, TypeError, KeyError, ImportError) as e:
        print(f"import failed: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"saved {len(tv)} rows as {args.name!r} in {args.dir}")
    return 0


def cmd_gc_saved(args):
    from . import gc_saved

    try:
        r = gc_saved(args.saved, dry_run=args.dry_run)
    except OSError as e:
        print(f"gc --saved failed: {e}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for name, size in r["files"]:
        print(f"{verb} {name} ({size} bytes)")
    print(f"{verb} {r['tmp_files']} temporary files, {r['data_files']} unreferenced data "
          f"files, {r['bytes']} bytes")
    if r["manifests_unreadable"]:
        print("some manifest could not be read: data files were left alone", file=sys.stderr)
        return 1
    return 0


def cmd_gc(args):
    if args.saved is not None:
        if args.root is not None:
            print("--saved and --root exclude each other", file=sys.stderr)
            return 2
        return cmd_gc_saved(args)
    from . import gc

    r = gc(args.root, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {r['dirs']} dead process directories, {r['files']} files, "
          f"{r['bytes']} bytes")
    return 0


def _add_io_commands(sub):
    for cmd, func, short, long in (
            ("info", cmd_info, "describe saved views: schema, rows, files, bytes on disk",
             "Describe one saved view, or every view saved in DIR: its rows, columns (dtype and "
             "row shape), the files it reads (with its manifest), their allocated bytes and the "
             "format version. Reads headers only (no content check)."),
            ("verify", cmd_verify, "check saved views completely (content checksums)",
             "Load one saved view, or every view in DIR, checking every file's structure and "
             "content checksum. Exit status 0 when all are intact, 1 when one is damaged or "
             "missing (the message on stderr), 2 for a usage error.")):
        c = sub.add_parser(cmd, help=short, description=long)
        c.add_argument("dir", metavar="DIR", help="a directory written by save_to_disk")
        c.add_argument("name", metavar="NAME", nargs="?",
                       help="one view (default: every view in DIR)")
        c.set_defaults(func=func)
    m = sub.add_parser("import", help="import Parquet or Arrow files as a saved view",
                       description="Import SRC files (Parquet files or directories of *.parquet, "
                                   "Arrow IPC files or streams such as Hugging Face cache files) "
                                   "in order, streaming, and save the rows as view NAME in DIR. "
                                   "Types map as TableView.from_arrow documents.")
    m.add_argument("src", metavar="SRC", nargs="+", help="Parquet or Arrow file, or directory")
    m.add_argument("dir", metavar="DIR", help="directory to save into (made if missing)")
    m.add_argument("name", metavar="NAME", help="name of the saved view")
    m.add_argument("--overwrite", action="store_true", help="replace a view of that name")
    m.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    m.set_defaults(func=cmd_import)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m infinidata",
                                description="infinidata maintenance and inspection")
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gc", help="remove temp files left by processes that died")
    g.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    g.add_argument("--root", default=None,
                   help="temp root (default: the one tables would use: $INFINIDATA_TMPDIR, "
                        "else ./.infinidata_tmp)")
    g.add_argument("--saved", metavar="DIR", default=None,
                   help="sweep the saved directory DIR instead of the temp root: temporary files "
                        "of saves that died, data files no manifest names")
    g.set_defaults(func=cmd_gc)
    _add_io_commands(sub)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"{e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
