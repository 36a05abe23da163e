"""The runtime: what runs the lessons against a model or a server (``cb.chat``, ``cb.load``, ``cb.settings``,
``cb.doctor``, the server processes). It is built from the lessons and the kit; no lesson and nothing in
the kit imports it. Its modules load on first use (``cb.runtime.server``)."""

from cookbook.kit import lazy

__getattr__ = lazy(__name__)
