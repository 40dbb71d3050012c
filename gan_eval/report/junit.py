"""JUnit XML of gate checks (``gan-eval gate --junit``), for CI systems that show test reports."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from gan_eval.fileio import atomic_write_bytes
from gan_eval.gates import Check

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold, even escaped (control characters, lone surrogates)."""


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold shown as a ``\\xNN`` escape."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def write_junit(checks: list[Check], path: str | Path) -> None:
    """JUnit XML with one testcase per check (a failure element for each failed one); gate
    names and messages come from a user's files, so characters XML cannot hold are escaped."""
    suite = ET.Element(
        "testsuite",
        name="gan-eval gate",
        tests=str(len(checks)),
        failures=str(sum(not c.passed for c in checks)),
        errors="0",
    )
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"gan_eval.gate.{check.kind}", name=xml_text(check.gate)
        )
        message = xml_text(check.message)
        if not check.passed:
            ET.SubElement(case, "failure", message=message, type=check.kind).text = message
        else:
            ET.SubElement(case, "system-out").text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
