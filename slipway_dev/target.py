"""`slipway check-target --stage S`: whether a stage's TARGET_URL names a backend.

.chalice/config.json ships every stage with a placeholder backend
(`https://backend.example.com/ws`). `chalice local` runs the demo backend in its
place and says so; a packaged or deployed stage would POST every client event
there and reject every connection. `make package` runs this first, and a deploy
pipeline can run it as a gate:

- no TARGET_URL, or one that is not an http(s) URL: refused, whatever the stage;
- a placeholder (a reserved domain: example.com, .invalid, ...): a warning for a
  development stage (`dev`, or any named with --dev-stage), refused for any other;
  `--warn-only` (what `make package` passes: a template is not a deployment, and
  one is often built to be read first) makes it a warning for every stage;
- anything else: fine, and silent.

It reads the stage as `chalice package` does (Chalice's own config loader): the
stage's `environment_variables` over the top-level ones.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

# RFC 2606 / 6761: a TARGET_URL on these is a placeholder, not a backend.
PLACEHOLDER_DOMAINS = ("example.com", "example.net", "example.org", "example", "invalid")
DEV_STAGES = ("dev",)
ROOT = Path(__file__).resolve().parent.parent


def placeholder(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in PLACEHOLDER_DOMAINS)


def stage_environment(project: Path, stage: str) -> dict[str, str]:
    """The stage's environment variables, as Chalice merges them."""
    from chalice.cli.factory import CLIFactory

    config = CLIFactory(str(project)).create_config_obj(chalice_stage_name=stage)
    return dict(config.environment_variables)


def problem(url: str | None, stage: str, dev: bool) -> tuple[bool, str] | None:
    """(refused, what is wrong) for a stage's TARGET_URL, or None when it is fine."""
    where = f"stages.{stage}.environment_variables.TARGET_URL in .chalice/config.json"
    if not url:
        return True, f"stage {stage} has no TARGET_URL: set {where} to your backend's URL"
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        return True, f"stage {stage}'s TARGET_URL {url!r} is not an http(s) URL: fix {where}"
    if not placeholder(url):
        return None
    said = (
        f"stage {stage}'s TARGET_URL {url} is the placeholder: every client event would "
        f"go there and every connection be refused. Set {where} to your backend's URL"
    )
    if dev:
        return False, said + " (a warning: fix it before you deploy this stage)"
    return True, said + " (docs/deploy.md#before-you-start)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="slipway check-target",
        description="Check that a stage's TARGET_URL (.chalice/config.json) names a backend, "
        "not the placeholder: a warning for a development stage, an error (exit 2) for "
        "any other. `make package` runs it.",
    )
    parser.add_argument("--stage", default="dev", help="the Chalice stage (default dev)")
    parser.add_argument(
        "--dev-stage",
        action="append",
        default=list(DEV_STAGES),
        metavar="NAME",
        help="a stage only warned about (default: dev; repeatable)",
    )
    parser.add_argument(
        "--project-dir", type=Path, default=ROOT, help="the Chalice project (default: this one)"
    )
    parser.add_argument(
        "--warn-only",
        action="store_true",
        help="only warn about a placeholder, for any stage (make package: packaging is not "
        "deploying; a missing or malformed TARGET_URL is still an error)",
    )
    args = parser.parse_args(argv)
    try:
        env = stage_environment(args.project_dir, args.stage)
    except Exception as exc:  # Chalice's own message: a missing stage, bad JSON...
        _say("error", f"cannot read stage {args.stage} of {args.project_dir}: {exc}")
        return 2
    dev = args.warn_only or args.stage in args.dev_stage
    found = problem(env.get("TARGET_URL"), args.stage, dev)
    if found is None:
        return 0
    refused, message = found
    _say("error" if refused else "warning", message)
    return 2 if refused else 0


def _say(kind: str, message: str) -> None:
    print(f"slipway check-target: {kind}: {message}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
