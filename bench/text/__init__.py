"""Timestamped text for retrieval: speech (ASR), on-screen text (OCR), frame captions, subtitle files.

Submodules load their heavy dependencies lazily; importing this package loads none.
"""
