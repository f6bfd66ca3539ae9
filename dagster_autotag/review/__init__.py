"""The human review loop: Label Studio tasks out, corrections back (issue #17 §2)."""
