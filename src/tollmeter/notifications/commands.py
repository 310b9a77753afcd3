"""`tollmeter notifications add | list | update | remove | test | deliveries | attempts`: a server's
webhook endpoints and delivery log, through its API (`--server`, default `$TOLLMETER_URL`, and
`--api-key`, default `$TOLLMETER_API_KEY`: the project is the key's)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..tables import format_table

PATH = "/v1/notifications"


class CommandFailed(Exception):
    pass


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("notifications", help="webhook notifications of a server's project",
                            description="Configure a tollmeter server's webhook endpoints (spend thresholds, refusal "
                                        "bursts, leak flags; signed, retried) and read its delivery log. "
                                        "See docs/notifications.md.")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("add", help="add an endpoint (prints its secret, once)")
    a.add_argument("url", help="where to POST the notifications (http:// or https://)")
    _endpoint_options(a)
    a.add_argument("--disabled", action="store_true", help="add it switched off")
    a.set_defaults(run=_action(_add))
    ls = actions.add_parser("list", help="list the endpoints")
    ls.set_defaults(run=_action(_list))
    u = actions.add_parser("update", help="change an endpoint (the options given)")
    u.add_argument("endpoint_id")
    u.add_argument("--url", dest="new_url", help="a new URL")
    _endpoint_options(u)
    switch = u.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    u.set_defaults(run=_action(_update))
    r = actions.add_parser("remove", help="remove an endpoint")
    r.add_argument("endpoint_id")
    r.set_defaults(run=_action(_remove))
    t = actions.add_parser("test", help="send an endpoint a notification.test message (by the next round)")
    t.add_argument("endpoint_id")
    t.set_defaults(run=_action(_test))
    d = actions.add_parser("deliveries", help="the delivery log, newest first")
    d.add_argument("--limit", type=int, default=50, help="rows (default 50, at most 1000)")
    d.add_argument("--endpoint", help="one endpoint's deliveries")
    d.add_argument("--status", choices=("pending", "delivered", "failed"))
    d.set_defaults(run=_action(_deliveries))
    at = actions.add_parser("attempts", help="every attempt of one delivery")
    at.add_argument("delivery_id")
    at.set_defaults(run=_action(_attempts))
    for sub in (a, ls, u, r, t, d, at):
        sub.add_argument("--server", default=os.environ.get("TOLLMETER_URL"),
                         help="the server (https://m.example.com, or its /v1/ingest URL; default $TOLLMETER_URL)")
        sub.add_argument("--api-key", default=os.environ.get("TOLLMETER_API_KEY"),
                         help="a key of the project (default $TOLLMETER_API_KEY)")
        sub.add_argument("--format", default="table", choices=("table", "json"), help="default table")


def _endpoint_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--secret", help="the HMAC key (at least 16 characters; generated when adding without one)")
    p.add_argument("--body", dest="body_format", choices=("json", "slack"), help="json (default) or slack ({\"text\"})")
    p.add_argument("--rules", help="comma-separated: limit,refusals,leak (default all)")
    p.add_argument("--thresholds", help="percentages of a limit, comma-separated (default 80,100)")
    p.add_argument("--refusal-count", type=int, help="refused leases that make a burst (default 10)...")
    p.add_argument("--refusal-window", type=int, help="...within this many minutes (default 5)")
    p.add_argument("--description", help="a note")


def _action(fn):
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CommandFailed as exc:
            print(f"tollmeter notifications {args.action}: {exc}", file=sys.stderr)
            return 2
    return run


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.secret is not None:
        fields["secret"] = args.secret
    if args.body_format is not None:
        fields["format"] = args.body_format
    if args.rules is not None:
        fields["rules"] = [r.strip() for r in args.rules.split(",") if r.strip()]
    if args.thresholds is not None:
        try:
            fields["thresholds"] = [float(t.strip().rstrip("%")) for t in args.thresholds.split(",") if t.strip()]
        except ValueError:
            raise CommandFailed(f"--thresholds: numbers like 80,100, got {args.thresholds!r}") from None
    if args.refusal_count is not None:
        fields["refusal_count"] = args.refusal_count
    if args.refusal_window is not None:
        fields["refusal_window_minutes"] = args.refusal_window
    if args.description is not None:
        fields["description"] = args.description
    return fields


def _request(args: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    from ..transport.api import server_base

    if not args.server:
        raise CommandFailed("which server? --server https://... (or set TOLLMETER_URL)")
    if not args.api_key:
        raise CommandFailed("no API key: --api-key (or set TOLLMETER_API_KEY)")
    try:
        response = httpx.request(method, server_base(args.server) + PATH + path, timeout=30,
                                 headers={"Authorization": f"Bearer {args.api_key}"}, **kwargs)
    except httpx.HTTPError as exc:
        raise CommandFailed(f"cannot reach {args.server}: {exc}") from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        if isinstance(detail, list):  # a validation error: its messages
            detail = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        raise CommandFailed(f"{response.status_code}: {detail}")
    return None if response.status_code == 204 else response.json()


def _add(args: argparse.Namespace) -> int:
    body = {"url": args.url, **_fields(args)}
    if args.disabled:
        body["enabled"] = False
    endpoint = _request(args, "POST", "/endpoints", json=body)
    if args.format == "json":
        print(json.dumps(endpoint, indent=2))
    else:
        print(f"added endpoint {endpoint['endpoint_id']} -> {endpoint['url']}")
        print(f"secret (shown once, keep it for checking signatures): {endpoint['secret']}")
    return 0


def _list(args: argparse.Namespace) -> int:
    endpoints = _request(args, "GET", "/endpoints")["endpoints"]
    if args.format == "json":
        print(json.dumps(endpoints, indent=2))
    elif not endpoints:
        print("no endpoints: tollmeter notifications add URL")
    else:
        print(format_table(["id", "url", "body", "rules", "thresholds", "burst", "enabled", "secret"],
                           [[e["endpoint_id"], e["url"], e["format"], ",".join(e["rules"]),
                             ",".join(f"{t:g}%" for t in e["thresholds"]),
                             f"{e['refusal_count']}/{e['refusal_window_minutes']}m",
                             "yes" if e["enabled"] else "no", e["secret_hint"]] for e in endpoints]))
    return 0


def _update(args: argparse.Namespace) -> int:
    body = _fields(args)
    if args.new_url is not None:
        body["url"] = args.new_url
    if args.enabled is not None:
        body["enabled"] = args.enabled
    if not body:
        raise CommandFailed("nothing to change: give --url, --secret, --rules, --thresholds, ...")
    endpoint = _request(args, "PATCH", f"/endpoints/{_segment(args.endpoint_id)}", json=body)
    print(json.dumps(endpoint, indent=2) if args.format == "json" else f"updated endpoint {endpoint['endpoint_id']}")
    return 0


def _remove(args: argparse.Namespace) -> int:
    _request(args, "DELETE", f"/endpoints/{_segment(args.endpoint_id)}")
    print(json.dumps({"removed": args.endpoint_id}) if args.format == "json"
          else f"removed endpoint {args.endpoint_id}")
    return 0


def _test(args: argparse.Namespace) -> int:
    answer = _request(args, "POST", f"/endpoints/{_segment(args.endpoint_id)}/test")
    print(json.dumps(answer, indent=2) if args.format == "json" else
          f"queued test message {answer['message_id']} for endpoint {args.endpoint_id}: "
          "see `tollmeter notifications deliveries`")
    return 0


def _deliveries(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.endpoint:
        params["endpoint_id"] = args.endpoint
    if args.status:
        params["status"] = args.status
    rows = _request(args, "GET", "/deliveries", params=params)["deliveries"]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no deliveries yet")
    else:
        print(format_table(["created", "endpoint", "event", "", "status", "tries", "last", "next retry", "delivery"],
                           [[r["created_at"][:19], r["endpoint_id"], r["event"], r["notification_status"], r["status"],
                             r["attempts"], r["last_status_code"] or (r["last_error"] or "")[:40],
                             (r["next_attempt_at"] or "")[:19], r["delivery_id"]] for r in rows], right=(5,)))
    return 0


def _attempts(args: argparse.Namespace) -> int:
    answer = _request(args, "GET", f"/deliveries/{_segment(args.delivery_id)}/attempts")
    if args.format == "json":
        print(json.dumps(answer, indent=2))
    elif not answer["attempts"]:
        print(f"no attempts of delivery {args.delivery_id} in this project")
    else:
        print(format_table(["#", "at", "status", "error", "next retry"],
                           [[a["attempt"], a["attempted_at"][:19], a["status_code"] or "", (a["error"] or "")[:60],
                             (a["next_attempt_at"] or "")[:19]] for a in answer["attempts"]], right=(0,)))
    return 0


def _segment(value: str) -> str:
    from ..transport.api import segment

    return segment(value)
