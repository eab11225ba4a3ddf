"""Packet inspection engine: decode, flows, streams, application parsers, events.

Cores (model, decode, flow, stream, applayer) are sans-IO: they take bytes and
timestamps and return records; `inspection.io` and `inspection.output` are the
only modules that touch files or sockets.
"""
