"""LLM side of the ``llm-metadata`` family: backends, prompts, output parsing, call cache, metadata.

Submodules load torch, transformers and httpx lazily; importing this package loads none.
"""
