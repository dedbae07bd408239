"""Rewrite the code dependencies of every stage in dvc.yaml from the import graph:

    python -m tests.support.dvc_code          # print what would change
    python -m tests.support.dvc_code --write  # rewrite dvc.yaml

Each stage's `deps: [...]` keeps its data entries (`${...}` and non-code paths) and lists as code
`stage_code(<its sslmae command>)`. tests/unit/test_dvc.py fails when dvc.yaml differs from this."""

from __future__ import annotations

import re
import sys
import textwrap

import yaml

from tests.support.imports import REPO, stage_code

DVC_YAML = REPO / "dvc.yaml"
DEPS = re.compile(r"^(?P<indent> *)deps: \[(?P<body>[^\]]*)\]", re.M)


def _command(block: str) -> str:
    return re.search(r"cmd: (?:>-\s*)?sslmae (\w+)", block).group(1)


def regenerated(text: str) -> str:
    stages = yaml.safe_load(text)["stages"]
    out, pos = [], 0
    for name in stages:
        start = text.index(f"\n  {name}:", pos)
        match = DEPS.search(text, start)
        out.append(text[pos:match.start()])
        entries = [e.strip() for e in match.group("body").replace("\n", " ").split(",") if e.strip()]
        data = [e for e in entries if not e.strip('"').startswith("sslmae")]
        code = stage_code(_command(text[start:match.start()]))
        indent = match.group("indent")
        lead = f"{indent}deps: ["
        body = ", ".join(data + code)
        lines = textwrap.wrap(body, width=116 - len(lead), break_on_hyphens=False, break_long_words=False)
        out.append(lead + ("\n" + " " * len(lead)).join(lines) + "]")
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def main() -> int:
    text = DVC_YAML.read_text()
    new = regenerated(text)
    if "--write" in sys.argv:
        DVC_YAML.write_text(new)
        print(f"wrote {DVC_YAML}")
    else:
        print("dvc.yaml is up to date" if new == text else new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
