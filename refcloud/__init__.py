"""Reference cloud service: what the agent talks to in tests, the demo and development.

aiohttp + SQLite on one machine, its own CA, mutual TLS. Imports only the
shared protocol (`cloudlink.protocol`) and `firmware.base` of the project.
"""
