"""The JSON Schema of every YAML kind llmsim reads (chip, system, stack) for editors (``llmsim schema``): above
both hwmodels.schema (the chip and system definitions and the types) and hwmodels.stack_schema (the stack
definition, built from those types), so neither imports the other back."""

from __future__ import annotations

from hwmodels.schema import CHIP, SYSTEM
from hwmodels.stack_schema import STACK


def json_schema() -> dict:
    """JSON Schema (draft 2020-12) of a hardware file: a chip or a system."""
    chip, system, stack = CHIP.json(), SYSTEM.json(), STACK.json()
    chip["properties"]["kind"] = {"const": "chip"}
    system["properties"]["kind"] = {"const": "system"}
    stack["properties"]["kind"] = {"const": "stack"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://llmsim.dev/schema/hardware-v1.json",
        "title": "llmsim hardware description (chip or system) or serving-stack profile (stack), format version 1",
        "oneOf": [chip, system, stack],
    }
