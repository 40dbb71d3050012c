"""JUnit XML of gate checks (``gan-eval gate --junit``), for CI systems that show test reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from gan_eval.fileio import atomic_write_bytes
from gan_eval.gates import Check


def write_junit(checks: list[Check], path: str | Path) -> None:
    """JUnit XML with one testcase per check (a failure element for each failed one)."""
    suite = ET.Element(
        "testsuite",
        name="gan-eval gate",
        tests=str(len(checks)),
        failures=str(sum(not c.passed for c in checks)),
        errors="0",
    )
    for check in checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"gan_eval.gate.{check.kind}", name=check.gate
        )
        if not check.passed:
            ET.SubElement(
                case, "failure", message=check.message, type=check.kind
            ).text = check.message
        else:
            ET.SubElement(case, "system-out").text = check.message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    atomic_write_bytes(path, ET.tostring(root, encoding="utf-8", xml_declaration=True))
