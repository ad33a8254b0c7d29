"""Chroma connector (``chromadb``): a local directory (PersistentClient) or a server (HttpClient)."""
