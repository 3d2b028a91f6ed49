"""`streamrec-consume`: read the recommendations, dead-letter and drift-alert topics as JSON lines.

    streamrec-consume recs                   # every list so far
    streamrec-consume recs --user u000042    # that user's newest list
    streamrec-consume recs --follow          # keep printing new lists
    streamrec-consume dlq                    # rejected messages with their reasons
    streamrec-consume alerts                 # drift alerts
    streamrec-consume similar --item i0042   # items like one (a worker's /items/{id}/similar)
    streamrec-consume served --user u000042  # the list a worker would serve now (/recommendations/{id})

Users are named by their raw id; with STREAMREC_ID_KEY set they are looked up by its pseudonym.
STREAMREC_HTTP_TOKEN, when set, goes to the worker as a bearer token. A Kafka or worker that
cannot be used ends the command with one line on stderr and exit code 1 (2: Kafka settings).
"""

from __future__ import annotations

import argparse
import json
import sys

from stream.config import Settings

__all__ = ["main", "build_parser"]


def _print(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamrec-consume", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    recs = sub.add_parser("recs", help="the recommendations topic")
    recs.add_argument("--user", default=None, help="only this user's newest list")
    dlq = sub.add_parser("dlq", help="the dead-letter topic")
    alerts = sub.add_parser("alerts", help="the drift-alert topic")
    similar = sub.add_parser("similar", help="items like one, from a worker (GET /items/{item_id}/similar)")
    similar.add_argument("--item", required=True, help="the item id")
    similar.add_argument("--k", type=int, default=10, help="how many (default 10)")
    similar.add_argument("--url", default=None, help="a worker's base URL (default the local worker's web port)")
    served = sub.add_parser("served", help="a user's list as a worker serves it now (GET /recommendations/{user_id})")
    served.add_argument("--user", required=True, help="the user id")
    served.add_argument("--k", type=int, default=10, help="how many (default 10)")
    served.add_argument("--url", default=None, help="a worker's base URL (default the local worker's web port)")
    for p in (recs, dlq, alerts):
        p.add_argument("--follow", action="store_true", help="keep waiting for new messages (Ctrl-C stops)")
        p.add_argument("--idle-timeout", type=float, default=None, help="with --follow: stop after this long without news")
    return parser


def main(argv: list[str] | None = None) -> int:
    from consumers import sdk
    from stream.preflight import ServiceError, check_kafka
    from stream.pseudonyms import Pseudonyms

    args = build_parser().parse_args(argv)
    settings = Settings()
    if args.command in ("recs", "dlq", "alerts"):
        try:
            check_kafka(settings)
        except ServiceError as exc:
            print(f"streamrec-consume: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "recs":
            if args.user and not args.follow:
                latest = sdk.latest_recommendations(args.user, settings)
                if latest is None:
                    # the id as looked up: with STREAMREC_ID_KEY set, the pseudonym, never the raw id
                    shown = Pseudonyms.from_settings(settings).user(args.user)
                    print(f"streamrec-consume: no recommendations for user {shown!r} yet", file=sys.stderr)
                    return 1
                _print(latest)
            else:
                for rec in sdk.recommendations(settings, user_id=args.user, follow=args.follow,
                                               idle_timeout=args.idle_timeout):
                    _print(rec)
        elif args.command == "similar":
            _print(sdk.similar_items(args.item, args.k, url=args.url, settings=settings))
        elif args.command == "served":
            _print(sdk.served_recommendations(args.user, args.k, url=args.url, settings=settings))
        elif args.command == "dlq":
            for dead in sdk.dead_letters(settings, follow=args.follow, idle_timeout=args.idle_timeout):
                _print(dead.as_dict())
        else:
            for alert in sdk.drift_alerts(settings, follow=args.follow, idle_timeout=args.idle_timeout):
                _print(alert)
    except KeyboardInterrupt:
        return 130
    except (RuntimeError, LookupError, ValueError, OSError) as exc:
        print(f"streamrec-consume: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
