"""`autotag` command line. One function per subcommand; add one with `_add_<name>` + `cmd_<name>`.

    autotag sample-data --days 7 [--start YYYY-MM-DD] [--items-per-day 2000] [--seed 0]
                        [--quoting nul|csv] [--home PATH]
    autotag demo [--days 7] [--start YYYY-MM-DD] [--items-per-day 2000] [--seed 0] [--home PATH]
    autotag serve [--schemes p0_newcar,p1_guide] [--host 127.0.0.1] [--port 8000] [--pin SCHEME=KIND[:VERSION]]
    autotag rollback --scheme p0_newcar --kind linear --to 3 --why "…"

Heavy imports (dagster, numpy, …) happen inside the commands so `autotag --help` stays instant.
"""

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone

SHANGHAI_TZ_NAME = "Asia/Shanghai"
MAX_DAYS = 3660
MAX_ITEMS_PER_DAY = 5_000_000


def _shanghai_today() -> date:
    try:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo(SHANGHAI_TZ_NAME)
    except Exception:  # no tz database: China has used UTC+8 without DST since 1991
        tz = timezone(timedelta(hours=8))
    return datetime.now(tz).date()


# ---- argument types (argparse turns ArgumentTypeError into a clean usage error) --------------


def _int_in(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo} and {hi}, got {value}")
        return value

    return parse


def _iso_date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _add_home_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        metavar="PATH",
        help="AUTOTAG_HOME for this command (default: $AUTOTAG_HOME, else ./var)",
    )


def _apply_home(args: argparse.Namespace) -> None:
    if getattr(args, "home", None):
        os.environ["AUTOTAG_HOME"] = os.path.abspath(os.path.expanduser(args.home))


# ---- sample-data --------------------------------------------------------------------------------


def _add_sample_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample-data",
        help="write generated Hive exports (news_pool, asr, ocr, tag_dim) into $AUTOTAG_HOME/landing",
        description="Generate realistic daily exports of the four Hive tables, written as "
        "`hive --outputformat=tsv2` files under $AUTOTAG_HOME/landing/<table>/dt=<day>/.",
    )
    p.add_argument("--days", type=_int_in(1, MAX_DAYS), required=True, help="number of consecutive days")
    p.add_argument(
        "--start",
        type=_iso_date,
        help=f"first day YYYY-MM-DD (default: DAYS days before today, {SHANGHAI_TZ_NAME})",
    )
    p.add_argument(
        "--items-per-day", type=_int_in(1, MAX_ITEMS_PER_DAY), default=2000, help="news items per day (default 2000)"
    )
    p.add_argument("--seed", type=_int_in(0, 2**63 - 1), default=0, help="random seed (default 0)")
    p.add_argument("--quoting", choices=("nul", "csv"), default="nul", help="tsv2 quoting of special values")
    _add_home_option(p)
    p.set_defaults(func=cmd_sample_data)


def cmd_sample_data(args: argparse.Namespace) -> int:
    import time

    from dagster_autotag.sample.generator import generate_day, write_landing
    from dagster_autotag.settings import landing_dir

    _apply_home(args)
    start = args.start or (_shanghai_today() - timedelta(days=args.days))
    landing = landing_dir()
    print(f"writing {args.days} day(s) of sample exports to {landing}")
    for k in range(args.days):
        dt = (start + timedelta(days=k)).isoformat()
        started = time.perf_counter()
        day = generate_day(dt, items=args.items_per_day, seed=args.seed)
        files = write_landing(landing, day, quoting=args.quoting)
        counts = ", ".join(f"{table}={len(rows)}" for table, rows in day.rows.items())
        print(f"  dt={dt}: {counts} rows ({time.perf_counter() - started:.1f}s)")
        for paths in files.values():
            for path in paths:
                print(f"    {path}")
    return 0


# ---- demo ---------------------------------------------------------------------------------------


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="sample exports for N days, then every job of the pipeline over those days, then a summary",
        description="What `make demo` runs: writes sample exports for the last DAYS days, materialises every "
        "asset of the ingest_to_corpus job for each day into the Dagster instance under $DAGSTER_HOME, builds every "
        "scheme's train/dev/test splits over those days, trains the linear model and a small TextCNN for "
        "p0_newcar (MLflow, registry, promotion), chooses the serving model by measurement (the best champion on "
        "the test split within the inference budget), labels every day with it (drift checks, publish), and prints "
        "rows per layer, check failures, which model serves and why, and where the outputs are.",
    )
    p.add_argument("--days", type=_int_in(1, 366), default=7, help="number of days (default 7)")
    p.add_argument("--start", type=_iso_date, help="first day (default: DAYS days before today)")
    p.add_argument("--items-per-day", type=_int_in(1, MAX_ITEMS_PER_DAY), default=2000)
    p.add_argument("--seed", type=_int_in(0, 2**63 - 1), default=0)
    _add_home_option(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    _apply_home(args)
    from dagster_autotag.demo import (
        print_summary,
        run_build_datasets,
        run_ingest_to_corpus,
        run_predict_and_publish,
        run_train_models,
    )
    from dagster_autotag.sample.generator import generate_landing
    from dagster_autotag.settings import landing_dir

    start = args.start or (_shanghai_today() - timedelta(days=args.days))
    dts = generate_landing(landing_dir(), args.days, start.isoformat(), args.items_per_day, args.seed)
    print(f"wrote sample exports for {dts[0]} … {dts[-1]} to {landing_dir()}")
    runs = run_ingest_to_corpus(dts)
    if all(r.success for r in runs):
        runs.append(run_build_datasets(window_days=len(dts)))
    if all(r.success for r in runs):
        runs.append(run_train_models("p0_newcar"))
    if all(r.success for r in runs):
        runs += run_predict_and_publish(dts, "p0_newcar")
    print_summary(dts, runs)
    code = 0 if all(r.success for r in runs) else 1
    # Everything is written and closed; skip interpreter teardown, where duckdb's bindings print
    # pages of "nanobind: leaked instance" reports after a long dagster/mlflow/torch session.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# ---- serve --------------------------------------------------------------------------------------


def _scheme_list(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected scheme names separated by commas, got {text!r}")
    return names


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="HTTP labelling service over each scheme's serving model (MLflow registry)",
        description="POST /v1/label, GET /healthz, /v1/models, /metrics. Each scheme is served by the model "
        "the registry's serving decision names (as the daily predictions use), reloaded in the background when "
        "it moves. Set AUTOTAG_API_TOKEN to require `Authorization: Bearer <token>`.",
    )
    p.add_argument("--schemes", type=_scheme_list, default=[], help="comma-separated (default: every scheme)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=_int_in(1, 65535), default=8000)
    p.add_argument(
        "--pin", action="append", default=[], metavar="SCHEME=KIND[:VERSION]",
        help="serve that kind's champion or exactly that version instead of the measured choice (repeatable)",
    )  # fmt: skip
    p.add_argument("--max-items", type=_int_in(1, 100_000), default=256, help="items per request (default 256)")
    p.add_argument("--max-field-chars", type=_int_in(1, 10_000_000), default=20_000, help="characters per text")
    p.add_argument("--poll-s", type=float, default=30.0, help="seconds between registry checks (default 30)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    _add_home_option(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    _apply_home(args)
    from dagster_autotag.serve.main import build_settings, serve
    from dagster_autotag.serve.settings import parse_pins

    settings, corpus = build_settings(
        args.schemes, parse_pins(args.pin), args.host, args.port, max_items=args.max_items,
        max_field_chars=args.max_field_chars, poll_s=args.poll_s,
    )  # fmt: skip
    serve(settings, corpus, args.log_level)
    return 0


# ---- rollback -----------------------------------------------------------------------------------


def _add_rollback(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rollback",
        help="move a kind's champion alias back to an earlier registered version (audit-logged)",
        description="Points `champion` of autotag.<scheme>.<kind> at --to; the serving decision then follows "
        "(the next daily run or `autotag serve` re-decides). Written to the audit log with --why.",
    )
    p.add_argument("--scheme", required=True)
    p.add_argument("--kind", required=True, help="linear, textcnn, bert, knn or ensemble")
    p.add_argument("--to", required=True, type=_int_in(1, 10**9), help="the registered version to serve")
    p.add_argument("--why", required=True, help="the reason, kept in the audit log")
    _add_home_option(p)
    p.set_defaults(func=cmd_rollback)


def cmd_rollback(args: argparse.Namespace) -> int:
    _apply_home(args)
    from dagster_autotag.predict.rollback import rollback_champion
    from dagster_autotag.train.registry import default_tracking_uri

    change = rollback_champion(default_tracking_uri(), args.scheme, args.kind, str(args.to), args.why)
    print(change.describe())
    return 0


# ---- entry point ----------------------------------------------------------------------------------

COMMANDS = (_add_sample_data, _add_demo, _add_serve, _add_rollback)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autotag", description="dagster_autotag command line")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:
        print(f"autotag {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
