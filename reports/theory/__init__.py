"""Report sections of the rank-one LoRA theory sandbox (``harness/models/sandboxes.py``): one per
preset, selected by the preset's ``report.check``. Only the names live here, so that the preset
validation can read them without importing pandas or matplotlib."""

CHECKS = ("lora-theory-noise", "lora-theory-mismatch", "lora-theory-active")
