"""Datasets on disk: sources, layouts, ingest (folder or shard format), the manifest, the store."""
