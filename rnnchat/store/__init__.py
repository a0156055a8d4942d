"""What lies on disk and how it is checked (torch-free): checkpoint headers and fields,
safetensors bytes, corpora and their catalog, downloads."""
