"""YAML text for renderers: block style, insertion order, no aliases, deterministic."""

from __future__ import annotations

import io
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import SingleQuotedScalarString

# Words YAML 1.1 readers (PyYAML, which Patroni uses) turn into booleans or null.
_YAML11_SPECIAL = re.compile(r"^(y|n|yes|no|on|off|true|false|null|~)$", re.IGNORECASE)


def _quote_ambiguous(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _quote_ambiguous(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_quote_ambiguous(v) for v in data]
    if isinstance(data, str) and _YAML11_SPECIAL.match(data):
        return SingleQuotedScalarString(data)
    return data


def to_yaml(data: Any) -> str:
    yaml = YAML(typ="rt")
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.representer.ignore_aliases = lambda _data: True
    out = io.StringIO()
    yaml.dump(_quote_ambiguous(data), out)
    return out.getvalue()
