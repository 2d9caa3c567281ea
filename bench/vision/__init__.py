"""Shared pieces of the CLIP-style retrievers: model loading, parameters, image transforms, query encoding."""
