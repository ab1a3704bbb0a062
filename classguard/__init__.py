"""Composition root of classguard: settings, the FastAPI app factory, the CLI and worker entry points."""
