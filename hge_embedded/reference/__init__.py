"""Reference models of the C core: ``fixed`` (bit-exact integers) and ``floating`` (float64 ideal)."""
