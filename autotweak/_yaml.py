r"""Reading the YAML files people write: UTF-8, numbers as YAML 1.2 reads them, no key twice.

PyYAML follows YAML 1.1, where ``1e-3`` (no dot) is a string, so ``lr: 1e-3`` would reach a
training loop as ``'1e-3'``; here it is the float 0.001, as in YAML 1.2 and JSON. A key
given twice in one mapping is an error (PyYAML keeps the last one, silently), and a file
that is not UTF-8 is reported as such rather than as a Python traceback.

Example:
    >>> loads("lr: 1e-3\nsteps: 20\n")
    {'lr': 0.001, 'steps': 20}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from autotweak._validation import yaml_error
from autotweak.exceptions import SpecError

__all__ = ["loads", "read_yaml"]

# Exponent without a dot: a float in YAML 1.2 and JSON, a string in YAML 1.1.
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$")
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, with the two changes of the module's docstring."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE:
                continue  # '<<' merges: later keys override merged ones, as YAML says
            key = self.construct_object(key_node)
            if key in seen:
                raise ConstructorError(
                    None,
                    None,
                    f"found key {key!r} twice in one mapping (first on line {seen[key]})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))


def loads(text: str) -> Any:
    """Parse YAML ``text`` (raises ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=_Loader)


def read_yaml(path: str | Path, error: type[SpecError] = SpecError) -> Any:
    """The contents of the YAML file at ``path``; ``error`` names the file and what is wrong.

    Raises:
        SpecError: (or ``error``) If the file is not UTF-8 text or not valid YAML.
    """
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"is not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} (save it as UTF-8)",
            source=str(path),
        ) from None
    try:
        return loads(text)
    except yaml.YAMLError as exc:
        raise yaml_error(str(path), exc, error) from None
