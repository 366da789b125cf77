"""Export to SavedModel for TF Serving, and request helpers."""
