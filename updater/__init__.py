"""Firmware and definitions updates (TUF trust, A/B install). Not built yet."""
