"""The index's tests share the query tests' fleet on the moto server."""

from tests.query.conftest import fleet

__all__ = ["fleet"]
