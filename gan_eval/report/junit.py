"""JUnit XML of gate checks (``gan-eval gate --junit``), for CI systems that show test reports."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from gan_eval.estimates import estimand_label
from gan_eval.fileio import atomic_write_bytes
from gan_eval.gates import Check

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold, even escaped (control characters, lone surrogates)."""


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold shown as a ``\\xNN`` escape."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _baseline_properties(check: Check) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a baseline check: now, baseline, effect, p-value, alpha, ..."""
    fields = [("value", check.value), ("baseline", check.baseline), ("effect", check.effect),
              ("effect_in_spreads", check.effect_in_spreads), ("margin", check.margin),
              ("z", check.z), ("p_value", check.p_value), ("alpha", check.alpha)]
    pairs = [(k, repr(float(v))) for k, v in fields if v is not None]
    pairs.append(("estimand", xml_text(str(check.estimand))))
    pairs.append(("compared", estimand_label(check.estimand, check.n) or "–"))
    return pairs


def _span_properties(check: Check) -> list[tuple[str, str]]:
    """``(name, value)`` pairs of a check on a metric with a floor and ceiling."""
    fields = [("value", check.value), ("span", check.span), ("floor", check.floor),
              ("ceiling", check.ceiling), ("at_control_sizes", check.at_control_sizes)]
    pairs = [(k, repr(float(v))) for k, v in fields if v is not None]
    if check.control_sizes:
        pairs.append(("control_sizes", check.control_sizes))
    return pairs


def write_junit(checks: list[Check], path: str | Path) -> None:
    """JUnit XML with one testcase per check (a failure element for each failed one, an error
    element for each that could not be judged); gate names and messages come from a user's
    files, so characters XML cannot hold are escaped. A baseline check's message states its
    p-value, alpha, effect and what was compared, and its ``properties`` hold the same numbers
    (``p_value``, ``alpha``, ``effect``, ...); a span check's hold ``span``, ``floor``,
    ``ceiling`` and ``at_control_sizes``."""
    suite = ET.Element(
        "testsuite",
        name="gan-eval gate",
        tests=str(len(checks)),
        failures=str(sum(c.judged and not c.passed for c in checks)),
        errors=str(sum(not c.judged for c in checks)),
    )
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"gan_eval.gate.{check.kind}", name=xml_text(check.gate)
        )
        properties = (_baseline_properties(check) if check.kind == "baseline" else
                      _span_properties(check) if check.span is not None else [])
        if properties:  # the numbers, for CI systems that read properties
            props = ET.SubElement(case, "properties")
            for key, value in properties:
                ET.SubElement(props, "property", name=key, value=value)
        message = xml_text(check.message)
        if not check.judged:
            ET.SubElement(case, "error", message=message, type=check.kind).text = message
        elif not check.passed:
            ET.SubElement(case, "failure", message=message, type=check.kind).text = message
        else:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
