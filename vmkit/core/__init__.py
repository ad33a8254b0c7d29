"""core: the pieces every stage shares, and nothing that knows a stage.

Records (``RecordBatch``, ``Rejection``), ids and their mapping rules, the error tree
(Transient vs Terminal), migration options, the retry policy, the numba kernels and their numpy
twins, canonical content hashing (fingerprint), request sizing (batching), crash points for the
kill tests, interpreter tuning and name rules. May import: the standard library and third-party
packages only; never another vmkit package.
"""
