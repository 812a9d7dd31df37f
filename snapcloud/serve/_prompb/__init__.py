"""Prometheus's remote-write protobuf messages (``prompb``), generated.

``types.proto`` and ``remote.proto`` are Prometheus's own (prometheus/prometheus,
``prompb/``, Apache-2.0), vendored verbatim; ``*_pb2.py`` are generated from them by
``bash scripts/gen-prompb`` (protoc from grpcio-tools) and need the ``protobuf``
runtime the serve extra bounds. Do not edit the generated files.
"""
