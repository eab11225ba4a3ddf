"""Definitions updates over TUF: fetch, verify twice, stage, switch, reload, revert (see docs/cloudlink.md)."""
